//! What a data load does in the target's transaction around pg_dump's COPY stream, read from the
//! target's catalog: foreign keys touching the loaded tables are dropped first and re-added last
//! (re-adding validates every row, so any order of tables, self-references and cycles load, and a
//! violation fails the whole transaction); enabled user triggers are disabled and put back as they
//! were; the tables are emptied (replace) or loaded through temporary tables and merged by
//! primary key (upsert). None of it needs a superuser: the table owner may do all of it.
//!
//! Into a staging database that the xtask built itself, the secondary indexes (those that back no
//! constraint) are also dropped before the data and built after it: one sort per index instead of
//! one insertion per row. The same SQL serves a parallel load, cut into its phases: `prologue` in
//! a transaction of its own, the data on several connections, `index_builds` spread over them,
//! then `constraints` in one last transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

use crate::config::DbUrl;
use crate::pg::ident::{quote_ident, QualifiedName};
use crate::pg::stream::{CopyHeader, Shaper, TableProgress};

/// How loaded rows meet the rows already in the target's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Empty the tables, then load them: the target ends equal to the source
    Replace,
    /// Insert new rows and update existing ones by primary key; delete nothing (idempotent)
    Upsert,
}

#[derive(Clone, Debug)]
pub struct ForeignKeyDef {
    pub table: QualifiedName,
    pub name: String,
    pub parent: QualifiedName,
    /// `pg_get_constraintdef`, schema-qualified (read with an empty search_path).
    pub definition: String,
}

#[derive(Clone, Debug)]
pub struct TriggerDef {
    pub table: QualifiedName,
    pub name: String,
    /// pg_trigger.tgenabled: O (origin), A (always), R (replica).
    pub enabled: char,
}

#[derive(Clone, Debug)]
pub struct SequenceDef {
    pub sequence: QualifiedName,
    pub table: QualifiedName,
    pub column: String,
}

/// An index that backs no constraint: it may be dropped before a load and built after it.
#[derive(Clone, Debug)]
pub struct IndexDef {
    pub table: QualifiedName,
    pub name: QualifiedName,
    /// `pg_get_indexdef`, schema-qualified (read with an empty search_path).
    pub definition: String,
}

/// The target's side of a load, read before it starts.
#[derive(Clone, Debug, Default)]
pub struct TargetSchema {
    pub foreign_keys: Vec<ForeignKeyDef>,
    pub indexes: Vec<IndexDef>,
    pub triggers: Vec<TriggerDef>,
    pub primary_keys: BTreeMap<QualifiedName, Vec<String>>,
    pub sequences: Vec<SequenceDef>,
    pub tables: BTreeSet<QualifiedName>,
}

const FOREIGN_KEYS_SQL: &str = "\
SELECT cn.nspname, c.relname, k.conname, pn.nspname, p.relname, pg_catalog.pg_get_constraintdef(k.oid)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = k.confrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
ORDER BY 1, 2, 3";

const TRIGGERS_SQL: &str = "\
SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'D'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3";

const PRIMARY_KEYS_SQL: &str = "\
SELECT n.nspname, c.relname,
       array_agg(a.attname::text ORDER BY k.ord)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary
GROUP BY 1, 2";

const SEQUENCES_SQL: &str = "\
SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND q.seqincrement > 0";

// Indexes of plain tables that no constraint uses (primary keys, unique constraints and the unique
// indexes that foreign keys reference stay), and that are not a partition's part of a parent index.
const INDEXES_SQL: &str = "\
SELECT n.nspname, c.relname, i.relname, pg_catalog.pg_get_indexdef(x.indexrelid)
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND x.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = x.indexrelid)
ORDER BY 1, 2, 3";

const TABLES_SQL: &str = "\
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

fn name(row: &tokio_postgres::Row, schema: usize, table: usize) -> QualifiedName {
    QualifiedName::new(row.get::<_, String>(schema), row.get::<_, String>(table))
}

impl TargetSchema {
    /// Reads the target's foreign keys, triggers, primary keys and owned sequences.
    pub async fn read(client: &Client, url: &DbUrl) -> Result<TargetSchema> {
        // An empty search_path makes pg_get_constraintdef qualify every referenced table.
        client
            .batch_execute("SET search_path = ''")
            .await
            .with_context(|| format!("setting up the session on {url}"))?;
        let ctx = |what: &str| format!("reading the {what} of {url}");
        let fks = client
            .query(FOREIGN_KEYS_SQL, &[])
            .await
            .with_context(|| ctx("foreign keys"))?;
        let triggers = client
            .query(TRIGGERS_SQL, &[])
            .await
            .with_context(|| ctx("triggers"))?;
        let pks = client
            .query(PRIMARY_KEYS_SQL, &[])
            .await
            .with_context(|| ctx("primary keys"))?;
        let seqs = client
            .query(SEQUENCES_SQL, &[])
            .await
            .with_context(|| ctx("sequences"))?;
        let tables = client
            .query(TABLES_SQL, &[])
            .await
            .with_context(|| ctx("tables"))?;
        let indexes = client
            .query(INDEXES_SQL, &[])
            .await
            .with_context(|| ctx("indexes"))?;
        Ok(TargetSchema {
            indexes: indexes
                .iter()
                .map(|r| IndexDef {
                    table: name(r, 0, 1),
                    name: name(r, 0, 2),
                    definition: r.get(3),
                })
                .collect(),
            foreign_keys: fks
                .iter()
                .map(|r| ForeignKeyDef {
                    table: name(r, 0, 1),
                    name: r.get(2),
                    parent: name(r, 3, 4),
                    definition: r.get(5),
                })
                .collect(),
            triggers: triggers
                .iter()
                .map(|r| TriggerDef {
                    table: name(r, 0, 1),
                    name: r.get(2),
                    enabled: r.get::<_, String>(3).chars().next().unwrap_or('O'),
                })
                .collect(),
            primary_keys: pks
                .iter()
                .map(|r| (name(r, 0, 1), r.get::<_, Vec<String>>(2)))
                .collect(),
            sequences: seqs
                .iter()
                .map(|r| SequenceDef {
                    sequence: name(r, 0, 1),
                    table: name(r, 2, 3),
                    column: r.get(4),
                })
                .collect(),
            tables: tables.iter().map(|r| name(r, 0, 1)).collect(),
        })
    }
}

/// The SQL around one load into `tables` of the target.
pub struct LoadShaper {
    mode: LoadMode,
    tables: BTreeSet<QualifiedName>,
    schema: TargetSchema,
    /// Upsert: which temporary table stands in for which target table.
    temp_names: BTreeMap<QualifiedName, String>,
    /// Rows each table must hold before COMMIT (replace: exactly; upsert: at least), from the
    /// source's snapshot: a load that lost a row fails inside its transaction.
    expected_rows: BTreeMap<QualifiedName, i64>,
    /// Drop the loaded tables' secondary indexes first and build them last (a staging database).
    rebuild_indexes: bool,
    /// Replace mode: the loaded tables that hold rows; `None` (unknown) truncates them all.
    holding_rows: Option<BTreeSet<QualifiedName>>,
}

impl LoadShaper {
    /// Upsert needs a primary key on every loaded table: refused up front, naming the tables.
    pub fn new(
        mode: LoadMode,
        tables: BTreeSet<QualifiedName>,
        schema: TargetSchema,
    ) -> Result<LoadShaper> {
        let mut temp_names = BTreeMap::new();
        if mode == LoadMode::Upsert {
            let without: Vec<String> = tables
                .iter()
                .filter(|t| !schema.primary_keys.contains_key(*t))
                .map(|t| t.to_string())
                .collect();
            if !without.is_empty() {
                bail!(
                    "--mode upsert needs a primary key on every table, and these have none on \
                     the target: {}; use --mode replace, or leave them out with --exclude-table",
                    without.join(", ")
                );
            }
            for (i, table) in tables.iter().enumerate() {
                temp_names.insert(table.clone(), format!("xtask_upsert_{i}"));
            }
        }
        Ok(LoadShaper {
            mode,
            tables,
            schema,
            temp_names,
            expected_rows: BTreeMap::new(),
            rebuild_indexes: false,
            holding_rows: None,
        })
    }

    /// Asserts, before COMMIT, that each table holds the source's row count.
    pub fn expect_rows(&mut self, expected: BTreeMap<QualifiedName, i64>) {
        self.expected_rows = expected;
    }

    /// Builds the loaded tables' secondary indexes after the data instead of row by row: for a
    /// target that the xtask created and nobody else uses yet.
    pub fn rebuild_indexes(&mut self) {
        self.rebuild_indexes = true;
    }

    /// Replace mode truncates only `holding` (the loaded tables known to hold rows), not every
    /// loaded table.
    pub fn truncate_only(&mut self, holding: BTreeSet<QualifiedName>) {
        self.holding_rows = Some(holding);
    }

    pub fn mode(&self) -> LoadMode {
        self.mode
    }

    fn indexes(&self) -> impl Iterator<Item = &IndexDef> {
        self.schema
            .indexes
            .iter()
            .filter(|i| self.rebuild_indexes && self.tables.contains(&i.table))
    }

    /// One `CREATE INDEX` per secondary index to build after the data, with its table (the
    /// caller spreads them over connections by table size).
    pub fn index_builds(&self) -> Vec<(QualifiedName, String)> {
        self.indexes()
            .map(|i| (i.table.clone(), format!("{};", i.definition)))
            .collect()
    }

    /// After the data and the indexes: foreign keys re-added (every row validated), each table's
    /// row count asserted, triggers put back as they were.
    pub fn constraints(&self) -> String {
        let mut sql = String::new();
        // Re-adding validates every row: a load that breaks a reference fails here, whole.
        for fk in self.foreign_keys() {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} ADD CONSTRAINT {} {};",
                fk.table.sql(),
                quote_ident(&fk.name),
                fk.definition
            );
        }
        for (table, rows) in &self.expected_rows {
            let (op, word) = match self.mode {
                LoadMode::Replace => ("<>", "exactly"),
                LoadMode::Upsert => ("<", "at least"),
            };
            // The message is a literal made of the name: quotes doubled, and dollar-quoting
            // avoided so that no name can end the block.
            let shown = table.to_string().replace('%', "%%").replace('\'', "''");
            let _ = writeln!(
                sql,
                "DO 'BEGIN IF (SELECT pg_catalog.count(*) FROM {}) {op} {rows} THEN RAISE \
                 EXCEPTION ''xtask: {} must hold {word} {rows} rows after the load''; END IF; \
                 END';",
                table.sql().replace('\'', "''"),
                shown.replace('\'', "''"),
            );
        }
        for t in self.triggers() {
            let how = match t.enabled {
                'A' => "ENABLE ALWAYS TRIGGER",
                'R' => "ENABLE REPLICA TRIGGER",
                _ => "ENABLE TRIGGER",
            };
            let _ = writeln!(
                sql,
                "ALTER TABLE {} {how} {};",
                t.table.sql(),
                quote_ident(&t.name)
            );
        }
        sql
    }

    /// Foreign keys to take off for the load: those of loaded tables, and those that point at a
    /// loaded table (its rows are replaced under them).
    fn foreign_keys(&self) -> impl Iterator<Item = &ForeignKeyDef> {
        self.schema
            .foreign_keys
            .iter()
            .filter(|fk| self.tables.contains(&fk.table) || self.tables.contains(&fk.parent))
    }

    fn triggers(&self) -> impl Iterator<Item = &TriggerDef> {
        self.schema
            .triggers
            .iter()
            .filter(|t| self.tables.contains(&t.table))
    }
}

impl Shaper for LoadShaper {
    fn prologue(&mut self) -> String {
        let mut sql = String::new();
        for fk in self.foreign_keys() {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} DROP CONSTRAINT {};",
                fk.table.sql(),
                quote_ident(&fk.name)
            );
        }
        for t in self.triggers() {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} DISABLE TRIGGER {};",
                t.table.sql(),
                quote_ident(&t.name)
            );
        }
        for i in self.indexes() {
            let _ = writeln!(sql, "DROP INDEX {};", i.name.sql());
        }
        match self.mode {
            LoadMode::Replace => {
                let list: Vec<String> = self
                    .tables
                    .iter()
                    .filter(|t| self.holding_rows.as_ref().is_none_or(|h| h.contains(*t)))
                    .map(QualifiedName::sql)
                    .collect();
                if !list.is_empty() {
                    let _ = writeln!(sql, "TRUNCATE TABLE {};", list.join(", "));
                }
            }
            LoadMode::Upsert => {
                for (table, temp) in &self.temp_names {
                    let _ = writeln!(
                        sql,
                        "CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP;",
                        quote_ident(temp),
                        table.sql()
                    );
                }
            }
        }
        sql
    }

    fn copy_header(&mut self, header: &CopyHeader, line: &str) -> String {
        match self.temp_names.get(&header.table) {
            Some(temp) => format!(
                "COPY pg_temp.{} ({}) FROM stdin;",
                quote_ident(temp),
                column_list(&header.columns)
            ),
            None => line.to_string(),
        }
    }

    fn keep_line(&mut self, line: &str) -> bool {
        // Upsert keeps the target's sequences and moves them past the merged rows at the end;
        // the source's values could be lower than rows the target already has.
        !(self.mode == LoadMode::Upsert && line.starts_with("SELECT pg_catalog.setval("))
    }

    fn epilogue(&mut self, loaded: &[TableProgress]) -> String {
        let mut sql = String::new();
        if self.mode == LoadMode::Upsert {
            for part in loaded {
                let table = &part.header.table;
                let (Some(temp), Some(pk)) = (
                    self.temp_names.get(table),
                    self.schema.primary_keys.get(table),
                ) else {
                    continue;
                };
                let columns = column_list(&part.header.columns);
                let updates: Vec<String> = part
                    .header
                    .columns
                    .iter()
                    .filter(|c| !pk.contains(c))
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                    .collect();
                let action = if updates.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", updates.join(", "))
                };
                let _ = writeln!(
                    sql,
                    "INSERT INTO {} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM \
                     pg_temp.{} ON CONFLICT ({}) DO {action};",
                    table.sql(),
                    quote_ident(temp),
                    column_list(pk),
                );
            }
            for seq in self
                .schema
                .sequences
                .iter()
                .filter(|s| self.tables.contains(&s.table))
            {
                // setval's argument is text read as a regclass; the quoted name is a literal.
                let literal = seq.sequence.sql().replace('\'', "''");
                let _ = writeln!(
                    sql,
                    "SELECT pg_catalog.setval('{literal}', v) FROM (SELECT \
                     GREATEST((SELECT pg_catalog.max({}) FROM {}), (SELECT last_value FROM {} \
                     WHERE is_called)) AS v) AS s WHERE v IS NOT NULL;",
                    quote_ident(&seq.column),
                    seq.table.sql(),
                    seq.sequence.sql(),
                );
            }
        }
        for (_, build) in self.index_builds() {
            sql.push_str(&build);
            sql.push('\n');
        }
        sql.push_str(&self.constraints());
        sql
    }
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TargetSchema {
        let users = QualifiedName::new("public", "users");
        let portfolios = QualifiedName::new("public", "portfolios");
        TargetSchema {
            foreign_keys: vec![
                ForeignKeyDef {
                    table: portfolios.clone(),
                    name: "portfolios_user_id_fkey".into(),
                    parent: users.clone(),
                    definition: "FOREIGN KEY (user_id) REFERENCES public.users(id)".into(),
                },
                ForeignKeyDef {
                    table: QualifiedName::new("public", "other"),
                    name: "unrelated".into(),
                    parent: QualifiedName::new("public", "elsewhere"),
                    definition: "FOREIGN KEY (x) REFERENCES public.elsewhere(id)".into(),
                },
            ],
            triggers: vec![TriggerDef {
                table: users.clone(),
                name: "Touch \"it\"".into(),
                enabled: 'A',
            }],
            indexes: vec![IndexDef {
                table: users.clone(),
                name: QualifiedName::new("public", "Users By Name"),
                definition: r#"CREATE INDEX "Users By Name" ON public.users USING btree (name)"#
                    .into(),
            }],
            primary_keys: [(users.clone(), vec!["id".to_string()])].into(),
            sequences: vec![],
            tables: [users.clone(), portfolios.clone()].into(),
        }
    }

    #[test]
    fn replace_truncates_only_the_tables_known_to_hold_rows() {
        let users = QualifiedName::new("public", "users");
        let portfolios = QualifiedName::new("public", "portfolios");
        let both: BTreeSet<QualifiedName> = [users.clone(), portfolios.clone()].into();
        let mut shaper = LoadShaper::new(LoadMode::Replace, both, schema()).unwrap();
        let pro = shaper.prologue();
        assert!(
            pro.contains(r#"TRUNCATE TABLE "public"."portfolios", "public"."users";"#),
            "{pro}"
        );
        shaper.truncate_only([users].into());
        let pro = shaper.prologue();
        assert!(pro.contains(r#"TRUNCATE TABLE "public"."users";"#), "{pro}");
        shaper.truncate_only(BTreeSet::new());
        assert!(!shaper.prologue().contains("TRUNCATE"));
    }

    #[test]
    fn replace_drops_and_readds_the_touching_foreign_keys_only() {
        let users = QualifiedName::new("public", "users");
        let mut shaper = LoadShaper::new(LoadMode::Replace, [users].into(), schema()).unwrap();
        let pro = shaper.prologue();
        assert!(pro.contains(
            r#"ALTER TABLE "public"."portfolios" DROP CONSTRAINT "portfolios_user_id_fkey";"#
        ));
        assert!(!pro.contains("unrelated"), "{pro}");
        assert!(pro.contains(r#"DISABLE TRIGGER "Touch ""it""";"#), "{pro}");
        assert!(pro.contains(r#"TRUNCATE TABLE "public"."users";"#), "{pro}");
        let epi = shaper.epilogue(&[]);
        assert!(epi.contains(
            r#"ADD CONSTRAINT "portfolios_user_id_fkey" FOREIGN KEY (user_id) REFERENCES public.users(id);"#
        ));
        assert!(
            epi.contains(r#"ENABLE ALWAYS TRIGGER "Touch ""it""";"#),
            "{epi}"
        );
    }

    #[test]
    fn upsert_loads_through_a_temporary_table_and_merges_by_primary_key() {
        let users = QualifiedName::new("public", "users");
        let mut shaper =
            LoadShaper::new(LoadMode::Upsert, [users.clone()].into(), schema()).unwrap();
        assert!(shaper.prologue().contains(
            r#"CREATE TEMPORARY TABLE "xtask_upsert_0" (LIKE "public"."users") ON COMMIT DROP;"#
        ));
        let header = CopyHeader {
            table: users.clone(),
            columns: vec!["id".into(), "Full Name".into()],
        };
        assert_eq!(
            shaper.copy_header(&header, "ignored"),
            r#"COPY pg_temp."xtask_upsert_0" ("id", "Full Name") FROM stdin;"#
        );
        assert!(!shaper.keep_line("SELECT pg_catalog.setval('public.s', 3, true);"));
        let epi = shaper.epilogue(&[TableProgress {
            header,
            rows: 1,
            bytes: 1,
            done: true,
        }]);
        assert!(
            epi.contains(r#"ON CONFLICT ("id") DO UPDATE SET "Full Name" = EXCLUDED."Full Name";"#),
            "{epi}"
        );
    }

    #[test]
    fn secondary_indexes_are_rebuilt_only_when_asked() {
        let users = QualifiedName::new("public", "users");
        let mut plain =
            LoadShaper::new(LoadMode::Replace, [users.clone()].into(), schema()).unwrap();
        assert!(!plain.prologue().contains("DROP INDEX"));
        assert!(plain.index_builds().is_empty());

        let mut staging = LoadShaper::new(LoadMode::Replace, [users].into(), schema()).unwrap();
        staging.rebuild_indexes();
        let pro = staging.prologue();
        assert!(
            pro.contains(r#"DROP INDEX "public"."Users By Name";"#),
            "{pro}"
        );
        // Built after the data and before the foreign keys are checked.
        let epi = staging.epilogue(&[]);
        let build = epi.find("CREATE INDEX").expect(&epi);
        let fk = epi.find("ADD CONSTRAINT").expect(&epi);
        assert!(build < fk, "{epi}");
    }

    #[test]
    fn upsert_without_a_primary_key_is_refused_naming_the_table() {
        let err = LoadShaper::new(
            LoadMode::Upsert,
            [QualifiedName::new("public", "portfolios")].into(),
            schema(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("public.portfolios"), "{err}");
        assert!(err.contains("--mode replace"), "{err}");
    }
}
