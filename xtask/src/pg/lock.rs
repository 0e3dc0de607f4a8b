//! One destructive command per database at a time: a session-level advisory lock, keyed by the
//! database's name, held on the xtask's own connection to the same server. The server releases it
//! when that connection ends, so a command that fails, is interrupted or is killed never leaves a
//! stale lock behind. The second command refuses and names the first (its application_name says
//! which command and process it is).

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::config::DbUrl;
use crate::pg::client;

/// The first key of the two-int advisory lock: "xtas", so that the app's own advisory locks
/// (single-key ones) never collide with ours.
const LOCK_CLASS: i32 = 0x7874_6173;

/// A held lock. Dropping it closes the connection, which releases the lock.
pub struct DbLock {
    client: Client,
    pub dbname: String,
}

impl DbLock {
    /// The connection the lock lives on (a maintenance connection callers may reuse).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A stable, positive key for a database name (FNV-1a, folded to 31 bits).
pub fn lock_key(dbname: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in dbname.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

/// Takes the lock for `dbname` on the server behind `server`, or refuses naming who holds it.
/// Advisory locks are scoped to the database the session is connected to, so every command locks
/// through the same one: the `postgres` maintenance database (db-push falls back to the target
/// itself only where the maintenance database cannot be reached).
/// `command` names this run for the other side's message, e.g. `db-pull`.
pub async fn acquire(
    server: &DbUrl,
    dbname: &str,
    command: &str,
    timeout: Duration,
) -> Result<DbLock> {
    let client = client::connect(server, timeout).await?;
    let me = format!("xtask {command} (pid {})", std::process::id());
    client
        .execute(
            "SELECT pg_catalog.set_config('application_name', $1, false)",
            &[&me],
        )
        .await
        .with_context(|| format!("naming the xtask session on {server}"))?;
    let key = lock_key(dbname);
    let got: bool = client
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
            &[&LOCK_CLASS, &key],
        )
        .await
        .with_context(|| format!("taking the xtask lock for {dbname} on {server}"))?
        .get(0);
    if got {
        return Ok(DbLock {
            client,
            dbname: dbname.to_string(),
        });
    }
    let holder = client
        .query_opt(
            "SELECT a.application_name, a.usename::text, \
                    coalesce(host(a.client_addr), 'local socket'), \
                    to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ') \
             FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
               AND l.classid::bigint = $1::bigint AND l.objid::bigint = $2::bigint",
            &[&i64::from(LOCK_CLASS), &i64::from(key)],
        )
        .await
        .ok()
        .flatten()
        .map(|row| {
            let app: Option<String> = row.get(0);
            let user: Option<String> = row.get(1);
            format!(
                "{} as {} from {} since {}",
                app.filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "another xtask".into()),
                user.unwrap_or_default(),
                row.get::<_, Option<String>>(2).unwrap_or_default(),
                row.get::<_, Option<String>>(3).unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| "another xtask command".to_string());
    anyhow::bail!(
        "database {dbname} is busy: {holder} is working on it; wait for it to finish and run \
         again (the lock is released when that command ends, even if it fails); nothing was changed"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_positive_and_distinct() {
        assert_eq!(lock_key("sigmasight_db"), lock_key("sigmasight_db"));
        assert_ne!(lock_key("sigmasight_db"), lock_key("sigmasight_ai_db"));
        assert!(lock_key("sigmasight_db") >= 0);
    }
}
