//! How a verification is shown: an aligned table per database for people, one JSON document for
//! programs (`--json`).
//!
//! # The JSON document
//!
//! `cargo xtask db-verify --json` prints exactly one JSON document on stdout (anything for people
//! goes to stderr). The exit code says the same as `status`: 0 `equal`, 3 `differences`, 1
//! `error`. "left" is the first side of the human table (`remote` by default) and "right" the
//! second (`local`); each database object names its sides.
//!
//! ```json
//! {
//!   "status": "differences",        // "equal" | "differences" | "error" (a database could not be compared)
//!   "equal": false,                 // true only when every database is equal
//!   "checksums": true,              // whether --checksums was given
//!   "databases": [                  // one object per database: "core", then "ai" (unless --core-only)
//!     {
//!       "database": "core",
//!       "equal": false,
//!       "summary": "core: DIFFERENT: 1 table with different row counts",
//!       "checksums": true,
//!       "left":  { "side": "remote", "url": "postgresql://postgres:****@host:5432/railway", "server_version": "17.4" },
//!       "right": { "side": "local",  "url": "postgresql://sigmasight:****@localhost:5432/sigmasight_db", "server_version": "17.6" },
//!       "alembic": {
//!         "config": "alembic.ini",                 // null when heads were not read
//!         "heads": ["c0005_correlations"],         // null when unknown
//!         "heads_error": null,                     // why the heads could not be read
//!         "left":  { "revisions": ["c0005_correlations"], "table": "public.alembic_version", "at_head": true },
//!         "right": { "revisions": [], "table": null, "at_head": false },   // [] and null: no alembic_version
//!         "findings": ["revisions differ: c0005_correlations (remote) vs none (local)"]
//!       },
//!       "tables": [                                // one object per table on either side, by schema then name
//!         { "schema": "public", "table": "users", "status": "ok",
//!           "left_rows": 6, "right_rows": 6,
//!           "left_checksum": "3f2a...", "right_checksum": "3f2a..." },   // only with --checksums
//!         { "schema": "public", "table": "extra", "status": "only_right", "left_rows": null, "right_rows": 10 }
//!       ],                                         // status: ok | rows_differ | checksum_differs | only_left | only_right
//!       "schema_differences": [
//!         { "kind": "column",                      // extension | column | constraint | index | table
//!                                                  //   | view | materialized_view | function | trigger
//!                                                  //   | type | domain | policy | sequence
//!           "object": "public.positions.notes",
//!           "detail": "type text (remote) vs character varying(20) (local)",
//!           "left": "text", "right": "character varying(20)" }   // null where the object is missing
//!       ],
//!       "orphans": [                               // foreign keys with rows whose parent is missing
//!         { "side": "local", "constraint": "fk_positions_portfolio_id",
//!           "schema": "public", "table": "positions", "columns": ["portfolio_id"],
//!           "parent_schema": "public", "parent_table": "portfolios", "parent_columns": ["id"],
//!           "rows": 3 }
//!       ],
//!       "sequences": [                             // sequences whose next value is already in their column
//!         { "side": "local", "schema": "public", "sequence": "market_data_cache_id_seq",
//!           "table_schema": "public", "table": "market_data_cache", "column": "id",
//!           "last_value": 5, "next_value": 6, "column_max": 193488, "descending": false }
//!       ],
//!       "notes": ["local is not at the head of alembic.ini (c0005_correlations): ..."]   // never differences
//!     },
//!     {                                            // a database that could not be compared
//!       "database": "ai",
//!       "equal": false,
//!       "left":  { "side": "remote", "url": "postgresql://postgres:****@host:5432/railway_ai", "server_version": null },
//!       "right": { "side": "local",  "url": "...", "server_version": null },
//!       "error": { "kind": "authentication",       // unreachable | authentication | missing_database | other | error
//!                  "message": "remote: cannot connect to postgresql://postgres:****@host:5432/railway_ai: authentication failed ..." }
//!     }
//!   ]
//! }
//! ```
//!
//! Row counts are exact (`count(*)`). What is a difference: a table whose row counts (or, with
//! `--checksums`, checksums) differ or that exists on one side only; different Alembic revisions
//! or more than one head; any schema difference; any orphan; any sequence behind its column.
//! Not being at head is a note, not a difference: two databases at the same older revision are
//! equal. URLs never carry a password.

mod human;

use serde::Serialize;

use crate::{
    config::Database,
    pg::client::{connect_failure, ConnectFailure},
};

use super::{DatabaseComparison, Endpoint, SideInfo};
use human::render_failure;

pub use human::render_comparison;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Equal,
    Differences,
    Error,
}

/// Why a database could not be compared.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// `unreachable`, `authentication`, `missing_database`, `other` (the server refused), or
    /// `error` (anything else, e.g. a query failed).
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailedComparison {
    pub database: Database,
    pub equal: bool,
    pub left: SideInfo,
    pub right: SideInfo,
    pub error: Failure,
}

impl FailedComparison {
    pub fn new(
        database: Database,
        left: &Endpoint,
        right: &Endpoint,
        err: &anyhow::Error,
    ) -> FailedComparison {
        let kind = match connect_failure(err) {
            Some(ConnectFailure::Unreachable) => "unreachable",
            Some(ConnectFailure::Authentication) => "authentication",
            Some(ConnectFailure::MissingDatabase) => "missing_database",
            Some(ConnectFailure::Other) => "other",
            None => "error",
        };
        FailedComparison {
            database,
            equal: false,
            left: SideInfo::of(left, None),
            right: SideInfo::of(right, None),
            error: Failure {
                kind: kind.to_string(),
                message: format!("{err:#}"),
            },
        }
    }
}

/// One database's result: compared, or not comparable.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum DatabaseOutcome {
    Compared(Box<ComparedDatabase>),
    Failed(FailedComparison),
}

/// A comparison with its summary line, as the JSON document carries it.
#[derive(Clone, Debug, Serialize)]
pub struct ComparedDatabase {
    pub summary: String,
    #[serde(flatten)]
    pub comparison: DatabaseComparison,
}

impl DatabaseOutcome {
    pub fn compared(comparison: DatabaseComparison) -> DatabaseOutcome {
        DatabaseOutcome::Compared(Box::new(ComparedDatabase {
            summary: comparison.summary(),
            comparison,
        }))
    }
}

/// The whole run: every database's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub status: ReportStatus,
    pub equal: bool,
    pub checksums: bool,
    pub databases: Vec<DatabaseOutcome>,
}

impl Report {
    pub fn new(checksums: bool, databases: Vec<DatabaseOutcome>) -> Report {
        let failed = databases
            .iter()
            .any(|d| matches!(d, DatabaseOutcome::Failed(_)));
        let equal = !failed
            && databases.iter().all(|d| match d {
                DatabaseOutcome::Compared(c) => c.comparison.equal,
                DatabaseOutcome::Failed(_) => false,
            });
        Report {
            status: if failed {
                ReportStatus::Error
            } else if equal {
                ReportStatus::Equal
            } else {
                ReportStatus::Differences
            },
            equal,
            checksums,
            databases,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// Every database in turn, for people.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for (i, db) in self.databases.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match db {
                DatabaseOutcome::Compared(c) => out.push_str(&render_comparison(&c.comparison)),
                DatabaseOutcome::Failed(f) => out.push_str(&render_failure(f)),
            }
        }
        out
    }

    /// The last line: `db-verify: core equal, ai equal`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .databases
            .iter()
            .map(|d| match d {
                DatabaseOutcome::Compared(c) => c.summary.clone(),
                DatabaseOutcome::Failed(f) => {
                    format!(
                        "{}: could not compare ({})",
                        f.database.label(),
                        f.error.kind
                    )
                }
            })
            .collect();
        format!("db-verify: {}", parts.join("; "))
    }
}
