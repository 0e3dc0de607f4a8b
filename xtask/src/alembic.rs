//! The app's two Alembic configs, run as the runbooks run them (`uv run alembic -c <config> ...`
//! in `backend/`), with the target URL in the child's environment, never in its arguments.

use std::path::Path;

use anyhow::{Context, Result};
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
