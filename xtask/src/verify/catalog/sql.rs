//! The catalog queries: constant text, each over the `user_tables` of [`USER_TABLES`].

/// The tables of a database that are compared: every table in every schema but the system ones
/// (`pg_catalog`, `information_schema`, `pg_toast*`, `pg_temp*`: user schemas cannot begin with
/// `pg_`), leaving out temporary tables and tables that belong to an extension.
pub(super) const USER_TABLES: &str = r#"
WITH user_tables AS (
    SELECT c.oid, n.nspname::text AS schema_name, c.relname::text AS table_name,
           c.relkind::text AS kind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema'
      AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.objid = c.oid AND d.deptype = 'e')
)"#;

pub(super) const TABLES_SQL: &str = "SELECT schema_name, table_name, kind FROM user_tables";

pub(super) const COLUMNS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
       CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
       CASE WHEN a.attcollation <> ty.typcollation THEN co.collname::text END,
       a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype)
FROM user_tables t
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation"#;

pub(super) const CONSTRAINTS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, con.conname::text,
       CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                        WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                        ELSE 'exclusion' END,
       pg_catalog.pg_get_constraintdef(con.oid)
FROM user_tables t
JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid
WHERE con.contype IN ('p', 'u', 'f', 'c', 'x')"#;

pub(super) const INDEXES_SQL: &str = r#"
SELECT t.schema_name, t.table_name, n.nspname::text, i.relname::text,
       pg_catalog.pg_get_indexdef(i.oid) || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END,
       x.indisvalid
FROM user_tables t
JOIN pg_catalog.pg_index x ON x.indrelid = t.oid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace"#;

pub(super) const EXTENSIONS_SQL: &str = r#"
SELECT e.extname::text, e.extversion, n.nspname::text
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"#;

/// Foreign keys declared on the compared tables (partitions' copies of a partitioned table's
/// key are left out: the parent's key covers them), with their column pairs in key order and the
/// equality operators the key itself uses (`OPERATOR(public.=)` for citext, say), written by the
/// server's own `format('%I')`.
pub(super) const FOREIGN_KEYS_SQL: &str = r#"
SELECT t.schema_name, t.table_name, t.kind, con.conname::text,
       pn.nspname::text, pc.relname::text, pc.relkind::text,
       con.confmatchtype = 'f',
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, o.oprname)
             FROM pg_catalog.unnest(con.conpfeqop) WITH ORDINALITY AS k(opr, ord)
             JOIN pg_catalog.pg_operator o ON o.oid = k.opr
             JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace
             ORDER BY k.ord)
FROM user_tables t
JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid AND con.contype = 'f'
     AND con.conparentid = 0
JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace"#;

/// Sequences owned by a column of a compared table: serial columns (`OWNED BY`, dependency type
/// `a`) and identity columns (type `i`). `pg_sequences.last_value` is NULL when the sequence was
/// never used or this session may not read it; the privilege tells the two apart.
pub(super) const SEQUENCES_SQL: &str = r#"
SELECT sn.nspname::text, s.relname::text, t.schema_name, t.table_name, t.kind,
       a.attname::text,
       a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype),
       ps.last_value, ps.start_value, ps.increment_by,
       pg_catalog.has_sequence_privilege(s.oid, 'SELECT,USAGE')
FROM pg_catalog.pg_class s
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.objid = s.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
JOIN user_tables t ON t.oid = d.refobjid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
JOIN pg_catalog.pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
WHERE s.relkind = 'S'"#;

/// A catalog query over the compared tables.
pub(super) fn with_user_tables(sql: &str) -> String {
    format!("{USER_TABLES}\n{sql}")
}
