//! What a copy takes beyond the tables' rows, against a real container: an unowned sequence's
//! position (set from the source's snapshot after the data) and materialized views (refreshed
//! after the data, one built on another after it), for db-pull with `--schema source` and with
//! the migrations, and for db-push. Each case reads the target back with its own SQL, then runs
//! `db-verify` on both sides.

mod support;

use support::{query, query_one, PgContainer};

#[test]
fn a_pull_sets_unowned_sequences_and_refreshes_materialized_views() {
    require_docker!();
    let pg = PgContainer::start();
    for db in ["src", "dst", "src_ai", "dst_ai"] {
        query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
    }
    // `invoice_no` is used through nextval() only; `by_kind` reads `totals`, so it is refreshed
    // after it.
    query(
        &pg.url("src"),
        "CREATE TABLE public.items (id serial PRIMARY KEY, kind int NOT NULL);
         INSERT INTO public.items (kind) SELECT g % 7 FROM generate_series(1, 300) g;
         CREATE SEQUENCE public.invoice_no;
         SELECT pg_catalog.setval('public.invoice_no', 1000);
         CREATE MATERIALIZED VIEW public.totals AS SELECT kind, count(*) AS n FROM public.items GROUP BY kind;
         CREATE MATERIALIZED VIEW public.by_kind AS SELECT kind FROM public.totals WHERE n > 0;",
    );
    query(&pg.url("src_ai"), "CREATE TABLE t (x int)");
    let run = support::pull(
        &pg,
        &[
            "--remote-url",
            &pg.url("src"),
            "--remote-ai-url",
            &pg.url("src_ai"),
            "--local-url",
            &pg.url("dst"),
            "--local-ai-url",
            &pg.url("dst_ai"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let dst = pg.url("dst");
    assert_eq!(
        query_one(
            &dst,
            "SELECT last_value || ' ' || is_called FROM public.invoice_no"
        ),
        "1000 true"
    );
    for view in ["public.totals", "public.by_kind"] {
        let count = format!("SELECT count(*) FROM {view}");
        assert_eq!(query_one(&dst, &count), "7", "{view}");
        assert_eq!(query_one(&dst, &count), query_one(&pg.url("src"), &count));
    }
    let (src_url, dst_url) = (pg.url("src"), dst.clone());
    let verify = || {
        support::run_xtask(
            &[
                "db-verify",
                "--core-only",
                "--remote-url",
                &src_url,
                "--local-url",
                &dst_url,
            ],
            &[],
        )
    };
    let same = verify();
    assert_eq!(same.code, 0, "{}", same.all());
    // The copy goes on where the source's was; one nextval later the positions differ, and
    // db-verify says so.
    assert_eq!(
        query_one(&dst, "SELECT nextval('public.invoice_no')"),
        "1001"
    );
    let moved = verify();
    assert_ne!(moved.code, 0, "{}", moved.all());
    assert!(moved.all().contains("invoice_no"), "{}", moved.all());
}

/// A migration that creates what pg_dump's `--table` data dump does not carry: an unowned
/// sequence and a materialized view.
const OBJECTS_MIGRATION: &str = r#""""an unowned sequence and a materialized view

Revision ID: c0006_invoice_objects
Revises: c0005_correlations
"""
from alembic import op

revision = "c0006_invoice_objects"
down_revision = "c0005_correlations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE invoice_lines (id serial PRIMARY KEY, kind int NOT NULL)")
    op.execute("CREATE SEQUENCE invoice_no")
    op.execute(
        "CREATE MATERIALIZED VIEW invoice_totals AS "
        "SELECT kind, count(*) AS n FROM invoice_lines GROUP BY kind"
    )


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW invoice_totals")
    op.execute("DROP SEQUENCE invoice_no")
    op.execute("DROP TABLE invoice_lines")
"#;

#[test]
fn a_pull_built_by_the_migrations_takes_unowned_sequences_and_materialized_views() {
    require_docker!();
    let pg = PgContainer::start();
    let backend =
        support::backend_with_core_migration("c0006_invoice_objects.py", OBJECTS_MIGRATION);
    let backend_dir = backend.path().display().to_string();
    let (src, src_ai, dst, dst_ai) = (
        pg.url("src"),
        pg.url("src_ai"),
        pg.url("dst"),
        pg.url("dst_ai"),
    );
    let env = [
        ("DATABASE_URL", src.as_str()),
        ("AI_DATABASE_URL", src_ai.as_str()),
        ("XTASK_BACKEND_DIR", backend_dir.as_str()),
    ];
    let init = support::run_xtask(&["db-init"], &env);
    assert_eq!(init.code, 0, "{}", init.all());
    query(
        &src,
        "INSERT INTO invoice_lines (kind) SELECT g % 5 FROM generate_series(1, 200) g;
         SELECT pg_catalog.setval('invoice_no', 1000);
         REFRESH MATERIALIZED VIEW invoice_totals;",
    );
    let dirs = tempfile::TempDir::new().unwrap();
    let (backups, logs) = (dirs.path().join("b"), dirs.path().join("l"));
    let run = support::run_xtask(
        &[
            "db-pull",
            "--unmasked",
            "--yes",
            "--container",
            &pg.name,
            "--remote-url",
            &src,
            "--remote-ai-url",
            &src_ai,
            "--local-url",
            &dst,
            "--local-ai-url",
            &dst_ai,
        ],
        &[
            ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
            ("XTASK_LOG_DIR", logs.to_str().unwrap()),
            ("XTASK_BACKEND_DIR", backend_dir.as_str()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        query_one(
            &dst,
            "SELECT last_value || ' ' || is_called FROM invoice_no"
        ),
        "1000 true"
    );
    let count = "SELECT count(*) FROM invoice_totals";
    assert_eq!(query_one(&dst, count), "5");
    let verify = support::run_xtask(
        &[
            "db-verify",
            "--remote-url",
            &src,
            "--remote-ai-url",
            &src_ai,
            "--local-url",
            &dst,
            "--local-ai-url",
            &dst_ai,
        ],
        &[("XTASK_BACKEND_DIR", backend_dir.as_str())],
    );
    assert_eq!(verify.code, 0, "{}", verify.all());
}

#[test]
fn a_push_takes_unowned_sequences_and_materialized_views() {
    require_docker!();
    let pg = PgContainer::start();
    let backend =
        support::backend_with_core_migration("c0006_invoice_objects.py", OBJECTS_MIGRATION);
    let backend_dir = backend.path().display().to_string();
    let (local, local_ai, remote, remote_ai) = (
        pg.url("loc"),
        pg.url("loc_ai"),
        pg.url("rem"),
        pg.url("rem_ai"),
    );
    let init = support::run_xtask(
        &["db-init"],
        &[
            ("DATABASE_URL", local.as_str()),
            ("AI_DATABASE_URL", local_ai.as_str()),
            ("XTASK_BACKEND_DIR", backend_dir.as_str()),
        ],
    );
    assert_eq!(init.code, 0, "{}", init.all());
    query(
        &local,
        "INSERT INTO invoice_lines (kind) SELECT g % 4 FROM generate_series(1, 100) g;
         SELECT pg_catalog.setval('invoice_no', 1000);
         REFRESH MATERIALIZED VIEW invoice_totals;",
    );
    for db in ["rem", "rem_ai"] {
        query(&pg.url("postgres"), &format!("CREATE DATABASE {db}"));
    }
    let urls = [
        "--remote-url",
        &remote,
        "--remote-ai-url",
        &remote_ai,
        "--local-url",
        &local,
        "--local-ai-url",
        &local_ai,
    ];
    let dirs = tempfile::TempDir::new().unwrap();
    let (backups, logs) = (dirs.path().join("b"), dirs.path().join("l"));
    let mut args = vec!["db-push", "--yes", "--no-backup", "--container", &pg.name];
    args.extend_from_slice(&urls);
    let run = support::run_xtask(
        &args,
        &[
            ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
            ("XTASK_LOG_DIR", logs.to_str().unwrap()),
            ("XTASK_BACKEND_DIR", backend_dir.as_str()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        query_one(
            &remote,
            "SELECT last_value || ' ' || is_called FROM invoice_no"
        ),
        "1000 true"
    );
    assert_eq!(
        query_one(&remote, "SELECT count(*) FROM invoice_totals"),
        "4"
    );
    let mut args = vec!["db-verify"];
    args.extend_from_slice(&urls);
    let verify = support::run_xtask(&args, &[("XTASK_BACKEND_DIR", backend_dir.as_str())]);
    assert_eq!(verify.code, 0, "{}", verify.all());
}
