//! The `--schema source` copies that several test files run through a container's tools: the
//! same command line and the same private backup and log folders each time.

use std::path::Path;

use super::{run_xtask, PgContainer, Run};

/// `cargo xtask <command> --yes --schema source --container <pg> <args...>` (a pull with
/// `--unmasked`), its backups in `dir/b` and its logs in `dir/l`.
pub fn copy_schema_source_in(dir: &Path, command: &str, pg: &PgContainer, args: &[&str]) -> Run {
    let (backups, logs) = (dir.join("b"), dir.join("l"));
    let mut all = vec![
        command,
        "--yes",
        "--schema",
        "source",
        "--container",
        &pg.name,
    ];
    // These schemas are the tests' own, not the app's: the data policy does not classify them.
    if command == "db-pull" {
        all.push("--unmasked");
    }
    all.extend_from_slice(args);
    run_xtask(
        &all,
        &[
            ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
            ("XTASK_LOG_DIR", logs.to_str().unwrap()),
        ],
    )
}

/// [`copy_schema_source_in`] a temporary folder of its own.
pub fn copy_schema_source(command: &str, pg: &PgContainer, args: &[&str]) -> Run {
    let dir = tempfile::TempDir::new().unwrap();
    copy_schema_source_in(dir.path(), command, pg, args)
}

/// `db-pull --schema source` with `args` (the URLs and any flags).
pub fn pull(pg: &PgContainer, args: &[&str]) -> Run {
    copy_schema_source("db-pull", pg, args)
}

/// [`pull`] of the Core database only, `remote` into `local`.
pub fn pull_core(pg: &PgContainer, remote: &str, local: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--core-only", "--remote-url", remote, "--local-url", local];
    args.extend_from_slice(extra);
    pull(pg, &args)
}
