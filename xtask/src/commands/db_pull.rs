//! `cargo xtask db-pull`: remote (Railway) -> local, Core and AI (unless `--core-only`).
//!
//! The local database is never dropped before its replacement is complete and verified: the copy
//! is built in a staging database next to it (`<name>_xtask_new`: extensions, schema from the
//! migrations or the source, data streamed by COPY in one transaction, then checked against the
//! source's snapshot), and only then swapped in by two renames in one transaction. Any failure or
//! Ctrl-C before the swap drops the staging database and leaves the local one exactly as it was.
//! A backup of each local database is still written first (`--no-backup` skips it), for a pull
//! that succeeded but brought the wrong data.
//!
//! With `--tables` / `--exclude-table` only those tables' data is replaced, in place, in one
//! transaction that checks every row count before it commits.
//!
//! The data comes through the data policy (`backend/data_policy.toml`, `transfer::masking`):
//! masked on the source, the policy, the source's columns and the key checked in the preflight.
//! `--unmasked` copies every column as it is (on a terminal, after `unmasked` is typed).
//!
//! The steps both commands share are `transfer::drive`'s; this is what a pull does differently:
//! its preflight (the local database read and its sessions checked), its plan, the staging
//! database built, loaded, verified and swapped in (`transfer::staging`), and what a failure
//! leaves.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{
    config::{Database, DbUrl, Side},
    ctx::Ctx,
    interrupt,
    pg::{
        client,
        lock::{self, DbLock},
        scratch, sessions,
        stream::StartedDump,
    },
    transfer::{
        self,
        load::LoadMode,
        masking::Masking,
        phases::Phase,
        selection::check_target_can_hold,
        source::read_source,
        staging::{self, Swap},
        CopyArgs, CopyStep, Job, Run, Transfer,
    },
    verify::{catalog::Snapshot, Endpoint},
};

mod plan;

#[derive(Args, Debug)]
pub struct DbPull {
    #[command(flatten)]
    pub copy: CopyArgs,
    /// End other sessions on the local databases (the app, a psql) instead of refusing
    #[arg(long)]
    pub terminate_connections: bool,
    /// Copy every column as it is, without the data policy's masking (backend/data_policy.toml).
    /// On a terminal it asks for `unmasked` to be typed, even with --yes
    #[arg(long)]
    pub unmasked: bool,
    /// The masking key to use when `XTASK_MASK_KEY` is not set; never from the command line.
    /// Onboarding's sandbox source sets it: its data is the seed's, made on this laptop, so a
    /// new hire needs no team secret to mask it.
    #[arg(skip)]
    pub fallback_mask_key: Option<&'static str>,
}

/// What a pull tracks of one database besides what every copy does.
pub struct Pulled {
    /// The local database as it was, `None` when it does not exist.
    before: Option<Snapshot>,
    size: Option<i64>,
    lock: DbLock,
    /// The staging database, from its creation until it is swapped in.
    staging: Option<DbUrl>,
    /// Why the clean-up after a failure could not drop the staging database.
    not_dropped: Option<String>,
    /// `--tables`: the load into the local tables committed (they were replaced in place).
    loaded_in_place: bool,
    /// The data policy applied on the source; `None` with `--unmasked`.
    masking: Option<Masking>,
    /// The tables the parallel load split into ctid ranges, by name, and into how many.
    split: BTreeMap<String, usize>,
}

/// A pull's own field in its `--json` document.
#[derive(serde::Serialize)]
pub struct PullReported {
    /// Whether the data came through the data policy (false with `--unmasked`).
    masked: bool,
    /// `--jobs`: the tables split into ctid ranges, and into how many (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    split: BTreeMap<String, usize>,
}

/// The local database as it is before a pull: its snapshot and size, or `None` when it does not
/// exist.
async fn read_local(
    lock: &DbLock,
    target: &DbUrl,
    timeout: std::time::Duration,
) -> Result<(Option<Snapshot>, Option<i64>)> {
    if !client::database_exists(lock.client(), target.dbname()).await? {
        return Ok((None, None));
    }
    let snap = transfer::read_snapshot(target, timeout).await?;
    let size: i64 = lock
        .client()
        .query_one(
            "SELECT pg_catalog.pg_database_size($1::text)",
            &[&target.dbname()],
        )
        .await
        .with_context(|| format!("reading the size of {target}"))?
        .get(0);
    Ok((Some(snap), Some(size)))
}

impl DbPull {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        if self.unmasked && !self.copy.dry_run {
            crate::confirm::confirm_word(
                "copy every column of the source as it is, without the data policy's masking \
                 (emails, names, password hashes, what users told the assistant)",
                "unmasked",
            )?;
        }
        transfer::drive(ctx, &self)
    }

    /// Loads `into` (the staging database, or the local one itself for `--tables`) and verifies
    /// it against the source's snapshot.
    fn load_and_check(
        &self,
        run: &Run,
        p: &mut Job<Pulled>,
        into: DbUrl,
        early: Option<StartedDump>,
    ) -> Result<()> {
        let ctx = run.ctx;
        let step = CopyStep {
            db: p.db,
            source: &p.source,
            source_side: Side::Remote,
            target: &into,
            target_side: Side::Local,
            selection: &p.selection,
            heads: &p.heads,
            logs: &p.logs,
            mode: LoadMode::Replace,
            // A full pull loads into the staging database it built; --tables loads in place.
            staging: !p.selection.partial,
            post_data: p.post_data.as_deref(),
            masking: p.own.masking.as_ref(),
            alike: &[],
        };
        let split = step.load(run, early)?;
        p.own.split = split.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        p.own.loaded_in_place = p.selection.partial;
        crate::interrupt::check("the verification")?;
        // Dropping the replaced database at the swap forces a checkpoint, which must first write
        // every page the load dirtied. Started now, that work overlaps the verification; the
        // drop's checkpoint then finds little left to write.
        let checkpoint = (p.own.staging.is_some() && p.own.before.is_some()).then(|| {
            ctx.rt
                .spawn(staging::early_checkpoint(p.target.with_dbname("postgres")))
        });
        let verified = step.verify(run);
        if let Some(checkpoint) = checkpoint {
            let _ = ctx.block_on(checkpoint);
        }
        let (summary, warnings) = verified?;
        p.warnings.extend(warnings);
        p.verified = Some(summary);
        Ok(())
    }
}

impl Transfer for DbPull {
    type Own = Pulled;
    type Reported = PullReported;
    const COMMAND: &'static str = "db-pull";
    const SOURCE: Side = Side::Remote;
    const TARGET: Side = Side::Local;
    const BACKUP_OF: &'static str = "";

    fn copy_args(&self) -> &CopyArgs {
        &self.copy
    }

    fn preflight_one(
        &self,
        run: &Run,
        db: Database,
        source_url: DbUrl,
        target: DbUrl,
    ) -> Result<Job<Pulled>> {
        let (ctx, timeout) = (run.ctx, run.ctx.timeout());
        let label = db.label();
        // The policy and the key before anything is read: a pull without them copies nothing.
        let masking = match self.unmasked {
            true => None,
            false => Some(Masking::load(self.fallback_mask_key)?),
        };
        // The lock comes first: a second pull refuses at once, before it reads anything.
        let lock = ctx
            .block_on(lock::acquire(
                &target.with_dbname("postgres"),
                target.dbname(),
                run.command,
                timeout,
            ))
            .with_context(|| format!("locking the local {label} database"))?;
        // The local database is read (on its own thread, with the runtime only: the Ctx is not
        // Sync) while the source is: the two are independent, and a failure of the source's
        // read is still the one reported first.
        let rt = &ctx.rt;
        let (source, local) = std::thread::scope(|scope| {
            let local = scope.spawn(|| rt.block_on(read_local(&lock, &target, timeout)));
            let source = read_source(
                run,
                db,
                Endpoint::new(Side::Remote.label(), source_url),
                "nothing local was touched",
            );
            let local = local
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread reading {target} panicked")));
            (source, local)
        });
        let read = source?;
        let (source, _, selection) = &read;
        if let Some(masking) = &masking {
            ctx.block_on(masking.check_source(db, source))
                .with_context(|| format!("{label}: the data policy"))?;
        }
        let (before, size) =
            local.with_context(|| format!("reading the local {label} database {target}"))?;
        if selection.partial {
            let Some(before) = &before else {
                bail!(
                    "the local {label} database {} does not exist: a pull of some tables needs \
                     it; run a full pull (without --tables/--exclude-table) or `cargo xtask \
                     db-init` first",
                    target.dbname()
                );
            };
            check_target_can_hold(&source.catalog, &before.catalog, selection, "local")?;
        } else if before.is_some() {
            let others = ctx.block_on(sessions::sessions_after_grace(
                lock.client(),
                target.dbname(),
            ))?;
            if !others.is_empty() && !self.terminate_connections {
                bail!(
                    "the local {label} database {} has {} other session(s): {}. Stop the app \
                     (and any psql) using it, or pass --terminate-connections; nothing was \
                     changed",
                    target.dbname(),
                    others.len(),
                    sessions::describe(&others)
                );
            }
        }
        let pulled = Pulled {
            before,
            size,
            lock,
            staging: None,
            not_dropped: None,
            loaded_in_place: false,
            split: BTreeMap::new(),
            masking,
        };
        Ok(Job::new(run, db, target, read, pulled))
    }

    fn plan_text(&self, p: &Job<Pulled>) -> String {
        self.plan(p)
    }

    fn action(&self, p: &Job<Pulled>) -> Option<String> {
        Some(if p.selection.partial {
            format!(
                "replace the data of {} table(s) in the local {} database {}",
                p.selection.tables.len(),
                p.db.label(),
                p.target.dbname()
            )
        } else {
            format!(
                "replace the local {} database {} with the remote's",
                p.db.label(),
                p.target.dbname()
            )
        })
    }

    fn has_backup_to_take(&self, p: &Job<Pulled>) -> bool {
        p.own.before.is_some()
    }

    /// A full pull touches no local database until the swap, which comes after the backups.
    /// `--tables` loads in place: its backups come first.
    fn backups_beside_copies(&self, pulls: &[Job<Pulled>]) -> bool {
        pulls.iter().all(|p| !p.selection.partial)
    }

    /// Core's and AI's full copies go into staging databases of their own: side by side.
    fn copies_side_by_side(&self, pulls: &[Job<Pulled>]) -> bool {
        self.backups_beside_copies(pulls)
    }

    fn copy_one(&self, run: &Run, p: &mut Job<Pulled>) -> Result<()> {
        let label = p.db.label();
        if p.selection.partial {
            let into = p.target.clone();
            return self
                .load_and_check(run, p, into, None)
                .with_context(|| format!("{label}: loading the selected tables"));
        }
        // One stream: pg_dump starts up (docker exec, the source's catalog) while the staging
        // database is created and checked; its output waits in the pipe.
        let early = (self.copy.jobs == 1)
            .then(|| {
                transfer::copy::start_data_dump(
                    run.tools,
                    &p.source,
                    Side::Remote,
                    &p.selection,
                    &p.logs,
                    p.own.masking.as_ref().map(|m| (m, p.db)),
                )
            })
            .transpose()
            .with_context(|| format!("{label}: starting pg_dump"))?;
        let mut created = None;
        let built = run.phases.time(Phase::Schema, || {
            staging::build(run, p, p.own.lock.client(), &mut created)
        });
        p.own.staging = created;
        let built = built.with_context(|| format!("{label}: building the new copy"))?;
        p.post_data = built.post_data;
        p.created_roles = built.created_roles;
        self.load_and_check(run, p, built.url, early)
            .with_context(|| format!("{label}: loading the data"))
    }

    /// Every copy is verified: the staging databases are swapped in.
    fn commit(&self, run: &Run, pulls: &mut [Job<Pulled>]) -> Result<()> {
        interrupt::check("the last checks (nothing was changed)")?;
        let started = std::time::Instant::now();
        for p in pulls.iter_mut() {
            let Some(staging) = &p.own.staging else {
                continue;
            };
            Swap {
                label: p.db.label(),
                admin: p.own.lock.client(),
                target: &p.target,
                staging,
                replaces: p.own.before.is_some(),
                terminate: self.terminate_connections,
            }
            .run(run.ctx)?;
            p.own.staging = None;
            run.ctx.say(format!(
                "{}: local database {} replaced",
                p.db.label(),
                p.target.dbname()
            ));
        }
        run.phases.add(Phase::Swap, started.elapsed());
        Ok(())
    }

    /// Drops every staging database that was created, noting those that could not be.
    fn clean_up(&self, run: &Run, pulls: &mut [Job<Pulled>]) {
        for p in pulls.iter_mut() {
            if let Some(staging) = &p.own.staging {
                let dropped = run.ctx.block_on(scratch::drop_database(
                    p.own.lock.client(),
                    staging.dbname(),
                ));
                p.own.not_dropped = dropped.err().map(|e| format!("{e:#}"));
            }
        }
    }

    fn state_after_failure(&self, p: &Job<Pulled>) -> String {
        let state = if p.selection.partial && !p.own.loaded_in_place {
            "unchanged (the load's transaction was rolled back)"
        } else if p.selection.partial && p.verified.is_none() {
            "the selected tables WERE replaced (the load committed), but were not verified (see \
             above)"
        } else if p.selection.partial {
            "the selected tables were replaced by the verified copy"
        } else if p.own.staging.is_some() && p.own.not_dropped.is_some() {
            "unchanged (the new copy was not swapped in)"
        } else if p.own.staging.is_some() {
            "unchanged (the new copy was discarded before the swap)"
        } else if p.verified.is_some() {
            "replaced by the verified copy"
        } else {
            "unchanged"
        };
        let backup = p
            .backup
            .as_ref()
            .map(|b| format!("; backup: {}", b.path.display()))
            .unwrap_or_default();
        format!(
            "  local {} database {}: {state}{backup}",
            p.db.label(),
            p.target.dbname()
        )
    }

    fn leftovers(&self, pulls: &[Job<Pulled>]) -> Vec<String> {
        pulls
            .iter()
            .filter_map(|p| {
                Some((
                    p.own.staging.as_ref()?.dbname(),
                    p.own.not_dropped.as_ref()?,
                ))
            })
            .map(|(name, why)| {
                format!(
                    "  the staging database {name} could not be dropped ({why}): the next db-pull \
                     drops it, or drop it by hand: DROP DATABASE \"{name}\" WITH (FORCE)"
                )
            })
            .collect()
    }

    fn reported(&self, p: &Job<Pulled>) -> PullReported {
        PullReported {
            masked: p.own.masking.is_some(),
            split: p.own.split.clone(),
        }
    }

    fn done_line(&self, p: &Job<Pulled>) -> String {
        format!(
            "pulled {} rows in {} tables into {}: {}",
            p.rows(),
            p.selection.tables.len(),
            p.target.dbname(),
            p.verified.as_deref().unwrap_or("verified")
        )
    }
}
