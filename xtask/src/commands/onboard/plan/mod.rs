//! What onboarding decides, as plain functions over plain data, so that each decision is tested
//! without a server: which settings apply, where the data comes from (Railway or the local
//! sandbox), whether the sandbox is seeded, whether and how the local databases are pulled, and
//! the final summary.

use std::path::Path;

use anyhow::{bail, Result};

use crate::{
    config::{url_setting, Database, DbUrl, Side},
    exit::UsageError,
    verify::report::{DatabaseOutcome, Report},
};

/// The sandbox "remote" on the local server, the source when no Railway URL is set.
pub const SANDBOX_DB: &str = "sandbox_remote_db";
pub const SANDBOX_AI_DB: &str = "sandbox_remote_ai_db";
/// The masking key of a pull from the sandbox when `XTASK_MASK_KEY` is not set. It is no secret:
/// the sandbox holds the seed's made-up rows, never production's; a pull from Railway needs the
/// team's own key.
pub const SANDBOX_MASK_KEY: &str = "onboarding-sandbox-seed-data-only";
/// The image of backend/docker-compose.yml (and of the tests).
pub const IMAGE: &str = "pgvector/pgvector:pg17";

/// The four URL settings as text, before parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub local: Option<String>,
    pub local_ai: Option<String>,
    pub remote: Option<String>,
    pub remote_ai: Option<String>,
}

/// A setting as the other commands would see it. `given` is what clap resolved (a flag, else the
/// environment, else the .env that `main` loaded before parsing); `file` is the onboarding's own
/// .env, read again because this run may have just created it, after `main` found none. An empty
/// value counts as unset, as in the shell script this replaces.
pub fn setting(given: Option<&str>, file: &[(String, String)], key: &str) -> Option<String> {
    let given = given.map(str::trim).filter(|v| !v.is_empty());
    let from_file = || {
        file.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    given.or_else(from_file).map(str::to_string)
}

/// The KEY=value pairs of a dotenv file, in file order (the last one of a key wins). Errors name
/// the file and never the values: a line may hold a password.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| {
        UsageError::new(format!(
            "{}: cannot read: {}",
            path.display(),
            error_kind(&e)
        ))
    })?;
    let mut pairs = Vec::new();
    for item in iter {
        let pair = item.map_err(|e| {
            UsageError::new(format!(
                "{}: cannot read: {} (each line must be KEY=VALUE)",
                path.display(),
                error_kind(&e)
            ))
        })?;
        pairs.push(pair);
    }
    Ok(pairs)
}

/// dotenvy's parse errors quote the line, which may hold a password: only the kind is kept.
fn error_kind(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("malformed line (at byte {index})"),
        dotenvy::Error::Io(io) => io.to_string(),
        dotenvy::Error::EnvVar(_) => "invalid value".to_string(),
        _ => "invalid file".to_string(),
    }
}

/// Where the local databases are filled from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// RAILWAY_DB_URL and RAILWAY_AI_DB_URL.
    Railway,
    /// `sandbox_remote_db` and `sandbox_remote_ai_db` next to the local databases, seeded here.
    Sandbox,
}

/// The resolved URLs of one onboarding run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub local: DbUrl,
    pub local_ai: DbUrl,
    pub kind: SourceKind,
    pub source: DbUrl,
    pub source_ai: DbUrl,
}

fn parse(db: Database, side: Side, value: &str) -> Result<DbUrl> {
    let (flag, env) = url_setting(side, db);
    DbUrl::parse(value).map_err(|e| UsageError::new(format!("{flag} / {env}: {e:#}")).into())
}

/// Railway's private `DATABASE_URL` host, reachable only inside Railway.
fn is_railway_internal(url: &DbUrl) -> bool {
    url.host().contains(".railway.internal")
}

/// The URLs to work with: the local pair must be set and valid; the source is Railway when
/// RAILWAY_DB_URL is set (then RAILWAY_AI_DB_URL must be too, and neither may be a private
/// Railway host), else the sandbox, whose URLs are the local Core URL with another database name.
/// A missing or private setting fails (exit 1, as the script did); an unparsable URL is a usage
/// error (exit 2, as the commands that parsed it did).
pub fn plan(settings: &Settings) -> Result<Plan> {
    let (Some(local), Some(local_ai)) = (&settings.local, &settings.local_ai) else {
        bail!("DATABASE_URL and AI_DATABASE_URL must be set (in .env; see .env.example for the defaults)");
    };
    let local = parse(Database::Core, Side::Local, local)?;
    let local_ai = parse(Database::Ai, Side::Local, local_ai)?;
    if local.same_database(&local_ai) {
        return Err(UsageError::new(format!(
            "DATABASE_URL and AI_DATABASE_URL name the same database ({local}); both Alembic \
             histories would share one alembic_version table. Point AI_DATABASE_URL at its own \
             database (e.g. sigmasight_ai_db)"
        ))
        .into());
    }
    let Some(remote) = &settings.remote else {
        return Ok(Plan {
            source: local.with_dbname(SANDBOX_DB),
            source_ai: local.with_dbname(SANDBOX_AI_DB),
            kind: SourceKind::Sandbox,
            local,
            local_ai,
        });
    };
    let source = parse(Database::Core, Side::Remote, remote)?;
    if is_railway_internal(&source) {
        bail!(
            "RAILWAY_DB_URL names {}:{}: that is Railway's private DATABASE_URL, reachable only \
             inside Railway. Use the service's DATABASE_PUBLIC_URL (host *.proxy.rlwy.net) in .env",
            source.host(),
            source.port()
        );
    }
    let Some(remote_ai) = &settings.remote_ai else {
        bail!(
            "RAILWAY_DB_URL is set but RAILWAY_AI_DB_URL is not: both databases are pulled; set \
             RAILWAY_AI_DB_URL in .env to the AI Postgres service's DATABASE_PUBLIC_URL"
        );
    };
    let source_ai = parse(Database::Ai, Side::Remote, remote_ai)?;
    if is_railway_internal(&source_ai) {
        bail!(
            "RAILWAY_AI_DB_URL names {}:{}: that is Railway's private DATABASE_URL; use the \
             service's DATABASE_PUBLIC_URL (host *.proxy.rlwy.net)",
            source_ai.host(),
            source_ai.port()
        );
    }
    Ok(Plan {
        local,
        local_ai,
        kind: SourceKind::Railway,
        source,
        source_ai,
    })
}

/// One database's comparison, source against local, reduced to what onboarding decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbState {
    pub database: Database,
    pub equal: bool,
    /// Rows of every table but `alembic_version` (which migrations fill, not data).
    pub source_rows: i64,
    pub local_rows: i64,
    /// The local Alembic revisions, comma-separated, or `none`.
    pub local_revision: String,
    /// The local URL, password masked.
    pub local_url: String,
}

/// The report of a source-vs-local verification as one state per database; a database that
/// could not be compared is an error naming why.
pub fn digest(report: &Report) -> Result<Vec<DbState>> {
    let mut states = Vec::new();
    let mut failures = Vec::new();
    for outcome in &report.databases {
        match outcome {
            DatabaseOutcome::Failed(f) => {
                failures.push(format!("{}: {}", f.database.label(), f.error.message))
            }
            DatabaseOutcome::Compared(c) => {
                let c = &c.comparison;
                let data = || c.tables.iter().filter(|t| t.table != "alembic_version");
                let revisions = &c.alembic.right.revisions;
                states.push(DbState {
                    database: c.database,
                    equal: c.equal,
                    source_rows: data().map(|t| t.left_rows.unwrap_or(0)).sum(),
                    local_rows: data().map(|t| t.right_rows.unwrap_or(0)).sum(),
                    local_revision: if revisions.is_empty() {
                        "none".to_string()
                    } else {
                        revisions.join(",")
                    },
                    local_url: c.right.url.clone(),
                });
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "db-verify could not compare the databases: {}",
            failures.join("; ")
        );
    }
    Ok(states)
}

fn source_rows(states: &[DbState], db: Database) -> i64 {
    states
        .iter()
        .filter(|s| s.database == db)
        .map(|s| s.source_rows)
        .sum()
}

/// What to do with the sandbox once it is migrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxAction {
    /// Both hold data: an earlier run seeded them; seeding again would refuse anyway.
    Keep { core_rows: i64, ai_rows: i64 },
    /// Both are empty.
    Seed,
    /// One holds data and the other none: an earlier run stopped between the two seeds (each is
    /// one transaction). The sandbox is onboarding's own stand-in, so it is recreated rather
    /// than half-reused.
    Recreate { core_rows: i64, ai_rows: i64 },
}

pub fn sandbox_action(states: &[DbState]) -> SandboxAction {
    let core_rows = source_rows(states, Database::Core);
    let ai_rows = source_rows(states, Database::Ai);
    match (core_rows > 0, ai_rows > 0) {
        (true, true) => SandboxAction::Keep { core_rows, ai_rows },
        (false, false) => SandboxAction::Seed,
        _ => SandboxAction::Recreate { core_rows, ai_rows },
    }
}

/// Whether and how db-pull runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullDecision {
    /// The local databases already equal the source. Skipping keeps a second run fast and
    /// harmless: a pull would rebuild both databases (and fail while the app holds a session on
    /// them) only to arrive where they already are.
    Skip,
    /// `yes`: no question; `no_backup`: nothing worth a backup.
    Pull {
        yes: bool,
        no_backup: bool,
        /// The local databases hold data: say so before the pull.
        replaces_data: bool,
    },
}

/// The local databases hold data that the pull would replace: said (with db-verify's summary)
/// before the pull, or before onboarding stops for want of a confirmation.
pub fn replaces_data(states: &[DbState]) -> bool {
    !states.iter().all(|s| s.equal) && states.iter().map(|s| s.local_rows).sum::<i64>() > 0
}

/// Skip when every database is equal; an empty (freshly migrated) local side is pulled without a
/// question or a backup; data that differs is replaced with `--yes`, or after db-pull's question
/// on a terminal, and without either onboarding stops.
pub fn pull_decision(states: &[DbState], yes: bool, terminal: bool) -> Result<PullDecision> {
    if states.iter().all(|s| s.equal) {
        return Ok(PullDecision::Skip);
    }
    if !replaces_data(states) {
        return Ok(PullDecision::Pull {
            yes: true,
            no_backup: true,
            replaces_data: false,
        });
    }
    if !yes && !terminal {
        bail!(
            "the local databases hold data that differs from the source (above), and there is no \
             terminal to ask on. To replace them with the source's (a backup goes to backups/ \
             first), run `scripts/onboard.sh --yes`"
        );
    }
    Ok(PullDecision::Pull {
        yes,
        no_backup: false,
        replaces_data: true,
    })
}

/// Whether the .env was there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvState {
    Kept,
    Created,
}

/// Everything the final summary shows.
pub struct Summary<'a> {
    pub container: &'a str,
    /// `docker compose` or `docker-compose` when Compose runs the container.
    pub compose: Option<&'a str>,
    pub local_port: u16,
    pub states: &'a [DbState],
    pub plan: &'a Plan,
    pub pulled: bool,
    pub env: EnvState,
    pub hooks: Option<&'a str>,
}

/// The lines after `onboard: done. What is where:`, as the shell script printed them.
pub fn summary_lines(s: &Summary) -> Vec<String> {
    let line = |label: &str, text: String| format!("  {label:<13} {text}");
    let start_stop = match s.compose {
        Some(compose) => format!("cd backend && {compose} up -d / stop"),
        None => format!("docker start / stop {}", s.container),
    };
    let mut lines = vec![line(
        "container",
        format!(
            "{} ({IMAGE}), localhost:{}; start/stop: {start_stop}",
            s.container, s.local_port
        ),
    )];
    for st in s.states {
        lines.push(line(
            &format!("local {}", st.database.label()),
            format!(
                "{}  {} rows, alembic {}",
                st.local_url, st.local_rows, st.local_revision
            ),
        ));
    }
    lines.push(line(
        "source",
        match s.plan.kind {
            SourceKind::Sandbox => format!(
                "sandbox \"remote\" {SANDBOX_DB} + {SANDBOX_AI_DB} on the same server (seeded by \
                 cargo xtask seed); set RAILWAY_DB_URL and RAILWAY_AI_DB_URL in .env to use Railway"
            ),
            SourceKind::Railway => {
                format!("Railway: {}, {}", s.plan.source, s.plan.source_ai)
            }
        },
    ));
    lines.push(line(
        "pulled",
        format!(
            "{}; db-verify: equal",
            if s.pulled {
                "yes"
            } else {
                "no (already equal)"
            }
        ),
    ));
    lines.push(line(
        ".env",
        match s.env {
            EnvState::Kept => "kept as it was",
            EnvState::Created => "created from .env.example",
        }
        .to_string(),
    ));
    lines.push(line(
        "git hooks",
        s.hooks.unwrap_or("not installed").to_string(),
    ));
    lines.push(line(
        "backups/logs",
        "backups/ and logs/ (git-ignored)".to_string(),
    ));
    lines.push(line(
        "next",
        "cargo xtask doctor; cargo xtask --help; scripts/test.sh".to_string(),
    ));
    lines
}

#[cfg(test)]
mod tests;
