//! Where each config and each of its databases stands: the scripts' heads and history, and
//! each database's recorded revisions against them.

use std::{path::Path, time::Duration};

use serde::Serialize;
use xshell::Shell;

use crate::{
    alembic::{self, AlembicConfig, RevisionGraph},
    config::{url_setting, Config, Database, DbUrl, Side},
    pg::client,
    runtime::Runtime,
};

/// How the databases are read: on the command's runtime, each connection waiting at most
/// `timeout` for its server.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub rt: &'a Runtime,
    pub timeout: Duration,
}

/// Where one database stands against its config's heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbStatus {
    AtHead,
    /// Known revision(s), with migrations pending.
    Behind,
    /// No `alembic_version` table, or an empty one: every migration is pending.
    NotStamped,
    /// A revision the scripts do not know: migrated by a newer checkout or another branch.
    UnknownRevision,
    /// The scripts did not load, so where the database stands is unknown.
    HeadsUnknown,
    /// The database could not be read (unreachable, authentication, missing...).
    Error,
    /// No URL for it: not checked.
    NotConfigured,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatabaseStatus {
    pub side: Side,
    /// The URL with its password masked; `null` when not configured.
    pub url: Option<String>,
    pub status: DbStatus,
    /// What `alembic_version` holds; `null` when not read or there is no such table.
    pub revisions: Option<Vec<String>>,
    /// Migrations that `upgrade heads` would run; `null` when unknown.
    pub pending: Option<usize>,
    /// Revisions of the database that the scripts do not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_revisions: Vec<String>,
    /// Why it could not be read, or which setting would configure it.
    pub error: Option<String>,
}

impl DatabaseStatus {
    pub fn ok(&self) -> bool {
        matches!(self.status, DbStatus::AtHead | DbStatus::NotConfigured)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigStatus {
    pub database: Database,
    /// `alembic.ini` | `alembic_ai.ini`
    pub config: &'static str,
    pub heads: Vec<String>,
    pub multiple_heads: bool,
    /// How many revisions the scripts have; `null` offline (not read).
    pub revisions: Option<usize>,
    /// Why the scripts could not be read (a script that does not load...).
    pub scripts_error: Option<String>,
    /// The command (in backend/) that creates the merge revision, when there are several heads.
    pub merge_command: Option<String>,
    /// Local, then remote; empty with `--offline`.
    pub databases: Vec<DatabaseStatus>,
}

impl ConfigStatus {
    pub fn ok(&self) -> bool {
        self.scripts_error.is_none()
            && !self.multiple_heads
            && self.databases.iter().all(DatabaseStatus::ok)
    }
}

/// One config: its scripts, then each side's database (online).
pub(super) fn config_status(
    db: Database,
    config: Option<&Config>,
    backend: &Path,
    reader: Reader,
) -> ConfigStatus {
    let alembic = AlembicConfig::of(db);
    let mut status = ConfigStatus {
        database: db,
        config: alembic.ini(),
        heads: Vec::new(),
        multiple_heads: false,
        revisions: None,
        scripts_error: None,
        merge_command: None,
        databases: Vec::new(),
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            status.scripts_error = Some(format!("cannot start a shell: {e}"));
            return status;
        }
    };
    // `alembic heads` imports every script: one that does not load fails it.
    match alembic.heads(&sh, backend) {
        Ok(heads) => status.heads = heads,
        Err(e) => status.scripts_error = Some(format!("{e:#}")),
    }
    status.multiple_heads = status.heads.len() > 1;
    if status.multiple_heads {
        status.merge_command = Some(alembic.merge_command(&status.heads));
    }
    let Some(config) = config else {
        return status;
    };
    let graph = if status.scripts_error.is_none() {
        match alembic.history(&sh, backend) {
            Ok(graph) => Some(graph),
            Err(e) => {
                status.scripts_error = Some(format!("{e:#}"));
                None
            }
        }
    } else {
        None
    };
    status.revisions = graph.as_ref().map(|g| g.parents.len());
    for side in [Side::Local, Side::Remote] {
        status.databases.push(database_status(
            side,
            config.url(side, db),
            db,
            graph.as_ref(),
            &status.heads,
            reader,
        ));
    }
    status
}

pub(super) fn database_status(
    side: Side,
    url: Option<&DbUrl>,
    db: Database,
    graph: Option<&RevisionGraph>,
    heads: &[String],
    reader: Reader,
) -> DatabaseStatus {
    let mut status = DatabaseStatus {
        side,
        url: url.map(ToString::to_string),
        status: DbStatus::NotConfigured,
        revisions: None,
        pending: None,
        unknown_revisions: Vec::new(),
        error: None,
    };
    let Some(url) = url else {
        let (flag, env) = url_setting(side, db);
        status.error = Some(format!("no {flag} / {env}"));
        return status;
    };
    let read = reader.rt.block_on(async {
        let conn = client::connect(url, reader.timeout).await?;
        alembic::recorded_revisions(&conn, url).await
    });
    let recorded = match read {
        Ok(recorded) => recorded,
        Err(e) => {
            status.status = DbStatus::Error;
            status.error = Some(format!("{e:#}"));
            return status;
        }
    };
    classify(&mut status, recorded, graph, heads);
    status
}

/// Where a database that records `recorded` stands against the scripts (`graph`, `heads`).
pub(super) fn classify(
    status: &mut DatabaseStatus,
    recorded: Option<Vec<String>>,
    graph: Option<&RevisionGraph>,
    heads: &[String],
) {
    let current = recorded.clone().unwrap_or_default();
    status.revisions = recorded;
    let Some(graph) = graph else {
        status.status = DbStatus::HeadsUnknown;
        return;
    };
    match graph.pending(&current) {
        Err(unknown) => {
            status.status = DbStatus::UnknownRevision;
            status.unknown_revisions = unknown;
        }
        Ok(pending) => {
            status.pending = Some(pending);
            let mut have: Vec<&String> = current.iter().collect();
            let mut want: Vec<&String> = heads.iter().collect();
            have.sort();
            want.sort();
            status.status = if current.is_empty() {
                DbStatus::NotStamped
            } else if pending == 0 && have == want {
                DbStatus::AtHead
            } else {
                DbStatus::Behind
            };
        }
    }
}

#[cfg(test)]
mod tests;
