//! db-pull's plan of one database: the source, the local database as it is and what happens to
//! it, where the schema comes from, the largest tables, and the backup.

use super::{DbPull, Pulled};
use crate::{
    alembic::AlembicConfig,
    transfer::{backup, human_bytes, Job, SchemaMode},
};

impl DbPull {
    /// What a pull of one database will do, for people (printed before the confirmation).
    pub(super) fn plan(&self, p: &Job<Pulled>) -> String {
        let mut out = format!(
            "{}: pull {} -> {}\n  source: PostgreSQL {}, {} tables to copy, {} rows\n",
            p.db.label(),
            p.source.endpoint.url,
            p.target,
            p.source.version.text,
            p.selection.tables.len(),
            p.rows()
        );
        match (&p.own.before, p.own.size) {
            (Some(before), Some(size)) => {
                let rows: i64 = before.measures.tables.values().map(|m| m.rows).sum();
                let what = if p.selection.partial {
                    format!(
                        "the data of {} of its {} tables is replaced",
                        p.selection.tables.len(),
                        before.catalog.tables.len()
                    )
                } else {
                    "it is replaced whole".to_string()
                };
                out += &format!(
                    "  local: {} ({}, {} tables, {rows} rows): {what}\n",
                    p.target.dbname(),
                    human_bytes(size),
                    before.catalog.tables.len()
                );
            }
            _ => {
                out += &format!(
                    "  local: {} does not exist yet: it is created\n",
                    p.target.dbname()
                )
            }
        }
        out += &format!(
            "  schema: {}\n",
            match (self.copy.schema, p.selection.partial) {
                (_, true) => "kept as it is".to_string(),
                (SchemaMode::Migrations, _) => format!(
                    "alembic -c {} upgrade head ({})",
                    AlembicConfig::of(p.db).ini(),
                    p.heads.join(", ")
                ),
                (SchemaMode::Source, _) => {
                    "the source's own, by pg_dump's sections (pre-data, then post-data after the data)"
                        .to_string()
                }
            }
        );
        let mut largest: Vec<_> = p
            .selection
            .tables
            .iter()
            .map(|t| (p.source.rows(t), t))
            .collect();
        largest.sort_by_key(|(rows, _)| std::cmp::Reverse(*rows));
        for (rows, t) in largest.iter().take(8) {
            out += &format!(
                "    {t}: {rows} rows, {}\n",
                human_bytes(p.source.sizes.get(*t).copied().unwrap_or(0))
            );
        }
        if largest.len() > 8 {
            out += &format!("    ... and {} more tables\n", largest.len() - 8);
        }
        out += &format!(
            "  data: {}\n",
            if p.own.masking.is_some() {
                format!(
                    "masked on the source by {}",
                    crate::policy::policy_path().display()
                )
            } else {
                "UNMASKED (--unmasked): every column as it is".to_string()
            }
        );
        out += &format!(
            "  backup: {}",
            if self.copy.no_backup {
                "none (--no-backup)".to_string()
            } else if p.own.before.is_some() {
                format!("custom format, under {}", backup::backups_dir().display())
            } else {
                "nothing to back up".to_string()
            }
        );
        out
    }
}
