//! The target's side of a load, read from its catalog before the load starts: the foreign keys,
//! indexes, key constraints (primary keys, unique and exclusion constraints) and triggers around
//! the loaded tables, their primary keys, the sequences they own, which are partitioned and which
//! columns are identity `ALWAYS`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::config::DbUrl;
use crate::pg::ident::QualifiedName;

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

/// A primary key, unique or exclusion constraint that may be dropped before a load into a staging
/// database and added back after it: its index is then built by one sort of the loaded rows.
/// Those that something else hangs on are not read (see `KEY_CONSTRAINTS_SQL`).
#[derive(Clone, Debug)]
pub struct KeyConstraintDef {
    pub table: QualifiedName,
    pub name: String,
    /// `pg_get_constraintdef`, schema-qualified (read with an empty search_path).
    pub definition: String,
    /// `PRIMARY KEY` or `UNIQUE`, with its index's `pg_get_indexdef`, when the index can be built
    /// on its own and then attached (`ADD CONSTRAINT ... USING INDEX`): a plain table's
    /// non-deferrable key in the default tablespace. Otherwise the constraint is added whole.
    pub attach: Option<(&'static str, String)>,
}

/// A table's identity `ALWAYS` columns, and the table whose `ALTER` changes them.
#[derive(Clone, Debug)]
pub struct IdentityAlways {
    pub altered: QualifiedName,
    pub columns: Vec<String>,
}

/// The target's side of a load, read before it starts.
#[derive(Clone, Debug, Default)]
pub struct TargetSchema {
    pub foreign_keys: Vec<ForeignKeyDef>,
    pub indexes: Vec<IndexDef>,
    pub key_constraints: Vec<KeyConstraintDef>,
    pub triggers: Vec<TriggerDef>,
    pub primary_keys: BTreeMap<QualifiedName, Vec<String>>,
    pub sequences: Vec<SequenceDef>,
    pub tables: BTreeSet<QualifiedName>,
    /// Partitioned tables: they hold no rows of their own, their partitions do (`TRUNCATE ONLY`
    /// is refused on them, and a count reads through them).
    pub partitioned: BTreeSet<QualifiedName>,
    /// Identity columns `GENERATED ALWAYS`, per table: an upsert's `UPDATE SET` may not write
    /// them (only `DEFAULT`), so the merge turns them `BY DEFAULT` and back, on the table that
    /// may change them (a partition's are changed through its partition tree's root).
    pub identity_always: BTreeMap<QualifiedName, IdentityAlways>,
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

// Primary keys, unique and exclusion constraints of tables (a partition's come with its parent's),
// but for those whose drop would lose something or fail: an index marked for CLUSTER or as the
// replica identity, a comment on the constraint or its index, an object that depends on the
// constraint itself (a view grouping by the primary key).
const KEY_CONSTRAINTS_SQL: &str = "\
SELECT n.nspname, c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid),
       CASE WHEN c.relkind = 'r' AND k.contype IN ('p', 'u') AND NOT k.condeferrable
                 AND i.reltablespace = 0
            THEN pg_catalog.pg_get_indexdef(k.conindid) END,
       k.contype = 'p'
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_index x ON x.indexrelid = k.conindid
JOIN pg_catalog.pg_class i ON i.oid = k.conindid
WHERE k.contype IN ('p', 'u', 'x') AND k.conparentid = 0 AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND x.indisvalid AND NOT x.indisclustered AND NOT x.indisreplident
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_description d
                  WHERE (d.classoid = 'pg_catalog.pg_constraint'::regclass AND d.objoid = k.oid)
                     OR (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid = k.conindid))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.refclassid = 'pg_catalog.pg_constraint'::regclass
                    AND d.refobjid = k.oid AND d.deptype = 'n')
ORDER BY 1, 2, 3";

const TABLES_SQL: &str = "\
SELECT n.nspname, c.relname, c.relkind = 'p'
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

const IDENTITY_ALWAYS_SQL: &str = "\
SELECT n.nspname, c.relname, rn.nspname, r.relname, array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class r ON r.oid = COALESCE(pg_catalog.pg_partition_root(c.oid)::oid, c.oid)
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE a.attidentity = 'a' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
GROUP BY 1, 2, 3, 4";

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
        let key_constraints = client
            .query(KEY_CONSTRAINTS_SQL, &[])
            .await
            .with_context(|| ctx("primary keys and unique constraints"))?;
        let identity_always = client
            .query(IDENTITY_ALWAYS_SQL, &[])
            .await
            .with_context(|| ctx("identity columns"))?;
        Ok(TargetSchema {
            indexes: indexes
                .iter()
                .map(|r| IndexDef {
                    table: name(r, 0, 1),
                    name: name(r, 0, 2),
                    definition: r.get(3),
                })
                .collect(),
            key_constraints: key_constraints
                .iter()
                .map(|r| KeyConstraintDef {
                    table: name(r, 0, 1),
                    name: r.get(2),
                    definition: r.get(3),
                    attach: r.get::<_, Option<String>>(4).map(|index| {
                        let kind = if r.get::<_, bool>(5) {
                            "PRIMARY KEY"
                        } else {
                            "UNIQUE"
                        };
                        (kind, index)
                    }),
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
            partitioned: tables
                .iter()
                .filter(|r| r.get::<_, bool>(2))
                .map(|r| name(r, 0, 1))
                .collect(),
            identity_always: identity_always
                .iter()
                .map(|r| {
                    let always = IdentityAlways {
                        altered: name(r, 2, 3),
                        columns: r.get(4),
                    };
                    (name(r, 0, 1), always)
                })
                .collect(),
        })
    }
}
