//! After a masked pull, a check that the masking held: for every column whose rule rewrites the
//! source's value (email, name, hash), no local value is one of the source's values of that column
//! outside its kept rows (`keep_where`). Each side gives the set of md5s of its distinct non-NULL
//! values (the source in its snapshot), compared here, so no value is shown or moved. A fixed
//! value or NULL says nothing of the source and is not scanned.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::source::SourceRead;
use crate::{
    config::Database,
    pg::ident::{quote_ident, QualifiedName},
    policy::{dump::policy_table, DbKey, Policy, Rule, TableKey},
};

/// One scanned column: the table, the column, and the rows the policy keeps raw.
pub struct Scanned {
    pub table: QualifiedName,
    pub column: String,
    pub keep_where: Option<String>,
}

/// The columns of `tables` that a leak would show in: those under email, name or hash.
pub fn scanned_columns<'a>(
    policy: &Policy,
    db: Database,
    source: &SourceRead,
    tables: impl IntoIterator<Item = &'a QualifiedName>,
) -> Vec<Scanned> {
    let mut out = Vec::new();
    for table in tables {
        // A partitioned table's rows are its partitions', scanned each on its own.
        if source.is_partitioned(table) {
            continue;
        }
        let key = TableKey {
            db: DbKey::of(db),
            table: policy_table(&source.partitions.root_of(table)),
        };
        let Some(entry) = policy.tables.get(&key) else {
            continue;
        };
        let columns = source.catalog.tables.get(table).map(|t| &t.columns);
        for (column, rule) in &entry.columns {
            let exists = columns.is_some_and(|c| c.contains_key(column));
            if exists && matches!(rule, Rule::Email | Rule::Name | Rule::Hash) {
                out.push(Scanned {
                    table: table.clone(),
                    column: column.clone(),
                    keep_where: entry.keep_where.clone(),
                });
            }
        }
    }
    out
}

/// The md5s of the distinct non-NULL values of one column, on one side (`skip_kept`: leaving out
/// the rows the policy keeps raw).
async fn value_md5s(client: &Client, s: &Scanned, skip_kept: bool) -> Result<BTreeSet<String>> {
    let col = quote_ident(&s.column);
    let kept = match (&s.keep_where, skip_kept) {
        (Some(cond), true) => format!(" AND NOT coalesce(({cond}), false)"),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT DISTINCT pg_catalog.md5(({col})::text) FROM ONLY {} WHERE {col} IS NOT NULL{kept}",
        s.table.sql()
    );
    let rows = client
        .query(&sql, &[])
        .await
        .with_context(|| format!("reading the values of {}.{col}", s.table))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Each scanned column whose local values share one with the source's (outside the kept rows),
/// named with how many: empty when the masking held.
pub async fn leaks(
    source: &SourceRead,
    local: &Client,
    scanned: &[Scanned],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for s in scanned {
        let (theirs, ours) = tokio::try_join!(
            value_md5s(&source.client, s, true),
            value_md5s(local, s, false)
        )?;
        let shared = theirs.intersection(&ours).count();
        if shared > 0 {
            found.push(format!(
                "{}.{}: {shared} local value(s) equal to the source's, which the policy masks",
                s.table,
                quote_ident(&s.column)
            ));
        }
    }
    Ok(found)
}
