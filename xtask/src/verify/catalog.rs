//! What one side of a comparison reads from its database, in one read-only REPEATABLE READ
//! transaction: first the catalog (tables, columns, constraints, indexes, extensions, foreign keys,
//! owned sequences, the Alembic revision), then the measurements (exact row counts, optional
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

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result};
use futures_util::{stream, StreamExt};
use tokio_postgres::{error::SqlState, Client, GenericClient, IsolationLevel, Transaction};

use crate::config::DbUrl;
use crate::exit::UsageError;
use crate::pg::client;
use crate::pg::ident::{quote_ident, shown_ident, QualifiedName};

/// How many queries one side keeps in flight on its connection (pipelining saves round trips to
/// a remote server; the server still runs them one after the other).
const PIPELINE: usize = 16;

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
    pub alembic: Option<AlembicState>,
}

/// Rows (and checksum) of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeasure {
    pub rows: i64,
    pub checksum: Option<String>,
}

/// What one side measured in phase two, from the same snapshot as its catalog.
#[derive(Clone, Debug, Default)]
pub struct Measures {
    pub tables: BTreeMap<QualifiedName, TableMeasure>,
    /// Orphaned rows per foreign key, in the order of `Catalog::foreign_keys`.
    pub orphans: Vec<i64>,
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

/// What phase two reads from a table: its rows, and with `checksum_columns` a checksum over
/// those columns (the columns both sides have, in name order).
#[derive(Clone, Debug)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub checksum_columns: Option<Vec<String>>,
}

/// The tables of a database that are compared: every table in every schema but the system ones
/// (`pg_catalog`, `information_schema`, `pg_toast*`, `pg_temp*`: user schemas cannot begin with
/// `pg_`), leaving out temporary tables and tables that belong to an extension.
const USER_TABLES: &str = r#"
WITH user_tables AS (
    SELECT c.oid, n.nspname::text AS schema_name, c.relname::text AS table_name,
           c.relkind::text AS kind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema'
      AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.objid = c.oid AND d.deptype = 'e')
)"#;

const TABLES_SQL: &str = "SELECT schema_name, table_name, kind FROM user_tables";

const COLUMNS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
       CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
       CASE WHEN a.attcollation <> ty.typcollation THEN co.collname::text END,
       a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype)
FROM user_tables t
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation"#;

const CONSTRAINTS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, con.conname::text,
       CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                        WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                        ELSE 'exclusion' END,
       pg_catalog.pg_get_constraintdef(con.oid)
FROM user_tables t
JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid
WHERE con.contype IN ('p', 'u', 'f', 'c', 'x')"#;

const INDEXES_SQL: &str = r#"
SELECT t.schema_name, t.table_name, n.nspname::text, i.relname::text,
       pg_catalog.pg_get_indexdef(i.oid) || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END
FROM user_tables t
JOIN pg_catalog.pg_index x ON x.indrelid = t.oid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace"#;

const EXTENSIONS_SQL: &str = r#"
SELECT e.extname::text, e.extversion, n.nspname::text
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"#;

/// Foreign keys declared on the compared tables (partitions' copies of a partitioned table's
/// key are left out: the parent's key covers them), with their column pairs in key order and the
/// equality operators the key itself uses (`OPERATOR(public.=)` for citext, say), written by the
/// server's own `format('%I')`.
const FOREIGN_KEYS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, t.kind, con.conname::text,
       pn.nspname::text, pc.relname::text, pc.relkind::text,
       con.confmatchtype = 'f',
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, o.oprname)
             FROM pg_catalog.unnest(con.conpfeqop) WITH ORDINALITY AS k(opr, ord)
             JOIN pg_catalog.pg_operator o ON o.oid = k.opr
             JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace
             ORDER BY k.ord)
FROM user_tables t
JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid AND con.contype = 'f'
     AND con.conparentid = 0
JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace"#;

/// Sequences owned by a column of a compared table: serial columns (`OWNED BY`, dependency type
/// `a`) and identity columns (type `i`). `pg_sequences.last_value` is NULL when the sequence was
/// never used or this session may not read it; the privilege tells the two apart.
const SEQUENCES_SQL: &str = r#"
SELECT sn.nspname::text, s.relname::text, t.schema_name, t.table_name, t.kind,
       a.attname::text,
       a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype),
       ps.last_value, ps.start_value, ps.increment_by,
       pg_catalog.has_sequence_privilege(s.oid, 'SELECT,USAGE')
FROM pg_catalog.pg_class s
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.objid = s.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
JOIN user_tables t ON t.oid = d.refobjid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
JOIN pg_catalog.pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
WHERE s.relkind = 'S'"#;

/// Session settings for the comparison's transaction, so that both sides print values and
/// definitions the same way whatever their servers' defaults.
const SETTINGS_SQL: &str = "\
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 1;
SET LOCAL bytea_output = 'hex';
SET LOCAL lc_monetary = 'C';
SET LOCAL idle_in_transaction_session_timeout = 0;";

/// The limit on each of the xtask's own queries when `XTASK_STATEMENT_TIMEOUT` is not set: long
/// enough for checksums of large tables (about 0.12 s per 200K rows), short of hanging for ever.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// PostgreSQL caps statement_timeout at INT_MAX milliseconds (about 24.8 days).
const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Parses `XTASK_STATEMENT_TIMEOUT`: whole seconds (`90`), or a whole number with one of
/// PostgreSQL's time units (`500ms`, `30s`, `10min`, `2h`, `1d`). `None` is no limit (`0`).
pub fn parse_statement_timeout(raw: &str) -> std::result::Result<Option<Duration>, String> {
    let text = raw.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let bad = |why: &str| {
        format!(
            "XTASK_STATEMENT_TIMEOUT={raw:?} {why}: give whole seconds (`90`) or a whole number \
             with a unit, ms, s, min, h or d (`500ms`, `10min`, `2h`); `0` for no limit \
             (default 30min)"
        )
    };
    let value: u128 = number.parse().map_err(|_| bad("is not a duration"))?;
    let unit_ms: u128 = match unit.trim() {
        "" | "s" => 1000,
        "ms" => 1,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad("has an unknown unit")),
    };
    let ms = value.saturating_mul(unit_ms);
    if ms == 0 {
        return Ok(None);
    }
    if ms > MAX_STATEMENT_TIMEOUT_MS {
        return Err(bad("is longer than PostgreSQL allows (about 24 days)"));
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

/// The limit on each of the xtask's own queries: `XTASK_STATEMENT_TIMEOUT`, else 30 minutes;
/// `None` is no limit. A value that does not parse is a usage error (exit 2).
pub fn statement_timeout() -> Result<Option<Duration>> {
    match std::env::var_os("XTASK_STATEMENT_TIMEOUT") {
        None => Ok(Some(DEFAULT_STATEMENT_TIMEOUT)),
        Some(raw) => {
            parse_statement_timeout(&raw.to_string_lossy()).map_err(|m| UsageError::new(m).into())
        }
    }
}

/// The setting as messages show it: `XTASK_STATEMENT_TIMEOUT=1ms`, or the default.
fn statement_timeout_shown() -> String {
    match std::env::var("XTASK_STATEMENT_TIMEOUT") {
        Ok(raw) => format!("XTASK_STATEMENT_TIMEOUT={}", raw.trim()),
        Err(_) => format!(
            "XTASK_STATEMENT_TIMEOUT (not set: the default, {} minutes)",
            DEFAULT_STATEMENT_TIMEOUT.as_secs() / 60
        ),
    }
}

/// SETTINGS_SQL and the statement timeout, for a transaction's first statement.
fn session_settings() -> Result<String> {
    let ms = statement_timeout()?.map(|d| d.as_millis()).unwrap_or(0);
    Ok(format!(
        "{SETTINGS_SQL}\nSET LOCAL statement_timeout = '{ms}ms';"
    ))
}

/// A query's error, with the setting to change named when it was our statement timeout that
/// cancelled it (a cancel by someone else, `pg_cancel_backend`, says "user request" instead).
fn explain(err: tokio_postgres::Error) -> anyhow::Error {
    let timed_out = err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::QUERY_CANCELED && db.message().contains("statement timeout")
    });
    if timed_out {
        let hint = format!(
            "the query ran longer than {} allows: raise it (XTASK_STATEMENT_TIMEOUT=2h, say), \
             or set XTASK_STATEMENT_TIMEOUT=0 for no limit, and run again",
            statement_timeout_shown()
        );
        anyhow::Error::new(err).context(hint)
    } else {
        anyhow::Error::new(err)
    }
}

/// The value of a result, its error kept aside.
fn keep_ok<T>(result: Result<T>, errors: &mut Vec<anyhow::Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Whether the server refused a query only because an earlier one in the same transaction failed.
fn aborted_by_another(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .any(|e| e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// The failure to report among pipelined queries' errors: the server may have run them in
/// another order than they are listed, and after the first failure it refuses the rest ("current
/// transaction is aborted"), so the one that failed on its own is the cause.
fn first_failure(errors: Vec<anyhow::Error>) -> anyhow::Error {
    let mut errors = errors.into_iter();
    let first = errors.next().expect("at least one error");
    if !aborted_by_another(&first) {
        return first;
    }
    errors.find(|e| !aborted_by_another(e)).unwrap_or_else(|| {
        // Every listed query was refused: what failed first was a statement of the client's own
        // (tokio-postgres looks types up in queries of its own), which a short statement
        // timeout cancels like any other.
        first.context(format!(
            "an earlier statement in this transaction failed; if it ran past {}, raise it, or \
             set XTASK_STATEMENT_TIMEOUT=0 for no limit, and run again",
            statement_timeout_shown()
        ))
    })
}

fn with_user_tables(sql: &str) -> String {
    format!("{USER_TABLES}\n{sql}")
}

/// Connects (the failure's cause named: unreachable, authentication, missing database).
pub async fn connect(url: &DbUrl, timeout: Duration) -> Result<Client> {
    client::connect(url, timeout).await
}

/// Starts the read-only REPEATABLE READ transaction that everything of this side is read in.
pub async fn begin<'a>(client: &'a mut Client, url: &DbUrl) -> Result<Transaction<'a>> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .with_context(|| format!("starting a read-only transaction on {url}"))?;
    tx.batch_execute(&session_settings()?)
        .await
        .with_context(|| format!("setting up the session on {url}"))?;
    Ok(tx)
}

/// Opens, on a connection of its own, the read-only REPEATABLE READ transaction that a copy reads
/// its source in, and exports its snapshot: pg_dump runs with `--snapshot=<id>`, so that the
/// counts taken here and the rows dumped are the same rows, even while the source takes writes.
/// The snapshot lives as long as this transaction stays open on `client`.
pub async fn begin_exported_snapshot(client: &Client, url: &DbUrl) -> Result<String> {
    // A bad XTASK_STATEMENT_TIMEOUT is refused before the transaction starts.
    let settings = session_settings()?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .with_context(|| format!("starting a read-only transaction on {url}"))?;
    client
        .batch_execute(&settings)
        .await
        .with_context(|| format!("setting up the session on {url}"))?;
    // A table locked by someone else (a migration, a VACUUM FULL) must not hang the copy: after
    // XTASK_LOCK_TIMEOUT seconds (default 60) the read fails, naming the table.
    let lock_timeout = std::env::var("XTASK_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    client
        .batch_execute(&format!("SET LOCAL lock_timeout = '{lock_timeout}s'"))
        .await
        .with_context(|| format!("setting the lock timeout on {url}"))?;
    let row = client
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .map_err(explain)
        .with_context(|| format!("exporting a snapshot on {url}"))?;
    Ok(row.get(0))
}

/// Phase one: the structure of the database.
pub async fn read_catalog<C: GenericClient + Sync>(tx: &C, url: &DbUrl) -> Result<Catalog> {
    let ctx = |what: &str| format!("reading the {what} of {url}");
    let tables_sql = with_user_tables(TABLES_SQL);
    let columns_sql = with_user_tables(COLUMNS_SQL);
    let constraints_sql = with_user_tables(CONSTRAINTS_SQL);
    let indexes_sql = with_user_tables(INDEXES_SQL);
    let fks_sql = with_user_tables(FOREIGN_KEYS_SQL);
    let sequences_sql = with_user_tables(SEQUENCES_SQL);
    // All of them in flight at once: one round trip's wait instead of seven.
    let (version, tables, columns, constraints, indexes, extensions, fks, sequences) = tokio::join!(
        // `17.4`, without the packager's `(Debian 17.4-1.pgdg120+2)`.
        tx.query_one(
            "SELECT pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1)",
            &[]
        ),
        tx.query(&tables_sql, &[]),
        tx.query(&columns_sql, &[]),
        tx.query(&constraints_sql, &[]),
        tx.query(&indexes_sql, &[]),
        tx.query(EXTENSIONS_SQL, &[]),
        tx.query(&fks_sql, &[]),
        tx.query(&sequences_sql, &[]),
    );
    let mut errors = Vec::new();
    let version = keep_ok(
        version
            .map_err(explain)
            .with_context(|| ctx("server version")),
        &mut errors,
    );
    let tables = keep_ok(
        tables.map_err(explain).with_context(|| ctx("tables")),
        &mut errors,
    );
    let columns = keep_ok(
        columns.map_err(explain).with_context(|| ctx("columns")),
        &mut errors,
    );
    let constraints = keep_ok(
        constraints
            .map_err(explain)
            .with_context(|| ctx("constraints")),
        &mut errors,
    );
    let indexes = keep_ok(
        indexes.map_err(explain).with_context(|| ctx("indexes")),
        &mut errors,
    );
    let extensions = keep_ok(
        extensions
            .map_err(explain)
            .with_context(|| ctx("extensions")),
        &mut errors,
    );
    let fks = keep_ok(
        fks.map_err(explain).with_context(|| ctx("foreign keys")),
        &mut errors,
    );
    let sequences = keep_ok(
        sequences.map_err(explain).with_context(|| ctx("sequences")),
        &mut errors,
    );
    let (
        Some(version),
        Some(tables),
        Some(columns),
        Some(constraints),
        Some(indexes),
        Some(extensions),
        Some(fks),
        Some(sequences),
    ) = (
        version,
        tables,
        columns,
        constraints,
        indexes,
        extensions,
        fks,
        sequences,
    )
    else {
        return Err(first_failure(errors));
    };
    let server_version: String = version.get(0);
    let mut catalog = Catalog {
        server_version,
        tables: BTreeMap::new(),
        indexes: BTreeMap::new(),
        extensions: BTreeMap::new(),
        foreign_keys: Vec::new(),
        sequences: Vec::new(),
        alembic: None,
    };
    for row in tables {
        let kind: String = row.get(2);
        catalog.tables.insert(
            QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            Table {
                kind: TableKind::from_relkind(&kind),
                columns: BTreeMap::new(),
                constraints: BTreeMap::new(),
            },
        );
    }
    for row in columns {
        let table = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if let Some(t) = catalog.tables.get_mut(&table) {
            t.columns.insert(
                row.get(2),
                Column {
                    data_type: row.get(3),
                    not_null: row.get(4),
                    default: row.get(5),
                    identity: row.get(6),
                    generated: row.get(7),
                    collation: row.get(8),
                    integer: row.get(9),
                },
            );
        }
    }
    for row in constraints {
        let table = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if let Some(t) = catalog.tables.get_mut(&table) {
            t.constraints.insert(
                row.get(2),
                Constraint {
                    kind: row.get(3),
                    definition: row.get(4),
                },
            );
        }
    }
    for row in indexes {
        catalog.indexes.insert(
            QualifiedName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            Index {
                table: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                definition: row.get(4),
            },
        );
    }
    for row in extensions {
        catalog.extensions.insert(
            row.get(0),
            Extension {
                version: row.get(1),
                schema: row.get(2),
            },
        );
    }
    for row in fks {
        let table_kind: String = row.get(2);
        let parent_kind: String = row.get(6);
        catalog.foreign_keys.push(ForeignKey {
            table: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            table_kind: TableKind::from_relkind(&table_kind),
            name: row.get(3),
            parent: QualifiedName::new(row.get::<_, String>(4), row.get::<_, String>(5)),
            parent_kind: TableKind::from_relkind(&parent_kind),
            match_full: row.get(7),
            columns: row.get(8),
            parent_columns: row.get(9),
            operators: row.get(10),
        });
    }
    catalog
        .foreign_keys
        .sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
    for row in sequences {
        let table_kind: String = row.get(4);
        catalog.sequences.push(OwnedSequence {
            sequence: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            table: QualifiedName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            table_kind: TableKind::from_relkind(&table_kind),
            column: row.get(5),
            integer_column: row.get(6),
            last_value: row.get(7),
            start_value: row.get(8),
            increment_by: row.get(9),
            readable: row.get(10),
        });
    }
    catalog.sequences.sort_by(|a, b| {
        (&a.table, &a.column, &a.sequence).cmp(&(&b.table, &b.column, &b.sequence))
    });
    catalog.alembic = read_alembic(tx, url, &catalog).await?;
    Ok(catalog)
}

/// The `alembic_version` table (in `public` if there is one there, else the first schema that
/// has one) and its revisions; `None` when the database has no such table.
async fn read_alembic<C: GenericClient + Sync>(
    tx: &C,
    url: &DbUrl,
    catalog: &Catalog,
) -> Result<Option<AlembicState>> {
    let mut candidates: Vec<&QualifiedName> = catalog
        .tables
        .iter()
        .filter(|(name, table)| {
            name.name == "alembic_version" && table.columns.contains_key("version_num")
        })
        .map(|(name, _)| name)
        .collect();
    candidates.sort_by_key(|name| (name.schema != "public", name.schema.clone()));
    let Some(table) = candidates.first() else {
        return Ok(None);
    };
    let rows = tx
        .query(
            &format!(
                "SELECT version_num::text FROM {} WHERE version_num IS NOT NULL ORDER BY 1",
                table.sql()
            ),
            &[],
        )
        .await
        .map_err(explain)
        .with_context(|| format!("reading {table} on {url}"))?;
    Ok(Some(AlembicState {
        table: (*table).clone(),
        revisions: rows.iter().map(|r| r.get(0)).collect(),
    }))
}

/// The checksum of a table's rows, computed on the server in one pass (the rows stream through
/// the server's aggregate; the xtask receives one row):
///
/// - each row's canonical text is `ROW(<columns in name order>)::text`, so the physical column
///   order does not matter (both sides get the same list: the columns they share);
/// - each row text's 64-bit hash (`hashtextextended`, seed 0, on its bytes: `COLLATE "C"`) is
///   summed as a number, so the row order does not matter either, and duplicates count;
/// - `md5(count || ':' || sum)` is the table's checksum (32 hex digits).
///
/// A changed value goes unnoticed with probability about 2^-64. `hashtextextended` is
/// PostgreSQL's own hash (the one hash partitioning uses, which it keeps stable across versions);
/// it is not cryptographic, which is not needed against accidental loss, and it costs a tenth of
/// an md5 per row: the checksum of `market_data_cache` at scale 1 takes 0.12 s instead of the
/// 0.25 s of an md5 of each row (most of what is left is printing each row as text). Its values
/// are the same on every little-endian server (x86-64, ARM); a big-endian server would show
/// every table as different, never the other way round.
///
/// Values are compared through their text output, which the transaction pins down (UTC time
/// zone, ISO dates, `postgres` intervals, shortest-exact floats, hex bytea, `C` money), so:
/// - numeric scale counts: `1.50` and `1.5` are different values (as pg_dump would keep them);
/// - floats and pgvector vectors compare by their text output, which is exact (shortest
///   round-trip) from PostgreSQL 12 on, but may differ between pgvector versions; `json` (not
///   `jsonb`) compares its text as written, whitespace included;
/// - a column whose type differs between the sides (reported as a schema difference) may print
///   differently and then make the checksums differ too.
///
/// Cost: one sequential scan per table, each row printed as text and hashed (about 0.12 s per
/// 200K narrow rows).
pub fn checksum_sql(table: &QualifiedName, kind: TableKind, columns: &[String]) -> String {
    let alias = quote_ident("xtask_row");
    let row: Vec<String> = columns
        .iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect();
    format!(
        "SELECT pg_catalog.count(*), pg_catalog.md5(pg_catalog.count(*)::text || ':' || \
         COALESCE(pg_catalog.sum(pg_catalog.hashtextextended(ROW({row})::text COLLATE \
         pg_catalog.\"C\", 0)), 0)::text) FROM {from} AS {alias}",
        row = row.join(", "),
        from = kind.from_clause(table),
    )
}

pub fn count_sql(table: &QualifiedName, kind: TableKind) -> String {
    format!(
        "SELECT pg_catalog.count(*) FROM {}",
        kind.from_clause(table)
    )
}

/// Counts the rows whose referencing columns are set but have no parent row (MATCH SIMPLE: a
/// null in any referencing column exempts the row; MATCH FULL: only all-null rows are exempt).
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
    format!(
        "SELECT pg_catalog.count(*) FROM {} AS {child} WHERE {condition}",
        fk.table_kind.from_clause(&fk.table)
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
    Orphans(i64),
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
                        if plan.checksum_columns.is_some() {
                            "checksumming"
                        } else {
                            "counting the rows of"
                        },
                        plan.table
                    )
                })?;
            let measure = TableMeasure {
                rows: row.get(0),
                checksum: plan.checksum_columns.as_ref().map(|_| row.get(1)),
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
            Ok(Outcome::Orphans(row.get(0)))
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
    let mut jobs: Vec<Job> = Vec::new();
    for plan in plans {
        let Some(table) = catalog.tables.get(&plan.table) else {
            continue;
        };
        let sql = match &plan.checksum_columns {
            Some(columns) => checksum_sql(&plan.table, table.kind, columns),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(columns: &[&str], parent_columns: &[&str], match_full: bool) -> ForeignKey {
        ForeignKey {
            table: QualifiedName::new("My Schema", "we\"ird.name"),
            name: "fk".into(),
            columns: columns.iter().map(|s| s.to_string()).collect(),
            parent: QualifiedName::new("My Schema", "select"),
            parent_columns: parent_columns.iter().map(|s| s.to_string()).collect(),
            match_full,
            operators: vec!["OPERATOR(pg_catalog.=)".into(); columns.len()],
            table_kind: TableKind::Ordinary,
            parent_kind: TableKind::Partitioned,
        }
    }

    #[test]
    fn names_are_quoted_in_sql_and_readable_in_text() {
        let name = QualifiedName::new("My Schema", "we\"ird.name");
        assert_eq!(name.sql(), r#""My Schema"."we""ird.name""#);
        assert_eq!(name.to_string(), r#""My Schema"."we""ird.name""#);
        assert_eq!(
            QualifiedName::new("public", "users").to_string(),
            "public.users"
        );
        assert_eq!(shown_ident("Order"), "\"Order\"");
        assert_eq!(shown_ident("select"), "select");
    }

    #[test]
    fn checksum_uses_the_given_columns_quoted_and_reads_only_the_table_itself() {
        let sql = checksum_sql(
            &QualifiedName::new("My Schema", "select"),
            TableKind::Ordinary,
            &["Order".to_string(), "id".to_string()],
        );
        assert!(
            sql.contains(r#"ROW("xtask_row"."Order", "xtask_row"."id")::text"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"FROM ONLY "My Schema"."select" AS "xtask_row""#),
            "{sql}"
        );
        let sql = count_sql(&QualifiedName::new("p", "parted"), TableKind::Partitioned);
        assert_eq!(sql, r#"SELECT pg_catalog.count(*) FROM "p"."parted""#);
    }

    #[test]
    fn orphans_follow_the_match_type() {
        let simple = orphans_sql(&fk(&["a", "B"], &["x", "Y"], false));
        assert!(simple.contains(r#""xtask_child"."a" IS NOT NULL AND "xtask_child"."B" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "My Schema"."select" AS "xtask_parent" WHERE "xtask_parent"."x" OPERATOR(pg_catalog.=) "xtask_child"."a" AND "xtask_parent"."Y" OPERATOR(pg_catalog.=) "xtask_child"."B")"#), "{simple}");
        assert!(
            simple.contains(r#"FROM ONLY "My Schema"."we""ird.name" AS "xtask_child""#),
            "{simple}"
        );
        let full = orphans_sql(&fk(&["a", "b"], &["x", "y"], true));
        assert!(full.contains(r#"("xtask_child"."a" IS NOT NULL OR "xtask_child"."b" IS NOT NULL) AND ("xtask_child"."a" IS NULL OR "xtask_child"."b" IS NULL OR NOT EXISTS"#), "{full}");
    }

    #[test]
    fn statement_timeout_takes_seconds_or_postgres_units() {
        let ok = |raw: &str| parse_statement_timeout(raw).unwrap();
        assert_eq!(ok("90"), Some(Duration::from_secs(90)));
        assert_eq!(ok(" 30s "), Some(Duration::from_secs(30)));
        assert_eq!(ok("1ms"), Some(Duration::from_millis(1)));
        assert_eq!(ok("500 ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("10min"), Some(Duration::from_secs(600)));
        assert_eq!(ok("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(ok("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(ok("0"), None);
        assert_eq!(ok("0min"), None);
        for bad in [
            "",
            "soon",
            "-5",
            "1.5s",
            "10 sec",
            "5m",
            "ms",
            "30d",
            "99999999999999999999999",
        ] {
            let err = parse_statement_timeout(bad).unwrap_err();
            assert!(err.contains("XTASK_STATEMENT_TIMEOUT"), "{bad}: {err}");
            assert!(err.contains("10min"), "{bad}: {err}");
        }
    }

    #[test]
    fn next_value_of_a_sequence() {
        let mut seq = OwnedSequence {
            sequence: QualifiedName::new("public", "t_id_seq"),
            table: QualifiedName::new("public", "t"),
            column: "id".into(),
            last_value: None,
            start_value: 1,
            increment_by: 1,
            readable: true,
            integer_column: true,
            table_kind: TableKind::Ordinary,
        };
        assert_eq!(seq.next_value(), 1);
        seq.last_value = Some(41);
        assert_eq!(seq.next_value(), 42);
        seq.last_value = Some(i64::MAX);
        assert_eq!(seq.next_value(), i64::MAX);
        seq.increment_by = -1;
        assert!(seq.descending());
        assert!(sequence_column_sql(&seq).starts_with("SELECT pg_catalog.min(\"id\")::bigint"));
    }
}
