//! The fidelity matrix (docs/fidelity.md), from a run against a real container: for each kind of
//! object a PostgreSQL database holds, whether `db-pull --schema source` copies it exactly (read
//! back on both sides by this test's own SQL, not by the xtask) and whether `db-verify
//! --checksums` names a change to it; and which kinds a pull refuses by name. The table in
//! docs/fidelity.md must be what this test found: `FIDELITY_WRITE=1` rewrites it.

mod support;

use std::fmt::Write as _;

use support::{query, PgContainer};

/// One kind of object: how the source gets one, how the test reads it back on each side, a
/// change to the copy, the line db-verify must print for that change, and the SQL that undoes it.
struct Kind {
    kind: &'static str,
    setup: &'static str,
    read_back: &'static str,
    change: &'static str,
    says: &'static str,
    undo: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        kind: "rows of every common type (numeric, jsonb, arrays, bytea, timestamptz, text with tabs and newlines)",
        setup: "CREATE TABLE public.t (id int PRIMARY KEY, n numeric(12,4), j jsonb, a int[], b bytea, \
                ts timestamptz, s text);
                INSERT INTO public.t SELECT g, g / 3.0, jsonb_build_object('g', g), ARRAY[g, g + 1], \
                decode(md5(g::text), 'hex'), timestamptz '2026-01-01' + g * interval '1 hour', \
                E'tab\\there\\nline ' || g FROM generate_series(1, 500) g;",
        read_back: "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM public.t",
        change: "UPDATE public.t SET s = 'changed' WHERE id = 7",
        says: "public.t 500 500 DIFF DIFF (contents)",
        undo: "UPDATE public.t SET s = E'tab\\there\\nline 7' WHERE id = 7",
    },
    Kind {
        kind: "tables in another schema, awkward names",
        setup: "CREATE SCHEMA \"Odd Schema\"; CREATE TABLE \"Odd Schema\".\"Mixed Case\" (\"Id\" int PRIMARY KEY, \"a b\" text);
                INSERT INTO \"Odd Schema\".\"Mixed Case\" SELECT g, 'v' || g FROM generate_series(1, 30) g;",
        read_back: "SELECT count(*) || ' ' || md5(string_agg(\"a b\", ',' ORDER BY \"Id\")) FROM \"Odd Schema\".\"Mixed Case\"",
        change: "DELETE FROM \"Odd Schema\".\"Mixed Case\" WHERE \"Id\" = 1",
        says: "\"Odd Schema\".\"Mixed Case\" 30 29",
        undo: "INSERT INTO \"Odd Schema\".\"Mixed Case\" VALUES (1, 'v1')",
    },
    Kind {
        kind: "column defaults, NOT NULL, collations of columns",
        setup: "CREATE TABLE public.c (id int PRIMARY KEY, made date NOT NULL DEFAULT current_date, \
                label text COLLATE \"C\" DEFAULT 'x');",
        read_back: "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull \
                    || ' ' || coalesce(pg_get_expr(adbin, adrelid), '') || ' ' || attcollation::regcollation, ', ' ORDER BY attnum) \
                    FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum \
                    WHERE attrelid = 'public.c'::regclass AND attnum > 0",
        change: "ALTER TABLE public.c ALTER COLUMN label SET DEFAULT 'y'",
        says: "column public.c.label: default 'x'::text (remote) vs 'y'::text (local)",
        undo: "ALTER TABLE public.c ALTER COLUMN label SET DEFAULT 'x'",
    },
    Kind {
        kind: "identity and generated columns",
        setup: "CREATE TABLE public.g (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x int, \
                twice int GENERATED ALWAYS AS (x * 2) STORED);
                INSERT INTO public.g (x) SELECT g FROM generate_series(1, 40) g;",
        read_back: "SELECT md5(string_agg(g::text, ',' ORDER BY id)) || ' ' || \
                    (SELECT last_value FROM public.g_id_seq) FROM public.g",
        change: "SELECT setval('public.g_id_seq', 1000)",
        says: "sequence public.g_id_seq: last value 40 (remote) vs 1000 (local)",
        undo: "SELECT setval('public.g_id_seq', 40)",
    },
    Kind {
        kind: "primary key, unique, check and foreign-key constraints",
        setup: "CREATE TABLE public.parent (id int PRIMARY KEY, code text UNIQUE);
                CREATE TABLE public.child (id int PRIMARY KEY, parent_id int REFERENCES public.parent ON DELETE CASCADE, \
                qty int CONSTRAINT qty_positive CHECK (qty > 0));
                INSERT INTO public.parent SELECT g, 'c' || g FROM generate_series(1, 10) g;
                INSERT INTO public.child SELECT g, 1 + g % 10, g FROM generate_series(1, 50) g;",
        read_back: "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname) \
                    FROM pg_constraint WHERE conrelid IN ('public.parent'::regclass, 'public.child'::regclass)",
        change: "ALTER TABLE public.child DROP CONSTRAINT qty_positive",
        says: "constraint public.child.qty_positive: only on remote: CHECK ((qty > 0))",
        undo: "ALTER TABLE public.child ADD CONSTRAINT qty_positive CHECK (qty > 0)",
    },
    Kind {
        kind: "indexes (expression, partial)",
        setup: "CREATE INDEX t_lower_s ON public.t (lower(s)) WHERE id > 10;",
        read_back: "SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 't'",
        change: "DROP INDEX public.t_lower_s",
        says: "index public.t_lower_s: only on remote",
        undo: "CREATE INDEX t_lower_s ON public.t (lower(s)) WHERE id > 10",
    },
    Kind {
        kind: "views",
        setup: "CREATE VIEW public.v AS SELECT id, s FROM public.t WHERE id % 2 = 0;",
        read_back: "SELECT pg_get_viewdef('public.v'::regclass, true) || (SELECT count(*) FROM public.v)",
        change: "CREATE OR REPLACE VIEW public.v AS SELECT id, s FROM public.t WHERE id % 3 = 0",
        says: "view public.v: definition differs",
        undo: "CREATE OR REPLACE VIEW public.v AS SELECT id, s FROM public.t WHERE id % 2 = 0",
    },
    Kind {
        kind: "materialized views, populated",
        setup: "CREATE MATERIALIZED VIEW public.mv AS SELECT id % 5 AS k, count(*) AS n FROM public.t GROUP BY 1;",
        read_back: "SELECT ispopulated || ' ' || (SELECT md5(string_agg(k || ':' || n, ',' ORDER BY k)) FROM public.mv) \
                    FROM pg_matviews WHERE matviewname = 'mv'",
        change: "DROP MATERIALIZED VIEW public.mv; CREATE MATERIALIZED VIEW public.mv AS SELECT id % 6 AS k, count(*) AS n FROM public.t GROUP BY 1",
        says: "materialized view public.mv: definition differs",
        undo: "DROP MATERIALIZED VIEW public.mv; CREATE MATERIALIZED VIEW public.mv AS SELECT id % 5 AS k, count(*) AS n FROM public.t GROUP BY 1",
    },
    Kind {
        kind: "functions",
        setup: "CREATE FUNCTION public.add_one(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';",
        read_back: "SELECT pg_get_functiondef('public.add_one(int)'::regprocedure)",
        change: "CREATE OR REPLACE FUNCTION public.add_one(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 2'",
        says: "function public.add_one(x integer): definition differs",
        undo: "CREATE OR REPLACE FUNCTION public.add_one(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 1'",
    },
    Kind {
        kind: "procedures",
        setup: "CREATE PROCEDURE public.noop() LANGUAGE sql AS 'SELECT 1';",
        read_back: "SELECT pg_get_functiondef('public.noop()'::regprocedure)",
        change: "DROP PROCEDURE public.noop()",
        says: "function public.noop(): only on remote",
        undo: "CREATE PROCEDURE public.noop() LANGUAGE sql AS 'SELECT 1'",
    },
    Kind {
        kind: "aggregates",
        setup: "CREATE AGGREGATE public.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');",
        read_back: "SELECT aggtransfn || ' ' || agginitval FROM pg_aggregate WHERE aggfnoid = 'public.total(int)'::regprocedure",
        change: "DROP AGGREGATE public.total(int); CREATE AGGREGATE public.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '1')",
        says: "function public.total(integer): definition differs",
        undo: "DROP AGGREGATE public.total(int); CREATE AGGREGATE public.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0')",
    },
    Kind {
        kind: "triggers, and their enabled state",
        setup: "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
                CREATE TRIGGER t_touch BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION public.touch();
                ALTER TABLE public.t DISABLE TRIGGER t_touch;",
        read_back: "SELECT pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger WHERE tgname = 't_touch'",
        change: "ALTER TABLE public.t ENABLE TRIGGER t_touch",
        says: "trigger public.t.t_touch: definition",
        undo: "ALTER TABLE public.t DISABLE TRIGGER t_touch",
    },
    Kind {
        kind: "rewrite rules",
        setup: "CREATE RULE keep_parents AS ON DELETE TO public.parent DO INSTEAD NOTHING;",
        read_back: "SELECT pg_get_ruledef(oid) || ev_enabled::text FROM pg_rewrite WHERE rulename = 'keep_parents'",
        change: "DROP RULE keep_parents ON public.parent",
        says: "rule public.parent.keep_parents: only on remote",
        undo: "CREATE RULE keep_parents AS ON DELETE TO public.parent DO INSTEAD NOTHING",
    },
    Kind {
        kind: "enum types, labels in order",
        setup: "CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy'); ALTER TYPE public.mood ADD VALUE 'meh' BEFORE 'ok';",
        read_back: "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = 'public.mood'::regtype",
        change: "ALTER TYPE public.mood RENAME VALUE 'meh' TO 'fine'",
        says: "type public.mood: labels differ: remote [sad, meh, ok, happy], local [sad, fine, ok, happy]",
        undo: "ALTER TYPE public.mood RENAME VALUE 'fine' TO 'meh'",
    },
    Kind {
        kind: "composite types",
        setup: "CREATE TYPE public.pair AS (a int, b text COLLATE \"C\");",
        read_back: "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attcollation, ',' ORDER BY attnum) \
                    FROM pg_attribute WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'public.pair'::regtype)",
        change: "ALTER TYPE public.pair ADD ATTRIBUTE c int",
        says: "type public.pair: definition composite (a integer, b text COLLATE \"C\") (remote) vs composite (a integer, b text COLLATE \"C\", c integer) (local)",
        undo: "ALTER TYPE public.pair DROP ATTRIBUTE c",
    },
    Kind {
        kind: "range types",
        setup: "CREATE TYPE public.floatrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = float8mi);",
        read_back: "SELECT rngsubtype::regtype || ' ' || rngsubdiff FROM pg_range WHERE rngtypid = 'public.floatrange'::regtype",
        change: "DROP TYPE public.floatrange; CREATE TYPE public.floatrange AS RANGE (SUBTYPE = float8)",
        says: "type public.floatrange: definition range (SUBTYPE = double precision, SUBTYPE_DIFF = float8mi) (remote) vs range (SUBTYPE = double precision) (local)",
        undo: "DROP TYPE public.floatrange; CREATE TYPE public.floatrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = float8mi)",
    },
    Kind {
        kind: "domains",
        setup: "CREATE DOMAIN public.posint AS int NOT NULL DEFAULT 1 CONSTRAINT posint_check CHECK (VALUE > 0);",
        read_back: "SELECT format_type(typbasetype, typtypmod) || typnotnull || typdefault || \
                    (SELECT string_agg(pg_get_constraintdef(oid), ',') FROM pg_constraint WHERE contypid = t.oid) \
                    FROM pg_type t WHERE oid = 'public.posint'::regtype",
        change: "ALTER DOMAIN public.posint DROP NOT NULL",
        says: "domain public.posint: definition integer NOT NULL DEFAULT 1 CONSTRAINT posint_check CHECK ((VALUE > 0)) (remote) vs integer DEFAULT 1 CONSTRAINT posint_check CHECK ((VALUE > 0)) (local)",
        undo: "ALTER DOMAIN public.posint SET NOT NULL",
    },
    Kind {
        kind: "collations",
        setup: "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);",
        read_back: "SELECT collprovider::text || ' ' || coalesce(colllocale, '') || ' ' || collisdeterministic FROM pg_collation WHERE collname = 'ci'",
        change: "DROP COLLATION public.ci",
        says: "collation public.ci: only on remote: provider icu",
        undo: "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
    },
    Kind {
        kind: "extended statistics",
        setup: "CREATE STATISTICS public.child_stats (dependencies, ndistinct) ON parent_id, qty FROM public.child;",
        read_back: "SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext WHERE stxname = 'child_stats'",
        change: "DROP STATISTICS public.child_stats",
        says: "statistics public.child_stats: only on remote: CREATE STATISTICS public.child_stats (ndistinct, dependencies) ON parent_id, qty FROM public.child",
        undo: "CREATE STATISTICS public.child_stats (dependencies, ndistinct) ON parent_id, qty FROM public.child",
    },
    Kind {
        kind: "comments on tables, columns and functions",
        setup: "COMMENT ON TABLE public.t IS 'the table'; COMMENT ON COLUMN public.t.s IS 'free text'; \
                COMMENT ON FUNCTION public.add_one(int) IS 'adds one';",
        read_back: "SELECT string_agg(description, ',' ORDER BY description) FROM pg_description \
                    WHERE objoid IN ('public.t'::regclass, 'public.add_one(int)'::regprocedure)",
        change: "COMMENT ON COLUMN public.t.s IS 'other text'",
        says: "comment on table column public.t.s: text free text (remote) vs other text (local)",
        undo: "COMMENT ON COLUMN public.t.s IS 'free text'",
    },
    Kind {
        kind: "row-level security and policies",
        setup: "ALTER TABLE public.child ENABLE ROW LEVEL SECURITY; \
                CREATE POLICY small ON public.child FOR SELECT USING (qty < 40);",
        read_back: "SELECT relrowsecurity || ' ' || (SELECT string_agg(polname || pg_get_expr(polqual, polrelid), ',') FROM pg_policy \
                    WHERE polrelid = c.oid) FROM pg_class c WHERE oid = 'public.child'::regclass",
        change: "ALTER POLICY small ON public.child USING (qty < 30)",
        says: "policy public.child.small: definition",
        undo: "ALTER POLICY small ON public.child USING (qty < 40)",
    },
    Kind {
        kind: "sequences that no column owns, called and not called",
        setup: "CREATE SEQUENCE public.invoice_no; SELECT setval('public.invoice_no', 1000); \
                CREATE SEQUENCE public.fresh_no; SELECT setval('public.fresh_no', 5, false);",
        read_back: "SELECT (SELECT last_value || ' ' || is_called FROM public.invoice_no) || ', ' || \
                    (SELECT last_value || ' ' || is_called FROM public.fresh_no)",
        change: "SELECT nextval('public.fresh_no')",
        says: "sequence public.fresh_no: last value 5 (not called) (remote) vs 5 (local)",
        undo: "SELECT setval('public.fresh_no', 5, false)",
    },
    Kind {
        kind: "extensions and their versions (vector)",
        setup: "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE public.emb (id int PRIMARY KEY, e vector(3)); \
                INSERT INTO public.emb SELECT g, ARRAY[g, g + 0.5, -g]::vector FROM generate_series(1, 20) g;",
        read_back: "SELECT extversion || ' ' || (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM public.emb) \
                    FROM pg_extension WHERE extname = 'vector'",
        change: "UPDATE public.emb SET e = '[0,0,0]' WHERE id = 3",
        says: "public.emb 20 20 DIFF DIFF (contents)",
        undo: "UPDATE public.emb SET e = '[3,3.5,-3]' WHERE id = 3",
    },
    Kind {
        kind: "inheritance: a parent and its child, each with its own rows",
        setup: "CREATE TABLE public.animal (id int PRIMARY KEY, name text);
                CREATE TABLE public.dog (good boolean) INHERITS (public.animal);
                INSERT INTO public.animal SELECT g, 'cat ' || g FROM generate_series(1, 5) g;
                INSERT INTO public.dog SELECT g, 'dog ' || g, g % 2 = 0 FROM generate_series(6, 12) g;",
        read_back: "SELECT (SELECT count(*) FROM ONLY public.animal) || ' ' || (SELECT count(*) FROM public.dog) || ' ' || \
                    (SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM public.dog d)",
        change: "DELETE FROM public.dog WHERE id = 6",
        says: "public.dog 7 6",
        undo: "INSERT INTO public.dog VALUES (6, 'dog 6', true)",
    },
    Kind {
        kind: "partitioned tables: rows in their partitions",
        setup: "CREATE TABLE public.events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
                CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
                CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
                INSERT INTO public.events SELECT g, date '2025-06-01' + g FROM generate_series(1, 400) g;",
        read_back: "SELECT string_agg(p || ' ' || n, ', ' ORDER BY p) FROM \
                    (SELECT tableoid::regclass::text AS p, count(*) AS n FROM public.events GROUP BY 1) c",
        change: "DELETE FROM public.events_2026 WHERE id = 400",
        says: "public.events_2026 187 186",
        undo: "INSERT INTO public.events VALUES (400, date '2025-06-01' + 400)",
    },
    Kind {
        kind: "NOT VALID check constraints, with a source row that breaks them",
        setup: "CREATE TABLE public.legacy (id int PRIMARY KEY, qty int);
                INSERT INTO public.legacy VALUES (1, -5), (2, 3);
                ALTER TABLE public.legacy ADD CONSTRAINT legacy_qty_positive CHECK (qty > 0) NOT VALID;",
        read_back: "SELECT (SELECT conname || ' ' || convalidated FROM pg_constraint WHERE conname = 'legacy_qty_positive') \
                    || ' ' || (SELECT string_agg(qty::text, ',' ORDER BY id) FROM public.legacy)",
        change: "ALTER TABLE public.legacy DROP CONSTRAINT legacy_qty_positive",
        says: "constraint public.legacy.legacy_qty_positive: only on remote: CHECK ((qty > 0)) NOT VALID",
        undo: "ALTER TABLE public.legacy ADD CONSTRAINT legacy_qty_positive CHECK (qty > 0) NOT VALID",
    },
    Kind {
        kind: "an extension in a schema of its own (citext in `extensions`)",
        setup: "CREATE SCHEMA extensions; CREATE EXTENSION citext SCHEMA extensions;
                CREATE TABLE public.handles (h extensions.citext PRIMARY KEY);
                INSERT INTO public.handles VALUES ('Ann'), ('bob');",
        read_back: "SELECT extnamespace::regnamespace || ' ' || (SELECT string_agg(h::text, ',' ORDER BY h) FROM public.handles) \
                    FROM pg_extension WHERE extname = 'citext'",
        change: "UPDATE public.handles SET h = 'ANN' WHERE h::text = 'Ann'",
        says: "public.handles 2 2 DIFF DIFF (contents)",
        undo: "UPDATE public.handles SET h = 'Ann' WHERE h::text = 'ANN'",
    },
];

/// What the copy leaves out on purpose: read back on both sides, the test asserts the source has
/// it and the copy does not, and db-verify does not compare it.
const NOT_COPIED: &[(&str, &str, &str)] = &[(
    "privileges (GRANT) and owners",
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fidelity_reader') THEN \
     CREATE ROLE fidelity_reader NOLOGIN; END IF; END $$; GRANT SELECT ON public.parent TO fidelity_reader;",
    "SELECT has_table_privilege('fidelity_reader', 'public.parent', 'SELECT')::text",
)];

/// What a pull refuses by name, before anything is touched (exit 1), with the name it gives.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "event triggers",
        "CREATE FUNCTION public.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
         CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION public.on_ddl();",
        "event trigger audit_ddl",
    ),
    (
        "foreign tables (their data lives elsewhere)",
        "CREATE FOREIGN DATA WRAPPER dummy; CREATE SERVER elsewhere FOREIGN DATA WRAPPER dummy;
         CREATE FOREIGN TABLE public.remote_rows (a int) SERVER elsewhere;",
        "foreign table public.remote_rows",
    ),
    (
        "publications",
        "CREATE TABLE public.kept (id int PRIMARY KEY); CREATE PUBLICATION kept_changes FOR TABLE public.kept;",
        "publication kept_changes",
    ),
    (
        "large objects",
        "SELECT lo_create(0);",
        "1 large object(s)",
    ),
];

fn pull(pg: &PgContainer, src: &str, dst: &str) -> support::Run {
    let dirs = tempfile::TempDir::new().unwrap();
    let (backups, logs) = (dirs.path().join("b"), dirs.path().join("l"));
    let (src, dst) = (pg.url(src), pg.url(dst));
    support::run_xtask(
        &[
            "db-pull",
            "--unmasked",
            "--yes",
            "--core-only",
            "--schema",
            "source",
            "--container",
            &pg.name,
            "--remote-url",
            &src,
            "--local-url",
            &dst,
        ],
        &[
            ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
            ("XTASK_LOG_DIR", logs.to_str().unwrap()),
        ],
    )
}

fn verify(pg: &PgContainer) -> support::Run {
    let (src, dst) = (pg.url("fid_src"), pg.url("fid_dst"));
    support::run_xtask(
        &[
            "db-verify",
            "--core-only",
            "--checksums",
            "--remote-url",
            &src,
            "--local-url",
            &dst,
        ],
        &[],
    )
}

/// The output with runs of spaces made one, so that a table row can be matched as a line.
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

const START: &str = "<!-- fidelity-matrix:start (generated by xtask/tests/fidelity.rs; FIDELITY_WRITE=1 rewrites it) -->";
const END: &str = "<!-- fidelity-matrix:end -->";

#[test]
fn every_kind_of_object_is_copied_exactly_and_a_change_is_named_or_it_is_refused_by_name() {
    require_docker!();
    let pg = PgContainer::start();
    for db in ["fid_src", "fid_dst"] {
        query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
    }
    let (src, dst) = (pg.url("fid_src"), pg.url("fid_dst"));
    for k in KINDS {
        query(&src, k.setup);
    }
    for (_, setup, _) in NOT_COPIED {
        query(&src, setup);
    }
    let run = pull(&pg, "fid_src", "fid_dst");
    assert_eq!(run.code, 0, "{}", run.all());
    let same = verify(&pg);
    assert_eq!(same.code, 0, "the copy is equal: {}", same.all());

    let mut table = String::from(
        "| kind | read back on both sides by the test | copied exactly | a change to the copy, as db-verify --checksums names it |\n|---|---|---|---|\n",
    );
    for k in KINDS {
        let read = |url: &str| query(url, k.read_back);
        let (a, b) = (read(&src), read(&dst));
        assert!(
            a.first()
                .and_then(|r| r.first())
                .is_some_and(Option::is_some),
            "{}: the read-back found nothing on the source: {a:?}",
            k.kind
        );
        assert_eq!(a, b, "{}: copied exactly", k.kind);
        query(&dst, k.change);
        let run = verify(&pg);
        assert_eq!(run.code, 3, "{}: {}", k.kind, run.all());
        let out = squeezed(&run.stdout);
        assert!(
            out.contains(k.says),
            "{}: missing {:?} in\n{}",
            k.kind,
            k.says,
            run.stdout
        );
        query(&dst, k.undo);
        let _ = writeln!(
            table,
            "| {} | `{}` | yes | `{}` |",
            cell(k.kind),
            cell(&k.read_back.split_whitespace().collect::<Vec<_>>().join(" ")),
            cell(k.says)
        );
    }
    let undone = verify(&pg);
    assert_eq!(undone.code, 0, "every change undone: {}", undone.all());

    table.push_str("\nLeft out on purpose (`pg_dump --no-owner --no-privileges`), and not compared:\n\n| kind | read back | source | copy |\n|---|---|---|---|\n");
    for (kind, _, read_back) in NOT_COPIED {
        let (a, b) = (
            support::query_one(&src, read_back),
            support::query_one(&dst, read_back),
        );
        assert_eq!((a.as_str(), b.as_str()), ("true", "false"), "{kind}");
        let _ = writeln!(table, "| {kind} | `{}` | {a} | {b} |", cell(read_back));
    }

    table.push_str("\nRefused by name before anything is touched (exit 1; `--allow-uncopyable` copies the rest with a warning):\n\n| kind | db-pull names it as |\n|---|---|\n");
    for (i, (kind, setup, name)) in REFUSED.iter().enumerate() {
        let (s, d) = (format!("fid_refused_{i}"), format!("fid_refused_{i}_dst"));
        for db in [&s, &d] {
            query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
        }
        query(&pg.url(&s), setup);
        let run = pull(&pg, &s, &d);
        assert_eq!(run.code, 1, "{kind}: {}", run.all());
        assert!(run.stderr.contains(name), "{kind}: {}", run.all());
        assert_eq!(
            support::query_one(
                &pg.url(&d),
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            ),
            "0",
            "{kind}: nothing was written"
        );
        let _ = writeln!(table, "| {kind} | `{name}` |");
    }
    let _ = write!(
        table,
        "\n{} kinds copied exactly, {} left out, {} refused.\n",
        KINDS.len(),
        NOT_COPIED.len(),
        REFUSED.len()
    );

    let doc_path = xtask::project_root().join("docs/fidelity.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/fidelity.md has no {START} ... {END} markers");
    };
    let found = format!("{START}\n{table}{END}");
    let written = &doc[start..end + END.len()];
    if std::env::var_os("FIDELITY_WRITE").is_some() {
        std::fs::write(&doc_path, doc.replace(written, &found)).unwrap();
    } else {
        assert_eq!(
            written, found,
            "docs/fidelity.md's matrix is not what this run found; rerun with FIDELITY_WRITE=1 and commit it"
        );
    }
}
