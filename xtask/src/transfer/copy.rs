//! One database's data copy, once its target schema is ready: pg_dump's data stream relayed into
//! psql in one transaction that asserts every table's row count before COMMIT (or, into a staging
//! database, a parallel load: see `parallel`), with `--schema source`'s post-data section after
//! the data (see `sections`).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::{Context, Result};

use super::{
    around_data::{self, AroundData},
    driver::Run,
    finish,
    load::{LoadMode, LoadShaper, TargetSchema},
    masking::Masking,
    post_data,
    progress::ProgressDisplay,
    selection::{data_dump_args, Selection},
    source::SourceRead,
    LoadLogs,
};
use crate::config::timeouts::LOCK_TIMEOUT;
use crate::{
    config::{Database, DbUrl, Side},
    pg::{
        client,
        ident::QualifiedName,
        sessions,
        stream::{self, StartedDump, StreamProgress},
        PgTools, Tool,
    },
    verify::recreate::Candidate,
};

/// The size on the source from which a staging table is truncated in the load's transaction so
/// that its rows are copied frozen.
pub const FREEZE_MIN_BYTES: i64 = 1 << 20;

/// Starts the dump of the selection's data (in the source's snapshot) for a later
/// [`CopyStep::load`], so that its start-up overlaps the target's preparation: pg_dump's data
/// dump, or with `masking` psql's masked copy of the same tables in the same shape.
pub fn start_data_dump(
    tools: &PgTools,
    source: &SourceRead,
    source_side: Side,
    selection: &Selection,
    logs: &LoadLogs,
    masking: Option<(&Masking, Database)>,
) -> Result<StartedDump> {
    let dump = match masking {
        Some((masking, db)) => {
            masking.data_command(tools, source, source_side, db, &selection.tables)
        }
        None => {
            let args = data_dump_args(source, selection);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tools.command(Tool::PgDump, source_side, &source.endpoint.url, &args)
        }
    };
    StartedDump::start(&dump, &logs.dump)
}

/// One database's copy, once its target schema is ready: the load, then its verification. Both
/// commands run the same two steps; only the direction (sides) and the mode differ.
pub struct CopyStep<'a> {
    pub db: Database,
    pub source: &'a SourceRead,
    pub source_side: Side,
    pub target: &'a DbUrl,
    pub target_side: Side,
    pub selection: &'a Selection,
    /// The Alembic heads the source was checked against (`--schema migrations`), else empty.
    pub heads: &'a [String],
    pub logs: &'a LoadLogs,
    pub mode: LoadMode,
    /// The target is a staging database this command built and nobody else uses: its secondary
    /// indexes are built after the data, and with `--jobs` its tables load on several
    /// connections (a failure discards the whole database, so no single transaction is needed).
    pub staging: bool,
    /// `--schema source`: the post-data section (indexes, constraints, triggers, policies) to
    /// create after the data, as pg_restore does (see `sections`).
    pub post_data: Option<&'a str>,
    /// db-pull's data policy: the data comes masked from the source (`masking`), `None` raw.
    pub masking: Option<&'a Masking>,
    /// Definitions that print differently on the two sides but are the same once re-created
    /// (`verify::recreate`): warnings in the verification, not failures.
    pub alike: &'a [Candidate],
}

impl CopyStep<'_> {
    /// Streams the data in one transaction that asserts every table's row count before COMMIT.
    /// `Ok` means committed (the caller records it, then checks for Ctrl-C). `early`: the data's pg_dump, if the caller started it already (one job only; a parallel
    /// load starts its own dumps and stops this one).
    /// Returns the tables a parallel load split into ctid ranges, and into how many (`ranges`).
    pub fn load(
        &self,
        run: &Run,
        early: Option<StartedDump>,
    ) -> Result<BTreeMap<QualifiedName, usize>> {
        let started = std::time::Instant::now();
        let loaded = self.load_untimed(run, early);
        run.phases.load(started);
        loaded
    }

    /// [`CopyStep::load`]; the stream or the parallel load notes when its last row was sent.
    fn load_untimed(
        &self,
        run: &Run,
        early: Option<StartedDump>,
    ) -> Result<BTreeMap<QualifiedName, usize>> {
        let (ctx, tools, copy) = (run.ctx, run.tools, run.copy);
        let label = self.db.label();
        let jobs = usize::from(copy.jobs);
        let parallel = self.staging && jobs > 1 && self.mode == LoadMode::Replace;
        // One stream: its pg_dump starts now (if the caller has not started it), to start up
        // while the target's schema is read.
        let dump = match (parallel, early) {
            (true, _) => None,
            (false, Some(dump)) => Some(dump),
            (false, None) => Some(start_data_dump(
                tools,
                self.source,
                self.source_side,
                self.selection,
                self.logs,
                self.masking.map(|m| (m, self.db)),
            )?),
        };
        let mut shaper = ctx.block_on(prepare_load(self, ctx.timeout()))?;
        if self.staging {
            shaper.rebuild_indexes();
            // A parallel load's jobs truncate and freeze their own tables (see `parallel`).
            if !parallel {
                shaper.freeze(self.large_tables());
            }
        }
        shaper.expect_rows(
            self.selection
                .tables
                .iter()
                .map(|t| (t.clone(), self.source.rows(t)))
                .collect(),
        );
        // The target's NOT VALID checks, which the COPY would apply to the source's rows. A
        // parallel load (its jobs in transactions of their own) keeps them: a source row that
        // breaks one fails it.
        let not_valid_checks = if parallel {
            Vec::new()
        } else {
            ctx.block_on(around_data::not_valid_checks(
                &self.source.catalog,
                self.target,
                &self.selection.tables,
                ctx.timeout(),
            ))?
        };
        let (loaded, how, split) = if parallel {
            let (loaded, split) = self.load_parallel(run, &mut shaper, jobs)?;
            // A staging database: the post-data section needs no transaction shared with the
            // data, since a failure discards the whole database.
            // Its indexes and keys are built on the jobs' connections at once.
            if let Some(post_data) = self.post_data {
                post_data::run_parallel(
                    run,
                    self.target,
                    self.target_side,
                    post_data,
                    &self.source.sizes,
                    jobs,
                )?;
            }
            let mut how = format!("on {jobs} connections");
            if !split.is_empty() {
                let each: Vec<String> = split
                    .iter()
                    .map(|(t, n)| format!("{t} split into {n} ranges"))
                    .collect();
                how.push_str(&format!(" ({})", each.join(", ")));
            }
            (loaded, how, split)
        } else {
            let progress = StreamProgress::default();
            self.load_stream(
                run,
                dump.expect("one stream has its pg_dump"),
                &mut shaper,
                &not_valid_checks,
                &progress,
            )?;
            (
                progress.snapshot(),
                "in one transaction".to_string(),
                BTreeMap::new(),
            )
        };
        // A split table's ranges are each a COPY block of their own: the table counts once.
        let tables: BTreeSet<&QualifiedName> = loaded.iter().map(|t| &t.header.table).collect();
        ctx.say(format!(
            "{label}: {} tables, {} rows loaded by COPY {how} (log: {})",
            tables.len(),
            loaded.iter().map(|t| t.rows).sum::<u64>(),
            self.logs.load.display()
        ));
        Ok(split)
    }

    /// The selected tables whose COPY is worth a `FREEZE` (and so a TRUNCATE in the load's
    /// transaction, which creates new files even for an empty table): those of at least
    /// [`FREEZE_MIN_BYTES`] on the source.
    pub(super) fn large_tables(&self) -> BTreeSet<QualifiedName> {
        self.selection
            .tables
            .iter()
            .filter(|t| {
                self.source
                    .sizes
                    .get(*t)
                    .is_some_and(|s| *s >= FREEZE_MIN_BYTES)
            })
            .cloned()
            .collect()
    }

    /// Streams the selection's data from the source into the target in one transaction, from
    /// `dump` (see [`start_data_dump`]).
    fn load_stream(
        &self,
        run: &Run,
        dump: StartedDump,
        shaper: &mut LoadShaper,
        not_valid_checks: &[around_data::NotValidCheck],
        progress: &StreamProgress,
    ) -> Result<()> {
        let load = run
            .tools
            .command(Tool::Psql, self.target_side, self.target, &["--quiet"]);
        let _display = run.ctx.out.progress_wanted().then(|| {
            ProgressDisplay::start(
                self.db.label(),
                self.source,
                self.selection,
                vec![progress.clone()],
            )
        });
        let mut shaped = AroundData {
            inner: shaper,
            not_valid_checks,
            post_data: self.post_data,
        };
        let relayed =
            stream::relay_started(dump, &load, &mut shaped, &self.logs.load, progress, None);
        run.phases.data_sent(progress.data_sent_at());
        relayed.map_err(|e| self.name_lock_holders(run, shaped.inner, e))
    }

    /// A load that gave up waiting for a lock (SQLSTATE 55P03, which psql prints as "canceling
    /// statement due to lock timeout"): the error gains who holds locks on its tables, read on a
    /// connection of its own right after the failure, and what to do. Any other error is as it
    /// was.
    fn name_lock_holders(
        &self,
        run: &Run,
        shaper: &LoadShaper,
        err: anyhow::Error,
    ) -> anyhow::Error {
        let text = format!("{err:#}");
        if !(text.contains("lock timeout") || text.contains("55P03")) {
            return err;
        }
        let tables: Vec<String> = shaper.locked_tables().iter().map(|t| t.sql()).collect();
        let target = self.target.dbname();
        let holders = run.ctx.block_on(async {
            let conn = client::connect(self.target, run.ctx.timeout()).await?;
            sessions::lock_holders(&conn, &tables).await
        });
        let (who, end) = match holders {
            Ok(h) if !h.is_empty() => {
                let pids: Vec<String> = h.iter().map(|s| s.pid.to_string()).collect();
                (
                    format!("held by {}", sessions::describe_with_since(&h)),
                    format!(
                        "End {} (`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE \
                         pid IN ({})` on {target}), or ask its owner to commit or roll back",
                        if h.len() == 1 {
                            "that session"
                        } else {
                            "those sessions"
                        },
                        pids.join(", ")
                    ),
                )
            }
            Ok(_) => (
                "the session that held it has ended since".to_string(),
                "Find who holds locks on it (pg_locks, pg_stat_activity)".to_string(),
            ),
            Err(e) => (
                format!("who holds it could not be read: {e:#}"),
                "Find who holds locks on it (pg_locks, pg_stat_activity)".to_string(),
            ),
        };
        err.context(format!(
            "the load waited longer than {} for a lock on a table of {target}, {who}; the load \
             changed nothing (its transaction was rolled back). {end}, or wait for it to \
             finish, or raise XTASK_LOCK_TIMEOUT, and run again",
            LOCK_TIMEOUT.shown()
        ))
    }
}

/// Reads the target schema that a load needs, and builds the load's SQL. Into a `staging`
/// database (this command's own, just built), only the tables that hold rows (put there by a
/// migration) are truncated: a TRUNCATE of an empty one would only create new files. Should rows
/// appear in between, the row counts asserted before COMMIT fail the load.
pub async fn prepare_load(step: &CopyStep<'_>, timeout: Duration) -> Result<LoadShaper> {
    let (target_url, mode, selection, staging) =
        (step.target, step.mode, step.selection, step.staging);
    let conn = client::connect(target_url, timeout).await?;
    let schema = TargetSchema::read(&conn, target_url).await?;
    let mut shaper = LoadShaper::new(mode, selection.tables.clone(), schema)?;
    shaper.bound_lock_waits(LOCK_TIMEOUT.get()?);
    let version = client::server_version(&conn)
        .await
        .with_context(|| format!("reading the server version of {target_url}"))?;
    shaper.target_version(version);
    if staging && mode == LoadMode::Replace && !selection.tables.is_empty() {
        let tables: Vec<&QualifiedName> = selection.tables.iter().collect();
        let probes: Vec<String> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i} WHERE EXISTS (SELECT 1 FROM {})", t.sql()))
            .collect();
        let rows = conn
            .simple_query(&probes.join(" UNION ALL "))
            .await
            .with_context(|| format!("finding the tables that hold rows in {target_url}"))?;
        let holding: BTreeSet<QualifiedName> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
                _ => None,
            })
            .filter_map(|i| i.parse::<usize>().ok())
            .filter_map(|i| tables.get(i).map(|t| (*t).clone()))
            .collect();
        shaper.truncate_just_these(holding);
    }
    // What the end of the load sets and refreshes, read on the same connection.
    shaper.finish_with(finish::read(step.source, &conn, target_url, selection, mode).await?);
    Ok(shaper)
}
