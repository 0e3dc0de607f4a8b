//! What a load adds around its data beyond `load::LoadShaper`, in the same transaction: the
//! target's NOT VALID CHECK constraints on the loaded tables that are NOT VALID in the source too
//! dropped before the data and added back NOT VALID after it (a source row they were never
//! checked against would fail the COPY, where pg_restore's order copies it; a check that only
//! the target has still applies to every row), and `--schema source`'s post-data section last, after
//! the data and its row-count checks, before COMMIT.

use std::{collections::BTreeSet, fmt::Write as _, time::Duration};

use anyhow::{Context, Result};

use crate::{
    config::DbUrl,
    pg::{
        client,
        ident::{quote_ident, QualifiedName},
        stream::{CopyHeader, Shaper, TableProgress},
    },
    verify::catalog::Catalog,
};

/// A CHECK constraint created NOT VALID, as `pg_get_constraintdef` prints it (with NOT VALID).
#[derive(Clone, Debug)]
pub struct NotValidCheck {
    pub table: QualifiedName,
    pub name: String,
    pub definition: String,
}

const NOT_VALID_CHECKS_SQL: &str = "\
SELECT n.nspname, c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'c' AND NOT k.convalidated AND k.coninhcount = 0
ORDER BY 1, 2, 3";

/// The NOT VALID CHECK constraints of `tables` on `target` that the source has NOT VALID too,
/// with the same definition (a stricter one on the target still applies). Only a table's own
/// checks: dropping and adding a parent's reaches its inheritance children and partitions, and a
/// child's inherited copy cannot be dropped alone (it then stays, and applies).
pub async fn not_valid_checks(
    source: &Catalog,
    target: &DbUrl,
    tables: &BTreeSet<QualifiedName>,
    timeout: Duration,
) -> Result<Vec<NotValidCheck>> {
    let in_source = |c: &NotValidCheck| {
        source
            .tables
            .get(&c.table)
            .and_then(|t| t.constraints.get(&c.name))
            .is_some_and(|k| k.kind == "check" && k.definition == c.definition)
    };
    let conn = client::connect(target, timeout).await?;
    // An empty search_path makes pg_get_constraintdef qualify every name it prints.
    conn.batch_execute("SET search_path = ''")
        .await
        .with_context(|| format!("setting an empty search_path on {target}"))?;
    let rows = conn
        .query(NOT_VALID_CHECKS_SQL, &[])
        .await
        .with_context(|| format!("reading the NOT VALID check constraints of {target}"))?;
    Ok(rows
        .iter()
        .map(|r| NotValidCheck {
            table: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            name: r.get(2),
            definition: r.get(3),
        })
        .filter(|c| tables.contains(&c.table) && in_source(c))
        .collect())
}

/// A load's shaper with the NOT VALID checks and the post-data section around it.
pub struct AroundData<'a, S: Shaper> {
    pub inner: &'a mut S,
    pub not_valid_checks: &'a [NotValidCheck],
    pub post_data: Option<&'a str>,
}

impl<S: Shaper> Shaper for AroundData<'_, S> {
    fn prologue(&mut self) -> String {
        let mut sql = self.inner.prologue();
        for c in self.not_valid_checks {
            sql.push_str(&c.table.drop_constraint_sql(&c.name));
        }
        sql
    }
    fn copy_header(&mut self, header: &CopyHeader, line: &str) -> String {
        self.inner.copy_header(header, line)
    }
    fn keep_line(&mut self, line: &str) -> bool {
        self.inner.keep_line(line)
    }
    fn epilogue(&mut self, loaded: &[TableProgress]) -> String {
        let mut sql = self.inner.epilogue(loaded);
        for c in self.not_valid_checks {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} ADD CONSTRAINT {} {};",
                c.table.sql(),
                quote_ident(&c.name),
                c.definition
            );
        }
        if let Some(post_data) = self.post_data {
            sql.push_str(post_data);
            if !post_data.ends_with('\n') {
                sql.push('\n');
            }
        }
        sql
    }
}
