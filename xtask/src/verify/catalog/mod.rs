//! What one side of a comparison reads from its database, in one read-only REPEATABLE READ
//! transaction: first the catalog (tables, columns, constraints, indexes, extensions, foreign keys,
//! owned sequences, views, functions, triggers, enum types, domains, policies, every sequence's
//! position, the Alembic revision), then the measurements (exact row counts, optional
//! checksums, foreign-key orphans, sequence positions), all from the same snapshot.
//!
//! Every name that goes into SQL is quoted with `quote_ident`, schema and table separately; the
//! catalog queries are constant text. Text output of values is made independent of the session:
//! the transaction fixes `TimeZone`, `DateStyle`, `IntervalStyle`, `extra_float_digits`,
//! `bytea_output` and `lc_monetary`, and `search_path` is `pg_catalog` only, so that every
//! definition (defaults, constraints, indexes, types) is printed schema-qualified on both sides.
//!
//! The xtask's own queries here (catalog, counts, checksums, orphans) run under a bounded
//! `statement_timeout` (`XTASK_STATEMENT_TIMEOUT`, default 30 minutes, `0` for none), so that a
//! query stuck behind a lock or on a runaway plan ends with an error that names the setting. The
//! data streams (pg_dump, psql) have sessions of their own and are not limited by it.

mod checksum;
mod measure;
mod objects;
mod objects_sql;
mod read;
mod rls;
mod session;
mod sql;

use std::collections::BTreeMap;

use crate::pg::ident::QualifiedName;

pub use checksum::{checksum_sql, ChecksumMethod};
pub use measure::{count_sql, measure, orphans_sql, sequence_column_sql};
pub use objects::{positions_sql, Comment, Function, Objects, Sequence, View};
pub use read::read_catalog;
pub use session::{begin, begin_exported_snapshot, connect, statement_timeout};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// An ordinary table: its own rows only (`FROM ONLY`), inheritance children are tables of
    /// their own.
    Ordinary,
    /// A partitioned table: the rows of all its partitions (which are also listed on their own).
    Partitioned,
}

impl TableKind {
    fn from_relkind(kind: &str) -> TableKind {
        if kind == "p" {
            TableKind::Partitioned
        } else {
            TableKind::Ordinary
        }
    }

    /// `FROM` target for reading the table's rows.
    pub fn from_clause(self, table: &QualifiedName) -> String {
        match self {
            TableKind::Ordinary => format!("ONLY {}", table.sql()),
            TableKind::Partitioned => table.sql(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// `format_type`: `character varying(20)`, `numeric(16,4)`, `public.vector(1536)`.
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `always` or `by default` for identity columns.
    pub identity: Option<String>,
    /// The expression of a generated column.
    pub generated: Option<String>,
    /// Only when it is not the type's default collation.
    pub collation: Option<String>,
    /// smallint, integer or bigint: a sequence's column that can be checked against it.
    pub integer: bool,
}

#[cfg(test)]
impl Column {
    /// A nullable plain column of `data_type` (no default, identity, generation or collation).
    pub fn of_type(data_type: &str) -> Column {
        Column {
            data_type: data_type.to_string(),
            not_null: false,
            default: None,
            identity: None,
            generated: None,
            collation: None,
            integer: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// `primary key`, `unique`, `foreign key`, `check` or `exclusion`.
    pub kind: String,
    /// `pg_get_constraintdef`.
    pub definition: String,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub kind: TableKind,
    pub columns: BTreeMap<String, Column>,
    pub constraints: BTreeMap<String, Constraint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub table: QualifiedName,
    /// `pg_get_indexdef`, with ` (INVALID)` when a failed concurrent build left it unusable.
    pub definition: String,
    /// False when a failed concurrent build left it unusable.
    pub valid: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub version: String,
    pub schema: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    pub table: QualifiedName,
    pub name: String,
    pub columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    /// MATCH FULL: a row with some but not all referencing columns null is itself a violation.
    pub match_full: bool,
    /// `OPERATOR(schema.=)` per column pair: parent column on the left, child on the right.
    pub operators: Vec<String>,
    pub table_kind: TableKind,
    pub parent_kind: TableKind,
}

/// A sequence owned by a column (serial, or an identity column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedSequence {
    pub sequence: QualifiedName,
    pub table: QualifiedName,
    pub column: String,
    /// `None` when the sequence was never used (`nextval` not yet called).
    pub last_value: Option<i64>,
    pub start_value: i64,
    pub increment_by: i64,
    /// Whether this session may read the sequence (otherwise `last_value` means nothing).
    pub readable: bool,
    /// smallint, integer or bigint: only those are compared with the sequence.
    pub integer_column: bool,
    pub table_kind: TableKind,
}

impl OwnedSequence {
    /// The value the next `nextval` returns.
    pub fn next_value(&self) -> i64 {
        match self.last_value {
            None => self.start_value,
            Some(last) => last.saturating_add(self.increment_by),
        }
    }

    pub fn descending(&self) -> bool {
        self.increment_by < 0
    }

    /// Whether the column's values can be checked against it at all.
    pub fn checkable(&self) -> bool {
        self.readable && self.integer_column
    }
}

/// The Alembic revision table, when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlembicState {
    pub table: QualifiedName,
    pub revisions: Vec<String>,
}

/// Everything the comparison needs to know about one database's structure.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub server_version: String,
    pub tables: BTreeMap<QualifiedName, Table>,
    /// Keyed by the index's own schema-qualified name.
    pub indexes: BTreeMap<QualifiedName, Index>,
    pub extensions: BTreeMap<String, Extension>,
    pub foreign_keys: Vec<ForeignKey>,
    pub sequences: Vec<OwnedSequence>,
    /// Views, functions, triggers, types, domains, policies and every sequence's position.
    pub objects: Objects,
    pub alembic: Option<AlembicState>,
}

/// Rows (and checksum) of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeasure {
    pub rows: i64,
    pub checksum: Option<String>,
}

/// One foreign key's orphaned rows: how many, and a digest of their referencing keys
/// ([`orphans_sql`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanMeasure {
    pub rows: i64,
    pub keys_digest: String,
}

/// What one side measured in phase two, from the same snapshot as its catalog.
#[derive(Clone, Debug, Default)]
pub struct Measures {
    pub tables: BTreeMap<QualifiedName, TableMeasure>,
    /// Orphaned rows per foreign key, in the order of `Catalog::foreign_keys`.
    pub orphans: Vec<OrphanMeasure>,
    /// The column's max (min for a descending sequence) per checkable sequence, in the order of
    /// `Catalog::sequences`; `None` for an unchecked sequence or an empty column.
    pub sequence_columns: Vec<Option<i64>>,
}

/// A side's catalog and measures.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub catalog: Catalog,
    pub measures: Measures,
}

/// What phase two reads from a table: its rows, and with `checksum` a checksum of them.
#[derive(Clone, Debug)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub checksum: Option<ChecksumPlan>,
}

/// A table's checksum: over these columns (the ones both sides have, in name order), by the
/// method both sides use.
#[derive(Clone, Debug)]
pub struct ChecksumPlan {
    pub columns: Vec<String>,
    pub method: ChecksumMethod,
}

#[cfg(test)]
mod tests;
