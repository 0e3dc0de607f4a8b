//! The columns that this checkout's migrations create, per Alembic config: what the data policy
//! must classify. They are read from the schema that `alembic upgrade head` builds in a throwaway
//! database on the local server (as alembic-stamp's check does), and remembered by the migrations'
//! fingerprint (`migrations`) in `target/xtask-cache/columns-v1-<db>-<fingerprint>.json`, so the
//! pre-commit hook needs no database again until a migration changes.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{DbKey, TableKey};
use crate::{
    alembic::AlembicConfig,
    config::{Database, Side},
    ctx::Ctx,
    migrations,
    pg::{
        client, lock,
        scratch::{sibling_name, ScratchDb},
    },
};

/// The throwaway database is the local database's name plus this.
const SCRATCH_SUFFIX: &str = "_xtask_policy_check";

/// Part of the cache file's name: a change to what is read (`COLUMNS_SQL`, `Column`) changes it,
/// so a cache written by an older xtask is not read.
const CACHE_FORMAT: &str = "v1";

/// What a column's type allows a rule to write into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeClass {
    /// text, varchar, char (and domains over them).
    Text,
    Uuid,
    Other,
}

/// One column of one table, as the policy names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// `users` for `public.users`, `schema.table` otherwise.
    pub table: String,
    pub name: String,
    /// As `format_type` prints it, e.g. `character varying(255)`.
    pub data_type: String,
    pub class: TypeClass,
    pub not_null: bool,
}

impl Column {
    pub fn table_key(&self, db: DbKey) -> TableKey {
        TableKey {
            db,
            table: self.table.clone(),
        }
    }
}

/// Every column of the user tables (partitions are their parent's; extensions' tables and
/// Alembic's own `alembic_version` are not the app's data), in table and column order.
const COLUMNS_SQL: &str = "\
SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END,
       a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       CASE WHEN coalesce(nullif(t.typbasetype, 0), t.oid) = 'pg_catalog.uuid'::regtype THEN 'uuid'
            WHEN coalesce(b.typcategory, t.typcategory) = 'S' THEN 'text'
            ELSE 'other' END,
       a.attnotnull
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_type b ON b.oid = nullif(t.typbasetype, 0)
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
   AND NOT (n.nspname = 'public' AND c.relname = 'alembic_version')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
 ORDER BY 1, a.attnum";

/// The columns of the database that `client` is connected to.
pub async fn read_columns(client: &Client) -> Result<Vec<Column>> {
    let rows = client
        .query(COLUMNS_SQL, &[])
        .await
        .context("listing the tables' columns")?;
    Ok(rows
        .iter()
        .map(|row| Column {
            table: row.get(0),
            name: row.get(1),
            data_type: row.get(2),
            class: match row.get::<_, &str>(3) {
                "uuid" => TypeClass::Uuid,
                "text" => TypeClass::Text,
                _ => TypeClass::Other,
            },
            not_null: row.get(4),
        })
        .collect())
}

/// Where the columns came from, for the command's output.
pub enum Origin {
    Cache,
    Built { database: String },
}

/// The columns that `config`'s migrations create at head: from the cache, else built now in a
/// throwaway database on the local server.
pub fn migrations_columns(
    ctx: &Ctx,
    config: AlembicConfig,
    db: Database,
    backend: &Path,
) -> Result<(Vec<Column>, Origin)> {
    let fingerprint = match migrations::cache_enabled() {
        true => migrations::fingerprint(config, backend)?,
        false => None,
    };
    let cache_file = fingerprint.map(|fp| {
        let name = format!("columns-{CACHE_FORMAT}-{}-{fp}.json", db.label());
        migrations::cache_dir().join(name)
    });
    if let Some(file) = &cache_file {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(columns) = serde_json::from_str::<Vec<Column>>(&text) {
                return Ok((columns, Origin::Cache));
            }
        }
    }
    let (columns, database) = build_and_read(ctx, config, db, backend).with_context(|| {
        format!(
            "these migrations' columns are not cached yet, so they are read from a throwaway \
             database built on the local server ({}; start it with `cd backend && docker \
             compose up -d`)",
            config.url_var()
        )
    })?;
    if let Some(file) = &cache_file {
        // Best effort, as the heads' cache: a cache that cannot be written only means the next
        // check builds the schema again. A temporary name renamed: a reader never sees half.
        let _ = std::fs::create_dir_all(migrations::cache_dir()).and_then(|()| {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_string(&columns)?)?;
            std::fs::rename(&tmp, file)
        });
    }
    Ok((columns, Origin::Built { database }))
}

fn build_and_read(
    ctx: &Ctx,
    config: AlembicConfig,
    db: Database,
    backend: &Path,
) -> Result<(Vec<Column>, String)> {
    let local = ctx.config()?.require_url(Side::Local, db)?.clone();
    let name = sibling_name(local.dbname(), SCRATCH_SUFFIX);
    let server = local.with_dbname("postgres");
    let timeout = ctx.timeout();
    // Under the lock, a database of this name is a killed check's leftover: ours to drop.
    let held = ctx.block_on(lock::acquire(&server, &name, "data-policy check", timeout))?;
    let scratch = ScratchDb::create(
        &ctx.rt,
        held.client(),
        &local,
        &name,
        Some("template1"),
        "to build the migrations' schema in (the user needs CREATEDB)",
    )?;
    let url = scratch.url().clone();
    if db == Database::Ai {
        // As db-init does: the AI migrations need pgvector.
        ctx.block_on(async {
            let conn = client::connect(&url, timeout).await?;
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .await
                .with_context(|| {
                    format!("creating the vector extension in {url}: is pgvector installed?")
                })
        })?;
    }
    config
        .upgrade(&ctx.rt, &ctx.sh, backend, &url, "head")
        .with_context(|| {
            format!(
                "building the schema of {} at head in the throwaway database {name}",
                config.ini()
            )
        })?;
    let columns = ctx.block_on(async {
        let conn = client::connect(&url, timeout).await?;
        read_columns(&conn).await
    })?;
    scratch.drop_now()?;
    Ok((columns, name))
}
