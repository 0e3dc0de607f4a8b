//! The comparison of data: every table's row count (and checksum), the tables on one side
//! only, and on each side the foreign keys with orphaned rows and the sequences behind their
//! columns.

use std::{collections::BTreeSet, fmt};

use serde::Serialize;

use super::catalog::{Snapshot, TableKind};
use crate::pg::ident::{quote_ident, shown_ident, QualifiedName};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Same row count (and same checksum, when checksums were computed).
    Ok,
    RowsDiffer,
    /// Same row count, different checksum: a value changed.
    ChecksumDiffers,
    OnlyLeft,
    OnlyRight,
}

#[derive(Clone, Debug, Serialize)]
pub struct TableComparison {
    pub schema: String,
    pub table: String,
    pub status: TableStatus,
    pub left_rows: Option<i64>,
    pub right_rows: Option<i64>,
    /// Present with `--checksums` on the sides that have the table (for a table on both sides,
    /// computed over the columns both sides have, in name order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_checksum: Option<String>,
    /// A partitioned table: its rows are its partitions', which are listed too, so a total
    /// leaves it out.
    #[serde(skip)]
    pub partitioned: bool,
}

impl TableComparison {
    pub fn name(&self) -> QualifiedName {
        QualifiedName::new(&self.schema, &self.table)
    }
}

/// Rows on one side whose foreign key points at no parent row.
#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub side: String,
    pub constraint: String,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub parent_schema: String,
    pub parent_table: String,
    pub parent_columns: Vec<String>,
    pub rows: i64,
    /// A digest of the orphans' referencing keys (not in the JSON report: it only compares).
    #[serde(skip)]
    pub keys_digest: String,
}

impl Orphan {
    /// Whether `other` (the other side's) names the same orphans: the same foreign key of the
    /// same table, as many rows, with the same referencing keys. Equal counts alone are not
    /// enough: a copy that lost one orphan and gained another would pass for "as in the source".
    pub fn same_orphans_as(&self, other: &Orphan) -> bool {
        self.constraint == other.constraint
            && (&self.schema, &self.table) == (&other.schema, &other.table)
            && self.rows == other.rows
            && self.keys_digest == other.keys_digest
    }
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = |c: &[String]| {
            c.iter()
                .map(|c| shown_ident(c).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "orphans on {}: {} row(s) of {} ({}) have no parent in {} ({}) [foreign key {}]",
            self.side,
            self.rows,
            QualifiedName::new(&self.schema, &self.table),
            cols(&self.columns),
            QualifiedName::new(&self.parent_schema, &self.parent_table),
            cols(&self.parent_columns),
            shown_ident(&self.constraint),
        )
    }
}

/// A sequence whose next value is already taken in its column: the next insert collides.
#[derive(Clone, Debug, Serialize)]
pub struct SequenceBehind {
    pub side: String,
    pub schema: String,
    pub sequence: String,
    pub table_schema: String,
    pub table: String,
    pub column: String,
    /// `None` when the sequence was never used.
    pub last_value: Option<i64>,
    pub next_value: i64,
    /// The column's max (its min when the sequence is descending).
    pub column_max: i64,
    pub descending: bool,
}

impl fmt::Display for SequenceBehind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extreme = if self.descending { "min" } else { "max" };
        write!(
            f,
            "sequence {} on {}: next value {} but {}.{} already reaches {} (its {}): the next \
             insert would collide (fix: SELECT setval('{}', (SELECT {}({}) FROM {})))",
            QualifiedName::new(&self.schema, &self.sequence),
            self.side,
            self.next_value,
            QualifiedName::new(&self.table_schema, &self.table),
            shown_ident(&self.column),
            self.column_max,
            extreme,
            QualifiedName::new(&self.schema, &self.sequence)
                .sql()
                .replace('\'', "''"),
            extreme,
            quote_ident(&self.column),
            QualifiedName::new(&self.table_schema, &self.table).sql(),
        )
    }
}

pub(super) fn compare_tables(l: &Snapshot, r: &Snapshot) -> Vec<TableComparison> {
    let names: BTreeSet<&QualifiedName> = l
        .catalog
        .tables
        .keys()
        .chain(r.catalog.tables.keys())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let lm = l.measures.tables.get(name);
            let rm = r.measures.tables.get(name);
            let in_left = l.catalog.tables.contains_key(name);
            let in_right = r.catalog.tables.contains_key(name);
            let status = match (in_left, in_right) {
                (true, false) => TableStatus::OnlyLeft,
                (false, true) => TableStatus::OnlyRight,
                _ => match (lm, rm) {
                    (Some(a), Some(b)) if a.rows != b.rows => TableStatus::RowsDiffer,
                    (Some(a), Some(b)) if a.checksum != b.checksum => TableStatus::ChecksumDiffers,
                    (Some(_), Some(_)) => TableStatus::Ok,
                    // A table in the catalog is always measured; if not, it cannot be "ok".
                    _ => TableStatus::RowsDiffer,
                },
            };
            TableComparison {
                schema: name.schema.clone(),
                table: name.name.clone(),
                status,
                left_rows: lm.map(|m| m.rows),
                right_rows: rm.map(|m| m.rows),
                left_checksum: lm.and_then(|m| m.checksum.clone()),
                right_checksum: rm.and_then(|m| m.checksum.clone()),
                partitioned: l
                    .catalog
                    .tables
                    .get(name)
                    .or_else(|| r.catalog.tables.get(name))
                    .is_some_and(|t| t.kind == TableKind::Partitioned),
            }
        })
        .collect()
}

pub(super) fn orphans(side: &str, snap: &Snapshot) -> Vec<Orphan> {
    snap.catalog
        .foreign_keys
        .iter()
        .zip(&snap.measures.orphans)
        .filter(|(_, n)| n.rows > 0)
        .map(|(fk, n)| Orphan {
            side: side.to_string(),
            constraint: fk.name.clone(),
            schema: fk.table.schema.clone(),
            table: fk.table.name.clone(),
            columns: fk.columns.clone(),
            parent_schema: fk.parent.schema.clone(),
            parent_table: fk.parent.name.clone(),
            parent_columns: fk.parent_columns.clone(),
            rows: n.rows,
            keys_digest: n.keys_digest.clone(),
        })
        .collect()
}

pub(super) fn sequences(side: &str, snap: &Snapshot) -> (Vec<SequenceBehind>, Vec<String>) {
    let mut behind = Vec::new();
    let mut notes = Vec::new();
    for (seq, extreme) in snap
        .catalog
        .sequences
        .iter()
        .zip(&snap.measures.sequence_columns)
    {
        if !seq.readable {
            notes.push(format!(
                "sequence {} on {side} is not readable by this user: not checked",
                seq.sequence
            ));
            continue;
        }
        let Some(extreme) = *extreme else { continue };
        let next = seq.next_value();
        let collides = if seq.descending() {
            next >= extreme
        } else {
            next <= extreme
        };
        if collides {
            behind.push(SequenceBehind {
                side: side.to_string(),
                schema: seq.sequence.schema.clone(),
                sequence: seq.sequence.name.clone(),
                table_schema: seq.table.schema.clone(),
                table: seq.table.name.clone(),
                column: seq.column.clone(),
                last_value: seq.last_value,
                next_value: next,
                column_max: extreme,
                descending: seq.descending(),
            });
        }
    }
    (behind, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(side: &str, rows: i64, keys_digest: &str) -> Orphan {
        Orphan {
            side: side.into(),
            constraint: "child_parent_id_fkey".into(),
            schema: "public".into(),
            table: "child".into(),
            columns: vec!["parent_id".into()],
            parent_schema: "public".into(),
            parent_table: "parent".into(),
            parent_columns: vec!["id".into()],
            rows,
            keys_digest: keys_digest.into(),
        }
    }

    #[test]
    fn orphans_are_the_same_only_with_the_same_keys_not_just_as_many() {
        let source = orphan("remote", 2, "d1");
        assert!(orphan("local", 2, "d1").same_orphans_as(&source));
        assert!(
            !orphan("local", 2, "d2").same_orphans_as(&source),
            "as many orphans, other keys"
        );
        assert!(!orphan("local", 1, "d1").same_orphans_as(&source));
        let mut other_fk = orphan("local", 2, "d1");
        other_fk.constraint = "child_other_fkey".into();
        assert!(!other_fk.same_orphans_as(&source));
    }
}
