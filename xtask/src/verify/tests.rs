//! The comparison logic on hand-made snapshots (no database): what counts as a difference, and
//! how each is named.

use std::collections::BTreeMap;

use super::catalog::{
    AlembicState, Catalog, Column, Constraint, Extension, Measures, Snapshot, Table, TableKind,
    TableMeasure,
};
use super::report::{DatabaseOutcome, Report, ReportStatus};
use super::*;
use crate::pg::ident::QualifiedName;

fn endpoints() -> (Endpoint, Endpoint) {
    (
        Endpoint::new(
            "remote",
            DbUrl::parse("postgresql://postgres:s3cret@db.example:5432/railway").unwrap(),
        ),
        Endpoint::new(
            "local",
            DbUrl::parse("postgresql://me:s3cret@localhost:5432/app").unwrap(),
        ),
    )
}

fn column(data_type: &str) -> Column {
    Column::of_type(data_type)
}

/// `users (id, email, "Order")` with `rows` rows, at revision `rev`.
fn snapshot(rows: i64, rev: &str) -> Snapshot {
    let users = QualifiedName::new("public", "users");
    let mut columns = BTreeMap::new();
    columns.insert("id".to_string(), column("uuid"));
    columns.insert("email".to_string(), column("character varying(255)"));
    columns.insert("Order".to_string(), column("integer"));
    let mut constraints = BTreeMap::new();
    constraints.insert(
        "users_pkey".to_string(),
        Constraint {
            kind: "primary key".into(),
            definition: "PRIMARY KEY (id)".into(),
        },
    );
    let mut tables = BTreeMap::new();
    tables.insert(
        users.clone(),
        Table {
            kind: TableKind::Ordinary,
            columns,
            constraints,
        },
    );
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "plpgsql".to_string(),
        Extension {
            version: "1.0".into(),
            schema: "pg_catalog".into(),
        },
    );
    let mut measured = BTreeMap::new();
    measured.insert(
        users,
        TableMeasure {
            rows,
            checksum: Some(format!("sum-{rows}")),
        },
    );
    Snapshot {
        catalog: Catalog {
            server_version: "17.4".into(),
            tables,
            indexes: BTreeMap::new(),
            extensions,
            foreign_keys: Vec::new(),
            sequences: Vec::new(),
            objects: Default::default(),
            alembic: Some(AlembicState {
                table: QualifiedName::new("public", "alembic_version"),
                revisions: vec![rev.to_string()],
            }),
        },
        measures: Measures {
            tables: measured,
            orphans: Vec::new(),
            sequence_columns: Vec::new(),
        },
    }
}

fn heads(list: &[&str]) -> AlembicHeads {
    AlembicHeads {
        config: "alembic.ini".into(),
        heads: list.iter().map(|s| s.to_string()).collect(),
        error: None,
    }
}

fn compare(l: &Snapshot, r: &Snapshot, h: Option<&AlembicHeads>) -> DatabaseComparison {
    let (left, right) = endpoints();
    build(Database::Core, &left, &right, l, r, h, true)
}

#[test]
fn a_partitioned_tables_rows_are_counted_once_in_the_summary() {
    // The same 6 rows listed twice: once under the partitioned parent, once under its partition.
    let with_parent = |rows| {
        let mut s = snapshot(rows, "c5");
        let parent = QualifiedName::new("public", "users_all");
        let mut table = s.catalog.tables.values().next().unwrap().clone();
        table.kind = TableKind::Partitioned;
        s.catalog.tables.insert(parent.clone(), table);
        let measure = s.measures.tables.values().next().unwrap().clone();
        s.measures.tables.insert(parent, measure);
        s
    };
    let c = compare(&with_parent(6), &with_parent(6), Some(&heads(&["c5"])));
    assert_eq!(
        c.summary(),
        "core: equal (2 tables, 6 rows, checksums match)"
    );
}

#[test]
fn identical_snapshots_are_equal() {
    let c = compare(
        &snapshot(6, "c5"),
        &snapshot(6, "c5"),
        Some(&heads(&["c5"])),
    );
    assert!(c.is_equal(), "{c:#?}");
    assert_eq!(c.alembic.left.at_head, Some(true));
    assert_eq!(
        c.summary(),
        "core: equal (1 tables, 6 rows, checksums match)"
    );
    assert!(c.notes.is_empty());
}

#[test]
fn row_counts_and_checksums_are_differences() {
    let c = compare(&snapshot(6, "c5"), &snapshot(5, "c5"), None);
    assert_eq!(c.tables[0].status, TableStatus::RowsDiffer);
    assert!(!c.is_equal());
    let mut changed = snapshot(6, "c5");
    changed
        .measures
        .tables
        .values_mut()
        .for_each(|m| m.checksum = Some("other".into()));
    let c = compare(&snapshot(6, "c5"), &changed, None);
    assert_eq!(c.tables[0].status, TableStatus::ChecksumDiffers);
    assert_eq!(
        c.summary(),
        "core: DIFFERENT: 1 table with different contents (checksum)"
    );
}

#[test]
fn tables_on_one_side_are_named_with_the_side() {
    let mut right = snapshot(6, "c5");
    let extra = QualifiedName::new("My Schema", "select");
    right.catalog.tables.insert(
        extra.clone(),
        Table {
            kind: TableKind::Ordinary,
            columns: BTreeMap::new(),
            constraints: BTreeMap::new(),
        },
    );
    right.measures.tables.insert(
        extra,
        TableMeasure {
            rows: 3,
            checksum: None,
        },
    );
    let c = compare(&snapshot(6, "c5"), &right, None);
    let t = c.tables.iter().find(|t| t.table == "select").unwrap();
    assert_eq!(t.status, TableStatus::OnlyRight);
    assert_eq!((t.left_rows, t.right_rows), (None, Some(3)));
    assert_eq!(c.summary(), "core: DIFFERENT: 1 table only on local");
    let text = report::render_comparison(&c);
    assert!(text.contains("\"My Schema\".select"), "{text}");
    assert!(text.contains("only local"), "{text}");
}

#[test]
fn schema_differences_are_named_by_object_and_side() {
    let mut right = snapshot(6, "c5");
    let users = right
        .catalog
        .tables
        .get_mut(&QualifiedName::new("public", "users"))
        .unwrap();
    users.columns.get_mut("Order").unwrap().data_type = "bigint".into();
    users.columns.get_mut("email").unwrap().not_null = true;
    users.constraints.clear();
    right.catalog.extensions.insert(
        "vector".into(),
        Extension {
            version: "0.8.0".into(),
            schema: "public".into(),
        },
    );
    let c = compare(&snapshot(6, "c5"), &right, None);
    let lines: Vec<String> = c.schema_differences.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            "extension vector: only on local: version 0.8.0 in schema public",
            "column public.users.\"Order\": type integer (remote) vs bigint (local)",
            "column public.users.email: nullability nullable (remote) vs not null (local)",
            "constraint public.users.users_pkey: only on remote: PRIMARY KEY (id)",
        ]
    );
    assert_eq!(c.schema_differences[1].left.as_deref(), Some("integer"));
    assert_eq!(c.schema_differences[1].right.as_deref(), Some("bigint"));
    // Typed: which object, what of it, and both values; the text above is made from them.
    assert_eq!(
        c.schema_differences[1].object,
        SchemaObject::Column {
            table: QualifiedName::new("public", "users"),
            column: "Order".into(),
        }
    );
    assert_eq!(c.schema_differences[1].change, Change::Field(Field::Type));
    assert_eq!(c.schema_differences[0].change, Change::OnlyRight);
    assert_eq!(c.schema_differences[3].change, Change::OnlyLeft);
    assert_eq!(c.schema_differences[3].kind(), ObjectKind::Constraint);
    let json: serde_json::Value = serde_json::to_value(&c.schema_differences[1]).unwrap();
    assert_eq!(json["object"], "public.users.\"Order\"");
    assert_eq!(json["detail"], "type integer (remote) vs bigint (local)");
    // Counts still match: only the schema differs.
    assert!(c.tables.iter().all(|t| t.status == TableStatus::Ok));
    assert_eq!(c.summary(), "core: DIFFERENT: 4 schema differences");
}

#[test]
fn alembic_revisions_heads_and_notes() {
    // Different revisions: a finding.
    let c = compare(
        &snapshot(6, "c5"),
        &snapshot(6, "c4"),
        Some(&heads(&["c5"])),
    );
    assert_eq!(
        c.alembic.findings,
        ["revisions differ: c5 (remote) vs c4 (local)"]
    );
    assert_eq!(c.alembic.right.at_head, Some(false));
    assert!(c
        .notes
        .iter()
        .any(|n| n.starts_with("local is not at the head")));
    // Both at the same older revision: equal, with a note.
    let c = compare(
        &snapshot(6, "c4"),
        &snapshot(6, "c4"),
        Some(&heads(&["c5"])),
    );
    assert!(c.is_equal(), "{c:#?}");
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    // Two heads: a finding even when both sides agree.
    let c = compare(
        &snapshot(6, "c5"),
        &snapshot(6, "c5"),
        Some(&heads(&["c5", "c6"])),
    );
    assert!(!c.is_equal());
    assert!(c.alembic.findings[0].contains("alembic.ini has 2 heads (c5, c6)"));
    // A missing revision table is "none".
    let mut bare = snapshot(6, "c5");
    bare.catalog.alembic = None;
    let c = compare(&snapshot(6, "c5"), &bare, None);
    assert_eq!(
        c.alembic.findings,
        ["revisions differ: c5 (remote) vs none (local)"]
    );
    // Heads that could not be read: unknown, noted, not a difference.
    let broken = AlembicHeads {
        config: "alembic.ini".into(),
        heads: Vec::new(),
        error: Some("uv: not found".into()),
    };
    let c = compare(&snapshot(6, "c5"), &snapshot(6, "c5"), Some(&broken));
    assert!(c.is_equal());
    assert_eq!(c.alembic.left.at_head, None);
    assert!(c.notes[0].contains("uv: not found"), "{:?}", c.notes);
}

#[test]
fn json_report_has_one_object_per_database_and_table_and_no_password() {
    let c = compare(&snapshot(6, "c5"), &snapshot(5, "c5"), None);
    let report = Report::new(true, vec![DatabaseOutcome::compared(c)]);
    assert_eq!(report.status, ReportStatus::Differences);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["status"], "differences");
    assert_eq!(json["equal"], false);
    let db = &json["databases"][0];
    assert_eq!(db["database"], "core");
    assert_eq!(
        db["left"]["url"],
        "postgresql://postgres:****@db.example:5432/railway"
    );
    assert_eq!(db["tables"][0]["schema"], "public");
    assert_eq!(db["tables"][0]["table"], "users");
    assert_eq!(db["tables"][0]["status"], "rows_differ");
    assert_eq!(db["tables"][0]["left_rows"], 6);
    assert_eq!(db["tables"][0]["right_rows"], 5);
    assert!(db["summary"].as_str().unwrap().contains("DIFFERENT"));
    assert!(!report.to_json().contains("s3cret"));
    assert!(!report.render_human().contains("s3cret"));
}

#[test]
fn human_table_is_aligned() {
    let c = compare(&snapshot(6, "c5"), &snapshot(16, "c5"), None);
    let text = report::render_comparison(&c);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["Table", "Remote", "Local", "Checksum", "Status"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["public.users", "6", "16", "DIFF", "DIFF", "(+10)"]
    );
    // Counts are right-aligned under their headers.
    assert_eq!(
        lines[1].find("Local").unwrap() + "Local".len(),
        lines[2].find("16").unwrap() + 2
    );
}
