//! The catalog queries for the objects beyond tables: views, functions, triggers, enum types,
//! domains, policies, row security and every sequence. Constant text; each leaves out the system
//! schemas (as [`super::sql::USER_TABLES`] does) and every object that belongs to an extension
//! (`pg_depend` type `e`), so that an extension's own functions and types are compared through
//! the extension's version only.

/// Views (`v`) and materialized views (`m`), with the definition as the server prints it.
pub(super) const VIEWS_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text, c.relkind = 'm',
       pg_catalog.pg_get_viewdef(c.oid, true)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.objid = c.oid AND d.deptype = 'e')"#;

/// Functions (`f`) and procedures (`p`), by name and identity arguments. Aggregates and window
/// functions are left out: `pg_get_functiondef` cannot print them.
pub(super) const FUNCTIONS_SQL: &str = r#"
SELECT n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid), p.prokind = 'p',
       pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        AND d.objid = p.oid AND d.deptype = 'e')"#;

/// Triggers that the user wrote (not the internal ones behind foreign keys), per relation, with
/// their enabled state when it is not the default (`pg_get_triggerdef` does not print it).
pub(super) const TRIGGERS_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text, t.tgname::text,
       pg_catalog.pg_get_triggerdef(t.oid)
       || CASE t.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled on replica only)'
                           WHEN 'A' THEN ' (enabled always)' ELSE '' END
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.objid = c.oid AND d.deptype = 'e')"#;

/// Enum types with their labels in their sort order.
pub(super) const ENUMS_SQL: &str = r#"
SELECT n.nspname::text, t.typname::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'e'
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
        AND d.objid = t.oid AND d.deptype = 'e')"#;

/// Domains as one definition: base type, `NOT NULL`, default (printed by this session, not the
/// text stored when it was created) and each check constraint by name.
pub(super) const DOMAINS_SQL: &str = r#"
SELECT n.nspname::text, t.typname::text,
       pg_catalog.format_type(t.typbasetype, t.typtypmod)
       || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
       || COALESCE(' DEFAULT ' || pg_catalog.pg_get_expr(t.typdefaultbin, 0), '')
       || COALESCE((SELECT pg_catalog.string_agg(
                        ' CONSTRAINT ' || pg_catalog.quote_ident(con.conname::text) || ' '
                        || pg_catalog.pg_get_constraintdef(con.oid), '' ORDER BY con.conname)
                    FROM pg_catalog.pg_constraint con
                    WHERE con.contypid = t.oid AND con.contype = 'c'), '')
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'd'
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
        AND d.objid = t.oid AND d.deptype = 'e')"#;

/// Row-level security policies per table, as one definition: permissive or restrictive, the
/// command, the roles (in name order) and the USING and WITH CHECK expressions.
pub(super) const POLICIES_SQL: &str = r#"
SELECT t.schema_name, t.table_name, p.polname::text,
       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
       || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                   WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' TO ' || pg_catalog.array_to_string(ARRAY(
              SELECT CASE WHEN r.rid = 0 THEN 'PUBLIC'
                          ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.rid)::text) END
              FROM pg_catalog.unnest(p.polroles) AS r(rid) ORDER BY 1), ', ')
       || COALESCE(' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')', '')
       || COALESCE(' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')',
                   '')
FROM user_tables t
JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid"#;

/// Whether row-level security is enabled, and forced, on each compared table.
pub(super) const ROW_SECURITY_SQL: &str = r#"
SELECT t.schema_name, t.table_name,
       CASE WHEN c.relrowsecurity AND c.relforcerowsecurity THEN 'enabled, forced'
            WHEN c.relrowsecurity THEN 'enabled'
            WHEN c.relforcerowsecurity THEN 'disabled (forced once enabled)'
            ELSE 'disabled' END
FROM user_tables t
JOIN pg_catalog.pg_class c ON c.oid = t.oid"#;

/// Every sequence, owned by a column or not, with the table that owns it (NULL when none) and
/// whether this session may read its position.
pub(super) const ALL_SEQUENCES_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text,
       pg_catalog.has_sequence_privilege(c.oid, 'SELECT'),
       own_n.nspname::text, own.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_depend od ON od.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND od.objid = c.oid AND od.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND od.deptype IN ('a', 'i') AND od.refobjsubid > 0
LEFT JOIN pg_catalog.pg_class own ON own.oid = od.refobjid
LEFT JOIN pg_catalog.pg_namespace own_n ON own_n.oid = own.relnamespace
WHERE c.relkind = 'S'
  AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.objid = c.oid AND d.deptype = 'e')"#;
