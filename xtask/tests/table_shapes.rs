//! Tables that are more than a plain heap, copied exactly by db-pull and db-push against a real
//! container: inheritance parents and children (`--tables parent` replaces the parent's own rows
//! and leaves its children as they were; a full copy counts each table alone), partitioned
//! tables (`--tables parent` takes every partition, upsert merges through them, a selection
//! that cuts a partitioned table is refused with exit 2), upsert into tables with a stored
//! generated column and an identity ALWAYS column outside the key, and a big table split into
//! ctid ranges over a pull's jobs.
//!
//! One container serves the tests of this file that run at the same time (`server`); each test
//! has databases of its own. Every check reads the tables back with the test's own SQL: each
//! table's own rows (`FROM ONLY`), counted and checksummed, the children and partitions by name.

mod support;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex, Weak,
};

use support::{query, query_one, PgContainer, Run};

/// The head of this repo's Core migrations: the cases' databases claim it (an `alembic_version`
/// table), so that `--schema migrations` copies into tables the test made itself.
const CORE_HEAD: &str = "c0005_correlations";

static SERVER: Mutex<Weak<PgContainer>> = Mutex::new(Weak::new());
static CASES: AtomicUsize = AtomicUsize::new(0);

/// The file's container, shared by every test that holds it; removed when the last one ends
/// (statics are never dropped, so a container held by one would outlive the test run).
fn server() -> Arc<PgContainer> {
    let mut shared = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pg) = shared.upgrade() {
        return pg;
    }
    let pg = Arc::new(PgContainer::start());
    *shared = Arc::downgrade(&pg);
    pg
}

/// One test's two databases on the shared server, both made by the same `schema` SQL.
struct Case {
    pg: Arc<PgContainer>,
    src: String,
    dst: String,
    dirs: tempfile::TempDir,
}

impl Case {
    fn new(schema: &str) -> Case {
        let pg = server();
        let n = CASES.fetch_add(1, Ordering::SeqCst);
        let (src, dst) = (
            format!("shapes_{}_{n}_src", std::process::id()),
            format!("shapes_{}_{n}_dst", std::process::id()),
        );
        for db in [&src, &dst] {
            query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
            query(
                &pg.url(db),
                &format!(
                    "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
                     INSERT INTO alembic_version VALUES ('{CORE_HEAD}');
                     {schema}"
                ),
            );
        }
        Case {
            pg,
            src,
            dst,
            dirs: tempfile::TempDir::new().unwrap(),
        }
    }

    fn src(&self) -> String {
        self.pg.url(&self.src)
    }

    fn dst(&self) -> String {
        self.pg.url(&self.dst)
    }

    fn run(&self, command: &str, args: &[&str]) -> Run {
        let (src, dst) = (self.src(), self.dst());
        let (source_flag, target_flag) = match command {
            "db-pull" => ("--remote-url", "--local-url"),
            _ => ("--local-url", "--remote-url"),
        };
        let mut all = vec![
            command,
            "--yes",
            "--core-only",
            "--no-backup",
            "--container",
            &self.pg.name,
            source_flag,
            &src,
            target_flag,
            &dst,
        ];
        // These tables are the tests' own, not the app's: the data policy does not classify them.
        if command == "db-pull" {
            all.push("--unmasked");
        }
        all.extend_from_slice(args);
        let logs = self.dirs.path().join("logs");
        support::run_xtask(&all, &[("XTASK_LOG_DIR", logs.to_str().unwrap())])
    }

    /// Db-pull from src into dst.
    fn pull(&self, args: &[&str]) -> Run {
        self.run("db-pull", args)
    }

    /// Db-push from src into dst.
    fn push(&self, args: &[&str]) -> Run {
        self.run("db-push", args)
    }
}

/// `rows:checksum` of exactly the table's own rows (a partitioned table: its partitions').
fn own_rows(url: &str, table: &str, partitioned: bool) -> String {
    let from = if partitioned {
        table.to_string()
    } else {
        format!("ONLY {table}")
    };
    query_one(
        url,
        &format!(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') \
             FROM {from} AS t"
        ),
    )
}

fn assert_same(case: &Case, tables: &[(&str, bool)]) {
    for (table, partitioned) in tables {
        assert_eq!(
            own_rows(&case.dst(), table, *partitioned),
            own_rows(&case.src(), table, *partitioned),
            "{table}"
        );
    }
}

const INHERITANCE: &str = "
    CREATE TABLE parent (id int PRIMARY KEY, v text NOT NULL);
    CREATE TABLE child (extra int) INHERITS (parent);";

/// The source: 10 rows of the parent's own, 5 in the child; the target: others, 3 and 7.
fn inheritance_case() -> Case {
    let case = Case::new(INHERITANCE);
    query(
        &case.src(),
        "INSERT INTO parent SELECT g, 'src ' || g FROM generate_series(1, 10) g;
         INSERT INTO child SELECT g, 'src child ' || g, g FROM generate_series(101, 105) g;",
    );
    query(
        &case.dst(),
        "INSERT INTO parent SELECT g, 'dst ' || g FROM generate_series(1, 3) g;
         INSERT INTO child SELECT g, 'dst child ' || g, g FROM generate_series(201, 207) g;",
    );
    case
}

/// `command --tables parent` replaces the parent's own rows and leaves the child as it was.
fn parent_alone_replaced(command: &str) {
    let case = inheritance_case();
    let child_before = own_rows(&case.dst(), "child", false);
    let run = case.run(command, &["--tables", "parent", "--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_same(&case, &[("parent", false)]);
    assert_eq!(own_rows(&case.dst(), "child", false), child_before);
    assert!(child_before.starts_with("7:"), "{child_before}");
}

#[test]
fn pull_of_an_inheritance_parent_replaces_its_own_rows_and_leaves_its_children() {
    require_docker!();
    parent_alone_replaced("db-pull");
}

#[test]
fn push_replace_of_an_inheritance_parent_replaces_its_own_rows_and_leaves_its_children() {
    require_docker!();
    parent_alone_replaced("db-push");
}

/// A full pull (the source's schema, two jobs), then, the target changed by `drift`, a full
/// replace push: each time every table of `tables` holds the source's rows.
fn full_copies_both_ways(case: &Case, tables: &[(&str, bool)], drift: &str) {
    let pull = case.pull(&["--schema", "source", "--checksums", "--jobs", "2"]);
    assert_eq!(pull.code, 0, "{}", pull.all());
    assert_same(case, tables);
    query(&case.dst(), drift);
    let push = case.push(&["--checksums"]);
    assert_eq!(push.code, 0, "{}", push.all());
    assert_same(case, tables);
}

#[test]
fn a_full_copy_with_inheritance_copies_each_table_exactly() {
    require_docker!();
    let case = inheritance_case();
    full_copies_both_ways(
        &case,
        &[("parent", false), ("child", false)],
        "DELETE FROM ONLY parent WHERE id > 5; UPDATE child SET v = 'drifted'",
    );
    assert!(own_rows(&case.dst(), "child", false).starts_with("5:"));
}

/// A partitioned table with a partition that is partitioned in turn, and a default partition.
const PARTITIONED: &str = "
    CREATE TABLE events (id int PRIMARY KEY, v text NOT NULL) PARTITION BY RANGE (id);
    CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (0) TO (100);
    CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (100) TO (200)
        PARTITION BY RANGE (id);
    CREATE TABLE events_high_a PARTITION OF events_high FOR VALUES FROM (100) TO (200);
    CREATE TABLE events_rest PARTITION OF events DEFAULT;";

const PARTITIONS: [(&str, bool); 5] = [
    ("events", true),
    ("events_low", false),
    ("events_high", true),
    ("events_high_a", false),
    ("events_rest", false),
];

fn partitioned_case() -> Case {
    let case = Case::new(PARTITIONED);
    query(
        &case.src(),
        "INSERT INTO events SELECT g, 'src ' || g FROM generate_series(1, 250) g;",
    );
    query(
        &case.dst(),
        "INSERT INTO events SELECT g, 'dst ' || g FROM generate_series(50, 150) g;",
    );
    case
}

#[test]
fn pull_of_a_partitioned_table_takes_every_partition() {
    require_docker!();
    let case = partitioned_case();
    // A table the source lacks: the comparison is not equal, and the line says what was copied.
    query(
        &case.dst(),
        "CREATE TABLE notes (x int); INSERT INTO notes VALUES (1)",
    );
    let run = case.pull(&["--tables", "events", "--checksums", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_same(&case, &PARTITIONS);
    // Each row counted once in the report: the partitioned tables' rows are their partitions'.
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["databases"][0]["tables"], 5, "{report}");
    assert_eq!(report["databases"][0]["rows"], 250, "{report}");
    let verified = report["databases"][0]["verified"].to_string();
    assert!(
        verified.contains("5 copied table(s), 250 rows"),
        "{verified}"
    );
    let leaf = own_rows(&case.dst(), "events_high_a", false);
    assert!(leaf.starts_with("100:"), "{leaf}");
}

#[test]
fn a_full_copy_of_a_partitioned_table_is_exact() {
    require_docker!();
    let case = partitioned_case();
    full_copies_both_ways(&case, &PARTITIONS, "DELETE FROM events WHERE id % 7 = 0");
}

#[test]
fn upsert_of_a_partitioned_table_merges_through_its_partitions() {
    require_docker!();
    let case = partitioned_case();
    // A remote-only row that upsert must keep, in a partition the source also fills.
    query(
        &case.dst(),
        "INSERT INTO events VALUES (300, 'remote only')",
    );
    let run = case.push(&["--mode", "upsert", "--tables", "events"]);
    assert_eq!(run.code, 0, "{}", run.all());
    // Every source row is on the target, equal, in the partition it belongs to.
    let remote = case.dst();
    for (table, partitioned) in PARTITIONS {
        let from = if partitioned {
            table.to_string()
        } else {
            format!("ONLY {table}")
        };
        let rows = query(
            &case.src(),
            &format!("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM {from}"),
        );
        let want = rows[0][0].clone().unwrap_or_default();
        let got = query_one(
            &remote,
            &format!(
                "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM {from} WHERE id <> 300"
            ),
        );
        assert_eq!(got, want, "{table}");
    }
    assert_eq!(
        query_one(&remote, "SELECT v FROM ONLY events_rest WHERE id = 300"),
        "remote only"
    );
    assert_eq!(query_one(&remote, "SELECT count(*) FROM events"), "251");
}

#[test]
fn a_selection_that_cuts_a_partitioned_table_is_refused_by_name_before_anything() {
    require_docker!();
    let case = partitioned_case();
    let before: Vec<String> = PARTITIONS
        .iter()
        .map(|(t, p)| own_rows(&case.dst(), t, *p))
        .collect();
    for run in [
        case.pull(&["--tables", "events", "--exclude-table", "events_high_a"]),
        case.push(&["--exclude-table", "events_low"]),
    ] {
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(
            run.all().contains("public.events (without public."),
            "{}",
            run.all()
        );
        assert!(run.all().contains("nothing was changed"), "{}", run.all());
    }
    let after: Vec<String> = PARTITIONS
        .iter()
        .map(|(t, p)| own_rows(&case.dst(), t, *p))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn upsert_writes_generated_and_identity_always_columns_as_the_source_has_them() {
    require_docker!();
    let case = Case::new(
        "CREATE TABLE items (
             id int PRIMARY KEY,
             qty int NOT NULL,
             doubled int GENERATED ALWAYS AS (qty * 2) STORED NOT NULL,
             seq_no int GENERATED ALWAYS AS IDENTITY);
         CREATE TABLE runs (id int PRIMARY KEY, seq_no int GENERATED ALWAYS AS IDENTITY, label text)
             PARTITION BY RANGE (id);
         CREATE TABLE runs_a PARTITION OF runs FOR VALUES FROM (0) TO (10);
         CREATE TABLE runs_b PARTITION OF runs FOR VALUES FROM (10) TO (100);",
    );
    query(
        &case.src(),
        "INSERT INTO items (id, qty) SELECT g, g FROM generate_series(1, 20) g;
         INSERT INTO runs (id, label) SELECT g, 'src' FROM generate_series(1, 20) g;",
    );
    // The remote numbered its rows otherwise, holds other quantities and a row of its own.
    query(
        &case.dst(),
        "INSERT INTO items (id, qty) SELECT g, g * 10 FROM generate_series(30, 21, -1) g;
         INSERT INTO items (id, qty) SELECT g, g * 10 FROM generate_series(10, 1, -1) g;
         INSERT INTO runs (id, label) SELECT g, 'dst' FROM generate_series(20, 5, -1) g;",
    );
    let run = case.push(&["--mode", "upsert"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let rows = |url: &str, filter: &str| {
        query_one(
            url,
            &format!(
                "SELECT string_agg(id || ':' || qty || ':' || doubled || ':' || seq_no, ',' \
                 ORDER BY id) FROM items WHERE {filter}"
            ),
        )
    };
    assert_eq!(rows(&case.dst(), "id <= 20"), rows(&case.src(), "true"));
    assert_eq!(
        rows(&case.dst(), "id > 20"),
        (21..=30)
            .map(|g| format!("{g}:{}:{}:{}", g * 10, g * 20, 31 - g))
            .collect::<Vec<_>>()
            .join(",")
    );
    // The partitioned table's identity, changed through its root, merged in each partition.
    let runs = "SELECT string_agg(id || ':' || seq_no || ':' || label, ',' ORDER BY id) FROM runs";
    assert_eq!(query_one(&case.dst(), runs), query_one(&case.src(), runs));
    // Still ALWAYS, and the next number goes past every merged one.
    assert_eq!(
        query_one(
            &case.dst(),
            "SELECT string_agg(attrelid::regclass::text || '=' || attidentity::text, ',' ORDER BY attrelid::regclass::text) \
             FROM pg_attribute WHERE attname = 'seq_no' \
             AND attrelid IN ('items'::regclass, 'runs'::regclass, 'runs_a'::regclass)"
        ),
        "items=a,runs=a,runs_a=a"
    );
    let next = query_one(
        &case.dst(),
        "INSERT INTO items (id, qty) VALUES (99, 1) RETURNING seq_no",
    );
    assert!(next.parse::<i32>().unwrap() > 20, "{next}");
}

/// A table just over the split's threshold (8 MB on disk), its name to be quoted, an identity
/// whose sequence the pull sets, rows updated after the load (new versions in later blocks), and a
/// small table that references it.
const BIG: &str = r#"
    CREATE TABLE "Big Rows" (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                             v text NOT NULL, n numeric);
    CREATE TABLE small (id int PRIMARY KEY, big_id bigint REFERENCES "Big Rows");"#;

#[test]
fn a_big_table_is_split_over_the_jobs_and_copied_exactly() {
    require_docker!();
    let case = Case::new(BIG);
    query(
        &case.src(),
        r#"INSERT INTO "Big Rows" (v, n)
             SELECT repeat(md5(g::text), 2), g * 1.5 FROM generate_series(1, 75000) g;
           UPDATE "Big Rows" SET n = -n WHERE id % 97 = 0;
           INSERT INTO small SELECT g, g * 7 FROM generate_series(1, 300) g;"#,
    );
    let size = query_one(
        &case.src(),
        r#"SELECT pg_total_relation_size('"Big Rows"') >= 8 * 1024 * 1024"#,
    );
    assert_eq!(size, "t", "the table must be over the split's threshold");
    let tables = [(r#""Big Rows""#, false), ("small", false)];
    let sequence = r#"SELECT last_value FROM "Big Rows_id_seq""#;
    for jobs in ["2", "3"] {
        let pull = case.pull(&[
            "--schema",
            "source",
            "--checksums",
            "--jobs",
            jobs,
            "--json",
        ]);
        assert_eq!(pull.code, 0, "{}", pull.all());
        assert_same(&case, &tables);
        assert_eq!(
            query_one(&case.dst(), sequence),
            query_one(&case.src(), sequence)
        );
        let said = format!("public.\"Big Rows\" split into {jobs} ranges");
        assert!(
            pull.stderr.contains(&said),
            "lacks {said:?}:\n{}",
            pull.all()
        );
        let report: serde_json::Value = serde_json::from_str(&pull.stdout).unwrap();
        let split = &report["databases"][0]["split"];
        assert_eq!(
            split,
            &serde_json::json!({ "public.\"Big Rows\"": jobs.parse::<u64>().unwrap() }),
            "{}",
            pull.stdout
        );
    }
    // One job: nothing split, nothing said.
    let pull = case.pull(&["--schema", "source", "--json"]);
    assert_eq!(pull.code, 0, "{}", pull.all());
    assert_same(&case, &tables);
    assert!(!pull.stderr.contains("ranges"), "{}", pull.all());
    let report: serde_json::Value = serde_json::from_str(&pull.stdout).unwrap();
    assert!(
        report["databases"][0].get("split").is_none(),
        "{}",
        pull.stdout
    );
}
