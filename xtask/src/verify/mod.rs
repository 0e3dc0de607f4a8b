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
//!   constraints, indexes, extensions;
//! - with `checksums`, one checksum per table over its rows (see [`catalog::checksum_sql`]);
//! - foreign-key orphans and sequences behind their column, on each side.
//!
//! Each side is read in one read-only REPEATABLE READ transaction (one consistent snapshot, no
//! writes), and both sides are read at the same time. Use [`compare`] for the whole thing, or
//! [`read_both`] + [`build`] to overlap other work (reading the Alembic heads) with the reads.

pub mod catalog;
pub mod report;

use std::{collections::BTreeSet, fmt, path::Path, time::Duration};

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use crate::pg::ident::{shown_ident, QualifiedName};
use crate::{alembic::AlembicConfig, config::Database, config::DbUrl};
use catalog::{Catalog, Snapshot, TablePlan};

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

/// The heads of one Alembic config, as read from the migration scripts. Reading never fails the
/// comparison: an error is kept and reported, and "at head" is then unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlembicHeads {
    /// `alembic.ini` or `alembic_ai.ini`.
    pub config: String,
    pub heads: Vec<String>,
    pub error: Option<String>,
}

impl AlembicHeads {
    /// `uv run alembic -c <ini> heads` in `backend_dir` (cached by the migrations' fingerprint).
    pub fn read(sh: &Shell, config: AlembicConfig, backend_dir: &Path) -> AlembicHeads {
        match crate::migrations::heads(config, sh, backend_dir) {
            Ok(heads) => AlembicHeads {
                config: config.ini().to_string(),
                heads,
                error: None,
            },
            Err(e) => AlembicHeads {
                config: config.ini().to_string(),
                heads: Vec::new(),
                error: Some(format!("{e:#}")),
            },
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
}

impl TableComparison {
    pub fn name(&self) -> QualifiedName {
        QualifiedName::new(&self.schema, &self.table)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaObject {
    Extension,
    Column,
    Constraint,
    Index,
}

impl fmt::Display for SchemaObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaObject::Extension => "extension",
            SchemaObject::Column => "column",
            SchemaObject::Constraint => "constraint",
            SchemaObject::Index => "index",
        })
    }
}

/// One named difference of structure: `column public.positions.notes: type text (remote) vs
/// character varying(20) (local)`.
#[derive(Clone, Debug, Serialize)]
pub struct SchemaDifference {
    pub kind: SchemaObject,
    /// The object's name as people read it: `public.positions.notes`.
    pub object: String,
    /// What differs, naming both sides.
    pub detail: String,
    /// The left and right values of what differs (`null` where the object is missing).
    pub left: Option<String>,
    pub right: Option<String>,
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.detail)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AlembicSide {
    /// The revision(s) in `alembic_version`; empty when the table is missing or empty.
    pub revisions: Vec<String>,
    /// Where the revision table is (`public.alembic_version`); `None` when there is none.
    pub table: Option<String>,
    /// Whether the revisions are exactly the config's heads; `None` when the heads are unknown.
    pub at_head: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlembicComparison {
    pub config: Option<String>,
    pub heads: Option<Vec<String>>,
    pub heads_error: Option<String>,
    pub left: AlembicSide,
    pub right: AlembicSide,
    /// What makes the databases unequal: different revisions, more than one head.
    pub findings: Vec<String>,
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
            crate::pg::ident::quote_ident(&self.column),
            QualifiedName::new(&self.table_schema, &self.table).sql(),
        )
    }
}

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

    fn compute_equal(&self) -> bool {
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
            let rows: i64 = self.tables.iter().filter_map(|t| t.left_rows).sum();
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

/// Connects to both sides at once and reads each in its own read-only snapshot: catalogs first,
/// then counts (checksums over the columns both sides have), orphans and sequences.
pub async fn read_both(
    left: &Endpoint,
    right: &Endpoint,
    checksums: bool,
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
    let (lplans, rplans) = plans(&lcat, &rcat, checksums);
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
/// checksum say whether the shared data is the same).
pub fn plans(left: &Catalog, right: &Catalog, checksums: bool) -> (Vec<TablePlan>, Vec<TablePlan>) {
    let plan = |own: &Catalog, other: &Catalog| -> Vec<TablePlan> {
        own.tables
            .iter()
            .map(|(name, table)| TablePlan {
                table: name.clone(),
                checksum_columns: match (checksums, other.tables.get(name)) {
                    (true, Some(theirs)) => Some(
                        table
                            .columns
                            .keys()
                            .filter(|c| theirs.columns.contains_key(*c))
                            .cloned()
                            .collect(),
                    ),
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
    let (l, r) = read_both(left, right, opts.checksums, opts.connect_timeout).await?;
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
        alembic: compare_alembic(&l.catalog, &r.catalog, heads, ls, rs),
        tables: compare_tables(l, r),
        schema_differences: compare_schema(&l.catalog, &r.catalog, ls, rs),
        orphans: [(ls, l), (rs, r)]
            .into_iter()
            .flat_map(|(side, snap)| orphans(side, snap))
            .collect(),
        sequences: Vec::new(),
        notes: Vec::new(),
    };
    for (side, snap) in [(ls, l), (rs, r)] {
        let (behind, notes) = sequences(side, snap);
        comparison.sequences.extend(behind);
        comparison.notes.extend(notes);
    }
    if let Some(heads) = heads {
        if let Some(err) = &heads.error {
            comparison.notes.push(format!(
                "the heads of {} could not be read, so \"at head\" is unknown: {err}",
                heads.config
            ));
        }
    }
    for (side, at_head) in [
        (ls, comparison.alembic.left.at_head),
        (rs, comparison.alembic.right.at_head),
    ] {
        if at_head == Some(false) {
            let heads = comparison.alembic.heads.clone().unwrap_or_default();
            comparison.notes.push(format!(
                "{side} is not at the head of {} ({}): `alembic upgrade head` would change its \
                 schema",
                comparison
                    .alembic
                    .config
                    .as_deref()
                    .unwrap_or("its Alembic config"),
                heads.join(", ")
            ));
        }
    }
    comparison.equal = comparison.compute_equal();
    comparison
}

fn revisions_text(revs: &[String]) -> String {
    if revs.is_empty() {
        "none".to_string()
    } else {
        revs.join(", ")
    }
}

fn compare_alembic(
    l: &Catalog,
    r: &Catalog,
    heads: Option<&AlembicHeads>,
    ls: &str,
    rs: &str,
) -> AlembicComparison {
    let known_heads = heads.filter(|h| h.error.is_none() && !h.heads.is_empty());
    let side = |c: &Catalog| {
        let revisions = c
            .alembic
            .as_ref()
            .map(|a| a.revisions.clone())
            .unwrap_or_default();
        let at_head = known_heads.map(|h| {
            let mut want = h.heads.clone();
            want.sort();
            let mut have = revisions.clone();
            have.sort();
            want == have
        });
        AlembicSide {
            table: c.alembic.as_ref().map(|a| a.table.to_string()),
            revisions,
            at_head,
        }
    };
    let (left, right) = (side(l), side(r));
    let mut findings = Vec::new();
    if left.revisions != right.revisions {
        findings.push(format!(
            "revisions differ: {} ({ls}) vs {} ({rs})",
            revisions_text(&left.revisions),
            revisions_text(&right.revisions)
        ));
    }
    if let Some(h) = heads {
        if h.heads.len() > 1 {
            findings.push(format!(
                "{} has {} heads ({}): merge them (`uv run alembic -c {} merge heads -m \"merge \
                 heads\"`)",
                h.config,
                h.heads.len(),
                h.heads.join(", "),
                h.config
            ));
        }
    }
    AlembicComparison {
        config: heads.map(|h| h.config.clone()),
        heads: heads.filter(|h| h.error.is_none()).map(|h| h.heads.clone()),
        heads_error: heads.and_then(|h| h.error.clone()),
        left,
        right,
        findings,
    }
}

fn compare_tables(l: &Snapshot, r: &Snapshot) -> Vec<TableComparison> {
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
            }
        })
        .collect()
}

/// Pushes a difference for each field that differs: `detail: a (left) vs b (right)`.
struct Differ<'a> {
    out: Vec<SchemaDifference>,
    ls: &'a str,
    rs: &'a str,
}

impl Differ<'_> {
    fn only(
        &mut self,
        kind: SchemaObject,
        object: String,
        left: Option<String>,
        right: Option<String>,
    ) {
        let (side, what) = match (&left, &right) {
            (Some(l), None) => (self.ls, l),
            (None, Some(r)) => (self.rs, r),
            _ => return,
        };
        self.out.push(SchemaDifference {
            kind,
            detail: format!("only on {side}: {what}"),
            object,
            left,
            right,
        });
    }

    fn field(
        &mut self,
        kind: SchemaObject,
        object: &str,
        what: &str,
        left: Option<&str>,
        right: Option<&str>,
    ) {
        if left == right {
            return;
        }
        let shown = |v: Option<&str>| v.unwrap_or("none").to_string();
        self.out.push(SchemaDifference {
            kind,
            object: object.to_string(),
            detail: format!(
                "{what} {} ({}) vs {} ({})",
                shown(left),
                self.ls,
                shown(right),
                self.rs
            ),
            left: left.map(str::to_string),
            right: right.map(str::to_string),
        });
    }
}

fn compare_schema(l: &Catalog, r: &Catalog, ls: &str, rs: &str) -> Vec<SchemaDifference> {
    let mut d = Differ {
        out: Vec::new(),
        ls,
        rs,
    };
    let ext_names: BTreeSet<&String> = l.extensions.keys().chain(r.extensions.keys()).collect();
    for name in ext_names {
        let object = shown_ident(name).into_owned();
        let shown =
            |e: &catalog::Extension| format!("version {} in schema {}", e.version, e.schema);
        match (l.extensions.get(name), r.extensions.get(name)) {
            (Some(a), Some(b)) => {
                d.field(
                    SchemaObject::Extension,
                    &object,
                    "version",
                    Some(&a.version),
                    Some(&b.version),
                );
                d.field(
                    SchemaObject::Extension,
                    &object,
                    "schema",
                    Some(&a.schema),
                    Some(&b.schema),
                );
            }
            (a, b) => d.only(SchemaObject::Extension, object, a.map(shown), b.map(shown)),
        }
    }
    for (name, lt) in &l.tables {
        let Some(rt) = r.tables.get(name) else {
            continue; // a table on one side only is reported with the tables
        };
        let columns: BTreeSet<&String> = lt.columns.keys().chain(rt.columns.keys()).collect();
        for col in columns {
            let object = format!("{name}.{}", shown_ident(col));
            match (lt.columns.get(col), rt.columns.get(col)) {
                (Some(a), Some(b)) => {
                    let k = SchemaObject::Column;
                    let nullability =
                        |c: &catalog::Column| if c.not_null { "not null" } else { "nullable" };
                    d.field(k, &object, "type", Some(&a.data_type), Some(&b.data_type));
                    d.field(
                        k,
                        &object,
                        "nullability",
                        Some(nullability(a)),
                        Some(nullability(b)),
                    );
                    d.field(
                        k,
                        &object,
                        "default",
                        a.default.as_deref(),
                        b.default.as_deref(),
                    );
                    d.field(
                        k,
                        &object,
                        "identity",
                        a.identity.as_deref(),
                        b.identity.as_deref(),
                    );
                    d.field(
                        k,
                        &object,
                        "generated as",
                        a.generated.as_deref(),
                        b.generated.as_deref(),
                    );
                    d.field(
                        k,
                        &object,
                        "collation",
                        a.collation.as_deref(),
                        b.collation.as_deref(),
                    );
                }
                (a, b) => d.only(
                    SchemaObject::Column,
                    object,
                    a.map(|c| c.data_type.clone()),
                    b.map(|c| c.data_type.clone()),
                ),
            }
        }
        let constraints: BTreeSet<&String> =
            lt.constraints.keys().chain(rt.constraints.keys()).collect();
        for con in constraints {
            let object = format!("{name}.{}", shown_ident(con));
            match (lt.constraints.get(con), rt.constraints.get(con)) {
                (Some(a), Some(b)) => d.field(
                    SchemaObject::Constraint,
                    &object,
                    "definition",
                    Some(&a.definition),
                    Some(&b.definition),
                ),
                (a, b) => d.only(
                    SchemaObject::Constraint,
                    object,
                    a.map(|c| c.definition.clone()),
                    b.map(|c| c.definition.clone()),
                ),
            }
        }
    }
    let on_both =
        |table: &QualifiedName| l.tables.contains_key(table) && r.tables.contains_key(table);
    let index_names: BTreeSet<&QualifiedName> = l.indexes.keys().chain(r.indexes.keys()).collect();
    for name in index_names {
        let (a, b) = (l.indexes.get(name), r.indexes.get(name));
        // Indexes of a table that is on one side only come with the table.
        let table = a.or(b).map(|i| &i.table);
        if !table.is_some_and(on_both) {
            continue;
        }
        let object = name.to_string();
        match (a, b) {
            (Some(a), Some(b)) => d.field(
                SchemaObject::Index,
                &object,
                "definition",
                Some(&a.definition),
                Some(&b.definition),
            ),
            (a, b) => d.only(
                SchemaObject::Index,
                object,
                a.map(|i| i.definition.clone()),
                b.map(|i| i.definition.clone()),
            ),
        }
    }
    d.out
}

fn orphans(side: &str, snap: &Snapshot) -> Vec<Orphan> {
    snap.catalog
        .foreign_keys
        .iter()
        .zip(&snap.measures.orphans)
        .filter(|(_, n)| **n > 0)
        .map(|(fk, n)| Orphan {
            side: side.to_string(),
            constraint: fk.name.clone(),
            schema: fk.table.schema.clone(),
            table: fk.table.name.clone(),
            columns: fk.columns.clone(),
            parent_schema: fk.parent.schema.clone(),
            parent_table: fk.parent.name.clone(),
            parent_columns: fk.parent_columns.clone(),
            rows: *n,
        })
        .collect()
}

fn sequences(side: &str, snap: &Snapshot) -> (Vec<SequenceBehind>, Vec<String>) {
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
mod tests;
