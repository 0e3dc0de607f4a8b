//! The commands of `cargo xtask`, one module each, each a `run` on its arguments.

pub mod alembic_stamp;
pub mod alembic_status;
pub mod data_policy;
pub mod db_init;
pub mod db_pull;
pub mod db_push;
pub mod db_restore;
pub mod db_snapshot;
pub mod db_verify;
pub mod doctor;
pub mod onboard;
pub mod seed;

use crate::{config::DbArgs, ctx::Ctx};
use anyhow::Result;
use clap::{Parser, Subcommand};

/// The app's database workflow: pull, push, verify and stamp both databases (Core and AI),
/// checking every step and losing nothing.
#[derive(Parser, Debug)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull remote (Railway) -> local, both databases: back up, replace, verify
    DbPull(db_pull::DbPull),
    /// Push local -> remote, both databases: schema first, then data, then verify
    DbPush(db_push::DbPush),
    /// Instant snapshots of both local databases: save, list, restore (both or neither), delete
    DbSnapshot(db_snapshot::DbSnapshot),
    /// Restore the backups db-pull/db-push wrote (default: the latest of each local database)
    DbRestore(db_restore::DbRestore),
    /// Compare two sides: exact row counts, Alembic revisions, schema, optional checksums
    DbVerify(db_verify::DbVerify),
    /// Stamp both Alembic configs at head without migrating, only when the schema matches head
    AlembicStamp(alembic_stamp::AlembicStamp),
    /// Show both Alembic configs' revisions against their heads (the hooks' check)
    AlembicStatus(alembic_status::AlembicStatus),
    /// Preflight: Docker, container, tool vs server versions, uv/Alembic, URLs, reachability
    Doctor(doctor::Doctor),
    /// The data policy (backend/data_policy.toml) against every column of the migrations
    #[command(subcommand_required = true)]
    DataPolicy(data_policy::DataPolicy),
    /// Create the local databases and the vector extension when missing; migrate both to head
    DbInit(db_init::DbInit),
    /// Fill databases with deterministic test data: the production shape, times --scale
    Seed(seed::Seed),
    /// Set up a new checkout: .env, the local container, both databases migrated and filled
    /// from Railway or a seeded sandbox, then verified (scripts/onboard.sh runs it)
    Onboard(onboard::Onboard),
}

impl Cli {
    /// Builds the one context of this run and hands it to the command.
    pub fn run(self) -> Result<()> {
        let ctx = Ctx::new(self.db)?;
        let ctx = &ctx;
        match self.command {
            Command::DbPull(cmd) => cmd.run(ctx),
            Command::DbPush(cmd) => cmd.run(ctx),
            Command::DbSnapshot(cmd) => cmd.run(ctx),
            Command::DbRestore(cmd) => cmd.run(ctx),
            Command::DbVerify(cmd) => cmd.run(ctx),
            Command::AlembicStamp(cmd) => cmd.run(ctx),
            Command::AlembicStatus(cmd) => cmd.run(ctx),
            Command::Doctor(cmd) => cmd.run(ctx),
            Command::DataPolicy(cmd) => cmd.run(ctx),
            Command::DbInit(cmd) => cmd.run(ctx),
            Command::Seed(cmd) => cmd.run(ctx),
            Command::Onboard(cmd) => cmd.run(ctx),
        }
    }
}
