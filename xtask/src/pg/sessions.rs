//! The other client sessions on a database, as typed values: db-pull refuses to replace a
//! database that someone uses (or ends their sessions on request), db-push warns about them. What
//! is decided (is it one of the xtask's own connections? this run's lock?) is read from the
//! fields; `Display` is the text people see.

use std::{fmt, time::Duration};

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// The `application_name` of the xtask's own connections (`pg::client::connect`).
const XTASK_APPLICATION: &str = "xtask";

/// One client session on a database, from `pg_stat_activity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    /// The role it is logged in as ('' when the server does not say).
    pub user: String,
    /// '' when the client set none.
    pub application_name: String,
    /// The client's address, or `local socket`.
    pub client: String,
    /// `active`, `idle`, `idle in transaction`, ... ('' when the server does not say).
    pub state: String,
}

impl Session {
    /// One of the xtask's own connections (a verification's, a load's), which leaves by itself
    /// a moment after it was closed.
    pub fn is_xtask(&self) -> bool {
        self.application_name == XTASK_APPLICATION
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({}", self.pid, self.user)?;
        if !self.application_name.is_empty() {
            write!(f, ", {}", self.application_name)?;
        }
        write!(f, " from {}, {})", self.client, self.state)
    }
}

/// Sessions for people: `pid 1 (...); pid 2 (...)`.
pub fn describe(sessions: &[Session]) -> String {
    sessions
        .iter()
        .map(Session::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Client sessions on a database other than the caller's. Background workers (autovacuum) are
/// left out: the server stops them itself for a rename or a drop.
pub async fn other_sessions(admin: &Client, dbname: &str) -> Result<Vec<Session>> {
    let rows = admin
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), \
                    coalesce(host(client_addr), 'local socket'), coalesce(state, '') \
             FROM pg_catalog.pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() \
               AND backend_type = 'client backend'",
            &[&dbname],
        )
        .await
        .with_context(|| format!("listing the sessions on database {dbname}"))?;
    Ok(rows
        .iter()
        .map(|r| Session {
            pid: r.get(0),
            user: r.get(1),
            application_name: r.get(2),
            client: r.get(3),
            state: r.get(4),
        })
        .collect())
}

/// Waits a little for sessions to go (our own just-closed connections take a moment to leave
/// pg_stat_activity), then returns those still there.
pub async fn sessions_after_grace(admin: &Client, dbname: &str) -> Result<Vec<Session>> {
    let mut sessions = other_sessions(admin, dbname).await?;
    for _ in 0..30 {
        // Only the xtask's own sessions are worth waiting for; anyone else is reported at once.
        if !sessions.iter().any(Session::is_xtask) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sessions = other_sessions(admin, dbname).await?;
    }
    Ok(sessions)
}

/// Ends every other session on a database (`--terminate-connections`).
pub async fn terminate_sessions(admin: &Client, dbname: &str) -> Result<u64> {
    let n = admin
        .execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() \
               AND backend_type = 'client backend'",
            &[&dbname],
        )
        .await
        .with_context(|| format!("terminating the sessions on database {dbname}"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(app: &str) -> Session {
        Session {
            pid: 42,
            user: "app".into(),
            application_name: app.into(),
            client: "127.0.0.1".into(),
            state: "idle".into(),
        }
    }

    #[test]
    fn sessions_read_as_before() {
        assert_eq!(
            session("uvicorn").to_string(),
            "pid 42 (app, uvicorn from 127.0.0.1, idle)"
        );
        assert_eq!(session("").to_string(), "pid 42 (app from 127.0.0.1, idle)");
        assert_eq!(
            describe(&[session("psql"), session("")]),
            "pid 42 (app, psql from 127.0.0.1, idle); pid 42 (app from 127.0.0.1, idle)"
        );
    }

    #[test]
    fn only_the_xtask_connections_are_its_own() {
        assert!(session("xtask").is_xtask());
        assert!(!session("xtask db-pull (pid 7)").is_xtask());
        assert!(!session("psql").is_xtask());
        assert!(!session("").is_xtask());
    }
}
