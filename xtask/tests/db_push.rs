//! `cargo xtask db-push` in docker mode against real containers: the local container holds the
//! generator's foreign-key-heavy dataset (users <-> portfolios cycle, self-referencing tags, an
//! identity column, vectors); the "remote" is empty or holds other data. Every case reads the
//! data back with fingerprints computed here.

mod bench;
mod support;

use bench::{both_fingerprints, fingerprint, init_and_seed, Bench, AI, CORE};
use support::{fault_case, query, query_one, IdleInTransaction, PgContainer};

/// The container starts with an empty sigmasight_db; the AI database is created empty.
fn create_empty_databases(pg: &PgContainer) {
    query(&pg.url("postgres"), &format!("CREATE DATABASE {AI}"));
}

#[test]
fn push_into_an_empty_then_a_changed_remote_ends_equal_and_upsert_is_idempotent() {
    require_docker!();
    let bench = Bench::start(create_empty_databases, init_and_seed);
    let local = both_fingerprints(&bench.local);

    let run = bench.run("db-push", &["--yes"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(both_fingerprints(&bench.remote), local, "empty remote");
    assert!(run.stdout.contains("core: equal"), "{}", run.stdout);
    assert!(run.stdout.contains("ai: equal"), "{}", run.stdout);

    // The remote drifts: rows lost (the runbook's 100% of positions), rows changed.
    query(
        &bench.remote.url(CORE),
        "DELETE FROM position_tags; DELETE FROM position_factor_exposures; \
         DELETE FROM positions; UPDATE users SET full_name = 'drifted'",
    );
    let run = bench.run("db-push", &["--yes", "--checksums"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(both_fingerprints(&bench.remote), local, "non-empty remote");
    assert!(run.stdout.contains("checksums match"), "{}", run.stdout);

    // Upsert: a remote-only row survives, changed rows are put back, twice gives the same.
    query(
        &bench.remote.url(CORE),
        "UPDATE users SET full_name = 'drifted'; \
         INSERT INTO factor_definitions (id, name, factor_type) \
         VALUES (gen_random_uuid(), 'Remote only', 'style')",
    );
    let first = bench.run("db-push", &["--yes", "--mode", "upsert", "--core-only"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let once = fingerprint(&bench.remote.url(CORE));
    let again = bench.run("db-push", &["--yes", "--mode", "upsert", "--core-only"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(
        fingerprint(&bench.remote.url(CORE)),
        once,
        "upsert is idempotent"
    );
    assert_eq!(
        query_one(
            &bench.remote.url(CORE),
            "SELECT count(*) FROM users WHERE full_name = 'drifted'"
        ),
        "0"
    );
    assert_eq!(
        query_one(
            &bench.remote.url(CORE),
            "SELECT count(*) FROM factor_definitions WHERE name = 'Remote only'"
        ),
        "1",
        "upsert deletes nothing"
    );
    for (table, counts) in &local[0] {
        if table != "public.factor_definitions" {
            assert_eq!(&once[table].0, &counts.0, "{table}");
        }
    }
}

#[test]
fn refusals_and_a_failure_mid_data_leave_the_remote_untouched() {
    require_docker!();
    let bench = Bench::start(
        |pg: &PgContainer| {
            init_and_seed(pg);
            query(
                &pg.url(CORE),
                "DELETE FROM market_data_cache WHERE id % 2 = 0",
            );
        },
        init_and_seed,
    );
    let before = both_fingerprints(&bench.remote);
    let protected = |extra: &[&str]| {
        let mut env = bench.env();
        env.push((
            "XTASK_PROTECTED_HOSTS".into(),
            "example.org, 127.0.0.1".into(),
        ));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["db-push"];
        args.extend_from_slice(extra);
        support::run_xtask(&args, &env)
    };

    // Recorded for the reliability matrix once the data is checked, at the end.
    let mut cases: Vec<(&str, support::Run, i32, Vec<&str>)> = Vec::new();

    // No terminal, no --yes.
    let run = bench.run("db-push", &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    cases.push(("no terminal and no --yes", run, 2, vec!["--yes"]));

    // A protected host: --yes alone, a wrong confirmation, and --no-backup are refused.
    let run = protected(&["--yes"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("--confirm-target 127.0.0.1/sigmasight_db"),
        "{}",
        run.stderr
    );
    cases.push((
        "a protected host with --yes alone",
        run,
        2,
        vec!["--confirm-target 127.0.0.1/sigmasight_db"],
    ));
    let run = protected(&["--yes", "--confirm-target", "127.0.0.1/railway"]);
    assert_eq!(run.code, 2, "{}", run.all());
    cases.push((
        "a protected host with a wrong --confirm-target",
        run,
        2,
        vec!["--confirm-target"],
    ));
    let run = protected(&[
        "--yes",
        "--core-only",
        "--no-backup",
        "--confirm-target",
        "127.0.0.1/sigmasight_db",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("--no-backup is refused"),
        "{}",
        run.stderr
    );
    cases.push((
        "a protected host with --no-backup",
        run,
        2,
        vec!["--no-backup is refused"],
    ));

    // --dry-run shows the plan and changes nothing.
    let run = bench.run("db-push", &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("its 96744 rows are replaced"),
        "{}",
        run.stderr
    );

    // A remote constraint that the local data violates: the load fails mid-data and rolls back.
    query(
        &bench.remote.url(CORE),
        "ALTER TABLE positions ADD CONSTRAINT only_long CHECK (position_type = 'LONG') NOT VALID",
    );
    let after_constraint = fingerprint(&bench.remote.url(CORE));
    let run = bench.run("db-push", &["--yes"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("only_long"), "{}", run.stderr);
    assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
    assert!(
        run.stderr.contains("backup from before the push"),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&bench.remote.url(CORE)), after_constraint);
    assert_eq!(fingerprint(&bench.remote.url(AI)), before[1]);
    assert_eq!(after_constraint, before[0]);
    fault_case(
        "db-push",
        "a remote CHECK constraint that the local data violates (mid-data)",
        &run,
        1,
        &["only_long", "rolled back", "backup from before the push"],
        "remote Core and AI unchanged (fingerprints)",
    );
    for (case, run, code, says) in cases {
        fault_case(
            "db-push",
            case,
            &run,
            code,
            &says,
            "remote Core and AI unchanged (fingerprints)",
        );
    }
}

#[test]
fn a_lock_held_by_an_idle_remote_session_bounds_the_push_and_its_migration_and_names_the_holder() {
    require_docker!();
    let bench = Bench::start(
        |pg: &PgContainer| {
            init_and_seed(pg);
            query(
                &pg.url(CORE),
                "DELETE FROM market_data_cache WHERE id % 2 = 0",
            );
        },
        init_and_seed,
    );
    let remote = bench.remote.url(CORE);
    let before = both_fingerprints(&bench.remote);
    let count = |table: &str| query_one(&remote, &format!("SELECT count(*) FROM {table}"));
    let (positions, cache) = (count("positions"), count("market_data_cache"));

    // A push while an app session sits in a transaction after `sql`: it must fail (exit 1)
    // within a bounded time. Returns the run and how the holder is named (`pid N (`).
    let push_behind = |app: &str, sql: &str, args: &[&str]| {
        let mut app = IdleInTransaction::start(&remote, app, sql);
        let started = std::time::Instant::now();
        let run = bench.run_with("db-push", args, &[("XTASK_LOCK_TIMEOUT", "2s")]);
        let took = started.elapsed();
        app.release();
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            took < std::time::Duration::from_secs(120),
            "the push waited {took:?}"
        );
        (run, format!("pid {} (", app.pid))
    };

    // The app, idle in a transaction after a read: ACCESS SHARE on positions until it ends.
    let (run, holder) = push_behind(
        "test-app-idle",
        "SELECT count(*) FROM positions",
        &["--yes", "--core-only"],
    );
    assert_eq!(both_fingerprints(&bench.remote), before);
    assert_eq!(count("positions"), positions);
    assert_eq!(count("market_data_cache"), cache);
    fault_case(
        "db-push",
        "a remote session idle in a transaction holds a lock on a loaded table \
         (XTASK_LOCK_TIMEOUT=2s)",
        &run,
        1,
        &[
            "the load waited longer than XTASK_LOCK_TIMEOUT=2s for a lock",
            &holder,
            "test-app-idle",
            "idle in transaction, in a transaction since",
            "changed nothing (its transaction was rolled back)",
            "lock timeout",
        ],
        "remote Core and AI unchanged (fingerprints, row counts)",
    );

    // The same app session, one migration behind on the remote: c0005's foreign key to
    // portfolios needs a lock that an uncommitted write on portfolios holds. The upgrade gives
    // up after XTASK_LOCK_TIMEOUT instead of queueing every app query behind it for ever.
    support::alembic(
        &remote,
        "alembic.ini",
        &["downgrade", "c0004_risk_analytics"],
    );
    let behind = both_fingerprints(&bench.remote);
    let (run, holder) = push_behind(
        "test-app-writing",
        "LOCK TABLE portfolios IN ROW EXCLUSIVE MODE",
        &["--yes", "--core-only", "--no-backup"],
    );
    assert_eq!(both_fingerprints(&bench.remote), behind);
    assert_eq!(
        query_one(&remote, "SELECT version_num FROM alembic_version"),
        "c0004_risk_analytics"
    );
    fault_case(
        "db-push",
        "the remote's migration to head waits for a lock that an app session idle in a \
         transaction holds (XTASK_LOCK_TIMEOUT=2s)",
        &run,
        1,
        &[
            "waited longer than XTASK_LOCK_TIMEOUT=2s for a lock",
            "failed in the migration c0004_risk_analytics -> c0005_correlations: \
             sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling \
             statement due to lock timeout",
            &holder,
            "test-app-writing",
            "the database is at revision c0004_risk_analytics now",
        ],
        "remote Core unchanged (fingerprints), still at c0004",
    );
}

#[test]
fn push_from_the_17_container_into_a_postgresql_15_remote() {
    require_docker!();
    // pg_dump 17 (the container's) starts its stream with `SET transaction_timeout = 0;`, which
    // PostgreSQL 15 rejects: the push must leave that line out and load everything else.
    let cluster = support::HostCluster::start();
    let local = PgContainer::start();
    let remote = cluster.url(CORE);
    std::thread::scope(|s| {
        s.spawn(|| init_and_seed(&local));
        s.spawn(|| {
            let run = support::run_xtask(
                &["seed", "--core-only"],
                &[("DATABASE_URL", remote.as_str())],
            );
            assert_eq!(run.code, 0, "{}", run.all());
        });
    });
    assert!(
        query_one(&remote, "SHOW server_version_num").starts_with("15"),
        "the host cluster is PostgreSQL 15"
    );
    // The remote drifts, so that only a completed push makes it equal again.
    query(
        &remote,
        "DELETE FROM position_tags; DELETE FROM position_factor_exposures; \
         DELETE FROM positions; UPDATE users SET full_name = 'drifted'",
    );
    let dirs = tempfile::TempDir::new().unwrap();
    let (backups, logs) = (dirs.path().join("backups"), dirs.path().join("logs"));
    let local_url = local.url(CORE);
    let env = [
        ("DATABASE_URL", local_url.as_str()),
        ("RAILWAY_DB_URL", remote.as_str()),
        ("POSTGRES_CONTAINER", local.name.as_str()),
        ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
        ("XTASK_LOG_DIR", logs.to_str().unwrap()),
    ];
    let run = support::run_xtask(
        &["db-push", "--yes", "--core-only", "--via", "docker"],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("core: equal"), "{}", run.stdout);
    // Read back on the 15 server by the test: every table as the local one.
    assert_eq!(fingerprint(&remote), fingerprint(&local_url));
    assert_eq!(
        query_one(
            &remote,
            "SELECT count(*) FROM users WHERE full_name = 'drifted'"
        ),
        "0"
    );
    assert_eq!(
        query_one(&remote, "SELECT count(*) FROM positions"),
        query_one(&local_url, "SELECT count(*) FROM positions")
    );
}
