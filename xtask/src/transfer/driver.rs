//! The one run of `db-pull` and `db-push`, step by step in one order: each source checked and
//! read (the same-database check, then the command's own checks of each target, then each
//! database's preflight, before anything is touched), the plan, `--dry-run`'s exit, the
//! confirmation, the backups, the copies (each verified), and on any failure or Ctrl-C what state
//! each database is in. A command is a [`Transfer`]: it supplies only what differs between a pull
//! and a push.

use anyhow::Result;
use serde::Serialize;

use super::{
    backup::{self, Backup},
    backup_step::BackupStep,
    copies,
    phases::{Phase, Phases},
    source::SourceRead,
    uncopyable, CopyArgs, LoadLogs, Selection,
};
use crate::{
    config::{Config, Database, DbUrl, Side},
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::{Interrupted, UsageError},
    interrupt,
    pg::PgTools,
};

/// What one run works with, fixed for the run.
pub struct Run<'a> {
    pub ctx: &'a Ctx,
    pub tools: &'a PgTools,
    pub copy: &'a CopyArgs,
    /// `db-pull` or `db-push`: in the lock's name, the logs' and backups' names, the messages.
    pub command: &'static str,
    /// The time in the names of this run's backups and logs.
    pub stamp: String,
    pub phases: Phases,
}

/// One database's copy as it goes: what both commands track, and the command's own state.
pub struct Job<T> {
    pub db: Database,
    pub source: SourceRead,
    pub target: DbUrl,
    pub selection: Selection,
    /// The Alembic heads the source was checked against (`--schema migrations`), else empty.
    pub heads: Vec<String>,
    pub logs: LoadLogs,
    pub backup: Option<Backup>,
    /// The verification's summary, once the copy matched the source's snapshot.
    pub verified: Option<String>,
    pub warnings: Vec<String>,
    /// `--schema source`: the post-data section, run in the load's transaction after the data.
    pub post_data: Option<String>,
    /// The NOLOGIN roles created on the local server for the source's policies (db-pull).
    pub created_roles: Vec<String>,
    pub own: T,
}

impl<T> Job<T> {
    /// A job whose source was read and checked (`source::read_source`).
    pub fn new(
        run: &Run,
        db: Database,
        target: DbUrl,
        (source, heads, selection): (SourceRead, Vec<String>, Selection),
        own: T,
    ) -> Job<T> {
        // Only when allowed: else the source's read refused them.
        let warnings = uncopyable::warnings(&source.uncopyable);
        Job {
            db,
            logs: LoadLogs::new(&backup::logs_dir(), run.command, db, &run.stamp),
            source,
            target,
            selection,
            heads,
            backup: None,
            verified: None,
            warnings,
            post_data: None,
            created_roles: Vec::new(),
            own,
        }
    }

    /// The rows copied: the source's exact counts of the selected tables, each row once.
    pub fn rows(&self) -> i64 {
        self.selection
            .tables
            .iter()
            .map(|t| self.source.rows_held(t))
            .sum()
    }

    fn report<R>(&self, reported: R) -> JobReport<'_, R> {
        JobReport {
            database: self.db,
            source: self.source.endpoint.url.to_string(),
            target: self.target.to_string(),
            tables: self.selection.tables.len(),
            rows: self.rows(),
            backup: &self.backup,
            logs: &self.logs,
            verified: &self.verified,
            warnings: &self.warnings,
            created_roles: &self.created_roles,
            reported,
        }
    }
}

/// One database's part of the `--json` document: what every copy reports, and the command's own
/// fields (`Transfer::reported`).
#[derive(Serialize)]
pub struct JobReport<'a, R> {
    database: Database,
    source: String,
    target: String,
    tables: usize,
    rows: i64,
    backup: &'a Option<Backup>,
    logs: &'a LoadLogs,
    verified: &'a Option<String>,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    created_roles: &'a [String],
    #[serde(flatten)]
    reported: R,
}

/// What a pull or a push does differently. The driver calls these in its one order.
pub trait Transfer: Sync {
    /// The command's own state of one database (locks, the target as it was, ...).
    type Own: Send;
    /// The command's own fields in a database's part of the `--json` document.
    type Reported: Serialize;
    /// `db-pull` or `db-push`.
    const COMMAND: &'static str;
    const SOURCE: Side;
    const TARGET: Side;
    /// How the backup's line names the target's database: before its name.
    const BACKUP_OF: &'static str;

    fn copy_args(&self) -> &CopyArgs;

    /// The databases of the run (db-restore: the one its backup is of).
    fn databases(&self, config: &Config) -> Vec<Database> {
        config.databases()
    }

    /// Where a database's data comes from (db-restore: the staging database its backup was
    /// restored into, on the local server).
    fn source_url(&self, config: &Config, db: Database) -> Result<DbUrl> {
        Ok(config.require_url(Self::SOURCE, db)?.clone())
    }

    /// A check of a target's URL before anything is read (db-push: the protected hosts).
    fn check_target(&self, _config: &Config, _target: &DbUrl) -> Result<()> {
        Ok(())
    }

    /// Locks the target, reads and checks the source and the target; touches nothing.
    fn preflight_one(
        &self,
        run: &Run,
        db: Database,
        source: DbUrl,
        target: DbUrl,
    ) -> Result<Job<Self::Own>>;

    fn plan_text(&self, job: &Job<Self::Own>) -> String;

    /// What the confirmation asks to do, or `None` when it was confirmed before the preflight.
    fn action(&self, job: &Job<Self::Own>) -> Option<String>;

    /// Whether there is something to back up (a pull into a new database has nothing).
    fn has_backup_to_take(&self, _job: &Job<Self::Own>) -> bool {
        true
    }

    /// Whether the backups may be taken while the copies run: only when no copy touches its
    /// target before [`Transfer::commit`] (db-pull into staging databases).
    fn backups_beside_copies(&self, _jobs: &[Job<Self::Own>]) -> bool {
        false
    }

    /// Whether the databases may be copied side by side (`copies.rs`): only when no copy
    /// touches its target before [`Transfer::commit`] and the copies share nothing.
    fn copies_side_by_side(&self, _jobs: &[Job<Self::Own>]) -> bool {
        false
    }

    /// One database's copy, verified.
    fn copy_one(&self, run: &Run, job: &mut Job<Self::Own>) -> Result<()>;

    /// Once every copy is verified (db-pull: the staging databases are swapped in).
    fn commit(&self, _run: &Run, _jobs: &mut [Job<Self::Own>]) -> Result<()> {
        Ok(())
    }

    /// After a failure, undoes what can be undone (db-pull: drops the staging databases).
    fn clean_up(&self, _run: &Run, _jobs: &mut [Job<Self::Own>]) {}

    /// The line that says what state a database is in after a failure.
    fn state_after_failure(&self, job: &Job<Self::Own>) -> String;

    /// Lines after the databases' (what the clean-up could not undo).
    fn leftovers(&self, _jobs: &[Job<Self::Own>]) -> Vec<String> {
        Vec::new()
    }

    fn reported(&self, job: &Job<Self::Own>) -> Self::Reported;

    /// The result line of a database on stdout (without `--json`).
    fn done_line(&self, job: &Job<Self::Own>) -> String;
}

/// Runs `transfer` for every database of the configuration.
pub fn drive<T: Transfer>(ctx: &Ctx, transfer: &T) -> Result<()> {
    interrupt::install();
    let config = ctx.config()?;
    let copy = transfer.copy_args();
    // A bad XTASK_LOCK_TIMEOUT is refused before anything is read or touched.
    crate::config::timeouts::LOCK_TIMEOUT.get()?;

    // 1. Preflight: nothing on a target is touched until every source is read and checked.
    let preflight_started = std::time::Instant::now();
    let mut endpoints = Vec::new();
    for db in transfer.databases(config) {
        let source = transfer.source_url(config, db)?;
        let target = config.require_url(T::TARGET, db)?.clone();
        if source.same_database(&target) {
            return Err(UsageError::new(same_database(
                T::COMMAND,
                T::SOURCE,
                T::TARGET,
                db,
                &target,
            ))
            .into());
        }
        transfer.check_target(config, &target)?;
        endpoints.push((db, source, target));
    }
    let run = Run {
        ctx,
        tools: ctx.tools()?,
        copy,
        command: T::COMMAND,
        stamp: backup::timestamp(),
        phases: Phases::default(),
    };
    let mut jobs = Vec::new();
    for (db, source, target) in endpoints {
        jobs.push(transfer.preflight_one(&run, db, source, target)?);
    }
    run.phases
        .add(Phase::Preflight, preflight_started.elapsed());

    // 2. The plan, and confirmation.
    for job in &jobs {
        let mut plan = transfer.plan_text(job);
        for w in &job.warnings {
            plan += &format!("\n  warning: {w}");
        }
        ctx.say(plan);
    }
    if copy.dry_run {
        ctx.say("dry run: nothing was changed");
        return finish(ctx, transfer, &jobs, &run.phases, true);
    }
    for job in &jobs {
        if let Some(action) = transfer.action(job) {
            confirm_destructive(&action, job.target.dbname(), config.yes)?;
        }
    }

    // 3. Backups, then the copies, each verified, then the command's commit. Where nothing
    //    touches a target until the commit, the backups are taken beside the copies and the
    //    commit waits for them: a backup that fails stops the run before anything is replaced.
    let backups = BackupStep::new(&run, T::TARGET, &jobs, |j| transfer.has_backup_to_take(j));
    let copy_all = |jobs: &mut Vec<Job<T::Own>>| copies::copy_all(transfer, &run, jobs);
    let copied = if backups.is_empty() {
        copy_all(&mut jobs)
    } else if transfer.backups_beside_copies(&jobs) {
        let (taken, copied) = std::thread::scope(|s| {
            let taking = s.spawn(|| backups.take());
            let copied = copy_all(&mut jobs);
            (taking.join(), copied)
        });
        let taken = taken.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let recorded = taken.record(&run, &mut jobs, T::BACKUP_OF, true);
        match (copied, recorded) {
            // A Ctrl-C stops both: the backup's message says that nothing was changed and that
            // no partial backup is kept.
            (Err(_), Err(backup)) if interrupt::interrupted() => Err(backup),
            (Err(copy), Err(backup)) => {
                ctx.say(format!("the backup failed too: {backup:#}"));
                Err(copy)
            }
            (copied, recorded) => copied.and(recorded),
        }
    } else {
        backups
            .take()
            .record(&run, &mut jobs, T::BACKUP_OF, false)?;
        copy_all(&mut jobs)
    }
    .and_then(|()| transfer.commit(&run, &mut jobs));
    if let Err(e) = copied {
        transfer.clean_up(&run, &mut jobs);
        let mut lines: Vec<String> = jobs
            .iter()
            .map(|j| transfer.state_after_failure(j))
            .collect();
        lines.extend(transfer.leftovers(&jobs));
        let interrupted = interrupt::interrupted();
        let state = failure_state(T::COMMAND, lines, interrupted);
        if interrupted {
            return Err(Interrupted(format!("{} interrupted: {e:#}\n{state}", T::COMMAND)).into());
        }
        return Err(e.context(format!("{} failed\n{state}", T::COMMAND)));
    }
    finish(ctx, transfer, &jobs, &run.phases, false)
}

/// The usage error of a source and a target that are one database.
fn same_database(
    command: &str,
    source: Side,
    target_side: Side,
    db: Database,
    target: &DbUrl,
) -> String {
    format!(
        "the {} and {} {} URLs are the same database ({target}): a {} would replace it with itself",
        source.label(),
        target_side.label(),
        db.label(),
        command.trim_start_matches("db-")
    )
}

/// The state lines of a failed run, and how to finish it.
fn failure_state(command: &str, mut lines: Vec<String>, interrupted: bool) -> String {
    if interrupted {
        lines.push(format!("  to finish: run the same {command} again"));
    } else {
        // The cause follows this line in the error chain (`what failed: ...`).
        lines.push(format!(
            "  to finish: fix what failed, then run the same {command} again"
        ));
        lines.push("  what failed".to_string());
    }
    lines.join("\n")
}

/// The result: the `--json` document, or one line per database (none for a dry run) after the
/// line of the phases' times.
fn finish<T: Transfer>(
    ctx: &Ctx,
    transfer: &T,
    jobs: &[Job<T::Own>],
    phases: &Phases,
    dry_run: bool,
) -> Result<()> {
    if ctx.out.json {
        let doc = serde_json::json!({
            "command": T::COMMAND,
            "ok": true,
            "dry_run": dry_run,
            "phases": phases.to_json(),
            "databases": jobs
                .iter()
                .map(|j| j.report(transfer.reported(j)))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !dry_run {
        ctx.say(phases.line());
        for job in jobs {
            println!("{}", transfer.done_line(job));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
