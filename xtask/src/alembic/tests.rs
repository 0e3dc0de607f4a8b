//! The Alembic commands as they are built, and what their output is parsed into.

use super::*;

#[test]
fn url_goes_to_the_environment_not_the_arguments() {
    let url = DbUrl::parse("postgresql+asyncpg://u:s3cret@h:1/sigmasight_ai_db").unwrap();
    let cmd =
        AlembicConfig::Ai.command(Path::new("/repo/backend"), Some(&url), &["upgrade", "head"]);
    assert_eq!(cmd.program, "uv");
    assert_eq!(
        cmd.args,
        [
            "run",
            "--locked",
            "--directory",
            "/repo/backend",
            "alembic",
            "-c",
            "alembic_ai.ini",
            "upgrade",
            "head"
        ]
    );
    assert_eq!(cmd.env[0].0, "AI_DATABASE_URL");
    assert_eq!(cmd.env[0].1, "postgresql://u:s3cret@h:1/sigmasight_ai_db");
    assert!(!cmd.to_string().contains("s3cret"));
}

const HISTORY: &str = "\
Rev: c0005_correlations (head)
Parent: c0004_risk_analytics
Path: /b/migrations_core/versions/c0005_correlations.py

    correlation calculations
    Revises: c0004_risk_analytics

Rev: c0004_risk_analytics
Parent: c0003_merge
Path: /b/migrations_core/versions/c0004_risk_analytics.py

    risk analytics
    Parent: not a real line, it is indented

Rev: c0003_merge (mergepoint)
Merges: c0002a_tags, c0002b_market_data
Path: /b/migrations_core/versions/c0003_merge.py

Rev: c0002a_tags
Parent: c0001_base
Path: /b/migrations_core/versions/c0002a_tags.py

Rev: c0002b_market_data
Parent: c0001_base
Path: /b/migrations_core/versions/c0002b_market_data.py

Rev: c0001_base (branchpoint)
Parent: <base>
Branches into: c0002a_tags, c0002b_market_data
Path: /b/migrations_core/versions/c0001_base.py
";

#[test]
fn parses_the_verbose_history_with_a_merge() {
    let graph = RevisionGraph::parse(HISTORY);
    assert_eq!(graph.heads, ["c0005_correlations"]);
    assert_eq!(graph.parents.len(), 6);
    assert_eq!(
        graph.parents["c0003_merge"],
        ["c0002a_tags", "c0002b_market_data"]
    );
    assert!(graph.parents["c0001_base"].is_empty());
    assert_eq!(graph.parents["c0004_risk_analytics"], ["c0003_merge"]);
}

#[test]
fn counts_pending_migrations_across_branches() {
    let graph = RevisionGraph::parse(HISTORY);
    let revs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(graph.pending(&revs(&["c0005_correlations"])), Ok(0));
    assert_eq!(graph.pending(&revs(&["c0003_merge"])), Ok(2));
    // One branch applied: the other branch, the merge and what follows are pending.
    assert_eq!(graph.pending(&revs(&["c0002a_tags"])), Ok(4));
    assert_eq!(graph.pending(&[]), Ok(6));
    assert_eq!(
        graph.pending(&revs(&["i6j7k8l9m0n1", "c0001_base"])),
        Err(revs(&["i6j7k8l9m0n1"]))
    );
}

#[test]
fn stamp_purges_and_keeps_the_url_out_of_the_arguments() {
    let url = DbUrl::parse("postgresql://u:s3cret@h:1/sigmasight_db").unwrap();
    let cmd = AlembicConfig::Core.stamp_command(Path::new("/b"), &url, &["c2a", "c2b"]);
    assert_eq!(
        cmd.args[cmd.args.len() - 4..],
        ["stamp", "--purge", "c2a", "c2b"]
    );
    assert_eq!(cmd.env[0].0, "DATABASE_URL");
    assert!(!cmd.args.iter().any(|a| a.contains("s3cret")));
    assert_eq!(
        AlembicConfig::Ai.merge_command(&["a1".into(), "a2".into()]),
        "uv run alembic -c alembic_ai.ini merge -m \"merge heads\" a1 a2"
    );
}

#[test]
fn a_failed_upgrade_names_the_migration_and_its_error() {
    let stderr = "\
INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
INFO  [alembic.runtime.migration] Will assume transactional DDL.
INFO  [alembic.runtime.migration] Running upgrade c0004_risk -> c0005_corr, correlations
INFO  [alembic.runtime.migration] Running upgrade c0005_corr -> c0006_boom, boom, at last
Traceback (most recent call last):
  File \"/b/migrations_core/versions/c0006_boom.py\", line 12, in upgrade
raise RuntimeError(\"boom\")
RuntimeError: boom

";
    let (step, error) = failed_migration(stderr);
    assert_eq!(step.as_deref(), Some("c0005_corr -> c0006_boom"));
    assert_eq!(error.as_deref(), Some("RuntimeError: boom"));
    let stderr = "\
INFO  [alembic.runtime.migration] Running upgrade c0004_risk -> c0005_corr, correlations
sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling statement due to lock timeout
[SQL:
CREATE TABLE correlation_calculations (
\tid UUID NOT NULL
)
]
(Background on this error at: https://sqlalche.me/e/21/e3q8)
";
    let (step, error) = failed_migration(stderr);
    assert_eq!(step.as_deref(), Some("c0004_risk -> c0005_corr"));
    assert_eq!(
        error.as_deref(),
        Some(
            "sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling \
             statement due to lock timeout"
        )
    );
    let (step, error) = failed_migration("FAILED: Can't locate revision identified by 'x'\n");
    assert_eq!(step, None);
    assert_eq!(
        error.as_deref(),
        Some("FAILED: Can't locate revision identified by 'x'")
    );
}

#[test]
fn programs_are_found_on_path_only() {
    assert!(find_on_path("sh").is_some());
    assert!(find_on_path("xtask-no-such-program").is_none());
}

#[test]
fn parses_heads_output() {
    assert_eq!(parse_revisions("c0005_corr (head)\n"), ["c0005_corr"]);
    assert_eq!(
        parse_revisions("c2a_tags (head)\nc2b_market (head)\n"),
        ["c2a_tags", "c2b_market"]
    );
    assert!(parse_revisions("").is_empty());
}

#[test]
fn an_upgrade_bounds_its_lock_waits_and_keeps_the_users_pgoptions() {
    use std::time::Duration;
    let limit = Some(Duration::from_secs(30));
    assert_eq!(
        pgoptions_with_lock_timeout(None, limit),
        "-c lock_timeout=30000"
    );
    assert_eq!(
        pgoptions_with_lock_timeout(Some("  "), limit),
        "-c lock_timeout=30000"
    );
    // Ours last: a later `-c` of the same setting wins.
    assert_eq!(
        pgoptions_with_lock_timeout(Some("-c search_path=app -c lock_timeout=0"), limit),
        "-c search_path=app -c lock_timeout=0 -c lock_timeout=30000"
    );
    assert_eq!(pgoptions_with_lock_timeout(None, None), "-c lock_timeout=0");
}

#[test]
fn a_migration_that_gave_up_on_a_lock_is_told_apart() {
    assert!(waited_for_lock(
        "psycopg.errors.LockNotAvailable: canceling statement due to lock timeout\n"
    ));
    assert!(waited_for_lock(
        "ERROR:  canceling statement due to lock timeout\n"
    ));
    assert!(!waited_for_lock(
        "psycopg.errors.DuplicateTable: relation \"x\" already exists\n"
    ));
}
