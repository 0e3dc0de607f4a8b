//! Settings: the shared flags of the command contract, the environment and `.env`, resolved into
//! one `Config` (a flag beats the environment, which beats `.env`). `DbUrl` (db_url.rs) holds the
//! URLs.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::exit::UsageError;

mod db_url;
pub mod timeouts;
pub use db_url::DbUrl;

/// Where pg_dump, psql and pg_restore run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Inside the local PostgreSQL container, through `docker exec` (the tools match the server).
    Docker,
    /// The tools on the host's PATH.
    Host,
}

/// The flags every database command shares (the contract in the design).
#[derive(Args, Clone, Debug)]
pub struct DbArgs {
    /// dotenv file to read settings from [default: .env at the repo root; missing is fine]
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,
    /// Where pg_dump/psql/pg_restore run
    #[arg(
        long,
        value_enum,
        env = "XTASK_PG_VIA",
        default_value = "docker",
        global = true
    )]
    pub via: Via,
    /// Local PostgreSQL container [default: the Compose container of project `backend`, service
    /// `postgres`, else backend-postgres-1]
    #[arg(long, env = "POSTGRES_CONTAINER", value_name = "NAME", global = true)]
    pub container: Option<String>,
    /// Local Core database URL
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub local_url: Option<String>,
    /// Local AI database URL
    #[arg(
        long,
        env = "AI_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub local_ai_url: Option<String>,
    /// Remote (Railway) Core database URL
    #[arg(
        long,
        env = "RAILWAY_DB_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub remote_url: Option<String>,
    /// Remote (Railway) AI database URL
    #[arg(
        long,
        env = "RAILWAY_AI_DB_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub remote_ai_url: Option<String>,
    /// Leave the AI database out
    #[arg(long, global = true)]
    pub core_only: bool,
    /// Confirm destructive steps without a prompt
    #[arg(long, global = true)]
    pub yes: bool,
    /// Print one JSON report on stdout; human text goes to stderr
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for each server before calling it unreachable [default:
    /// XTASK_CONNECT_TIMEOUT, else 10; doctor: 5]
    #[arg(long, value_name = "SECONDS", global = true)]
    pub timeout: Option<u64>,
}

/// Which of the app's two databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    Core,
    Ai,
}

impl Database {
    pub fn label(self) -> &'static str {
        match self {
            Database::Core => "core",
            Database::Ai => "ai",
        }
    }
}

/// Local (the container) or remote (Railway).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Local,
    Remote,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "remote",
        }
    }
}

/// The resolved settings of one run.
#[derive(Clone, Debug)]
pub struct Config {
    pub via: Via,
    pub container: Option<String>,
    pub local: Option<DbUrl>,
    pub local_ai: Option<DbUrl>,
    pub remote: Option<DbUrl>,
    pub remote_ai: Option<DbUrl>,
    pub core_only: bool,
    pub yes: bool,
    pub json: bool,
}

impl Config {
    /// The settings, checked: the Core and AI URLs of a side must differ.
    pub fn from_args(args: &DbArgs) -> Result<Config> {
        let config = Config::resolve(args)?;
        config.check_core_and_ai_differ()?;
        Ok(config)
    }

    /// The settings, with each URL parsed but not checked against the others (`doctor` reports
    /// that as a check of its own).
    pub fn resolve(args: &DbArgs) -> Result<Config> {
        let parse = |flag: &str, env: &str, value: &Option<String>| -> Result<Option<DbUrl>> {
            value
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    DbUrl::parse(v)
                        .map_err(|e| UsageError::new(format!("{flag} / {env}: {e:#}")).into())
                })
                .transpose()
        };
        let config = Config {
            via: args.via,
            container: args.container.clone().filter(|c| !c.is_empty()),
            local: parse("--local-url", "DATABASE_URL", &args.local_url)?,
            local_ai: parse("--local-ai-url", "AI_DATABASE_URL", &args.local_ai_url)?,
            remote: parse("--remote-url", "RAILWAY_DB_URL", &args.remote_url)?,
            remote_ai: parse("--remote-ai-url", "RAILWAY_AI_DB_URL", &args.remote_ai_url)?,
            core_only: args.core_only,
            yes: args.yes,
            json: args.json,
        };
        Ok(config)
    }

    /// The same URL for Core and AI would put both Alembic histories in one `alembic_version`.
    fn check_core_and_ai_differ(&self) -> Result<()> {
        for (side, core, ai) in [
            ("local", &self.local, &self.local_ai),
            ("remote", &self.remote, &self.remote_ai),
        ] {
            if let (Some(core), Some(ai)) = (core, ai) {
                if !self.core_only && core.same_database(ai) {
                    return Err(UsageError::new(format!(
                        "the {side} Core and AI URLs name the same database ({core}); both \
                         Alembic histories would share one alembic_version table. Point the AI \
                         URL at its own database (e.g. sigmasight_ai_db), or pass --core-only"
                    ))
                    .into());
                }
            }
        }
        Ok(())
    }

    /// The databases this run works on, in order: Core, then AI unless `--core-only`.
    pub fn databases(&self) -> Vec<Database> {
        if self.core_only {
            vec![Database::Core]
        } else {
            vec![Database::Core, Database::Ai]
        }
    }

    pub fn url(&self, side: Side, db: Database) -> Option<&DbUrl> {
        match (side, db) {
            (Side::Local, Database::Core) => self.local.as_ref(),
            (Side::Local, Database::Ai) => self.local_ai.as_ref(),
            (Side::Remote, Database::Core) => self.remote.as_ref(),
            (Side::Remote, Database::Ai) => self.remote_ai.as_ref(),
        }
    }

    /// The URL, or a usage error naming the flag and variable that would set it.
    pub fn require_url(&self, side: Side, db: Database) -> Result<&DbUrl> {
        self.url(side, db).ok_or_else(|| {
            let (flag, env) = url_setting(side, db);
            UsageError::new(format!(
                "no {} {} database URL: pass {flag} or set {env} (in the environment or .env)",
                side.label(),
                match db {
                    Database::Core => "Core",
                    Database::Ai => "AI",
                },
            ))
            .into()
        })
    }
}

/// The flag and environment variable that set one database's URL.
pub fn url_setting(side: Side, db: Database) -> (&'static str, &'static str) {
    match (side, db) {
        (Side::Local, Database::Core) => ("--local-url", "DATABASE_URL"),
        (Side::Local, Database::Ai) => ("--local-ai-url", "AI_DATABASE_URL"),
        (Side::Remote, Database::Core) => ("--remote-url", "RAILWAY_DB_URL"),
        (Side::Remote, Database::Ai) => ("--remote-ai-url", "RAILWAY_AI_DB_URL"),
    }
}

/// Loads the dotenv file into the process environment before clap reads it, so that a flag beats
/// the environment, which beats `.env` (dotenvy never overrides a variable that is already set).
/// `--env-file` has to be found before clap parses, because clap's `env` reads happen during the
/// parse.
pub fn load_env_file(args: &[OsString], repo_root: &Path) -> Result<Option<PathBuf>> {
    let explicit = env_file_flag(args);
    let path = match &explicit {
        Some(p) => p.clone(),
        None => repo_root.join(".env"),
    };
    if !path.exists() {
        if explicit.is_some() {
            return Err(
                UsageError::new(format!("--env-file {}: no such file", path.display())).into(),
            );
        }
        return Ok(None);
    }
    dotenvy::from_path(&path).map_err(|e| match e {
        dotenvy::Error::LineParse(line, _) => {
            let number = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.lines().position(|l| l.trim() == line.trim()))
                .map(|i| format!(" {}", i + 1))
                .unwrap_or_default();
            UsageError::new(format!(
                "{}: malformed line{number}: `{}` (rest hidden). Each line must be KEY=VALUE; \
                 quote values that contain spaces or #",
                path.display(),
                env_line_key(&line),
            ))
        }
        other => UsageError::new(format!("{}: cannot read: {other}", path.display())),
    })?;
    Ok(Some(path))
}

/// A malformed .env line may hold a password: only its leading name is shown.
fn env_line_key(line: &str) -> &str {
    let line = line.trim_start();
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    &line[..end]
}

fn env_file_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if arg == "--env-file" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--env-file=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_flag_is_found_in_both_spellings() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            env_file_flag(&args(&["xtask", "doctor", "--env-file", "a.env"])),
            Some(PathBuf::from("a.env"))
        );
        assert_eq!(
            env_file_flag(&args(&["xtask", "--env-file=b.env", "doctor"])),
            Some(PathBuf::from("b.env"))
        );
        assert_eq!(env_file_flag(&args(&["xtask", "doctor"])), None);
    }

    #[test]
    fn malformed_env_line_shows_only_its_name() {
        assert_eq!(env_line_key("DATABASE_URL = post gres"), "DATABASE_URL");
        assert_eq!(
            env_line_key("RAILWAY_DB_URL postgresql://u:sekrit@h/d"),
            "RAILWAY_DB_URL"
        );
    }

    #[test]
    fn same_url_for_core_and_ai_is_refused() {
        let args = DbArgs {
            env_file: None,
            via: Via::Docker,
            container: None,
            local_url: Some("postgresql://u:p@localhost:5432/sigmasight_db".into()),
            local_ai_url: Some("postgresql+asyncpg://u:p@localhost:5432/sigmasight_db".into()),
            remote_url: None,
            remote_ai_url: None,
            core_only: false,
            yes: false,
            json: false,
            timeout: None,
        };
        let err = format!("{:#}", Config::from_args(&args).unwrap_err());
        assert!(err.contains("same database"), "{err}");
        assert!(err.contains("--core-only"), "{err}");
        let core_only = DbArgs {
            core_only: true,
            ..args
        };
        assert!(Config::from_args(&core_only).is_ok());
    }
}
