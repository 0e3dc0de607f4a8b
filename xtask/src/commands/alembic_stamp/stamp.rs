//! Each target locked and checked (`Plan`; all of them before any is stamped), then stamped:
//! `alembic stamp`, and its `alembic_version` read back.

use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use super::check::{check, Checked};
use super::report::revisions_text;
use super::{sorted, StampCtx, Target};
use crate::{
    alembic,
    config::DbUrl,
    exit::Interrupted,
    interrupt,
    pg::{
        client,
        lock::{self, DbLock},
    },
};

/// One target, locked, with the outcome of its check.
pub(super) struct Plan {
    pub target: Target,
    /// Held until the command ends: no other xtask command works on this database meanwhile.
    _lock: DbLock,
    /// `Err` only with `--force`: the check could not run, and the stamp goes ahead anyway.
    pub check: Result<Checked, String>,
}

impl Plan {
    /// Locks the target, then checks it. Without `--force` a check that cannot run is an error.
    pub fn prepare(sh: &Shell, run: &StampCtx, target: Target) -> Result<Plan> {
        let server = target.url.with_dbname("postgres");
        let lock = run
            .rt
            .block_on(lock::acquire(
                &server,
                target.url.dbname(),
                "alembic-stamp",
                run.timeout,
            ))
            .with_context(|| format!("locking {} for the stamp", target.name()))?;
        let check = match check(sh, run, &target, lock.client()) {
            Ok(checked) => Ok(checked),
            Err(e) if run.force => Err(format!("{e:#}")),
            Err(e) => {
                return Err(e.context(format!(
                    "checking {} against the migrations at {} (--force stamps without this \
                     check); nothing was stamped",
                    target.name(),
                    run.revision
                )))
            }
        };
        Ok(Plan {
            target,
            _lock: lock,
            check,
        })
    }

    pub fn refused(&self) -> bool {
        matches!(&self.check, Ok(c) if !c.problems.is_empty())
    }

    pub fn already_stamped(&self) -> bool {
        matches!(&self.check, Ok(c) if c.already_stamped())
    }

    /// The revisions to stamp: the checked ones, or the requested one when there was no check.
    pub fn stamp_revisions<'a>(&'a self, requested: &'a str) -> Vec<&'a str> {
        match &self.check {
            Ok(c) if !c.revisions.is_empty() => c.revisions.iter().map(String::as_str).collect(),
            _ => vec![requested],
        }
    }

    /// Stamps the target and reads its `alembic_version` back: the revisions it holds now,
    /// which must be the checked ones.
    pub fn stamp(&self, run: &StampCtx) -> Result<Vec<String>> {
        let target = &self.target;
        let sh = Shell::new().context("starting a shell")?;
        target
            .alembic
            .stamp(
                &sh,
                run.backend,
                &target.url,
                &self.stamp_revisions(run.revision),
            )
            .with_context(|| format!("stamping {}", target.name()))?;
        let after = run
            .rt
            .block_on(read_revisions(&target.url, run.timeout))
            .with_context(|| format!("reading back the alembic_version of {}", target.name()))?
            .unwrap_or_default();
        if let Ok(checked) = &self.check {
            if sorted(&after) != sorted(&checked.revisions) {
                bail!(
                    "{} was stamped, but its alembic_version reads {} instead of {}",
                    target.name(),
                    revisions_text(Some(&after)),
                    checked.revisions.join(", ")
                );
            }
        }
        Ok(after)
    }
}

/// Locks and checks every target (at once, each in its own thread) before any is stamped.
pub(super) fn check_all(run: &StampCtx, targets: Vec<Target>) -> Result<Vec<Plan>> {
    let checked: Vec<Result<Plan>> = std::thread::scope(|s| {
        let tasks: Vec<_> = targets
            .into_iter()
            .map(|target| {
                s.spawn(move || {
                    let sh = Shell::new().context("starting a shell")?;
                    if run.revision == "head" {
                        single_head(&sh, &target, run.backend)?;
                    }
                    Plan::prepare(&sh, run, target)
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().expect("a check thread panicked"))
            .collect()
    });
    let plans = checked
        .into_iter()
        .collect::<Result<Vec<Plan>>>()
        .map_err(|e| {
            if interrupt::interrupted() {
                interrupted_in_check(&e)
            } else {
                e
            }
        })?;
    // With --force a check that could not run does not stop the stamp; Ctrl-C does.
    if interrupt::interrupted() {
        return Err(interrupted_in_check(&anyhow::anyhow!("the schema checks")));
    }
    Ok(plans)
}

/// `head` must name one revision: with unmerged branches it names none, and a merge revision is
/// needed.
fn single_head(sh: &Shell, target: &Target, backend: &Path) -> Result<()> {
    let heads = target.alembic.heads(sh, backend)?;
    if heads.len() > 1 {
        bail!(
            "{} has {} heads ({}), so `head` names no single revision: a merge revision is \
             needed to join them. Create it in backend/ with `{}`, then upgrade to it; or stamp \
             every head with --revision heads. Nothing was stamped",
            target.alembic.ini(),
            heads.len(),
            heads.join(", "),
            target.alembic.merge_command(&heads),
        );
    }
    Ok(())
}

/// The revisions in `alembic_version` of a database, on a connection of its own.
async fn read_revisions(url: &DbUrl, timeout: std::time::Duration) -> Result<Option<Vec<String>>> {
    let conn = client::connect(url, timeout).await?;
    alembic::recorded_revisions(&conn, url).await
}

/// Ctrl-C during the checks: nothing was stamped, and the throwaway databases were dropped
/// (`ScratchDb`; a drop that failed has printed its own warning).
fn interrupted_in_check(e: &anyhow::Error) -> anyhow::Error {
    Interrupted(format!(
        "alembic-stamp interrupted: {e:#}\n  nothing was stamped: alembic_version is as it was, \
         and the throwaway check database is dropped (a warning above names one that could not \
         be)\n  to finish: run the same alembic-stamp again"
    ))
    .into()
}
