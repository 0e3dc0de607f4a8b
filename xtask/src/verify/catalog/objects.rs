//! The objects of a database beyond its tables, read in the side's snapshot: views and
//! materialized views, functions and procedures, triggers, enum types, domains, row-level
//! security (policies, and whether it is enabled per table) and every sequence's position. Each
//! is kept by name with its definition as the server prints it (the session's `search_path` is
//! `pg_catalog`, so names come out schema-qualified on both sides).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

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
    /// `pg_get_functiondef`.
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

/// What a side has beyond its tables, each by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub views: BTreeMap<QualifiedName, View>,
    /// Keyed by name and identity arguments (`integer, text`).
    pub functions: BTreeMap<(QualifiedName, String), Function>,
    /// Keyed by relation and trigger name: `pg_get_triggerdef`.
    pub triggers: BTreeMap<(QualifiedName, String), String>,
    /// Enum types: their labels in sort order.
    pub enums: BTreeMap<QualifiedName, Vec<String>>,
    /// Domains: base type, NOT NULL, default, check constraints.
    pub domains: BTreeMap<QualifiedName, String>,
    /// Keyed by table and policy name.
    pub policies: BTreeMap<(QualifiedName, String), String>,
    /// Per compared table: `disabled`, `enabled` or `enabled, forced`.
    pub row_security: BTreeMap<QualifiedName, String>,
    pub sequences: BTreeMap<QualifiedName, Sequence>,
}

/// Reads every object beyond the tables, all queries in flight at once, then the positions of
/// the sequences this session may read.
pub async fn read_objects<C: GenericClient + Sync>(tx: &C, url: &DbUrl) -> Result<Objects> {
    let policies_sql = with_user_tables(POLICIES_SQL);
    let row_security_sql = with_user_tables(ROW_SECURITY_SQL);
    let (views, functions, triggers, enums, domains, policies, row_security, sequences) = tokio::join!(
        tx.query(VIEWS_SQL, &[]),
        tx.query(FUNCTIONS_SQL, &[]),
        tx.query(TRIGGERS_SQL, &[]),
        tx.query(ENUMS_SQL, &[]),
        tx.query(DOMAINS_SQL, &[]),
        tx.query(&policies_sql, &[]),
        tx.query(&row_security_sql, &[]),
        tx.query(ALL_SEQUENCES_SQL, &[]),
    );
    let mut errors = Vec::new();
    let mut take = |result: Result<_, tokio_postgres::Error>, what: &str| {
        keep_ok(
            result
                .map_err(explain)
                .with_context(|| format!("reading the {what} of {url}")),
            &mut errors,
        )
    };
    let views = take(views, "views");
    let functions = take(functions, "functions");
    let triggers = take(triggers, "triggers");
    let enums = take(enums, "enum types");
    let domains = take(domains, "domains");
    let policies = take(policies, "policies");
    let row_security = take(row_security, "row security");
    let sequences = take(sequences, "sequences");
    let (
        Some(views),
        Some(functions),
        Some(triggers),
        Some(enums),
        Some(domains),
        Some(policies),
        Some(row_security),
        Some(sequences),
    ) = (
        views,
        functions,
        triggers,
        enums,
        domains,
        policies,
        row_security,
        sequences,
    )
    else {
        return Err(first_failure(errors));
    };
    let name = |row: &tokio_postgres::Row| {
        QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1))
    };
    let mut out = Objects::default();
    for row in &views {
        out.views.insert(
            name(row),
            View {
                materialized: row.get(2),
                definition: row.get(3),
            },
        );
    }
    for row in &functions {
        out.functions.insert(
            (name(row), row.get(2)),
            Function {
                procedure: row.get(3),
                definition: row.get(4),
            },
        );
    }
    for row in &triggers {
        out.triggers.insert((name(row), row.get(2)), row.get(3));
    }
    for row in &enums {
        out.enums.insert(name(row), row.get(2));
    }
    for row in &domains {
        out.domains.insert(name(row), row.get(2));
    }
    for row in &policies {
        out.policies.insert((name(row), row.get(2)), row.get(3));
    }
    for row in &row_security {
        out.row_security.insert(name(row), row.get(2));
    }
    let mut readable = Vec::new();
    for row in &sequences {
        let seq = name(row);
        let owner = match (
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
        ) {
            (Some(schema), Some(table)) => Some(QualifiedName::new(schema, table)),
            _ => None,
        };
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
