//! The comparison of one database between two sides, as a whole: what it found, whether the
//! sides are equal, and its one-line summary.

use serde::Serialize;

use super::{
    AlembicComparison, Orphan, SchemaDifference, SequenceBehind, SideInfo, TableComparison,
    TableStatus,
};
use crate::config::Database;

/// The comparison of one database (Core or AI) between two sides.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseComparison {
    pub database: Database,
    pub equal: bool,
    pub checksums: bool,
    pub left: SideInfo,
    pub right: SideInfo,
    pub alembic: AlembicComparison,
    pub tables: Vec<TableComparison>,
    pub schema_differences: Vec<SchemaDifference>,
    pub orphans: Vec<Orphan>,
    pub sequences: Vec<SequenceBehind>,
    /// What was not checked, and why (never a difference).
    pub notes: Vec<String>,
}

impl DatabaseComparison {
    /// No difference of any kind: tables, Alembic, schema, orphans, sequences.
    pub fn is_equal(&self) -> bool {
        self.equal
    }

    pub(super) fn compute_equal(&self) -> bool {
        self.tables.iter().all(|t| t.status == TableStatus::Ok)
            && self.schema_differences.is_empty()
            && self.alembic.findings.is_empty()
            && self.orphans.is_empty()
            && self.sequences.is_empty()
    }

    /// One line: `core: equal (17 tables)` or `core: 2 differences: 1 table with other row
    /// counts, 1 schema difference`.
    pub fn summary(&self) -> String {
        let db = self.database.label();
        if self.equal {
            // Each row once: a partitioned table's rows are its partitions'.
            let rows: i64 = self
                .tables
                .iter()
                .filter(|t| !t.partitioned)
                .filter_map(|t| t.left_rows)
                .sum();
            return format!(
                "{db}: equal ({} tables, {rows} rows{})",
                self.tables.len(),
                if self.checksums {
                    ", checksums match"
                } else {
                    ""
                }
            );
        }
        let count = |s: TableStatus| self.tables.iter().filter(|t| t.status == s).count();
        let mut parts = Vec::new();
        let mut push = |n: usize, one: &str, many: &str| match n {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        };
        push(
            count(TableStatus::RowsDiffer),
            "table with different row counts",
            "tables with different row counts",
        );
        push(
            count(TableStatus::ChecksumDiffers),
            "table with different contents (checksum)",
            "tables with different contents (checksum)",
        );
        push(
            count(TableStatus::OnlyLeft),
            &format!("table only on {}", self.left.side),
            &format!("tables only on {}", self.left.side),
        );
        push(
            count(TableStatus::OnlyRight),
            &format!("table only on {}", self.right.side),
            &format!("tables only on {}", self.right.side),
        );
        push(
            self.alembic.findings.len(),
            "Alembic finding",
            "Alembic findings",
        );
        push(
            self.schema_differences.len(),
            "schema difference",
            "schema differences",
        );
        let mut sides = vec![self.left.side.as_str()];
        if self.right.side != self.left.side {
            sides.push(self.right.side.as_str());
        }
        for side in &sides {
            push(
                self.orphans.iter().filter(|o| o.side == *side).count(),
                &format!("foreign key with orphans on {side}"),
                &format!("foreign keys with orphans on {side}"),
            );
        }
        for side in &sides {
            push(
                self.sequences.iter().filter(|s| s.side == *side).count(),
                &format!("sequence behind its column on {side}"),
                &format!("sequences behind their columns on {side}"),
            );
        }
        format!("{db}: DIFFERENT: {}", parts.join(", "))
    }
}
