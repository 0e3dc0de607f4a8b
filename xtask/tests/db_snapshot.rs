//! `cargo xtask db-snapshot` and `db-restore` in docker mode against real containers. The
//! servers are shared by the tests of this file (a "remote" seeded by the generator, a "local"
//! holding different data); each test works on its own pair of local databases, cloned from the
//! local seed, and reads the data back itself: row counts and content fingerprints computed here.

mod bench;
mod support;

#[path = "db_snapshot/interrupts.rs"]
mod interrupts;
#[path = "db_snapshot/remote_restore.rs"]
mod remote_restore;

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use bench::{fingerprint, finish, init_and_seed, wait_for, Bench, AI, CORE};
use support::{query, query_one, Run};

/// The servers, shared by the tests that run at the same time: the last one to finish drops
/// them (and so removes the containers).
fn shared_bench() -> Arc<Bench> {
    static SHARED: Mutex<Weak<Bench>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bench) = shared.upgrade() {
        return bench;
    }
    let bench = Arc::new(Bench::start(init_and_seed, bench::differing_local));
    *shared = Arc::downgrade(&bench);
    bench
}

/// One test's local Core and AI databases, cloned from the local seed.
struct Pair {
    bench: Arc<Bench>,
    core: String,
    ai: String,
}

type Fingerprints = [std::collections::BTreeMap<String, (String, String)>; 2];

impl Pair {
    fn new(prefix: &str) -> Pair {
        let bench = shared_bench();
        let (core, ai) = (format!("{prefix}_core"), format!("{prefix}_ai"));
        let admin = bench.local.url("postgres");
        for (name, template) in [(&core, CORE), (&ai, AI)] {
            query(
                &admin,
                &format!("CREATE DATABASE {name} TEMPLATE {template}"),
            );
        }
        Pair { bench, core, ai }
    }

    fn run(&self, command: &str, args: &[&str]) -> Run {
        let (core, ai) = (self.url(&self.core), self.url(&self.ai));
        self.bench.run_with(
            command,
            args,
            &[
                ("DATABASE_URL", core.as_str()),
                ("AI_DATABASE_URL", ai.as_str()),
            ],
        )
    }

    /// `run`, started in the background.
    fn spawn(&self, command: &str, args: &[&str]) -> std::process::Child {
        self.command(command, args).spawn().unwrap()
    }

    /// The command `run` runs, its output piped.
    fn command(&self, command: &str, args: &[&str]) -> std::process::Command {
        let mut cmd = support::xtask();
        cmd.arg(command).args(args);
        for (k, v) in self.bench.env() {
            cmd.env(k, v);
        }
        cmd.env("DATABASE_URL", self.url(&self.core))
            .env("AI_DATABASE_URL", self.url(&self.ai))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    fn url(&self, dbname: &str) -> String {
        self.bench.local.url(dbname)
    }

    fn fingerprints(&self) -> Fingerprints {
        [
            fingerprint(&self.url(&self.core)),
            fingerprint(&self.url(&self.ai)),
        ]
    }

    /// This pair's databases on the server other than the two themselves and their snapshots:
    /// staging or swapped-out copies left behind.
    fn leftovers(&self) -> String {
        query(
            &self.url("postgres"),
            &format!(
                "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database \
                 WHERE (datname LIKE '{0}%' OR datname LIKE '{1}%') \
                   AND datname NOT IN ('{0}', '{1}') AND datname NOT LIKE '%\\_snap\\_%'",
                self.core, self.ai
            ),
        )[0][0]
            .clone()
            .unwrap_or_default()
    }

    /// Changes rows in both databases.
    fn change_data(&self) {
        query(
            &self.url(&self.core),
            "DELETE FROM market_data_cache WHERE id % 2 = 0; UPDATE users SET full_name = 'changed'",
        );
        query(&self.url(&self.ai), "DELETE FROM ai_kb_documents");
    }
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all());
}

/// The run exited with `code` and its stderr says each of `says`.
fn ended(run: &Run, code: i32, says: &[&str]) {
    assert_eq!(run.code, code, "{}", run.all());
    for needle in says {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
}

#[test]
fn db_restore_undoes_a_pull_and_a_snapshot_brings_back_what_was_saved() {
    require_docker!();
    let pair = Pair::new("snap_pull");
    let saved = pair.fingerprints();

    let run = pair.run("db-snapshot", &["save", "before-pull", "--json"]);
    ok(&run);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(doc["databases"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["databases"][0]["of"], pair.core.as_str(), "{doc}");
    let list = pair.run("db-snapshot", &["list"]);
    ok(&list);
    assert!(list.stdout.contains("before-pull"), "{}", list.stdout);
    assert!(
        list.stdout
            .contains(&format!("{}_snap_before-pull", pair.ai)),
        "{}",
        list.stdout
    );

    pair.change_data();
    // A name that `pg_restore --list` prints unquoted (spaces, quotes, a dot): db-restore reads
    // the dump's tables from its SQL, and checks this one like any other.
    query(
        &pair.url(&pair.core),
        "CREATE SCHEMA \"my schema\"; CREATE TABLE \"my schema\".\"order \"\"items\"\".x\" (id int); \
         INSERT INTO \"my schema\".\"order \"\"items\"\".x\" VALUES (1), (2)",
    );
    let changed = pair.fingerprints();
    let remote = [
        fingerprint(&pair.bench.remote.url(CORE)),
        fingerprint(&pair.bench.remote.url(AI)),
    ];
    assert_ne!(changed, remote, "the bench must start with different data");
    ok(&pair.run("db-pull", &["--unmasked", "--yes"]));
    assert_eq!(pair.fingerprints(), remote);

    // db-restore puts back what the pull overwrote, from the pull's backup.
    let run = pair.run("db-restore", &["--yes"]);
    ok(&run);
    assert!(run.stderr.contains("and checked"), "{}", run.stderr);
    assert_eq!(pair.fingerprints(), changed);
    assert_eq!(pair.leftovers(), "");
    // It backed up what it replaced (the pulled data): now the latest backup, so db-restore
    // again brings the pull back.
    ok(&pair.run("db-restore", &["--yes", "--no-backup"]));
    assert_eq!(pair.fingerprints(), remote);

    // The snapshot brings both databases back to what they held at save.
    let run = pair.run("db-snapshot", &["restore", "before-pull", "--yes"]);
    ok(&run);
    assert_eq!(
        run.stderr
            .matches("its files as saved, not written to since")
            .count(),
        2,
        "both snapshots checked without counting their rows: {}",
        run.stderr
    );
    assert_eq!(pair.fingerprints(), saved);
    assert_eq!(pair.leftovers(), "");

    let list = pair.run("db-restore", &["--list", "--keep", "1"]);
    ok(&list);
    assert!(list.stdout.contains("removed "), "{}", list.stdout);
    let core_files = list
        .stdout
        .lines()
        .filter(|l| l.starts_with(&format!("local {} ", pair.core)))
        .count();
    assert_eq!(core_files, 1, "{}", list.stdout);

    let run = pair.run("db-snapshot", &["delete", "before-pull", "--yes"]);
    ok(&run);
    let snapshots = query_one(
        &pair.url("postgres"),
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_snap\\_%'",
            pair.core
        ),
    );
    assert_eq!(snapshots, "0");
}

#[test]
fn a_restore_refuses_other_sessions_by_name_and_ends_them_on_request() {
    require_docker!();
    let pair = Pair::new("snap_sessions");
    let saved = pair.fingerprints();
    ok(&pair.run("db-snapshot", &["save", "s1"]));
    pair.change_data();
    let changed = pair.fingerprints();
    assert_ne!(changed, saved);

    let holder = std::thread::spawn({
        let url = pair.url(&pair.ai);
        move || {
            let _ = std::panic::catch_unwind(|| {
                query(
                    &url,
                    "SET application_name = 'the-app'; SELECT pg_sleep(60)",
                )
            });
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    // Refused by a check of the databases' state: exit 1, as db-pull's refusal of other sessions.
    let run = pair.run("db-snapshot", &["restore", "s1", "--yes"]);
    ended(&run, 1, &["the-app", "--terminate-connections"]);
    assert_eq!(pair.fingerprints(), changed);

    let run = pair.run(
        "db-snapshot",
        &["restore", "s1", "--yes", "--terminate-connections"],
    );
    ok(&run);
    assert!(
        run.stderr.contains("ended 1 other session"),
        "{}",
        run.stderr
    );
    holder.join().unwrap();
    assert_eq!(pair.fingerprints(), saved);
}

#[test]
fn a_snapshot_at_a_revision_this_checkout_lacks_needs_allow_revision_mismatch() {
    require_docker!();
    let pair = Pair::new("snap_revision");
    query(
        &pair.url(&pair.core),
        "UPDATE alembic_version SET version_num = 'c9999_from_another_branch'",
    );
    let saved = pair.fingerprints();
    ok(&pair.run("db-snapshot", &["save", "elsewhere"]));
    pair.change_data();
    let changed = pair.fingerprints();

    let run = pair.run("db-snapshot", &["restore", "elsewhere", "--yes"]);
    ended(
        &run,
        1,
        &["c9999_from_another_branch", "--allow-revision-mismatch"],
    );
    assert_eq!(pair.fingerprints(), changed);

    let run = pair.run(
        "db-snapshot",
        &["restore", "elsewhere", "--yes", "--allow-revision-mismatch"],
    );
    ok(&run);
    assert_eq!(pair.fingerprints(), saved);
}

/// What `pg_restore --list` (in the local container, the archive on stdin) says of a backup's
/// compression: `gzip`, `zstd`, ...
fn compression_of(bench: &Bench, path: &std::path::Path) -> String {
    let out = std::process::Command::new("docker")
        .args(["exec", "-i", &bench.local.name, "pg_restore", "--list"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    list.lines()
        .find_map(|l| l.strip_prefix(";     Compression: "))
        .unwrap_or_else(|| panic!("no compression line in {list}"))
        .trim()
        .to_string()
}

/// A new file readable by its owner only, as the xtask writes backups (the bench checks that
/// every file in the backup folder is).
fn private_file(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap()
}

#[test]
fn db_restore_reads_the_old_gzip_backups_and_the_new_zstd_ones() {
    require_docker!();
    let pair = Pair::new("snap_legacy");
    let saved = pair.fingerprints();
    // A backup as db-pull wrote them before zstd: pg_dump's default compression (gzip).
    let legacy = pair
        .bench
        .backups()
        .join(format!("local-{}-20260101-000000.dump", pair.core));
    std::fs::create_dir_all(pair.bench.backups()).unwrap();
    let dumped = std::process::Command::new("docker")
        .args([
            "exec",
            "-e",
            "PGPASSWORD",
            &pair.bench.local.name,
            "pg_dump",
        ])
        .args(["--format=custom", "-h", "127.0.0.1", "-U", "sigmasight"])
        .args(["-p", &pair.bench.local.port.to_string(), &pair.core])
        .env("PGPASSWORD", support::PASSWORD)
        .stdout(private_file(&legacy))
        .status()
        .unwrap();
    assert!(dumped.success());
    assert_eq!(compression_of(&pair.bench, &legacy), "gzip");

    pair.change_data();
    let changed = pair.fingerprints();
    let legacy_arg = legacy.display().to_string();
    let run = pair.run("db-restore", &[legacy_arg.as_str(), "--yes"]);
    ok(&run);
    assert_eq!(
        pair.fingerprints()[0],
        saved[0],
        "Core is back from the gzip backup"
    );
    assert_eq!(
        pair.fingerprints()[1],
        changed[1],
        "AI was not named: untouched"
    );
    assert_eq!(pair.leftovers(), "");

    // The backup db-restore took of what it replaced is zstd, and db-restore reads it back.
    let taken: Vec<_> = std::fs::read_dir(pair.bench.backups())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("local-{}-", pair.core)) && *p != legacy
        })
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(compression_of(&pair.bench, &taken[0]), "zstd");
    let taken_arg = taken[0].display().to_string();
    ok(&pair.run("db-restore", &[taken_arg.as_str(), "--yes", "--no-backup"]));
    assert_eq!(pair.fingerprints(), changed);
    assert_eq!(pair.leftovers(), "");
}

#[test]
fn a_failed_restore_leaves_both_databases_as_they_were() {
    require_docker!();
    let pair = Pair::new("snap_failed");
    ok(&pair.run("db-snapshot", &["save", "s1"]));
    ok(&pair.run("db-snapshot", &["save", "s2"]));
    pair.change_data();
    let changed = pair.fingerprints();

    // One database's snapshot dropped by hand: refused before anything is touched.
    query(
        &pair.url("postgres"),
        &format!("DROP DATABASE {}_snap_s1", pair.ai),
    );
    let run = pair.run("db-snapshot", &["restore", "s1", "--yes"]);
    ended(&run, 1, &["has no ai database"]);
    // A name no database has is a usage error.
    let run = pair.run("db-snapshot", &["restore", "s9", "--yes"]);
    ended(&run, 2, &["there is no snapshot named s9"]);
    assert_eq!(pair.fingerprints(), changed);
    let list = pair.run("db-snapshot", &["list"]);
    assert!(list.stdout.contains("ai: missing"), "{}", list.stdout);

    // The AI snapshot changed after it was saved, and closed again: its write count says so, its
    // rows are counted, Core's copy is built, AI's check fails, and neither database is
    // replaced. Then the same with the snapshot left open.
    let snap = format!("{}_snap_s2", pair.ai);
    let open = |allow: bool| {
        query(
            &pair.url("postgres"),
            &format!("ALTER DATABASE \"{snap}\" ALLOW_CONNECTIONS {allow}"),
        );
    };
    open(true);
    query(&pair.url(&snap), "DELETE FROM ai_memories");
    for still_open in [false, true] {
        open(still_open);
        let run = pair.run("db-snapshot", &["restore", "s2", "--yes"]);
        ended(
            &run,
            1,
            &["does not hold what its record says", "public.ai_memories"],
        );
        let why = if still_open {
            "opened to connections"
        } else {
            "its write count is"
        };
        assert!(run.stderr.contains(why), "{why}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("its files as saved, not written to since"),
            "Core's snapshot is checked without counting: {}",
            run.stderr
        );
        assert_eq!(pair.fingerprints(), changed);
        assert_eq!(pair.leftovers(), "");
    }

    // --keep 0 drops every snapshot of this pair, the incomplete one too.
    ok(&pair.run("db-snapshot", &["delete", "--keep", "0", "--yes"]));
    let list = pair.run("db-snapshot", &["list"]);
    assert!(!list.stdout.contains("s2"), "{}", list.stdout);
}

#[test]
fn ctrl_c_while_a_restore_copies_a_snapshot_leaves_both_databases_as_they_were() {
    require_docker!();
    let pair = Pair::new("snap_interrupt");
    ok(&pair.run("db-snapshot", &["save", "s1"]));
    pair.change_data();
    let changed = pair.fingerprints();

    // A transaction that comments on the Core snapshot holds a lock that the restore's copy of
    // it (CREATE DATABASE ... TEMPLATE) waits for: the restore is held at that step.
    let snap = format!("{}_snap_s1", pair.core);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, holds_lock) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let url = xtask::config::DbUrl::parse(&pair.url("postgres")).unwrap();
        let snap = snap.clone();
        move || {
            support::block_on(async {
                let conn = xtask::pg::client::connect(&url, Duration::from_secs(10))
                    .await
                    .unwrap();
                conn.batch_execute(&format!("BEGIN; COMMENT ON DATABASE \"{snap}\" IS NULL"))
                    .await
                    .unwrap();
                locked.send(()).unwrap();
                released.recv().unwrap();
                conn.batch_execute("ROLLBACK").await.unwrap();
            })
        }
    });
    // The lock is held before the restore starts, so that its copy cannot get there first.
    holds_lock.recv().unwrap();
    let restore = pair.spawn("db-snapshot", &["restore", "s1", "--yes"]);
    let admin = pair.url("postgres");
    wait_for("the restore to wait for the snapshot's lock", 120, || {
        query_one(
            &admin,
            &format!(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'object' AND NOT granted \
                 AND objid = (SELECT oid FROM pg_database WHERE datname = '{snap}')"
            ),
        ) == "1"
    });
    std::process::Command::new("kill")
        .args(["-INT", &restore.id().to_string()])
        .status()
        .unwrap();
    release.send(()).unwrap();
    holder.join().unwrap();
    let run = finish(restore);
    ended(&run, 130, &["interrupted", "as they were"]);
    assert_eq!(pair.fingerprints(), changed);
    assert_eq!(pair.leftovers(), "");
    // The lock went with the interrupted run, and the snapshot is whole.
    ok(&pair.run("db-snapshot", &["restore", "s1", "--yes"]));
}

/// Not a timed test: measures a restore of the seed at scale 10 against a pull of the same data
/// and prints both (`cargo test -p xtask --test db_snapshot -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_a_restore_against_a_pull_at_scale_10() {
    require_docker!();
    let seed_10 = |pg: &support::PgContainer| {
        let (core, ai) = (pg.url(CORE), pg.url(AI));
        let env = [
            ("DATABASE_URL", core.as_str()),
            ("AI_DATABASE_URL", ai.as_str()),
        ];
        ok(&support::run_xtask(&["db-init"], &env));
        ok(&support::run_xtask(&["seed", "--scale", "10"], &env));
    };
    let bench = Bench::start(seed_10, init_and_seed);
    let timed = |args: &[&str]| {
        let start = std::time::Instant::now();
        let run = bench.run(args[0], &args[1..]);
        let took = start.elapsed();
        ok(&run);
        eprintln!(
            "$ cargo xtask {}\n{}{}",
            args.join(" "),
            run.stderr,
            run.stdout
        );
        took
    };
    // The first pull also builds the cached schema: measured, then a second pull as every
    // later one runs.
    let first = timed(&["db-pull", "--unmasked", "--yes", "--no-backup"]);
    let pull = timed(&["db-pull", "--unmasked", "--yes", "--no-backup"]);
    let save = timed(&["db-snapshot", "save", "scale10"]);
    query(&bench.local.url(CORE), "DELETE FROM market_data_cache");
    let restore = timed(&["db-snapshot", "restore", "scale10", "--yes"]);
    timed(&["db-snapshot", "list"]);
    let rows = query_one(
        &bench.local.url(CORE),
        "SELECT count(*) FROM market_data_cache",
    );
    eprintln!(
        "scale 10 ({rows} market_data_cache rows): first pull {first:.1?}, pull {pull:.1?}, \
         snapshot save {save:.1?}, snapshot restore {restore:.1?}"
    );
}
