//! `cargo xtask db-pull` in docker mode against real containers: a "remote" PostgreSQL 17 +
//! pgvector container seeded by the generator, and a "local" one (where the tools run, as
//! `backend-postgres-1` does) holding different data. Every case reads the data back: row counts
//! and content fingerprints computed here, independently of the xtask's own verification.

mod bench;
mod support;

use std::{
    process::{Child, Command},
    time::Duration,
};

use bench::{
    both_fingerprints, fingerprint, finish, init_and_seed, leftover_databases, pids_with, wait_for,
    walk, Bench, AI, CORE,
};
use support::{fault_case, query, query_one, PgContainer, PASSWORD};

fn pull_bench() -> Bench {
    Bench::start(init_and_seed, bench::differing_local)
}

#[test]
fn pull_replaces_both_local_databases_with_the_remote_data_and_keeps_a_backup() {
    require_docker!();
    let bench = pull_bench();
    let local_before = both_fingerprints(&bench.local);
    let remote = both_fingerprints(&bench.remote);
    assert_ne!(
        local_before, remote,
        "the bench must start with different data"
    );

    let run = bench.run("db-pull", &["--unmasked", "--yes", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    // Where the time went: every phase of a full pull with backups, in seconds.
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let phases = report["phases"].as_object().expect("phases in the JSON");
    let mut names: Vec<&str> = phases.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut all = [
        "backup",
        "data",
        "indexes",
        "preflight",
        "schema",
        "swap",
        "verify",
    ];
    all.sort_unstable();
    assert_eq!(names, all, "{}", run.stdout);
    for (name, seconds) in phases {
        let s = seconds.as_f64().unwrap_or(-1.0);
        assert!((0.0..600.0).contains(&s), "{name}: {seconds}");
    }
    for name in ["preflight", "backup", "schema", "data", "verify", "swap"] {
        assert!(phases[name].as_f64().unwrap() > 0.0, "{}", run.stdout);
    }
    // The first pull on this server ran the migrations once, into the kept schema builds.
    assert!(
        run.stderr.contains("kept for the next pulls"),
        "{}",
        run.stderr
    );
    assert_eq!(both_fingerprints(&bench.local), remote);
    assert!(run.stdout.contains("core: equal"), "{}", run.stdout);
    assert!(run.stdout.contains("ai: equal"), "{}", run.stdout);
    // The staging databases are gone, the originals replaced, not renamed aside.
    let dbs = leftover_databases(&bench.local);
    assert_eq!(dbs, "", "leftover databases: {dbs}");

    // The backups hold what the local databases held: restore one and compare.
    let backups = walk(&bench.backups()).unwrap();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let core_backup = backups
        .iter()
        .find(|p| p.to_string_lossy().contains("local-sigmasight_db-"))
        .expect("a backup of the Core database");
    query(&bench.local.url("postgres"), "CREATE DATABASE restored");
    let copied = Command::new("docker")
        .args(["cp", &core_backup.display().to_string()])
        .arg(format!("{}:/tmp/core.dump", bench.local.name))
        .status()
        .unwrap();
    assert!(copied.success());
    let restored = Command::new("docker")
        .args(["exec", "-e", "PGPASSWORD", &bench.local.name])
        .args([
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &bench.local.port.to_string(), "-U", "sigmasight"])
        .args(["-d", "restored", "/tmp/core.dump"])
        .env("PGPASSWORD", PASSWORD)
        .status()
        .unwrap();
    assert!(restored.success());
    assert_eq!(fingerprint(&bench.local.url("restored")), local_before[0]);

    // A second pull finds nothing to change and is still equal (idempotent). It clones the kept
    // schema instead of running Alembic, and loads on two connections.
    let again = bench.run(
        "db-pull",
        &["--unmasked", "--yes", "--no-backup", "--jobs", "2"],
    );
    assert_eq!(again.code, 0, "{}", again.all());
    let phases = again
        .stderr
        .lines()
        .find(|l| l.starts_with("phases: "))
        .unwrap_or_else(|| panic!("no phases line: {}", again.stderr));
    assert!(
        phases.starts_with("phases: preflight ")
            && phases.contains(", schema ")
            && phases.contains(", data ")
            && phases.contains(", indexes ")
            && phases.ends_with(" s")
            && !phases.contains("backup"),
        "{phases}"
    );
    assert!(
        again.stderr.contains("cloned from xtask_schema_core_"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("loaded by COPY on 2 connections"),
        "{}",
        again.stderr
    );
    assert_eq!(both_fingerprints(&bench.local), remote);
    assert_eq!(leftover_databases(&bench.local), "");
    // The copy's indexes and constraints are the migrations' own, built after the data.
    let shape = |url: &str| {
        query_one(
            url,
            "SELECT (SELECT string_agg(indexdef, '; ' ORDER BY indexdef) FROM pg_indexes \
             WHERE schemaname = 'public') || ' | ' || (SELECT string_agg(conname || ':' || \
             pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace)",
        )
    };
    assert_eq!(
        shape(&bench.local.url(CORE)),
        shape(&bench.remote.url(CORE))
    );

    // With the cache off, the migrations run again, and the result is the same.
    let uncached = bench.run_with(
        "db-pull",
        &["--unmasked", "--yes", "--no-backup", "--core-only"],
        &[("XTASK_SCHEMA_CACHE", "off")],
    );
    assert_eq!(uncached.code, 0, "{}", uncached.all());
    assert!(
        uncached
            .stderr
            .contains("schema built by alembic -c alembic.ini upgrade head\n"),
        "{}",
        uncached.stderr
    );
    assert_eq!(fingerprint(&bench.local.url(CORE)), remote[0]);

    // A migration that writes reference rows: the copy built by these migrations holds them, and
    // the pull replaces them with the source's rows (the source is a revision behind here).
    let backend =
        support::backend_with_core_migration("c0006_reference_rows.py", SEEDING_MIGRATION);
    let backend_dir = backend.path().display().to_string();
    let seeded = bench.run_with(
        "db-pull",
        &[
            "--unmasked",
            "--yes",
            "--no-backup",
            "--core-only",
            "--allow-revision-mismatch",
        ],
        &[("XTASK_BACKEND_DIR", backend_dir.as_str())],
    );
    assert_eq!(seeded.code, 0, "{}", seeded.all());
    // The revision is this copy's (c0006); every table of data is the source's.
    assert_eq!(
        query_one(
            &bench.local.url(CORE),
            "SELECT version_num FROM alembic_version"
        ),
        "c0006_reference_rows"
    );
    let mut pulled = fingerprint(&bench.local.url(CORE));
    let mut source = remote[0].clone();
    pulled.remove("public.alembic_version");
    source.remove("public.alembic_version");
    assert_eq!(pulled, source);
}

const SEEDING_MIGRATION: &str = r#""""writes a reference row, as data migrations do

Revision ID: c0006_reference_rows
Revises: c0005_correlations
"""
from alembic import op

revision = "c0006_reference_rows"
down_revision = "c0005_correlations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO factor_definitions (name, factor_type) VALUES ('xtask reference', 'style')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM factor_definitions WHERE name = 'xtask reference'")
"#;

#[test]
fn refusals_leave_the_local_databases_untouched() {
    require_docker!();
    let bench = pull_bench();
    let before = both_fingerprints(&bench.local);
    // Recorded for the reliability matrix once the data is checked, at the end.
    let mut cases: Vec<(&str, support::Run, i32, Vec<&str>)> = Vec::new();

    // No terminal and no --yes.
    let run = bench.run("db-pull", &["--unmasked"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);

    cases.push(("no terminal and no --yes", run, 2, vec!["--yes"]));

    // --dry-run prints the plan and stops.
    let run = bench.run("db-pull", &["--unmasked", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("public.market_data_cache: 193488 rows"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);

    // A session on the local database (the app) is named, not killed.
    let holder = std::thread::spawn({
        let url = bench.local.url(CORE);
        move || {
            query(
                &url,
                "SET application_name = 'the-app'; SELECT pg_sleep(12)",
            )
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    let run = bench.run("db-pull", &["--unmasked", "--yes", "--core-only"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("the-app"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--terminate-connections"),
        "{}",
        run.stderr
    );
    holder.join().unwrap();

    cases.push((
        "another session (the app) on the local database",
        run,
        1,
        vec!["--terminate-connections", "the-app"],
    ));

    // A source table that the local schema lacks: named, never skipped.
    query(
        &bench.remote.url(CORE),
        "CREATE TABLE \"Odd Table\" (id int PRIMARY KEY); INSERT INTO \"Odd Table\" VALUES (1)",
    );
    let run = bench.run("db-pull", &["--unmasked", "--yes", "--core-only"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("\"Odd Table\""), "{}", run.stderr);
    assert!(run.stderr.contains("missing on local"), "{}", run.stderr);
    query(&bench.remote.url(CORE), "DROP TABLE \"Odd Table\"");

    cases.push((
        "a source table that the migrations lack (\"Odd Table\")",
        run,
        1,
        vec!["missing on local", "\"Odd Table\""],
    ));
    // A source that is not at this repo's head.
    query(
        &bench.remote.url(CORE),
        "UPDATE alembic_version SET version_num = 'c0004_risk_analytics'",
    );
    let run = bench.run("db-pull", &["--unmasked", "--yes", "--core-only"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("c0004_risk_analytics"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--allow-revision-mismatch"),
        "{}",
        run.stderr
    );

    cases.push((
        "the source is not at this checkout's Alembic head",
        run,
        1,
        vec!["--allow-revision-mismatch", "c0004_risk_analytics"],
    ));

    // A source without alembic_version, with --schema migrations.
    query(&bench.remote.url(CORE), "DROP TABLE alembic_version");
    let run = bench.run("db-pull", &["--unmasked", "--yes", "--core-only"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("no alembic_version"), "{}", run.stderr);

    cases.push((
        "the source has no alembic_version (--schema migrations)",
        run,
        1,
        vec!["no alembic_version"],
    ));

    // An unknown source database.
    let run = bench.run(
        "db-pull",
        &[
            "--unmasked",
            "--yes",
            "--core-only",
            "--remote-url",
            &bench.remote.url("nope"),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);

    cases.push(("an unknown source database", run, 1, vec!["does not exist"]));

    // The same URL for Core and AI.
    let run = bench.run(
        "db-pull",
        &[
            "--unmasked",
            "--yes",
            "--local-ai-url",
            &bench.local.url(CORE),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.all());

    cases.push((
        "the same URL for Core and AI",
        run,
        2,
        vec!["the same database"],
    ));

    // An unreachable source.
    let run = bench.run(
        "db-pull",
        &[
            "--unmasked",
            "--yes",
            "--remote-url",
            &support::url(support::free_port(), CORE),
            "--core-only",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("nothing local was touched"),
        "{}",
        run.stderr
    );

    cases.push((
        "an unreachable source (nothing listens)",
        run,
        1,
        vec!["nothing local was touched"],
    ));

    // A missing container.
    let run = bench.run(
        "db-pull",
        &[
            "--unmasked",
            "--yes",
            "--container",
            "no-such-container-xtask",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("no-such-container-xtask"),
        "{}",
        run.stderr
    );
    cases.push((
        "a missing container",
        run,
        1,
        vec!["no-such-container-xtask"],
    ));

    assert_eq!(both_fingerprints(&bench.local), before);
    for (case, run, code, says) in cases {
        fault_case(
            "db-pull",
            case,
            &run,
            code,
            &says,
            "local Core and AI unchanged (fingerprints)",
        );
    }
}

/// Starts a pull and holds it where its pg_dump asks for its locks on the remote: the xtask's
/// snapshot transaction holds `positions`, this test queues an exclusive lock behind it, and
/// pg_dump's lock queues behind that. Returns the running pull and the thread holding the queued
/// lock (it ends when the pull's snapshot ends).
fn pull_stalled_in_pg_dump(bench: &Bench) -> (Child, std::thread::JoinHandle<()>) {
    let remote = bench.remote.url(CORE);
    let child = bench.spawn(
        "db-pull",
        &["--unmasked", "--yes", "--core-only", "--no-backup"],
    );
    let locker = support::when_locked_by(
        &remote,
        "xtask",
        "public.positions",
        &support::unique("xtask-test-locker"),
        "LOCK TABLE positions IN ACCESS EXCLUSIVE MODE; COMMIT",
    );
    wait_for("pg_dump to wait for its lock", 60, || {
        query_one(
            &remote,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' \
             AND wait_event_type = 'Lock'",
        ) != "0"
    });
    (child, locker)
}

#[test]
fn failures_mid_pull_leave_the_local_data_exactly_as_it_was() {
    require_docker!();
    let bench = pull_bench();
    let before = both_fingerprints(&bench.local);
    let core_before = || fingerprint(&bench.local.url(CORE));

    // A remote row that the local schema's CHECK constraint rejects.
    query(
        &bench.remote.url(CORE),
        "ALTER TABLE positions DROP CONSTRAINT ck_positions_position_type; \
         UPDATE positions SET position_type = 'BOGUS' WHERE ctid IN (SELECT ctid FROM positions LIMIT 1)",
    );
    let run = bench.run("db-pull", &["--unmasked", "--yes"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("ck_positions_position_type"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("positions"), "{}", run.stderr);
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(both_fingerprints(&bench.local), before);
    fault_case(
        "db-pull",
        "a source row that the local CHECK constraint rejects",
        &run,
        1,
        &["ck_positions_position_type", "unchanged"],
        "local Core and AI unchanged (fingerprints); no staging database left",
    );
    query(
        &bench.remote.url(CORE),
        "UPDATE positions SET position_type = 'LONG' WHERE position_type = 'BOGUS'",
    );

    // The AI copy fails (a NULL that the local schema's NOT NULL rejects) while Core's, copied
    // side by side, is verified: neither is swapped in, and both staging databases are dropped.
    query(
        &bench.remote.url(AI),
        "ALTER TABLE ai_feedback ALTER COLUMN rating DROP NOT NULL; \
         UPDATE ai_feedback SET rating = NULL WHERE ctid IN (SELECT ctid FROM ai_feedback LIMIT 1)",
    );
    let run = bench.run("db-pull", &["--unmasked", "--yes"]);
    assert_eq!(run.code, 1, "{}", run.all());
    for said in [
        "verified against the source's snapshot: core: 15 copied table(s), 195996 rows",
        "ai: loading the data",
        "null value in column \"rating\" of relation \"ai_feedback\"",
        "local core database sigmasight_db: unchanged",
        "local ai database sigmasight_ai_db: unchanged",
    ] {
        assert!(run.stderr.contains(said), "{said:?} in {}", run.stderr);
    }
    assert_eq!(both_fingerprints(&bench.local), before);
    assert_eq!(leftover_databases(&bench.local), "");
    query(
        &bench.remote.url(AI),
        "UPDATE ai_feedback SET rating = 1 WHERE rating IS NULL; \
         ALTER TABLE ai_feedback ALTER COLUMN rating SET NOT NULL",
    );

    // pg_dump killed (SIGKILL) while it streams.
    let (child, locker) = pull_stalled_in_pg_dump(&bench);
    let port = format!(":{}/", bench.remote.port);
    let pids = pids_with(&["pg_dump", "--data-only", &port]);
    assert!(!pids.is_empty(), "no pg_dump process found");
    for pid in pids {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }
    let run = finish(child);
    locker.join().unwrap();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("pg_dump"), "{}", run.stderr);
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(core_before(), before[0]);
    fault_case(
        "db-pull",
        "pg_dump SIGKILLed while it streams",
        &run,
        1,
        &["reading the source failed", "unchanged"],
        "local Core unchanged (fingerprint)",
    );

    // The remote server stopped mid-run.
    let (child, locker) = pull_stalled_in_pg_dump(&bench);
    bench.remote.stop();
    let run = finish(child);
    locker.join().unwrap();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(core_before(), before[0]);
    assert_eq!(leftover_databases(&bench.local), "");
    fault_case(
        "db-pull",
        "the source server stopped mid-stream",
        &run,
        1,
        &["unchanged"],
        "local Core unchanged (fingerprint); no staging database left",
    );
}

/// Every process's command line on the machine, sampled now.
fn all_command_lines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect()
}

#[test]
fn a_second_pull_refuses_naming_the_first_and_ctrl_c_rolls_back_and_releases_the_lock() {
    require_docker!();
    let bench = pull_bench();
    let before = fingerprint(&bench.local.url(CORE));

    let (first, locker) = pull_stalled_in_pg_dump(&bench);
    // While it streams, no process of this pull (the xtask, docker exec, pg_dump and psql in
    // the container: every command line naming this bench's servers) carries the password.
    // Other tests running meanwhile pass URLs as flags on purpose; they name other ports.
    let ours = [
        format!(":{}/", bench.remote.port),
        format!(":{}/", bench.local.port),
    ];
    let lines: Vec<String> = all_command_lines()
        .into_iter()
        .filter(|l| ours.iter().any(|p| l.contains(p.as_str())))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("pg_dump")),
        "the sample must see the pull's pg_dump: {lines:?}"
    );
    let own = std::fs::read(format!("/proc/{}/cmdline", first.id())).unwrap();
    for line in lines
        .iter()
        .chain([&String::from_utf8_lossy(&own).into_owned()])
    {
        assert!(
            !line.contains(PASSWORD) && !line.contains(support::PASSWORD_ENCODED),
            "password on a command line: {line}"
        );
    }
    let second = bench.run(
        "db-pull",
        &["--unmasked", "--yes", "--core-only", "--no-backup"],
    );
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("is busy"), "{}", second.stderr);
    let holder = format!("xtask db-pull (pid {})", first.id());
    assert!(second.stderr.contains(&holder), "{}", second.stderr);

    // Ctrl-C: the children stop, nothing is kept, exit 130.
    Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    let run = finish(first);
    locker.join().unwrap();
    assert_eq!(run.code, 130, "{}", run.all());
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(fingerprint(&bench.local.url(CORE)), before);
    fault_case(
        "db-pull",
        "a second pull of the same database while the first streams",
        &second,
        1,
        &["is busy", "xtask db-pull (pid "],
        "local Core unchanged (fingerprint)",
    );
    fault_case(
        "db-pull",
        "Ctrl-C (SIGINT) while the data streams",
        &run,
        130,
        &["interrupted", "unchanged"],
        "local Core unchanged (fingerprint); the lock is released (the next pull works)",
    );

    // The lock went with the interrupted run: the next pull works.
    let run = bench.run(
        "db-pull",
        &["--unmasked", "--yes", "--core-only", "--no-backup"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        fingerprint(&bench.local.url(CORE)),
        fingerprint(&bench.remote.url(CORE))
    );
}

#[test]
fn host_mode_pulls_between_host_clusters_and_refuses_an_older_pg_dump() {
    // The source takes TLS connections only, as Railway does: every connection of the pull (the
    // xtask's own and pg_dump's) must go over TLS, or the server refuses it.
    let (source, target) = (
        support::HostCluster::start_tls_only(),
        support::HostCluster::start(),
    );
    let path = format!(
        "{}:{}",
        source.bin.display(),
        std::env::var("PATH").unwrap()
    );
    let dirs = tempfile::TempDir::new().unwrap();
    let (src, dst) = (source.url(CORE), target.url(CORE));
    let backups = dirs.path().join("b").display().to_string();
    let logs = dirs.path().join("l").display().to_string();
    let env = |remote: &str, local: &str| {
        vec![
            ("PATH".to_string(), path.clone()),
            ("RAILWAY_DB_URL".to_string(), remote.to_string()),
            ("DATABASE_URL".to_string(), local.to_string()),
            ("XTASK_BACKUP_DIR".to_string(), backups.clone()),
            ("XTASK_LOG_DIR".to_string(), logs.clone()),
        ]
    };
    let run_with = |args: &[&str], env: &[(String, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::run_xtask(args, &env)
    };
    for url in [&src, &dst] {
        let run = run_with(&["db-init", "--core-only"], &env(url, url));
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let run = run_with(&["seed", "--core-only"], &env(&src, &src));
    assert_eq!(run.code, 0, "{}", run.all());

    let run = run_with(
        &[
            "db-pull",
            "--unmasked",
            "--via",
            "host",
            "--core-only",
            "--yes",
        ],
        &env(&src, &dst),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(fingerprint(&dst), fingerprint(&src));

    // TLS is set up only when the server takes it, and a certificate is checked only when the URL
    // asks for it (verify-ca, verify-full), as libpq does.
    let refusals: [(&str, &[&str]); 2] = [
        (
            "disable",
            &["takes TLS connections only", "nothing local was touched"],
        ),
        (
            "verify-full",
            &[
                "certificate verify failed",
                "a CA this machine trusts",
                "nothing local was touched",
            ],
        ),
    ];
    let dry_run = |remote: &str| {
        run_with(
            &[
                "db-pull",
                "--unmasked",
                "--via",
                "host",
                "--core-only",
                "--yes",
                "--dry-run",
            ],
            &env(remote, &dst),
        )
    };
    for (sslmode, says) in refusals {
        let run = dry_run(&format!("{src}?sslmode={sslmode}"));
        assert_eq!(fingerprint(&dst), fingerprint(&src));
        fault_case(
            "db-pull",
            &format!("sslmode={sslmode} against a TLS-only server with a self-signed certificate"),
            &run,
            1,
            says,
            "local unchanged (fingerprint)",
        );
    }
    let run = dry_run(&format!("{src}?sslmode=require"));
    assert_eq!(run.code, 0, "sslmode=require: {}", run.all());

    // The host's pg_dump 15 cannot read a PostgreSQL 17 server: refused, naming both.
    if support::docker_ready() {
        let pg17 = PgContainer::start();
        let run = run_with(
            &[
                "db-pull",
                "--unmasked",
                "--via",
                "host",
                "--core-only",
                "--yes",
            ],
            &env(&pg17.url(CORE), &dst),
        );
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(run.stderr.contains("pg_dump 15"), "{}", run.stderr);
        assert!(run.stderr.contains("server 17"), "{}", run.stderr);
        assert!(
            run.stderr.contains("nothing local was touched"),
            "{}",
            run.stderr
        );
        assert_eq!(fingerprint(&dst), fingerprint(&src));
        fault_case(
            "db-pull",
            "the host's pg_dump 15 against a PostgreSQL 17 server",
            &run,
            1,
            &["pg_dump 15", "server 17", "nothing local was touched"],
            "local unchanged (fingerprint)",
        );
        assert_eq!(fingerprint(&dst), fingerprint(&src));
    }
}

#[test]
fn awkward_names_and_a_hyphenated_database_copy_exactly() {
    require_docker!();
    let pg = PgContainer::start();
    for db in ["src-db", "dst-db", "src-ai", "dst-ai"] {
        query(&pg.url("postgres"), &format!("CREATE DATABASE \"{db}\""));
    }
    // Capitals, spaces, quotes, dots, a percent sign and reserved words, in schemas, tables and
    // columns; a self-reference and a cycle between two schemas; an identity column.
    query(
        &pg.url("src-db"),
        r#"CREATE SCHEMA "My Schema";
           CREATE TABLE "My Schema"."Order ""Items"".v2" (
               "Id" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               "select" text NOT NULL, "a b" numeric, "100%" text,
               parent int REFERENCES "My Schema"."Order ""Items"".v2"("Id"));
           CREATE TABLE public."User" ("Key" text PRIMARY KEY, "order" int);
           ALTER TABLE public."User" ADD FOREIGN KEY ("order")
               REFERENCES "My Schema"."Order ""Items"".v2"("Id") DEFERRABLE;
           INSERT INTO "My Schema"."Order ""Items"".v2" ("select", "a b", "100%")
               SELECT 'it''s ' || g, g / 3.0, E'tab\there\nnewline \\ back' FROM generate_series(1, 500) g;
           UPDATE "My Schema"."Order ""Items"".v2" SET parent = "Id" - 1 WHERE "Id" > 1;
           INSERT INTO public."User" SELECT 'k' || g, g FROM generate_series(1, 50) g;"#,
    );
    query(&pg.url("src-ai"), "CREATE TABLE t (x int)");
    let run = support::pull(
        &pg,
        &[
            "--remote-url",
            &format!("{}?sslmode=disable", pg.url("src-db")),
            "--remote-ai-url",
            &pg.url("src-ai"),
            "--local-url",
            &pg.url("dst-db"),
            "--local-ai-url",
            &pg.url("dst-ai"),
            "--checksums",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("checksums match"), "{}", run.stdout);
    assert_eq!(
        fingerprint(&pg.url("dst-db")),
        fingerprint(&pg.url("src-db"))
    );
    // The identity goes on where the source's did.
    assert_eq!(
        query_one(
            &pg.url("dst-db"),
            r#"INSERT INTO "My Schema"."Order ""Items"".v2" ("select") VALUES ('x') RETURNING "Id""#
        ),
        "501"
    );
    fault_case(
        "db-pull",
        "capitals, spaces, quotes, dots, % and reserved words in schemas, tables and columns; a \
         hyphenated database; `sslmode=disable` in the URLs; a password with @ : / % ? # &",
        &run,
        0,
        &["checksums match"],
        "copied exactly (fingerprints and checksums equal; the identity continues at 501)",
    );
}

#[test]
fn event_triggers_and_foreign_tables_are_refused_by_name_unless_allowed() {
    require_docker!();
    let pg = PgContainer::start();
    for db in ["uncopyable_src", "uncopyable_dst"] {
        query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
    }
    // What pg_dump | psql does not copy exactly: an event trigger (the test's user is a
    // superuser), a foreign table, on a wrapper that needs no extension, a publication and a
    // large object.
    query(
        &pg.url("uncopyable_src"),
        "CREATE TABLE kept (id int PRIMARY KEY, note text);
         INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 20) g;
         CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
         CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION on_ddl();
         CREATE FOREIGN DATA WRAPPER dummy;
         CREATE SERVER elsewhere FOREIGN DATA WRAPPER dummy;
         CREATE FOREIGN TABLE remote_rows (a int) SERVER elsewhere;
         CREATE PUBLICATION kept_changes FOR TABLE kept;
         SELECT lo_create(0);",
    );
    query(
        &pg.url("uncopyable_dst"),
        "CREATE TABLE local_only (x int); INSERT INTO local_only VALUES (1), (2);",
    );
    let dst = pg.url("uncopyable_dst");
    let before = fingerprint(&dst);
    let dirs = tempfile::TempDir::new().unwrap();
    let backups = dirs.path().join("b");
    let pull = |extra: &[&str]| {
        let (src, dst) = (pg.url("uncopyable_src"), pg.url("uncopyable_dst"));
        let mut args = vec!["--core-only", "--remote-url", &src, "--local-url", &dst];
        args.extend_from_slice(extra);
        support::copy_schema_source_in(dirs.path(), "db-pull", &pg, &args)
    };

    let run = pull(&[]);
    assert_eq!(fingerprint(&dst), before);
    assert!(!backups.exists(), "a refused pull took a backup");
    fault_case(
        "db-pull",
        "a source with an event trigger, a foreign table, a publication and a large object (without --allow-uncopyable)",
        &run,
        1,
        &[
            "cannot copy exactly",
            "event trigger audit_ddl",
            "foreign table public.remote_rows",
            "publication kept_changes",
            "1 large object(s)",
            "--allow-uncopyable",
            "nothing local was touched",
        ],
        "local Core unchanged (fingerprint); no backup taken",
    );

    // Allowed: the pull goes on, and says what it did not copy exactly, in the plan and the
    // report.
    let run = pull(&["--allow-uncopyable", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let left_out = [
        "event trigger audit_ddl",
        "foreign table public.remote_rows",
        "publication kept_changes",
        "1 large object(s)",
    ];
    for name in left_out {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("warning: not copied exactly") && l.contains(name)),
            "{}",
            run.stderr
        );
    }
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let warnings = report["databases"][0]["warnings"].to_string();
    for name in left_out {
        assert!(warnings.contains(name), "{warnings}");
    }
    assert_eq!(query_one(&dst, "SELECT count(*) FROM kept"), "20");
}
