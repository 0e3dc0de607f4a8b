//! The app's two Alembic configs, run as the runbooks run them (`uv run alembic -c <config> ...`
//! in `backend/`), with the target URL in the child's environment, never in its arguments.
//!
//! Two failures get messages of their own: no `uv` on PATH (how to install it), and a migration
//! that fails during `upgrade` (which migration, its error, and the revision the database is at
//! afterwards: on PostgreSQL Alembic runs the whole upgrade in one transaction, rolled back on
//! failure).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;
use xshell::Shell;

use crate::config::{Database, DbUrl};
use crate::pg::{client, describe_status, tail_block, PreparedCommand};

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
    let error = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string);
    (step, error)
}

/// The revisions in a database's alembic_version, read on a thread of its own (callers may or
/// may not be inside a runtime); `None` when they cannot be read.
fn revisions_now(url: &DbUrl) -> Option<Option<Vec<String>>> {
    std::thread::scope(|s| {
        s.spawn(|| {
            client::block_on(async {
                let conn = client::connect(url, client::default_connect_timeout()).await?;
                recorded_revisions(&conn, url).await
            })
            .ok()?
            .ok()
        })
        .join()
        .ok()
        .flatten()
    })
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
    /// revision the database is at afterwards.
    pub fn upgrade(self, sh: &Shell, backend_dir: &Path, url: &DbUrl, target: &str) -> Result<()> {
        let what = format!("`alembic -c {} upgrade {target}` on {url}", self.ini());
        require_uv().with_context(|| what.clone())?;
        let cmd = self.command(backend_dir, Some(url), &["upgrade", target]);
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
        let now = match revisions_now(url) {
            Some(Some(revs)) if !revs.is_empty() => format!(
                "; {rolled_back}the database is at revision {} now",
                revs.join(", ")
            ),
            Some(_) => format!("; {rolled_back}the database has no Alembic revision now"),
            None => String::new(),
        };
        let fix = if stopped {
            ". Run the command again to finish".to_string()
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

/// The revisions of one config and their parents, as `alembic history --verbose` prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionGraph {
    /// Every revision with the revisions it comes after (`down_revision` and `depends_on`).
    pub parents: BTreeMap<String, Vec<String>>,
    /// The revisions marked `(head)`.
    pub heads: Vec<String>,
}

impl RevisionGraph {
    /// Parses the verbose history: each entry starts with `Rev: <id> [(head)] ...`, followed by
    /// `Parent: <ids>|<base>` or `Merges: <ids>`, maybe `Also depends on: <ids>`; the script's
    /// docstring is indented, so it can never be read as one of these lines.
    pub fn parse(output: &str) -> RevisionGraph {
        let mut graph = RevisionGraph::default();
        let mut current: Option<String> = None;
        let ids = |list: &str| -> Vec<String> {
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != "<base>")
                .map(str::to_string)
                .collect()
        };
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("Rev: ") {
                let mut words = rest.split_whitespace();
                let Some(id) = words.next() else { continue };
                if words.any(|w| w == "(head)") {
                    graph.heads.push(id.to_string());
                }
                graph.parents.entry(id.to_string()).or_default();
                current = Some(id.to_string());
            } else if let Some(list) = line
                .strip_prefix("Parent: ")
                .or_else(|| line.strip_prefix("Merges: "))
                .or_else(|| line.strip_prefix("Also depends on: "))
            {
                if let Some(id) = &current {
                    graph
                        .parents
                        .entry(id.clone())
                        .or_default()
                        .extend(ids(list));
                }
            }
        }
        graph
    }

    pub fn contains(&self, revision: &str) -> bool {
        self.parents.contains_key(revision)
    }

    /// How many migrations `upgrade heads` would run on a database at `current` (empty: a
    /// database that was never stamped): every revision that is not `current` or one of its
    /// ancestors. `Err` lists the revisions of `current` that the scripts do not know.
    pub fn pending(&self, current: &[String]) -> Result<usize, Vec<String>> {
        let unknown: Vec<String> = current
            .iter()
            .filter(|r| !self.contains(r))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut applied: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = current.iter().map(String::as_str).collect();
        while let Some(rev) = stack.pop() {
            if applied.insert(rev) {
                if let Some(parents) = self.parents.get(rev) {
                    stack.extend(parents.iter().map(String::as_str));
                }
            }
        }
        Ok(self
            .parents
            .keys()
            .filter(|r| !applied.contains(r.as_str()))
            .count())
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

/// Revision ids from `alembic heads` / `alembic current` output: `abc123 (head)` per line.
pub fn parse_revisions(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|tok| tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_goes_to_the_environment_not_the_arguments() {
        let url = DbUrl::parse("postgresql+asyncpg://u:s3cret@h:1/sigmasight_ai_db").unwrap();
        let cmd =
            AlembicConfig::Ai.command(Path::new("/repo/backend"), Some(&url), &["upgrade", "head"]);
        assert_eq!(cmd.program, "uv");
        assert_eq!(
            cmd.args,
            [
                "run",
                "--locked",
                "--directory",
                "/repo/backend",
                "alembic",
                "-c",
                "alembic_ai.ini",
                "upgrade",
                "head"
            ]
        );
        assert_eq!(cmd.env[0].0, "AI_DATABASE_URL");
        assert_eq!(cmd.env[0].1, "postgresql://u:s3cret@h:1/sigmasight_ai_db");
        assert!(!cmd.to_string().contains("s3cret"));
    }

    const HISTORY: &str = "\
Rev: c0005_correlations (head)
Parent: c0004_risk_analytics
Path: /b/migrations_core/versions/c0005_correlations.py

    correlation calculations
    Revises: c0004_risk_analytics

Rev: c0004_risk_analytics
Parent: c0003_merge
Path: /b/migrations_core/versions/c0004_risk_analytics.py

    risk analytics
    Parent: not a real line, it is indented

Rev: c0003_merge (mergepoint)
Merges: c0002a_tags, c0002b_market_data
Path: /b/migrations_core/versions/c0003_merge.py

Rev: c0002a_tags
Parent: c0001_base
Path: /b/migrations_core/versions/c0002a_tags.py

Rev: c0002b_market_data
Parent: c0001_base
Path: /b/migrations_core/versions/c0002b_market_data.py

Rev: c0001_base (branchpoint)
Parent: <base>
Branches into: c0002a_tags, c0002b_market_data
Path: /b/migrations_core/versions/c0001_base.py
";

    #[test]
    fn parses_the_verbose_history_with_a_merge() {
        let graph = RevisionGraph::parse(HISTORY);
        assert_eq!(graph.heads, ["c0005_correlations"]);
        assert_eq!(graph.parents.len(), 6);
        assert_eq!(
            graph.parents["c0003_merge"],
            ["c0002a_tags", "c0002b_market_data"]
        );
        assert!(graph.parents["c0001_base"].is_empty());
        assert_eq!(graph.parents["c0004_risk_analytics"], ["c0003_merge"]);
    }

    #[test]
    fn counts_pending_migrations_across_branches() {
        let graph = RevisionGraph::parse(HISTORY);
        let revs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(graph.pending(&revs(&["c0005_correlations"])), Ok(0));
        assert_eq!(graph.pending(&revs(&["c0003_merge"])), Ok(2));
        // One branch applied: the other branch, the merge and what follows are pending.
        assert_eq!(graph.pending(&revs(&["c0002a_tags"])), Ok(4));
        assert_eq!(graph.pending(&[]), Ok(6));
        assert_eq!(
            graph.pending(&revs(&["i6j7k8l9m0n1", "c0001_base"])),
            Err(revs(&["i6j7k8l9m0n1"]))
        );
    }

    #[test]
    fn stamp_purges_and_keeps_the_url_out_of_the_arguments() {
        let url = DbUrl::parse("postgresql://u:s3cret@h:1/sigmasight_db").unwrap();
        let cmd = AlembicConfig::Core.stamp_command(Path::new("/b"), &url, &["c2a", "c2b"]);
        assert_eq!(
            cmd.args[cmd.args.len() - 4..],
            ["stamp", "--purge", "c2a", "c2b"]
        );
        assert_eq!(cmd.env[0].0, "DATABASE_URL");
        assert!(!cmd.args.iter().any(|a| a.contains("s3cret")));
        assert_eq!(
            AlembicConfig::Ai.merge_command(&["a1".into(), "a2".into()]),
            "uv run alembic -c alembic_ai.ini merge -m \"merge heads\" a1 a2"
        );
    }

    #[test]
    fn a_failed_upgrade_names_the_migration_and_its_error() {
        let stderr = "\
INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
INFO  [alembic.runtime.migration] Will assume transactional DDL.
INFO  [alembic.runtime.migration] Running upgrade c0004_risk -> c0005_corr, correlations
INFO  [alembic.runtime.migration] Running upgrade c0005_corr -> c0006_boom, boom, at last
Traceback (most recent call last):
  File \"/b/migrations_core/versions/c0006_boom.py\", line 12, in upgrade
    raise RuntimeError(\"boom\")
RuntimeError: boom

";
        let (step, error) = failed_migration(stderr);
        assert_eq!(step.as_deref(), Some("c0005_corr -> c0006_boom"));
        assert_eq!(error.as_deref(), Some("RuntimeError: boom"));
        let (step, error) = failed_migration("FAILED: Can't locate revision identified by 'x'\n");
        assert_eq!(step, None);
        assert_eq!(
            error.as_deref(),
            Some("FAILED: Can't locate revision identified by 'x'")
        );
    }

    #[test]
    fn programs_are_found_on_path_only() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("xtask-no-such-program").is_none());
    }

    #[test]
    fn parses_heads_output() {
        assert_eq!(parse_revisions("c0005_corr (head)\n"), ["c0005_corr"]);
        assert_eq!(
            parse_revisions("c2a_tags (head)\nc2b_market (head)\n"),
            ["c2a_tags", "c2b_market"]
        );
        assert!(parse_revisions("").is_empty());
    }
}
