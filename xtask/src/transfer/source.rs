//! The source of a copy, read before anything on the target is touched: its catalog, exact row
//! counts, table sizes and sequences in one exported snapshot (the counts taken up front and the
//! rows pg_dump streams are the same rows), the tools checked against its version, what it holds
//! that a copy cannot make exact refused by name (`uncopyable.rs`), and its Alembic revision
//! against this repo's heads.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;
use xshell::Shell;

use super::{
    driver::Run,
    partitions::Partitions,
    selection::{select_tables, Selection},
    uncopyable, SchemaMode,
};
use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{
        timeouts::{LOCK_TIMEOUT, SOURCE_LOCK_TIMEOUT_DEFAULT},
        Database, DbUrl,
    },
    pg::{client, ident::QualifiedName, version::ToolVersion, Tool},
    verify::{
        catalog::{self, Catalog, Measures, Snapshot},
        Endpoint,
    },
};

/// The source, read in the snapshot that pg_dump will use.
pub struct SourceRead {
    pub endpoint: Endpoint,
    /// Holds the exported snapshot's transaction open until the copy is verified.
    pub(super) client: Client,
    pub snapshot: String,
    pub catalog: Catalog,
    pub measures: Measures,
    pub version: ToolVersion,
    /// Each table's size on disk (table, indexes, TOAST), for the plan.
    pub sizes: BTreeMap<QualifiedName, i64>,
    /// Every sequence, owned or not: a parallel load names them to pg_dump (one job sets them).
    pub sequences: Vec<QualifiedName>,
    /// What the copy cannot make exact (`uncopyable.rs`), named; refused unless allowed.
    pub uncopyable: Vec<String>,
    /// The partitioned tables' partitions: a selected one brings them all (`partitions.rs`).
    pub partitions: Partitions,
    /// How long each pg_dump of this source may wait for its table locks (`None`: no limit).
    pub lock_wait: Option<Duration>,
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
        let uncopyable = uncopyable::read(&client, url).await?;
        let partitions = Partitions::read(&client, url).await?;
        let lock_wait = LOCK_TIMEOUT.get_or(SOURCE_LOCK_TIMEOUT_DEFAULT)?;
        Ok(SourceRead {
            endpoint,
            client,
            snapshot,
            catalog,
            measures,
            version,
            sizes,
            sequences,
            uncopyable,
            partitions,
            lock_wait,
        })
    }

    /// pg_dump's arguments that every dump of this source takes: its snapshot, and a bound on
    /// the wait for each table's lock. This session holds its tables' ACCESS SHARE locks; a
    /// migration queued for ACCESS EXCLUSIVE waits for it, and pg_dump's locks queue behind the
    /// migration: a wait the server cannot see as a deadlock, which only this bound ends.
    pub fn dump_args(&self) -> Vec<String> {
        let mut args = vec![format!("--snapshot={}", self.snapshot)];
        if let Some(limit) = self.lock_wait {
            args.push(format!("--lock-wait-timeout={}", limit.as_millis()));
        }
        args
    }

    pub fn rows(&self, table: &QualifiedName) -> i64 {
        self.measures.tables.get(table).map(|m| m.rows).unwrap_or(0)
    }

    /// The rows stored in `table` itself: none for a partitioned table, whose count is its
    /// partitions' (also selected), so that a total counts each row once.
    pub fn rows_held(&self, table: &QualifiedName) -> i64 {
        if self.is_partitioned(table) {
            0
        } else {
            self.rows(table)
        }
    }

    pub fn is_partitioned(&self, table: &QualifiedName) -> bool {
        self.catalog
            .tables
            .get(table)
            .is_some_and(|t| t.kind == catalog::TableKind::Partitioned)
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
            checksum: None,
        })
        .collect()
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
    run: &Run,
    db: Database,
    source: Endpoint,
    untouched: &str,
) -> Result<(SourceRead, Vec<String>, Selection)> {
    let (ctx, tools, copy) = (run.ctx, run.tools, run.copy);
    let label = db.label();
    let side = source.side.clone();
    // `pg_dump --version` through `docker exec` runs while the source is read. The thread has
    // its own Shell (an xshell Shell is not Sync); the command needs no cwd.
    let (source, dump) = std::thread::scope(|scope| {
        let dump = scope.spawn(|| tools.tool_version(&Shell::new()?, Tool::PgDump));
        let source = ctx.block_on(SourceRead::open(source, ctx.timeout()));
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
    // Before the revision and anything else: what cannot be copied exactly is refused by name.
    if !source.uncopyable.is_empty() && !copy.allow_uncopyable {
        bail!(
            "{}; {untouched}",
            uncopyable::refusal(run.command, &side, label, &source.uncopyable)
        );
    }
    let heads = match copy.schema {
        SchemaMode::Migrations => {
            check_source_revision(&ctx.sh, db, &source, copy.allow_revision_mismatch)
                .with_context(|| format!("{label}: {untouched}"))?
        }
        SchemaMode::Source => Vec::new(),
    };
    let selection = select_tables(
        &source.catalog,
        &source.partitions,
        &copy.tables,
        &copy.exclude_tables,
        copy.schema,
    )?;
    Ok((source, heads, selection))
}
