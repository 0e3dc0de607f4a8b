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

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use xshell::Shell;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Config, Database, DbUrl, Side},
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::{Interrupted, UsageError},
    interrupt, migrations,
    pg::{
        client,
        ident::quote_ident,
        lock::{self, DbLock},
        stream::StartedDump,
        PgTools,
    },
    runtime::Runtime,
    transfer::{
        self,
        backup::{self, Backup},
        load::LoadMode,
        CopyArgs, CopyStep, LoadLogs, SchemaMode, Selection, SourceRead,
    },
    verify::{catalog::Snapshot, Endpoint},
};

#[derive(Args, Debug)]
pub struct DbPull {
    #[command(flatten)]
    pub copy: CopyArgs,
    /// End other sessions on the local databases (the app, a psql) instead of refusing
    #[arg(long)]
    pub terminate_connections: bool,
}

/// One database's pull, as it goes.
struct Pull {
    db: Database,
    source: SourceRead,
    target: DbUrl,
    selection: Selection,
    heads: Vec<String>,
    before: Option<Snapshot>,
    size: Option<i64>,
    lock: DbLock,
    staging: Option<DbUrl>,
    backup: Option<Backup>,
    logs: LoadLogs,
    warnings: Vec<String>,
    verified: Option<String>,
}

#[derive(Serialize)]
struct PullReport {
    database: Database,
    source: String,
    target: String,
    tables: usize,
    rows: i64,
    backup: Option<Backup>,
    logs: LoadLogs,
    verified: Option<String>,
    warnings: Vec<String>,
}

impl Pull {
    fn report(&self) -> PullReport {
        PullReport {
            database: self.db,
            source: self.source.endpoint.url.to_string(),
            target: self.target.to_string(),
            tables: self.selection.tables.len(),
            rows: self.rows(),
            backup: self.backup.clone(),
            logs: self.logs.clone(),
            verified: self.verified.clone(),
            warnings: self.warnings.clone(),
        }
    }

    fn rows(&self) -> i64 {
        self.selection
            .tables
            .iter()
            .map(|t| self.source.rows(t))
            .sum()
    }
}

/// `<name><suffix>`, cut to PostgreSQL's 63-byte limit on the name's side.
/// The source's extensions, in a database just created from template0.
fn create_extensions(
    rt: &Runtime,
    url: &DbUrl,
    extensions: &[String],
    timeout: Duration,
) -> Result<()> {
    rt.block_on(async {
        let conn = client::connect(url, timeout).await?;
        for ext in extensions {
            conn.batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {}",
                quote_ident(ext)
            ))
            .await
            .with_context(|| {
                format!(
                    "creating extension {ext} in {url}: is it installed on the local server \
                     (pgvector: image pgvector/pgvector:pg17)?"
                )
            })?;
        }
        anyhow::Ok(())
    })
}

/// The local database as it is before a pull: its snapshot and size, or `None` when it does not
/// exist.
async fn read_local(
    lock: &DbLock,
    target: &DbUrl,
    timeout: Duration,
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

/// A CHECKPOINT on its own connection, for speed only: it needs superuser or `pg_checkpoint`,
/// and any failure is ignored (the drop's own checkpoint does the work then).
async fn early_checkpoint(server: DbUrl) {
    if let Ok(conn) = client::connect(&server, client::default_connect_timeout()).await {
        let _ = conn.batch_execute("CHECKPOINT").await;
    }
}

fn sibling_name(dbname: &str, suffix: &str) -> String {
    let mut base = dbname.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

impl DbPull {
    pub fn run(mut self, ctx: &Ctx) -> Result<()> {
        let sh = &ctx.sh;
        self.copy.timeout = ctx.args().timeout;
        interrupt::install();
        let config = ctx.config()?;
        self.copy.show_progress = transfer::progress_wanted(config.json);
        let rt = &ctx.rt;
        let timeout = self.copy.connect_timeout();
        let stamp = backup::timestamp();
        // Human text goes to stderr; stdout carries the result (or the JSON document).
        let say = |line: String| eprintln!("{line}");

        // 1. Preflight: nothing local is touched until every source is read and checked.
        let tools = ctx.tools()?;
        let mut pulls = Vec::new();
        for db in config.databases() {
            let source_url = config.require_url(Side::Remote, db)?.clone();
            let target = config.require_url(Side::Local, db)?.clone();
            if source_url.same_database(&target) {
                return Err(UsageError::new(format!(
                    "the remote and local {} URLs are the same database ({target}): a pull would \
                     replace it with itself",
                    db.label()
                ))
                .into());
            }
            pulls.push(self.preflight(sh, &rt, &tools, db, source_url, target, timeout, &stamp)?);
        }

        // 2. The plan, and confirmation.
        for p in &pulls {
            say(self.plan_text(p));
        }
        if self.copy.dry_run {
            say("dry run: nothing was changed".to_string());
            return self.finish(&config, &pulls, true);
        }
        for p in &pulls {
            let action = if p.selection.partial {
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
            };
            confirm_destructive(&action, p.target.dbname(), config.yes)?;
        }

        // 3. Backups.
        if !self.copy.no_backup {
            for p in pulls.iter_mut().filter(|p| p.before.is_some()) {
                interrupt::check("the backups (nothing was changed)")?;
                let b =
                    backup::take_first(&tools, "db-pull", Side::Local, p.db, &p.target, &stamp)?;
                say(format!(
                    "{}: backup of {} written to {} ({})",
                    p.db.label(),
                    p.target.dbname(),
                    b.path.display(),
                    transfer::human_bytes(b.bytes as i64)
                ));
                p.backup = Some(b);
            }
        }

        // 4-7. Build and verify each copy; 8. swap them in. Any failure: discard the copies.
        let result = self.copy_all(sh, &rt, &tools, &mut pulls, timeout, &say);
        if let Err(e) = result {
            let cleanup = self.discard_staging(&rt, &pulls);
            let state = self.state_after_failure(&pulls, cleanup);
            if interrupt::interrupted() {
                return Err(Interrupted(format!("db-pull interrupted: {e:#}\n{state}")).into());
            }
            return Err(e.context(format!("db-pull failed\n{state}")));
        }
        self.finish(&config, &pulls, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn preflight(
        &self,
        sh: &Shell,
        rt: &Runtime,
        tools: &PgTools,
        db: Database,
        source_url: DbUrl,
        target: DbUrl,
        timeout: Duration,
        stamp: &str,
    ) -> Result<Pull> {
        let label = db.label();
        // The lock comes first: a second pull refuses at once, before it reads anything.
        let lock = rt
            .block_on(lock::acquire(
                &target.with_dbname("postgres"),
                target.dbname(),
                "db-pull",
                timeout,
            ))
            .with_context(|| format!("locking the local {label} database"))?;
        // The local database is read (on its own thread) while the source is: the two are
        // independent, and a failure of the source's read is still the one reported first.
        let (source, local) = std::thread::scope(|scope| {
            let local = scope.spawn(|| rt.block_on(read_local(&lock, &target, timeout)));
            let source = transfer::read_source(
                sh,
                rt,
                tools,
                db,
                Endpoint::new(Side::Remote.label(), source_url),
                &self.copy,
                "nothing local was touched",
            );
            let local = local
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread reading {target} panicked")));
            (source, local)
        });
        let (source, heads, selection) = source?;
        let (before, size) =
            local.with_context(|| format!("reading the local {label} database {target}"))?;
        let exists = before.is_some();
        if selection.partial {
            let Some(before) = &before else {
                bail!(
                    "the local {label} database {} does not exist: a pull of some tables needs \
                     it; run a full pull (without --tables/--exclude-table) or `cargo xtask \
                     db-init` first",
                    target.dbname()
                );
            };
            transfer::check_target_can_hold(&source.catalog, &before.catalog, &selection, "local")?;
        } else if exists {
            let sessions = rt.block_on(transfer::sessions_after_grace(
                lock.client(),
                target.dbname(),
            ))?;
            if !sessions.is_empty() && !self.terminate_connections {
                bail!(
                    "the local {label} database {} has {} other session(s): {}. Stop the app \
                     (and any psql) using it, or pass --terminate-connections; nothing was \
                     changed",
                    target.dbname(),
                    sessions.len(),
                    sessions.join("; ")
                );
            }
        }
        Ok(Pull {
            db,
            logs: LoadLogs::new(&backup::logs_dir(), "db-pull", db, stamp),
            source,
            target,
            selection,
            heads,
            before,
            size,
            lock,
            staging: None,
            backup: None,
            warnings: Vec::new(),
            verified: None,
        })
    }

    fn plan_text(&self, p: &Pull) -> String {
        let mut out = format!(
            "{}: pull {} -> {}\n  source: PostgreSQL {}, {} tables to copy, {} rows\n",
            p.db.label(),
            p.source.endpoint.url,
            p.target,
            p.source.version.text,
            p.selection.tables.len(),
            p.rows()
        );
        match (&p.before, p.size) {
            (Some(before), Some(size)) => {
                let rows: i64 = before.measures.tables.values().map(|m| m.rows).sum();
                let what = if p.selection.partial {
                    format!(
                        "the data of {} of its {} tables is replaced",
                        p.selection.tables.len(),
                        before.catalog.tables.len()
                    )
                } else {
                    "it is replaced whole".to_string()
                };
                out += &format!(
                    "  local: {} ({}, {} tables, {rows} rows): {what}\n",
                    p.target.dbname(),
                    transfer::human_bytes(size),
                    before.catalog.tables.len()
                );
            }
            _ => {
                out += &format!(
                    "  local: {} does not exist yet: it is created\n",
                    p.target.dbname()
                )
            }
        }
        out += &format!(
            "  schema: {}\n",
            match (self.copy.schema, p.selection.partial) {
                (_, true) => "kept as it is".to_string(),
                (SchemaMode::Migrations, _) => format!(
                    "alembic -c {} upgrade head ({})",
                    AlembicConfig::of(p.db).ini(),
                    p.heads.join(", ")
                ),
                (SchemaMode::Source, _) => "the source's own (pg_dump --schema-only)".to_string(),
            }
        );
        let mut largest: Vec<_> = p
            .selection
            .tables
            .iter()
            .map(|t| (p.source.rows(t), t))
            .collect();
        largest.sort_by_key(|(rows, _)| std::cmp::Reverse(*rows));
        for (rows, t) in largest.iter().take(8) {
            out += &format!(
                "    {t}: {rows} rows, {}\n",
                transfer::human_bytes(p.source.sizes.get(*t).copied().unwrap_or(0))
            );
        }
        if largest.len() > 8 {
            out += &format!("    ... and {} more tables\n", largest.len() - 8);
        }
        out += &format!(
            "  backup: {}",
            if self.copy.no_backup {
                "none (--no-backup)".to_string()
            } else if p.before.is_some() {
                format!("custom format, under {}", backup::backups_dir().display())
            } else {
                "nothing to back up".to_string()
            }
        );
        out
    }

    fn copy_all(
        &self,
        sh: &Shell,
        rt: &Runtime,
        tools: &PgTools,
        pulls: &mut [Pull],
        timeout: Duration,
        say: &dyn Fn(String),
    ) -> Result<()> {
        for p in pulls.iter_mut() {
            let label = p.db.label();
            if p.selection.partial {
                self.load_and_check(rt, tools, p, p.target.clone(), None, say)
                    .with_context(|| format!("{label}: loading the selected tables"))?;
            } else {
                // One stream: pg_dump starts up (docker exec, the source's catalog) while the
                // staging database is created and checked; its output waits in the pipe.
                let early = (self.copy.jobs == 1)
                    .then(|| {
                        transfer::start_data_dump(
                            tools,
                            &p.source,
                            Side::Remote,
                            &p.selection,
                            &p.logs,
                        )
                    })
                    .transpose()
                    .with_context(|| format!("{label}: starting pg_dump"))?;
                let staging = self
                    .build_staging(sh, rt, tools, p, timeout, say)
                    .with_context(|| format!("{label}: building the new copy"))?;
                self.load_and_check(rt, tools, p, staging, early, say)
                    .with_context(|| format!("{label}: loading the data"))?;
            }
        }
        interrupt::check("the last checks (nothing was changed)")?;
        for p in pulls.iter_mut().filter(|p| p.staging.is_some()) {
            self.swap(rt, p)?;
            say(format!(
                "{}: local database {} replaced",
                p.db.label(),
                p.target.dbname()
            ));
        }
        Ok(())
    }

    fn build_staging(
        &self,
        sh: &Shell,
        rt: &Runtime,
        tools: &PgTools,
        p: &mut Pull,
        timeout: Duration,
        say: &dyn Fn(String),
    ) -> Result<DbUrl> {
        let name = sibling_name(p.target.dbname(), "_xtask_new");
        let staging = p.target.with_dbname(&name);
        // A leftover of a run that was killed: ours to drop, since we hold the lock.
        rt.block_on(p.lock.client().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&name)
        )))
        .with_context(|| format!("dropping a leftover staging database {name}"))?;

        let mut extensions: Vec<String> = p
            .source
            .catalog
            .extensions
            .keys()
            .filter(|e| e.as_str() != "plpgsql")
            .cloned()
            .collect();
        if p.db == Database::Ai && !extensions.iter().any(|e| e == "vector") {
            extensions.push("vector".to_string());
        }
        let config = AlembicConfig::of(p.db);
        let cached = match self.copy.schema {
            SchemaMode::Migrations => self.schema_template(sh, rt, p, &extensions, timeout, say)?,
            SchemaMode::Source => None,
        };
        let template = cached.as_deref().unwrap_or("template0");
        rt.block_on(p.lock.client().batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        )))
        .with_context(|| format!("creating the staging database {name} next to {}", p.target))?;
        p.staging = Some(staging.clone());
        interrupt::check("the schema step")?;

        match (self.copy.schema, &cached) {
            (SchemaMode::Migrations, Some(template)) => say(format!(
                "{}: schema of alembic -c {} upgrade head, cloned from {template} (built by these \
                 same migrations; XTASK_SCHEMA_CACHE=off runs them every time)",
                p.db.label(),
                config.ini()
            )),
            (SchemaMode::Migrations, None) => {
                create_extensions(rt, &staging, &extensions, timeout)?;
                config.upgrade(sh, &backend_dir(), &staging, "head")?;
                say(format!(
                    "{}: schema built by alembic -c {} upgrade head",
                    p.db.label(),
                    config.ini()
                ));
            }
            (SchemaMode::Source, _) => {
                create_extensions(rt, &staging, &extensions, timeout)?;
                transfer::copy_schema(
                    tools,
                    &p.source,
                    Side::Remote,
                    &staging,
                    Side::Local,
                    &p.logs,
                )
                .context("copying the source's schema")?;
                say(format!("{}: schema copied from the source", p.db.label()));
            }
        }
        interrupt::check("the schema step")?;
        let built = rt.block_on(transfer::read_snapshot(&staging, timeout))?;
        transfer::check_target_can_hold(
            &p.source.catalog,
            &built.catalog,
            &p.selection,
            "local (as built)",
        )?;
        Ok(staging)
    }

    /// The local server's cached build of these migrations (`xtask_schema_<config>_<key>`, see
    /// `migrations`), built now when it is missing; `None` when the cache is off or another command
    /// is building it (then this pull runs the migrations itself).
    fn schema_template(
        &self,
        sh: &Shell,
        rt: &Runtime,
        p: &Pull,
        extensions: &[String],
        timeout: Duration,
        say: &dyn Fn(String),
    ) -> Result<Option<String>> {
        let config = AlembicConfig::of(p.db);
        if !migrations::cache_enabled() {
            return Ok(None);
        }
        let Some(fingerprint) = migrations::fingerprint(config, &backend_dir())? else {
            return Ok(None);
        };
        let mut key = migrations::Fnv64::default();
        key.part(fingerprint.as_bytes());
        for ext in extensions {
            key.part(ext.as_bytes());
        }
        let prefix = format!("xtask_schema_{}_", p.db.label());
        let name = format!("{prefix}{}", key.hex());
        let admin = p.lock.client();
        if rt.block_on(client::database_exists(admin, &name))? {
            return Ok(Some(name));
        }
        let server = p.target.with_dbname("postgres");
        let Ok(_building) = rt.block_on(lock::acquire(&server, &prefix, "db-pull", timeout)) else {
            return Ok(None);
        };
        if rt.block_on(client::database_exists(admin, &name))? {
            return Ok(Some(name));
        }
        // Under the lock, every other cached build of this config is stale or a killed build's
        // leftover: ours to drop.
        let stale = rt
            .block_on(admin.query(
                "SELECT datname FROM pg_catalog.pg_database WHERE starts_with(datname, $1)",
                &[&prefix],
            ))
            .context("listing the cached schema builds")?;
        for row in stale {
            let old: String = row.get(0);
            rt.block_on(admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&old)
            )))
            .with_context(|| format!("dropping the stale schema build {old}"))?;
        }
        let building = format!("{name}_building");
        let building_url = p.target.with_dbname(&building);
        rt.block_on(admin.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(&building)
        )))
        .with_context(|| format!("creating {building} to build the schema in"))?;
        let built = create_extensions(rt, &building_url, extensions, timeout)
            .and_then(|()| config.upgrade(sh, &backend_dir(), &building_url, "head"))
            .and_then(|()| interrupt::check("the schema step"))
            .and_then(|()| {
                // Published complete under its final name, and closed to connections: nothing can
                // change it between builds, and a clone never waits for a session on it.
                let comment = format!(
                    "xtask db-pull: empty schema of alembic -c {} upgrade head (migrations \
                     fingerprint {fingerprint}); cloned by each pull, safe to drop",
                    config.ini()
                );
                rt.block_on(admin.batch_execute(&format!(
                    "ALTER DATABASE {b} RENAME TO {n}; ALTER DATABASE {n} ALLOW_CONNECTIONS false; \
                     COMMENT ON DATABASE {n} IS '{c}'",
                    b = quote_ident(&building),
                    n = quote_ident(&name),
                    c = comment.replace('\'', "''"),
                )))
                .with_context(|| format!("publishing the schema build {name}"))
            });
        if let Err(e) = built {
            let _ = rt.block_on(admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            )));
            return Err(e);
        }
        say(format!(
            "{}: schema built by alembic -c {} upgrade head into {name}, kept for the next pulls",
            p.db.label(),
            config.ini()
        ));
        Ok(Some(name))
    }

    fn load_and_check(
        &self,
        rt: &Runtime,
        tools: &PgTools,
        p: &mut Pull,
        into: DbUrl,
        early: Option<StartedDump>,
        say: &dyn Fn(String),
    ) -> Result<()> {
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
        };
        step.load(rt, tools, &self.copy, early, say)?;
        // Dropping the replaced database at the swap forces a checkpoint, which must first write
        // every page the load dirtied (about 0.1-0.3 s at scale 1 here). Started now, that work
        // overlaps the verification; the drop's checkpoint then finds little left to write.
        let checkpoint = (p.staging.is_some() && p.before.is_some())
            .then(|| rt.spawn(early_checkpoint(p.target.with_dbname("postgres"))));
        let verified = step.verify(rt, &self.copy, say);
        if let Some(checkpoint) = checkpoint {
            let _ = rt.block_on(checkpoint);
        }
        let (summary, warnings) = verified?;
        p.warnings = warnings;
        p.verified = Some(summary);
        Ok(())
    }

    /// Swaps the verified staging database in: two renames in one transaction.
    fn swap(&self, rt: &Runtime, p: &mut Pull) -> Result<()> {
        let staging = p.staging.clone().expect("a staging database to swap in");
        let admin = p.lock.client();
        let target = p.target.dbname();
        let label = p.db.label();
        rt.block_on(async {
            if p.before.is_some() {
                if self.terminate_connections {
                    let n = transfer::terminate_sessions(admin, target).await?;
                    if n > 0 {
                        eprintln!("{label}: ended {n} other session(s) on {target}");
                    }
                }
                let sessions = transfer::sessions_after_grace(admin, target).await?;
                if !sessions.is_empty() {
                    bail!(
                        "the local database {target} has other session(s) now: {}; stop them \
                         (or pass --terminate-connections) and pull again",
                        sessions.join("; ")
                    );
                }
            }
            let old = sibling_name(target, &format!("_xtask_old_{}", std::process::id()));
            admin.batch_execute("BEGIN").await?;
            let renamed = async {
                if p.before.is_some() {
                    admin
                        .batch_execute(&format!(
                            "ALTER DATABASE {} RENAME TO {}",
                            quote_ident(target),
                            quote_ident(&old)
                        ))
                        .await?;
                }
                admin
                    .batch_execute(&format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        quote_ident(staging.dbname()),
                        quote_ident(target)
                    ))
                    .await?;
                admin.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = renamed {
                let _ = admin.batch_execute("ROLLBACK").await;
                return Err(
                    anyhow::Error::new(e).context(format!("swapping the new copy in as {target}"))
                );
            }
            p.staging = None;
            if p.before.is_some() {
                if let Err(e) = admin
                    .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote_ident(&old)))
                    .await
                {
                    eprintln!(
                        "{label}: warning: the replaced database is left as {old} (dropping it \
                         failed: {e}); drop it by hand when you no longer need it"
                    );
                }
            }
            anyhow::Ok(())
        })
    }

    /// Drops every staging database that was created; returns what could not be dropped.
    /// (Its name and why, for each one left.)
    fn discard_staging(&self, rt: &Runtime, pulls: &[Pull]) -> Vec<(String, String)> {
        let mut left = Vec::new();
        for p in pulls {
            if let Some(staging) = &p.staging {
                let dropped = rt.block_on(p.lock.client().batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(staging.dbname())
                )));
                if let Err(e) = dropped {
                    left.push((staging.dbname().to_string(), format!("{e:#}")));
                }
            }
        }
        left
    }

    fn state_after_failure(&self, pulls: &[Pull], leftovers: Vec<(String, String)>) -> String {
        let mut lines = Vec::new();
        for p in pulls {
            let left = p
                .staging
                .as_ref()
                .is_some_and(|s| leftovers.iter().any(|(name, _)| name == s.dbname()));
            let state = if p.selection.partial {
                "unchanged (the load's transaction was rolled back)".to_string()
            } else if left {
                "unchanged (the new copy was not swapped in)".to_string()
            } else if p.staging.is_some() {
                "unchanged (the new copy was discarded before the swap)".to_string()
            } else if p.verified.is_some() {
                "replaced by the verified copy".to_string()
            } else {
                "unchanged".to_string()
            };
            let backup = p
                .backup
                .as_ref()
                .map(|b| format!("; backup: {}", b.path.display()))
                .unwrap_or_default();
            lines.push(format!(
                "  local {} database {}: {state}{backup}",
                p.db.label(),
                p.target.dbname()
            ));
        }
        for (name, why) in leftovers {
            lines.push(format!(
                "  the staging database {name} could not be dropped ({why}): the next db-pull \
                 drops it, or drop it by hand: DROP DATABASE \"{name}\" WITH (FORCE)"
            ));
        }
        if interrupt::interrupted() {
            lines.push("  to finish: run the same db-pull again".to_string());
        } else {
            // The cause follows this line in the error chain (`what failed: ...`).
            lines.push("  to finish: fix what failed, then run the same db-pull again".to_string());
            lines.push("  what failed".to_string());
        }
        lines.join("\n")
    }

    fn finish(&self, config: &Config, pulls: &[Pull], dry_run: bool) -> Result<()> {
        if config.json {
            let doc = serde_json::json!({
                "command": "db-pull",
                "ok": true,
                "dry_run": dry_run,
                "databases": pulls.iter().map(Pull::report).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else if !dry_run {
            for p in pulls {
                println!(
                    "pulled {} rows in {} tables into {}: {}",
                    p.rows(),
                    p.selection.tables.len(),
                    p.target.dbname(),
                    p.verified.as_deref().unwrap_or("verified")
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_fit_postgres_limit() {
        assert_eq!(
            sibling_name("sigmasight_db", "_xtask_new"),
            "sigmasight_db_xtask_new"
        );
        let long = "d".repeat(63);
        let name = sibling_name(&long, "_xtask_new");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_xtask_new"));
    }
}
