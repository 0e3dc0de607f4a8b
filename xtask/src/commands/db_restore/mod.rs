//! `cargo xtask db-restore [BACKUP]`: puts back a backup that db-pull or db-push wrote under
//! `backups/` (the default: the latest of each local database). Everything is read before
//! anything is touched: the dump's own tables (`pg_restore --list` and its SQL) and the rows of
//! its data (`archive.rs`, `dumped.rs`). Then a backup of what is there now, the restore into a
//! staging database, its tables and row counts checked against the dump's, and one swap of every
//! restored database (`transfer/swap_all.rs`). Until that commit the local databases are
//! untouched. `--list` shows the backups (`backups.rs`), `--keep N` drops all but the newest N of
//! each database.
//!
//! A backup of a remote database (a push's) goes back onto that remote under db-push's own rules
//! and steps (`remote.rs`).

mod archive;
mod backups;
mod dumped;
mod list;
mod remote;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use self::{backups::BackupFile, dumped::Dumped};
use crate::{
    commands::db_push::GuardArgs,
    config::{Database, Side},
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    pg::{client, scratch::ScratchDb},
    transfer::{
        backup::{self, backups_dir, file_part},
        local_set::{LocalSet, LocalTarget},
        staging,
        swap_all::swap_in_staged,
    },
};

#[derive(Args, Debug)]
pub struct DbRestore {
    /// A backup file: a path, or a file name in the backup folder (default: the latest backup
    /// of each local database)
    pub backup: Option<PathBuf>,
    /// Show the backups: database, time, size and the tables and rows each holds
    #[arg(long)]
    pub list: bool,
    /// With --list: drop all but the newest N backups of each database
    #[arg(long, value_name = "N", requires = "list")]
    pub keep: Option<usize>,
    /// End other sessions on the local databases instead of refusing
    #[arg(long)]
    pub terminate_connections: bool,
    /// Do not back up what the restore overwrites
    #[arg(long)]
    pub no_backup: bool,
    /// Check and print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// A remote backup: db-push's production guard
    #[command(flatten)]
    pub guard: GuardArgs,
    /// A remote restore: also compare a checksum of every table of the remote with the restored
    /// backup's after the load
    #[arg(long)]
    pub checksums: bool,
    /// Which remote database a remote backup is of, when both remote URLs name the same database
    /// (Railway's are both `railway`)
    #[arg(long, value_enum, value_name = "core|ai")]
    pub database: Option<Database>,
}

/// The backups to restore: the local databases', or one remote database's.
enum Chosen {
    Local(Vec<(Database, BackupFile)>),
    Remote(Database, BackupFile),
}

/// One database's part of the restore: the backup and what it holds.
struct Planned<'a> {
    target: &'a LocalTarget,
    file: BackupFile,
    dump: Dumped,
}

impl DbRestore {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        interrupt::install();
        if self.list {
            return list::list(ctx, self.keep);
        }
        let chosen = match self.choose(ctx)? {
            Chosen::Local(chosen) => chosen,
            Chosen::Remote(db, file) => return remote::restore(&self, ctx, db, file),
        };
        let dbs: Vec<Database> = chosen.iter().map(|(db, _)| *db).collect();
        let set = LocalSet::lock(ctx, "db-restore", &dbs)?;
        let tools = ctx.tools()?;
        let mut plan = Vec::new();
        for (target, (_, file)) in set.targets.iter().zip(chosen) {
            let dump = Dumped::read(tools, &file.path)?;
            ctx.say(format!(
                "{}: {} <- {} ({}, {})",
                target.db.label(),
                target.url.dbname(),
                file.path.display(),
                dump.summary(),
                super::db_snapshot::human_bytes(file.bytes as i64)
            ));
            plan.push(Planned { target, file, dump });
        }
        set.clear_sessions(ctx, self.terminate_connections, "a restore")?;
        if self.dry_run {
            ctx.say("dry run: nothing was changed");
            return report(ctx, &plan, &[], true);
        }
        let names: Vec<&str> = plan.iter().map(|p| p.target.url.dbname()).collect();
        confirm_destructive(
            &format!(
                "replace the local database(s) {} with their backup",
                names.join(" and ")
            ),
            names[0],
            ctx.config()?.yes,
        )?;
        let taken = self.back_up(ctx, &plan)?;

        restore_and_swap(ctx, &set, &plan, self.terminate_connections).context(
            "restoring the backups: the local databases are as they were (the staging copies \
             were dropped)",
        )?;
        report(ctx, &plan, &taken, false)
    }

    /// The backup of each database to restore: the one named, else the latest of each.
    fn choose(&self, ctx: &Ctx) -> Result<Chosen> {
        let config = ctx.config()?;
        let dir = backups_dir();
        let all = backups::scan(&dir)?;
        let local_part = |db: Database| -> Result<String> {
            Ok(file_part(config.require_url(Side::Local, db)?.dbname()))
        };
        let Some(given) = &self.backup else {
            let mut chosen = Vec::new();
            for db in config.databases() {
                let part = local_part(db)?;
                let Some(file) = backups::latest_local(&all, &part) else {
                    return Err(UsageError::new(format!(
                        "there is no backup of the local {} database {part} in {} (db-pull \
                         writes one before it overwrites a database); name a file, or pass \
                         --core-only; nothing was changed",
                        db.label(),
                        dir.display()
                    ))
                    .into());
                };
                chosen.push((db, file.clone()));
            }
            return Ok(Chosen::Local(chosen));
        };
        let path = if given.exists() {
            given.clone()
        } else {
            dir.join(given)
        };
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((side, database, stamp)) = backups::parse_name(&file_name) else {
            return Err(UsageError::new(format!(
                "{} is not a backup this xtask wrote (<side>-<database>-<YYYYMMDD-HHMMSS>.dump \
                 in {}; db-restore --list shows them)",
                given.display(),
                dir.display()
            ))
            .into());
        };
        let bytes = std::fs::metadata(&path)
            .with_context(|| format!("reading the backup {}", path.display()))?
            .len();
        let file = |db: Database| {
            let file = BackupFile {
                path: path.clone(),
                side,
                database: database.clone(),
                stamp: stamp.clone(),
                bytes,
            };
            match side {
                Side::Local => Chosen::Local(vec![(db, file)]),
                Side::Remote => Chosen::Remote(db, file),
            }
        };
        if side == Side::Remote {
            return remote::database_of(config, self.database, &path, &database).map(file);
        }
        for db in config.databases() {
            if local_part(db)? == database {
                return Ok(file(db));
            }
        }
        Err(UsageError::new(format!(
            "{} is a backup of the database {database}, which is not one of the local databases \
             of this run; nothing was changed",
            path.display()
        ))
        .into())
    }

    /// A backup of each database that exists, unless `--no-backup`.
    fn back_up(&self, ctx: &Ctx, plan: &[Planned]) -> Result<Vec<backup::Backup>> {
        let mut taken = Vec::new();
        if self.no_backup {
            return Ok(taken);
        }
        let stamp = backup::timestamp();
        for p in plan {
            let url = &p.target.url;
            if !ctx.block_on(client::database_exists(
                p.target.lock.client(),
                url.dbname(),
            ))? {
                continue;
            }
            let b = backup::take_first(
                ctx.tools()?,
                "db-restore",
                Side::Local,
                p.target.db,
                url,
                &stamp,
            )?;
            ctx.say(format!(
                "{}: backed up {} to {}",
                p.target.db.label(),
                url.dbname(),
                b.path.display()
            ));
            taken.push(b);
        }
        Ok(taken)
    }
}

/// Each backup restored into its staging database and checked against the dump, then all
/// swapped in; a failure drops the staging databases (`ScratchDb`) before the swap, or rolls it
/// back.
fn restore_and_swap(ctx: &Ctx, set: &LocalSet, plan: &[Planned], terminate: bool) -> Result<()> {
    let tools = ctx.tools()?;
    let admin = set.admin();
    let mut staged = Vec::new();
    for p in plan {
        interrupt::check("the restore")?;
        let name = staging::staging_name(&p.target.url);
        let copy = ScratchDb::create(
            &ctx.rt,
            admin,
            &p.target.url,
            &name,
            None,
            "for the restore",
        )?;
        interrupt::check("the restore")?;
        archive::restore_into(tools, &p.file.path, copy.url())?;
        check_restored(ctx, p, copy.url())?;
        staged.push(copy);
    }
    swap_in_staged(ctx, set, terminate, staged)
}

/// The restored database holds exactly the dump's tables, each with the rows of its data.
fn check_restored(ctx: &Ctx, p: &Planned, staging: &crate::config::DbUrl) -> Result<()> {
    let wrong = p.dump.differences(ctx, staging)?;
    if !wrong.is_empty() {
        bail!(
            "the restore of {} into {staging} does not hold what the backup does: {}",
            p.file.path.display(),
            wrong.join("; ")
        );
    }
    ctx.say(format!(
        "{}: restored into {} and checked ({})",
        p.target.db.label(),
        staging.dbname(),
        p.dump.summary()
    ));
    Ok(())
}

fn report(ctx: &Ctx, plan: &[Planned], taken: &[backup::Backup], dry_run: bool) -> Result<()> {
    if ctx.out.json {
        let doc = serde_json::json!({
            "command": "db-restore",
            "ok": true,
            "dry_run": dry_run,
            "databases": plan.iter().map(|p| serde_json::json!({
                "database": p.target.db,
                "target": p.target.url.to_string(),
                "restored_from": p.file.path,
                "tables": p.dump.tables.len(),
                "rows": p.dump.total_rows(),
            })).collect::<Vec<_>>(),
            "backups": taken,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if !dry_run {
        for p in plan {
            println!(
                "{}: restored {} from {} ({})",
                p.target.db.label(),
                p.target.url.dbname(),
                p.file.path.display(),
                p.dump.summary()
            );
        }
    }
    Ok(())
}
