//! `cargo xtask doctor`: the preflight. One pass/fail line per check, each failure with a hint,
//! exit 1 when any check fails. It changes nothing.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{url_setting, Config, Database, DbUrl, Side, Via},
    ctx::Ctx,
    pg::{client, version::ToolVersion, PgTools, Tool},
    runtime::Runtime,
};

#[derive(Args, Debug)]
pub struct Doctor {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name.into(), Status::Pass, detail.into(), None);
    }
    fn fail(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(name.into(), Status::Fail, detail.into(), Some(hint.into()));
    }
    fn skip(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name.into(), Status::Skip, detail.into(), None);
    }
    fn push(&mut self, name: String, status: Status, detail: String, hint: Option<String>) {
        self.0.push(Check {
            name,
            status,
            detail,
            hint,
        });
    }
}

impl Doctor {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let sh = &ctx.sh;
        // Same URL for Core and AI is a check here, not a usage error.
        let config = ctx.unchecked_config()?;
        let timeout = ctx.timeout_or(Duration::from_secs(5));
        let mut checks = Checks::default();

        let tools = check_docker(sh, &config, &mut checks);
        let pg_dump = check_tools(sh, tools.as_ref(), &config, &mut checks);
        check_urls(&config, &mut checks);
        check_databases(
            &ctx.rt,
            &config,
            tools.as_ref(),
            pg_dump.as_ref(),
            timeout,
            &mut checks,
        )?;
        check_alembic(sh, &mut checks);

        let checks = checks.0;
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        let passed = checks.iter().filter(|c| c.status == Status::Pass).count();
        let skipped = checks.len() - failed - passed;
        if config.json {
            let report = serde_json::json!({ "ok": failed == 0, "checks": checks });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_human(&checks);
        }
        let summary = format!("doctor: {passed} ok, {failed} failing, {skipped} skipped");
        if failed > 0 {
            bail!("{summary}: fix the failing checks above");
        }
        if config.json {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
        Ok(())
    }
}

fn print_human(checks: &[Check]) {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in checks {
        let mark = match check.status {
            Status::Pass => "ok  ",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        println!("{mark}  {:width$}  {}", check.name, check.detail);
        if let Some(hint) = &check.hint {
            println!("      {:width$}  hint: {hint}", "");
        }
    }
}

fn check_docker(sh: &Shell, config: &Config, checks: &mut Checks) -> Option<PgTools> {
    if config.via == Via::Host {
        checks.skip("docker engine", "--via host: the tools run on the host");
        checks.skip("container", "--via host");
        return Some(PgTools::Host);
    }
    // Bounded by XTASK_DOCKER_TIMEOUT: the docker CLI waits for ever on a hung engine.
    match crate::pg::container::engine_version(sh) {
        Ok(version) => checks.pass("docker engine", format!("Docker {}", version.trim())),
        Err(e) => {
            checks.fail(
                "docker engine",
                format!("{e:#}"),
                "start Docker (Docker Desktop, or `sudo systemctl start docker`), or use --via host",
            );
            checks.skip("container", "no Docker engine");
            return None;
        }
    }
    match PgTools::resolve(sh, Via::Docker, config.container.as_deref()) {
        Ok(tools) => {
            checks.pass("container", format!("{} is running", tools.place()));
            Some(tools)
        }
        Err(e) => {
            checks.fail(
                "container",
                format!("{e:#}"),
                "cd backend && docker compose up -d (or pass --container NAME)",
            );
            None
        }
    }
}

/// Versions of pg_dump, pg_restore and psql where they run; returns pg_dump's.
fn check_tools(
    sh: &Shell,
    tools: Option<&PgTools>,
    config: &Config,
    checks: &mut Checks,
) -> Option<ToolVersion> {
    let Some(tools) = tools else {
        checks.skip("pg tools", "no container to run them in");
        return None;
    };
    let mut versions = Vec::new();
    for tool in [Tool::PgDump, Tool::PgRestore, Tool::Psql] {
        match tools.tool_version(sh, tool) {
            Ok(v) => versions.push((tool, v)),
            Err(e) => {
                let hint = match config.via {
                    Via::Host => "install the PostgreSQL client tools matching the server (postgresql-client-17), or use --via docker",
                    Via::Docker => "the container image lacks the PostgreSQL client tools: use pgvector/pgvector:pg17",
                };
                checks.fail("pg tools", format!("{e:#}"), hint);
                return None;
            }
        }
    }
    let shown: Vec<String> = versions
        .iter()
        .map(|(t, v)| format!("{} {}", t.program(), v.text))
        .collect();
    checks.pass(
        "pg tools",
        format!("{} ({})", shown.join(", "), tools.place()),
    );
    versions.into_iter().next().map(|(_, v)| v)
}

fn check_urls(config: &Config, checks: &mut Checks) {
    let mut all_set = true;
    for db in config.databases() {
        let (flag, env) = url_setting(Side::Local, db);
        if config.url(Side::Local, db).is_none() {
            all_set = false;
            checks.fail(
                env.to_string(),
                "not set",
                format!("copy .env.example to .env, or set {env}, or pass {flag}"),
            );
        }
    }
    if let (Some(core), Some(ai)) = (&config.local, &config.local_ai) {
        if !config.core_only && core.same_database(ai) {
            checks.fail(
                "local URLs",
                format!("DATABASE_URL and AI_DATABASE_URL both name {core}"),
                "point AI_DATABASE_URL at its own database (sigmasight_ai_db): one database \
                 would mix both Alembic histories in one alembic_version table",
            );
            return;
        }
    }
    if all_set {
        checks.pass(
            "local URLs",
            "DATABASE_URL and AI_DATABASE_URL are set and differ",
        );
    }
}

fn check_databases(
    rt: &Runtime,
    config: &Config,
    tools: Option<&PgTools>,
    pg_dump: Option<&ToolVersion>,
    timeout: Duration,
    checks: &mut Checks,
) -> Result<()> {
    let mut targets: Vec<(Side, Database, DbUrl)> = Vec::new();
    for side in [Side::Local, Side::Remote] {
        for db in config.databases() {
            match config.url(side, db) {
                Some(url) => targets.push((side, db, url.clone())),
                None if side == Side::Remote => {
                    let (_, env) = url_setting(side, db);
                    checks.skip(label(side, db), format!("{env} not set"));
                }
                None => {}
            }
        }
    }
    // All databases are asked at once: an unreachable remote costs one timeout, not one each.
    let probes: Vec<(Database, DbUrl)> = targets
        .iter()
        .map(|(_, db, url)| (*db, url.clone()))
        .collect();
    let results = rt.block_on(async move {
        let handles: Vec<_> = probes
            .into_iter()
            .map(|(db, url)| tokio::spawn(async move { probe(db, &url, timeout).await }))
            .collect();
        let mut results = Vec::with_capacity(handles.len());
        for handle in handles {
            results.push(
                handle
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("probe task failed: {e}"))),
            );
        }
        results
    });
    for ((side, db, url), result) in targets.iter().zip(results) {
        let name = label(*side, *db);
        match result {
            Ok(server) => {
                let compatible = match (tools, pg_dump) {
                    (Some(tools), Some(tool)) => tools.check_can_dump(tool, &server, url).err(),
                    _ => None,
                };
                match compatible {
                    None => checks.pass(name, format!("PostgreSQL {} at {url}", server.text)),
                    Some(e) => checks.fail(
                        name,
                        format!("{e:#}"),
                        "pg_dump must be at least the server's major version",
                    ),
                }
            }
            Err(e) => {
                let hint = match (side, client::connect_failure(&e)) {
                    (Side::Local, Some(client::ConnectFailure::MissingDatabase)) => {
                        "cargo xtask db-init (creates the local databases and the vector extension)"
                            .to_string()
                    }
                    (Side::Local, Some(client::ConnectFailure::Unreachable)) => {
                        "start the local database: cd backend && docker compose up -d".to_string()
                    }
                    (_, Some(client::ConnectFailure::Authentication)) => {
                        "check the user and password (percent-encode special characters)"
                            .to_string()
                    }
                    (Side::Remote, _) => format!(
                        "check {} and that the host is reachable from here",
                        url_setting(*side, *db).1
                    ),
                    _ => "see the error".to_string(),
                };
                checks.fail(name, format!("{e:#}"), hint);
            }
        }
    }
    Ok(())
}

/// Reaches one database: its server version, and for AI that pgvector is installed.
async fn probe(db: Database, url: &DbUrl, timeout: Duration) -> Result<ToolVersion> {
    let client = client::connect(url, timeout).await?;
    let version = client::server_version(&client).await?;
    if db == Database::Ai {
        let row = client
            .query_opt(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                &[],
            )
            .await?;
        if row.is_none() {
            bail!(
                "PostgreSQL {} at {url}, but the vector extension is not installed in it \
                 (run `cargo xtask db-init` locally, or the AI migrations)",
                version.text
            );
        }
    }
    Ok(version)
}

fn label(side: Side, db: Database) -> String {
    format!("{} {}", side.label(), db.label())
}

fn check_alembic(sh: &Shell, checks: &mut Checks) {
    let backend = backend_dir();
    let uv = cmd!(sh, "uv --version").quiet().ignore_stderr().read();
    match uv {
        Ok(v) => checks.pass("uv", v.trim().to_string()),
        Err(_) => {
            checks.fail(
                "uv",
                "uv is not on PATH",
                "install it: `python3 -m pip install uv` (or see https://docs.astral.sh/uv/)",
            );
            return;
        }
    }
    for config in AlembicConfig::all() {
        let name = format!("alembic {}", config.ini());
        match config.heads(sh, &backend) {
            Ok(heads) if heads.len() == 1 => checks.pass(name, format!("single head {}", heads[0])),
            Ok(heads) if heads.is_empty() => checks.fail(
                name,
                "no head: the migrations folder has no revisions",
                format!("check script_location in backend/{}", config.ini()),
            ),
            Ok(heads) => checks.fail(
                name,
                format!("{} heads: {}", heads.len(), heads.join(", ")),
                format!(
                    "cd backend && uv run alembic -c {} merge heads -m \"merge heads\"",
                    config.ini()
                ),
            ),
            Err(e) => checks.fail(
                name,
                format!("{e:#}"),
                format!("cd backend && uv run alembic -c {} heads", config.ini()),
            ),
        }
    }
}
