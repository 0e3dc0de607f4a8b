//! `cargo xtask db-push`: local -> remote, Core and AI (unless `--core-only`): schema first, then
//! data, then verification. Replaces the INSERT-based push that lost 100% of positions.
//!
//! The data goes by COPY in ONE transaction per database on the target: foreign keys touching the
//! loaded tables are dropped and re-added inside it (re-adding validates every row, so table
//! order, self-references and cycles cannot lose rows), every table's row count is asserted
//! before COMMIT, and any failure (a constraint the data violates, a killed tool, Ctrl-C) rolls
//! the whole load back: the target's data ends exactly as it was. `--mode upsert` merges by primary
//! key and deletes nothing. A backup of the target is downloaded first (`backups/`).
//!
//! Production is guarded: a target whose host is in `XTASK_PROTECTED_HOSTS` needs `--yes` AND
//! `--confirm-target <host>/<db>` matching exactly, and refuses `--no-backup`.

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Config, Database, DbUrl, Side},
    ctx::Ctx,
    interrupt,
    pg::{
        client::{self, ConnectFailure},
        lock::{self, DbLock},
        sessions,
    },
    transfer::{
        self, load::LoadMode, sections, source::read_source, CopyArgs, CopyStep, Job, Run,
        SchemaMode, Transfer,
    },
    verify::{catalog::Snapshot, recreate::Candidate, Endpoint},
};

#[derive(Args, Debug)]
pub struct DbPush {
    #[command(flatten)]
    pub copy: CopyArgs,
    /// How the pushed rows meet the target's rows
    #[arg(long, value_enum, default_value_t = LoadMode::Replace)]
    pub mode: LoadMode,
    #[command(flatten)]
    pub guard: GuardArgs,
    /// Definitions that print differently on the source and the remote but are the same once
    /// re-created (db-restore's staging copy of a backup against the migrated remote): not
    /// differences of schema.
    #[arg(skip)]
    pub printed_alike: Vec<Candidate>,
}

/// What a push tracks of one database besides what every copy does.
pub struct Pushed {
    /// The remote as it was before the push.
    before: Snapshot,
    _lock: DbLock,
    /// The target's Alembic revision before an upgrade changed it (committed on its own).
    upgraded_from: Option<Vec<String>>,
    /// `--schema source` created the local schema's pre-data section on the empty remote
    /// (committed on its own, before the load).
    schema_created: bool,
    loaded: bool,
}

/// What a push adds to a database's part of the `--json` document.
#[derive(Serialize)]
pub struct PushReported {
    mode: LoadMode,
}

impl DbPush {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        transfer::drive(ctx, &self)
    }
}

impl Transfer for DbPush {
    type Own = Pushed;
    type Reported = PushReported;
    const COMMAND: &'static str = "db-push";
    const SOURCE: Side = Side::Local;
    const TARGET: Side = Side::Remote;
    const BACKUP_OF: &'static str = "the remote ";

    fn copy_args(&self) -> &CopyArgs {
        &self.copy
    }

    fn check_target(&self, config: &Config, target: &DbUrl) -> Result<()> {
        self.check_protected(config, target)
    }

    fn preflight_one(
        &self,
        run: &Run,
        db: Database,
        source_url: DbUrl,
        target: DbUrl,
    ) -> Result<Job<Pushed>> {
        let ctx = run.ctx;
        let timeout = ctx.timeout();
        let label = db.label();
        let untouched = "nothing on the remote was touched";
        // The lock lives on the server's maintenance database when we may connect to it, else
        // on the target database itself (a push never drops it).
        let lock = match ctx.block_on(lock::acquire(
            &target.with_dbname("postgres"),
            target.dbname(),
            run.command,
            timeout,
        )) {
            Ok(lock) => lock,
            Err(e)
                if client::connect_failure(&e) == Some(ConnectFailure::MissingDatabase)
                    || client::connect_failure(&e) == Some(ConnectFailure::Authentication) =>
            {
                ctx.block_on(lock::acquire(
                    &target,
                    target.dbname(),
                    run.command,
                    timeout,
                ))?
            }
            Err(e) => {
                return Err(e.context(format!("locking the remote {label} database; {untouched}")))
            }
        };
        let read = read_source(
            run,
            db,
            Endpoint::new(Side::Local.label(), source_url),
            untouched,
        )?;
        let before = ctx
            .block_on(transfer::read_snapshot(&target, timeout))
            .with_context(|| format!("reading the remote {label} database; {untouched}"))?;
        if self.copy.schema == SchemaMode::Source {
            source_schema::check_remote(
                run,
                label,
                (&read.0.endpoint.url, &read.0.catalog),
                (&target, &before.catalog),
                &self.printed_alike,
                untouched,
            )?;
        }
        let own = format!("xtask {} (pid {})", run.command, std::process::id());
        let others: Vec<_> = ctx
            .block_on(sessions::other_sessions(lock.client(), target.dbname()))?
            .into_iter()
            .filter(|s| s.application_name != own)
            .collect();
        if !others.is_empty() {
            ctx.say(format!(
                "{label}: warning: the remote {} has {} other session(s) (the app?): {}; the load \
                 locks the tables it replaces until it commits",
                target.dbname(),
                others.len(),
                sessions::describe(&others)
            ));
        }
        let pushed = Pushed {
            before,
            _lock: lock,
            upgraded_from: None,
            schema_created: false,
            loaded: false,
        };
        Ok(Job::new(run, db, target, read, pushed))
    }

    fn plan_text(&self, p: &Job<Pushed>) -> String {
        self.plan(p)
    }

    fn action(&self, p: &Job<Pushed>) -> Option<String> {
        if self.is_protected(&p.target) {
            return None; // --yes and the exact --confirm-target were checked up front
        }
        Some(format!(
            "{} the data of {} table(s) in the remote {} database {} ({})",
            match self.mode {
                LoadMode::Replace => "replace",
                LoadMode::Upsert => "merge into",
            },
            p.selection.tables.len(),
            p.db.label(),
            p.target.dbname(),
            p.target
        ))
    }

    fn copy_one(&self, run: &Run, p: &mut Job<Pushed>) -> Result<()> {
        let ctx = run.ctx;
        let label = p.db.label();
        interrupt::check("the schema step (nothing was changed)")?;
        match self.copy.schema {
            SchemaMode::Migrations => {
                let before = p
                    .own
                    .before
                    .catalog
                    .alembic
                    .as_ref()
                    .map(|a| a.revisions.clone())
                    .unwrap_or_default();
                let mut sorted = before.clone();
                sorted.sort();
                let mut heads = p.heads.clone();
                heads.sort();
                if sorted != heads {
                    AlembicConfig::of(p.db)
                        .upgrade(&ctx.rt, &ctx.sh, &backend_dir(), &p.target, "head")
                        .with_context(|| format!("{label}: migrating the remote to head"))?;
                    // Alembic committed it (a failed upgrade is rolled back whole): a later
                    // failure names the revision to go back to.
                    p.own.upgraded_from = Some(before);
                    ctx.say(format!("{label}: remote migrated to head"));
                }
            }
            // Its schema was compared with the local one in the preflight: equal.
            SchemaMode::Source if !p.own.before.catalog.tables.is_empty() => ctx.say(format!(
                "{label}: the remote's schema equals the local one; loading into it"
            )),
            SchemaMode::Source => {
                source_schema::create(run, p, sections::post_data_after_load(self.mode))
                    .with_context(|| format!("{label}: copying the local schema to the remote"))?;
                ctx.say(format!(
                    "{label}: local schema created on the remote (pre-data now, post-data {})",
                    if p.post_data.is_some() {
                        "in the load's transaction, after the data"
                    } else {
                        "before the data: an upsert merges by primary key"
                    }
                ));
            }
        }
        let built = ctx.block_on(transfer::read_snapshot(&p.target, ctx.timeout()))?;
        transfer::selection::check_target_can_hold(
            &p.source.catalog,
            &built.catalog,
            &p.selection,
            "remote",
        )
        .with_context(|| format!("{label}: checking the remote schema"))?;

        interrupt::check("the data step")?;
        let step = CopyStep {
            db: p.db,
            source: &p.source,
            source_side: Side::Local,
            target: &p.target,
            target_side: Side::Remote,
            selection: &p.selection,
            heads: &p.heads,
            logs: &p.logs,
            mode: self.mode,
            staging: false,
            post_data: p.post_data.as_deref(),
            // A push copies the laptop's own data: no policy applies.
            masking: None,
            alike: &self.printed_alike,
        };
        step.load(run, None)
            .with_context(|| format!("{label}: loading the data"))?;
        p.own.loaded = true;
        interrupt::check("the verification")?;
        let (summary, warnings) = step.verify(run)?;
        p.warnings.extend(warnings);
        p.verified = Some(summary);
        Ok(())
    }

    fn state_after_failure(&self, p: &Job<Pushed>) -> String {
        let data = if p.verified.is_some() {
            "pushed and verified".to_string()
        } else if p.own.loaded {
            "loaded and committed, but not verified (see above)".to_string()
        } else {
            "unchanged (the load's transaction was rolled back, or never started)".to_string()
        };
        let mut line = format!(
            "  remote {} database {}: data {data}",
            p.db.label(),
            p.target.dbname()
        );
        if let Some(from) = &p.own.upgraded_from {
            line += &format!(
                "; its schema WAS migrated from {} to head before the failure (committed by \
                 Alembic); to undo it: cd backend && uv run alembic -c {} downgrade {}",
                if from.is_empty() {
                    "nothing".to_string()
                } else {
                    from.join(", ")
                },
                AlembicConfig::of(p.db).ini(),
                from.first().map(String::as_str).unwrap_or("base")
            );
        }
        if p.own.schema_created && !p.own.loaded {
            line += "; the local schema's tables, types and functions WERE created on it (the \
                     pre-data section, committed before the load; keys, constraints and indexes \
                     come with the data): drop them, or the database, before pushing again, since \
                     a second --schema source push compares the remote's schema with the local one";
        }
        if let Some(b) = &p.backup {
            if p.verified.is_none() {
                line += &format!(
                    "; backup from before the push: {} (to restore: {})",
                    b.path.display(),
                    b.restore_hint(&p.target)
                );
            }
        }
        line
    }

    fn reported(&self, _: &Job<Pushed>) -> PushReported {
        PushReported { mode: self.mode }
    }

    fn done_line(&self, p: &Job<Pushed>) -> String {
        format!(
            "pushed {} rows in {} tables into the remote {}: {}",
            p.rows(),
            p.selection.tables.len(),
            p.target.dbname(),
            p.verified.as_deref().unwrap_or("verified")
        )
    }
}

mod plan;
mod protected;
pub use protected::GuardArgs;
mod source_schema;
#[cfg(test)]
mod tests;
