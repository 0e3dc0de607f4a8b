//! The run's backups as one step of the driver: each target that holds something is dumped
//! (`backup::take_first`), in the databases' order, before the copies, or beside them when the
//! command touches no target until its commit (a full db-pull builds staging databases and swaps
//! them in only after every backup has ended well). Taken beside the copies, a backup costs the
//! run only what it takes longer than the schema and data steps (docs/performance.md).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    backup::{self, Backup},
    driver::{Job, Run},
    human_bytes,
    phases::Phase,
};
use crate::{
    config::{Database, DbUrl, Side},
    interrupt,
    pg::PgTools,
};

/// The backups a run takes: which jobs' targets, and what is needed to dump them. It holds no
/// reference to the jobs, so that it can run on a thread while the copies change them.
pub struct BackupStep<'a> {
    tools: &'a PgTools,
    command: &'static str,
    side: Side,
    stamp: &'a str,
    /// Each job's index, its database and its target's URL.
    targets: Vec<(usize, Database, DbUrl)>,
}

/// The backups taken, and why the step stopped early (the first failure or Ctrl-C).
pub struct Taken {
    backups: Vec<(usize, Backup)>,
    result: Result<()>,
    spent: Duration,
}

impl<'a> BackupStep<'a> {
    /// The backups of `jobs` that `wanted` says hold something; none with `--no-backup`.
    pub fn new<T>(
        run: &'a Run<'_>,
        side: Side,
        jobs: &[Job<T>],
        wanted: impl Fn(&Job<T>) -> bool,
    ) -> BackupStep<'a> {
        let targets = if run.copy.no_backup {
            Vec::new()
        } else {
            jobs.iter()
                .enumerate()
                .filter(|(_, job)| wanted(job))
                .map(|(i, job)| (i, job.db, job.target.clone()))
                .collect()
        };
        BackupStep {
            tools: run.tools,
            command: run.command,
            side,
            stamp: &run.stamp,
            targets,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Dumps each target in turn, stopping at the first failure; the backups taken until then
    /// are kept (they hold what their databases still hold).
    pub fn take(&self) -> Taken {
        let started = Instant::now();
        let mut backups = Vec::new();
        let result = self.targets.iter().try_for_each(|(i, db, url)| {
            interrupt::check("the backups (nothing was changed)")?;
            let b = backup::take_first(self.tools, self.command, self.side, *db, url, self.stamp)?;
            backups.push((*i, b));
            Ok(())
        });
        Taken {
            backups,
            result,
            spent: started.elapsed(),
        }
    }
}

impl Taken {
    /// Gives each job its backup and says where it was written (`backup_of`: how the line names
    /// the target's database, before its name); the step's failure, if any, is returned.
    pub fn record<T>(
        self,
        run: &Run<'_>,
        jobs: &mut [Job<T>],
        backup_of: &str,
        beside_copies: bool,
    ) -> Result<()> {
        run.phases.add(Phase::Backup, self.spent);
        if beside_copies {
            run.phases.beside(Phase::Backup);
        }
        for (i, b) in self.backups {
            let job = &mut jobs[i];
            run.ctx.say(format!(
                "{}: backup of {backup_of}{} written to {} ({})",
                job.db.label(),
                job.target.dbname(),
                b.path.display(),
                human_bytes(b.bytes as i64)
            ));
            job.backup = Some(b);
        }
        self.result
    }
}
