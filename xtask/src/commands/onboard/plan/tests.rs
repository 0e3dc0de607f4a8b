//! The onboarding decisions on made-up settings and comparisons (no database).

use super::*;

const LOCAL: &str = "postgresql://sigmasight:s3cret@localhost:5432/sigmasight_db?sslmode=disable";
const LOCAL_AI: &str = "postgresql://sigmasight:s3cret@localhost:5432/sigmasight_ai_db";
// Made-up remotes on reserved names (never a real host, and no Railway URL with a password in
// the repository); what makes them "Railway" to onboarding is that RAILWAY_DB_URL is set.
const RAILWAY: &str = "postgresql://postgres:s3cret@core.remote.invalid:1234/railway";
const RAILWAY_AI: &str = "postgresql://postgres:s3cret@ai.remote.invalid:5678/railway";

fn settings(remote: Option<&str>, remote_ai: Option<&str>) -> Settings {
    Settings {
        local: Some(LOCAL.into()),
        local_ai: Some(LOCAL_AI.into()),
        remote: remote.map(Into::into),
        remote_ai: remote_ai.map(Into::into),
    }
}

fn err_text(r: Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn state(db: Database, equal: bool, source_rows: i64, local_rows: i64) -> DbState {
    DbState {
        database: db,
        equal,
        source_rows,
        local_rows,
        local_revision: "none".into(),
        local_url: format!("postgresql://u:****@localhost:5432/{}", db.label()),
    }
}

#[test]
fn a_flag_or_the_environment_beats_the_env_file_whose_last_line_wins() {
    let file = vec![
        ("DATABASE_URL".to_string(), "first".to_string()),
        ("DATABASE_URL".to_string(), " last ".to_string()),
        ("EMPTY".to_string(), "".to_string()),
    ];
    assert_eq!(
        setting(Some("given"), &file, "DATABASE_URL").as_deref(),
        Some("given")
    );
    assert_eq!(
        setting(None, &file, "DATABASE_URL").as_deref(),
        Some("last")
    );
    // An empty variable is unset, as `${VAR:-}` was in the script.
    assert_eq!(
        setting(Some(""), &file, "DATABASE_URL").as_deref(),
        Some("last")
    );
    assert_eq!(setting(None, &file, "EMPTY"), None);
    assert_eq!(setting(None, &file, "RAILWAY_DB_URL"), None);
}

#[test]
fn the_env_file_is_read_with_quotes_and_export_and_errors_hide_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(
        &path,
        "# comment\nexport DATABASE_URL=\"postgresql://u:p@h/d\"\nAI_DATABASE_URL='x'\n",
    )
    .unwrap();
    let pairs = read_env_file(&path).unwrap();
    assert_eq!(
        setting(None, &pairs, "DATABASE_URL").as_deref(),
        Some("postgresql://u:p@h/d")
    );
    assert_eq!(
        setting(None, &pairs, "AI_DATABASE_URL").as_deref(),
        Some("x")
    );

    std::fs::write(&path, "RAILWAY_DB_URL postgresql://u:sekrit@h/d\n").unwrap();
    let err = read_env_file(&path).unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_some());
    let text = format!("{err:#}");
    assert!(text.contains("malformed line"), "{text}");
    assert!(!text.contains("sekrit"), "{text}");
}

#[test]
fn without_railway_the_source_is_the_sandbox_next_to_the_local_core_database() {
    let plan = plan(&settings(None, None)).unwrap();
    assert_eq!(plan.kind, SourceKind::Sandbox);
    assert_eq!(plan.source.dbname(), SANDBOX_DB);
    assert_eq!(plan.source_ai.dbname(), SANDBOX_AI_DB);
    // Same server, credentials and query string; only the database differs.
    for url in [&plan.source, &plan.source_ai] {
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 5432);
        assert_eq!(url.password(), Some("s3cret"));
        assert_eq!(url.param("sslmode"), Some("disable"));
    }
    assert_eq!(plan.local.dbname(), "sigmasight_db");
    assert_eq!(plan.local_ai.dbname(), "sigmasight_ai_db");
}

#[test]
fn with_railway_set_the_source_is_railway() {
    let plan = plan(&settings(Some(RAILWAY), Some(RAILWAY_AI))).unwrap();
    assert_eq!(plan.kind, SourceKind::Railway);
    assert_eq!(plan.source.host(), "core.remote.invalid");
    assert_eq!(plan.source_ai.port(), 5678);
}

#[test]
fn railway_needs_both_urls_and_public_hosts() {
    let err = err_text(plan(&settings(Some(RAILWAY), None)));
    assert!(err.contains("RAILWAY_AI_DB_URL is not"), "{err}");
    let internal = "postgresql://postgres@postgres.railway.internal:5432/railway";
    let err = err_text(plan(&settings(Some(internal), Some(RAILWAY_AI))));
    assert!(
        err.contains("RAILWAY_DB_URL names postgres.railway.internal:5432"),
        "{err}"
    );
    assert!(err.contains("DATABASE_PUBLIC_URL"), "{err}");
    let err = err_text(plan(&settings(Some(RAILWAY), Some(internal))));
    assert!(err.contains("RAILWAY_AI_DB_URL names"), "{err}");
    for e in [
        plan(&settings(Some(RAILWAY), None)).unwrap_err(),
        plan(&settings(Some(internal), Some(RAILWAY_AI))).unwrap_err(),
    ] {
        // Exit 1, as the script's `die`.
        assert!(e.downcast_ref::<UsageError>().is_none());
        assert!(!format!("{e:#}").contains("s3cret"));
    }
}

#[test]
fn missing_local_urls_fail_and_bad_ones_are_usage_errors_that_hide_the_password() {
    let mut s = settings(None, None);
    s.local_ai = None;
    let err = plan(&s).unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_none());
    assert!(
        format!("{err:#}").contains("DATABASE_URL and AI_DATABASE_URL must be set"),
        "{err:#}"
    );

    let mut s = settings(None, None);
    s.local = Some("mysql://u:s3cret@h/d".into());
    let err = plan(&s).unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_some());
    let text = format!("{err:#}");
    assert!(text.contains("DATABASE_URL: unsupported scheme"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    let mut s = settings(None, None);
    s.local_ai = Some(LOCAL.into());
    let text = err_text(plan(&s));
    assert!(text.contains("name the same database"), "{text}");
}

#[test]
fn the_sandbox_is_seeded_once_and_recreated_when_half_seeded() {
    let both = [
        state(Database::Core, false, 10, 0),
        state(Database::Ai, false, 5, 0),
    ];
    assert_eq!(
        sandbox_action(&both),
        SandboxAction::Keep {
            core_rows: 10,
            ai_rows: 5
        }
    );
    let empty = [
        state(Database::Core, false, 0, 0),
        state(Database::Ai, true, 0, 0),
    ];
    assert_eq!(sandbox_action(&empty), SandboxAction::Seed);
    let half = [
        state(Database::Core, false, 10, 0),
        state(Database::Ai, true, 0, 0),
    ];
    assert_eq!(
        sandbox_action(&half),
        SandboxAction::Recreate {
            core_rows: 10,
            ai_rows: 0
        }
    );
}

#[test]
fn the_pull_is_skipped_when_equal_and_asked_for_only_over_data() {
    let equal = [
        state(Database::Core, true, 10, 10),
        state(Database::Ai, true, 5, 5),
    ];
    for (yes, terminal) in [(false, false), (true, true)] {
        assert_eq!(
            pull_decision(&equal, yes, terminal).unwrap(),
            PullDecision::Skip
        );
    }
    let empty = [
        state(Database::Core, false, 10, 0),
        state(Database::Ai, false, 5, 0),
    ];
    assert_eq!(
        pull_decision(&empty, false, false).unwrap(),
        PullDecision::Pull {
            yes: true,
            no_backup: true,
            replaces_data: false
        }
    );
    let data = [
        state(Database::Core, false, 10, 3),
        state(Database::Ai, true, 5, 5),
    ];
    assert_eq!(
        pull_decision(&data, true, false).unwrap(),
        PullDecision::Pull {
            yes: true,
            no_backup: false,
            replaces_data: true
        }
    );
    // On a terminal, db-pull asks for each database's name.
    assert_eq!(
        pull_decision(&data, false, true).unwrap(),
        PullDecision::Pull {
            yes: false,
            no_backup: false,
            replaces_data: true
        }
    );
    assert!(replaces_data(&data));
    assert!(!replaces_data(&empty) && !replaces_data(&equal));
    let err = pull_decision(&data, false, false).unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_none());
    assert!(
        err.to_string().contains("run `scripts/onboard.sh --yes`"),
        "{err}"
    );
}

#[test]
fn the_summary_is_the_scripts_and_never_shows_a_password() {
    let plan = plan(&settings(Some(RAILWAY), Some(RAILWAY_AI))).unwrap();
    let states = [
        state(Database::Core, true, 10, 10),
        state(Database::Ai, true, 5, 5),
    ];
    let lines = summary_lines(&Summary {
        container: "backend-postgres-1",
        compose: Some("docker compose"),
        local_port: 5432,
        states: &states,
        plan: &plan,
        pulled: false,
        env: EnvState::Kept,
        hooks: None,
    });
    let text = lines.join("\n");
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(
        lines[0],
        "  container     backend-postgres-1 (pgvector/pgvector:pg17), localhost:5432; \
         start/stop: cd backend && docker compose up -d / stop"
    );
    assert_eq!(
        lines[1],
        "  local core    postgresql://u:****@localhost:5432/core  10 rows, alembic none"
    );
    assert!(text.contains(
        "  source        Railway: postgresql://postgres:****@core.remote.invalid:1234/railway, "
    ));
    assert!(text.contains("  pulled        no (already equal); db-verify: equal"));
    assert!(text.contains("  .env          kept as it was"));
    assert!(text.contains("  git hooks     not installed"));
}
