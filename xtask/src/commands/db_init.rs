//! `cargo xtask db-init`: makes the local databases ready for work. Creates Core and AI when
//! missing (AI with the vector extension), then migrates both to head. Idempotent: it never drops
//! or overwrites anything.

use anyhow::{Context, Result};
use clap::Args;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Database, DbUrl, Side},
    ctx::Ctx,
    pg::client,
};

#[derive(Args, Debug)]
pub struct DbInit {}

impl DbInit {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let config = ctx.config()?;
        for db in config.databases() {
            let url = config.require_url(Side::Local, db)?;
            let created = prepare_database(ctx, db, url)?;
            eprintln!(
                "local {}: {} {}, migrated to head",
                db.label(),
                url.dbname(),
                if created { "created" } else { "exists" }
            );
        }
        Ok(())
    }
}

/// Creates the database if missing (and, for AI, the vector extension), then `upgrade head`.
pub fn prepare_database(ctx: &Ctx, db: Database, url: &DbUrl) -> Result<bool> {
    let timeout = ctx.timeout();
    let created = ctx.block_on(async {
        let created = client::ensure_database(url, timeout).await?;
        if db == Database::Ai {
            let conn = client::connect(url, timeout).await?;
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .await
                .with_context(|| {
                    format!(
                        "creating the vector extension in {url}: is pgvector installed on that \
                         server (image pgvector/pgvector:pg17)?"
                    )
                })?;
        }
        anyhow::Ok(created)
    })?;
    AlembicConfig::of(db).upgrade(&ctx.rt, &ctx.sh, &backend_dir(), url, "head")?;
    Ok(created)
}
