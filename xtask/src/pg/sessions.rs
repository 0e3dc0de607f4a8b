//! The other client sessions on a database, as typed values: db-pull refuses to replace a
//! database that someone uses (or ends their sessions on request), db-push warns about them, and
//! a load that timed out waiting for a lock names the sessions that hold locks on its tables
//! (`lock_holders`). What is decided (is it one of the xtask's own connections? this run's lock?)
//! is read from the fields; `Display` is the text people see.

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
    /// Since when: its open transaction's start, else its state's last change (`None` when the
    /// server does not say).
    pub since: Option<Since>,
}

/// A moment in a session's life, as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Since {
    pub what: SinceWhat,
    /// In UTC, `2026-01-31 12:00:00 UTC`.
    pub at: String,
    /// How long before the query, in whole seconds.
    pub seconds: i64,
}

/// Which moment `Since` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinceWhat {
    /// `xact_start`: the session has a transaction open.
    Transaction,
    /// `state_change`: the session's state last changed.
    State,
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.what {
            SinceWhat::Transaction => "in a transaction since",
            SinceWhat::State => "in this state since",
        };
        write!(f, "{what} {} ({} s ago)", self.at, self.seconds)
    }
}

impl Session {
    /// One of the xtask's own connections (a verification's, a load's), which leaves by itself
    /// a moment after it was closed.
    pub fn is_xtask(&self) -> bool {
        self.application_name == XTASK_APPLICATION
    }
}

impl Session {
    /// `pid 1 (app, psql from 127.0.0.1, idle`, and with `since` its `, in a transaction since
    /// ...`, then `)`.
    fn write(&self, f: &mut fmt::Formatter<'_>, with_since: bool) -> fmt::Result {
        write!(f, "pid {} ({}", self.pid, self.user)?;
        if !self.application_name.is_empty() {
            write!(f, ", {}", self.application_name)?;
        }
        write!(f, " from {}, {}", self.client, self.state)?;
        match &self.since {
            Some(since) if with_since => write!(f, ", {since})"),
            _ => f.write_str(")"),
        }
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

/// A session shown with since when (`describe_with_since`).
struct WithSince<'a>(&'a Session);

impl fmt::Display for WithSince<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

/// Sessions with since when, for a lock that one of them holds:
/// `pid 1 (app, psql from 127.0.0.1, idle in transaction, in a transaction since ... (42 s ago))`.
pub fn describe_with_since(sessions: &[Session]) -> String {
    sessions
        .iter()
        .map(|s| WithSince(s).to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The columns every session query reads, in `session_of`'s order (`a` is pg_stat_activity).
const SESSION_COLUMNS: &str = "a.pid, coalesce(a.usename::text, ''), \
    coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
    coalesce(a.state, ''), CASE WHEN a.xact_start IS NOT NULL THEN 'transaction' \
    WHEN a.state_change IS NOT NULL THEN 'state' END, \
    to_char(coalesce(a.xact_start, a.state_change) AT TIME ZONE 'UTC', \
    'YYYY-MM-DD HH24:MI:SS \"UTC\"'), \
    extract(epoch FROM pg_catalog.now() - coalesce(a.xact_start, a.state_change))::bigint";

fn session_of(r: &tokio_postgres::Row) -> Session {
    let what: Option<&str> = r.get(5);
    let at: Option<String> = r.get(6);
    let seconds: Option<i64> = r.get(7);
    let since = match (what, at, seconds) {
        (Some(what), Some(at), Some(seconds)) => Some(Since {
            what: if what == "transaction" {
                SinceWhat::Transaction
            } else {
                SinceWhat::State
            },
            at,
            seconds,
        }),
        _ => None,
    };
    Session {
        pid: r.get(0),
        user: r.get(1),
        application_name: r.get(2),
        client: r.get(3),
        state: r.get(4),
        since,
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
            &format!(
                "SELECT {SESSION_COLUMNS} FROM pg_catalog.pg_stat_activity a \
                 WHERE a.datname = $1 AND a.pid <> pg_catalog.pg_backend_pid() \
                   AND a.backend_type = 'client backend'"
            ),
            &[&dbname],
        )
        .await
        .with_context(|| format!("listing the sessions on database {dbname}"))?;
    Ok(rows.iter().map(session_of).collect())
}

/// The sessions, other than the caller's, that hold a granted lock on one of `tables` (names as
/// SQL, `"public"."positions"`) of the connected database: the ones a lock request on them waits
/// behind. A table that no longer exists is skipped.
pub async fn lock_holders(client: &Client, tables: &[String]) -> Result<Vec<Session>> {
    let rows = client
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM pg_catalog.pg_stat_activity a \
                 WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.pid IN ( \
                   SELECT l.pid FROM pg_catalog.pg_locks l \
                   WHERE l.granted AND l.database = ( \
                       SELECT oid FROM pg_catalog.pg_database \
                       WHERE datname = pg_catalog.current_database()) \
                     AND l.relation IN ( \
                       SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) AS t)) \
                 ORDER BY a.pid"
            ),
            &[&tables],
        )
        .await
        .context("listing the sessions that hold locks on the tables")?;
    Ok(rows.iter().map(session_of).collect())
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
            since: None,
        }
    }

    #[test]
    fn a_lock_holder_says_since_when() {
        let mut holder = session("uvicorn");
        holder.state = "idle in transaction".into();
        holder.since = Some(Since {
            what: SinceWhat::Transaction,
            at: "2026-01-31 12:00:00 UTC".into(),
            seconds: 42,
        });
        assert_eq!(
            describe_with_since(&[holder, session("")]),
            "pid 42 (app, uvicorn from 127.0.0.1, idle in transaction, in a transaction since \
             2026-01-31 12:00:00 UTC (42 s ago)); pid 42 (app from 127.0.0.1, idle)"
        );
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
