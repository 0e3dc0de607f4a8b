//! `db-restore backups/remote-<db>-<stamp>.dump`: a push's backup put back onto the remote it was
//! taken of, as a push of the backup. The archive is read and checked, restored into a staging
//! database on the local server (`<db>_xtask_restore`) and checked against the archive's own
//! tables and row counts; then db-push's own steps run with that staging database as their source
//! (`RemoteRestore` hands every step to `DbPush`): the protected-host guard before anything is
//! read, the remote locked and read, its schema compared with the backup's (`--schema source`: a
//! difference, a table the backup lacks among them, refuses the restore by name), the plan, the
//! confirmation, a fresh backup of the remote, then the data replaced in one transaction with
//! every row count asserted before COMMIT and every lock wait bounded, and the remote verified
//! against the staging copy. Added here: the fresh backup is read back and must hold what the
//! remote holds before the load starts, and the remote must end with exactly the backup's tables
//! and rows.
//!
//! Why a push and not a staging database and a swap on the remote (what a local restore does): a
//! hosted remote such as Railway may not allow CREATE DATABASE, and the app's sessions hold its
//! database, which a rename cannot take from them. A push's single transaction is all or nothing
//! in the database itself, and is what the remote's guard already trusts.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{archive, backups::BackupFile, dumped::Dumped, DbRestore};
use crate::{
    commands::db_push::{DbPush, Pushed},
    config::{Config, Database, DbUrl, Side},
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    pg::{
        lock,
        scratch::{sibling_name, ScratchDb},
    },
    transfer::{
        self,
        backup::{self, file_part},
        load::LoadMode,
        CopyArgs, Job, Run, SchemaMode, Transfer,
    },
    verify::recreate::{printed_differently, same_once_recreated, Candidate},
};

/// The remote database that a remote backup named `database` (its file name's part) is of: the
/// configured remote of that name, `--database` choosing when both have it; any other is refused.
pub(super) fn database_of(
    config: &Config,
    chosen: Option<Database>,
    path: &Path,
    database: &str,
) -> Result<Database> {
    let configured: Vec<(Database, &DbUrl)> = config
        .databases()
        .into_iter()
        .filter(|db| chosen.is_none_or(|c| c == *db))
        .filter_map(|db| config.url(Side::Remote, db).map(|url| (db, url)))
        .collect();
    let matching: Vec<Database> = configured
        .iter()
        .filter(|(_, url)| file_part(url.dbname()) == database)
        .map(|(db, _)| *db)
        .collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(UsageError::new(format!(
            "{} is a backup of the remote database {database}, and the remote of this run is {}: \
             a remote backup is restored only onto the database it was taken of \
             (RAILWAY_DB_URL / RAILWAY_AI_DB_URL, --remote-url / --remote-ai-url); nothing was \
             changed",
            path.display(),
            if configured.is_empty() {
                "not set".to_string()
            } else {
                configured
                    .iter()
                    .map(|(db, url)| format!("{} {}", db.label(), url.dbname()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            }
        ))
        .into()),
        _ => Err(UsageError::new(format!(
            "{} is a backup of the remote database {database}, which both remote URLs name: pass \
             --database core or --database ai to say which; nothing was changed",
            path.display()
        ))
        .into()),
    }
}

/// Restores the remote backup `file` onto the remote `db` database.
pub(super) fn restore(args: &DbRestore, ctx: &Ctx, db: Database, file: BackupFile) -> Result<()> {
    let config = ctx.config()?;
    let remote = config.require_url(Side::Remote, db)?.clone();
    let local = config.require_url(Side::Local, db)?.clone();
    let mut push = DbPush {
        copy: CopyArgs {
            // The backup's own schema: the remote's must equal it (no migration runs).
            schema: SchemaMode::Source,
            allow_revision_mismatch: false,
            no_backup: args.no_backup,
            dry_run: args.dry_run,
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            checksums: args.checksums,
            jobs: 1,
            allow_uncopyable: false,
        },
        mode: LoadMode::Replace,
        guard: args.guard.clone(),
        printed_alike: Vec::new(),
    };
    // The production guard before anything is read (the push checks it again, as always).
    push.check_target(config, &remote)?;

    let tools = ctx.tools()?;
    let dump = Dumped::read(tools, &file.path)?;
    ctx.say(format!(
        "{}: remote {} <- {} ({}, {})",
        db.label(),
        remote.dbname(),
        file.path.display(),
        dump.summary(),
        transfer::human_bytes(file.bytes as i64)
    ));
    let untouched = "nothing on the remote was touched";
    let name = sibling_name(&file_part(remote.dbname()), "_xtask_restore");
    let lock = ctx
        .block_on(lock::acquire(
            &local.with_dbname("postgres"),
            &name,
            "db-restore",
            ctx.timeout(),
        ))
        .with_context(|| format!("locking the staging database {name}; {untouched}"))?;
    let staging = ScratchDb::create(
        &ctx.rt,
        lock.client(),
        &local,
        &name,
        None,
        "for the remote restore",
    )?;
    interrupt::check("the restore into the staging database (nothing on the remote was touched)")?;
    archive::restore_into(tools, &file.path, staging.url())
        .with_context(|| format!("{untouched}; the staging database is dropped"))?;
    let wrong = dump.differences(ctx, staging.url())?;
    if !wrong.is_empty() {
        bail!(
            "the restore of {} into {} does not hold what the backup does: {}; {untouched}",
            file.path.display(),
            staging.url(),
            wrong.join("; ")
        );
    }
    ctx.say(format!(
        "{}: restored into the staging database {} and checked ({})",
        db.label(),
        staging.name(),
        dump.summary()
    ));
    push.printed_alike = printed_alike(ctx, db, staging.url(), &remote)
        .with_context(|| format!("{}: comparing the definitions; {untouched}", db.label()))?;
    // The fresh backup's name has the second it was taken in: never the restored file's.
    while backup::timestamp() == file.stamp {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let restore = RemoteRestore {
        push,
        db,
        file: &file,
        dump: &dump,
        staging: staging.url().clone(),
    };
    let done = transfer::drive(ctx, &restore);
    let dropped = staging.drop_now();
    done?;
    dropped
}

/// The constraints, indexes and defaults that print differently in the restored copy than on the
/// remote (the migrations' `IN (...)` deparsed, then parsed again by the restore) but are the
/// same once re-created in the staging copy: the push does not count them as differences.
fn printed_alike(
    ctx: &Ctx,
    db: Database,
    staging: &DbUrl,
    remote: &DbUrl,
) -> Result<Vec<Candidate>> {
    let (copy, now) = (
        ctx.block_on(transfer::read_snapshot(staging, ctx.timeout()))?,
        ctx.block_on(transfer::read_snapshot(remote, ctx.timeout()))?,
    );
    let candidates = printed_differently(&copy.catalog, &now.catalog);
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let alike = ctx.block_on(same_once_recreated(staging, ctx.timeout(), candidates))?;
    if !alike.is_empty() {
        let names: Vec<String> = alike.iter().map(|c| c.object.to_string()).collect();
        ctx.say(format!(
            "{}: printed differently on the remote, the same once re-created: {}",
            db.label(),
            names.join(", ")
        ));
    }
    Ok(alike)
}

/// db-push's steps with the staging copy of the backup as the source, and the backup's checks.
struct RemoteRestore<'a> {
    push: DbPush,
    db: Database,
    file: &'a BackupFile,
    dump: &'a Dumped,
    staging: DbUrl,
}

/// What a remote restore adds to a database's part of the `--json` document.
#[derive(Serialize)]
struct RestoreReported<'a> {
    restored_from: &'a Path,
    backup_tables: usize,
    backup_rows: i64,
}

impl<'a> Transfer for RemoteRestore<'a> {
    type Own = Pushed;
    type Reported = RestoreReported<'a>;
    const COMMAND: &'static str = "db-restore";
    const SOURCE: Side = Side::Local;
    const TARGET: Side = Side::Remote;
    const BACKUP_OF: &'static str = "the remote ";

    fn copy_args(&self) -> &CopyArgs {
        self.push.copy_args()
    }

    fn databases(&self, _: &Config) -> Vec<Database> {
        vec![self.db]
    }

    fn source_url(&self, _: &Config, _: Database) -> Result<DbUrl> {
        Ok(self.staging.clone())
    }

    fn check_target(&self, config: &Config, target: &DbUrl) -> Result<()> {
        self.push.check_target(config, target)
    }

    fn preflight_one(
        &self,
        run: &Run,
        db: Database,
        source: DbUrl,
        target: DbUrl,
    ) -> Result<Job<Pushed>> {
        self.push.preflight_one(run, db, source, target)
    }

    fn plan_text(&self, p: &Job<Pushed>) -> String {
        format!(
            "{}\n  restore: the remote's data replaced by the backup {} ({}), through the \
             staging database {}",
            self.push.plan_text(p),
            self.file.path.display(),
            self.dump.summary(),
            self.staging.dbname()
        )
    }

    fn action(&self, p: &Job<Pushed>) -> Option<String> {
        self.push
            .action(p)
            .map(|a| format!("restore {}: {a}", self.file.path.display()))
    }

    fn copy_one(&self, run: &Run, p: &mut Job<Pushed>) -> Result<()> {
        let ctx = run.ctx;
        let label = p.db.label();
        if let Some(b) = &p.backup {
            interrupt::check("the backup's check (nothing was changed)")?;
            let fresh = Dumped::read(run.tools, &b.path)?;
            let wrong = fresh.differences(ctx, &p.target)?;
            if !wrong.is_empty() {
                bail!(
                    "{label}: the backup {} just taken does not hold what the remote does (did \
                     the remote change while it was taken?): {}; nothing was changed",
                    b.path.display(),
                    wrong.join("; ")
                );
            }
            ctx.say(format!(
                "{label}: the backup {} read back: it holds what the remote does ({})",
                b.path.display(),
                fresh.summary()
            ));
        }
        self.push.copy_one(run, p)?;
        let wrong = self.dump.differences(ctx, &p.target)?;
        if !wrong.is_empty() {
            bail!(
                "{label}: the remote {} does not hold what the backup {} does after the load: {}",
                p.target.dbname(),
                self.file.path.display(),
                wrong.join("; ")
            );
        }
        Ok(())
    }

    fn state_after_failure(&self, p: &Job<Pushed>) -> String {
        self.push.state_after_failure(p)
    }

    fn reported(&self, _: &Job<Pushed>) -> RestoreReported<'a> {
        RestoreReported {
            restored_from: &self.file.path,
            backup_tables: self.dump.tables.len(),
            backup_rows: self.dump.total_rows(),
        }
    }

    fn done_line(&self, p: &Job<Pushed>) -> String {
        format!(
            "{}: restored the remote {} from {} ({}, checked against the backup): {}",
            p.db.label(),
            p.target.dbname(),
            self.file.path.display(),
            self.dump.summary(),
            p.verified.as_deref().unwrap_or("verified")
        )
    }
}
