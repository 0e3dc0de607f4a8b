//! What a data load does in the target's transaction around pg_dump's COPY stream, read from the
//! target's catalog: foreign keys touching the loaded tables are dropped first and re-added last
//! (re-adding validates every row, so any order of tables, self-references and cycles load, and a
//! violation fails the whole transaction); enabled user triggers are disabled and put back as they
//! were; the tables are emptied (replace) or loaded through temporary tables and merged by
//! primary key (upsert). None of it needs a superuser: the table owner may do all of it.
//!
//! Into a staging database that the xtask built itself, the secondary indexes (those that back no
//! constraint), the primary keys and the unique and exclusion constraints (see `keys`) are also
//! dropped before the data and built after it: one sort per index instead of one insertion per
//! row. The large tables are truncated in the load's transaction so that their COPY may `FREEZE`. The same SQL serves a parallel load, cut into its phases: `prologue` in
//! a transaction of its own, the data on several connections, `index_builds` spread over them,
//! then `constraints` in one last transaction.
//!
//! Into a server older than PostgreSQL 17, pg_dump 17's `SET transaction_timeout = 0;` is left
//! out of the stream (those servers reject the setting, and the whole load with it); nothing else
//! of the stream is filtered for the version.
//!
//! Every lock wait of the load is bounded (`XTASK_LOCK_TIMEOUT`, default 30 s): an app session
//! idle in a transaction on a table would otherwise hold the load's `ALTER TABLE` or `TRUNCATE`
//! for ever, and every app query would queue behind the waiting load.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::pg::ident::{quote_ident, QualifiedName};
use crate::pg::stream::{CopyHeader, Shaper, TableProgress};
use crate::pg::version::ToolVersion;

pub use super::finish::{Finish, SequenceValue};
pub use super::target_schema::{
    ForeignKeyDef, IndexDef, KeyConstraintDef, SequenceDef, TargetSchema, TriggerDef,
};

/// How loaded rows meet the rows already in the target's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Empty the tables, then load them: the target ends equal to the source
    Replace,
    /// Insert new rows and update existing ones by primary key; delete nothing (idempotent)
    Upsert,
}

/// The SQL around one load into `tables` of the target.
pub struct LoadShaper {
    mode: LoadMode,
    tables: BTreeSet<QualifiedName>,
    schema: TargetSchema,
    /// Upsert: which temporary table stands in for which target table.
    temp_names: BTreeMap<QualifiedName, String>,
    /// Rows each table must hold before COMMIT (replace: exactly; upsert: at least), from the
    /// source's snapshot: a load that lost a row fails inside its transaction.
    expected_rows: BTreeMap<QualifiedName, i64>,
    /// Drop the loaded tables' secondary indexes first and build them last (a staging database).
    rebuild_indexes: bool,
    /// Replace mode: the loaded tables that hold rows; `None` (unknown) truncates them all.
    holding_rows: Option<BTreeSet<QualifiedName>>,
    /// Replace mode: tables truncated in the load's transaction whatever they hold, so that
    /// their COPY may `FREEZE` (see `freeze`).
    frozen: BTreeSet<QualifiedName>,
    /// `SET LOCAL lock_timeout` for the load's transaction (`None`: the server's own setting).
    lock_timeout: Option<Duration>,
    /// The target server's version, for the settings of pg_dump's stream it rejects.
    target_version: Option<ToolVersion>,
    /// The sequences set and materialized views refreshed last (see `super::finish`).
    finish: Finish,
}

impl LoadShaper {
    /// Upsert needs a primary key on every loaded table: refused up front, naming the tables.
    pub fn new(
        mode: LoadMode,
        tables: BTreeSet<QualifiedName>,
        schema: TargetSchema,
    ) -> Result<LoadShaper> {
        let mut temp_names = BTreeMap::new();
        if mode == LoadMode::Upsert {
            // A partitioned table is merged through its partitions (pg_dump's COPY names them).
            let merged = tables.iter().filter(|t| !schema.is_partitioned(t));
            let without: Vec<String> = merged
                .clone()
                .filter(|t| !schema.primary_keys.contains_key(*t))
                .map(|t| t.to_string())
                .collect();
            if !without.is_empty() {
                bail!(
                    "--mode upsert needs a primary key on every table, and these have none on \
                     the target: {}; use --mode replace, or leave them out with --exclude-table",
                    without.join(", ")
                );
            }
            for (i, table) in merged.enumerate() {
                temp_names.insert(table.clone(), format!("xtask_upsert_{i}"));
            }
        }
        Ok(LoadShaper {
            mode,
            tables,
            schema,
            temp_names,
            expected_rows: BTreeMap::new(),
            rebuild_indexes: false,
            holding_rows: None,
            frozen: BTreeSet::new(),
            lock_timeout: None,
            target_version: None,
            finish: Finish::default(),
        })
    }

    /// Asserts, before COMMIT, that each table holds the source's row count.
    pub fn expect_rows(&mut self, expected: BTreeMap<QualifiedName, i64>) {
        self.expected_rows = expected;
    }

    /// Builds the loaded tables' secondary indexes after the data instead of row by row: for a
    /// target that the xtask created and nobody else uses yet.
    pub fn rebuild_indexes(&mut self) {
        self.rebuild_indexes = true;
    }

    /// Replace mode truncates only `holding` (the loaded tables known to hold rows), not every
    /// loaded table.
    pub fn truncate_just_these(&mut self, holding: BTreeSet<QualifiedName>) {
        self.holding_rows = Some(holding);
    }

    /// Replace mode truncates `tables` (of the loaded ones) in the load's transaction even when
    /// empty, and their COPY writes its rows frozen (`COPY ... WITH (FREEZE)`).
    pub fn freeze(&mut self, tables: BTreeSet<QualifiedName>) {
        if self.mode == LoadMode::Replace {
            self.frozen = tables
                .into_iter()
                .filter(|t| self.tables.contains(t) && !self.schema.is_partitioned(t))
                .collect();
        }
    }

    /// Bounds each of the load's lock waits by `timeout` (`None`: no limit): it fails instead of
    /// waiting behind another session, and of holding everyone queued behind it.
    pub fn bound_lock_waits(&mut self, timeout: Option<Duration>) {
        self.lock_timeout = Some(timeout.unwrap_or(Duration::ZERO));
    }

    /// The target server's version: below 17 it does not know `transaction_timeout`, which
    /// pg_dump 17 sets at the start of its output ([`ToolVersion::rejects_dump_setting`]).
    pub fn target_version(&mut self, server: ToolVersion) {
        self.target_version = Some(server);
    }

    /// Ends the load (before COMMIT) with `finish`: sequences set to the source's positions,
    /// materialized views refreshed from the loaded rows.
    pub fn finish_with(&mut self, finish: Finish) {
        self.finish = finish;
    }

    /// The target's side of the load, as read before it.
    pub fn schema(&self) -> &TargetSchema {
        &self.schema
    }

    pub fn mode(&self) -> LoadMode {
        self.mode
    }

    /// Every table the load locks: the loaded ones and those their foreign keys join them to.
    pub fn locked_tables(&self) -> BTreeSet<QualifiedName> {
        let mut tables = self.tables.clone();
        for fk in self.foreign_keys() {
            tables.insert(fk.table.clone());
            tables.insert(fk.parent.clone());
        }
        tables
    }

    /// `SET LOCAL lock_timeout = ...;`, or nothing when the load was not bounded.
    fn lock_timeout_sql(&self) -> String {
        match self.lock_timeout {
            Some(t) => format!("SET LOCAL lock_timeout = '{}ms';\n", t.as_millis()),
            None => String::new(),
        }
    }

    fn indexes(&self) -> impl Iterator<Item = &IndexDef> {
        self.schema
            .indexes
            .iter()
            .filter(|i| self.rebuild_indexes && self.tables.contains(&i.table))
    }

    /// The primary keys, unique and exclusion constraints built after the data: into a staging
    /// database that is replaced (an upsert merges by its keys).
    fn key_constraints(&self) -> impl Iterator<Item = &KeyConstraintDef> {
        self.schema.key_constraints.iter().filter(|k| {
            self.rebuild_indexes && self.mode == LoadMode::Replace && self.tables.contains(&k.table)
        })
    }

    /// One statement per index to build after the data (each key's index, then each secondary
    /// index), with its table: the caller spreads them over connections by table size, each
    /// statement its own transaction (or all in the load's).
    pub fn index_builds(&self) -> Vec<(QualifiedName, String)> {
        let mut builds = keys::build_sql(self.key_constraints());
        builds.extend(
            self.indexes()
                .map(|i| (i.table.clone(), format!("{};", i.definition))),
        );
        builds
    }

    /// After the data and the indexes: the keys built as bare indexes attached to their
    /// constraints, foreign keys re-added (every row validated), each table's
    /// row count asserted, triggers put back as they were; then the sequences set and the
    /// materialized views refreshed (`finish_with`), last so that a refresh reads every row.
    pub fn constraints(&self) -> String {
        let mut sql = keys::attach_sql(self.key_constraints());
        // Re-adding validates every row: a load that breaks a reference fails here, whole.
        for fk in self.foreign_keys() {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} ADD CONSTRAINT {} {};",
                fk.table.sql(),
                quote_ident(&fk.name),
                fk.definition
            );
        }
        for (table, rows) in &self.expected_rows {
            let (op, word) = match self.mode {
                LoadMode::Replace => ("<>", "exactly"),
                LoadMode::Upsert => ("<", "at least"),
            };
            // The message is a literal made of the name: quotes doubled, and dollar-quoting
            // avoided so that no name can end the block.
            let shown = table.to_string().replace('%', "%%").replace('\'', "''");
            let _ = writeln!(
                sql,
                "DO 'BEGIN IF (SELECT pg_catalog.count(*) FROM {}) {op} {rows} THEN RAISE \
                 EXCEPTION ''xtask: {} must hold {word} {rows} rows after the load''; END IF; \
                 END';",
                self.schema.rows_of(table).replace('\'', "''"),
                shown.replace('\'', "''"),
            );
        }
        for t in self.triggers() {
            let how = match t.enabled {
                'A' => "ENABLE ALWAYS TRIGGER",
                'R' => "ENABLE REPLICA TRIGGER",
                _ => "ENABLE TRIGGER",
            };
            let _ = writeln!(
                sql,
                "ALTER TABLE {} {how} {};",
                t.table.sql(),
                quote_ident(&t.name)
            );
        }
        sql.push_str(&self.finish.sql());
        sql
    }

    /// Foreign keys to take off for the load: those of loaded tables, and those that point at a
    /// loaded table (its rows are replaced under them).
    fn foreign_keys(&self) -> impl Iterator<Item = &ForeignKeyDef> {
        self.schema
            .foreign_keys
            .iter()
            .filter(|fk| self.tables.contains(&fk.table) || self.tables.contains(&fk.parent))
    }

    fn triggers(&self) -> impl Iterator<Item = &TriggerDef> {
        self.schema
            .triggers
            .iter()
            .filter(|t| self.tables.contains(&t.table))
    }
}

impl Shaper for LoadShaper {
    fn prologue(&mut self) -> String {
        // First, so that it bounds the ALTER TABLE and TRUNCATE below.
        let mut sql = self.lock_timeout_sql();
        for fk in self.foreign_keys() {
            sql.push_str(&fk.table.drop_constraint_sql(&fk.name));
        }
        sql.push_str(&keys::drop_sql(self.key_constraints()));
        for t in self.triggers() {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} DISABLE TRIGGER {};",
                t.table.sql(),
                quote_ident(&t.name)
            );
        }
        for i in self.indexes() {
            let _ = writeln!(sql, "DROP INDEX {};", i.name.sql());
        }
        match self.mode {
            LoadMode::Replace => {
                let holding = self.tables.iter().filter(|t| {
                    self.frozen.contains(*t)
                        || self.holding_rows.as_ref().is_none_or(|h| h.contains(*t))
                });
                sql.push_str(&shapes::truncate_sql(&self.schema, holding));
            }
            LoadMode::Upsert => {
                for (table, temp) in &self.temp_names {
                    sql.push_str(&shapes::temp_table_sql(temp, table));
                }
            }
        }
        sql
    }

    fn copy_header(&mut self, header: &CopyHeader, line: &str) -> String {
        match self.temp_names.get(&header.table) {
            Some(temp) => format!(
                "COPY pg_temp.{} ({}) FROM stdin;",
                quote_ident(temp),
                column_list(&header.columns)
            ),
            None if self.frozen.contains(&header.table) => {
                with_freeze(line).unwrap_or_else(|| line.to_string())
            }
            None => line.to_string(),
        }
    }

    fn keep_line(&mut self, line: &str) -> bool {
        if let Some(server) = &self.target_version {
            if server.rejects_dump_setting(line) {
                return false;
            }
        }
        // Upsert keeps the target's sequences and moves them past the merged rows at the end;
        // the source's values could be lower than rows the target already has.
        !(self.mode == LoadMode::Upsert && line.starts_with("SELECT pg_catalog.setval("))
    }

    fn epilogue(&mut self, loaded: &[TableProgress]) -> String {
        // Again: pg_dump's stream sets lock_timeout = 0 at its start, which would leave the
        // merges and the re-added foreign keys below waiting without limit.
        let mut sql = self.lock_timeout_sql();
        if self.mode == LoadMode::Upsert {
            for part in loaded {
                let table = &part.header.table;
                let (Some(temp), Some(pk)) = (
                    self.temp_names.get(table),
                    self.schema.primary_keys.get(table),
                ) else {
                    continue;
                };
                let columns = column_list(&part.header.columns);
                let updates: Vec<String> = part
                    .header
                    .columns
                    .iter()
                    .filter(|c| !pk.contains(c))
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                    .collect();
                let action = if updates.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", updates.join(", "))
                };
                let (before, after) = shapes::identity_always_around_merge(
                    &self.schema,
                    table,
                    pk,
                    &part.header.columns,
                );
                sql.push_str(&before);
                let _ = writeln!(
                    sql,
                    "INSERT INTO {} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM \
                     pg_temp.{} ON CONFLICT ({}) DO {action};",
                    table.sql(),
                    quote_ident(temp),
                    column_list(pk),
                );
                sql.push_str(&after);
            }
            for seq in self
                .schema
                .sequences
                .iter()
                .filter(|s| self.tables.contains(&s.table))
            {
                // setval's argument is text read as a regclass; the quoted name is a literal.
                let literal = seq.sequence.sql().replace('\'', "''");
                let _ = writeln!(
                    sql,
                    "SELECT pg_catalog.setval('{literal}', v) FROM (SELECT \
                     GREATEST((SELECT pg_catalog.max({}) FROM {}), (SELECT last_value FROM {} \
                     WHERE is_called)) AS v) AS s WHERE v IS NOT NULL;",
                    quote_ident(&seq.column),
                    seq.table.sql(),
                    seq.sequence.sql(),
                );
            }
        }
        for (_, build) in self.index_builds() {
            sql.push_str(&build);
            sql.push('\n');
        }
        sql.push_str(&self.constraints());
        sql
    }
}

/// pg_dump's `COPY ... FROM stdin;` with `FREEZE`: the rows are written frozen and all-visible,
/// so that the first reads (the verification's) do not rewrite every page to set hint bits. Only
/// for a table created or truncated in the same transaction (else the COPY fails).
pub fn with_freeze(copy_line: &str) -> Option<String> {
    copy_line
        .strip_suffix(" FROM stdin;")
        .map(|head| format!("{head} FROM stdin WITH (FREEZE);"))
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

mod keys;
mod shapes;
#[cfg(test)]
mod tests;
