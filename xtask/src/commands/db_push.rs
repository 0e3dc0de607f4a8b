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
    interrupt,
    pg::{
        client::{self, ConnectFailure},
        lock::{self, DbLock},
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
pub struct DbPush {
    #[command(flatten)]
    pub copy: CopyArgs,
    /// How the pushed rows meet the target's rows
    #[arg(long, value_enum, default_value_t = LoadMode::Replace)]
    pub mode: LoadMode,
    /// For a protected target: `<host>/<database>`, typed exactly (with --yes)
    #[arg(long, value_name = "HOST/DB")]
    pub confirm_target: Option<String>,
    /// Hosts that are production (comma-separated): pushing to them needs --confirm-target
    #[arg(
        long,
        env = "XTASK_PROTECTED_HOSTS",
        value_delimiter = ',',
        value_name = "HOSTS"
    )]
    pub protected_hosts: Vec<String>,
}

struct Push {
    db: Database,
    source: SourceRead,
    target: DbUrl,
    selection: Selection,
    heads: Vec<String>,
    before: Snapshot,
    _lock: DbLock,
    backup: Option<Backup>,
    logs: LoadLogs,
    /// The target's Alembic revision before an upgrade changed it (committed on its own).
    upgraded_from: Option<Vec<String>>,
    loaded: bool,
    verified: Option<String>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct PushReport {
    database: Database,
    source: String,
    target: String,
    mode: LoadMode,
    tables: usize,
    rows: i64,
    backup: Option<Backup>,
    logs: LoadLogs,
    verified: Option<String>,
    warnings: Vec<String>,
}

impl Push {
    fn rows(&self) -> i64 {
        self.selection
            .tables
            .iter()
            .map(|t| self.source.rows(t))
            .sum()
    }
}

/// `host/dbname` as `--confirm-target` must spell it.
fn target_id(url: &DbUrl) -> String {
    format!("{}/{}", url.host(), url.dbname())
}

impl DbPush {
    fn is_protected(&self, url: &DbUrl) -> bool {
        self.protected_hosts
            .iter()
            .map(|h| h.trim())
            .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(url.host()))
    }

    /// The production guard, before anything is read: exit 2 unless the confirmation is exact.
    fn check_protected(&self, config: &Config, url: &DbUrl) -> Result<()> {
        if !self.is_protected(url) {
            return Ok(());
        }
        let id = target_id(url);
        if self.copy.no_backup {
            return Err(UsageError::new(format!(
                "{id} is a protected host (XTASK_PROTECTED_HOSTS): --no-backup is refused for it; \
                 nothing was changed"
            ))
            .into());
        }
        if !config.yes || self.confirm_target.as_deref() != Some(id.as_str()) {
            return Err(UsageError::new(format!(
                "{id} is a protected host (XTASK_PROTECTED_HOSTS): pushing to it needs --yes and \
                 --confirm-target {id}, spelled exactly{}; nothing was changed",
                match &self.confirm_target {
                    Some(given) if given != &id => format!(" (got --confirm-target {given})"),
                    _ => String::new(),
                }
            ))
            .into());
        }
        Ok(())
    }

    pub fn run(mut self, ctx: &Ctx) -> Result<()> {
        let sh = &ctx.sh;
        self.copy.timeout = ctx.args().timeout;
        interrupt::install();
        let config = ctx.config()?;
        self.copy.show_progress = transfer::progress_wanted(config.json);
        let rt = &ctx.rt;
        let timeout = self.copy.connect_timeout();
        let stamp = backup::timestamp();
        let say = |line: String| eprintln!("{line}");

        let mut endpoints = Vec::new();
        for db in config.databases() {
            let source = config.require_url(Side::Local, db)?.clone();
            let target = config.require_url(Side::Remote, db)?.clone();
            if source.same_database(&target) {
                return Err(UsageError::new(format!(
                    "the local and remote {} URLs are the same database ({target}): a push would \
                     replace it with itself",
                    db.label()
                ))
                .into());
            }
            self.check_protected(&config, &target)?;
            endpoints.push((db, source, target));
        }
        let tools = ctx.tools()?;
        let mut pushes = Vec::new();
        for (db, source, target) in endpoints {
            pushes.push(self.preflight(sh, &rt, &tools, db, source, target, timeout, &stamp)?);
        }

        for p in &pushes {
            say(self.plan_text(p));
        }
        if self.copy.dry_run {
            say("dry run: nothing was changed".to_string());
            return self.finish(&config, &pushes, true);
        }
        for p in &pushes {
            if self.is_protected(&p.target) {
                continue; // --yes and the exact --confirm-target were checked up front
            }
            let action = format!(
                "{} the data of {} table(s) in the remote {} database {} ({})",
                match self.mode {
                    LoadMode::Replace => "replace",
                    LoadMode::Upsert => "merge into",
                },
                p.selection.tables.len(),
                p.db.label(),
                p.target.dbname(),
                p.target
            );
            confirm_destructive(&action, p.target.dbname(), config.yes)?;
        }

        if !self.copy.no_backup {
            for p in pushes.iter_mut() {
                interrupt::check("the backups (nothing was changed)")?;
                let b =
                    backup::take_first(&tools, "db-push", Side::Remote, p.db, &p.target, &stamp)?;
                say(format!(
                    "{}: backup of the remote {} written to {} ({})",
                    p.db.label(),
                    p.target.dbname(),
                    b.path.display(),
                    transfer::human_bytes(b.bytes as i64)
                ));
                p.backup = Some(b);
            }
        }

        for i in 0..pushes.len() {
            let result = self.push_one(sh, &rt, &tools, &mut pushes[i], timeout, &say);
            if let Err(e) = result {
                let state = self.state_after_failure(&pushes);
                if interrupt::interrupted() {
                    return Err(Interrupted(format!("db-push interrupted: {e:#}\n{state}")).into());
                }
                return Err(e.context(format!("db-push failed\n{state}")));
            }
        }
        self.finish(&config, &pushes, false)
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
    ) -> Result<Push> {
        let label = db.label();
        let untouched = "nothing on the remote was touched";
        // The lock lives on the server's maintenance database when we may connect to it, else
        // on the target database itself (a push never drops it).
        let lock = match rt.block_on(lock::acquire(
            &target.with_dbname("postgres"),
            target.dbname(),
            "db-push",
            timeout,
        )) {
            Ok(lock) => lock,
            Err(e)
                if client::connect_failure(&e) == Some(ConnectFailure::MissingDatabase)
                    || client::connect_failure(&e) == Some(ConnectFailure::Authentication) =>
            {
                rt.block_on(lock::acquire(&target, target.dbname(), "db-push", timeout))?
            }
            Err(e) => {
                return Err(e.context(format!("locking the remote {label} database; {untouched}")))
            }
        };
        let (source, heads, selection) = transfer::read_source(
            sh,
            rt,
            tools,
            db,
            Endpoint::new(Side::Local.label(), source_url),
            &self.copy,
            untouched,
        )?;
        let before = rt
            .block_on(transfer::read_snapshot(&target, timeout))
            .with_context(|| format!("reading the remote {label} database; {untouched}"))?;
        if self.copy.schema == SchemaMode::Source && !before.catalog.tables.is_empty() {
            bail!(
                "--schema source creates the local schema on the remote, but the remote {label} \
                 database {} already has {} tables: use --schema migrations (the default), or \
                 push into an empty database; {untouched}",
                target.dbname(),
                before.catalog.tables.len()
            );
        }
        let sessions = rt.block_on(transfer::other_sessions(lock.client(), target.dbname()))?;
        let own = format!("xtask db-push (pid {})", std::process::id());
        let others: Vec<String> = sessions.into_iter().filter(|s| !s.contains(&own)).collect();
        if !others.is_empty() {
            eprintln!(
                "{label}: warning: the remote {} has {} other session(s) (the app?): {}; the load \
                 locks the tables it replaces until it commits",
                target.dbname(),
                others.len(),
                others.join("; ")
            );
        }
        Ok(Push {
            db,
            logs: LoadLogs::new(&backup::logs_dir(), "db-push", db, stamp),
            source,
            target,
            selection,
            heads,
            before,
            _lock: lock,
            backup: None,
            upgraded_from: None,
            loaded: false,
            verified: None,
            warnings: Vec::new(),
        })
    }

    fn plan_text(&self, p: &Push) -> String {
        let bytes: i64 = p
            .selection
            .tables
            .iter()
            .map(|t| p.source.sizes.get(t).copied().unwrap_or(0))
            .sum();
        let mut out = format!(
            "{}: push {} -> {}{}\n  source: {} tables, {} rows, {} on disk\n  mode: {}\n",
            p.db.label(),
            p.source.endpoint.url,
            p.target,
            if self.is_protected(&p.target) {
                " (PROTECTED)"
            } else {
                ""
            },
            p.selection.tables.len(),
            p.rows(),
            transfer::human_bytes(bytes),
            match self.mode {
                LoadMode::Replace =>
                    "replace: the tables below are emptied and reloaded, in one transaction",
                LoadMode::Upsert =>
                    "upsert: rows are inserted or updated by primary key; nothing is deleted",
            }
        );
        out += &format!(
            "  schema: {}\n",
            match self.copy.schema {
                SchemaMode::Migrations => format!(
                    "alembic -c {} upgrade head ({}) on the remote, now at {}",
                    AlembicConfig::of(p.db).ini(),
                    p.heads.join(", "),
                    p.before
                        .catalog
                        .alembic
                        .as_ref()
                        .map(|a| a.revisions.join(", "))
                        .unwrap_or_else(|| "no revision".into())
                ),
                SchemaMode::Source => "the local schema (pg_dump --schema-only)".to_string(),
            }
        );
        for t in &p.selection.tables {
            let now = p.before.measures.tables.get(t).map(|m| m.rows);
            out += &format!(
                "    {t}: {} rows -> remote{}\n",
                p.source.rows(t),
                match (now, self.mode) {
                    (Some(n), LoadMode::Replace) => format!(" (its {n} rows are replaced)"),
                    (Some(n), LoadMode::Upsert) => format!(" (has {n} rows, none deleted)"),
                    (None, _) => " (table created by the schema step)".to_string(),
                }
            );
        }
        out += &format!(
            "  backup: {}",
            if self.copy.no_backup {
                "none (--no-backup)".to_string()
            } else {
                format!("custom format, under {}", backup::backups_dir().display())
            }
        );
        out
    }

    fn push_one(
        &self,
        sh: &Shell,
        rt: &Runtime,
        tools: &PgTools,
        p: &mut Push,
        timeout: Duration,
        say: &dyn Fn(String),
    ) -> Result<()> {
        let label = p.db.label();
        interrupt::check("the schema step (nothing was changed)")?;
        match self.copy.schema {
            SchemaMode::Migrations => {
                let before = p
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
                        .upgrade(sh, &backend_dir(), &p.target, "head")
                        .with_context(|| format!("{label}: migrating the remote to head"))?;
                    // Alembic committed it (a failed upgrade is rolled back whole): a later
                    // failure names the revision to go back to.
                    p.upgraded_from = Some(before);
                    say(format!("{label}: remote migrated to head"));
                }
            }
            SchemaMode::Source => {
                transfer::copy_schema(
                    tools,
                    &p.source,
                    Side::Local,
                    &p.target,
                    Side::Remote,
                    &p.logs,
                )
                .with_context(|| format!("{label}: copying the local schema to the remote"))?;
                say(format!("{label}: local schema created on the remote"));
            }
        }
        let built = rt.block_on(transfer::read_snapshot(&p.target, timeout))?;
        transfer::check_target_can_hold(&p.source.catalog, &built.catalog, &p.selection, "remote")
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
        };
        step.load(rt, tools, &self.copy, None, say)
            .with_context(|| format!("{label}: loading the data"))?;
        p.loaded = true;
        let (summary, warnings) = step.verify(rt, &self.copy, say)?;
        p.warnings = warnings;
        p.verified = Some(summary);
        Ok(())
    }

    fn state_after_failure(&self, pushes: &[Push]) -> String {
        let mut lines = Vec::new();
        for p in pushes {
            let data = if p.verified.is_some() {
                "pushed and verified".to_string()
            } else if p.loaded {
                "loaded and committed, but the verification failed (see above)".to_string()
            } else {
                "unchanged (the load's transaction was rolled back, or never started)".to_string()
            };
            let mut line = format!(
                "  remote {} database {}: data {data}",
                p.db.label(),
                p.target.dbname()
            );
            if let Some(from) = &p.upgraded_from {
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
            if let Some(b) = &p.backup {
                if p.verified.is_none() {
                    line += &format!(
                        "; backup from before the push: {} (to restore: {})",
                        b.path.display(),
                        b.restore_hint(&p.target)
                    );
                }
            }
            lines.push(line);
        }
        if interrupt::interrupted() {
            lines.push("  to finish: run the same db-push again".to_string());
        } else {
            // The cause follows this line in the error chain (`what failed: ...`).
            lines.push("  to finish: fix what failed, then run the same db-push again".to_string());
            lines.push("  what failed".to_string());
        }
        lines.join("\n")
    }

    fn finish(&self, config: &Config, pushes: &[Push], dry_run: bool) -> Result<()> {
        if config.json {
            let reports: Vec<PushReport> = pushes
                .iter()
                .map(|p| PushReport {
                    database: p.db,
                    source: p.source.endpoint.url.to_string(),
                    target: p.target.to_string(),
                    mode: self.mode,
                    tables: p.selection.tables.len(),
                    rows: p.rows(),
                    backup: p.backup.clone(),
                    logs: p.logs.clone(),
                    verified: p.verified.clone(),
                    warnings: p.warnings.clone(),
                })
                .collect();
            let doc = serde_json::json!({
                "command": "db-push",
                "ok": true,
                "dry_run": dry_run,
                "databases": reports,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else if !dry_run {
            for p in pushes {
                println!(
                    "pushed {} rows in {} tables into the remote {}: {}",
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

    fn push(protected: &[&str], confirm: Option<&str>, no_backup: bool) -> DbPush {
        DbPush {
            copy: CopyArgs {
                schema: SchemaMode::Migrations,
                allow_revision_mismatch: false,
                no_backup,
                dry_run: false,
                tables: vec![],
                exclude_tables: vec![],
                checksums: false,
                timeout: None,
                jobs: 1,
                show_progress: false,
            },
            mode: LoadMode::Replace,
            confirm_target: confirm.map(str::to_string),
            protected_hosts: protected.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn config(yes: bool) -> Config {
        Config {
            via: crate::config::Via::Docker,
            container: None,
            local: None,
            local_ai: None,
            remote: None,
            remote_ai: None,
            core_only: false,
            yes,
            json: false,
        }
    }

    #[test]
    fn protected_host_needs_yes_and_the_exact_target() {
        let url = DbUrl::parse("postgresql://u:pw@maglev.proxy.rlwy.net:1234/railway").unwrap();
        let cmd = push(&["maglev.proxy.rlwy.net"], None, false);
        let err = cmd.check_protected(&config(true), &url).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        assert!(
            err.to_string()
                .contains("--confirm-target maglev.proxy.rlwy.net/railway"),
            "{err}"
        );
        let wrong = push(
            &["maglev.proxy.rlwy.net"],
            Some("maglev.proxy.rlwy.net/other"),
            false,
        );
        assert!(wrong.check_protected(&config(true), &url).is_err());
        let right = push(
            &["maglev.proxy.rlwy.net"],
            Some("maglev.proxy.rlwy.net/railway"),
            false,
        );
        assert!(right.check_protected(&config(true), &url).is_ok());
        assert!(right.check_protected(&config(false), &url).is_err());
        let no_backup = push(
            &["maglev.proxy.rlwy.net"],
            Some("maglev.proxy.rlwy.net/railway"),
            true,
        );
        let err = no_backup.check_protected(&config(true), &url).unwrap_err();
        assert!(err.to_string().contains("--no-backup is refused"), "{err}");
        assert!(push(&["other.host"], None, true)
            .check_protected(&config(false), &url)
            .is_ok());
    }
}
