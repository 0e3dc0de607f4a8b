use super::*;

#[test]
fn same_database_names_both_sides_and_the_command() {
    let url = DbUrl::parse("postgresql://u:secret@localhost:5432/app").unwrap();
    let pull = same_database("db-pull", Side::Remote, Side::Local, Database::Core, &url);
    assert_eq!(
        pull,
        format!(
            "the remote and local core URLs are the same database ({url}): a pull would replace \
             it with itself"
        )
    );
    assert!(!pull.contains("secret"), "{pull}");
    let push = same_database("db-push", Side::Local, Side::Remote, Database::Ai, &url);
    assert!(
        push.starts_with("the local and remote ai URLs are the same database (")
            && push.ends_with("): a push would replace it with itself"),
        "{push}"
    );
}

#[test]
fn failure_state_says_how_to_finish() {
    let lines = || vec!["  local core database app: unchanged".to_string()];
    assert_eq!(
        failure_state("db-pull", lines(), false),
        "  local core database app: unchanged\n  to finish: fix what failed, then run the same \
         db-pull again\n  what failed"
    );
    assert_eq!(
        failure_state("db-push", lines(), true),
        "  local core database app: unchanged\n  to finish: run the same db-push again"
    );
}

fn report<R>(logs: &LoadLogs, reported: R) -> JobReport<'_, R> {
    JobReport {
        database: Database::Ai,
        source: "postgresql://u:****@local/app".into(),
        target: "postgresql://u:****@remote/app".into(),
        tables: 3,
        rows: 12,
        backup: &None,
        logs,
        verified: &None,
        warnings: &[],
        created_roles: &[],
        reported,
    }
}

#[test]
fn a_report_holds_the_common_fields_and_the_commands_own() {
    let logs = LoadLogs::new(std::path::Path::new("/logs"), "db-push", Database::Ai, "T");
    let keys = |value: serde_json::Value| -> Vec<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let common = [
        "backup", "database", "logs", "rows", "source", "tables", "target", "verified", "warnings",
    ];
    assert_eq!(keys(serde_json::json!(report(&logs, ()))), common);
    let push = serde_json::json!(report(&logs, serde_json::json!({ "mode": "upsert" })));
    assert_eq!(push["mode"], "upsert");
    assert_eq!(push["database"], "ai");
    assert_eq!(push["logs"]["dump"], "/logs/db-push-ai-T-pg_dump.log");
    assert_eq!(keys(push).len(), common.len() + 1);
}
