//! `cargo xtask data-policy check | init` against a real PostgreSQL 17 + pgvector server (where
//! the migrations' schema is built in a throwaway database) and real Alembic: the app's own
//! policy passes; a migration that adds a column and a table without rules fails the check,
//! naming each column with the line to add; init adds undecided lines without changing one the
//! human wrote, and the check still fails until they are decided; the decided policy against the
//! migrations without that revision names the entries for what does not exist.

mod support;

use std::path::Path;

use support::{copy_backend, query_one, run_xtask, PgContainer, Run};

const NICKNAME_MIGRATION: &str = r#""""users.nickname and user_notes: personal data without a rule

Revision ID: c0006_nickname
Revises: c0005_correlations
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c0006_nickname"
down_revision = "c0005_correlations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.Text(), nullable=True))
    op.create_table(
        "user_notes",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("body", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("user_notes")
    op.drop_column("users", "nickname")
"#;

/// `data-policy ACTION` with the migrations (and policy) of `backend`, columns cached in `cache`.
fn policy(pg: &PgContainer, backend: &Path, cache: &Path, action: &str) -> Run {
    let (core, ai) = (pg.url("app"), pg.url("app_ai"));
    let (backend, cache) = (backend.display().to_string(), cache.display().to_string());
    run_xtask(
        &[
            "--local-url",
            &core,
            "--local-ai-url",
            &ai,
            "data-policy",
            action,
        ],
        &[("XTASK_BACKEND_DIR", &backend), ("XTASK_CACHE_DIR", &cache)],
    )
}

fn throwaway_databases(pg: &PgContainer) -> String {
    query_one(
        &pg.url("postgres"),
        "SELECT count(*) FROM pg_database WHERE datname LIKE '%xtask_policy_check'",
    )
}

/// A copy of backend/'s migrations and its data policy, removed when dropped.
fn backend_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("xtask-backend")
        .tempdir()
        .unwrap();
    copy_backend(dir.path());
    std::fs::copy(
        support::backend_dir().join("data_policy.toml"),
        dir.path().join("data_policy.toml"),
    )
    .unwrap();
    dir
}

#[test]
fn a_column_added_without_a_rule_fails_the_check_until_a_human_decides() {
    require_docker!();
    let pg = PgContainer::start();

    // The app's own policy classifies every column its migrations create.
    let real = backend_copy();
    let cache = tempfile::tempdir().unwrap();
    let passed = policy(&pg, real.path(), cache.path(), "check");
    assert_eq!(passed.code, 0, "{}", passed.all());
    assert!(
        passed
            .stderr
            .contains("data-policy check: every column of both databases' migrations has a rule"),
        "{}",
        passed.stderr
    );
    assert!(
        passed
            .stderr
            .contains("built at head in the throwaway database app_xtask_policy_check"),
        "{}",
        passed.stderr
    );
    assert_eq!(
        throwaway_databases(&pg),
        "0",
        "a throwaway database was left"
    );
    // The same migrations again: from the cache, no database built.
    let again = policy(&pg, real.path(), cache.path(), "check");
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(!again.stderr.contains("throwaway"), "{}", again.stderr);

    // A migration adds users.nickname and a table user_notes, with no rules.
    let changed = backend_copy();
    std::fs::write(
        changed
            .path()
            .join("migrations_core/versions/c0006_nickname.py"),
        NICKNAME_MIGRATION,
    )
    .unwrap();
    let failed = policy(&pg, changed.path(), cache.path(), "check");
    assert_eq!(failed.code, 1, "{}", failed.all());
    for says in [
        "data-policy check: 3 problems in",
        "core users.nickname: no rule; add under [core.users], with TODO replaced by the rule:\n      nickname = \"TODO\"",
        "core user_notes.body: no rule; add under [core.user_notes]",
        "core user_notes.id: no rule; add under [core.user_notes]",
    ] {
        assert!(failed.stderr.contains(says), "{says:?} not in:\n{}", failed.stderr);
    }

    // init adds the three lines (and the new table's header, after a blank line), changes none
    // that was there; check still fails on them.
    let file = changed.path().join("data_policy.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let init = policy(&pg, changed.path(), cache.path(), "init");
    assert_eq!(init.code, 0, "{}", init.all());
    assert!(
        init.stderr.contains("3 undecided entries added"),
        "{}",
        init.stderr
    );
    let after = std::fs::read_to_string(&file).unwrap();
    let mut rest = after.lines();
    for line in before.lines() {
        assert!(rest.any(|l| l == line), "init lost {line:?}:\n{after}");
    }
    assert_eq!(after.lines().count(), before.lines().count() + 5, "{after}");
    let undecided = policy(&pg, changed.path(), cache.path(), "check");
    assert_eq!(undecided.code, 1, "{}", undecided.all());
    assert!(
        undecided
            .stderr
            .contains("core users.nickname: not decided (\"TODO\")"),
        "{}",
        undecided.stderr
    );

    // The human decides: the check passes.
    let decided = after
        .replace("nickname = \"TODO\"", "nickname = \"name\"")
        .replace("body = \"TODO\"", "body = \"null\"")
        .replace("id = \"TODO\"", "id = \"keep\"");
    std::fs::write(&file, &decided).unwrap();
    let passed = policy(&pg, changed.path(), cache.path(), "check");
    assert_eq!(passed.code, 0, "{}", passed.all());

    // That policy with the migrations that lack c0006: its entries for nothing are named.
    std::fs::write(real.path().join("data_policy.toml"), &decided).unwrap();
    let stale = policy(&pg, real.path(), cache.path(), "check");
    assert_eq!(stale.code, 1, "{}", stale.all());
    for says in [
        "core users.nickname: the policy has an entry but the table has no such column",
        "core user_notes: the policy has a section [core.user_notes] but there is no such table",
    ] {
        assert!(
            stale.stderr.contains(says),
            "{says:?} not in:\n{}",
            stale.stderr
        );
    }
    assert_eq!(
        throwaway_databases(&pg),
        "0",
        "a throwaway database was left"
    );
}
