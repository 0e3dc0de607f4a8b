//! `cargo xtask db-verify`: compares the remote and local databases (Core, and AI unless
//! `--core-only`; the URL flags pick any two databases) and says exactly what differs: every
//! table's exact row count, the Alembic revisions against the heads, the schema by name, optional
//! checksums, foreign-key orphans and sequences behind their columns. Read-only on both sides.
//!
//! Exit codes: 0 equal; 3 differences (`exit::Differences`); 1 a database could not be compared
//! (unreachable, authentication, missing database: the reason is named); 2 usage.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use xshell::Shell;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Database, Side},
    ctx::Ctx,
    exit::Differences,
    policy::{dump::masked_columns, policy_path, DbKey, Policy},
    verify::{
        self,
        report::{DatabaseOutcome, FailedComparison, Report, ReportStatus},
        AlembicHeads, Endpoint,
    },
};

#[derive(Args, Debug)]
pub struct DbVerify {
    /// Also compare a checksum of every table's contents, computed on the servers (reads every
    /// row; independent of row and column order)
    #[arg(long)]
    pub checksums: bool,
    /// With --checksums, compare the columns that the data policy masks too (after a pull with
    /// --unmasked); by default they are left out, since a pull rewrites them on purpose
    #[arg(long)]
    pub unmasked: bool,
}

impl DbVerify {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let config = ctx.config()?;
        // A bad XTASK_STATEMENT_TIMEOUT is a usage error (2), not a failed comparison.
        crate::verify::catalog::statement_timeout()?;
        let mut targets = Vec::new();
        for db in config.databases() {
            let remote = config.require_url(Side::Remote, db)?.clone();
            let local = config.require_url(Side::Local, db)?.clone();
            targets.push((
                db,
                Endpoint::new(Side::Remote.label(), remote),
                Endpoint::new(Side::Local.label(), local),
            ));
        }
        let timeout = ctx.timeout();
        let unchecked = self.unchecked(&targets)?;
        let left_out: usize = unchecked
            .iter()
            .flat_map(|(_, t)| t.values())
            .map(|c| c.len())
            .sum();
        if left_out > 0 {
            eprintln!(
                "db-verify: the checksums leave out the {left_out} column(s) that the data policy \
                 masks ({}): a pull rewrites them on purpose; --unmasked compares them too",
                crate::policy::policy_path().display()
            );
        }
        // A terminal hears that work is under way (checksums read every row); pipes and CI stay
        // quiet.
        if ctx.out.progress_wanted() {
            let dbs: Vec<&str> = targets.iter().map(|(db, _, _)| db.label()).collect();
            eprintln!(
                "db-verify: reading {} on remote and local{}...",
                dbs.join(" and "),
                if self.checksums {
                    " (with checksums: every row is read)"
                } else {
                    ""
                }
            );
        }
        let report = Report::new(
            self.checksums,
            ctx.block_on(verify_all(targets, self.checksums, unchecked, timeout)),
        );

        if config.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.render_human());
        }
        let summary = report.summary();
        match report.status {
            ReportStatus::Equal => {
                if config.json {
                    eprintln!("{summary}");
                } else {
                    println!("\n{summary}");
                }
                Ok(())
            }
            ReportStatus::Differences => Err(Differences(summary).into()),
            ReportStatus::Error => {
                let reasons: Vec<String> = report
                    .databases
                    .iter()
                    .filter_map(|d| match d {
                        DatabaseOutcome::Failed(f) => {
                            Some(format!("{}: {}", f.database.label(), f.error.message))
                        }
                        DatabaseOutcome::Compared(_) => None,
                    })
                    .collect();
                bail!("db-verify could not compare {}", reasons.join("; "))
            }
        }
    }
}

/// Every database at once; in each, both sides are read concurrently while the Alembic heads
/// are read from the migration scripts.
pub async fn verify_all(
    targets: Vec<(Database, Endpoint, Endpoint)>,
    checksums: bool,
    unchecked: Vec<(Database, verify::Unchecked)>,
    timeout: Duration,
) -> Vec<DatabaseOutcome> {
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(db, left, right)| {
            let left_out = unchecked
                .iter()
                .find(|(d, _)| *d == db)
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            tokio::spawn(async move {
                let heads = tokio::task::spawn_blocking(move || read_heads(db));
                let snapshots =
                    verify::read_both(&left, &right, checksums, &left_out, timeout).await;
                let heads = heads.await.ok();
                match snapshots {
                    Ok((l, r)) => DatabaseOutcome::compared(verify::build(
                        db,
                        &left,
                        &right,
                        &l,
                        &r,
                        heads.as_ref(),
                        checksums,
                    )),
                    Err(e) => DatabaseOutcome::Failed(FailedComparison::new(db, &left, &right, &e)),
                }
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a verification task panicked"));
    }
    outcomes
}

impl DbVerify {
    /// With `--checksums` (and without `--unmasked`), each database's columns that the data
    /// policy masks, when there is a policy: left out of the checksums.
    fn unchecked(
        &self,
        targets: &[(Database, Endpoint, Endpoint)],
    ) -> Result<Vec<(Database, verify::Unchecked)>> {
        if !self.checksums || self.unmasked {
            return Ok(Vec::new());
        }
        let Some((policy, _)) = Policy::load(&policy_path())? else {
            return Ok(Vec::new());
        };
        Ok(targets
            .iter()
            .map(|(db, _, _)| (*db, masked_columns(&policy, DbKey::of(*db))))
            .collect())
    }
}

fn read_heads(db: Database) -> AlembicHeads {
    let config = AlembicConfig::of(db);
    match Shell::new() {
        Ok(sh) => AlembicHeads::read(&sh, config, &backend_dir()),
        Err(e) => AlembicHeads {
            config: config.ini().to_string(),
            heads: Vec::new(),
            error: Some(format!("cannot start a shell: {e}")),
        },
    }
}
