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
