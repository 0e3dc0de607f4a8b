//! The end of a full copy's load, in its transaction before COMMIT: every sequence of the copy's
//! scope set to the source snapshot's position, and every materialized view that the source has
//! populated refreshed from the loaded rows, each after the materialized views it reads.
//!
//! pg_dump's data dump with `--table` patterns sets only the sequences owned by those tables'
//! columns, and it never refreshes a materialized view: an unowned sequence (used through
//! `nextval()`) would keep the target's fresh position and a materialized view would stay empty,
//! or unpopulated as `--schema source` writes it. A partial copy (`--tables`, `--exclude-table`)
//! sets only the selected tables' sequences, as pg_dump does, and refreshes nothing: unowned
//! sequences and materialized views are not part of a table selection. Upsert keeps the target's
//! sequences (it moves them past the merged rows instead) and refreshes like replace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::{load::LoadMode, selection::Selection, source::SourceRead};
use crate::config::DbUrl;
use crate::pg::ident::QualifiedName;
use crate::verify::catalog::positions_sql;

/// A sequence's position as `setval` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceValue {
    pub sequence: QualifiedName,
    pub last_value: i64,
    pub is_called: bool,
}

/// What the load does after the data, before COMMIT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finish {
    pub sequences: Vec<SequenceValue>,
    /// Materialized views to refresh, in the order to refresh them.
    pub refresh: Vec<QualifiedName>,
}

impl Finish {
    /// One `setval` per sequence, then one `REFRESH MATERIALIZED VIEW` per view, in order.
    pub fn sql(&self) -> String {
        let mut sql = String::new();
        for s in &self.sequences {
            // The quoted name is a literal cast to regclass: quotes in it doubled.
            let _ = writeln!(
                sql,
                "SELECT pg_catalog.setval('{}'::pg_catalog.regclass, {}, {});",
                s.sequence.sql().replace('\'', "''"),
                s.last_value,
                s.is_called
            );
        }
        for m in &self.refresh {
            let _ = writeln!(sql, "REFRESH MATERIALIZED VIEW {};", m.sql());
        }
        sql
    }
}

/// A view or materialized view of the target, with the views and materialized views its query
/// reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewNode {
    pub materialized: bool,
    pub reads: BTreeSet<QualifiedName>,
}

/// The materialized views of `wanted` in an order where each comes after every materialized view
/// it reads, directly or through plain views. Repeated passes; a view left over (a cycle cannot
/// be created, but a catalog read could be incomplete) comes last, by name.
pub fn refresh_order(
    views: &BTreeMap<QualifiedName, ViewNode>,
    wanted: &BTreeSet<QualifiedName>,
) -> Vec<QualifiedName> {
    let needs: BTreeMap<&QualifiedName, BTreeSet<QualifiedName>> = wanted
        .iter()
        .filter(|m| views.get(*m).is_some_and(|v| v.materialized))
        .map(|m| (m, materialized_reads(views, m)))
        .collect();
    let mut done: BTreeSet<QualifiedName> = BTreeSet::new();
    let mut order = Vec::new();
    loop {
        let ready: Vec<&QualifiedName> = needs
            .iter()
            .filter(|(m, _)| !done.contains(**m))
            .filter(|(_, deps)| {
                deps.iter()
                    .all(|d| done.contains(d) || !needs.contains_key(d))
            })
            .map(|(m, _)| *m)
            .collect();
        if ready.is_empty() {
            break;
        }
        for m in ready {
            done.insert(m.clone());
            order.push(m.clone());
        }
    }
    order.extend(
        needs
            .keys()
            .filter(|m| !done.contains(**m))
            .map(|m| (*m).clone()),
    );
    order
}

/// The materialized views that `start` reads, through any number of plain views.
fn materialized_reads(
    views: &BTreeMap<QualifiedName, ViewNode>,
    start: &QualifiedName,
) -> BTreeSet<QualifiedName> {
    let mut found = BTreeSet::new();
    let mut seen = BTreeSet::from([start.clone()]);
    let mut todo: Vec<QualifiedName> = views
        .get(start)
        .map(|v| v.reads.iter().cloned().collect())
        .unwrap_or_default();
    while let Some(next) = todo.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        match views.get(&next) {
            Some(v) if v.materialized => {
                found.insert(next);
            }
            Some(v) => todo.extend(v.reads.iter().cloned()),
            None => {}
        }
    }
    found
}

/// The sequences whose position a copy sets: a full copy's every sequence (unowned, or owned by
/// a copied table), a partial copy's only those owned by the selected tables; none in upsert.
pub fn sequences_in_scope(
    source: &SourceRead,
    selection: &Selection,
    mode: LoadMode,
) -> Vec<QualifiedName> {
    if mode == LoadMode::Upsert {
        return Vec::new();
    }
    source
        .catalog
        .objects
        .sequences
        .iter()
        .filter(|(_, s)| s.position.is_some())
        .filter(|(_, s)| match &s.owner {
            Some(table) => selection.tables.contains(table),
            None => !selection.partial,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Every view and sequence of the target, one snapshot.
const TARGET_VIEWS_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text, c.relkind = 'm', dn.nspname::text, dc.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid
LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
     AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.refobjid <> c.oid
LEFT JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid AND dc.relkind IN ('v', 'm')
LEFT JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'"#;

const TARGET_SEQUENCES_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S'"#;

/// The source's populated materialized views, read in its snapshot.
const POPULATED_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND c.relispopulated"#;

fn names(rows: &[tokio_postgres::Row]) -> BTreeSet<QualifiedName> {
    rows.iter()
        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect()
}

/// Reads what the end of the load does: the positions in the source's snapshot of the sequences
/// in scope that the target has too, and (full copies) the target's materialized views that are
/// populated on the source, in refresh order.
pub async fn read<C: GenericClient + Sync>(
    source: &SourceRead,
    target: &C,
    target_url: &DbUrl,
    selection: &Selection,
    mode: LoadMode,
) -> Result<Finish> {
    let on_target = names(
        &target
            .query(TARGET_SEQUENCES_SQL, &[])
            .await
            .with_context(|| format!("reading the sequences of {target_url}"))?,
    );
    let scope: Vec<QualifiedName> = sequences_in_scope(source, selection, mode)
        .into_iter()
        .filter(|s| on_target.contains(s))
        .collect();
    let mut finish = Finish::default();
    if let Some(sql) = positions_sql(&scope) {
        let rows = source.client.query(&sql, &[]).await.with_context(|| {
            format!(
                "reading the sequences' positions on {}",
                source.endpoint.url
            )
        })?;
        for row in rows {
            if let Some(seq) = scope.get(row.get::<_, i32>(0) as usize) {
                finish.sequences.push(SequenceValue {
                    sequence: seq.clone(),
                    last_value: row.get(1),
                    is_called: row.get(2),
                });
            }
        }
    }
    if selection.partial {
        return Ok(finish);
    }
    let populated = names(
        &source
            .client
            .query(POPULATED_SQL, &[])
            .await
            .with_context(|| {
                format!("reading the materialized views of {}", source.endpoint.url)
            })?,
    );
    let mut views: BTreeMap<QualifiedName, ViewNode> = BTreeMap::new();
    let rows = target
        .query(TARGET_VIEWS_SQL, &[])
        .await
        .with_context(|| format!("reading the views of {target_url}"))?;
    for row in rows {
        let name = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let node = views.entry(name).or_default();
        node.materialized = row.get(2);
        if let (Some(schema), Some(view)) = (
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
        ) {
            node.reads.insert(QualifiedName::new(schema, view));
        }
    }
    finish.refresh = refresh_order(&views, &populated);
    Ok(finish)
}
