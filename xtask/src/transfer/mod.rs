//! What `db-pull` and `db-push` share: reading the source in one exported snapshot (the counts
//! taken up front and the rows pg_dump streams are the same rows), choosing tables, checking that
//! the target's schema can hold the source's data, streaming the data in one transaction, and
//! verifying the result with the db-verify engine against that same snapshot.

pub mod backup;
pub mod load;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use tokio_postgres::Client;
use xshell::Shell;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Database, DbUrl, Side},
    exit::UsageError,
    pg::{
        client,
        ident::QualifiedName,
        stream::{self, LoadFailure, StartedDump, StreamProgress},
        version::ToolVersion,
        PgTools, Tool,
    },
    runtime::Runtime,
    verify::{
        self,
        catalog::{self, Catalog, Measures, Snapshot},
        AlembicHeads, DatabaseComparison, Endpoint, TableStatus,
    },
};
use load::{LoadMode, LoadShaper, TargetSchema};

/// Where the target's schema comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// `alembic upgrade head` from this repo's migrations (the runbooks' way)
    Migrations,
    /// The source's own schema, its Alembic revision copied as is
    Source,
}

/// The options `db-pull` and `db-push` share.
#[derive(Args, Debug, Clone)]
pub struct CopyArgs {
    /// Where the target's schema comes from
    #[arg(long, value_enum, default_value_t = SchemaMode::Migrations)]
    pub schema: SchemaMode,
    /// With --schema migrations, go on although the source's Alembic revision is not the head of
    /// this repo's migrations
    #[arg(long)]
    pub allow_revision_mismatch: bool,
    /// Do not back up what is overwritten first
    #[arg(long)]
    pub no_backup: bool,
    /// Print the plan (tables, rows, sizes, what is replaced) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Copy only these tables' data, in one transaction (`table` or `schema.table`, comma-separated
    /// or repeated); every other table is left as it is
    #[arg(long, value_delimiter = ',', value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Copy every table's data except these (comma-separated or repeated); they are left as they are
    #[arg(long = "exclude-table", value_delimiter = ',', value_name = "TABLE")]
    pub exclude_tables: Vec<String>,
    /// Also compare a checksum of every copied table's contents after the copy
    #[arg(long)]
    pub checksums: bool,
    /// The global `--timeout`, copied here by the command.
    #[arg(skip)]
    pub timeout: Option<u64>,
    /// Connections that load and verify at once. A pull's copy is built in a staging database, so
    /// its tables load in parallel; a push loads in one transaction on one connection (the remote
    /// is never half-loaded) and verifies in parallel
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Draw progress (a terminal and no --json); set by the command, not a flag.
    #[arg(skip)]
    pub show_progress: bool,
}

impl CopyArgs {
    pub fn connect_timeout(&self) -> Duration {
        self.timeout
            .map(Duration::from_secs)
            .unwrap_or_else(client::default_connect_timeout)
    }

    pub fn partial(&self) -> bool {
        !self.tables.is_empty() || !self.exclude_tables.is_empty()
    }
}

/// The source, read in the snapshot that pg_dump will use.
pub struct SourceRead {
    pub endpoint: Endpoint,
    /// Holds the exported snapshot's transaction open until the copy is verified.
    client: Client,
    pub snapshot: String,
    pub catalog: Catalog,
    pub measures: Measures,
    pub version: ToolVersion,
    /// Each table's size on disk (table, indexes, TOAST), for the plan.
    pub sizes: BTreeMap<QualifiedName, i64>,
    /// Every sequence, owned or not: a parallel load names them to pg_dump (one job sets them).
    pub sequences: Vec<QualifiedName>,
}

const ALL_SEQUENCES_SQL: &str = "\
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2";

const SIZES_SQL: &str = "\
SELECT n.nspname, c.relname, pg_catalog.pg_total_relation_size(c.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')";

impl SourceRead {
    /// Connects, exports a snapshot and reads the catalog and every table's exact row count in it.
    pub async fn open(endpoint: Endpoint, timeout: Duration) -> Result<SourceRead> {
        let url = &endpoint.url;
        let client = client::connect(url, timeout).await?;
        let version = client::server_version(&client).await?;
        let snapshot = catalog::begin_exported_snapshot(&client, url).await?;
        let catalog = catalog::read_catalog(&client, url).await?;
        let measures = catalog::measure(&client, url, &catalog, &count_plans(&catalog)).await?;
        let sizes = client
            .query(SIZES_SQL, &[])
            .await
            .with_context(|| format!("reading table sizes on {url}"))?
            .iter()
            .map(|r| {
                (
                    QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                    r.get::<_, i64>(2),
                )
            })
            .collect();
        let sequences = client
            .query(ALL_SEQUENCES_SQL, &[])
            .await
            .with_context(|| format!("reading the sequences of {url}"))?
            .iter()
            .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        Ok(SourceRead {
            endpoint,
            client,
            snapshot,
            catalog,
            measures,
            version,
            sizes,
            sequences,
        })
    }

    pub fn rows(&self, table: &QualifiedName) -> i64 {
        self.measures.tables.get(table).map(|m| m.rows).unwrap_or(0)
    }

    pub fn alembic_revisions(&self) -> Option<&[String]> {
        self.catalog
            .alembic
            .as_ref()
            .map(|a| a.revisions.as_slice())
    }

    pub fn alembic_table(&self) -> Option<&QualifiedName> {
        self.catalog.alembic.as_ref().map(|a| &a.table)
    }
}

/// Reads a database's catalog and exact row counts in one read-only snapshot (for plans and
/// checks of a target).
pub async fn read_snapshot(url: &DbUrl, timeout: Duration) -> Result<Snapshot> {
    let mut conn = client::connect(url, timeout).await?;
    let tx = catalog::begin(&mut conn, url).await?;
    let catalog = catalog::read_catalog(&tx, url).await?;
    let measures = catalog::measure(&tx, url, &catalog, &count_plans(&catalog)).await?;
    let _ = tx.rollback().await;
    Ok(Snapshot { catalog, measures })
}

/// Exact row counts of every table, no checksums.
fn count_plans(catalog: &Catalog) -> Vec<catalog::TablePlan> {
    catalog
        .tables
        .keys()
        .map(|t| catalog::TablePlan {
            table: t.clone(),
            checksum_columns: None,
        })
        .collect()
}

/// The tables whose data is copied.
#[derive(Clone, Debug)]
pub struct Selection {
    pub tables: BTreeSet<QualifiedName>,
    /// Only some tables (`--tables` / `--exclude-table`): the others are left as they are.
    pub partial: bool,
}

/// Resolves `--tables` / `--exclude-table` against the source's tables. A name that matches no
/// table, or tables in several schemas, is a usage error. The Alembic table is copied only in
/// `--schema source` mode, or when named.
pub fn select_tables(
    source: &Catalog,
    include: &[String],
    exclude: &[String],
    schema: SchemaMode,
) -> Result<Selection> {
    let resolve = |names: &[String]| -> Result<BTreeSet<QualifiedName>> {
        let mut found = BTreeSet::new();
        for raw in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let matches: Vec<&QualifiedName> = source
                .tables
                .keys()
                .filter(|t| match raw.split_once('.') {
                    Some((schema, name)) if t.schema == schema && t.name == name => true,
                    _ => t.name == raw,
                })
                .collect();
            match matches.as_slice() {
                [] => {
                    let known: Vec<String> = source
                        .tables
                        .keys()
                        .take(12)
                        .map(|t| t.to_string())
                        .collect();
                    return Err(UsageError::new(format!(
                        "no table `{raw}` in the source (it has {}{}); nothing was changed",
                        known.join(", "),
                        if source.tables.len() > 12 {
                            ", ..."
                        } else {
                            ""
                        }
                    ))
                    .into());
                }
                [one] => {
                    found.insert((*one).clone());
                }
                many => {
                    let names: Vec<String> = many.iter().map(|t| t.to_string()).collect();
                    return Err(UsageError::new(format!(
                        "table `{raw}` is ambiguous: {}; name it as schema.table",
                        names.join(", ")
                    ))
                    .into());
                }
            }
        }
        Ok(found)
    };
    let included = resolve(include)?;
    let excluded = resolve(exclude)?;
    let alembic = source.alembic.as_ref().map(|a| a.table.clone());
    let partial = !include.is_empty() || !exclude.is_empty();
    let tables: BTreeSet<QualifiedName> = if include.is_empty() {
        source
            .tables
            .keys()
            .filter(|t| !excluded.contains(*t))
            .filter(|t| schema == SchemaMode::Source || Some(*t) != alembic.as_ref())
            .cloned()
            .collect()
    } else {
        included.difference(&excluded).cloned().collect()
    };
    if tables.is_empty() && partial {
        return Err(UsageError::new("--tables/--exclude-table leave no table to copy").into());
    }
    Ok(Selection { tables, partial })
}

/// A pg_dump pattern that matches exactly this table (quoted parts: no case folding, no
/// wildcards).
pub fn dump_pattern(table: &QualifiedName) -> String {
    let part = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{}.{}", part(&table.schema), part(&table.name))
}

/// pg_dump's arguments for the data of the selection, in the source's snapshot.
pub fn data_dump_args(source: &SourceRead, selection: &Selection) -> Vec<String> {
    let everything = !selection.partial && selection.tables.len() == source.catalog.tables.len();
    let only: Vec<&QualifiedName> = selection.tables.iter().collect();
    dump_args(source, (!everything).then_some(&only[..]))
}

/// pg_dump's arguments for the data of `only` these relations (tables or sequences), or of
/// everything, in the source's snapshot.
fn dump_args(source: &SourceRead, only: Option<&[&QualifiedName]>) -> Vec<String> {
    let mut args = vec![
        "--data-only".to_string(),
        "--no-owner".to_string(),
        "--no-privileges".to_string(),
        format!("--snapshot={}", source.snapshot),
    ];
    args.extend(
        only.into_iter()
            .flatten()
            .map(|t| format!("--table={}", dump_pattern(t))),
    );
    args
}

/// Tables spread over `jobs` parallel loads, biggest first onto the least loaded job, so that the
/// jobs end close together. Jobs left without a table are dropped.
pub fn split_jobs(
    tables: &BTreeSet<QualifiedName>,
    sizes: &BTreeMap<QualifiedName, i64>,
    jobs: usize,
) -> Vec<Vec<QualifiedName>> {
    let mut by_size: Vec<&QualifiedName> = tables.iter().collect();
    by_size.sort_by_key(|t| std::cmp::Reverse(sizes.get(*t).copied().unwrap_or(0)));
    let mut out: Vec<(i64, Vec<QualifiedName>)> = vec![(0, Vec::new()); jobs.max(1)];
    for table in by_size {
        let lightest = out
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one job");
        // An empty table still costs a round of COPY: count it as one byte.
        lightest.0 += sizes.get(table).copied().unwrap_or(0).max(1);
        lightest.1.push(table.clone());
    }
    out.into_iter()
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
        .collect()
}

/// The source's tables and columns that the target lacks: named, never skipped silently.
pub fn check_target_can_hold(
    source: &Catalog,
    target: &Catalog,
    selection: &Selection,
    target_label: &str,
) -> Result<()> {
    let mut missing_tables = Vec::new();
    let mut missing_columns = Vec::new();
    for name in &selection.tables {
        let Some(theirs) = target.tables.get(name) else {
            missing_tables.push(name.to_string());
            continue;
        };
        if let Some(ours) = source.tables.get(name) {
            for (column, c) in &ours.columns {
                if c.generated.is_none() && !theirs.columns.contains_key(column) {
                    missing_columns
                        .push(format!("{name}.{}", crate::pg::ident::shown_ident(column)));
                }
            }
        }
    }
    if missing_tables.is_empty() && missing_columns.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing_tables.is_empty() {
        parts.push(format!(
            "table(s) missing on {target_label}: {}",
            missing_tables.join(", ")
        ));
    }
    if !missing_columns.is_empty() {
        parts.push(format!(
            "column(s) missing on {target_label}: {}",
            missing_columns.join(", ")
        ));
    }
    bail!(
        "the source has data that the {target_label} schema cannot hold: {}. The source's schema \
         is not the one this repo's migrations build: check its Alembic revision, use --schema \
         source, or leave the tables out with --exclude-table",
        parts.join("; ")
    )
}

/// With `--schema migrations`, the source must be at the head of this repo's migrations.
pub fn check_source_revision(
    sh: &Shell,
    db: Database,
    source: &SourceRead,
    allow_mismatch: bool,
) -> Result<Vec<String>> {
    let config = AlembicConfig::of(db);
    let heads = crate::migrations::heads(config, sh, &backend_dir())?;
    let Some(revisions) = source.alembic_revisions() else {
        bail!(
            "the source {} has no alembic_version table, so its schema version is unknown; \
             --schema migrations needs it (use --schema source to copy its schema as it is)",
            source.endpoint.url
        );
    };
    let mut have = revisions.to_vec();
    have.sort();
    let mut want = heads.clone();
    want.sort();
    if have != want && !allow_mismatch {
        bail!(
            "the source {} is at Alembic revision {} but this repo's {} head is {}: its data may \
             not fit the schema the migrations build. Update this checkout (git pull) or migrate \
             the source; or go on anyway with --allow-revision-mismatch, or copy its schema with \
             --schema source",
            source.endpoint.url,
            join_or_none(revisions),
            config.ini(),
            join_or_none(&heads)
        );
    }
    Ok(heads)
}

fn join_or_none(revs: &[String]) -> String {
    if revs.is_empty() {
        "none".to_string()
    } else {
        revs.join(", ")
    }
}

/// The source's side of a copy's preflight, before anything on the target is touched: the source
/// read in its snapshot, the tools checked against it, its Alembic revision against this repo's
/// heads (with `--schema migrations`), and the tables chosen. Errors say `untouched`.
pub fn read_source(
    sh: &Shell,
    rt: &Runtime,
    tools: &PgTools,
    db: Database,
    source: Endpoint,
    copy: &CopyArgs,
    untouched: &str,
) -> Result<(SourceRead, Vec<String>, Selection)> {
    let label = db.label();
    let side = source.side.clone();
    // `pg_dump --version` through `docker exec` takes about 0.1 s: it runs while the source is
    // read. The thread has its own Shell (an xshell Shell is not Sync); the command needs no cwd.
    let (source, dump) = std::thread::scope(|scope| {
        let dump = scope.spawn(|| tools.tool_version(&Shell::new()?, Tool::PgDump));
        let source = rt.block_on(SourceRead::open(source, copy.connect_timeout()));
        let dump = dump.join().unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the thread reading pg_dump's version panicked"
            ))
        });
        (source, dump)
    });
    let source =
        source.with_context(|| format!("reading the {side} {label} database; {untouched}"))?;
    dump.and_then(|dump| tools.check_can_dump(&dump, &source.version, &source.endpoint.url))
        .with_context(|| format!("checking the tools for {label}; {untouched}"))?;
    let heads = match copy.schema {
        SchemaMode::Migrations => {
            check_source_revision(sh, db, &source, copy.allow_revision_mismatch)
                .with_context(|| format!("{label}: {untouched}"))?
        }
        SchemaMode::Source => Vec::new(),
    };
    let selection = select_tables(
        &source.catalog,
        &copy.tables,
        &copy.exclude_tables,
        copy.schema,
    )?;
    Ok((source, heads, selection))
}

/// Starts the pg_dump of the selection's data (in the source's snapshot) for a later
/// [`CopyStep::load`], so that its start-up overlaps the target's preparation.
pub fn start_data_dump(
    tools: &PgTools,
    source: &SourceRead,
    source_side: Side,
    selection: &Selection,
    logs: &LoadLogs,
) -> Result<StartedDump> {
    let args = data_dump_args(source, selection);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dump = tools.command(Tool::PgDump, source_side, &source.endpoint.url, &args);
    StartedDump::start(&dump, &logs.dump)
}

/// Streams the selection's data from the source into `target_url` in one transaction, from
/// `dump` (see [`start_data_dump`]).
#[allow(clippy::too_many_arguments)]
pub fn load_data(
    dump: StartedDump,
    tools: &PgTools,
    source: &SourceRead,
    target_url: &DbUrl,
    target_side: Side,
    selection: &Selection,
    shaper: &mut LoadShaper,
    logs: &LoadLogs,
    progress: &StreamProgress,
    label: &'static str,
    show_progress: bool,
) -> Result<()> {
    let load = tools.command(Tool::Psql, target_side, target_url, &["--quiet"]);
    let _display = show_progress
        .then(|| ProgressDisplay::start(label, source, selection, vec![progress.clone()]));
    stream::relay_started(dump, &load, shaper, &logs.load, progress, None)
}

/// Rule 7: on a terminal, one status line per database, redrawn twice a second: the table being
/// loaded, its rows against the source's count, bytes sent, and an ETA from the rows so far.
/// Nothing is drawn in pipes, in CI or under `--json` (the caller does not start it there).
pub struct ProgressDisplay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Draws `label`'s load: one stream, or the streams of a parallel load (each job's table).
    pub fn start(
        label: &'static str,
        source: &SourceRead,
        selection: &Selection,
        streams: Vec<StreamProgress>,
    ) -> ProgressDisplay {
        use std::sync::atomic::Ordering;
        let expected: BTreeMap<QualifiedName, i64> = selection
            .tables
            .iter()
            .map(|t| (t.clone(), source.rows(t)))
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let total: i64 = expected.values().sum();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let started = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let mut done = 0u64;
                    let mut bytes = 0u64;
                    let mut current = Vec::new();
                    for stream in &streams {
                        let tables = stream.snapshot();
                        done += tables.iter().map(|t| t.rows).sum::<u64>();
                        bytes += stream.bytes.load(Ordering::Relaxed);
                        if let Some(t) = tables.iter().rev().find(|t| !t.done) {
                            let want = expected.get(&t.header.table).copied().unwrap_or(0);
                            current.push(format!("{} {}/{want} rows", t.header.table, t.rows));
                        }
                    }
                    let table = if current.is_empty() {
                        "between tables".to_string()
                    } else {
                        current.join(", ")
                    };
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = if done > 0 && total > done as i64 {
                        format!(
                            ", ETA {:.0}s",
                            elapsed * (total as f64 - done as f64) / done as f64
                        )
                    } else {
                        String::new()
                    };
                    eprint!(
                        "\r\x1b[2K{label}: loading {table} | {done}/{total} rows, {} sent{eta}",
                        human_bytes(bytes as i64)
                    );
                }
                eprint!("\r\x1b[2K");
            }
        });
        ProgressDisplay {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether progress is drawn: a terminal on stderr, and no `--json`.
pub fn progress_wanted(json: bool) -> bool {
    use std::io::IsTerminal;
    !json && std::io::stderr().is_terminal()
}

/// `--schema source`: the source's schema (`pg_dump --schema-only` in its snapshot) into the
/// target, in one transaction; each side's stderr goes next to the data logs.
pub fn copy_schema(
    tools: &PgTools,
    source: &SourceRead,
    source_side: Side,
    target: &DbUrl,
    target_side: Side,
    logs: &LoadLogs,
) -> Result<()> {
    let snapshot = format!("--snapshot={}", source.snapshot);
    let dump = tools.command(
        Tool::PgDump,
        source_side,
        &source.endpoint.url,
        &["--schema-only", "--no-owner", "--no-privileges", &snapshot],
    );
    let load = tools.command(
        Tool::Psql,
        target_side,
        target,
        &["--quiet", "--single-transaction"],
    );
    let schema_log = |path: &Path| path.with_extension("schema.log");
    PgTools::pipe(
        &dump,
        &load,
        &schema_log(&logs.dump),
        &schema_log(&logs.load),
    )
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
}

impl CopyStep<'_> {
    /// Streams the data in one transaction that asserts every table's row count before COMMIT.
    /// `early`: the data's pg_dump, if the caller started it already (one job only; a parallel
    /// load starts its own dumps and stops this one).
    pub fn load(
        &self,
        rt: &Runtime,
        tools: &PgTools,
        copy: &CopyArgs,
        early: Option<StartedDump>,
        say: &dyn Fn(String),
    ) -> Result<()> {
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
            )?),
        };
        let mut shaper = rt.block_on(prepare_load(
            self.target,
            copy.connect_timeout(),
            self.mode,
            self.selection,
            self.staging,
        ))?;
        if self.staging {
            shaper.rebuild_indexes();
        }
        shaper.expect_rows(
            self.selection
                .tables
                .iter()
                .map(|t| (t.clone(), self.source.rows(t)))
                .collect(),
        );
        let (loaded, how) = if parallel {
            let loaded = self.load_parallel(rt, tools, copy, &mut shaper, jobs)?;
            (loaded, format!("on {jobs} connections"))
        } else {
            let progress = StreamProgress::default();
            load_data(
                dump.expect("one stream has its pg_dump"),
                tools,
                self.source,
                self.target,
                self.target_side,
                self.selection,
                &mut shaper,
                self.logs,
                &progress,
                label,
                copy.show_progress,
            )?;
            (progress.snapshot(), "in one transaction".to_string())
        };
        crate::interrupt::check("the data load")?;
        say(format!(
            "{label}: {} tables, {} rows loaded by COPY {how} (log: {})",
            loaded.len(),
            loaded.iter().map(|t| t.rows).sum::<u64>(),
            self.logs.load.display()
        ));
        Ok(())
    }

    /// A staging database loaded by `jobs` relays at once, each with its own tables in the same
    /// snapshot: the set-up (foreign keys and secondary indexes off, triggers disabled) commits
    /// first, the relays commit each their own tables, the indexes are built on `jobs`
    /// connections, and the last transaction re-adds the foreign keys (validating every row),
    /// asserts every row count and restores the triggers. Any failure fails the load; the caller
    /// discards the staging database.
    fn load_parallel(
        &self,
        rt: &Runtime,
        tools: &PgTools,
        copy: &CopyArgs,
        shaper: &mut LoadShaper,
        jobs: usize,
    ) -> Result<Vec<stream::TableProgress>> {
        use stream::Shaper as _;
        let timeout = copy.connect_timeout();
        let target = self.target;
        let setup = shaper.prologue();
        rt.block_on(async {
            let conn = client::connect(target, timeout).await?;
            conn.batch_execute(&format!("BEGIN;\n{setup}COMMIT;"))
                .await
                .with_context(|| format!("preparing {target} for a parallel load"))
        })?;

        let parts = split_jobs(&self.selection.tables, &self.source.sizes, jobs);
        let group = stream::JobGroup::default();
        let progress: Vec<StreamProgress> =
            parts.iter().map(|_| StreamProgress::default()).collect();
        let _display = copy.show_progress.then(|| {
            ProgressDisplay::start(
                self.db.label(),
                self.source,
                self.selection,
                progress.clone(),
            )
        });
        let results: Vec<(Result<()>, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .enumerate()
                .map(|(i, tables)| {
                    let (group, progress) = (&group, &progress[i]);
                    s.spawn(move || {
                        // Job 0 also sets every sequence; owned ones may come twice (same value).
                        let mut only: Vec<&QualifiedName> = tables.iter().collect();
                        if i == 0 {
                            only.extend(&self.source.sequences);
                        }
                        let args = dump_args(self.source, Some(&only));
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let dump = tools.command(
                            Tool::PgDump,
                            self.source_side,
                            &self.source.endpoint.url,
                            &args,
                        );
                        // The job's number makes each psql's command line its own: a tool in a
                        // container is found (to be stopped) by its command line.
                        let job = format!("--variable=XTASK_JOB={i}");
                        let load =
                            tools.command(Tool::Psql, self.target_side, target, &["--quiet", &job]);
                        let logs = self.logs.job(i);
                        let result = stream::relay(
                            &dump,
                            &load,
                            &mut stream::DataOnly,
                            &logs.dump,
                            &logs.load,
                            progress,
                            Some(group),
                        );
                        // The job whose failure stops the others is the cause to report.
                        let cause = result.is_err() && group.cancel();
                        (result, cause)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (Err(anyhow!("a load job panicked")), true))
                })
                .collect()
        });
        // The job that failed first, not one stopped because another had failed.
        let mut errors: Vec<(anyhow::Error, bool)> = results
            .into_iter()
            .filter_map(|(r, cause)| r.err().map(|e| (e, cause)))
            .collect();
        if !errors.is_empty() {
            let first = errors.iter().position(|(_, cause)| *cause).unwrap_or(0);
            return Err(errors.swap_remove(first).0);
        }
        crate::interrupt::check("the data load")?;

        // Secondary indexes: the biggest tables' first, spread over the connections.
        let mut builds = shaper.index_builds();
        builds.sort_by_key(|(t, _)| std::cmp::Reverse(self.source.sizes.get(t).copied()));
        let mut lanes: Vec<Vec<String>> = vec![Vec::new(); jobs.min(builds.len()).max(1)];
        for (i, (_, sql)) in builds.into_iter().enumerate() {
            let n = lanes.len();
            lanes[i % n].push(sql);
        }
        let constraints = shaper.constraints();
        rt.block_on(async {
            futures_util::future::try_join_all(lanes.iter().filter(|l| !l.is_empty()).map(
                |lane| async move {
                    let conn = client::connect(target, timeout).await?;
                    conn.batch_execute(&lane.join("\n"))
                        .await
                        .with_context(|| format!("building indexes in {target}"))
                },
            ))
            .await?;
            let conn = client::connect(target, timeout).await?;
            conn.batch_execute(&format!("BEGIN;\n{constraints}COMMIT;"))
                .await
                .with_context(|| {
                    format!("checking {target} after the parallel load (foreign keys, row counts)")
                })
        })?;
        Ok(progress.iter().flat_map(StreamProgress::snapshot).collect())
    }

    /// Verifies the target against the source's snapshot; returns the summary line and the
    /// warnings (already said), or fails listing every problem.
    pub fn verify(
        &self,
        rt: &Runtime,
        copy: &CopyArgs,
        say: &dyn Fn(String),
    ) -> Result<(String, Vec<String>)> {
        let label = self.db.label();
        let heads = (copy.schema == SchemaMode::Migrations).then(|| AlembicHeads {
            config: AlembicConfig::of(self.db).ini().to_string(),
            heads: self.heads.to_vec(),
            error: None,
        });
        let expect = Expectations {
            selection: self.selection,
            mode: self.mode,
            alembic: !self.selection.partial && !copy.allow_revision_mismatch,
            checksums: copy.checksums,
            heads,
        };
        let target = Endpoint::new(self.target_side.label(), self.target.clone());
        let check = rt.block_on(verify_copy(
            self.db,
            self.source,
            &target,
            &expect,
            copy.connect_timeout(),
        ))?;
        for w in &check.warnings {
            say(format!("{label}: warning: {w}"));
        }
        if !check.problems.is_empty() {
            bail!(
                "{label}: the {} copy does not match the source's snapshot:\n  {}",
                self.target_side.label(),
                check.problems.join("\n  ")
            );
        }
        let summary = check.comparison.summary();
        say(format!("verified against the source's snapshot: {summary}"));
        Ok((summary, check.warnings))
    }
}

/// The two logs of one database's load.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadLogs {
    pub dump: PathBuf,
    pub load: PathBuf,
}

impl LoadLogs {
    pub fn new(dir: &Path, command: &str, db: Database, stamp: &str) -> LoadLogs {
        LoadLogs {
            dump: dir.join(format!("{command}-{}-{stamp}-pg_dump.log", db.label())),
            load: dir.join(format!("{command}-{}-{stamp}-psql.log", db.label())),
        }
    }

    /// The logs of job `i` of a parallel load (job 0 keeps the plain names).
    pub fn job(&self, i: usize) -> LoadLogs {
        let numbered = |path: &Path| match i {
            0 => path.to_path_buf(),
            _ => path.with_extension(format!("job{i}.log")),
        };
        LoadLogs {
            dump: numbered(&self.dump),
            load: numbered(&self.load),
        }
    }
}

/// Reads the target schema that a load needs, and builds the load's SQL. Into a `staging`
/// database (this command's own, just built), only the tables that hold rows (put there by a
/// migration) are truncated: a TRUNCATE of the empty ones would cost 30-60 ms of new files for
/// nothing. Should rows appear in between, the row counts asserted before COMMIT fail the load.
pub async fn prepare_load(
    target_url: &DbUrl,
    timeout: Duration,
    mode: LoadMode,
    selection: &Selection,
    staging: bool,
) -> Result<LoadShaper> {
    let conn = client::connect(target_url, timeout).await?;
    let schema = TargetSchema::read(&conn, target_url).await?;
    let mut shaper = LoadShaper::new(mode, selection.tables.clone(), schema)?;
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
        shaper.truncate_only(holding);
    }
    Ok(shaper)
}

/// What the verification after a copy found.
pub struct CopyCheck {
    pub comparison: DatabaseComparison,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// What must hold after a copy.
pub struct Expectations<'a> {
    pub selection: &'a Selection,
    pub mode: LoadMode,
    /// Compare the Alembic revisions of both sides.
    pub alembic: bool,
    pub checksums: bool,
    pub heads: Option<AlembicHeads>,
}

/// Verifies the target against the source's snapshot: exact row counts (and checksums) of every
/// copied table, the Alembic revision, no orphans and no sequence behind its column on the target.
/// Schema differences are warnings: with `--schema migrations` the schema is this repo's.
pub async fn verify_copy(
    db: Database,
    source: &SourceRead,
    target: &Endpoint,
    expect: &Expectations<'_>,
    timeout: Duration,
) -> Result<CopyCheck> {
    let url = &target.url;
    let mut conn = client::connect(url, timeout).await?;
    let tx = catalog::begin(&mut conn, url).await?;
    let target_catalog = catalog::read_catalog(&tx, url).await?;
    let (source_plans, target_plans) =
        verify::plans(&source.catalog, &target_catalog, expect.checksums);
    // Both sides at once: the target's counts (and checksums) on its connection, the source's
    // checksums in its snapshot on the connection that holds it.
    let source_side = async {
        if expect.checksums {
            catalog::measure(
                &source.client,
                &source.endpoint.url,
                &source.catalog,
                &source_plans,
            )
            .await
        } else {
            Ok(source.measures.clone())
        }
    };
    let (target_measures, source_measures) = tokio::join!(
        catalog::measure(&tx, url, &target_catalog, &target_plans),
        source_side
    );
    let (target_measures, source_measures) = (target_measures?, source_measures?);
    let _ = tx.rollback().await;
    let db_source = Snapshot {
        catalog: source.catalog.clone(),
        measures: source_measures,
    };
    let db_target = Snapshot {
        catalog: target_catalog,
        measures: target_measures,
    };
    let comparison = verify::build(
        db,
        &source.endpoint,
        target,
        &db_source,
        &db_target,
        expect.heads.as_ref(),
        expect.checksums,
    );
    Ok(judge(comparison, expect, &target.side))
}

fn judge(comparison: DatabaseComparison, expect: &Expectations<'_>, target: &str) -> CopyCheck {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for t in &comparison.tables {
        let name = t.name();
        if !expect.selection.tables.contains(&name) {
            if t.status == TableStatus::OnlyRight && !expect.selection.partial {
                warnings.push(format!(
                    "{name} exists only on {target} ({} rows): the source has no such table",
                    t.right_rows.unwrap_or(0)
                ));
            }
            continue;
        }
        let (src, dst) = (t.left_rows.unwrap_or(0), t.right_rows.unwrap_or(0));
        let bad = match (expect.mode, t.status) {
            (_, TableStatus::Ok) => false,
            // Upsert keeps the target's other rows: at least the source's must be there.
            (LoadMode::Upsert, TableStatus::RowsDiffer) => dst < src,
            (LoadMode::Upsert, TableStatus::ChecksumDiffers) => false,
            _ => true,
        };
        if bad {
            problems.push(match t.status {
                TableStatus::OnlyLeft => format!("{name}: missing on {target}"),
                TableStatus::ChecksumDiffers => {
                    format!("{name}: same {src} rows but different contents (checksums)")
                }
                _ => format!("{name}: {src} rows in the source, {dst} on {target}"),
            });
        }
    }
    if expect.alembic {
        problems.extend(
            comparison
                .alembic
                .findings
                .iter()
                .map(|f| format!("Alembic: {f}")),
        );
    }
    problems.extend(
        comparison
            .orphans
            .iter()
            .filter(|o| o.side == target)
            .map(|o| o.to_string()),
    );
    problems.extend(
        comparison
            .sequences
            .iter()
            .filter(|s| s.side == target)
            .map(|s| s.to_string()),
    );
    if !expect.selection.partial {
        warnings.extend(
            comparison
                .schema_differences
                .iter()
                .map(|d| format!("schema: {d}")),
        );
    }
    CopyCheck {
        comparison,
        problems,
        warnings,
    }
}

/// The table that a failed load was at, when the failure says.
pub fn failed_table(err: &anyhow::Error) -> Option<QualifiedName> {
    err.chain()
        .find_map(|c| c.downcast_ref::<LoadFailure>())
        .and_then(|f| f.table.clone())
}

/// Bytes for people: `12.3 MB`.
pub fn human_bytes(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Client sessions on a database other than the caller's, described for people. Background
/// workers (autovacuum) are left out: the server stops them itself for a rename or a drop.
pub async fn other_sessions(admin: &Client, dbname: &str) -> Result<Vec<String>> {
    let rows = admin
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), \
                    coalesce(host(client_addr), 'local socket'), coalesce(state, '') \
             FROM pg_catalog.pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() \
               AND backend_type = 'client backend'",
            &[&dbname],
        )
        .await
        .with_context(|| format!("listing the sessions on database {dbname}"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let app: String = r.get(2);
            format!(
                "pid {} ({}{} from {}, {})",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                if app.is_empty() {
                    String::new()
                } else {
                    format!(", {app}")
                },
                r.get::<_, String>(3),
                r.get::<_, String>(4)
            )
        })
        .collect())
}

/// Waits a little for sessions to go (our own just-closed connections take a moment to leave
/// pg_stat_activity), then returns those still there.
pub async fn sessions_after_grace(admin: &Client, dbname: &str) -> Result<Vec<String>> {
    let mut sessions = other_sessions(admin, dbname).await?;
    for _ in 0..30 {
        // Only the xtask's own sessions are worth waiting for; anyone else is reported at once.
        if sessions.iter().all(|s| !s.contains(", xtask from ")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sessions = other_sessions(admin, dbname).await?;
    }
    Ok(sessions)
}

/// Ends every other session on a database (`--terminate-connections`).
pub async fn terminate_sessions(admin: &Client, dbname: &str) -> Result<u64> {
    let n = admin
        .execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() \
               AND backend_type = 'client backend'",
            &[&dbname],
        )
        .await
        .with_context(|| format!("terminating the sessions on database {dbname}"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_patterns_match_exactly() {
        assert_eq!(
            dump_pattern(&QualifiedName::new("public", "users")),
            r#""public"."users""#
        );
        assert_eq!(
            dump_pattern(&QualifiedName::new("My Schema", "we\"ird.*")),
            r#""My Schema"."we""ird.*""#
        );
    }

    #[test]
    fn jobs_get_the_biggest_tables_first_and_even_loads() {
        let t = |n: &str| QualifiedName::new("public", n);
        let sizes: BTreeMap<QualifiedName, i64> = [
            (t("big"), 100),
            (t("mid"), 60),
            (t("small"), 30),
            (t("tiny"), 10),
        ]
        .into();
        let tables: BTreeSet<QualifiedName> = sizes.keys().cloned().collect();
        let jobs = split_jobs(&tables, &sizes, 2);
        assert_eq!(
            jobs,
            vec![vec![t("big")], vec![t("mid"), t("small"), t("tiny")]]
        );
        // More jobs than tables: no empty job.
        assert_eq!(split_jobs(&tables, &sizes, 8).len(), 4);
        assert_eq!(
            split_jobs(&tables, &sizes, 1),
            vec![vec![t("big"), t("mid"), t("small"), t("tiny")]]
        );
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(45_000_000), "45.0 MB");
    }
}
