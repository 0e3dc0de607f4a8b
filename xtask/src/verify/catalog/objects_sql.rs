//! The catalog queries for the objects beyond tables: views, functions and aggregates, triggers,
//! rules, enum, composite and range types, domains, collations, extended statistics, comments,
//! policies, row security and every sequence. Constant text; each leaves out the system schemas
//! (as [`super::sql::USER_TABLES`] does) and every object that belongs to an extension
//! (`pg_depend` type `e`), so that an extension's own functions and types are compared through
//! the extension's version only.

/// The filter every query ends with: `$nsp` is not a system schema, and the object (`$oid` in
/// the catalog `$catalog`) does not belong to an extension.
macro_rules! user_object {
    ($catalog:literal, $oid:literal, $nsp:literal) => {
        concat!(
            "\n  AND ",
            $nsp,
            " <> 'information_schema'",
            "\n  AND ",
            $nsp,
            " NOT LIKE 'pg\\_%'",
            "\n  AND NOT EXISTS (",
            "\n      SELECT 1 FROM pg_catalog.pg_depend d",
            "\n      WHERE d.classid = 'pg_catalog.",
            $catalog,
            "'::pg_catalog.regclass",
            "\n        AND d.objid = ",
            $oid,
            " AND d.deptype = 'e')"
        )
    };
}

/// Views (`v`) and materialized views (`m`), with the definition as the server prints it.
pub(super) const VIEWS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, c.relname::text, c.relkind = 'm',
       pg_catalog.pg_get_viewdef(c.oid, true)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')"#,
    user_object!("pg_class", "c.oid", "n.nspname")
);

/// Functions (`f`) and procedures (`p`), by name and identity arguments. Aggregates are read by
/// [`AGGREGATES_SQL`]: `pg_get_functiondef` cannot print them. A function that another object
/// made for itself (a range type's constructors: `pg_depend` type `i`) comes with that object.
pub(super) const FUNCTIONS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid), p.prokind = 'p',
       pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend i
      WHERE i.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        AND i.objid = p.oid AND i.deptype = 'i')"#,
    user_object!("pg_proc", "p.oid", "n.nspname")
);

/// Triggers that the user wrote (not the internal ones behind foreign keys), per relation, with
/// their enabled state when it is not the default (`pg_get_triggerdef` does not print it).
pub(super) const TRIGGERS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, c.relname::text, t.tgname::text,
       pg_catalog.pg_get_triggerdef(t.oid)
       || CASE t.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled on replica only)'
                           WHEN 'A' THEN ' (enabled always)' ELSE '' END
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal"#,
    user_object!("pg_class", "c.oid", "n.nspname")
);

/// Enum types with their labels in their sort order.
pub(super) const ENUMS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, t.typname::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'e'"#,
    user_object!("pg_type", "t.oid", "n.nspname")
);

/// Domains as one definition: base type, `NOT NULL`, default (printed by this session, not the
/// text stored when it was created) and each check constraint by name.
pub(super) const DOMAINS_SQL: &str = concat!(
    r#"
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
WHERE t.typtype = 'd'"#,
    user_object!("pg_type", "t.oid", "n.nspname")
);

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
pub(super) const ALL_SEQUENCES_SQL: &str = concat!(
    r#"
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
  AND c.relpersistence <> 't'"#,
    user_object!("pg_class", "c.oid", "n.nspname")
);

/// Aggregates, in the columns of [`FUNCTIONS_SQL`]: their definition written from
/// `pg_aggregate` (state function and type, final and combine functions, initial condition,
/// sort operator, kind, parallel safety, result).
pub(super) const AGGREGATES_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid), false,
       'AGGREGATE (' || pg_catalog.pg_get_function_arguments(p.oid) || ')'
       || ' SFUNC = ' || a.aggtransfn::pg_catalog.regprocedure::text
       || ', STYPE = ' || pg_catalog.format_type(a.aggtranstype, NULL)
       || CASE WHEN a.aggfinalfn <> 0
               THEN ', FINALFUNC = ' || a.aggfinalfn::pg_catalog.regprocedure::text ELSE '' END
       || CASE WHEN a.aggcombinefn <> 0
               THEN ', COMBINEFUNC = ' || a.aggcombinefn::pg_catalog.regprocedure::text ELSE '' END
       || COALESCE(', INITCOND = ' || pg_catalog.quote_literal(a.agginitval), '')
       || CASE WHEN a.aggsortop <> 0
               THEN ', SORTOP = ' || a.aggsortop::pg_catalog.regoperator::text ELSE '' END
       || ', KIND = ' || a.aggkind::text || ', PARALLEL = ' || p.proparallel::text
       || ' RETURNS ' || pg_catalog.pg_get_function_result(p.oid)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind = 'a'"#,
    user_object!("pg_proc", "p.oid", "n.nspname")
);

/// Rewrite rules that the user wrote (not a view's `_RETURN`), per relation, with their enabled
/// state when it is not the default.
pub(super) const RULES_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, c.relname::text, r.rulename::text,
       pg_catalog.pg_get_ruledef(r.oid)
       || CASE r.ev_enabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled on replica only)'
                            WHEN 'A' THEN ' (enabled always)' ELSE '' END
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN'"#,
    user_object!("pg_class", "c.oid", "n.nspname")
);

/// Composite types (not a table's row type) with their attributes in order, and range types
/// with their subtype, collation and functions.
pub(super) const TYPES_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, t.typname::text,
       CASE t.typtype
         WHEN 'c' THEN 'composite (' || COALESCE((
             SELECT pg_catalog.string_agg(
                        pg_catalog.quote_ident(a.attname::text) || ' '
                        || pg_catalog.format_type(a.atttypid, a.atttypmod)
                        || CASE WHEN a.attcollation <> bt.typcollation
                                THEN ' COLLATE ' || a.attcollation::pg_catalog.regcollation::text
                                ELSE '' END,
                        ', ' ORDER BY a.attnum)
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_type bt ON bt.oid = a.atttypid
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
         ELSE (SELECT 'range (SUBTYPE = ' || pg_catalog.format_type(r.rngsubtype, NULL)
                      || CASE WHEN r.rngcollation <> 0
                              THEN ', COLLATION = ' || r.rngcollation::pg_catalog.regcollation::text
                              ELSE '' END
                      || CASE WHEN r.rngcanonical <> 0
                              THEN ', CANONICAL = ' || r.rngcanonical::pg_catalog.regproc::text
                              ELSE '' END
                      || CASE WHEN r.rngsubdiff <> 0
                              THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::pg_catalog.regproc::text
                              ELSE '' END || ')'
               FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid)
       END
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typtype = 'r'
       OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                       WHERE c.oid = t.typrelid AND c.relkind = 'c')))"#,
    user_object!("pg_type", "t.oid", "n.nspname")
);

/// Collations the user created: provider, locales (`colllocale` from PostgreSQL 17,
/// `colliculocale` before, hence read through the row as JSON), ICU rules, determinism. The
/// collation library's version is left out: it is the machine's, not the database's.
pub(super) const COLLATIONS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, c.collname::text,
       'provider ' || CASE c.collprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu'
                                          WHEN 'b' THEN 'builtin' ELSE 'default' END
       || COALESCE(', lc_collate ' || pg_catalog.quote_literal(c.collcollate), '')
       || COALESCE(', lc_ctype ' || pg_catalog.quote_literal(c.collctype), '')
       || COALESCE(', locale ' || pg_catalog.quote_literal(
              COALESCE(pg_catalog.to_jsonb(c) ->> 'colllocale',
                       pg_catalog.to_jsonb(c) ->> 'colliculocale')), '')
       || COALESCE(', rules ' || pg_catalog.quote_literal(pg_catalog.to_jsonb(c) ->> 'collicurules'),
                   '')
       || CASE WHEN c.collisdeterministic THEN '' ELSE ', nondeterministic' END
FROM pg_catalog.pg_collation c
JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
WHERE true"#,
    user_object!("pg_collation", "c.oid", "n.nspname")
);

/// Extended statistics objects (`CREATE STATISTICS`), as the server prints them.
pub(super) const STATISTICS_SQL: &str = concat!(
    r#"
SELECT n.nspname::text, s.stxname::text, pg_catalog.pg_get_statisticsobjdef(s.oid)
FROM pg_catalog.pg_statistic_ext s
JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
WHERE true"#,
    user_object!("pg_statistic_ext", "s.oid", "n.nspname")
);

/// Comments (`COMMENT ON`) on every object of the database that is not a system one nor an
/// extension's, keyed by the object as `pg_identify_object` names it (`table column`,
/// `public.t.c`), with the relation it is on (a table's, a column's, a view's...) so that the
/// comments of a relation on one side only come with that relation. An extension's comment comes
/// with the extension (its script writes it; its version is compared).
pub(super) const COMMENTS_SQL: &str = r#"
SELECT o.type, o.identity, d.description, rn.nspname::text, rel.relname::text
FROM pg_catalog.pg_description d
CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
LEFT JOIN pg_catalog.pg_class rel
       ON d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND rel.oid = d.objoid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rel.relnamespace
CROSS JOIN LATERAL (SELECT COALESCE(o.schema,
                                    CASE WHEN d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                                         THEN o.identity END, '') AS nsp) AS s
WHERE s.nsp <> 'information_schema'
  AND s.nsp NOT LIKE 'pg\_%'
  AND d.classoid <> 'pg_catalog.pg_extension'::pg_catalog.regclass
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend e
      WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e')"#;
