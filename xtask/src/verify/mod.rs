//! The comparison engine behind `cargo xtask db-verify`, and the check that `db-pull` and
//! `db-push` end with. It compares two databases (the "left" and "right" sides, by default remote
//! and local) and reports, per database:
//!
//! - every table of every non-system schema with its exact `count(*)`, and the tables that exist
//!   on one side only;
//! - the Alembic revision of each side, whether it is at its config's head, and more than one
//!   head as a finding;
//! - the schema, compared by name and not by physical position: columns (type, nullability,
//!   default, identity, generation, collation), primary/unique/foreign-key/check/exclusion
//!   constraints, indexes, extensions; views and materialized views, functions and procedures,
//!   triggers, enum types, domains, row-level security (policies, enabled/forced), and every
//!   sequence's position (owned by a column or not);
//! - with `checksums`, one checksum per table over its rows (see [`catalog::checksum_sql`] and
//!   docs/checksums.md);
//! - foreign-key orphans and sequences behind their column, on each side.
//!
//! Each side is read in one read-only REPEATABLE READ transaction (one consistent snapshot, no
//! writes), and both sides are read at the same time. Use [`compare`] for the whole thing, or
//! [`read_both`] + [`build`] to overlap other work (reading the Alembic heads) with the reads.

mod alembic;
pub mod catalog;
mod comparison;
mod data;
pub mod recreate;
pub mod report;
mod schema;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::Result;
use serde::Serialize;

use crate::{config::Database, config::DbUrl, pg::ident::QualifiedName};
use catalog::{Catalog, ChecksumMethod, ChecksumPlan, Snapshot, TablePlan};

pub use alembic::{AlembicComparison, AlembicHeads, AlembicSide};
pub use comparison::DatabaseComparison;
pub use data::{Orphan, SequenceBehind, TableComparison, TableStatus};
pub use schema::{
    compare_schema, Change, Field, ObjectKind, SchemaDifference, SchemaObject, Sides, NOT_READABLE,
};

/// One side of a comparison: what it is called in reports (`remote`, `local`, `source`...) and
/// where it is.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub side: String,
    pub url: DbUrl,
}

impl Endpoint {
    pub fn new(side: impl Into<String>, url: DbUrl) -> Endpoint {
        Endpoint {
            side: side.into(),
            url,
        }
    }
}

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Compute a checksum of every table's rows (one full read of each table on the server).
    pub checksums: bool,
    pub connect_timeout: Duration,
    /// The heads to check each side's revision against; `None` leaves "at head" unknown.
    pub heads: Option<AlembicHeads>,
}

/// One side as the report shows it. The URL is the masked form: no password.
#[derive(Clone, Debug, Serialize)]
pub struct SideInfo {
    pub side: String,
    pub url: String,
    pub server_version: Option<String>,
}

impl SideInfo {
    pub fn of(endpoint: &Endpoint, server_version: Option<&str>) -> SideInfo {
        SideInfo {
            side: endpoint.side.clone(),
            url: endpoint.url.to_string(),
            server_version: server_version.map(str::to_string),
        }
    }
}

/// Columns left out of the checksums, per table: those a masked pull rewrites by design.
pub type Unchecked = BTreeMap<QualifiedName, BTreeSet<String>>;

/// Leaves `unchecked`'s columns out of each plan's checksum.
pub fn leave_out(plans: &mut [TablePlan], unchecked: &Unchecked) {
    for plan in plans {
        if let (Some(checksum), Some(left_out)) =
            (plan.checksum.as_mut(), unchecked.get(&plan.table))
        {
            checksum.columns.retain(|c| !left_out.contains(c));
        }
    }
}

/// Connects to both sides at once and reads each in its own read-only snapshot: catalogs first,
/// then counts (checksums over the columns both sides have, but `unchecked`'s), orphans and
/// sequences.
pub async fn read_both(
    left: &Endpoint,
    right: &Endpoint,
    checksums: bool,
    unchecked: &Unchecked,
    timeout: Duration,
) -> Result<(Snapshot, Snapshot)> {
    let (lc, rc) = tokio::join!(
        catalog::connect(&left.url, timeout),
        catalog::connect(&right.url, timeout)
    );
    let (mut lc, mut rc) = both(left, lc, right, rc)?;
    let (lt, rt) = tokio::join!(
        catalog::begin(&mut lc, &left.url),
        catalog::begin(&mut rc, &right.url)
    );
    let (lt, rt) = both(left, lt, right, rt)?;
    let (lcat, rcat) = tokio::join!(
        catalog::read_catalog(&lt, &left.url),
        catalog::read_catalog(&rt, &right.url)
    );
    let (lcat, rcat) = both(left, lcat, right, rcat)?;
    let (mut lplans, mut rplans) = plans(&lcat, &rcat, checksums);
    leave_out(&mut lplans, unchecked);
    leave_out(&mut rplans, unchecked);
    let (lm, rm) = tokio::join!(
        catalog::measure(&lt, &left.url, &lcat, &lplans),
        catalog::measure(&rt, &right.url, &rcat, &rplans)
    );
    let (lm, rm) = both(left, lm, right, rm)?;
    // Read-only: nothing to keep. Ending the transactions explicitly frees the snapshots now.
    let _ = tokio::join!(lt.rollback(), rt.rollback());
    Ok((
        Snapshot {
            catalog: lcat,
            measures: lm,
        },
        Snapshot {
            catalog: rcat,
            measures: rm,
        },
    ))
}

/// Both results, or an error naming the side(s) that failed and why.
fn both<L, R>(left: &Endpoint, l: Result<L>, right: &Endpoint, r: Result<R>) -> Result<(L, R)> {
    match (l, r) {
        (Ok(l), Ok(r)) => Ok((l, r)),
        (Err(e), Ok(_)) => Err(e.context(left.side.clone())),
        (Ok(_), Err(e)) => Err(e.context(right.side.clone())),
        // The left error stays in the chain (its cause can be classified); both are named.
        (Err(le), Err(re)) => Err(le.context(format!("{}: {re:#}; {}", right.side, left.side))),
    }
}

/// What each side measures: every table's rows; with checksums, over the columns both sides
/// have (a column on one side only is a schema difference already, and leaving it out lets the
/// checksum say whether the shared data is the same), by the method both servers can run.
pub fn plans(left: &Catalog, right: &Catalog, checksums: bool) -> (Vec<TablePlan>, Vec<TablePlan>) {
    let method = ChecksumMethod::for_servers(&left.server_version, &right.server_version);
    let plan = |own: &Catalog, other: &Catalog| -> Vec<TablePlan> {
        own.tables
            .iter()
            .map(|(name, table)| TablePlan {
                table: name.clone(),
                checksum: match (checksums, other.tables.get(name)) {
                    (true, Some(theirs)) => Some(ChecksumPlan {
                        columns: table
                            .columns
                            .keys()
                            .filter(|c| theirs.columns.contains_key(*c))
                            .cloned()
                            .collect(),
                        method,
                    }),
                    _ => None,
                },
            })
            .collect()
    };
    (plan(left, right), plan(right, left))
}

/// Compares one database between two sides.
pub async fn compare(
    database: Database,
    left: &Endpoint,
    right: &Endpoint,
    opts: &VerifyOptions,
) -> Result<DatabaseComparison> {
    let (l, r) = read_both(
        left,
        right,
        opts.checksums,
        &Unchecked::new(),
        opts.connect_timeout,
    )
    .await?;
    Ok(build(
        database,
        left,
        right,
        &l,
        &r,
        opts.heads.as_ref(),
        opts.checksums,
    ))
}

/// The comparison of two snapshots (pure: no I/O).
pub fn build(
    database: Database,
    left: &Endpoint,
    right: &Endpoint,
    l: &Snapshot,
    r: &Snapshot,
    heads: Option<&AlembicHeads>,
    checksums: bool,
) -> DatabaseComparison {
    let (ls, rs) = (left.side.as_str(), right.side.as_str());
    let mut comparison = DatabaseComparison {
        database,
        equal: false,
        checksums,
        left: SideInfo::of(left, Some(&l.catalog.server_version)),
        right: SideInfo::of(right, Some(&r.catalog.server_version)),
        alembic: alembic::compare_alembic(&l.catalog, &r.catalog, heads, ls, rs),
        tables: data::compare_tables(l, r),
        schema_differences: schema::compare_schema(&l.catalog, &r.catalog, ls, rs),
        orphans: [(ls, l), (rs, r)]
            .into_iter()
            .flat_map(|(side, snap)| data::orphans(side, snap))
            .collect(),
        sequences: Vec::new(),
        notes: Vec::new(),
    };
    for (side, snap) in [(ls, l), (rs, r)] {
        let (behind, notes) = data::sequences(side, snap);
        comparison.sequences.extend(behind);
        comparison.notes.extend(notes);
        // Owned sequences that cannot be read have their note from `data::sequences` already.
        for (name, seq) in &snap.catalog.objects.sequences {
            if seq.position.is_none() && seq.owner.is_none() {
                comparison.notes.push(format!(
                    "sequence {name} on {side} is not readable by this user: its position is \
                     not compared"
                ));
            }
        }
    }
    // A sequence behind its column is named by that finding already (with its fix); its
    // position differing between the sides too is the same problem, said once.
    let behind: Vec<QualifiedName> = comparison
        .sequences
        .iter()
        .map(|s| QualifiedName::new(&s.schema, &s.sequence))
        .collect();
    comparison.schema_differences.retain(|d| match &d.object {
        SchemaObject::Sequence(name) => {
            d.change != Change::Field(Field::LastValue) || !behind.contains(name)
        }
        _ => true,
    });
    let alembic_notes = alembic::notes(&comparison.alembic, heads, ls, rs);
    comparison.notes.extend(alembic_notes);
    comparison.equal = comparison.compute_equal();
    comparison
}

#[cfg(test)]
mod tests;
