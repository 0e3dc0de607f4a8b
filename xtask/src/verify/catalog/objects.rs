//! The objects of a database beyond its tables, read in the side's snapshot: views and
//! materialized views, functions, procedures and aggregates, triggers, rules, enum, composite
//! and range types, domains, collations, extended statistics, comments, row-level security
//! (policies, and whether it is enabled per table) and every sequence's position. Each is kept by
//! name with its definition as the server prints it (the session's `search_path` is
//! `pg_catalog`, so names come out schema-qualified on both sides).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use futures_util::future::join_all;
use tokio_postgres::{GenericClient, Row};

use super::objects_sql::*;
use super::session::{explain, first_failure, keep_ok};
use super::sql::with_user_tables;
use crate::config::DbUrl;
use crate::pg::ident::QualifiedName;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub materialized: bool,
    /// `pg_get_viewdef(oid, true)`.
    pub definition: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub procedure: bool,
    /// `pg_get_functiondef`, or for an aggregate its definition from `pg_aggregate`.
    pub definition: String,
}

/// A sequence, owned by a column or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The table whose column owns it (serial or identity).
    pub owner: Option<QualifiedName>,
    /// `1000`, or `5 (not called)` before the first `nextval` (or after `setval(..., false)`);
    /// `None` when this session may not read it.
    pub position: Option<String>,
}

/// A comment (`COMMENT ON`): its text, and the relation it is on, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub relation: Option<QualifiedName>,
}

/// What a side has beyond its tables, each by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub views: BTreeMap<QualifiedName, View>,
    /// Functions, procedures and aggregates, keyed by name and identity arguments
    /// (`integer, text`).
    pub functions: BTreeMap<(QualifiedName, String), Function>,
    /// Keyed by relation and trigger name: `pg_get_triggerdef`.
    pub triggers: BTreeMap<(QualifiedName, String), String>,
    /// Keyed by relation and rule name: `pg_get_ruledef`.
    pub rules: BTreeMap<(QualifiedName, String), String>,
    /// Enum types: their labels in sort order.
    pub enums: BTreeMap<QualifiedName, Vec<String>>,
    /// Composite and range types: `composite (a integer, b text)`, `range (SUBTYPE = ...)`.
    pub types: BTreeMap<QualifiedName, String>,
    /// Domains: base type, NOT NULL, default, check constraints.
    pub domains: BTreeMap<QualifiedName, String>,
    pub collations: BTreeMap<QualifiedName, String>,
    /// Extended statistics: `pg_get_statisticsobjdef`.
    pub statistics: BTreeMap<QualifiedName, String>,
    /// Keyed by the object as `pg_identify_object` names it: `table column public.t.c`.
    pub comments: BTreeMap<String, Comment>,
    /// Keyed by table and policy name.
    pub policies: BTreeMap<(QualifiedName, String), String>,
    /// Per compared table: `disabled`, `enabled` or `enabled, forced`.
    pub row_security: BTreeMap<QualifiedName, String>,
    pub sequences: BTreeMap<QualifiedName, Sequence>,
}

/// Whether a query reads the whole database or only the compared tables (`user_tables`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Database,
    ComparedTables,
}

/// The queries [`read_objects`] sends, each with what it reads (for the error's context).
const QUERIES: [(&str, &str, Over); 14] = [
    ("views", VIEWS_SQL, Over::Database),
    ("functions", FUNCTIONS_SQL, Over::Database),
    ("aggregates", AGGREGATES_SQL, Over::Database),
    ("triggers", TRIGGERS_SQL, Over::Database),
    ("rules", RULES_SQL, Over::Database),
    ("enum types", ENUMS_SQL, Over::Database),
    ("composite and range types", TYPES_SQL, Over::Database),
    ("domains", DOMAINS_SQL, Over::Database),
    ("collations", COLLATIONS_SQL, Over::Database),
    ("extended statistics", STATISTICS_SQL, Over::Database),
    ("comments", COMMENTS_SQL, Over::Database),
    ("policies", POLICIES_SQL, Over::ComparedTables),
    ("row security", ROW_SECURITY_SQL, Over::ComparedTables),
    ("sequences", ALL_SEQUENCES_SQL, Over::Database),
];

/// Reads every object beyond the tables, all queries in flight at once, then the positions of
/// the sequences this session may read.
pub async fn read_objects<C: GenericClient + Sync>(tx: &C, url: &DbUrl) -> Result<Objects> {
    let sqls: Vec<String> = QUERIES
        .iter()
        .map(|&(_, sql, over)| match over {
            Over::Database => sql.to_string(),
            Over::ComparedTables => with_user_tables(sql),
        })
        .collect();
    let results = join_all(sqls.iter().map(|sql| tx.query(sql.as_str(), &[]))).await;
    let mut errors = Vec::new();
    let mut read = Vec::new();
    for ((what, _, _), result) in QUERIES.iter().zip(results) {
        let rows = result
            .map_err(explain)
            .with_context(|| format!("reading the {what} of {url}"));
        if let Some(rows) = keep_ok(rows, &mut errors) {
            read.push(rows);
        }
    }
    let Ok(
        [views, functions, aggregates, triggers, rules, enums, types, domains, collations, statistics, comments, policies, row_security, sequences],
    ) = <[Vec<Row>; 14]>::try_from(read)
    else {
        return Err(first_failure(errors));
    };
    let name = |row: &Row| QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
    let named = |rows: &[Row]| -> BTreeMap<QualifiedName, String> {
        rows.iter().map(|row| (name(row), row.get(2))).collect()
    };
    let on_relation = |rows: &[Row]| -> BTreeMap<(QualifiedName, String), String> {
        rows.iter()
            .map(|row| ((name(row), row.get(2)), row.get(3)))
            .collect()
    };
    let mut out = Objects {
        triggers: on_relation(&triggers),
        rules: on_relation(&rules),
        policies: on_relation(&policies),
        types: named(&types),
        domains: named(&domains),
        collations: named(&collations),
        statistics: named(&statistics),
        row_security: named(&row_security),
        ..Objects::default()
    };
    for row in &views {
        out.views.insert(
            name(row),
            View {
                materialized: row.get(2),
                definition: row.get(3),
            },
        );
    }
    for row in functions.iter().chain(&aggregates) {
        out.functions.insert(
            (name(row), row.get(2)),
            Function {
                procedure: row.get(3),
                definition: row.get(4),
            },
        );
    }
    for row in &enums {
        out.enums.insert(name(row), row.get(2));
    }
    for row in &comments {
        let (kind, identity): (String, String) = (row.get(0), row.get(1));
        out.comments.insert(
            format!("{kind} {identity}"),
            Comment {
                text: row.get(2),
                relation: optional_name(row, 3, 4),
            },
        );
    }
    let mut readable = Vec::new();
    for row in &sequences {
        let seq = name(row);
        let owner = optional_name(row, 3, 4);
        if row.get::<_, bool>(2) {
            readable.push(seq.clone());
        }
        out.sequences.insert(
            seq,
            Sequence {
                owner,
                position: None,
            },
        );
    }
    for (seq, position) in read_positions(tx, url, &readable).await? {
        if let Some(s) = out.sequences.get_mut(&seq) {
            s.position = Some(position);
        }
    }
    Ok(out)
}

/// A relation named by two nullable columns (schema, name) of a row: `None` when there is none.
fn optional_name(row: &Row, schema: usize, name: usize) -> Option<QualifiedName> {
    match (
        row.get::<_, Option<String>>(schema),
        row.get::<_, Option<String>>(name),
    ) {
        (Some(schema), Some(name)) => Some(QualifiedName::new(schema, name)),
        _ => None,
    }
}

/// `SELECT last_value, is_called FROM <seq>` for every readable sequence, in one query (reading
/// a sequence is allowed in a read-only transaction; `pg_sequences` alone cannot tell
/// `setval(s, 5, false)` from `setval(s, 7, false)`).
pub fn positions_sql(sequences: &[QualifiedName]) -> Option<String> {
    if sequences.is_empty() {
        return None;
    }
    let parts: Vec<String> = sequences
        .iter()
        .enumerate()
        .map(|(i, s)| format!("SELECT {i}, last_value, is_called FROM {}", s.sql()))
        .collect();
    Some(parts.join(" UNION ALL "))
}

async fn read_positions<C: GenericClient + Sync>(
    tx: &C,
    url: &DbUrl,
    sequences: &[QualifiedName],
) -> Result<Vec<(QualifiedName, String)>> {
    let Some(sql) = positions_sql(sequences) else {
        return Ok(Vec::new());
    };
    let rows = tx
        .query(&sql, &[])
        .await
        .map_err(explain)
        .with_context(|| format!("reading the sequences' positions on {url}"))?;
    let mut out = Vec::new();
    for row in rows {
        let i: i32 = row.get(0);
        let last: i64 = row.get(1);
        let called: bool = row.get(2);
        let shown = if called {
            last.to_string()
        } else {
            format!("{last} (not called)")
        };
        if let Some(seq) = sequences.get(i as usize) {
            out.push((seq.clone(), shown));
        }
    }
    Ok(out)
}
