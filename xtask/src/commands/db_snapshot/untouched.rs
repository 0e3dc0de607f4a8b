//! Whether a snapshot still holds what its record says, without reading its rows. A restore's
//! clone is a file copy of the snapshot (`STRATEGY = FILE_COPY`), so the rows that save counted
//! are there unless the snapshot was written to after save. Three facts, cheap to read, show
//! that it was not:
//!
//! - it is still closed to connections (`datallowconn` false, as save left it);
//! - the server's count of its rows inserted, updated and deleted (`pg_stat_database`) is what
//!   it was at save (only when `track_counts` is on; a reset of the statistics, as after a
//!   crash, is a difference too unless both are zero);
//! - every relation of the clone (tables, their TOAST tables, indexes, sequences) has the
//!   `relfilenode` and main-fork size it had at save: a `TRUNCATE`, a rewrite or DDL changes
//!   them, and most inserts grow a file.
//!
//! When any of them cannot be shown (a record from an older xtask, statistics off, a snapshot
//! opened by hand), the restore counts every table of the clone instead.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

/// One relation's file, as the catalog says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationFile {
    pub relfilenode: i64,
    pub bytes: i64,
}

/// The files of every user relation of the connected database (their TOAST tables too), by
/// schema-qualified name (as `format('%I.%I')` writes it). The system catalogs are left out
/// (oids below 16384, `FirstNormalObjectId`): the shared ones, such as the TOAST table of
/// `pg_shdescription` that holds the records themselves, change with every snapshot saved.
pub async fn relation_files(client: &Client) -> Result<BTreeMap<String, RelationFile>> {
    let rows = client
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relfilenode::bigint, \
                    pg_catalog.pg_relation_size(c.oid) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm', 't', 'i', 'S') AND c.oid >= 16384 \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .context("reading the relations' files (pg_class)")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                RelationFile {
                    relfilenode: r.get(1),
                    bytes: r.get(2),
                },
            )
        })
        .collect())
}

/// The database's rows inserted, updated and deleted since its statistics began; `None` when
/// the server does not count them (`track_counts` off).
pub async fn writes(admin: &Client, datname: &str) -> Result<Option<i64>> {
    let row = admin
        .query_one(
            "SELECT pg_catalog.current_setting('track_counts')::bool, \
                    (SELECT (d.tup_inserted + d.tup_updated + d.tup_deleted)::bigint \
                     FROM pg_catalog.pg_stat_database d WHERE d.datname = $1::text)",
            &[&datname],
        )
        .await
        .with_context(|| format!("reading the write statistics of {datname}"))?;
    let counted: bool = row.get(0);
    Ok(if counted { row.get(1) } else { None })
}

/// Whether `datname` accepts connections now.
pub async fn allows_connections(admin: &Client, datname: &str) -> Result<bool> {
    let row = admin
        .query_one(
            "SELECT d.datallowconn FROM pg_catalog.pg_database d WHERE d.datname = $1::text",
            &[&datname],
        )
        .await
        .with_context(|| format!("reading whether {datname} accepts connections"))?;
    Ok(row.get(0))
}

/// What save wrote down and what the snapshot and its clone show now.
pub struct Evidence<'a> {
    pub saved_files: Option<&'a BTreeMap<String, RelationFile>>,
    pub saved_writes: Option<i64>,
    pub allows_connections: bool,
    pub writes: Option<i64>,
    pub files: &'a BTreeMap<String, RelationFile>,
}

/// `Ok` when the evidence shows the snapshot unwritten since save; else why not (the restore
/// then counts the rows).
pub fn unwritten(e: &Evidence) -> std::result::Result<(), String> {
    let (Some(saved_files), Some(saved_writes)) = (e.saved_files, e.saved_writes) else {
        return Err("its record, from an older xtask, has no file facts".into());
    };
    if e.allows_connections {
        return Err("it was opened to connections after save".into());
    }
    match e.writes {
        None => return Err("the server does not count writes (track_counts is off)".into()),
        Some(w) if w != saved_writes => {
            return Err(format!(
                "its write count is {w}, {saved_writes} at save (written to, or the statistics \
                 were reset)"
            ))
        }
        Some(_) => {}
    }
    let mut changed: Vec<&str> = saved_files
        .iter()
        .filter(|(name, file)| e.files.get(*name) != Some(*file))
        .map(|(name, _)| name.as_str())
        .chain(
            e.files
                .keys()
                .filter(|name| !saved_files.contains_key(*name))
                .map(String::as_str),
        )
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    changed.sort_unstable();
    changed.dedup();
    Err(format!("files changed since save: {}", changed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, i64, i64)]) -> BTreeMap<String, RelationFile> {
        entries
            .iter()
            .map(|(n, relfilenode, bytes)| {
                (
                    n.to_string(),
                    RelationFile {
                        relfilenode: *relfilenode,
                        bytes: *bytes,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_snapshot_is_trusted_only_when_closed_unwritten_and_its_files_as_saved() {
        let saved = files(&[
            ("public.users", 16390, 8192),
            ("public.users_pkey", 16400, 16384),
        ]);
        let same = saved.clone();
        let evidence = |files, allows_connections, writes, saved_writes| Evidence {
            saved_files: Some(&saved),
            saved_writes,
            allows_connections,
            writes,
            files,
        };
        assert_eq!(unwritten(&evidence(&same, false, Some(0), Some(0))), Ok(()));

        let old = Evidence {
            saved_files: None,
            ..evidence(&same, false, Some(0), Some(0))
        };
        assert!(unwritten(&old).unwrap_err().contains("older xtask"));
        let opened = unwritten(&evidence(&same, true, Some(0), Some(0))).unwrap_err();
        assert!(opened.contains("opened"), "{opened}");
        let off = unwritten(&evidence(&same, false, None, Some(0))).unwrap_err();
        assert!(off.contains("track_counts"), "{off}");
        let written = unwritten(&evidence(&same, false, Some(3), Some(0))).unwrap_err();
        assert!(written.contains("write count is 3"), "{written}");

        let truncated = files(&[
            ("public.users", 16500, 0),
            ("public.users_pkey", 16400, 16384),
        ]);
        let why = unwritten(&evidence(&truncated, false, Some(0), Some(0))).unwrap_err();
        assert_eq!(why, "files changed since save: public.users");
        let more = files(&[
            ("public.users", 16390, 8192),
            ("public.users_pkey", 16400, 16384),
            ("public.extra", 16600, 0),
        ]);
        let why = unwritten(&evidence(&more, false, Some(0), Some(0))).unwrap_err();
        assert_eq!(why, "files changed since save: public.extra");
    }
}
