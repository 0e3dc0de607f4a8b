//! What a snapshot is on the server: a database `<db>_snap_<NAME>` cloned from `<db>`, whose
//! record (time, git commit, Alembic revisions, row counts, size, its files) is JSON in its comment
//! (`COMMENT ON DATABASE`), so that the server alone says what each snapshot holds.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::untouched::RelationFile;
use crate::{exit::UsageError, verify::catalog::Snapshot};

/// The record's format, for a later xtask that changes it.
const FORMAT: u32 = 1;

/// What a snapshot database holds, as written at save.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub xtask_snapshot: u32,
    pub name: String,
    /// `core` or `ai`.
    pub database: String,
    /// The database it was taken of.
    pub of: String,
    /// The server's clock, UTC: `2026-12-02 15:30:00 UTC`.
    pub created_at: String,
    /// This checkout's `git rev-parse HEAD` at save, when there is one.
    pub git_commit: Option<String>,
    /// `alembic_version`'s rows; `None` when the table does not exist.
    pub alembic_revisions: Option<Vec<String>>,
    /// Every table's exact row count, by schema-qualified name.
    pub tables: BTreeMap<String, i64>,
    pub rows: i64,
    pub bytes: i64,
    /// Every relation's file at save (`untouched.rs`); absent in the records of older xtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, RelationFile>>,
    /// The snapshot's write count at save (`untouched::writes`); absent when the server did not
    /// count writes, or in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<i64>,
}

/// A database that is named like a snapshot of `of`.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotDb {
    pub datname: String,
    /// `None`: no comment, or one that is not an xtask record (not ours: never touched).
    pub record: Option<SnapshotRecord>,
    /// Its size now.
    pub bytes: i64,
}

fn prefix(of: &str) -> String {
    format!("{of}_snap_")
}

/// The snapshot database's name for `name` of `of`; a usage error for a name that has
/// characters other than letters, digits, `-` and `_`, or that does not fit in 63 bytes.
pub fn snapshot_db_name(of: &str, name: &str) -> Result<String> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(UsageError::new(format!(
            "snapshot name `{name}`: use letters, digits, `-` and `_` only"
        ))
        .into());
    }
    let datname = format!("{}{name}", prefix(of));
    if datname.len() > 63 {
        return Err(UsageError::new(format!(
            "snapshot name `{name}` is too long: the database {datname} would pass PostgreSQL's \
             63 bytes; use at most {} characters",
            63usize.saturating_sub(prefix(of).len())
        ))
        .into());
    }
    Ok(datname)
}

/// The per-table row counts of a measured snapshot, by name as people read it.
pub fn table_counts(snapshot: &Snapshot) -> BTreeMap<String, i64> {
    snapshot
        .measures
        .tables
        .iter()
        .map(|(t, m)| (t.to_string(), m.rows))
        .collect()
}

impl SnapshotRecord {
    /// The record of a snapshot just cloned and measured.
    pub fn new(
        name: &str,
        database: &str,
        of: &str,
        created_at: String,
        git_commit: Option<String>,
        measured: &Snapshot,
        bytes: i64,
    ) -> SnapshotRecord {
        let tables = table_counts(measured);
        SnapshotRecord {
            xtask_snapshot: FORMAT,
            name: name.to_string(),
            database: database.to_string(),
            of: of.to_string(),
            created_at,
            git_commit,
            alembic_revisions: measured
                .catalog
                .alembic
                .as_ref()
                .map(|a| a.revisions.clone()),
            rows: tables.values().sum(),
            tables,
            bytes,
            files: None,
            writes: None,
        }
    }

    /// Writes the record as the database's comment. The server quotes the text (`format %L`),
    /// so nothing in it can end the literal.
    pub async fn write(&self, admin: &Client, datname: &str) -> Result<()> {
        let json = serde_json::to_string(self).context("writing the snapshot record")?;
        let sql: String = admin
            .query_one(
                "SELECT pg_catalog.format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
                &[&datname, &json],
            )
            .await
            .with_context(|| format!("quoting the record of snapshot {datname}"))?
            .get(0);
        admin
            .batch_execute(&sql)
            .await
            .with_context(|| format!("writing the record of snapshot {datname} (its comment)"))
    }
}

/// Every database named like a snapshot of `of`, oldest first (records before those without).
pub async fn find(admin: &Client, of: &str) -> Result<Vec<SnapshotDb>> {
    let prefix = prefix(of);
    let rows = admin
        .query(
            "SELECT d.datname::text, pg_catalog.shobj_description(d.oid, 'pg_database'), \
                    pg_catalog.pg_database_size(d.oid) \
             FROM pg_catalog.pg_database d \
             WHERE pg_catalog.left(d.datname, pg_catalog.length($1::text)) = $1::text \
             ORDER BY d.datname",
            &[&prefix],
        )
        .await
        .with_context(|| format!("listing the snapshots of {of}"))?;
    let mut found: Vec<SnapshotDb> = rows
        .iter()
        .map(|r| {
            let comment: Option<String> = r.get(1);
            let record = comment
                .and_then(|c| serde_json::from_str::<SnapshotRecord>(&c).ok())
                .filter(|rec| rec.of == of && rec.xtask_snapshot == FORMAT);
            SnapshotDb {
                datname: r.get(0),
                record,
                bytes: r.get(2),
            }
        })
        .collect();
    found.sort_by_key(|s| {
        let created = s.record.as_ref().map(|r| r.created_at.clone());
        (created.is_none(), created, s.datname.clone())
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_fit() {
        assert_eq!(
            snapshot_db_name("sigmasight_db", "before-migration").unwrap(),
            "sigmasight_db_snap_before-migration"
        );
        for bad in ["", "a b", "x;drop", "é"] {
            let err = snapshot_db_name("sigmasight_db", bad).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}");
        }
        let err = snapshot_db_name("sigmasight_db", &"n".repeat(60)).unwrap_err();
        assert!(err.to_string().contains("at most 44 characters"), "{err}");
    }
}
