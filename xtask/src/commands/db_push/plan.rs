//! db-push's plan of one database: the source, the mode, the schema step against the remote's
//! revision, each table's rows against the remote's, and the backup.

use super::{DbPush, Pushed};
use crate::{
    alembic::AlembicConfig,
    transfer::{backup, human_bytes, load::LoadMode, Job, SchemaMode},
};

impl DbPush {
    /// What a push of one database will do, for people (printed before the confirmation).
    pub(super) fn plan(&self, p: &Job<Pushed>) -> String {
        let bytes: i64 = p
            .selection
            .tables
            .iter()
            .map(|t| p.source.sizes.get(t).copied().unwrap_or(0))
            .sum();
        let mut out = format!(
            "{}: push {} -> {}{}\n  source: {} tables, {} rows, {} on disk\n  mode: {}\n",
            p.db.label(),
            p.source.endpoint.url,
            p.target,
            if self.is_protected(&p.target) {
                " (PROTECTED)"
            } else {
                ""
            },
            p.selection.tables.len(),
            p.rows(),
            human_bytes(bytes),
            match self.mode {
                LoadMode::Replace =>
                    "replace: the tables below are emptied and reloaded, in one transaction",
                LoadMode::Upsert =>
                    "upsert: rows are inserted or updated by primary key; nothing is deleted",
            }
        );
        out += &format!(
            "  schema: {}\n",
            match self.copy.schema {
                SchemaMode::Migrations => format!(
                    "alembic -c {} upgrade head ({}) on the remote, now at {}",
                    AlembicConfig::of(p.db).ini(),
                    p.heads.join(", "),
                    p.own
                        .before
                        .catalog
                        .alembic
                        .as_ref()
                        .map(|a| a.revisions.join(", "))
                        .unwrap_or_else(|| "no revision".into())
                ),
                SchemaMode::Source if p.own.before.catalog.tables.is_empty() => {
                    "the local schema, by pg_dump's sections (pre-data, then post-data after \
                     the data)"
                        .to_string()
                }
                SchemaMode::Source => "the remote's own, equal to the local one".to_string(),
            }
        );
        for t in &p.selection.tables {
            let now = p.own.before.measures.tables.get(t).map(|m| m.rows);
            out += &format!(
                "    {t}: {} rows -> remote{}\n",
                p.source.rows(t),
                match (now, self.mode) {
                    (Some(n), LoadMode::Replace) => format!(" (its {n} rows are replaced)"),
                    (Some(n), LoadMode::Upsert) => format!(" (has {n} rows, none deleted)"),
                    (None, _) => " (table created by the schema step)".to_string(),
                }
            );
        }
        out += &format!(
            "  backup: {}",
            if self.copy.no_backup {
                "none (--no-backup)".to_string()
            } else {
                format!("custom format, under {}", backup::backups_dir().display())
            }
        );
        out
    }
}
