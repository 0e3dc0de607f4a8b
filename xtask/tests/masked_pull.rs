//! db-pull masks by default (issue 19): a seeded "remote" with real-looking accounts added beside
//! the seed's demo accounts, pulled through the data policy (`backend/data_policy.toml`) into a
//! "local" container. Read back here with SQL: no source email, name or password hash of a
//! non-demo account is in any local table, the pull's logs or backups/; the demo rows are raw;
//! counts are the source's; joins and unique keys hold; a second pull (on two connections) and a
//! `--tables` pull give the same masked values, and so does a table split into ctid ranges over
//! the jobs; a source column without a rule refuses the pull (exit 2, naming it) with the local
//! databases untouched.

mod bench;
mod support;

use bench::{both_fingerprints, fingerprint, init_and_seed, walk, Bench, AI, CORE};
use support::{query, query_one};

/// A made-up key: the test's own, 32 bytes.
const KEY: &str = "test-only-mask-key-0123456789abc";

/// The policy's fixed password hash for every masked account (docs/data-policy.md).
const FIXED_HASH: &str = "$2b$12$zZ6hS8LlwAonwpKLnp/Jze/Y21ireFegR0XwT1ri4yOktjo8NZShy";

/// Accounts that are not demo accounts: their email, name and hash must never reach the laptop.
const REAL_USERS: &str = "
INSERT INTO users (id, email, full_name, hashed_password, is_active, created_at)
SELECT md5('real-' || i)::uuid, 'person' || i || '.secret@corp.example', 'Secretname Person' || i,
       '$2b$12$' || md5('real-hash-' || i) || 'abcdefghijklmnopqrstuvwxyzab', true,
       timestamp '2025-01-01 00:00:00' + i * interval '1 day'
FROM generate_series(1, 5) AS i;
INSERT INTO portfolios (id, user_id, name, currency, description, created_at)
SELECT md5('real-portfolio-' || i)::uuid, md5('real-' || i)::uuid, 'Secretname''s IRA ' || i,
       'USD', 'private notes of person ' || i, timestamp '2025-02-01 00:00:00'
FROM generate_series(1, 5) AS i;";

fn seeded_with_real_users(pg: &support::PgContainer) {
    init_and_seed(pg);
    query(&pg.url(CORE), REAL_USERS);
}

/// The source's secrets: every non-demo account's email, name and password hash.
fn secrets(remote: &str) -> Vec<String> {
    query(
        remote,
        "SELECT email, full_name, hashed_password FROM users WHERE email NOT LIKE 'demo\\_%'",
    )
    .into_iter()
    .flatten()
    .flatten()
    .collect()
}

/// The local tables (`schema.table`, quoted) of the database at `url` whose rows' text holds
/// any of `secrets`.
fn tables_holding(url: &str, secrets: &[String]) -> Vec<String> {
    let array: Vec<String> = secrets
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect();
    let array = format!("ARRAY[{}]::text[]", array.join(", "));
    query(
        url,
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .into_iter()
    .filter_map(|r| r[0].clone())
    .filter(|t| {
        query_one(
            url,
            &format!(
                "SELECT count(*) FROM {t} AS x WHERE EXISTS \
                 (SELECT 1 FROM unnest({array}) s WHERE strpos(x::text, s) > 0)"
            ),
        ) != "0"
    })
    .collect()
}

/// Every file under `dir` that holds one of `secrets` (bytes, so compressed backups too).
fn files_holding(dir: &std::path::Path, secrets: &[String]) -> Vec<String> {
    walk(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            secrets.iter().any(|s| text.contains(s.as_str()))
        })
        .map(|p| p.display().to_string())
        .collect()
}

fn users(url: &str) -> Vec<Vec<Option<String>>> {
    query(
        url,
        "SELECT id::text, email, full_name, hashed_password FROM users ORDER BY id",
    )
}

#[test]
fn a_pull_masks_by_the_policy_and_refuses_a_column_without_a_rule() {
    require_docker!();
    let bench = Bench::start(seeded_with_real_users, init_and_seed);
    let remote = bench.remote.url(CORE);
    let key = [("XTASK_MASK_KEY", KEY)];
    let secrets = secrets(&remote);
    assert_eq!(secrets.len(), 15, "{secrets:?}");

    // Without the key: refused before anything local is touched.
    let local_before = both_fingerprints(&bench.local);
    let run = bench.run("db-pull", &["--yes"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("XTASK_MASK_KEY is not set"),
        "{}",
        run.stderr
    );
    assert_eq!(both_fingerprints(&bench.local), local_before);

    let run = bench.run_with("db-pull", &["--yes", "--json"], &key);
    assert_eq!(run.code, 0, "{}", run.all());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for db in report["databases"].as_array().unwrap() {
        assert_eq!(db["masked"], true, "{}", run.stdout);
    }
    // The pull's own leak scan ran: users' email and full_name, portfolios' name.
    assert!(
        run.stderr
            .contains("core: masking checked: none of 3 masked column(s) holds a source value"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("data: masked on the source by"),
        "{}",
        run.stderr
    );

    // No secret anywhere on the laptop: the tables, the pull's logs, backups/.
    for db in [CORE, AI] {
        let leaked = tables_holding(&bench.local.url(db), &secrets);
        assert!(leaked.is_empty(), "{db}: source secrets in {leaked:?}");
    }
    let leaked = files_holding(bench.dirs.path(), &secrets);
    assert!(leaked.is_empty(), "source secrets in {leaked:?}");

    // Every row is there; the demo accounts are raw, the others masked and fixed.
    for db in [CORE, AI] {
        let counts = |url: &str| -> Vec<(String, String)> {
            fingerprint(url)
                .into_iter()
                .map(|(t, (rows, _))| (t, rows))
                .collect()
        };
        assert_eq!(
            counts(&bench.local.url(db)),
            counts(&bench.remote.url(db)),
            "{db}"
        );
    }
    let local = bench.local.url(CORE);
    let (src_users, local_users) = (users(&remote), users(&local));
    assert_eq!(src_users.len(), 11);
    for (src, got) in src_users.iter().zip(&local_users) {
        assert_eq!(src[0], got[0], "ids are kept");
        let email = src[1].as_deref().unwrap();
        if email.starts_with("demo_") {
            assert_eq!(src, got, "a demo row is copied raw");
        } else {
            let masked = got[1].as_deref().unwrap();
            assert!(
                masked.starts_with("user_") && masked.ends_with("@example.com"),
                "{got:?}"
            );
            assert_ne!(src[2], got[2], "{got:?}");
            assert_eq!(got[3].as_deref(), Some(FIXED_HASH), "{got:?}");
        }
    }
    // Joins and unique keys hold: every portfolio has its user, emails are unique.
    let joined = "SELECT count(*) FROM portfolios p JOIN users u ON u.id = p.user_id";
    assert_eq!(query_one(&local, joined), query_one(&remote, joined));
    assert_eq!(
        query_one(&local, "SELECT count(DISTINCT email) FROM users"),
        "11"
    );
    assert_eq!(
        query_one(
            &local,
            "SELECT count(*) FROM portfolios WHERE description IS NOT NULL \
             AND user_id IN (SELECT id FROM users WHERE email NOT LIKE 'demo\\_%')"
        ),
        "0"
    );

    // db-verify's checksums leave the masked columns out (equal), unless --unmasked (different).
    let verify = bench.run("db-verify", &["--checksums"]);
    assert_eq!(verify.code, 0, "{}", verify.all());
    assert!(
        verify
            .stderr
            .contains("the checksums leave out the 10 column(s) that the data policy masks"),
        "{}",
        verify.stderr
    );
    let verify = bench.run("db-verify", &["--checksums", "--unmasked"]);
    assert_eq!(verify.code, 3, "{}", verify.all());
    assert!(
        verify.stdout.contains("different contents (checksum)"),
        "{}",
        verify.stdout
    );

    // A second pull, on two connections, gives the same masked values; so does --tables.
    let first = both_fingerprints(&bench.local);
    let again = bench.run_with("db-pull", &["--yes", "--no-backup", "--jobs", "2"], &key);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(both_fingerprints(&bench.local), first);
    query(
        &local,
        "UPDATE users SET full_name = 'changed on the laptop'",
    );
    let some = bench.run_with(
        "db-pull",
        &[
            "--yes",
            "--no-backup",
            "--core-only",
            "--tables",
            "users,portfolios",
        ],
        &key,
    );
    assert_eq!(some.code, 0, "{}", some.all());
    assert_eq!(both_fingerprints(&bench.local), first);
    let leaked = files_holding(bench.dirs.path(), &secrets);
    assert!(leaked.is_empty(), "source secrets in {leaked:?}");

    // --unmasked is reported as such.
    let plan = bench.run("db-pull", &["--unmasked", "--dry-run", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("\"masked\": false"), "{}", plan.stdout);

    // A column added on the source without a rule: refused by name, nothing local touched.
    query(&remote, "ALTER TABLE users ADD COLUMN nickname text");
    let refused = bench.run_with("db-pull", &["--yes"], &key);
    assert_eq!(refused.code, 2, "{}", refused.all());
    for part in [
        "the data policy does not classify every column of the source (core)",
        "core users.nickname: no rule; add under [core.users]",
        "nickname = \"TODO\"",
        "Nothing local was touched",
    ] {
        assert!(
            refused.stderr.contains(part),
            "lacks {part:?}:\n{}",
            refused.stderr
        );
    }
    assert_eq!(both_fingerprints(&bench.local), first);
}

/// The source's own schema: a partitioned table (one partition attached with its columns in
/// another order, one partitioned again) and a plain one, under a policy of their own.
const PARTITIONED: &str = "
CREATE TABLE events (id int NOT NULL, at date NOT NULL, email text, note text)
  PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 (note text, email text, at date NOT NULL, id int NOT NULL);
ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')
  PARTITION BY LIST (id);
CREATE TABLE events_2027_all PARTITION OF events_2027 DEFAULT;
INSERT INTO events SELECT g, date '2025-01-01' + g * 3, 'person' || g || '@corp.example',
  'said secret thing ' || g FROM generate_series(1, 300) g;
CREATE TABLE plain (id int PRIMARY KEY, email text);
INSERT INTO plain VALUES (1, 'person1@corp.example'), (2, 'demo@keep.example');";

const PARTITIONED_POLICY: &str = r#"
[core.events]
id = "keep"
at = "keep"
email = "email"
note = "null"

[core.plain]
keep_where = "email = 'demo@keep.example'"
id = "keep"
email = "hash"
"#;

/// A container of one test's own: a source database `src` made by `schema`, and a data policy
/// of its own that the pulls from it mask by.
struct PolicyCase {
    pg: support::PgContainer,
    backend: tempfile::TempDir,
    logs: tempfile::TempDir,
}

impl PolicyCase {
    fn new(policy: &str, schema: &str) -> PolicyCase {
        let pg = support::PgContainer::start();
        let backend = tempfile::TempDir::new().unwrap();
        std::fs::write(backend.path().join("data_policy.toml"), policy).unwrap();
        query(&pg.url("postgres"), "CREATE DATABASE src");
        query(&pg.url("src"), schema);
        PolicyCase {
            pg,
            backend,
            logs: tempfile::TempDir::new().unwrap(),
        }
    }

    fn src(&self) -> String {
        self.pg.url("src")
    }

    /// A masked `db-pull --schema source` of `src` into the database `dst`, with `args`.
    fn pull(&self, dst: &str, args: &[&str]) -> support::Run {
        let (src, dst) = (self.src(), self.pg.url(dst));
        let backend_dir = self.backend.path().display().to_string();
        let log_dir = self.logs.path().display().to_string();
        let mut all = vec![
            "db-pull",
            "--yes",
            "--core-only",
            "--no-backup",
            "--schema",
            "source",
            "--container",
            &self.pg.name,
            "--remote-url",
            &src,
            "--local-url",
            &dst,
        ];
        all.extend_from_slice(args);
        support::run_xtask(
            &all,
            &[
                ("XTASK_BACKEND_DIR", backend_dir.as_str()),
                ("XTASK_LOG_DIR", log_dir.as_str()),
                ("XTASK_MASK_KEY", KEY),
            ],
        )
    }
}

#[test]
fn a_partition_takes_its_roots_rules() {
    require_docker!();
    let case = PolicyCase::new(PARTITIONED_POLICY, PARTITIONED);
    let (src, dst) = (case.src(), case.pg.url("dst"));
    let run = case.pull("dst", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    for part in ["events_2025", "events_2026", "events_2027_all"] {
        let counts = format!("SELECT count(*) FROM ONLY {part}");
        assert_eq!(query_one(&dst, &counts), query_one(&src, &counts), "{part}");
        assert_ne!(query_one(&dst, &counts), "0", "{part}");
    }
    assert_eq!(
        query_one(
            &dst,
            "SELECT count(*) FROM events WHERE email LIKE 'user\\_%@example.com' AND note IS NULL"
        ),
        "300"
    );
    let leaked = tables_holding(
        &dst,
        &["@corp.example".to_string(), "secret thing".to_string()],
    );
    assert!(leaked.is_empty(), "source values in {leaked:?}");
    // The kept row is raw, the other hashed (64 hex digits).
    assert_eq!(
        query_one(&dst, "SELECT email FROM plain WHERE id = 2"),
        "demo@keep.example"
    );
    assert_eq!(
        query_one(&dst, "SELECT length(email) FROM plain WHERE id = 1"),
        "64"
    );
    let leaked = files_holding(case.logs.path(), &["@corp.example".to_string()]);
    assert!(leaked.is_empty(), "source values in {leaked:?}");
}

/// A table just over a parallel load's split threshold (8 MB on disk) under a policy that masks,
/// hashes and keeps rows raw by a condition, beside a small one.
const SPLIT: &str = "
CREATE TABLE ledger (id int PRIMARY KEY, email text, note text, amount int);
INSERT INTO ledger SELECT g, 'person' || g || '@corp.example', 'secret note ' || md5(g::text),
  g % 1000 FROM generate_series(1, 75000) g;
UPDATE ledger SET email = 'demo' || id || '@keep.example' WHERE id % 1000 = 0;
CREATE TABLE plain (id int PRIMARY KEY, email text);
INSERT INTO plain VALUES (1, 'person1@corp.example'), (2, 'demo@keep.example');";

const SPLIT_POLICY: &str = r#"
[core.ledger]
keep_where = "email LIKE 'demo%@keep.example'"
id = "keep"
email = "email"
note = "hash"
amount = "keep"

[core.plain]
id = "keep"
email = "email"
"#;

#[test]
fn a_split_table_is_masked_as_a_whole_one_is() {
    require_docker!();
    let case = PolicyCase::new(SPLIT_POLICY, SPLIT);
    let src = case.src();
    assert_eq!(
        query_one(
            &src,
            "SELECT pg_total_relation_size('ledger') >= 8 * 1024 * 1024"
        ),
        "t",
        "the table must be over the split's threshold"
    );
    let (whole, split) = (case.pg.url("whole"), case.pg.url("split"));
    let one = case.pull("whole", &["--jobs", "1"]);
    assert_eq!(one.code, 0, "{}", one.all());
    assert!(!one.all().contains("ranges"), "{}", one.all());
    let two = case.pull("split", &["--jobs", "2"]);
    assert_eq!(two.code, 0, "{}", two.all());
    assert!(
        two.stderr.contains("public.ledger split into 2 ranges"),
        "{}",
        two.all()
    );
    // The same masked values, row for row, whether the table came whole or in ranges.
    for table in ["ledger", "plain"] {
        let rows = format!(
            "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
        );
        assert_eq!(
            query_one(&split, &rows),
            query_one(&whole, &rows),
            "{table}"
        );
        let count = format!("SELECT count(*) FROM {table}");
        assert_eq!(
            query_one(&split, &count),
            query_one(&src, &count),
            "{table}"
        );
    }
    assert_eq!(
        tables_holding(&split, &["@corp.example".to_string()]),
        Vec::<String>::new()
    );
    // The rows kept raw by the condition are raw, the others masked.
    let kept = "SELECT count(*) FROM ledger WHERE email LIKE 'demo%@keep.example' \
                AND note LIKE 'secret note %'";
    assert_eq!(query_one(&split, kept), "75");
    let masked = "SELECT count(*) FROM ledger WHERE email LIKE 'user\\_%@example.com'";
    assert_eq!(query_one(&split, masked), "74925");
    assert_eq!(
        files_holding(case.logs.path(), &["@corp.example".to_string()]),
        Vec::<String>::new()
    );
}

/// The same masking in host mode, between two host clusters: the host's psql runs the masked
/// copy (the key's pads in its environment), and no secret reaches the local database.
#[test]
fn a_host_mode_pull_masks_as_a_docker_mode_pull_does() {
    let (source, target) = (support::HostCluster::start(), support::HostCluster::start());
    let path = format!(
        "{}:{}",
        source.bin.display(),
        std::env::var("PATH").unwrap()
    );
    let dirs = tempfile::TempDir::new().unwrap();
    let (src, dst) = (source.url(CORE), target.url(CORE));
    let (backups, logs) = (dirs.path().join("b"), dirs.path().join("l"));
    let run = |args: &[&str], remote: &str, local: &str| {
        support::run_xtask(
            args,
            &[
                ("PATH", path.as_str()),
                ("RAILWAY_DB_URL", remote),
                ("DATABASE_URL", local),
                ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
                ("XTASK_LOG_DIR", logs.to_str().unwrap()),
                ("XTASK_MASK_KEY", KEY),
            ],
        )
    };
    for url in [&src, &dst] {
        let init = run(&["db-init", "--core-only"], url, url);
        assert_eq!(init.code, 0, "{}", init.all());
    }
    let seed = run(&["seed", "--core-only"], &src, &src);
    assert_eq!(seed.code, 0, "{}", seed.all());
    query(&src, REAL_USERS);
    let secrets = secrets(&src);
    assert!(secrets.len() >= 15, "{secrets:?}");

    let pull = run(
        &["db-pull", "--via", "host", "--core-only", "--yes"],
        &src,
        &dst,
    );
    assert_eq!(pull.code, 0, "{}", pull.all());
    assert!(
        pull.all().contains("data: masked on the source"),
        "{}",
        pull.all()
    );
    assert_eq!(tables_holding(&dst, &secrets), Vec::<String>::new());
    assert_eq!(files_holding(&logs, &secrets), Vec::<String>::new());
    assert_eq!(files_holding(&backups, &secrets), Vec::<String>::new());
    let count = "SELECT count(*) FROM users";
    assert_eq!(query_one(&dst, count), query_one(&src, count));
    let demo = "SELECT id::text, email, full_name, hashed_password FROM users \
                WHERE email LIKE 'demo\\_%' ORDER BY id";
    assert_eq!(query(&dst, demo), query(&src, demo));
    assert!(!query(&dst, demo).is_empty());
}
