//! `cargo xtask onboard` against one real PostgreSQL 17 + pgvector container (named by
//! POSTGRES_CONTAINER, so Compose is not involved) and a throwaway checkout root holding only
//! .env.example. The data is read back here with SQL: the local databases must hold the seeded
//! sandbox's rows after the first run, and be untouched (same databases, same rows) by the second.

mod support;

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use support::{query, query_one, PgContainer, Run};

/// The xtask binary with nothing leaking in from the developer's settings: the URL variables are
/// set empty (so a repo-root .env that `main` loads cannot fill them; empty counts as unset), and
/// the checkout root is a temporary folder.
fn onboard(root: &Path, flags: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for var in [
        "DATABASE_URL",
        "AI_DATABASE_URL",
        "RAILWAY_DB_URL",
        "RAILWAY_AI_DB_URL",
    ] {
        cmd.env(var, "");
    }
    for var in ["XTASK_PG_VIA", "POSTGRES_CONTAINER", "PGPASSWORD"] {
        cmd.env_remove(var);
    }
    cmd.args(["onboard", "--root"]).arg(root).args(flags);
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("cannot run the xtask");
    Run::checked(out, "onboard")
}

/// A checkout root whose .env.example holds these lines.
fn checkout(example: &str) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("xtask-onboard")
        .tempdir()
        .unwrap();
    std::fs::write(root.path().join(".env.example"), example).unwrap();
    root
}

/// Every public table's exact row count, read with SQL.
fn row_counts(url: &str) -> BTreeMap<String, i64> {
    query(
        url,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .into_iter()
    .map(|row| {
        let table = row[0].clone().unwrap();
        let count = query_one(url, &format!("SELECT count(*) FROM public.\"{table}\""));
        (table, count.parse().unwrap())
    })
    .collect()
}

fn database_oid(pg: &PgContainer, dbname: &str) -> String {
    query_one(
        &pg.url("postgres"),
        &format!("SELECT oid FROM pg_database WHERE datname = '{dbname}'"),
    )
}

#[test]
fn onboard_fills_the_local_databases_from_the_sandbox_and_a_second_run_changes_nothing() {
    require_docker!();
    let pg = PgContainer::start();
    let root = checkout(&format!(
        "# the test's server\nDATABASE_URL='{}'\nAI_DATABASE_URL='{}'\n",
        pg.url("sigmasight_db"),
        pg.url("sigmasight_ai_db")
    ));
    let work = tempfile::tempdir().unwrap();
    let (backups, logs) = (work.path().join("backups"), work.path().join("logs"));
    let env = [
        ("POSTGRES_CONTAINER", pg.name.as_str()),
        ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
        ("XTASK_LOG_DIR", logs.to_str().unwrap()),
        // No XTASK_MASK_KEY: onboarding's pull always masks, and from the sandbox (the seed's
        // made-up rows) it needs no team secret.
    ];

    let started = Instant::now();
    let first = onboard(root.path(), &["--yes"], &env);
    assert_eq!(first.code, 0, "{}", first.all());
    eprintln!("first run: {:?}", started.elapsed());
    for part in [
        "created .env from .env.example",
        "source: the embedded default, a sandbox",
        "seed --target local (on the sandbox)",
        // Freshly migrated and empty: no question, no backup.
        "db-pull --yes --no-backup",
        "data: masked on the source",
        "onboard: done. What is where:",
        "  pulled        yes; db-verify: equal",
        "  .env          created from .env.example",
        "  source        sandbox \"remote\" sandbox_remote_db + sandbox_remote_ai_db",
    ] {
        assert!(
            first.stderr.contains(part),
            "lacks {part:?}:\n{}",
            first.all()
        );
    }
    assert!(
        first.stderr.contains(&format!(
            "  container     {} (pgvector/pgvector:pg17), localhost:{}",
            pg.name, pg.port
        )),
        "{}",
        first.stderr
    );
    assert!(first.stdout.contains("core: equal"), "{}", first.stdout);
    assert!(first.stdout.contains("ai: equal"), "{}", first.stdout);
    let env_file = std::fs::read(root.path().join(".env")).unwrap();
    assert_eq!(
        env_file,
        std::fs::read(root.path().join(".env.example")).unwrap()
    );
    assert!(
        !backups.exists() || std::fs::read_dir(&backups).unwrap().next().is_none(),
        "empty local databases need no backup"
    );

    // The local databases hold the sandbox's rows, the seed's production shape.
    let sandbox = row_counts(&pg.url("sandbox_remote_db"));
    let sandbox_ai = row_counts(&pg.url("sandbox_remote_ai_db"));
    let local = row_counts(&pg.url("sigmasight_db"));
    let local_ai = row_counts(&pg.url("sigmasight_ai_db"));
    assert_eq!(local, sandbox);
    assert_eq!(local_ai, sandbox_ai);
    assert_eq!(local["users"], 6);
    assert_eq!(local["positions"], 97);
    assert!(local_ai["ai_kb_documents"] > 0, "{local_ai:?}");
    // The summary's row counts are the data's (alembic_version left out).
    let data_rows: i64 = local
        .iter()
        .filter(|(t, _)| *t != "alembic_version")
        .map(|(_, n)| n)
        .sum();
    assert!(
        first
            .stderr
            .contains(&format!("  local core    postgresql://sigmasight:****@127.0.0.1:{}/sigmasight_db  {data_rows} rows, alembic ", pg.port)),
        "{}",
        first.stderr
    );

    // Second run: everything is already right.
    let oids = (
        database_oid(&pg, "sigmasight_db"),
        database_oid(&pg, "sigmasight_ai_db"),
        database_oid(&pg, "sandbox_remote_db"),
    );
    let started = Instant::now();
    let second = onboard(root.path(), &["--yes"], &env);
    assert_eq!(second.code, 0, "{}", second.all());
    eprintln!("second run: {:?}", started.elapsed());
    for part in [
        ".env exists: kept as it is",
        "the sandbox already holds data (core ",
        "not seeded again",
        "the local databases already equal the source: no pull needed",
        "  pulled        no (already equal); db-verify: equal",
        "  .env          kept as it was",
    ] {
        assert!(
            second.stderr.contains(part),
            "lacks {part:?}:\n{}",
            second.all()
        );
    }
    assert!(!second.stderr.contains("db-pull"), "{}", second.stderr);
    assert!(
        !second.stderr.contains("seed --target"),
        "{}",
        second.stderr
    );
    // No pull: a pull swaps in a new database (a new oid); the rows are the same too.
    assert_eq!(
        (
            database_oid(&pg, "sigmasight_db"),
            database_oid(&pg, "sigmasight_ai_db"),
            database_oid(&pg, "sandbox_remote_db"),
        ),
        oids
    );
    assert_eq!(row_counts(&pg.url("sigmasight_db")), local);
    assert_eq!(row_counts(&pg.url("sigmasight_ai_db")), local_ai);
    assert_eq!(std::fs::read(root.path().join(".env")).unwrap(), env_file);

    // Local data that differs from the source: without --yes and without a terminal, onboarding
    // stops (exit 1) and changes nothing; with --yes it pulls, after a backup.
    query(&pg.url("sigmasight_db"), "DELETE FROM position_tags");
    let refused = onboard(root.path(), &[], &env);
    assert_eq!(refused.code, 1, "{}", refused.all());
    for part in [
        "onboard: db-verify: core: DIFFERENT: 1 table with different row counts",
        "there is no terminal to ask on",
        "run `scripts/onboard.sh --yes`",
    ] {
        assert!(
            refused.stderr.contains(part),
            "lacks {part:?}:\n{}",
            refused.all()
        );
    }
    assert_eq!(database_oid(&pg, "sigmasight_db"), oids.0);
    assert_eq!(row_counts(&pg.url("sigmasight_db"))["position_tags"], 0);

    let replaced = onboard(root.path(), &["--yes"], &env);
    assert_eq!(replaced.code, 0, "{}", replaced.all());
    assert!(
        replaced.stderr.contains("onboard: db-pull --yes (source"),
        "{}",
        replaced.stderr
    );
    assert!(
        replaced
            .stderr
            .contains("  pulled        yes; db-verify: equal"),
        "{}",
        replaced.stderr
    );
    assert_eq!(row_counts(&pg.url("sigmasight_db")), local);
    assert_eq!(row_counts(&pg.url("sigmasight_ai_db")), local_ai);
    let backups: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(
        backups
            .iter()
            .any(|b| b.starts_with("local-sigmasight_db-")),
        "{backups:?}"
    );
}

#[test]
fn bad_settings_fail_before_anything_is_started_with_a_clear_message() {
    // An unparsable DATABASE_URL: a usage error (2), the password not repeated.
    let root = checkout(
        "DATABASE_URL=sigmasight:s3cret-pw@localhost/sigmasight_db\n\
         AI_DATABASE_URL=postgresql://sigmasight:s3cret-pw@localhost:5432/sigmasight_ai_db\n",
    );
    let started = Instant::now();
    let run = onboard(
        root.path(),
        &["--yes"],
        &[("POSTGRES_CONTAINER", "xtask-no-such-container")],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("--local-url / DATABASE_URL: not a URL: expected postgresql://"),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("s3cret-pw"), "{}", run.all());
    // Decided from the settings alone: no container was looked for.
    assert!(
        !run.all().contains("xtask-no-such-container"),
        "{}",
        run.all()
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // RAILWAY_DB_URL without RAILWAY_AI_DB_URL: refused (1), as the script did.
    let run = onboard(
        root.path(),
        &["--yes"],
        &[
            (
                "DATABASE_URL",
                "postgresql://sigmasight:s3cret-pw@localhost:5432/sigmasight_db",
            ),
            (
                "RAILWAY_DB_URL",
                "postgresql://postgres:s3cret-pw@core.remote.invalid:1234/railway",
            ),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("RAILWAY_DB_URL is set but RAILWAY_AI_DB_URL is not"),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("s3cret-pw"), "{}", run.all());
}
