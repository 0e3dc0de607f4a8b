//! `cargo xtask db-snapshot save [NAME] | list | restore NAME | delete NAME`: instant snapshots
//! of the local Core and AI databases together. A snapshot is one database per local database,
//! `<db>_snap_<NAME>`, made by `CREATE DATABASE ... TEMPLATE <db>` (a file copy on the server,
//! far quicker than a dump), with its record in its comment (`record.rs`). A restore clones the
//! snapshots into staging databases, checks each against its record (cheaply when the snapshot
//! shows it was not written to since save, `untouched.rs`; else by counting rows), and swaps
//! them all in one transaction (`transfer/swap_all.rs`): both databases are replaced, or neither.

mod delete;
mod list;
mod record;
mod restore;
mod save;
mod untouched;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::{ctx::Ctx, interrupt};

#[derive(Args, Debug)]
pub struct DbSnapshot {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Save both local databases as snapshot NAME (default: the time, 20261202-153000)
    Save(SaveArgs),
    /// Show the snapshots: time, git commit, Alembic revisions, rows and disk space
    List,
    /// Replace both local databases with snapshot NAME (both or neither)
    Restore(RestoreArgs),
    /// Drop snapshot NAME, or every snapshot but the newest N (--keep N)
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Letters, digits, `-` and `_`
    pub name: Option<String>,
    /// End other sessions on the local databases (a template copy needs them gone)
    #[arg(long)]
    pub terminate_connections: bool,
    /// After saving, keep only the newest N snapshots (older ones are dropped)
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub name: String,
    /// End other sessions on the local databases instead of refusing
    #[arg(long)]
    pub terminate_connections: bool,
    /// Restore a snapshot whose Alembic revision this checkout's migrations do not know
    #[arg(long)]
    pub allow_revision_mismatch: bool,
    /// Check and print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct DeleteArgs {
    pub name: Option<String>,
    /// Drop every snapshot but the newest N
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
}

impl DbSnapshot {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        interrupt::install();
        match self.action {
            Action::Save(args) => save::save(ctx, &args),
            Action::List => list::list(ctx),
            Action::Restore(args) => restore::restore(ctx, &args),
            Action::Delete(args) => delete::delete(ctx, &args),
        }
    }
}

/// `12.3 MB`, for people.
pub fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GB", b / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MB", b / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} kB", b / 1024.0),
        n => format!("{n} B"),
    }
}

/// Prints the `--json` document.
fn print_json(doc: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(doc)?);
    Ok(())
}
