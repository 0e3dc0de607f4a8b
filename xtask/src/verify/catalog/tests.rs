//! The catalog's SQL text and parsing, without a database.

use std::time::Duration;

use super::*;
use crate::config::timeouts::STATEMENT_TIMEOUT;
use crate::pg::ident::shown_ident;

fn fk(columns: &[&str], parent_columns: &[&str], match_full: bool) -> ForeignKey {
    ForeignKey {
        table: QualifiedName::new("My Schema", "we\"ird.name"),
        name: "fk".into(),
        columns: columns.iter().map(|s| s.to_string()).collect(),
        parent: QualifiedName::new("My Schema", "select"),
        parent_columns: parent_columns.iter().map(|s| s.to_string()).collect(),
        match_full,
        operators: vec!["OPERATOR(pg_catalog.=)".into(); columns.len()],
        table_kind: TableKind::Ordinary,
        parent_kind: TableKind::Partitioned,
    }
}

#[test]
fn names_are_quoted_in_sql_and_readable_in_text() {
    let name = QualifiedName::new("My Schema", "we\"ird.name");
    assert_eq!(name.sql(), r#""My Schema"."we""ird.name""#);
    assert_eq!(name.to_string(), r#""My Schema"."we""ird.name""#);
    assert_eq!(
        QualifiedName::new("public", "users").to_string(),
        "public.users"
    );
    assert_eq!(shown_ident("Order"), "\"Order\"");
    assert_eq!(shown_ident("select"), "select");
}

#[test]
fn a_count_reads_only_the_table_itself() {
    let sql = count_sql(&QualifiedName::new("p", "parted"), TableKind::Partitioned);
    assert_eq!(sql, r#"SELECT pg_catalog.count(*) FROM "p"."parted""#);
    let sql = count_sql(
        &QualifiedName::new("My Schema", "select"),
        TableKind::Ordinary,
    );
    assert_eq!(
        sql,
        r#"SELECT pg_catalog.count(*) FROM ONLY "My Schema"."select""#
    );
}

#[test]
fn orphans_follow_the_match_type() {
    let simple = orphans_sql(&fk(&["a", "B"], &["x", "Y"], false));
    assert!(simple.contains(r#""xtask_child"."a" IS NOT NULL AND "xtask_child"."B" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "My Schema"."select" AS "xtask_parent" WHERE "xtask_parent"."x" OPERATOR(pg_catalog.=) "xtask_child"."a" AND "xtask_parent"."Y" OPERATOR(pg_catalog.=) "xtask_child"."B")"#), "{simple}");
    assert!(
        simple.contains(r#"FROM ONLY "My Schema"."we""ird.name" AS "xtask_child""#),
        "{simple}"
    );
    assert!(
        simple.starts_with(r#"SELECT pg_catalog.count(*), pg_catalog.md5(pg_catalog.count(*)::text || ':' || COALESCE(pg_catalog.sum(pg_catalog.hashtextextended(ROW("xtask_child"."a", "xtask_child"."B")::text COLLATE pg_catalog."C", 0)), 0)::text) FROM "#),
        "the orphans' referencing keys are digested: {simple}"
    );
    let full = orphans_sql(&fk(&["a", "b"], &["x", "y"], true));
    assert!(full.contains(r#"("xtask_child"."a" IS NOT NULL OR "xtask_child"."b" IS NOT NULL) AND ("xtask_child"."a" IS NULL OR "xtask_child"."b" IS NULL OR NOT EXISTS"#), "{full}");
}

#[test]
fn statement_timeout_takes_seconds_or_postgres_units() {
    let ok = |raw: &str| STATEMENT_TIMEOUT.parse(raw).unwrap();
    assert_eq!(ok("90"), Some(Duration::from_secs(90)));
    assert_eq!(ok(" 30s "), Some(Duration::from_secs(30)));
    assert_eq!(ok("1ms"), Some(Duration::from_millis(1)));
    assert_eq!(ok("500 ms"), Some(Duration::from_millis(500)));
    assert_eq!(ok("10min"), Some(Duration::from_secs(600)));
    assert_eq!(ok("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(ok("1d"), Some(Duration::from_secs(86_400)));
    assert_eq!(ok("0"), None);
    assert_eq!(ok("0min"), None);
    for bad in [
        "",
        "soon",
        "-5",
        "1.5s",
        "10 sec",
        "5m",
        "ms",
        "30d",
        "99999999999999999999999",
    ] {
        let err = STATEMENT_TIMEOUT.parse(bad).unwrap_err();
        assert!(err.contains("XTASK_STATEMENT_TIMEOUT"), "{bad}: {err}");
        assert!(err.contains("10min"), "{bad}: {err}");
    }
}

#[test]
fn next_value_of_a_sequence() {
    let mut seq = OwnedSequence {
        sequence: QualifiedName::new("public", "t_id_seq"),
        table: QualifiedName::new("public", "t"),
        column: "id".into(),
        last_value: None,
        start_value: 1,
        increment_by: 1,
        readable: true,
        integer_column: true,
        table_kind: TableKind::Ordinary,
    };
    assert_eq!(seq.next_value(), 1);
    seq.last_value = Some(41);
    assert_eq!(seq.next_value(), 42);
    seq.last_value = Some(i64::MAX);
    assert_eq!(seq.next_value(), i64::MAX);
    seq.increment_by = -1;
    assert!(seq.descending());
    assert!(sequence_column_sql(&seq).starts_with("SELECT pg_catalog.min(\"id\")::bigint"));
}
