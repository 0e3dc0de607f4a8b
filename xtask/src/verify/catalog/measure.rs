//! Phase two of a side's read: exact row counts, optional checksums, foreign-key orphans and
//! the columns behind owned sequences, all pipelined on the side's one connection, once
//! `rls.rs` has checked that no row-level security policy hides rows from the role.

use anyhow::{Context, Result};
use futures_util::{stream, StreamExt};
use tokio_postgres::GenericClient;

use super::checksum::checksum_sql;
use super::session::{explain, first_failure, keep_ok};
use super::*;
use crate::config::DbUrl;
use crate::pg::ident::{quote_ident, shown_ident};

/// How many queries one side keeps in flight on its connection (pipelining saves round trips to
/// a remote server; the server still runs them one after the other).
const PIPELINE: usize = 16;

pub fn count_sql(table: &QualifiedName, kind: TableKind) -> String {
    format!(
        "SELECT pg_catalog.count(*) FROM {}",
        kind.from_clause(table)
    )
}

/// Counts the rows whose referencing columns are set but have no parent row (MATCH SIMPLE: a
/// null in any referencing column exempts the row; MATCH FULL: only all-null rows are exempt),
/// and digests their referencing keys (the sum of each key's `ROW(...)::text` hash, whatever the
/// order, in the transaction's pinned text output): two sides with the same digest have the same
/// orphans, not only as many.
pub fn orphans_sql(fk: &ForeignKey) -> String {
    let child = quote_ident("xtask_child");
    let parent = quote_ident("xtask_parent");
    let col = |alias: &str, c: &str| format!("{alias}.{}", quote_ident(c));
    let joins: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .enumerate()
        .map(|(i, (c, p))| {
            let op = fk.operators.get(i).map(String::as_str).unwrap_or("=");
            format!("{} {op} {}", col(&parent, p), col(&child, c))
        })
        .collect();
    let missing_parent = format!(
        "NOT EXISTS (SELECT 1 FROM {} AS {parent} WHERE {})",
        fk.parent_kind.from_clause(&fk.parent),
        joins.join(" AND ")
    );
    let is_null: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("{} IS NULL", col(&child, c)))
        .collect();
    let not_null: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", col(&child, c)))
        .collect();
    let condition = if fk.match_full {
        format!(
            "({}) AND ({} OR {missing_parent})",
            not_null.join(" OR "),
            is_null.join(" OR ")
        )
    } else {
        format!("{} AND {missing_parent}", not_null.join(" AND "))
    };
    let key: Vec<String> = fk.columns.iter().map(|c| col(&child, c)).collect();
    format!(
        "SELECT pg_catalog.count(*), pg_catalog.md5(pg_catalog.count(*)::text || ':' || \
         COALESCE(pg_catalog.sum(pg_catalog.hashtextextended(ROW({key})::text COLLATE \
         pg_catalog.\"C\", 0)), 0)::text) FROM {} AS {child} WHERE {condition}",
        fk.table_kind.from_clause(&fk.table),
        key = key.join(", "),
    )
}

/// The column's max (min for a descending sequence), as bigint.
pub fn sequence_column_sql(seq: &OwnedSequence) -> String {
    format!(
        "SELECT pg_catalog.{}({})::bigint FROM {}",
        if seq.descending() { "min" } else { "max" },
        quote_ident(&seq.column),
        seq.table_kind.from_clause(&seq.table)
    )
}

enum Job<'p> {
    Table(&'p TablePlan, String),
    Orphans(&'p ForeignKey),
    Sequence(&'p OwnedSequence),
}

enum Outcome {
    Table(QualifiedName, TableMeasure),
    Orphans(OrphanMeasure),
    Sequence(Option<i64>),
}

async fn run_job<C: GenericClient + Sync>(tx: &C, url: &DbUrl, job: Job<'_>) -> Result<Outcome> {
    match job {
        Job::Table(plan, sql) => {
            let row = tx
                .query_one(&sql, &[])
                .await
                .map_err(explain)
                .with_context(|| {
                    format!(
                        "{} {} on {url}",
                        if plan.checksum.is_some() {
                            "checksumming"
                        } else {
                            "counting the rows of"
                        },
                        plan.table
                    )
                })?;
            let measure = TableMeasure {
                rows: row.get(0),
                checksum: plan.checksum.as_ref().map(|_| row.get(1)),
            };
            Ok(Outcome::Table(plan.table.clone(), measure))
        }
        Job::Orphans(fk) => {
            let row = tx
                .query_one(&orphans_sql(fk), &[])
                .await
                .map_err(explain)
                .with_context(|| {
                    format!(
                        "checking foreign key {} of {} for orphans on {url}",
                        shown_ident(&fk.name),
                        fk.table
                    )
                })?;
            Ok(Outcome::Orphans(OrphanMeasure {
                rows: row.get(0),
                keys_digest: row.get(1),
            }))
        }
        Job::Sequence(seq) => {
            if !seq.checkable() {
                return Ok(Outcome::Sequence(None));
            }
            let row = tx
                .query_one(&sequence_column_sql(seq), &[])
                .await
                .map_err(explain)
                .with_context(|| {
                    format!(
                        "reading {}.{} for sequence {} on {url}",
                        seq.table,
                        shown_ident(&seq.column),
                        seq.sequence
                    )
                })?;
            Ok(Outcome::Sequence(row.get(0)))
        }
    }
}

/// Phase two: row counts and checksums of the planned tables, orphans of every foreign key, and
/// the columns behind every owned sequence, pipelined on the side's one connection.
pub async fn measure<C: GenericClient + Sync>(
    tx: &C,
    url: &DbUrl,
    catalog: &Catalog,
    plans: &[TablePlan],
) -> Result<Measures> {
    // Before any count: a table whose rows a policy would hide is refused by name.
    super::rls::check_reads_every_row(tx, url, catalog).await?;
    let mut jobs: Vec<Job> = Vec::new();
    for plan in plans {
        let Some(table) = catalog.tables.get(&plan.table) else {
            continue;
        };
        let sql = match &plan.checksum {
            Some(checksum) => checksum_sql(&plan.table, table, &checksum.columns, checksum.method),
            None => count_sql(&plan.table, table.kind),
        };
        jobs.push(Job::Table(plan, sql));
    }
    jobs.extend(catalog.foreign_keys.iter().map(Job::Orphans));
    jobs.extend(catalog.sequences.iter().map(Job::Sequence));

    // Named async fns rather than closures: the futures stay `Send` for tokio::spawn.
    let futures: Vec<_> = jobs.into_iter().map(|job| run_job(tx, url, job)).collect();
    let results: Vec<Result<Outcome>> = stream::iter(futures).buffered(PIPELINE).collect().await;
    let mut errors = Vec::new();
    let outcomes: Vec<Outcome> = results
        .into_iter()
        .filter_map(|r| keep_ok(r, &mut errors))
        .collect();
    if !errors.is_empty() {
        return Err(first_failure(errors));
    }

    let mut measures = Measures::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Table(name, m) => {
                measures.tables.insert(name, m);
            }
            Outcome::Orphans(n) => measures.orphans.push(n),
            Outcome::Sequence(v) => measures.sequence_columns.push(v),
        }
    }
    Ok(measures)
}
