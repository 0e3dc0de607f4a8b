//! `cargo xtask alembic-stamp` and `alembic-status` against real PostgreSQL 17 + pgvector
//! servers and real Alembic (`uv run`): a dump restored with a stale `alembic_version` is stamped
//! in both configs in one run and `upgrade head` is then a no-op (runbook 002); a database missing
//! a table is refused, the table named and `alembic_version` left as it was, and `--force`
//! stamps it anyway (runbook 003); two heads in a copy of the migrations fail
//! `alembic-status --offline` naming both, refuse a stamp at `head` naming the merge, and
//! `--revision heads` stamps both; a revision whose only change is a view is refused on a
//! database without it, naming the view. One container per test, several databases in it.

mod support;

use std::{path::Path, process::Command};

use support::{copy_backend, dump_restore, query, query_one, run_xtask, PgContainer, Run};

/// `uv run alembic -c <ini> <args>` in `backend`, with the URL in the config's variable.
fn alembic(backend: &Path, ini: &str, url: &str, args: &[&str]) -> std::process::Output {
    let var = if ini == "alembic_ai.ini" {
        "AI_DATABASE_URL"
    } else {
        "DATABASE_URL"
    };
    Command::new("uv")
        .args(["run", "--locked", "--directory"])
        .arg(backend)
        .args(["alembic", "-c", ini])
        .args(args)
        .env(var, url)
        .output()
        .expect("cannot run uv")
}

fn versions(url: &str) -> Vec<String> {
    query(url, "SELECT version_num FROM alembic_version ORDER BY 1")
        .into_iter()
        .map(|row| row[0].clone().unwrap_or_default())
        .collect()
}

/// The throwaway databases that alembic-stamp builds must never outlive it.
fn assert_no_throwaway_left(pg: &PgContainer) {
    let left = query_one(
        &pg.url("postgres"),
        "SELECT count(*) FROM pg_database WHERE datname LIKE '%xtask_stamp_check'",
    );
    assert_eq!(left, "0", "a throwaway database was left behind");
}

/// The output with each line's runs of spaces collapsed (the status columns are aligned).
fn squeezed(out: &str) -> String {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json must print one JSON document ({e}):\n{}", run.stdout))
}

fn init(pg: &PgContainer, core: &str, ai: Option<&str>) {
    let core = pg.url(core);
    let ai = ai.map(|a| pg.url(a));
    let mut env = vec![("DATABASE_URL", core.as_str())];
    let mut args = vec!["db-init"];
    match &ai {
        Some(ai) => env.push(("AI_DATABASE_URL", ai.as_str())),
        None => args.push("--core-only"),
    }
    let run = run_xtask(&args, &env);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn restored_dump_with_stale_versions_is_stamped_in_both_configs_and_upgrade_is_then_a_no_op() {
    require_docker!();
    let pg = PgContainer::start();
    init(&pg, "src_core", Some("src_ai"));
    // Runbook 002: the schema is restored whole from a dump, but alembic_version keeps an old
    // revision (in AI one that the scripts do not even know, like its `i6j7k8l9m0n1`).
    dump_restore(&pg, "src_core", "core");
    dump_restore(&pg, "src_ai", "ai");
    let (core, ai) = (pg.url("core"), pg.url("ai"));
    query(
        &core,
        "UPDATE alembic_version SET version_num = 'c0003_merge'",
    );
    query(
        &ai,
        "UPDATE alembic_version SET version_num = 'i6j7k8l9m0n1'",
    );
    let backend = support::backend_dir();
    let upgrade = alembic(&backend, "alembic.ini", &core, &["upgrade", "head"]);
    assert!(
        !upgrade.status.success(),
        "the runbook's failure must reproduce"
    );
    assert!(
        String::from_utf8_lossy(&upgrade.stderr).contains("DuplicateTable"),
        "{}",
        String::from_utf8_lossy(&upgrade.stderr)
    );

    let (src_core, src_ai) = (pg.url("src_core"), pg.url("src_ai"));
    let urls = [
        "--local-url",
        &core,
        "--local-ai-url",
        &ai,
        "--remote-url",
        &src_core,
        "--remote-ai-url",
        &src_ai,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        urls.iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let status = |extra: &[&str]| {
        let args = with(extra);
        run_xtask(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };

    let before = status(&["alembic-status"]);
    assert_eq!(before.code, 3, "{}", before.all());
    let lines = squeezed(&before.stdout);
    assert!(
        lines.contains("local c0003_merge BEHIND: 2 migrations pending"),
        "{lines}"
    );
    assert!(
        lines.contains("local i6j7k8l9m0n1 UNKNOWN REVISION: not in these migration scripts"),
        "{lines}"
    );
    assert!(
        lines.contains("remote a0002_memories_feedback at head"),
        "{lines}"
    );
    assert!(
        before
            .stderr
            .contains("local core is 2 migrations behind; local ai is at i6j7k8l9m0n1"),
        "{}",
        before.stderr
    );

    // No terminal and no --yes: refused (exit 2), nothing changed.
    let unconfirmed = status(&["alembic-stamp"]);
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.all());
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(versions(&core), ["c0003_merge"]);
    assert_eq!(versions(&ai), ["i6j7k8l9m0n1"]);

    // Both configs in one run.
    let stamp = status(&["alembic-stamp", "--yes"]);
    assert_eq!(stamp.code, 0, "{}", stamp.all());
    assert!(
        stamp
            .stdout
            .contains("stamped local core core: c0003_merge -> c0005_correlations"),
        "{}",
        stamp.stdout
    );
    assert!(
        stamp
            .stdout
            .contains("stamped local ai ai: i6j7k8l9m0n1 -> a0002_memories_feedback"),
        "{}",
        stamp.stdout
    );
    // The CHECK constraint that a dump and restore rewrites is no reason to refuse.
    assert!(
        stamp.stdout.contains(
            "constraint public.positions.ck_positions_position_type is written differently"
        ),
        "{}",
        stamp.stdout
    );
    assert_eq!(versions(&core), ["c0005_correlations"]);
    assert_eq!(versions(&ai), ["a0002_memories_feedback"]);
    assert_no_throwaway_left(&pg);

    // `upgrade head` is now a no-op: it succeeds and runs no migration.
    for (ini, url) in [("alembic.ini", &core), ("alembic_ai.ini", &ai)] {
        let out = alembic(&backend, ini, url, &["upgrade", "head"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{ini}: {stderr}");
        assert!(!stderr.contains("Running upgrade"), "{ini}: {stderr}");
    }
    assert_eq!(versions(&core), ["c0005_correlations"]);

    let after = status(&["--json", "alembic-status"]);
    assert_eq!(after.code, 0, "{}", after.all());
    let report = json(&after);
    assert_eq!(report["ok"], true);
    assert_eq!(report["configs"][0]["config"], "alembic.ini");
    assert_eq!(report["configs"][0]["heads"][0], "c0005_correlations");
    assert_eq!(report["configs"][0]["databases"][0]["status"], "at_head");
    assert_eq!(report["configs"][0]["databases"][0]["pending"], 0);
    assert_eq!(report["configs"][1]["databases"][1]["side"], "remote");
    assert_eq!(report["configs"][1]["databases"][1]["status"], "at_head");

    // A second stamp has nothing to do.
    let again = status(&["alembic-stamp"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again
            .stdout
            .contains("local core core: already at c0005_correlations; nothing to stamp"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_database_missing_a_table_is_refused_and_named_and_force_stamps_it_anyway() {
    require_docker!();
    let pg = PgContainer::start();
    init(&pg, "core", None);
    let core = pg.url("core");
    // Runbook 003: a table that a migration creates is not there, and alembic_version is behind.
    query(&core, "DROP TABLE pairwise_correlations");
    query(
        &core,
        "UPDATE alembic_version SET version_num = 'c0004_risk_analytics'",
    );
    let args = [
        "--local-url",
        &core,
        "alembic-stamp",
        "--config",
        "core",
        "--yes",
    ];

    let refused = run_xtask(&args, &[]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stdout
            .contains("missing table public.pairwise_correlations"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stderr.contains("alembic-stamp refused")
            && refused.stderr.contains("`upgrade` is the right move")
            && refused
                .stderr
                .contains("uv run alembic -c alembic.ini upgrade head"),
        "{}",
        refused.stderr
    );
    assert_eq!(versions(&core), ["c0004_risk_analytics"]);
    assert_no_throwaway_left(&pg);

    // The same database as the remote one this time.
    let forced = run_xtask(
        &[
            "--remote-url",
            &core,
            "--json",
            "alembic-stamp",
            "--remote",
            "--config",
            "core",
            "--yes",
            "--force",
        ],
        &[],
    );
    assert_eq!(forced.code, 0, "{}", forced.all());
    assert!(
        forced
            .stderr
            .contains("warning: --force: stamping remote core"),
        "{}",
        forced.stderr
    );
    let report = json(&forced);
    let db = &report["databases"][0];
    assert_eq!(db["side"], "remote");
    assert_eq!(db["action"], "stamped");
    assert_eq!(db["schema_matches"], false);
    assert_eq!(db["problems"][0]["problem"], "missing");
    assert_eq!(db["problems"][0]["kind"], "table");
    assert_eq!(db["problems"][0]["object"], "public.pairwise_correlations");
    assert_eq!(db["before"][0], "c0004_risk_analytics");
    assert_eq!(db["after"][0], "c0005_correlations");
    assert_eq!(versions(&core), ["c0005_correlations"]);
    assert_no_throwaway_left(&pg);
}

/// A copy of backend/ whose Core history has two heads: `c0006_branch_notes` comes after
/// `c0004_risk_analytics`, as `c0005_correlations` does.
fn two_heads_backend() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("xtask-two-heads")
        .tempdir()
        .unwrap();
    copy_backend(dir.path());
    std::fs::write(
        dir.path()
            .join("migrations_core/versions/c0006_branch_notes.py"),
        r#""""branch_notes: a second revision after c0004_risk_analytics (a second head)

Revision ID: c0006_branch_notes
Revises: c0004_risk_analytics
"""
import sqlalchemy as sa
from alembic import op

revision = "c0006_branch_notes"
down_revision = "c0004_risk_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("branch_notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("branch_notes")
"#,
    )
    .unwrap();
    dir
}

#[test]
fn two_heads_fail_offline_status_naming_both_and_stamping_head_names_the_merge() {
    // The real scripts pass, even with an unusable URL around: offline needs no database.
    let ok = run_xtask(
        &["alembic-status", "--offline"],
        &[("DATABASE_URL", "mysql://not/a/postgres/url")],
    );
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert!(
        ok.stdout
            .contains("alembic.ini (core): head c0005_correlations"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains("--offline: no database checked"),
        "{}",
        ok.stdout
    );

    let backend = two_heads_backend();
    let env = [("XTASK_BACKEND_DIR", backend.path().to_str().unwrap())];
    let run = run_xtask(&["alembic-status", "--offline"], &env);
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stdout
            .contains("MULTIPLE HEADS: c0005_correlations, c0006_branch_notes (2 heads)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "uv run alembic -c alembic.ini merge -m \"merge heads\" c0005_correlations \
             c0006_branch_notes"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "error: alembic-status: alembic.ini has 2 heads (c0005_correlations, \
             c0006_branch_notes)"
        ),
        "{}",
        run.stderr
    );
    // The AI history still has its single head.
    assert!(
        run.stdout
            .contains("alembic_ai.ini (ai): head a0002_memories_feedback"),
        "{}",
        run.stdout
    );

    let json_run = run_xtask(&["alembic-status", "--offline", "--json"], &env);
    assert_eq!(json_run.code, 3, "{}", json_run.all());
    let report = json(&json_run);
    assert_eq!(report["ok"], false);
    assert_eq!(report["configs"][0]["multiple_heads"], true);
    assert_eq!(
        report["configs"][0]["heads"],
        serde_json::json!(["c0005_correlations", "c0006_branch_notes"])
    );

    // `head` is ambiguous: refused before any database is touched (this URL has no server).
    let url = format!(
        "postgresql://u:{}@127.0.0.1:{}/core",
        support::PASSWORD_ENCODED,
        support::free_port()
    );
    let stamp = run_xtask(
        &[
            "--local-url",
            &url,
            "alembic-stamp",
            "--config",
            "core",
            "--yes",
        ],
        &env,
    );
    assert_eq!(stamp.code, 1, "{}", stamp.all());
    assert!(
        stamp.stderr.contains(
            "alembic.ini has 2 heads (c0005_correlations, c0006_branch_notes), so `head` names \
             no single revision: a merge revision is needed"
        ),
        "{}",
        stamp.stderr
    );
    assert!(
        stamp.stderr.contains("--revision heads"),
        "{}",
        stamp.stderr
    );
}

#[test]
fn revision_heads_stamps_every_head_of_a_branchy_history() {
    require_docker!();
    let pg = PgContainer::start();
    let backend = two_heads_backend();
    let env = [("XTASK_BACKEND_DIR", backend.path().to_str().unwrap())];
    query(&pg.url("postgres"), "CREATE DATABASE core");
    let core = pg.url("core");
    let up = alembic(backend.path(), "alembic.ini", &core, &["upgrade", "heads"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    query(&core, "DELETE FROM alembic_version");
    query(
        &core,
        "INSERT INTO alembic_version VALUES ('c0004_risk_analytics')",
    );

    let run = run_xtask(
        &[
            "--local-url",
            &core,
            "alembic-stamp",
            "--config",
            "core",
            "--revision",
            "heads",
            "--yes",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(
            "stamped local core core: c0004_risk_analytics -> c0005_correlations, \
             c0006_branch_notes"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        versions(&core),
        ["c0005_correlations", "c0006_branch_notes"]
    );
    assert_no_throwaway_left(&pg);

    // At both heads, but the history still has two: not a clean status.
    let status = run_xtask(
        &["--core-only", "--local-url", &core, "alembic-status"],
        &env,
    );
    assert_eq!(status.code, 3, "{}", status.all());
    assert!(status.stdout.contains("at head"), "{}", status.stdout);
    assert!(
        status.stdout.contains("MULTIPLE HEADS"),
        "{}",
        status.stdout
    );
}

#[test]
fn status_of_an_unreachable_database_exits_1_and_names_it() {
    let url = format!(
        "postgresql://u:{}@127.0.0.1:{}/sigmasight_db",
        support::PASSWORD_ENCODED,
        support::free_port()
    );
    let run = run_xtask(
        &[
            "--core-only",
            "--local-url",
            &url,
            "alembic-status",
            "--timeout",
            "2",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "alembic-status could not check local core: cannot reach postgresql://u:****@127.0.0.1:"
        ),
        "{}",
        run.stderr
    );
    assert!(
        squeezed(&run.stdout).contains("remote not configured (no --remote-url / RAILWAY_DB_URL)"),
        "{}",
        run.stdout
    );
}

/// A Core migration whose only change is a view.
const VIEW_MIGRATION: &str = r#""""active_users: a view, and nothing else

Revision ID: c0006_active_users
Revises: c0005_correlations
"""
from alembic import op

revision = "c0006_active_users"
down_revision = "c0005_correlations"
branch_labels = None
depends_on = None

VIEW = "CREATE VIEW public.active_users AS SELECT id, email FROM public.users WHERE is_active"


def upgrade() -> None:
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW public.active_users")
"#;

#[test]
fn a_revision_whose_only_change_is_a_view_is_not_stamped_on_a_database_without_it() {
    require_docker!();
    let pg = PgContainer::start();
    init(&pg, "core", None);
    let core = pg.url("core");
    let backend = support::backend_with_core_migration("c0006_active_users.py", VIEW_MIGRATION);
    let backend_dir = backend.path().display().to_string();
    let env = [("XTASK_BACKEND_DIR", backend_dir.as_str())];
    let args = [
        "--local-url",
        &core,
        "alembic-stamp",
        "--config",
        "core",
        "--yes",
    ];

    // Every table is there; the view that c0006 creates is not.
    let refused = run_xtask(&args, &env);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        squeezed(&refused.stdout).contains("missing view public.active_users"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stderr.contains("alembic-stamp refused"),
        "{}",
        refused.stderr
    );
    assert_eq!(versions(&core), ["c0005_correlations"]);
    assert_no_throwaway_left(&pg);

    // Another definition under the same name is refused too.
    query(
        &core,
        "CREATE VIEW public.active_users AS SELECT id, email FROM public.users",
    );
    let refused = run_xtask(&args, &env);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        squeezed(&refused.stdout).contains("view public.active_users: definition differs"),
        "{}",
        refused.stdout
    );
    assert_eq!(versions(&core), ["c0005_correlations"]);

    // With the view as the migration writes it, the schema is at c0006: stamped.
    query(
        &core,
        "CREATE OR REPLACE VIEW public.active_users AS \
         SELECT id, email FROM public.users WHERE is_active",
    );
    let stamped = run_xtask(&args, &env);
    assert_eq!(stamped.code, 0, "{}", stamped.all());
    assert_eq!(versions(&core), ["c0006_active_users"]);
    assert_no_throwaway_left(&pg);
}
