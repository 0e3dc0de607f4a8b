//! What one backup holds, read from the archive alone (`archive.rs`): its tables and each one's
//! rows, checked against the archive's own table of contents. And the check of a database
//! against it, both ways: a restored copy, the remote after a remote restore, and the remote's
//! fresh backup against the remote it was taken of must each hold exactly the backup's tables,
//! each with the backup's rows.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};

use super::archive;
use crate::{
    config::DbUrl,
    ctx::Ctx,
    pg::{ident::QualifiedName, PgTools},
    transfer::read_snapshot,
};

/// A backup's tables and each one's rows.
pub struct Dumped {
    pub tables: Vec<QualifiedName>,
    pub rows: BTreeMap<QualifiedName, i64>,
}

impl Dumped {
    /// Reads the archive at `path`: a damaged one (its list and its SQL disagree) is refused.
    pub fn read(tools: &PgTools, path: &Path) -> Result<Dumped> {
        let toc = archive::read_toc(tools, path)?;
        let contents = archive::read_contents(tools, path)?;
        if contents.rows.len() != toc.with_data {
            bail!(
                "the backup {} lists data for {} tables but holds data for {}: it is damaged; \
                 nothing was changed",
                path.display(),
                toc.with_data,
                contents.rows.len()
            );
        }
        if contents.tables.len() != toc.tables {
            bail!(
                "the backup {} lists {} tables, and its SQL creates {}: it is damaged, or not a \
                 dump this xtask can read; nothing was changed",
                path.display(),
                toc.tables,
                contents.tables.len()
            );
        }
        Ok(Dumped {
            tables: contents.tables.into_iter().collect(),
            rows: contents.rows,
        })
    }

    pub fn total_rows(&self) -> i64 {
        self.rows.values().sum()
    }

    /// `N tables, M rows`, for messages.
    pub fn summary(&self) -> String {
        format!("{} tables, {} rows", self.tables.len(), self.total_rows())
    }

    /// How the database at `url` differs from the backup, by table: missing, with other row
    /// counts, or not in the backup. Empty when it holds exactly what the backup does.
    pub fn differences(&self, ctx: &Ctx, url: &DbUrl) -> Result<Vec<String>> {
        let db = ctx
            .block_on(read_snapshot(url, ctx.timeout()))
            .with_context(|| format!("counting the rows of {url}"))?;
        let mut wrong = Vec::new();
        for table in &self.tables {
            let want = self.rows.get(table).copied().unwrap_or(0);
            match db.measures.tables.get(table) {
                None => wrong.push(format!("{table}: missing")),
                Some(m) if m.rows != want => {
                    wrong.push(format!("{table}: {} rows, the backup holds {want}", m.rows))
                }
                Some(_) => {}
            }
        }
        wrong.extend(
            db.catalog
                .tables
                .keys()
                .filter(|t| self.tables.binary_search(t).is_err())
                .map(|t| format!("{t}: not in the backup")),
        );
        Ok(wrong)
    }
}
