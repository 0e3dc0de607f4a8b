//! `cargo xtask db-verify` against real PostgreSQL 17 + pgvector servers: equality on identical
//! data, each kind of difference detected and named (views, functions, triggers, enum labels,
//! domains, policies and sequences too), physical column order, checksums, awkward
//! identifiers, the JSON report, and exit codes 0 / 3 / 1 / 2. One container per test, several
//! databases in it; databases are copied with `CREATE DATABASE ... TEMPLATE` (instant) rather
//! than seeded again.

mod support;

use std::time::Instant;

use support::{query, query_one, run_xtask, PgContainer, Run};

/// `db-verify --core-only` of two databases of the container: remote = `remote`, local = `local`.
fn verify_core(pg: &PgContainer, remote: &str, local: &str, extra: &[&str]) -> Run {
    let (r, l) = (pg.url(remote), pg.url(local));
    let mut args = vec![
        "db-verify",
        "--core-only",
        "--remote-url",
        &r,
        "--local-url",
        &l,
    ];
    args.extend_from_slice(extra);
    run_xtask(&args, &[])
}

/// Both databases (Core and AI) of each side.
fn verify_both(pg: &PgContainer, remote: (&str, &str), local: (&str, &str), extra: &[&str]) -> Run {
    let urls = [
        pg.url(remote.0),
        pg.url(remote.1),
        pg.url(local.0),
        pg.url(local.1),
    ];
    let mut args = vec![
        "db-verify",
        "--remote-url",
        &urls[0],
        "--remote-ai-url",
        &urls[1],
        "--local-url",
        &urls[2],
        "--local-ai-url",
        &urls[3],
    ];
    args.extend_from_slice(extra);
    run_xtask(&args, &[])
}

fn seed(pg: &PgContainer, core: &str, ai: Option<&str>) {
    let core = pg.url(core);
    let ai = ai.map(|a| pg.url(a));
    let mut env = vec![("DATABASE_URL", core.as_str())];
    let mut args = vec!["seed", "--scale", "1"];
    match &ai {
        Some(ai) => env.push(("AI_DATABASE_URL", ai.as_str())),
        None => args.push("--core-only"),
    }
    let run = run_xtask(&args, &env);
    assert_eq!(run.code, 0, "{}", run.all());
}

/// A copy of `template` named `name` (nobody may be connected to the template meanwhile).
fn clone_db(pg: &PgContainer, template: &str, name: &str) {
    query(
        &pg.url("postgres"),
        &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
    );
}

fn create_db(pg: &PgContainer, name: &str) {
    query(&pg.url("postgres"), &format!("CREATE DATABASE \"{name}\""));
}

/// The line of the human table for a table, whitespace collapsed: `public.users 6 6 ok`.
fn table_line(out: &str, table: &str) -> String {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|l| l.starts_with(&format!("{table} ")))
        .unwrap_or_else(|| panic!("no line for {table} in\n{out}"))
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json must print one JSON document ({e}):\n{}", run.stdout))
}

#[test]
fn seeded_databases_are_equal_in_both_configs_with_and_without_checksums() {
    require_docker!();
    let pg = PgContainer::start();
    // Two independent seeds (the seed is deterministic): nothing shared but the data's shape.
    std::thread::scope(|s| {
        s.spawn(|| seed(&pg, "a_core", Some("a_ai")));
        s.spawn(|| seed(&pg, "b_core", Some("b_ai")));
    });
    let (remote, local) = (("a_core", "a_ai"), ("b_core", "b_ai"));

    let started = Instant::now();
    let run = verify_both(&pg, remote, local, &[]);
    let plain = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("Table"), "{}", run.stdout);
    for header in ["Remote", "Local", "Status"] {
        assert!(run.stdout.contains(header), "{}", run.stdout);
    }
    assert_eq!(
        table_line(&run.stdout, "public.market_data_cache"),
        "public.market_data_cache 193488 193488 ok"
    );
    assert_eq!(
        table_line(&run.stdout, "public.users"),
        "public.users 6 6 ok"
    );
    assert_eq!(
        table_line(&run.stdout, "public.ai_kb_documents"),
        "public.ai_kb_documents 500 500 ok"
    );
    assert!(
        run.stdout.contains(
            "Alembic (alembic.ini, head c0005_correlations): remote c0005_correlations (at head), \
             local c0005_correlations (at head): ok"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "remote a0002_memories_feedback (at head), local a0002_memories_feedback (at head): ok"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("db-verify: core: equal (16 tables"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ai: equal (4 tables"), "{}", run.stdout);

    let started = Instant::now();
    let run = verify_both(&pg, remote, local, &["--checksums"]);
    let with_checksums = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "public.market_data_cache"),
        "public.market_data_cache 193488 193488 match ok"
    );
    assert!(run.stdout.contains("checksums match"), "{}", run.stdout);
    eprintln!(
        "db-verify of Core + AI at scale 1: {:.2}s, with --checksums {:.2}s",
        plain.as_secs_f64(),
        with_checksums.as_secs_f64()
    );

    // --json: one document, one object per database and one per table (as many as the server
    // lists), with the counts and checksums.
    let run = verify_both(&pg, remote, local, &["--json", "--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report = json(&run);
    assert_eq!(report["status"], "equal");
    assert_eq!(report["equal"], true);
    let databases = report["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 2);
    for (db, name, remote_db) in [
        (&databases[0], "core", "a_core"),
        (&databases[1], "ai", "a_ai"),
    ] {
        assert_eq!(db["database"], name);
        assert_eq!(db["equal"], true);
        assert_eq!(db["left"]["side"], "remote");
        assert_eq!(db["right"]["side"], "local");
        assert!(db["left"]["url"].as_str().unwrap().contains(":****@"));
        let tables = db["tables"].as_array().unwrap();
        let expected = query_one(
            &pg.url(remote_db),
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        );
        assert_eq!(tables.len().to_string(), expected, "{name}: {tables:?}");
        for t in tables {
            assert_eq!(t["status"], "ok", "{t}");
            assert_eq!(t["left_rows"], t["right_rows"], "{t}");
            assert!(t["left_checksum"].is_string(), "{t}");
            assert_eq!(t["left_checksum"], t["right_checksum"], "{t}");
        }
        assert!(db["schema_differences"].as_array().unwrap().is_empty());
        assert!(db["orphans"].as_array().unwrap().is_empty());
        assert!(db["sequences"].as_array().unwrap().is_empty());
    }
    let users = databases[0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "users")
        .unwrap();
    assert_eq!(users["schema"], "public");
    assert_eq!(users["left_rows"], 6);

    // The AI database is compared too (the runbooks forgot it): one missing row there.
    query(
        &pg.url("b_ai"),
        "DELETE FROM ai_feedback WHERE id = (SELECT min(id::text)::uuid FROM ai_feedback)",
    );
    let run = verify_both(&pg, remote, local, &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "public.ai_feedback"),
        "public.ai_feedback 50 49 DIFF (-1)"
    );
    assert!(run.stdout.contains("=> core: equal"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("ai: DIFFERENT: 1 table with different row counts"),
        "{}",
        run.stderr
    );
}

#[test]
fn each_kind_of_difference_is_detected_and_named() {
    require_docker!();
    let pg = PgContainer::start();
    seed(&pg, "base", None);

    // (database, SQL that makes it differ from base, lines the report must hold, summary)
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "missing_row",
            "DELETE FROM position_tags WHERE ctid = (SELECT min(ctid) FROM position_tags)",
            &["public.position_tags 49 48 DIFF (-1)"],
            "1 table with different row counts",
        ),
        (
            "one_sided_tables",
            "CREATE TABLE public.extra_table (id int); INSERT INTO extra_table VALUES (1), (2);
             DROP TABLE position_greeks",
            &[
                "public.extra_table - 2 only local",
                "public.position_greeks 28 - only remote",
            ],
            "1 table only on remote, 1 table only on local",
        ),
        (
            "alembic_revision",
            "UPDATE alembic_version SET version_num = 'c0004_risk_analytics'",
            &[
                "remote c0005_correlations (at head), local c0004_risk_analytics (not at head): DIFF",
                "revisions differ: c0005_correlations (remote) vs c0004_risk_analytics (local)",
            ],
            "1 Alembic finding",
        ),
        (
            "column_type",
            "ALTER TABLE positions ALTER COLUMN notes TYPE varchar",
            &["column public.positions.notes: type text (remote) vs character varying (local)"],
            "1 schema difference",
        ),
        (
            "column_nullability",
            "ALTER TABLE users ALTER COLUMN is_active DROP NOT NULL",
            &["column public.users.is_active: nullability not null (remote) vs nullable (local)"],
            "1 schema difference",
        ),
        (
            "column_default",
            "ALTER TABLE portfolios ALTER COLUMN currency SET DEFAULT 'EUR'",
            &["column public.portfolios.currency: default 'USD'::bpchar (remote) vs 'EUR'::bpchar (local)"],
            "1 schema difference",
        ),
        (
            "missing_index",
            "DROP INDEX ix_positions_symbol",
            &["index public.ix_positions_symbol: only on remote: CREATE INDEX ix_positions_symbol ON public.positions USING btree (symbol)"],
            "1 schema difference",
        ),
        (
            "missing_constraint",
            "ALTER TABLE positions DROP CONSTRAINT ck_positions_position_type",
            &["constraint public.positions.ck_positions_position_type: only on remote: CHECK (((position_type)::text = ANY"],
            "1 schema difference",
        ),
        (
            "different_constraint",
            "ALTER TABLE positions DROP CONSTRAINT fk_positions_portfolio_id,
             ADD CONSTRAINT fk_positions_portfolio_id FOREIGN KEY (portfolio_id)
                 REFERENCES portfolios(id) ON DELETE RESTRICT",
            &["constraint public.positions.fk_positions_portfolio_id: definition FOREIGN KEY (portfolio_id) REFERENCES public.portfolios(id) ON DELETE CASCADE (remote) vs FOREIGN KEY (portfolio_id) REFERENCES public.portfolios(id) ON DELETE RESTRICT (local)"],
            "1 schema difference",
        ),
        (
            "missing_unique_constraint",
            "ALTER TABLE users DROP CONSTRAINT uq_users_email",
            &[
                "constraint public.users.uq_users_email: only on remote: UNIQUE (email)",
                "index public.uq_users_email: only on remote: CREATE UNIQUE INDEX uq_users_email ON public.users USING btree (email)",
            ],
            "2 schema differences",
        ),
        (
            "extension",
            "CREATE EXTENSION citext",
            &["extension citext: only on local: version 1.6 in schema public"],
            "1 schema difference",
        ),
        (
            "orphan",
            // The runbook's lost-parent case: a row whose parent never arrived.
            "SET session_replication_role = replica;
             INSERT INTO position_tags (position_id, tag_id)
                 SELECT gen_random_uuid(), id FROM tags ORDER BY id LIMIT 1;
             SET session_replication_role = DEFAULT",
            &[
                "public.position_tags 49 50 DIFF (+1)",
                "orphans on local: 1 row(s) of public.position_tags (position_id) have no parent in public.positions (id) [foreign key fk_position_tags_position_id]",
            ],
            "1 table with different row counts, 1 foreign key with orphans on local",
        ),
        (
            "sequence_behind",
            "SELECT setval(pg_get_serial_sequence('market_data_cache', 'id'), 5)",
            &["sequence public.market_data_cache_id_seq on local: next value 6 but public.market_data_cache.id already reaches 193488 (its max): the next insert would collide"],
            "1 sequence behind its column on local",
        ),
    ];
    for (name, _, _, _) in cases {
        clone_db(&pg, "base", name);
    }
    for (name, sql, _, _) in cases {
        query(&pg.url(name), sql);
    }
    // Orphans on both sides, data otherwise equal: still a difference.
    clone_db(&pg, "orphan", "orphan_copy");

    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(name, _, _, _)| {
                let pg = &pg;
                s.spawn(move || verify_core(pg, "base", name, &[]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((name, _, lines, summary), run) in cases.iter().zip(&runs) {
        assert_eq!(run.code, 3, "{name}: {}", run.all());
        let out: String = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        for line in *lines {
            assert!(
                out.contains(line),
                "{name}: missing {line:?} in\n{}",
                run.stdout
            );
        }
        // Only this difference: the summary names it and nothing else.
        assert!(
            run.stderr
                .contains(&format!("error: db-verify: core: DIFFERENT: {summary}\n")),
            "{name}: expected summary {summary:?} in\n{}",
            run.stderr
        );
    }

    let run = verify_core(&pg, "orphan", "orphan_copy", &["--checksums"]);
    assert_eq!(run.code, 3, "{}", run.all());
    for side in ["remote", "local"] {
        assert!(
            run.stdout.contains(&format!(
                "orphans on {side}: 1 row(s) of public.position_tags"
            )),
            "{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("Schema: same"), "{}", run.stdout);
    assert_eq!(
        table_line(&run.stdout, "public.position_tags"),
        "public.position_tags 50 50 match ok"
    );
    assert!(
        run.stderr.contains(
            "DIFFERENT: 1 foreign key with orphans on remote, 1 foreign key with orphans on local\n"
        ),
        "{}",
        run.stderr
    );

    // The JSON report names the same differences.
    let run = verify_core(&pg, "base", "column_type", &["--json"]);
    assert_eq!(run.code, 3, "{}", run.all());
    let report = json(&run);
    assert_eq!(report["status"], "differences");
    let diff = &report["databases"][0]["schema_differences"][0];
    assert_eq!(diff["kind"], "column");
    assert_eq!(diff["object"], "public.positions.notes");
    assert_eq!(diff["left"], "text");
    assert_eq!(diff["right"], "character varying");
    let run = verify_core(&pg, "base", "sequence_behind", &["--json"]);
    let seq = &json(&run)["databases"][0]["sequences"][0];
    assert_eq!(seq["sequence"], "market_data_cache_id_seq");
    assert_eq!(seq["side"], "local");
    assert_eq!(seq["next_value"], 6);
    assert_eq!(seq["column_max"], 193488);
}

/// The same tables on both sides with the columns declared in another order, and names that
/// need quoting everywhere: a schema with a space and capitals, a reserved word, a quote and a
/// dot in a table name, capitalised columns.
const AWKWARD_A: &str = r#"
CREATE EXTENSION vector;
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."select" (
    id serial PRIMARY KEY,
    "Order" integer NOT NULL CHECK ("Order" >= 0),
    "Name With Space" text,
    amount numeric,
    CONSTRAINT "Unique Order" UNIQUE ("Order")
);
CREATE TABLE "My Schema"."we""ird.name" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Order" integer REFERENCES "My Schema"."select" (id),
    payload jsonb,
    at timestamptz,
    ratio double precision,
    tags text[],
    raw bytea,
    embedding vector(3)
);
CREATE INDEX "Idx ""quoted""" ON "My Schema"."we""ird.name" ("Order", at);
CREATE TABLE public.reordered (a integer, b text, c numeric(10, 2), d date);
"#;

const AWKWARD_B: &str = r#"
CREATE EXTENSION vector;
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."select" (
    amount numeric,
    "Name With Space" text,
    "Order" integer NOT NULL CHECK ("Order" >= 0),
    id serial PRIMARY KEY,
    CONSTRAINT "Unique Order" UNIQUE ("Order")
);
CREATE TABLE "My Schema"."we""ird.name" (
    embedding vector(3),
    raw bytea,
    tags text[],
    ratio double precision,
    at timestamptz,
    payload jsonb,
    "Order" integer REFERENCES "My Schema"."select" (id),
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
CREATE INDEX "Idx ""quoted""" ON "My Schema"."we""ird.name" ("Order", at);
CREATE TABLE public.reordered (d date, c numeric(10, 2), b text, a integer);
"#;

/// The same rows for both layouts (columns named, so physical order does not matter), inserted
/// in another order on each side.
fn awkward_rows(order: &str) -> String {
    format!(
        r#"
INSERT INTO "My Schema"."select" (id, "Order", "Name With Space", amount)
    SELECT g, g * 10, CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\there "quoted" ''single'' \\ ' || g END,
           CASE WHEN g % 2 = 0 THEN 1.50 ELSE g / 3.0 END
    FROM generate_series(1, 300) g ORDER BY g {order};
SELECT setval(pg_get_serial_sequence('"My Schema"."select"', 'id'), 300);
INSERT INTO "My Schema"."we""ird.name" (id, "Order", payload, at, ratio, tags, raw, embedding)
    OVERRIDING SYSTEM VALUE
    SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE g % 300 + 1 END,
           jsonb_build_object('n', g, 'nested', jsonb_build_object('x', g * 0.1)),
           timestamptz '2024-03-10 01:30:00+00' + g * interval '37 minutes',
           g / 7.0::float8, ARRAY['a', NULL, 'c,d', E'q"u'], decode(md5(g::text), 'hex'),
           ('[' || g || ',0.5,' || (g / 3.0)::float4 || ']')::vector
    FROM generate_series(1, 500) g ORDER BY g {order};
SELECT setval(pg_get_serial_sequence('"My Schema"."we""ird.name"', 'id'), 500);
INSERT INTO public.reordered (a, b, c, d)
    SELECT g, 'row ' || g, g * 1.25, date '2024-01-01' + g FROM generate_series(1, 200) g ORDER BY g {order};
"#
    )
}

#[test]
fn column_order_checksums_and_awkward_identifiers() {
    require_docker!();
    let pg = PgContainer::start();
    create_db(&pg, "layout_a");
    create_db(&pg, "layout_b");
    query(
        &pg.url("layout_a"),
        &format!("{AWKWARD_A}{}", awkward_rows("ASC")),
    );
    query(
        &pg.url("layout_b"),
        &format!("{AWKWARD_B}{}", awkward_rows("DESC")),
    );
    // The physical column order really differs.
    let first_column = |db: &str| {
        query_one(
            &pg.url(db),
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.reordered'::regclass AND attnum = 1",
        )
    };
    assert_eq!(first_column("layout_a"), "a");
    assert_eq!(first_column("layout_b"), "d");

    // Equal data in another physical column order (and row order) is equal, with and without
    // checksums.
    for extra in [&[][..], &["--checksums"][..]] {
        let run = verify_core(&pg, "layout_a", "layout_b", extra);
        assert_eq!(run.code, 0, "{extra:?}: {}", run.all());
        assert!(run.stdout.contains("Schema: same"), "{}", run.stdout);
        let ok = if extra.is_empty() { "ok" } else { "match ok" };
        assert_eq!(
            table_line(&run.stdout, "\"My Schema\".select"),
            format!("\"My Schema\".select 300 300 {ok}")
        );
        assert_eq!(
            table_line(&run.stdout, "\"My Schema\".\"we\"\"ird.name\""),
            format!("\"My Schema\".\"we\"\"ird.name\" 500 500 {ok}")
        );
        assert_eq!(
            table_line(&run.stdout, "public.reordered"),
            format!("public.reordered 200 200 {ok}")
        );
        // No alembic_version on either side: "none" on both is the same.
        assert!(run.stdout.contains("remote none"), "{}", run.stdout);
    }
    let run = verify_core(&pg, "layout_a", "layout_b", &["--json", "--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report = json(&run);
    let weird = report["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["schema"] == "My Schema" && t["table"] == "we\"ird.name")
        .unwrap_or_else(|| panic!("{}", run.stdout))
        .clone();
    assert_eq!(weird["left_rows"], 500);
    assert_eq!(weird["left_checksum"], weird["right_checksum"]);

    // A changed value with equal counts: invisible to counts, caught by checksums, and the
    // table is named.
    query(
        &pg.url("layout_b"),
        r#"UPDATE "My Schema"."we""ird.name" SET payload = payload || '{"n": -1}' WHERE id = 250"#,
    );
    let run = verify_core(&pg, "layout_a", "layout_b", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = verify_core(&pg, "layout_a", "layout_b", &["--checksums"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "\"My Schema\".\"we\"\"ird.name\""),
        "\"My Schema\".\"we\"\"ird.name\" 500 500 DIFF DIFF (contents)"
    );
    assert_eq!(
        table_line(&run.stdout, "\"My Schema\".select"),
        "\"My Schema\".select 300 300 match ok"
    );
    assert!(
        run.stderr
            .contains("core: DIFFERENT: 1 table with different contents (checksum)\n"),
        "{}",
        run.stderr
    );
    // Same count, same values but one numeric written with another scale: a changed value too.
    query(
        &pg.url("layout_b"),
        r#"UPDATE "My Schema"."we""ird.name" SET payload = payload || '{"n": 250}' WHERE id = 250;
           UPDATE "My Schema"."select" SET amount = 1.5 WHERE id = 2"#,
    );
    let run = verify_core(&pg, "layout_a", "layout_b", &["--checksums"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "\"My Schema\".\"we\"\"ird.name\""),
        "\"My Schema\".\"we\"\"ird.name\" 500 500 match ok"
    );
    assert_eq!(
        table_line(&run.stdout, "\"My Schema\".select"),
        "\"My Schema\".select 300 300 DIFF DIFF (contents)"
    );
    query(
        &pg.url("layout_b"),
        r#"UPDATE "My Schema"."select" SET amount = 1.50 WHERE id = 2"#,
    );
    let run = verify_core(&pg, "layout_a", "layout_b", &["--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());

    // Orphans, sequences and schema differences under awkward names.
    query(
        &pg.url("layout_b"),
        r#"SET session_replication_role = replica;
           UPDATE "My Schema"."we""ird.name" SET "Order" = 100000 WHERE id IN (1, 2);
           SET session_replication_role = DEFAULT;
           SELECT setval(pg_get_serial_sequence('"My Schema"."select"', 'id'), 7);
           ALTER TABLE "My Schema"."select" ALTER COLUMN "Order" TYPE bigint;
           DROP INDEX "My Schema"."Idx ""quoted""";
           ALTER TABLE "My Schema"."select" DROP CONSTRAINT "Unique Order""#,
    );
    let run = verify_core(&pg, "layout_a", "layout_b", &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    for line in [
        r#"orphans on local: 2 row(s) of "My Schema"."we""ird.name" ("Order") have no parent in "My Schema".select (id)"#,
        r#"sequence "My Schema".select_id_seq on local: next value 8 but "My Schema".select.id already reaches 300 (its max)"#,
        r#"column "My Schema".select."Order": type integer (remote) vs bigint (local)"#,
        r#"index "My Schema"."Idx ""quoted""": only on remote: CREATE INDEX "Idx ""quoted""" ON "My Schema"."we""ird.name" USING btree ("Order", at)"#,
        r#"constraint "My Schema".select."Unique Order": only on remote: UNIQUE ("Order")"#,
        r#"index "My Schema"."Unique Order": only on remote"#,
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn exit_1_names_why_it_could_not_compare_and_2_for_a_missing_url() {
    require_docker!();
    let pg = PgContainer::start();
    create_db(&pg, "present");
    let present = pg.url("present");
    let closed = support::url(support::free_port(), "present");
    let wrong_password = format!(
        "postgresql://{}:Wr0ngPassw0rd@127.0.0.1:{}/present",
        support::USER,
        pg.port
    );
    let missing = pg.url("no_such_database");
    for (remote, reason, kind) in [
        (
            &closed,
            "cannot reach postgresql://sigmasight:****@127.0.0.1:",
            "unreachable",
        ),
        (&wrong_password, "authentication failed", "authentication"),
        (&missing, "the database does not exist", "missing_database"),
    ] {
        let args = [
            "db-verify",
            "--core-only",
            "--remote-url",
            remote.as_str(),
            "--local-url",
            present.as_str(),
        ];
        let run = run_xtask(&args, &[]);
        assert_eq!(run.code, 1, "{kind}: {}", run.all());
        assert!(
            run.stderr
                .contains("db-verify could not compare core: remote: ")
                && run.stderr.contains(reason),
            "{kind}: {}",
            run.stderr
        );
        assert!(!run.all().contains("Wr0ngPassw0rd"), "{}", run.all());

        let mut json_args = args.to_vec();
        json_args.push("--json");
        let run = run_xtask(&json_args, &[]);
        assert_eq!(run.code, 1, "{}", run.all());
        let report = json(&run);
        assert_eq!(report["status"], "error");
        assert_eq!(report["databases"][0]["error"]["kind"], kind);
        assert!(!run.all().contains("Wr0ngPassw0rd"), "{}", run.all());
    }

    // Comparing with itself: equal (exit 0); a URL that is not set: usage error (exit 2).
    let run = verify_core(&pg, "present", "present", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = run_xtask(&["db-verify", "--core-only", "--local-url", &present], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("--remote-url") && run.stderr.contains("RAILWAY_DB_URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_password_given_as_url_parameter_connects_and_never_shows() {
    require_docker!();
    let pg = PgContainer::start();
    create_db(&pg, "present");
    // The password only in `?password=` (libpq's other place for it), percent-encoded.
    let url = format!(
        "postgresql://{}@127.0.0.1:{}/present?password={}",
        support::USER,
        pg.port,
        support::PASSWORD_ENCODED
    );
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec![
            "db-verify",
            "--core-only",
            "--remote-url",
            &url,
            "--local-url",
            &url,
        ];
        args.extend_from_slice(extra);
        // run_xtask fails the test if the password, plain or encoded, is in stdout or stderr.
        let run = run_xtask(&args, &[]);
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(!run.all().contains("password="), "{}", run.all());
    }
}

#[test]
fn a_postgresql_15_side_compares_with_a_17_side() {
    require_docker!();
    // Remote on the host's PostgreSQL 15, local on the 17 container: the catalog queries and the
    // checksums work on both, and the same seed is equal across the versions.
    let cluster = support::HostCluster::start();
    let pg = PgContainer::start();
    let (old, new) = (cluster.url("sigmasight_db"), pg.url("sigmasight_db"));
    std::thread::scope(|s| {
        for url in [&old, &new] {
            s.spawn(move || {
                let run = run_xtask(&["seed", "--core-only"], &[("DATABASE_URL", url.as_str())]);
                assert_eq!(run.code, 0, "{}", run.all());
            });
        }
    });
    let args = [
        "db-verify",
        "--core-only",
        "--checksums",
        "--remote-url",
        old.as_str(),
        "--local-url",
        new.as_str(),
    ];
    let run = run_xtask(&args, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("(PostgreSQL 15."), "{}", run.stdout);
    assert!(run.stdout.contains("(PostgreSQL 17."), "{}", run.stdout);
    assert_eq!(
        table_line(&run.stdout, "public.market_data_cache"),
        "public.market_data_cache 193488 193488 match ok"
    );

    // Orphans and sequences are read on the 15 side too.
    query(
        &old,
        "SET session_replication_role = replica;
         DELETE FROM tags WHERE id = (SELECT tag_id FROM position_tags ORDER BY tag_id LIMIT 1);
         SET session_replication_role = DEFAULT;
         SELECT setval(pg_get_serial_sequence('market_data_cache', 'id'), 10);",
    );
    let run = run_xtask(&args, &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stdout.contains("orphans on remote: ")
            && run.stdout.contains(
                "have no parent in public.tags (id) [foreign key fk_position_tags_tag_id]"
            ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("sequence public.market_data_cache_id_seq on remote: next value 11"),
        "{}",
        run.stdout
    );
}

/// The objects beyond the tables, the same on both sides; an extension's own functions and types
/// (pgvector's) must not be compared as the user's.
const OBJECTS: &str = r#"
CREATE EXTENSION vector;
CREATE TYPE public.mood AS ENUM ('a', 'b');
CREATE DOMAIN public.posint AS integer CONSTRAINT posint_check CHECK (VALUE > 0);
CREATE TABLE public.t (id integer PRIMARY KEY, mood public.mood, n public.posint);
CREATE FUNCTION public.f(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x + 1';
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER t_touch BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE VIEW public.v AS SELECT id FROM public.t;
CREATE MATERIALIZED VIEW public.mv0 AS SELECT id FROM public.t;
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY p_read ON public.t FOR SELECT USING (id > 0);
CREATE SEQUENCE public.free_seq;
SELECT setval('public.free_seq', 5);
CREATE AGGREGATE public.total(integer) (SFUNC = int4pl, STYPE = integer, INITCOND = '0');
CREATE RULE r_keep AS ON DELETE TO public.t DO INSTEAD NOTHING;
CREATE TYPE public.pair AS (a integer, b text);
CREATE TYPE public.floatrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = float8mi);
CREATE COLLATION public.posix (provider = libc, locale = 'POSIX');
CREATE STATISTICS public.t_stats (dependencies) ON id, n FROM public.t;
COMMENT ON TABLE public.t IS 'the table';
COMMENT ON COLUMN public.t.mood IS 'how it feels';
"#;

#[test]
fn views_functions_rules_types_collations_statistics_comments_policies_and_sequences_are_compared()
{
    require_docker!();
    let pg = PgContainer::start();
    for db in ["objects_remote", "objects_local"] {
        create_db(&pg, db);
        query(&pg.url(db), OBJECTS);
    }
    let local = pg.url("objects_local");
    let run = verify_core(&pg, "objects_remote", "objects_local", &[]);
    assert_eq!(run.code, 0, "the same objects are equal: {}", run.all());
    assert!(run.stdout.contains("Schema: same"), "{}", run.stdout);

    // (what, SQL that makes local differ, the line the report must hold, SQL that undoes it)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "view only on one side",
            "CREATE VIEW public.v2 AS SELECT 1 AS one",
            "view public.v2: only on local",
            "DROP VIEW public.v2",
        ),
        (
            "view definition",
            "CREATE OR REPLACE VIEW public.v AS SELECT id FROM public.t WHERE id > 0",
            "view public.v: definition differs",
            "CREATE OR REPLACE VIEW public.v AS SELECT id FROM public.t",
        ),
        (
            "materialized view",
            "CREATE MATERIALIZED VIEW public.mv AS SELECT id FROM public.t",
            "materialized view public.mv: only on local",
            "DROP MATERIALIZED VIEW public.mv",
        ),
        (
            "function body",
            "CREATE OR REPLACE FUNCTION public.f(x integer) RETURNS integer LANGUAGE sql \
             AS 'SELECT x + 2'",
            "function public.f(x integer): definition differs",
            "CREATE OR REPLACE FUNCTION public.f(x integer) RETURNS integer LANGUAGE sql \
             AS 'SELECT x + 1'",
        ),
        (
            "trigger dropped",
            "DROP TRIGGER t_touch ON public.t",
            "trigger public.t.t_touch: only on remote: CREATE TRIGGER t_touch BEFORE INSERT ON \
             public.t FOR EACH ROW EXECUTE FUNCTION public.touch()",
            "CREATE TRIGGER t_touch BEFORE INSERT ON public.t FOR EACH ROW \
             EXECUTE FUNCTION public.touch()",
        ),
        (
            "enum label",
            // ALTER TYPE ... ADD VALUE: alone, outside a transaction block.
            "ALTER TYPE public.mood ADD VALUE 'c'",
            "type public.mood: labels differ: remote [a, b], local [a, b, c]",
            "ALTER TABLE public.t ALTER COLUMN mood TYPE text; DROP TYPE public.mood; \
             CREATE TYPE public.mood AS ENUM ('a', 'b'); \
             ALTER TABLE public.t ALTER COLUMN mood TYPE public.mood USING mood::public.mood",
        ),
        (
            "domain constraint",
            "ALTER DOMAIN public.posint DROP CONSTRAINT posint_check; \
             ALTER DOMAIN public.posint ADD CONSTRAINT posint_check CHECK (VALUE > 1)",
            "domain public.posint: definition integer CONSTRAINT posint_check CHECK ((VALUE > 0)) \
             (remote) vs integer CONSTRAINT posint_check CHECK ((VALUE > 1)) (local)",
            "ALTER DOMAIN public.posint DROP CONSTRAINT posint_check; \
             ALTER DOMAIN public.posint ADD CONSTRAINT posint_check CHECK (VALUE > 0)",
        ),
        (
            "policy",
            "CREATE POLICY p_all ON public.t USING (true)",
            "policy public.t.p_all: only on local: PERMISSIVE FOR ALL TO PUBLIC USING (true)",
            "DROP POLICY p_all ON public.t",
        ),
        (
            "row security forced",
            "ALTER TABLE public.t FORCE ROW LEVEL SECURITY",
            "table public.t: row security enabled (remote) vs enabled, forced (local)",
            "ALTER TABLE public.t NO FORCE ROW LEVEL SECURITY",
        ),
        (
            "materialized view definition",
            "DROP MATERIALIZED VIEW public.mv0; \
             CREATE MATERIALIZED VIEW public.mv0 AS SELECT id FROM public.t WHERE id > 0",
            "materialized view public.mv0: definition differs",
            "DROP MATERIALIZED VIEW public.mv0; \
             CREATE MATERIALIZED VIEW public.mv0 AS SELECT id FROM public.t",
        ),
        (
            "procedure only on one side",
            "CREATE PROCEDURE public.p() LANGUAGE sql AS 'SELECT 1'",
            "function public.p(): only on local",
            "DROP PROCEDURE public.p()",
        ),
        (
            "trigger disabled",
            "ALTER TABLE public.t DISABLE TRIGGER t_touch",
            "trigger public.t.t_touch: definition",
            "ALTER TABLE public.t ENABLE TRIGGER t_touch",
        ),
        (
            "policy definition",
            "ALTER POLICY p_read ON public.t USING (id > 1)",
            "policy public.t.p_read: definition",
            "ALTER POLICY p_read ON public.t USING (id > 0)",
        ),
        (
            "enum type only on one side",
            "CREATE TYPE public.size AS ENUM ('s')",
            "type public.size: only on local",
            "DROP TYPE public.size",
        ),
        (
            "domain only on one side",
            "CREATE DOMAIN public.tiny AS smallint",
            "domain public.tiny: only on local",
            "DROP DOMAIN public.tiny",
        ),
        (
            "unowned sequence",
            "SELECT setval('public.free_seq', 1000)",
            "sequence public.free_seq: last value 5 (remote) vs 1000 (local)",
            "SELECT setval('public.free_seq', 5)",
        ),
        (
            "aggregate's initial condition",
            "DROP AGGREGATE public.total(integer); CREATE AGGREGATE public.total(integer) \
             (SFUNC = int4pl, STYPE = integer, INITCOND = '1')",
            "function public.total(integer): definition differs",
            "DROP AGGREGATE public.total(integer); CREATE AGGREGATE public.total(integer) \
             (SFUNC = int4pl, STYPE = integer, INITCOND = '0')",
        ),
        (
            "rule disabled",
            "ALTER TABLE public.t DISABLE RULE r_keep",
            "rule public.t.r_keep: definition",
            "ALTER TABLE public.t ENABLE RULE r_keep",
        ),
        (
            "rule only on one side",
            "CREATE RULE r_upd AS ON UPDATE TO public.t DO INSTEAD NOTHING",
            "rule public.t.r_upd: only on local",
            "DROP RULE r_upd ON public.t",
        ),
        (
            "composite type's attributes",
            "ALTER TYPE public.pair ADD ATTRIBUTE c integer",
            "type public.pair: definition composite (a integer, b text) (remote) vs composite \
             (a integer, b text, c integer) (local)",
            "ALTER TYPE public.pair DROP ATTRIBUTE c",
        ),
        (
            "range type only on one side",
            "CREATE TYPE public.intr AS RANGE (SUBTYPE = integer)",
            "type public.intr: only on local: range (SUBTYPE = integer)",
            "DROP TYPE public.intr",
        ),
        (
            "collation only on one side",
            "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', \
             deterministic = false)",
            "collation public.ci: only on local: provider icu",
            "DROP COLLATION public.ci",
        ),
        (
            "extended statistics dropped",
            "DROP STATISTICS public.t_stats",
            "statistics public.t_stats: only on remote: CREATE STATISTICS public.t_stats \
             (dependencies) ON id, n FROM public.t",
            "CREATE STATISTICS public.t_stats (dependencies) ON id, n FROM public.t",
        ),
        (
            "column comment",
            "COMMENT ON COLUMN public.t.mood IS 'how it is'",
            "comment on table column public.t.mood: text how it feels (remote) vs how it is \
             (local)",
            "COMMENT ON COLUMN public.t.mood IS 'how it feels'",
        ),
        (
            "table comment dropped",
            "COMMENT ON TABLE public.t IS NULL",
            "comment on table public.t: only on remote: the table",
            "COMMENT ON TABLE public.t IS 'the table'",
        ),
    ];
    for (what, change, line, undo) in cases {
        let started = Instant::now();
        query(&local, change);
        let run = verify_core(&pg, "objects_remote", "objects_local", &[]);
        assert_eq!(run.code, 3, "{what}: {}", run.all());
        let out: String = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            out.contains(line),
            "{what}: missing {line:?} in\n{}",
            run.stdout
        );
        // Exactly that object: one difference, nothing else.
        assert!(
            run.stderr
                .contains("error: db-verify: core: DIFFERENT: 1 schema difference\n"),
            "{what}: {}",
            run.stderr
        );
        if *what == "view only on one side" {
            let run = verify_core(&pg, "objects_remote", "objects_local", &["--json"]);
            assert_eq!(run.code, 3, "{}", run.all());
            let diff = &json(&run)["databases"][0]["schema_differences"][0];
            assert_eq!(diff["kind"], "view", "{diff}");
            assert_eq!(diff["object"], "public.v2", "{diff}");
            assert_eq!(diff["detail"], "only on local", "{diff}");
            assert_eq!(diff["left"], serde_json::Value::Null, "{diff}");
            assert!(
                diff["right"]
                    .as_str()
                    .unwrap_or("")
                    .contains("SELECT 1 AS one"),
                "{diff}"
            );
        }
        query(&local, undo);
        eprintln!("{what}: {:?}", started.elapsed());
    }
    let run = verify_core(&pg, "objects_remote", "objects_local", &[]);
    assert_eq!(run.code, 0, "every difference undone: {}", run.all());
}

/// A made-up password for the roles this file creates, with characters that must be
/// percent-encoded in a URL.
const ROLE_PASSWORD: &str = "r3@d:er/%?#&";
const ROLE_PASSWORD_ENCODED: &str = "r3%40d%3Aer%2F%25%3F%23%26";

#[test]
fn row_level_security_never_hides_rows_from_a_count_or_checksum() {
    require_docker!();
    let pg = PgContainer::start();
    // The same rows on both sides but one that the policy hides from whoever is not allowed
    // secrets: a role that read through the policy would count 1 and 1 and say equal.
    for (db, rows) in [
        ("rls_a", "(1, false), (2, true)"),
        ("rls_b", "(1, false), (2, true), (3, true)"),
    ] {
        create_db(&pg, db);
        query(
            &pg.url(db),
            &format!(
                "CREATE TABLE secrets (id int PRIMARY KEY, hidden boolean NOT NULL);
                 INSERT INTO secrets VALUES {rows};
                 ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY only_shown ON secrets FOR SELECT USING (NOT hidden);
                 GRANT SELECT ON secrets TO PUBLIC;"
            ),
        );
    }
    query(
        &pg.url("postgres"),
        &format!(
            "CREATE ROLE reader LOGIN PASSWORD '{ROLE_PASSWORD}';
             CREATE ROLE bypasser LOGIN BYPASSRLS PASSWORD '{ROLE_PASSWORD}';"
        ),
    );
    let as_role = |role: &str, db: &str| {
        format!(
            "postgresql://{role}:{ROLE_PASSWORD_ENCODED}@127.0.0.1:{}/{db}",
            pg.port
        )
    };
    let verify_as = |role: &str, extra: &[&str]| {
        let (remote, local) = (as_role(role, "rls_a"), as_role(role, "rls_b"));
        let mut args = vec![
            "db-verify",
            "--core-only",
            "--remote-url",
            &remote,
            "--local-url",
            &local,
        ];
        args.extend_from_slice(extra);
        let run = run_xtask(&args, &[]);
        assert!(
            !run.all().contains(ROLE_PASSWORD) && !run.all().contains(ROLE_PASSWORD_ENCODED),
            "the role's password leaked:\n{}",
            run.all()
        );
        run
    };
    let counts =
        || ["rls_a", "rls_b"].map(|db| query_one(&pg.url(db), "SELECT count(*) FROM secrets"));

    // A role that cannot bypass the policy: refused by name, nothing compared.
    let run = verify_as("reader", &["--checksums"]);
    assert_eq!(counts(), ["2".to_string(), "3".to_string()]);
    support::fault_case(
        "db-verify",
        "a table with row-level security whose policy hides rows from the connecting role (no BYPASSRLS, not the owner)",
        &run,
        1,
        &["role reader cannot bypass row-level security", "public.secrets", "BYPASSRLS"],
        "both sides unchanged (read-only; row counts read back)",
    );
    assert!(!run.all().contains("equal"), "{}", run.all());

    // A role that bypasses it sees every row: the hidden difference is found.
    let run = verify_as("bypasser", &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "public.secrets"),
        "public.secrets 2 3 DIFF (+1)"
    );
    let run = verify_as("bypasser", &["--checksums"]);
    assert_eq!(run.code, 3, "{}", run.all());
}

/// A table with a column of each kind the checksum hashes its own way (docs/checksums.md), no
/// primary key (a row can be duplicated), and a table beside it that no case touches.
const CHECKSUMMED: &str = r#"
CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE public.prices (id integer, small smallint, big bigint, amount numeric,
    price numeric(12,4), at timestamptz, local_at timestamp, clock time, day date,
    label text COLLATE public.ci, code varchar(10), grade char(2), ratio float8, flag boolean,
    u uuid, raw bytea, doc jsonb, tags text[]);
INSERT INTO public.prices
    SELECT g, g, g * 1000, g / 4.0, g * 1.5, timestamptz '2026-01-01' + g * interval '1 minute',
           timestamp '2026-01-01' + g * interval '1 second', time '08:00' + g * interval '1 second',
           date '2026-01-01' + g, 'label ' || g, 'c' || g, 'g', g / 3.0::float8, g % 2 = 0,
           md5(g::text)::uuid, decode(md5(g::text), 'hex'), jsonb_build_object('g', g),
           ARRAY['t' || g, 'u' || g]
    FROM generate_series(1, 300) g;
CREATE TABLE public.other (id integer PRIMARY KEY, v text);
INSERT INTO public.other SELECT g, 'v' || g FROM generate_series(1, 50) g;
"#;

#[test]
fn checksums_catch_changed_swapped_and_duplicated_rows_with_the_count_unchanged() {
    require_docker!();
    let pg = PgContainer::start();
    create_db(&pg, "sums_a");
    query(&pg.url("sums_a"), CHECKSUMMED);
    let fresh_copy = || {
        query(&pg.url("postgres"), "DROP DATABASE IF EXISTS sums_b");
        clone_db(&pg, "sums_a", "sums_b");
    };
    fresh_copy();
    let run = verify_core(&pg, "sums_a", "sums_b", &["--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        table_line(&run.stdout, "public.prices"),
        "public.prices 300 300 match ok"
    );

    let swap = |column: &str| {
        format!(
            "UPDATE public.prices p SET {column} = o.{column} FROM public.prices o \
             WHERE (p.id, o.id) IN ((1, 2), (2, 1))"
        )
    };
    let cases = [
        (
            "a changed value",
            "UPDATE public.prices SET code = 'changed' WHERE id = 7".to_string(),
        ),
        ("a swapped pair of integers", swap("big")),
        ("a swapped pair of numerics", swap("price")),
        ("a swapped pair of timestamps", swap("at")),
        ("a swapped pair of texts", swap("label")),
        (
            "a duplicated row replacing another",
            "DELETE FROM public.prices WHERE id = 2; \
             INSERT INTO public.prices SELECT * FROM public.prices WHERE id = 1"
                .to_string(),
        ),
        (
            "two values swapped within one row",
            "UPDATE public.prices SET id = small + 1, small = id - 1 WHERE id = 5".to_string(),
        ),
        // Equal to the original by their types' equality (and hash), but not the same values.
        (
            "a bigint whose two halves change alike",
            "UPDATE public.prices SET big = big # 4294967297 WHERE id = 3".to_string(),
        ),
        (
            "a numeric's sign",
            "UPDATE public.prices SET amount = -amount WHERE id = 4".to_string(),
        ),
        (
            "a numeric's scale",
            "UPDATE public.prices SET amount = round(amount, 1) WHERE id = 6".to_string(),
        ),
        (
            "a text's case under a case-insensitive collation",
            "UPDATE public.prices SET label = upper(label) WHERE id = 8".to_string(),
        ),
        (
            "a jsonb number written otherwise",
            "UPDATE public.prices SET doc = '{\"g\": 9.0}' WHERE id = 9".to_string(),
        ),
        (
            "a timestamp by a microsecond",
            "UPDATE public.prices SET at = at + interval '1 microsecond' WHERE id = 10".to_string(),
        ),
    ];
    for (case, change) in cases {
        fresh_copy();
        query(&pg.url("sums_b"), &change);
        let run = verify_core(&pg, "sums_a", "sums_b", &["--checksums"]);
        assert_eq!(run.code, 3, "{case}: {}", run.all());
        assert_eq!(
            table_line(&run.stdout, "public.prices"),
            "public.prices 300 300 DIFF DIFF (contents)",
            "{case}"
        );
        assert_eq!(
            table_line(&run.stdout, "public.other"),
            "public.other 50 50 match ok",
            "{case}"
        );
        assert!(
            run.stderr
                .contains("core: DIFFERENT: 1 table with different contents (checksum)\n"),
            "{case}: {}",
            run.stderr
        );
    }
    // The counts alone see none of it.
    let run = verify_core(&pg, "sums_a", "sums_b", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
}
