use super::*;
use crate::exit::UsageError;

fn push(protected: &[&str], confirm: Option<&str>, no_backup: bool) -> DbPush {
    DbPush {
        copy: CopyArgs {
            schema: SchemaMode::Migrations,
            allow_revision_mismatch: false,
            no_backup,
            dry_run: false,
            tables: vec![],
            exclude_tables: vec![],
            checksums: false,
            jobs: 1,
            allow_uncopyable: false,
        },
        mode: LoadMode::Replace,
        guard: GuardArgs {
            confirm_target: confirm.map(str::to_string),
            protected_hosts: protected.iter().map(|s| s.to_string()).collect(),
        },
        printed_alike: Vec::new(),
    }
}

fn config(yes: bool) -> Config {
    Config {
        via: crate::config::Via::Docker,
        container: None,
        local: None,
        local_ai: None,
        remote: None,
        remote_ai: None,
        core_only: false,
        yes,
        json: false,
    }
}

#[test]
fn protected_host_needs_yes_and_the_exact_target() {
    let url = DbUrl::parse("postgresql://u@maglev.proxy.rlwy.net:1234/railway").unwrap();
    let cmd = push(&["maglev.proxy.rlwy.net"], None, false);
    let err = cmd.check_protected(&config(true), &url).unwrap_err();
    assert!(err.downcast_ref::<UsageError>().is_some());
    assert!(
        err.to_string()
            .contains("--confirm-target maglev.proxy.rlwy.net/railway"),
        "{err}"
    );
    let wrong = push(
        &["maglev.proxy.rlwy.net"],
        Some("maglev.proxy.rlwy.net/other"),
        false,
    );
    assert!(wrong.check_protected(&config(true), &url).is_err());
    let right = push(
        &["maglev.proxy.rlwy.net"],
        Some("maglev.proxy.rlwy.net/railway"),
        false,
    );
    assert!(right.check_protected(&config(true), &url).is_ok());
    assert!(right.check_protected(&config(false), &url).is_err());
    let no_backup = push(
        &["maglev.proxy.rlwy.net"],
        Some("maglev.proxy.rlwy.net/railway"),
        true,
    );
    let err = no_backup.check_protected(&config(true), &url).unwrap_err();
    assert!(err.to_string().contains("--no-backup is refused"), "{err}");
    assert!(push(&["other.host"], None, true)
        .check_protected(&config(false), &url)
        .is_ok());
}
