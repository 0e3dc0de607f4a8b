use super::*;

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
        pro.contains(r#"TRUNCATE TABLE "public"."portfolios", "public"."users";"#),
        "{pro}"
    );
    shaper.truncate_only([users].into());
    let pro = shaper.prologue();
    assert!(pro.contains(r#"TRUNCATE TABLE "public"."users";"#), "{pro}");
    shaper.truncate_only(BTreeSet::new());
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
    assert!(pro.contains(r#"TRUNCATE TABLE "public"."users";"#), "{pro}");
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
        r#"CREATE TEMPORARY TABLE "xtask_upsert_0" (LIKE "public"."users") ON COMMIT DROP;"#
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
