//! The source's partitioned tables and their partitions, read in its snapshot, so that a copy
//! takes a partitioned table whole: pg_dump writes a partitioned table's rows as COPY into each
//! partition (`--table parent` alone dumps none of them), so naming the parent selects every
//! partition under it, and a selection that keeps a partitioned table but leaves out one of its
//! partitions is refused (exit 2) before anything is touched: replacing the table would replace
//! rows that are not copied. Inheritance children are tables of their own and are not added.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::{config::DbUrl, exit::UsageError, pg::ident::QualifiedName};

const PARTITIONS_SQL: &str = "\
SELECT pn.nspname, p.relname, cn.nspname, c.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent AND p.relkind = 'p'
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND c.relkind IN ('r', 'p')
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
ORDER BY 1, 2, 3, 4";

/// Each partitioned table's direct partitions (a partition may be partitioned in turn).
#[derive(Clone, Debug, Default)]
pub struct Partitions {
    direct: BTreeMap<QualifiedName, Vec<QualifiedName>>,
}

impl Partitions {
    pub async fn read(client: &Client, url: &DbUrl) -> Result<Partitions> {
        let rows = client
            .query(PARTITIONS_SQL, &[])
            .await
            .with_context(|| format!("reading the partitions of {url}"))?;
        let mut direct: BTreeMap<QualifiedName, Vec<QualifiedName>> = BTreeMap::new();
        for r in &rows {
            direct
                .entry(QualifiedName::new(
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                ))
                .or_default()
                .push(QualifiedName::new(
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                ));
        }
        Ok(Partitions { direct })
    }

    /// Every partition under `table`, at any depth (none for a table that is not partitioned).
    fn all_under(&self, table: &QualifiedName) -> BTreeSet<QualifiedName> {
        let mut found = BTreeSet::new();
        let mut todo = vec![table.clone()];
        while let Some(next) = todo.pop() {
            for part in self.direct.get(&next).into_iter().flatten() {
                if found.insert(part.clone()) {
                    todo.push(part.clone());
                }
            }
        }
        found
    }

    /// The partitioned table at the top of `table`'s tree (`table` itself when it is no
    /// partition): the data policy names only roots, and a partition takes its root's rules.
    pub fn root_of(&self, table: &QualifiedName) -> QualifiedName {
        let mut at = table.clone();
        // Bounded by the number of parents: a catalog has no cycles, a bug must not loop.
        for _ in 0..=self.direct.len() {
            match self
                .direct
                .iter()
                .find(|(_, parts)| parts.contains(&at))
                .map(|(parent, _)| parent.clone())
            {
                Some(parent) => at = parent,
                None => break,
            }
        }
        at
    }

    /// `tables` and every partition under each of them.
    pub fn with_partitions(&self, tables: BTreeSet<QualifiedName>) -> BTreeSet<QualifiedName> {
        let mut all = tables.clone();
        for table in &tables {
            all.extend(self.all_under(table));
        }
        all
    }

    /// Refuses a selection that keeps a partitioned table but not all of its partitions.
    pub fn check_whole(&self, selected: &BTreeSet<QualifiedName>) -> Result<()> {
        let mut cut = Vec::new();
        for table in selected.iter().filter(|t| self.direct.contains_key(*t)) {
            let left_out: Vec<String> = self
                .all_under(table)
                .iter()
                .filter(|p| !selected.contains(*p))
                .map(|p| p.to_string())
                .collect();
            if !left_out.is_empty() {
                cut.push(format!("{table} (without {})", left_out.join(", ")));
            }
        }
        if cut.is_empty() {
            return Ok(());
        }
        Err(UsageError::new(format!(
            "a partitioned table is copied whole or not at all, and the selection leaves out \
             partitions of: {}. Keep those partitions, or leave the partitioned table out too \
             (--exclude-table); nothing was changed",
            cut.join("; ")
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> QualifiedName {
        QualifiedName::new("public", name)
    }

    fn tree() -> Partitions {
        Partitions {
            direct: [
                (t("events"), vec![t("events_2025"), t("events_2026")]),
                (t("events_2026"), vec![t("events_2026_q1")]),
            ]
            .into(),
        }
    }

    #[test]
    fn a_partition_at_any_depth_has_its_tree_root() {
        let tree = tree();
        assert_eq!(tree.root_of(&t("events_2026_q1")), t("events"));
        assert_eq!(tree.root_of(&t("events_2025")), t("events"));
        assert_eq!(tree.root_of(&t("events")), t("events"));
        assert_eq!(tree.root_of(&t("users")), t("users"));
    }

    #[test]
    fn a_partitioned_table_brings_every_partition_at_any_depth() {
        let all = tree().with_partitions([t("events"), t("users")].into());
        let want: BTreeSet<QualifiedName> = [
            t("events"),
            t("events_2025"),
            t("events_2026"),
            t("events_2026_q1"),
            t("users"),
        ]
        .into();
        assert_eq!(all, want);
        // A partition alone is a table of its own.
        assert_eq!(
            tree().with_partitions([t("events_2025")].into()),
            [t("events_2025")].into()
        );
    }

    #[test]
    fn a_partitioned_table_without_one_of_its_partitions_is_refused_by_name() {
        let tree = tree();
        let mut selected = tree.with_partitions([t("events")].into());
        assert!(tree.check_whole(&selected).is_ok());
        selected.remove(&t("events_2026_q1"));
        let err = tree.check_whole(&selected).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        let text = err.to_string();
        assert!(
            text.contains("public.events (without public.events_2026_q1)"),
            "{text}"
        );
        assert!(
            text.contains("public.events_2026 (without public.events_2026_q1)"),
            "{text}"
        );
    }
}
