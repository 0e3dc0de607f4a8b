//! Databases the xtask makes and drops itself: a stamp check's throwaway schema, a pull's staging
//! copy, the cached schema builds. `drop_database` is the one place such a database is dropped
//! (`WITH (FORCE)`: the session of a tool or Alembic that was stopped may still be on it), and
//! `ScratchDb` drops one when it goes out of scope unless it was kept.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::ident::quote_ident;
use crate::{config::DbUrl, runtime::Runtime};

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` through `admin` (a connection to another database
/// of the same server).
pub async fn drop_database(admin: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
}

/// `CREATE DATABASE name` from `template` (template0 when none).
pub async fn create_database(
    admin: &Client,
    name: &str,
    template: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(name),
            quote_ident(template.unwrap_or("template0"))
        ))
        .await
}

/// `CREATE DATABASE name TEMPLATE template`, as a copy of the template's files where the server
/// can (`STRATEGY = FILE_COPY`, PostgreSQL 15+; older servers always copy files): much quicker
/// for a large database than the default, which writes every block through the WAL.
pub async fn copy_database(
    admin: &Client,
    name: &str,
    template: &str,
) -> Result<(), tokio_postgres::Error> {
    let file_copy: bool = admin
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int >= 150000",
            &[],
        )
        .await?
        .get(0);
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}{}",
            quote_ident(name),
            quote_ident(template),
            if file_copy {
                " STRATEGY = FILE_COPY"
            } else {
                ""
            }
        ))
        .await
}

/// A database name made of `dbname` and `suffix`, cut to PostgreSQL's 63 bytes (on a character
/// boundary).
pub fn sibling_name(dbname: &str, suffix: &str) -> String {
    let mut base = dbname.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// A database of the xtask's own next to a target; dropped when this goes out of scope (also on
/// an error or a panic) unless `keep` handed it on.
pub struct ScratchDb<'a> {
    rt: &'a Runtime,
    admin: &'a Client,
    url: DbUrl,
    armed: bool,
}

impl<'a> ScratchDb<'a> {
    /// Creates `name` on `beside`'s server through `admin`, from `template` (template0 when none).
    /// One of the same name left by a killed run is dropped first: the caller holds the lock that
    /// makes it ours. `purpose` completes "creating the database NAME ..." in the error.
    pub fn create(
        rt: &'a Runtime,
        admin: &'a Client,
        beside: &DbUrl,
        name: &str,
        template: Option<&str>,
        purpose: &str,
    ) -> Result<ScratchDb<'a>> {
        Self::create_with(
            rt,
            admin,
            beside,
            name,
            purpose,
            create_database(admin, name, template),
        )
    }

    /// `create` with another way to create it: `create` is this `CREATE DATABASE` future
    /// (`copy_database` for snapshots and their restores).
    pub fn create_with(
        rt: &'a Runtime,
        admin: &'a Client,
        beside: &DbUrl,
        name: &str,
        purpose: &str,
        create: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    ) -> Result<ScratchDb<'a>> {
        let server = beside.with_dbname("postgres");
        rt.block_on(drop_database(admin, name))
            .with_context(|| format!("dropping a leftover database {name} on {server}"))?;
        rt.block_on(create)
            .with_context(|| format!("creating the database {name} on {server} {purpose}"))?;
        Ok(ScratchDb {
            rt,
            admin,
            url: beside.with_dbname(name),
            armed: true,
        })
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    pub fn name(&self) -> &str {
        self.url.dbname()
    }

    /// Drops it now, reporting a failure (the scope's drop only warns).
    pub fn drop_now(mut self) -> Result<()> {
        self.armed = false;
        self.drop_database()
    }

    /// Hands it on (renamed, published, swapped in): it is no longer dropped here.
    pub fn keep(mut self) -> DbUrl {
        self.armed = false;
        self.url.clone()
    }

    fn drop_database(&self) -> Result<()> {
        self.rt
            .block_on(drop_database(self.admin, self.name()))
            .with_context(|| format!("dropping the database {} on {}", self.name(), self.url))
    }
}

impl Drop for ScratchDb<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.drop_database() {
                eprintln!("warning: {e:#}; drop it by hand");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_fit_postgres_limit() {
        assert_eq!(sibling_name("app", "_xtask_new"), "app_xtask_new");
        let long = "d".repeat(70);
        let name = sibling_name(&long, "_xtask_new");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_xtask_new"));
        // A multi-byte character is never cut in half.
        let accented = "é".repeat(40);
        let name = sibling_name(&accented, "_x");
        assert!(name.len() <= 63 && name.ends_with("_x"), "{name}");
    }
}
