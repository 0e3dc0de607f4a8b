//! The session one side is read in: the read-only REPEATABLE READ transaction, its settings
//! (values and definitions printed alike on both sides), the bounded statement timeout
//! (`XTASK_STATEMENT_TIMEOUT`) and lock waits (`XTASK_LOCK_TIMEOUT`, 60 s by default for a read:
//! a table that another session holds must not hang a verification for ever), `row_security =
//! off`, and errors that name the setting or the privilege that was the cause.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::{error::SqlState, Client, IsolationLevel, Transaction};

use crate::config::timeouts::{self, LOCK_TIMEOUT, SOURCE_LOCK_TIMEOUT_DEFAULT, STATEMENT_TIMEOUT};
use crate::config::DbUrl;
use crate::pg::client;

/// Session settings for the comparison's transaction, so that both sides print values and
/// definitions the same way whatever their servers' defaults. `row_security = off`: a policy
/// must never filter what is counted or checksummed; a role that cannot bypass one gets an error
/// instead (`rls.rs` names those tables before any count).
const SETTINGS_SQL: &str = "\
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 1;
SET LOCAL bytea_output = 'hex';
SET LOCAL lc_monetary = 'C';
SET LOCAL idle_in_transaction_session_timeout = 0;
SET LOCAL row_security = off;";

/// The limit on each of the xtask's own queries: `XTASK_STATEMENT_TIMEOUT`, else 30 minutes;
/// `None` is no limit. A value that does not parse is a usage error (exit 2).
pub fn statement_timeout() -> Result<Option<Duration>> {
    STATEMENT_TIMEOUT.get()
}

/// SETTINGS_SQL, the statement timeout and the lock timeout, for a transaction's first
/// statement.
pub(super) fn session_settings() -> Result<String> {
    let ms = timeouts::millis(statement_timeout()?);
    let lock_ms = timeouts::millis(LOCK_TIMEOUT.get_or(SOURCE_LOCK_TIMEOUT_DEFAULT)?);
    Ok(format!(
        "{SETTINGS_SQL}\nSET LOCAL statement_timeout = '{ms}ms';\nSET LOCAL lock_timeout = \
         '{lock_ms}ms';"
    ))
}

/// A query's error, with the setting to change named when it was our statement timeout that
/// cancelled it (a cancel by someone else, `pg_cancel_backend`, says "user request" instead).
pub(super) fn explain(err: tokio_postgres::Error) -> anyhow::Error {
    let timed_out = err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::QUERY_CANCELED && db.message().contains("statement timeout")
    });
    if timed_out {
        let hint = format!(
            "the query ran longer than {} allows: raise it (XTASK_STATEMENT_TIMEOUT=2h, say), \
             or set XTASK_STATEMENT_TIMEOUT=0 for no limit, and run again",
            STATEMENT_TIMEOUT.shown()
        );
        anyhow::Error::new(err).context(hint)
    } else if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        let hint = format!(
            "another session holds a lock on a table this read needs, for longer than {} \
             allows (pg_locks and pg_stat_activity on that database say who): wait for it to \
             finish, or raise XTASK_LOCK_TIMEOUT, and run again",
            LOCK_TIMEOUT.shown()
        );
        anyhow::Error::new(err).context(hint)
    } else if hidden_by_row_security(&err) {
        // Found up front by `rls.rs`; this covers a table that gained a policy since.
        anyhow::Error::new(err).context(
            "the connecting role cannot bypass row-level security, so it cannot count or \
             checksum every row: connect as a role with BYPASSRLS, a superuser, or the table's \
             owner (when FORCE ROW LEVEL SECURITY is not set)",
        )
    } else {
        anyhow::Error::new(err)
    }
}

/// `query would be affected by row-level security policy for table ...`: what `row_security =
/// off` raises instead of filtering rows.
fn hidden_by_row_security(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::INSUFFICIENT_PRIVILEGE
            && db.message().contains("row-level security")
    })
}

/// The value of a result, its error kept aside.
pub(super) fn keep_ok<T>(result: Result<T>, errors: &mut Vec<anyhow::Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Whether the server refused a query only because an earlier one in the same transaction failed.
fn aborted_by_another(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .any(|e| e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// The failure to report among pipelined queries' errors: the server may have run them in
/// another order than they are listed, and after the first failure it refuses the rest ("current
/// transaction is aborted"), so the one that failed on its own is the cause.
pub(super) fn first_failure(errors: Vec<anyhow::Error>) -> anyhow::Error {
    let mut errors = errors.into_iter();
    let first = errors.next().expect("at least one error");
    if !aborted_by_another(&first) {
        return first;
    }
    errors.find(|e| !aborted_by_another(e)).unwrap_or_else(|| {
        // Every listed query was refused: what failed first was a statement of the client's own
        // (tokio-postgres looks types up in queries of its own), which a short statement
        // timeout cancels like any other.
        first.context(format!(
            "an earlier statement in this transaction failed; if it ran past {}, raise it, or \
             set XTASK_STATEMENT_TIMEOUT=0 for no limit, and run again",
            STATEMENT_TIMEOUT.shown()
        ))
    })
}

/// Connects (the failure's cause named: unreachable, authentication, missing database).
pub async fn connect(url: &DbUrl, timeout: Duration) -> Result<Client> {
    client::connect(url, timeout).await
}

/// Starts the read-only REPEATABLE READ transaction that everything of this side is read in.
pub async fn begin<'a>(client: &'a mut Client, url: &DbUrl) -> Result<Transaction<'a>> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .with_context(|| format!("starting a read-only transaction on {url}"))?;
    tx.batch_execute(&session_settings()?)
        .await
        .with_context(|| format!("setting up the session on {url}"))?;
    Ok(tx)
}

/// Opens, on a connection of its own, the read-only REPEATABLE READ transaction that a copy reads
/// its source in, and exports its snapshot: pg_dump runs with `--snapshot=<id>`, so that the
/// counts taken here and the rows dumped are the same rows, even while the source takes writes.
/// The snapshot lives as long as this transaction stays open on `client`.
pub async fn begin_exported_snapshot(client: &Client, url: &DbUrl) -> Result<String> {
    // A bad XTASK_STATEMENT_TIMEOUT is refused before the transaction starts.
    let settings = session_settings()?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .with_context(|| format!("starting a read-only transaction on {url}"))?;
    client
        .batch_execute(&settings)
        .await
        .with_context(|| format!("setting up the session on {url}"))?;
    let row = client
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .map_err(explain)
        .with_context(|| format!("exporting a snapshot on {url}"))?;
    Ok(row.get(0))
}
