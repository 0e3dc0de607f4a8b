//! The app's two Alembic configs, run as the runbooks run them (`uv run alembic -c <config> ...`
//! in `backend/`), with the target URL in the child's environment, never in its arguments.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context, Result};
use tokio_postgres::Client;
use xshell::Shell;

use crate::config::{Database, DbUrl};
use crate::pg::PreparedCommand;

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
        cmd
    }

    /// The heads of the migration scripts (no database needed). More than one is a finding.
    pub fn heads(self, sh: &Shell, backend_dir: &Path) -> Result<Vec<String>> {
        let out = self
            .command(backend_dir, None, &["heads"])
            .read(sh)
            .with_context(|| format!("reading the heads of {}", self.ini()))?;
        Ok(parse_revisions(&out))
    }

    pub fn upgrade(self, sh: &Shell, backend_dir: &Path, url: &DbUrl, target: &str) -> Result<()> {
        self.command(backend_dir, Some(url), &["upgrade", target])
            .read(sh)
            .with_context(|| format!("`alembic -c {} upgrade {target}` on {url}", self.ini()))?;
        Ok(())
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
        self.stamp_command(backend_dir, url, revisions)
            .read(sh)
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
        let out = self
            .command(backend_dir, None, &["history", "--verbose"])
            .read(sh)
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
    fn parses_heads_output() {
        assert_eq!(parse_revisions("c0005_corr (head)\n"), ["c0005_corr"]);
        assert_eq!(
            parse_revisions("c2a_tags (head)\nc2b_market (head)\n"),
            ["c2a_tags", "c2b_market"]
        );
        assert!(parse_revisions("").is_empty());
    }
}
