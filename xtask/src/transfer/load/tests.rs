use super::*;
use crate::config::timeouts::LOCK_TIMEOUT;
use std::time::Duration;

fn schema() -> TargetSchema {
    let users = QualifiedName::new("public", "users");
    let portfolios = QualifiedName::new("public", "portfolios");
    TargetSchema {
        foreign_keys: vec![
            ForeignKeyDef {
                table: portfolios.clone(),
                name: "portfolios_user_id_fkey".into(),
                parent: users.clone(),
                definition: "FOREIGN KEY (user_id) REFERENCES public.users(id)".into(),
            },
            ForeignKeyDef {
                table: QualifiedName::new("public", "other"),
                name: "unrelated".into(),
                parent: QualifiedName::new("public", "elsewhere"),
                definition: "FOREIGN KEY (x) REFERENCES public.elsewhere(id)".into(),
            },
        ],
        triggers: vec![TriggerDef {
            table: users.clone(),
            name: "Touch \"it\"".into(),
            enabled: 'A',
        }],
        indexes: vec![IndexDef {
            table: users.clone(),
            name: QualifiedName::new("public", "Users By Name"),
            definition: r#"CREATE INDEX "Users By Name" ON public.users USING btree (name)"#.into(),
        }],
        primary_keys: [(users.clone(), vec!["id".to_string()])].into(),
        sequences: vec![],
        tables: [users.clone(), portfolios.clone()].into(),
        ..TargetSchema::default()
    }
}

#[test]
fn replace_truncates_only_the_tables_known_to_hold_rows() {
    let users = QualifiedName::new("public", "users");
    let portfolios = QualifiedName::new("public", "portfolios");
    let both: BTreeSet<QualifiedName> = [users.clone(), portfolios.clone()].into();
    let mut shaper = LoadShaper::new(LoadMode::Replace, both, schema()).unwrap();
    let pro = shaper.prologue();
    assert!(
        pro.contains(r#"TRUNCATE TABLE ONLY "public"."portfolios", ONLY "public"."users";"#),
        "{pro}"
    );
    shaper.truncate_just_these([users].into());
    let pro = shaper.prologue();
    assert!(
        pro.contains(r#"TRUNCATE TABLE ONLY "public"."users";"#),
        "{pro}"
    );
    shaper.truncate_just_these(BTreeSet::new());
    assert!(!shaper.prologue().contains("TRUNCATE"));
}

#[test]
fn replace_drops_and_readds_the_touching_foreign_keys_only() {
    let users = QualifiedName::new("public", "users");
    let mut shaper = LoadShaper::new(LoadMode::Replace, [users].into(), schema()).unwrap();
    let pro = shaper.prologue();
    assert!(pro.contains(
        r#"ALTER TABLE "public"."portfolios" DROP CONSTRAINT "portfolios_user_id_fkey";"#
    ));
    assert!(!pro.contains("unrelated"), "{pro}");
    assert!(pro.contains(r#"DISABLE TRIGGER "Touch ""it""";"#), "{pro}");
    assert!(
        pro.contains(r#"TRUNCATE TABLE ONLY "public"."users";"#),
        "{pro}"
    );
    let epi = shaper.epilogue(&[]);
    assert!(epi.contains(
        r#"ADD CONSTRAINT "portfolios_user_id_fkey" FOREIGN KEY (user_id) REFERENCES public.users(id);"#
    ));
    assert!(
        epi.contains(r#"ENABLE ALWAYS TRIGGER "Touch ""it""";"#),
        "{epi}"
    );
}

#[test]
fn upsert_loads_through_a_temporary_table_and_merges_by_primary_key() {
    let users = QualifiedName::new("public", "users");
    let mut shaper = LoadShaper::new(LoadMode::Upsert, [users.clone()].into(), schema()).unwrap();
    assert!(shaper.prologue().contains(
        r#"CREATE TEMPORARY TABLE "xtask_upsert_0" (LIKE "public"."users" INCLUDING GENERATED) ON COMMIT DROP;"#
    ));
    let header = CopyHeader {
        table: users.clone(),
        columns: vec!["id".into(), "Full Name".into()],
    };
    assert_eq!(
        shaper.copy_header(&header, "ignored"),
        r#"COPY pg_temp."xtask_upsert_0" ("id", "Full Name") FROM stdin;"#
    );
    assert!(!shaper.keep_line("SELECT pg_catalog.setval('public.s', 3, true);"));
    let epi = shaper.epilogue(&[TableProgress {
        header,
        rows: 1,
        bytes: 1,
        done: true,
    }]);
    assert!(
        epi.contains(r#"ON CONFLICT ("id") DO UPDATE SET "Full Name" = EXCLUDED."Full Name";"#),
        "{epi}"
    );
}

#[test]
fn secondary_indexes_are_rebuilt_only_when_asked() {
    let users = QualifiedName::new("public", "users");
    let mut plain = LoadShaper::new(LoadMode::Replace, [users.clone()].into(), schema()).unwrap();
    assert!(!plain.prologue().contains("DROP INDEX"));
    assert!(plain.index_builds().is_empty());

    let mut staging = LoadShaper::new(LoadMode::Replace, [users].into(), schema()).unwrap();
    staging.rebuild_indexes();
    let pro = staging.prologue();
    assert!(
        pro.contains(r#"DROP INDEX "public"."Users By Name";"#),
        "{pro}"
    );
    // Built after the data and before the foreign keys are checked.
    let epi = staging.epilogue(&[]);
    let build = epi.find("CREATE INDEX").expect(&epi);
    let fk = epi.find("ADD CONSTRAINT").expect(&epi);
    assert!(build < fk, "{epi}");
}

#[test]
fn upsert_without_a_primary_key_is_refused_naming_the_table() {
    let err = LoadShaper::new(
        LoadMode::Upsert,
        [QualifiedName::new("public", "portfolios")].into(),
        schema(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("public.portfolios"), "{err}");
    assert!(err.contains("--mode replace"), "{err}");
}

#[test]
fn a_bounded_load_sets_its_lock_timeout_first_and_again_after_the_stream() {
    let users = QualifiedName::new("public", "users");
    let mut shaper = LoadShaper::new(LoadMode::Replace, [users].into(), schema()).unwrap();
    shaper.bound_lock_waits(Some(Duration::from_secs(2)));
    let prologue = shaper.prologue();
    assert!(
        prologue.starts_with("SET LOCAL lock_timeout = '2000ms';\n"),
        "{prologue}"
    );
    assert!(prologue.contains("TRUNCATE"), "{prologue}");
    let epilogue = shaper.epilogue(&[]);
    assert!(
        epilogue.starts_with("SET LOCAL lock_timeout = '2000ms';\n"),
        "{epilogue}"
    );
    // `0` is no limit: the server's default (wait) is said explicitly, over pg_dump's.
    shaper.bound_lock_waits(None);
    assert!(shaper
        .prologue()
        .starts_with("SET LOCAL lock_timeout = '0ms';\n"));
    // The loaded table and the table its foreign keys join it to.
    assert_eq!(
        shaper.locked_tables(),
        [
            QualifiedName::new("public", "portfolios"),
            QualifiedName::new("public", "users")
        ]
        .into()
    );
}

#[test]
fn lock_timeout_takes_seconds_or_postgres_units() {
    assert_eq!(LOCK_TIMEOUT.parse("30"), Ok(Some(Duration::from_secs(30))));
    assert_eq!(LOCK_TIMEOUT.parse(" 2s "), Ok(Some(Duration::from_secs(2))));
    assert_eq!(
        LOCK_TIMEOUT.parse("500ms"),
        Ok(Some(Duration::from_millis(500)))
    );
    assert_eq!(
        LOCK_TIMEOUT.parse("2min"),
        Ok(Some(Duration::from_secs(120)))
    );
    assert_eq!(LOCK_TIMEOUT.parse("0"), Ok(None));
    for bad in ["", "soon", "2 weeks", "-1", "1.5s", "30d"] {
        let err = LOCK_TIMEOUT.parse(bad).unwrap_err();
        assert!(err.contains("XTASK_LOCK_TIMEOUT"), "{bad}: {err}");
        assert!(err.contains("500ms"), "{bad}: {err}");
    }
}

#[test]
fn only_transaction_timeout_is_dropped_and_only_before_17() {
    let users = QualifiedName::new("public", "users");
    let lines = [
        "SET statement_timeout = 0;",
        "SET lock_timeout = 0;",
        "SET transaction_timeout = 0;",
        "SET client_encoding = 'UTF8';",
        "SELECT pg_catalog.setval('public.users_id_seq', 6, true);",
    ];
    let mut shaper = LoadShaper::new(LoadMode::Replace, [users.clone()].into(), schema()).unwrap();
    let server = |num| crate::pg::version::ToolVersion::from_server_version_num(num).unwrap();
    for version in [170000, 170006, 180001] {
        shaper.target_version(server(version));
        assert!(lines.iter().all(|l| shaper.keep_line(l)), "{version}");
    }
    for version in [150004, 160009] {
        shaper.target_version(server(version));
        let kept: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| shaper.keep_line(l))
            .collect();
        assert_eq!(kept.len(), lines.len() - 1, "{version}");
        assert!(!kept.contains(&"SET transaction_timeout = 0;"), "{version}");
    }
}

#[test]
fn the_epilogue_ends_with_the_sequences_then_the_refreshes_after_the_checks() {
    use crate::transfer::finish::{Finish, SequenceValue};
    let users = QualifiedName::new("public", "users");
    let mut shaper = LoadShaper::new(LoadMode::Replace, [users.clone()].into(), schema()).unwrap();
    shaper.expect_rows([(users, 3)].into());
    shaper.finish_with(Finish {
        sequences: vec![
            SequenceValue {
                sequence: QualifiedName::new("public", "invoice_no"),
                last_value: 1000,
                is_called: true,
            },
            SequenceValue {
                sequence: QualifiedName::new("billing", "it's"),
                last_value: 5,
                is_called: false,
            },
        ],
        refresh: vec![
            QualifiedName::new("public", "totals"),
            QualifiedName::new("public", "totals by day"),
        ],
    });
    let epilogue = shaper.epilogue(&[]);
    let setval =
        r#"SELECT pg_catalog.setval('"public"."invoice_no"'::pg_catalog.regclass, 1000, true);"#;
    let quoted = r#"SELECT pg_catalog.setval('"billing"."it''s"'::pg_catalog.regclass, 5, false);"#;
    let first = r#"REFRESH MATERIALIZED VIEW "public"."totals";"#;
    let second = r#"REFRESH MATERIALIZED VIEW "public"."totals by day";"#;
    let at = |s: &str| {
        epilogue
            .find(s)
            .unwrap_or_else(|| panic!("{s} in {epilogue}"))
    };
    // After the row counts and the triggers, in the order given; a parallel load ends the same.
    assert!(at("must hold exactly 3 rows") < at(setval), "{epilogue}");
    assert!(at("ENABLE ALWAYS TRIGGER") < at(setval), "{epilogue}");
    assert!(at(setval) < at(quoted) && at(quoted) < at(first) && at(first) < at(second));
    assert!(epilogue.ends_with(&format!("{second}\n")), "{epilogue}");
    assert!(shaper.constraints().ends_with(&format!("{second}\n")));
}

#[test]
fn a_materialized_view_is_refreshed_after_those_it_reads_even_through_a_view() {
    use crate::transfer::finish::{refresh_order, ViewNode};
    let q = |n: &str| QualifiedName::new("public", n);
    let node = |materialized: bool, reads: &[&str]| ViewNode {
        materialized,
        reads: reads.iter().map(|r| q(r)).collect(),
    };
    // a_top reads the view b_view, which reads the matview z_base; m_mid reads z_base directly.
    let views = [
        (q("a_top"), node(true, &["b_view", "m_mid"])),
        (q("b_view"), node(false, &["z_base"])),
        (q("m_mid"), node(true, &["z_base"])),
        (q("z_base"), node(true, &[])),
        (q("lonely"), node(true, &[])),
    ]
    .into();
    let all = [q("a_top"), q("m_mid"), q("z_base"), q("lonely")].into();
    assert_eq!(
        refresh_order(&views, &all),
        vec![q("lonely"), q("z_base"), q("m_mid"), q("a_top")]
    );
    // Only the wanted ones (populated on the source), still in order; plain views never.
    let some = [q("a_top"), q("z_base"), q("b_view")].into();
    assert_eq!(refresh_order(&views, &some), vec![q("z_base"), q("a_top")]);
}
