//! Which tables a copy takes (`--tables` / `--exclude-table` against the source's tables), the
//! pg_dump arguments that name them, how a parallel load spreads them over its jobs, and the check
//! that the target's schema can hold their data.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use super::{partitions::Partitions, source::SourceRead, SchemaMode};
use crate::{
    exit::UsageError,
    pg::ident::{shown_ident, QualifiedName},
    verify::catalog::Catalog,
};

/// The tables whose data is copied.
#[derive(Clone, Debug)]
pub struct Selection {
    pub tables: BTreeSet<QualifiedName>,
    /// Only some tables (`--tables` / `--exclude-table`): the others are left as they are.
    pub partial: bool,
}

/// Resolves `--tables` / `--exclude-table` against the source's tables. A name that matches no
/// table, or tables in several schemas, is a usage error. The Alembic table is copied only in
/// `--schema source` mode, or when named. A partitioned table named brings its partitions, and
/// one kept without all of them is refused (`partitions.rs`).
pub fn select_tables(
    source: &Catalog,
    partitions: &Partitions,
    include: &[String],
    exclude: &[String],
    schema: SchemaMode,
) -> Result<Selection> {
    let resolve = |names: &[String]| -> Result<BTreeSet<QualifiedName>> {
        let mut found = BTreeSet::new();
        for raw in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let matches: Vec<&QualifiedName> = source
                .tables
                .keys()
                .filter(|t| match raw.split_once('.') {
                    Some((schema, name)) if t.schema == schema && t.name == name => true,
                    _ => t.name == raw,
                })
                .collect();
            match matches.as_slice() {
                [] => {
                    let known: Vec<String> = source
                        .tables
                        .keys()
                        .take(12)
                        .map(|t| t.to_string())
                        .collect();
                    return Err(UsageError::new(format!(
                        "no table `{raw}` in the source (it has {}{}); nothing was changed",
                        known.join(", "),
                        if source.tables.len() > 12 {
                            ", ..."
                        } else {
                            ""
                        }
                    ))
                    .into());
                }
                [one] => {
                    found.insert((*one).clone());
                }
                many => {
                    let names: Vec<String> = many.iter().map(|t| t.to_string()).collect();
                    return Err(UsageError::new(format!(
                        "table `{raw}` is ambiguous: {}; name it as schema.table",
                        names.join(", ")
                    ))
                    .into());
                }
            }
        }
        Ok(found)
    };
    let included = partitions.with_partitions(resolve(include)?);
    let excluded = resolve(exclude)?;
    let alembic = source.alembic.as_ref().map(|a| a.table.clone());
    let partial = !include.is_empty() || !exclude.is_empty();
    let tables: BTreeSet<QualifiedName> = if include.is_empty() {
        source
            .tables
            .keys()
            .filter(|t| !excluded.contains(*t))
            .filter(|t| schema == SchemaMode::Source || Some(*t) != alembic.as_ref())
            .cloned()
            .collect()
    } else {
        included.difference(&excluded).cloned().collect()
    };
    if tables.is_empty() && partial {
        return Err(UsageError::new("--tables/--exclude-table leave no table to copy").into());
    }
    partitions.check_whole(&tables)?;
    Ok(Selection { tables, partial })
}

/// A pg_dump pattern that matches exactly this table (quoted parts: no case folding, no
/// wildcards).
pub fn dump_pattern(table: &QualifiedName) -> String {
    let part = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{}.{}", part(&table.schema), part(&table.name))
}

/// pg_dump's arguments for the data of the selection, in the source's snapshot.
pub fn data_dump_args(source: &SourceRead, selection: &Selection) -> Vec<String> {
    let everything = !selection.partial && selection.tables.len() == source.catalog.tables.len();
    let only: Vec<&QualifiedName> = selection.tables.iter().collect();
    dump_args(source, (!everything).then_some(&only[..]))
}

/// pg_dump's arguments for the data of `only` these relations (tables or sequences), or of
/// everything, in the source's snapshot.
pub(super) fn dump_args(source: &SourceRead, only: Option<&[&QualifiedName]>) -> Vec<String> {
    let mut args = vec![
        "--data-only".to_string(),
        "--no-owner".to_string(),
        "--no-privileges".to_string(),
    ];
    args.extend(source.dump_args());
    args.extend(
        only.into_iter()
            .flatten()
            .map(|t| format!("--table={}", dump_pattern(t))),
    );
    args
}

/// Tables spread over a parallel load's jobs, biggest first onto the least loaded, so that the
/// jobs end close together; the jobs start with `loads` (what they carry already: ranges of
/// split tables, `ranges`). One list per job, empty ones kept.
pub(super) fn spread(
    tables: &BTreeSet<QualifiedName>,
    sizes: &BTreeMap<QualifiedName, i64>,
    loads: Vec<i64>,
) -> Vec<Vec<QualifiedName>> {
    let mut by_size: Vec<&QualifiedName> = tables.iter().collect();
    by_size.sort_by_key(|t| std::cmp::Reverse(sizes.get(*t).copied().unwrap_or(0)));
    let mut out: Vec<(i64, Vec<QualifiedName>)> =
        loads.into_iter().map(|l| (l, Vec::new())).collect();
    for table in by_size {
        let lightest = out
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one job");
        // An empty table still costs a round of COPY: count it as one byte.
        lightest.0 += sizes.get(table).copied().unwrap_or(0).max(1);
        lightest.1.push(table.clone());
    }
    out.into_iter().map(|(_, t)| t).collect()
}

/// The source's tables and columns that the target lacks: named, never skipped silently.
pub fn check_target_can_hold(
    source: &Catalog,
    target: &Catalog,
    selection: &Selection,
    target_label: &str,
) -> Result<()> {
    let mut missing_tables = Vec::new();
    let mut missing_columns = Vec::new();
    for name in &selection.tables {
        let Some(theirs) = target.tables.get(name) else {
            missing_tables.push(name.to_string());
            continue;
        };
        if let Some(ours) = source.tables.get(name) {
            for (column, c) in &ours.columns {
                if c.generated.is_none() && !theirs.columns.contains_key(column) {
                    missing_columns.push(format!("{name}.{}", shown_ident(column)));
                }
            }
        }
    }
    if missing_tables.is_empty() && missing_columns.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing_tables.is_empty() {
        parts.push(format!(
            "table(s) missing on {target_label}: {}",
            missing_tables.join(", ")
        ));
    }
    if !missing_columns.is_empty() {
        parts.push(format!(
            "column(s) missing on {target_label}: {}",
            missing_columns.join(", ")
        ));
    }
    bail!(
        "the source has data that the {target_label} schema cannot hold: {}. The source's schema \
         is not the one this repo's migrations build: check its Alembic revision, use --schema \
         source, or leave the tables out with --exclude-table",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_patterns_match_exactly() {
        assert_eq!(
            dump_pattern(&QualifiedName::new("public", "users")),
            r#""public"."users""#
        );
        assert_eq!(
            dump_pattern(&QualifiedName::new("My Schema", "we\"ird.*")),
            r#""My Schema"."we""ird.*""#
        );
    }

    #[test]
    fn jobs_get_the_biggest_tables_first_and_even_loads() {
        let t = |n: &str| QualifiedName::new("public", n);
        let sizes: BTreeMap<QualifiedName, i64> = [
            (t("big"), 100),
            (t("mid"), 60),
            (t("small"), 30),
            (t("tiny"), 10),
        ]
        .into();
        let tables: BTreeSet<QualifiedName> = sizes.keys().cloned().collect();
        let jobs = spread(&tables, &sizes, vec![0; 2]);
        assert_eq!(
            jobs,
            vec![vec![t("big")], vec![t("mid"), t("small"), t("tiny")]]
        );
        assert_eq!(
            spread(&tables, &sizes, vec![0]),
            vec![vec![t("big"), t("mid"), t("small"), t("tiny")]]
        );
        // A job that carries a load already gets less.
        assert_eq!(
            spread(&tables, &sizes, vec![150, 0]),
            vec![vec![t("small")], vec![t("big"), t("mid"), t("tiny")]]
        );
    }
}
