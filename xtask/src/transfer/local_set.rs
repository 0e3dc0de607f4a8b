//! The local databases that db-snapshot and db-restore replace together (Core and AI, or Core
//! alone with `--core-only`): their URLs, the one server that holds both (so that a single
//! transaction can swap them), and the xtask lock of each, held for the whole run.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::{
    config::{Database, DbUrl, Side},
    ctx::Ctx,
    exit::UsageError,
    pg::{
        lock::{self, DbLock},
        sessions,
    },
};

/// One local database, locked.
pub struct LocalTarget {
    pub db: Database,
    pub url: DbUrl,
    pub lock: DbLock,
}

/// Every local database of this run, locked, on one server.
pub struct LocalSet {
    pub targets: Vec<LocalTarget>,
}

impl LocalSet {
    /// Locks the local databases `dbs` for `command` (`db-snapshot restore`); refuses databases
    /// on different servers, which no single transaction can swap together.
    pub fn lock(ctx: &Ctx, command: &str, dbs: &[Database]) -> Result<LocalSet> {
        let config = ctx.config()?;
        let mut urls = Vec::new();
        for &db in dbs {
            urls.push((db, config.require_url(Side::Local, db)?.clone()));
        }
        if let [(_, core), (_, ai)] = urls.as_slice() {
            if (core.host(), core.port()) != (ai.host(), ai.port()) {
                return Err(UsageError::new(format!(
                    "{command} works on both local databases together, in one transaction, so \
                     they must be on one server; Core is {core} and AI is {ai}. Pass --core-only \
                     to work on Core alone (nothing was changed)"
                ))
                .into());
            }
        }
        let mut targets = Vec::new();
        for (db, url) in urls {
            let lock = ctx.block_on(lock::acquire(
                &url.with_dbname("postgres"),
                url.dbname(),
                command,
                ctx.timeout(),
            ))?;
            targets.push(LocalTarget { db, url, lock });
        }
        Ok(LocalSet { targets })
    }

    /// A connection to the server's maintenance database (the first lock's).
    pub fn admin(&self) -> &Client {
        self.targets[0].lock.client()
    }

    /// The server, for messages.
    pub fn server(&self) -> DbUrl {
        self.targets[0].url.with_dbname("postgres")
    }

    /// Other sessions on the databases: refused by name (exit 1), or ended with `terminate`
    /// (`--terminate-connections`). `why` completes "... needs them gone: " in the refusal.
    pub fn clear_sessions(&self, ctx: &Ctx, terminate: bool, why: &str) -> Result<()> {
        ctx.block_on(async {
            let mut busy = Vec::new();
            for t in &self.targets {
                let name = t.url.dbname();
                let mut others = sessions::sessions_after_grace(self.admin(), name)
                    .await
                    .with_context(|| format!("listing the sessions on {name}"))?;
                if terminate && !others.is_empty() {
                    let n = sessions::terminate_sessions(self.admin(), name).await?;
                    ctx.say(format!(
                        "{}: ended {n} other session(s) on {name}",
                        t.db.label()
                    ));
                    // A terminated backend is listed until it has exited.
                    for _ in 0..50 {
                        others = sessions::other_sessions(self.admin(), name).await?;
                        if others.is_empty() {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                if !others.is_empty() {
                    busy.push(format!("{name}: {}", sessions::describe(&others)));
                }
            }
            if busy.is_empty() {
                return Ok(());
            }
            // A refusal by a check of the databases' state, not of the command line: exit 1, as
            // db-pull's own refusal of other sessions.
            anyhow::bail!(
                "{why} needs the local databases free of other sessions; in use: {}. Stop the app \
                 (and any psql) using them, or pass --terminate-connections; nothing was changed",
                busy.join("; ")
            )
        })
    }
}
