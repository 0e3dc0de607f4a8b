//! `cargo xtask alembic-status`: for both Alembic configs (Core, and AI unless `--core-only`),
//! the heads of the migration scripts, and the revision that the local and the remote database
//! record, against head, with the number of migrations pending. The check that the pre-commit and
//! CI hooks call: `--offline` checks only the scripts (they load, and each config has a single
//! head), with no database.
//!
//! A database without a URL is not checked, and the output says so (a remote URL is often not
//! set). Read-only: the revisions are read with one query each, nothing is written.
//!
//! Exit codes: 0 every config has a single head and every database checked is at it; 3
//! (`exit::Differences`) multiple heads, or a database behind, unstamped or at a revision the
//! scripts do not know; 1 a database could not be read, or the scripts do not load.

mod render;
mod status;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use crate::{backend_dir, config::Database, ctx::Ctx, exit::Differences};
use render::{render, summary};
use status::{config_status, ConfigStatus, DbStatus, Reader};

#[derive(Args, Debug)]
pub struct AlembicStatus {
    /// Check only the migration scripts (each config loads and has a single head); no database
    #[arg(long)]
    pub offline: bool,
}

/// The `--json` document.
#[derive(Serialize)]
struct JsonReport<'a> {
    /// true only when the exit code is 0.
    ok: bool,
    offline: bool,
    configs: &'a [ConfigStatus],
}

impl AlembicStatus {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let args = ctx.args();
        // Offline needs no URL: a broken one in .env must not fail the pre-commit hook.
        let config = if self.offline {
            None
        } else {
            Some(ctx.config()?)
        };
        let databases = if args.core_only {
            vec![Database::Core]
        } else {
            vec![Database::Core, Database::Ai]
        };
        let reader = Reader {
            rt: &ctx.rt,
            timeout: ctx.timeout(),
        };
        let backend = backend_dir();
        if ctx.out.progress_wanted() {
            eprintln!(
                "alembic-status: reading the migration scripts{}...",
                if self.offline {
                    ""
                } else {
                    " and the databases"
                }
            );
        }
        // One thread per config: each runs uv (and reads its databases) on its own.
        let statuses: Vec<ConfigStatus> = std::thread::scope(|s| {
            let tasks: Vec<_> = databases
                .iter()
                .map(|&db| {
                    let backend = backend.as_path();
                    s.spawn(move || config_status(db, config, backend, reader))
                })
                .collect();
            tasks
                .into_iter()
                .map(|t| t.join().expect("a status thread panicked"))
                .collect()
        });

        let text = render(&statuses, self.offline);
        let ok = statuses.iter().all(ConfigStatus::ok);
        if args.json {
            let report = JsonReport {
                ok,
                offline: self.offline,
                configs: &statuses,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("the report serializes")
            );
            eprint!("{text}");
        } else {
            print!("{text}");
        }

        let unreadable: Vec<String> = statuses
            .iter()
            .flat_map(|c| {
                let scripts = c
                    .scripts_error
                    .as_ref()
                    .map(|e| format!("the scripts of {}: {e}", c.config));
                let dbs = c
                    .databases
                    .iter()
                    .filter(|d| d.status == DbStatus::Error)
                    .map(move |d| {
                        format!(
                            "{} {}: {}",
                            d.side.label(),
                            c.database.label(),
                            d.error.as_deref().unwrap_or("error")
                        )
                    });
                scripts.into_iter().chain(dbs)
            })
            .collect();
        if !unreadable.is_empty() {
            bail!("alembic-status could not check {}", unreadable.join("; "));
        }
        let summary = summary(&statuses, self.offline);
        if ok {
            if args.json {
                eprintln!("{summary}");
            } else {
                println!("{summary}");
            }
            Ok(())
        } else {
            Err(Differences(summary).into())
        }
    }
}
