//! `cargo xtask seed`: deterministic test data for tests, benchmarks and the onboarding sandbox.
//! At `--scale 1` it is the production shape the runbooks record (6 users, 97 positions, ~193K
//! market_data_cache rows, ...); `--scale N` multiplies the big tables. The data is generated on
//! the server by `seed_common.sql` + `seed.sql` / `seed_ai.sql`, so seeding streams nothing through the xtask.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::{
    commands::db_init::prepare_database,
    config::{Database, DbUrl, Side},
    ctx::Ctx,
    exit::UsageError,
    pg::{client, ident::quote_ident},
};

const CORE_SQL: &str = concat!(include_str!("seed_common.sql"), include_str!("seed.sql"));
const AI_SQL: &str = concat!(include_str!("seed_common.sql"), include_str!("seed_ai.sql"));

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Target {
    /// The local databases (DATABASE_URL, AI_DATABASE_URL)
    Local,
    /// The remote databases (RAILWAY_DB_URL, RAILWAY_AI_DB_URL)
    Remote,
}

#[derive(Args, Debug)]
pub struct Seed {
    /// Multiply the big tables by N
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub scale: u32,
    /// Which databases to fill; they are created and migrated to head first, and must be empty
    #[arg(long, value_enum, default_value = "local")]
    pub target: Target,
}

impl Seed {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let config = ctx.config()?;
        let side = match self.target {
            Target::Local => Side::Local,
            Target::Remote => Side::Remote,
        };
        for db in config.databases() {
            let url = config.require_url(side, db)?;
            prepare_database(ctx, db, url)?;
            ctx.block_on(seed_database(db, url, self.scale, ctx.timeout()))?;
            eprintln!("seeded {} ({url}) at scale {}", db.label(), self.scale);
        }
        Ok(())
    }
}

/// The table whose rows mean the database already holds data.
fn sentinel_table(db: Database) -> &'static str {
    match db {
        Database::Core => "users",
        Database::Ai => "ai_kb_documents",
    }
}

async fn seed_database(db: Database, url: &DbUrl, scale: u32, timeout: Duration) -> Result<()> {
    let mut conn = client::connect(url, timeout).await?;
    let sentinel = quote_ident(sentinel_table(db));
    let has_rows: bool = conn
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {sentinel})"), &[])
        .await
        .with_context(|| format!("checking that {url} is empty"))?
        .get(0);
    if has_rows {
        return Err(UsageError::new(format!(
            "{url} already holds data (table {sentinel} is not empty): seed fills empty \
             databases only, so nothing was changed"
        ))
        .into());
    }
    let tx = conn.transaction().await?;
    tx.execute(
        "SELECT set_config('xtask.scale', $1, true)",
        &[&scale.to_string()],
    )
    .await?;
    let sql = match db {
        Database::Core => CORE_SQL,
        Database::Ai => AI_SQL,
    };
    tx.batch_execute(sql)
        .await
        .with_context(|| format!("running the {} seed on {url}", db.label()))?;
    tx.commit()
        .await
        .with_context(|| format!("committing the seed on {url}"))?;
    Ok(())
}
