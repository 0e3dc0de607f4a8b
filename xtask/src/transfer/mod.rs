//! What `db-pull` and `db-push` share. `driver` runs either command's steps in one order (check
//! every source, plan, confirm, back up, copy, verify, report), each command supplying only what
//! differs; the steps themselves:
//!
//! - `source`: the source read in one exported snapshot (the counts taken up front and the rows
//!   pg_dump streams are the same rows), the tools and its Alembic revision checked;
//!   `uncopyable`: what it holds that a copy cannot make exact, refused by name;
//! - `selection`: the tables chosen (`partitions`: a partitioned table with all its partitions),
//!   and the check that the target's schema can hold their data;
//! - `copy` (and `parallel`): the data streamed in one transaction, or on several connections into
//!   a staging database; `copies`: the databases copied one after the other, or side by side;
//! - `check`: the result verified with the db-verify engine against that same snapshot;
//! - `load` (and `target_schema`, what it reads of the target): the SQL around the stream;
//!   `around_data`: the target's NOT VALID checks and `--schema source`'s post-data around it;
//! - `backup`: what is overwritten, saved first (`backup_step`: before the copies, or beside
//!   them when no target is touched until the commit); `progress`: the status line on a terminal;
//! - `sections` (and `roles`): `--schema source` by pg_dump's sections, pre-data before the data
//!   and post-data after it, and the roles its policies name; `post_data`: that section cut
//!   for a parallel load, its indexes and keys built on several connections;
//! - `masking`: db-pull's data policy applied on the source (the masked copy instead of pg_dump's
//!   data, its preflight checks); `leak_scan`: after it, no local value of a masked column is one
//!   of the source's;
//! - `phases`: the time each step took, for the end of the run;
//! - `staging` (and `schema_cache`): db-pull's new copy, built next to the local database and
//!   swapped in once verified.

pub mod around_data;
pub mod backup;
pub mod backup_step;
pub mod check;
pub mod copies;
pub mod copy;
pub mod driver;
pub mod finish;
pub mod leak_scan;
pub mod load;
pub mod local_set;
pub mod masking;
pub mod parallel;
pub mod partitions;
pub mod phases;
pub mod post_data;
pub mod progress;
pub mod ranges;
pub mod roles;
pub mod schema_cache;
pub mod sections;
pub mod selection;
pub mod source;
pub mod staging;
pub mod swap_all;
pub mod target_schema;
pub mod uncopyable;

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::Database;

pub use copy::CopyStep;
pub use driver::{drive, Job, Run, Transfer};
pub use selection::Selection;
pub use source::{read_snapshot, SourceRead};

/// Where the target's schema comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// `alembic upgrade head` from this repo's migrations (the runbooks' way)
    Migrations,
    /// The source's own schema, its Alembic revision copied as is
    Source,
}

/// The options `db-pull` and `db-push` share.
#[derive(Args, Debug, Clone)]
pub struct CopyArgs {
    /// Where the target's schema comes from
    #[arg(long, value_enum, default_value_t = SchemaMode::Migrations)]
    pub schema: SchemaMode,
    /// With --schema migrations, go on although the source's Alembic revision is not the head of
    /// this repo's migrations
    #[arg(long)]
    pub allow_revision_mismatch: bool,
    /// Do not back up what is overwritten first
    #[arg(long)]
    pub no_backup: bool,
    /// Print the plan (tables, rows, sizes, what is replaced) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Copy only these tables' data, in one transaction (`table` or `schema.table`, comma-separated
    /// or repeated); every other table is left as it is
    #[arg(long, value_delimiter = ',', value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Copy every table's data except these (comma-separated or repeated); they are left as they are
    #[arg(long = "exclude-table", value_delimiter = ',', value_name = "TABLE")]
    pub exclude_tables: Vec<String>,
    /// Also compare a checksum of every copied table's contents after the copy
    #[arg(long)]
    pub checksums: bool,
    /// Connections that load and verify at once. A pull's copy is built in a staging database, so
    /// its tables load in parallel; a push loads in one transaction on one connection (the remote
    /// is never half-loaded) and verifies in parallel
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Go on although the source holds what the copy cannot make exact (event triggers,
    /// publications, subscriptions, foreign tables' data, large objects): each is left out of
    /// the check, named as a warning in the plan and the report, instead of refusing the copy
    #[arg(long)]
    pub allow_uncopyable: bool,
}

impl CopyArgs {
    pub fn partial(&self) -> bool {
        !self.tables.is_empty() || !self.exclude_tables.is_empty()
    }
}

/// The two logs of one database's load.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadLogs {
    pub dump: PathBuf,
    pub load: PathBuf,
}

impl LoadLogs {
    pub fn new(dir: &Path, command: &str, db: Database, stamp: &str) -> LoadLogs {
        LoadLogs {
            dump: dir.join(format!("{command}-{}-{stamp}-pg_dump.log", db.label())),
            load: dir.join(format!("{command}-{}-{stamp}-psql.log", db.label())),
        }
    }

    /// The logs of job `i` of a parallel load (job 0 keeps the plain names).
    pub fn job(&self, i: usize) -> LoadLogs {
        let numbered = |path: &Path| match i {
            0 => path.to_path_buf(),
            _ => path.with_extension(format!("job{i}.log")),
        };
        LoadLogs {
            dump: numbered(&self.dump),
            load: numbered(&self.load),
        }
    }
}

/// Bytes for people: `12.3 MB`.
pub fn human_bytes(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(45_000_000), "45.0 MB");
    }
}
