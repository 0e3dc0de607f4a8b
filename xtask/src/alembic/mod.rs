//! The app's two Alembic configs, run as the runbooks run them (`uv run alembic -c <config> ...`
//! in `backend/`), with the target URL in the child's environment, never in its arguments.
//!
//! Two failures get messages of their own: no `uv` on PATH (how to install it), and a migration
//! that fails during `upgrade` (which migration, its error, and the revision the database is at
//! afterwards: on PostgreSQL Alembic runs the whole upgrade in one transaction, rolled back on
//! failure).
//!
//! An upgrade's lock waits are bounded like a load's (`XTASK_LOCK_TIMEOUT`, through libpq's
//! `PGOPTIONS`): a migration's `ALTER TABLE` behind an app session idle in a transaction would
//! otherwise wait for ever, with every app query queued behind it. When it gives up, the
//! sessions on the database are named.

mod graph;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;
use xshell::Shell;

use crate::config::{
    timeouts::{self, LOCK_TIMEOUT},
    Database, DbUrl,
};
use crate::pg::{client, describe_status, sessions, tail_block, PreparedCommand};
use crate::runtime::Runtime;

pub use graph::{parse_revisions, RevisionGraph};

/// Where `program` is found on PATH, as the OS would find it; `None` when it is not there.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(candidate)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            }
            #[cfg(not(unix))]
            {
                candidate.is_file()
            }
        })
}

/// Refuses, with how to install it, when `uv` is not on PATH: every Alembic call goes through it.
pub fn require_uv() -> Result<()> {
    if find_on_path("uv").is_some() {
        return Ok(());
    }
    bail!(
        "uv is not installed or not on PATH: Alembic runs as `uv run alembic` in backend/. \
         Install uv (`pip install uv`, or `curl -LsSf https://astral.sh/uv/install.sh | sh`; \
         scripts/onboard.sh installs it), make sure `uv --version` works in this shell, and run \
         again"
    )
}

/// Whether a child ended by a signal (or, through `uv`, with 128 + the signal).
fn killed(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal().is_some() {
            return true;
        }
    }
    matches!(status.code(), Some(130 | 137 | 143))
}

/// What a failed `alembic upgrade` printed: the last migration it started (`from -> to`) and the
/// last line of the error (`RuntimeError: ...`).
fn failed_migration(stderr: &str) -> (Option<String>, Option<String>) {
    let step = stderr.lines().rev().find_map(|line| {
        let rest = &line[line.find("Running upgrade ")? + "Running upgrade ".len()..];
        // `c0005_x -> c0006_y, message`: the message is the script's docstring, left out.
        Some(rest.split(',').next().unwrap_or(rest).trim().to_string())
    });
    let lines = || {
        stderr
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty())
    };
    // SQLAlchemy ends with the statement and a "(Background on this error at: ...)" link: the
    // exception's own line, above them, is the error.
    let error = lines()
        .find(|l| is_exception_line(l))
        .or_else(|| lines().next())
        .map(str::to_string);
    (step, error)
}

/// `RuntimeError: boom`, `sqlalchemy.exc.OperationalError: (...) ...`, `FAILED: ...`.
fn is_exception_line(line: &str) -> bool {
    let Some((name, _)) = line.split_once(": ") else {
        return false;
    };
    let dotted = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    dotted && (name == "FAILED" || name.ends_with("Error") || name.ends_with("Exception"))
}

/// The migration gave up waiting for a lock (SQLSTATE 55P03: psycopg's `LockNotAvailable`, the
/// server's "canceling statement due to lock timeout").
fn waited_for_lock(stderr: &str) -> bool {
    stderr.contains("LockNotAvailable") || stderr.contains("due to lock timeout")
}

/// `PGOPTIONS` for a child whose lock waits are bounded by `limit` (`None`: no limit), keeping
/// what the user's own `PGOPTIONS` sets (a later `-c` wins, so ours goes last).
fn pgoptions_with_lock_timeout(
    existing: Option<&str>,
    limit: Option<std::time::Duration>,
) -> String {
    let ours = format!("-c lock_timeout={}", timeouts::millis(limit));
    match existing.map(str::trim).filter(|e| !e.is_empty()) {
        Some(existing) => format!("{existing} {ours}"),
        None => ours,
    }
}

/// The other sessions on `url`'s database, with what they are doing and since when; `None` when
/// they cannot be read.
fn sessions_now(rt: &Runtime, url: &DbUrl) -> Option<String> {
    rt.block_on(async {
        let conn = client::connect(url, client::default_connect_timeout()).await?;
        sessions::other_sessions(&conn, url.dbname()).await
    })
    .ok()
    .map(|s| {
        if s.is_empty() {
            "none now (the session that held it has ended)".to_string()
        } else {
            sessions::describe_with_since(&s)
        }
    })
}

/// The revisions in a database's alembic_version; `None` when they cannot be read.
fn revisions_now(rt: &Runtime, url: &DbUrl) -> Option<Option<Vec<String>>> {
    rt.block_on(async {
        let conn = client::connect(url, client::default_connect_timeout()).await?;
        recorded_revisions(&conn, url).await
    })
    .ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlembicConfig {
    Core,
    Ai,
}

impl AlembicConfig {
    pub fn of(db: Database) -> AlembicConfig {
        match db {
            Database::Core => AlembicConfig::Core,
            Database::Ai => AlembicConfig::Ai,
        }
    }

    pub fn all() -> [AlembicConfig; 2] {
        [AlembicConfig::Core, AlembicConfig::Ai]
    }

    pub fn ini(self) -> &'static str {
        match self {
            AlembicConfig::Core => "alembic.ini",
            AlembicConfig::Ai => "alembic_ai.ini",
        }
    }

    /// The variable that the config's env.py reads its URL from.
    pub fn url_var(self) -> &'static str {
        match self {
            AlembicConfig::Core => "DATABASE_URL",
            AlembicConfig::Ai => "AI_DATABASE_URL",
        }
    }

    /// `uv run alembic -c <ini> <args>` in `backend_dir`, with the URL (if any) in the environment.
    pub fn command(
        self,
        backend_dir: &Path,
        url: Option<&DbUrl>,
        args: &[&str],
    ) -> PreparedCommand {
        let mut cmd = PreparedCommand::new("uv")
            .args(["run", "--locked", "--directory"])
            .arg(backend_dir.display().to_string())
            .args(["alembic", "-c", self.ini()])
            .args(args.iter().copied());
        if let Some(url) = url {
            cmd = cmd.secret_env(self.url_var(), &url.to_secret_uri());
        }
        // Its sessions carry the xtask's name: one left running by a killed Alembic can be found
        // (pg_stat_activity) and ended.
        cmd.secret_env(
            "PGAPPNAME",
            &format!("xtask alembic (pid {})", std::process::id()),
        )
    }

    /// The heads of the migration scripts (no database needed). More than one is a finding.
    pub fn heads(self, sh: &Shell, backend_dir: &Path) -> Result<Vec<String>> {
        let out = require_uv()
            .and_then(|()| self.command(backend_dir, None, &["heads"]).read(sh))
            .with_context(|| format!("reading the heads of {}", self.ini()))?;
        Ok(parse_revisions(&out))
    }

    /// `alembic upgrade <target>`. A failure names the migration that failed, its error, and the
    /// revision the database is at afterwards, read on the command's runtime `rt` (the caller must
    /// not be one of its tasks).
    pub fn upgrade(
        self,
        rt: &Runtime,
        sh: &Shell,
        backend_dir: &Path,
        url: &DbUrl,
        target: &str,
    ) -> Result<()> {
        let what = format!("`alembic -c {} upgrade {target}` on {url}", self.ini());
        require_uv().with_context(|| what.clone())?;
        let lock_limit = LOCK_TIMEOUT.get().with_context(|| what.clone())?;
        let pgoptions = std::env::var("PGOPTIONS").ok();
        let cmd = self
            .command(backend_dir, Some(url), &["upgrade", target])
            .secret_env(
                "PGOPTIONS",
                &pgoptions_with_lock_timeout(pgoptions.as_deref(), lock_limit),
            );
        let output = cmd
            .to_xshell(sh)
            .ignore_status()
            .output()
            .with_context(|| format!("cannot start `{cmd}`"))
            .with_context(|| what.clone())?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (step, error) = failed_migration(&stderr);
        // Stopped from outside (Ctrl-C, a kill): not the migration's fault, whatever it printed.
        let stopped = crate::interrupt::interrupted() || killed(output.status);
        let failed = match (&step, &error) {
            _ if stopped => format!(
                "was stopped ({}){}",
                describe_status(output.status),
                step.as_deref()
                    .map(|s| format!(" during the migration {s}"))
                    .unwrap_or_default()
            ),
            (Some(step), Some(error)) => format!("failed in the migration {step}: {error}"),
            (None, Some(error)) => format!("failed before any migration ran: {error}"),
            _ => "failed".to_string(),
        };
        let rolled_back = if step.is_some() {
            "the upgrade's transaction was rolled back: "
        } else {
            ""
        };
        let now = match revisions_now(rt, url) {
            Some(Some(revs)) if !revs.is_empty() => format!(
                "; {rolled_back}the database is at revision {} now",
                revs.join(", ")
            ),
            Some(_) => format!("; {rolled_back}the database has no Alembic revision now"),
            None => String::new(),
        };
        let fix = if stopped {
            ". Run the command again to finish".to_string()
        } else if waited_for_lock(&stderr) {
            format!(
                ". It waited longer than {} for a lock that another session holds; sessions on \
                 {}: {}. End the one that holds it (`SELECT pg_terminate_backend(pid)`), or ask \
                 its owner to commit or roll back, or raise XTASK_LOCK_TIMEOUT, then run again",
                LOCK_TIMEOUT.shown(),
                url.dbname(),
                sessions_now(rt, url).unwrap_or_else(|| "could not be read".to_string())
            )
        } else if step.is_some() {
            format!(
                ". Fix that migration (the scripts of {} in {}), then run again",
                self.ini(),
                backend_dir.display()
            )
        } else {
            String::new()
        };
        bail!(
            "{what} {failed}{now}{fix} (`{cmd}`: {}){}",
            describe_status(output.status),
            tail_block(&stderr)
        )
    }

    /// `alembic stamp --purge <revisions>`: empties `alembic_version` and records `revisions` in
    /// it, without running any migration. `--purge` makes a stale revision that the scripts do not
    /// know (a dump restored from another checkout) no obstacle: the caller has checked that the
    /// schema really is at `revisions`.
    pub fn stamp(
        self,
        sh: &Shell,
        backend_dir: &Path,
        url: &DbUrl,
        revisions: &[&str],
    ) -> Result<()> {
        require_uv()
            .and_then(|()| self.stamp_command(backend_dir, url, revisions).read(sh))
            .with_context(|| {
                format!(
                    "`alembic -c {} stamp --purge {}` on {url}",
                    self.ini(),
                    revisions.join(" ")
                )
            })?;
        Ok(())
    }

    pub fn stamp_command(
        self,
        backend_dir: &Path,
        url: &DbUrl,
        revisions: &[&str],
    ) -> PreparedCommand {
        let mut args = vec!["stamp", "--purge"];
        args.extend_from_slice(revisions);
        self.command(backend_dir, Some(url), &args)
    }

    /// The revision graph of the migration scripts (`alembic history --verbose`; no database
    /// needed). Loading it imports every script, so a script that does not load is an error here.
    pub fn history(self, sh: &Shell, backend_dir: &Path) -> Result<RevisionGraph> {
        let out = require_uv()
            .and_then(|()| {
                self.command(backend_dir, None, &["history", "--verbose"])
                    .read(sh)
            })
            .with_context(|| format!("reading the history of {}", self.ini()))?;
        Ok(RevisionGraph::parse(&out))
    }

    /// The command (run in `backend/`) that creates the merge revision joining `heads`.
    pub fn merge_command(self, heads: &[String]) -> String {
        format!(
            "uv run alembic -c {} merge -m \"merge heads\" {}",
            self.ini(),
            heads.join(" ")
        )
    }
}

/// The revisions recorded in a database's version table, read the way Alembic finds it
/// (`alembic_version` on the connection's search path); `None` when the table does not exist.
/// An empty list is a table with no row (a database stamped at `base`).
pub async fn recorded_revisions(client: &Client, url: &DbUrl) -> Result<Option<Vec<String>>> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('alembic_version') IS NOT NULL",
            &[],
        )
        .await
        .with_context(|| format!("looking for alembic_version in {url}"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version_num::text FROM alembic_version WHERE version_num IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .with_context(|| format!("reading alembic_version in {url}"))?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

#[cfg(test)]
mod tests;
