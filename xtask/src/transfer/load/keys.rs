//! Into a staging database, the loaded tables' primary keys, unique and exclusion constraints go
//! the way of their secondary indexes: dropped before the data (after the foreign keys that rely
//! on them) and built after it, in pgcopydb's order. A key whose index can be built on its own is
//! a `CREATE UNIQUE INDEX` (one of the index builds spread over the connections, which may run
//! beside the others on the same table) and then `ADD CONSTRAINT ... USING INDEX` (a catalog
//! change); any other is added whole. Both come before the foreign keys are re-added.

use std::fmt::Write as _;

use crate::pg::ident::{quote_ident, QualifiedName};

use super::KeyConstraintDef;

/// `ALTER TABLE ... DROP CONSTRAINT ...;` for each of `keys`.
pub(super) fn drop_sql<'a>(keys: impl Iterator<Item = &'a KeyConstraintDef>) -> String {
    keys.map(|k| k.table.drop_constraint_sql(&k.name)).collect()
}

/// The build of each key's index after the data, with its table: the index alone when it is
/// attached afterwards, else the whole constraint.
pub(super) fn build_sql<'a>(
    keys: impl Iterator<Item = &'a KeyConstraintDef>,
) -> Vec<(QualifiedName, String)> {
    keys.map(|k| {
        let sql = match &k.attach {
            Some((_, index)) => format!("{index};"),
            None => format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {};",
                k.table.sql(),
                quote_ident(&k.name),
                k.definition
            ),
        };
        (k.table.clone(), sql)
    })
    .collect()
}

/// `ADD CONSTRAINT ... USING INDEX` for each key whose index was built alone (an index takes its
/// constraint's name, so the two names are the same).
pub(super) fn attach_sql<'a>(keys: impl Iterator<Item = &'a KeyConstraintDef>) -> String {
    let mut sql = String::new();
    for k in keys {
        if let Some((kind, _)) = &k.attach {
            let name = quote_ident(&k.name);
            let _ = writeln!(
                sql,
                "ALTER TABLE {} ADD CONSTRAINT {name} {kind} USING INDEX {name};",
                k.table.sql()
            );
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::{ForeignKeyDef, LoadMode, LoadShaper, TargetSchema};
    use super::*;
    use crate::pg::stream::{CopyHeader, Shaper};

    fn schema() -> TargetSchema {
        let users = QualifiedName::new("public", "users");
        let key = |name: &str, attach: Option<(&'static str, &str)>| KeyConstraintDef {
            table: users.clone(),
            name: name.into(),
            definition: "UNIQUE (email)".into(),
            attach: attach.map(|(kind, index)| (kind, index.to_string())),
        };
        TargetSchema {
            foreign_keys: vec![ForeignKeyDef {
                table: QualifiedName::new("public", "portfolios"),
                name: "portfolios_user_id_fkey".into(),
                parent: users.clone(),
                definition: "FOREIGN KEY (user_id) REFERENCES public.users(id)".into(),
            }],
            key_constraints: vec![
                key(
                    "users_pkey",
                    Some((
                        "PRIMARY KEY",
                        "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
                    )),
                ),
                key("users_email_key", None),
            ],
            tables: [users].into(),
            ..TargetSchema::default()
        }
    }

    fn users() -> BTreeSet<QualifiedName> {
        [QualifiedName::new("public", "users")].into()
    }

    #[test]
    fn keys_are_dropped_after_the_foreign_keys_and_attached_before_they_return() {
        let mut staging = LoadShaper::new(LoadMode::Replace, users(), schema()).unwrap();
        staging.rebuild_indexes();
        let pro = staging.prologue();
        let fk = pro
            .find("DROP CONSTRAINT \"portfolios_user_id_fkey\"")
            .expect(&pro);
        let pk = pro.find("DROP CONSTRAINT \"users_pkey\"").expect(&pro);
        assert!(fk < pk, "{pro}");
        assert!(pro.contains("DROP CONSTRAINT \"users_email_key\""), "{pro}");
        let builds: Vec<String> = staging.index_builds().into_iter().map(|b| b.1).collect();
        assert_eq!(
            builds,
            [
                "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id);",
                r#"ALTER TABLE "public"."users" ADD CONSTRAINT "users_email_key" UNIQUE (email);"#,
            ]
        );
        let after = staging.constraints();
        let attach = after
            .find(r#"ADD CONSTRAINT "users_pkey" PRIMARY KEY USING INDEX "users_pkey";"#)
            .expect(&after);
        let fk = after.find("FOREIGN KEY (user_id)").expect(&after);
        assert!(attach < fk, "{after}");
    }

    #[test]
    fn keys_stay_outside_a_staging_database_and_in_an_upsert() {
        let mut plain = LoadShaper::new(LoadMode::Replace, users(), schema()).unwrap();
        assert!(!plain.prologue().contains("users_pkey"));
        assert!(plain.index_builds().is_empty());
        let mut schema = schema();
        schema.primary_keys = [(QualifiedName::new("public", "users"), vec!["id".into()])].into();
        let mut upsert = LoadShaper::new(LoadMode::Upsert, users(), schema).unwrap();
        upsert.rebuild_indexes();
        assert!(!upsert.prologue().contains("users_pkey"));
        assert!(!upsert.constraints().contains("USING INDEX"));
    }

    #[test]
    fn a_frozen_table_is_truncated_in_the_load_and_copied_freeze() {
        let mut shaper = LoadShaper::new(LoadMode::Replace, users(), schema()).unwrap();
        shaper.truncate_just_these(BTreeSet::new());
        shaper.freeze(users());
        assert!(shaper
            .prologue()
            .contains(r#"TRUNCATE TABLE ONLY "public"."users";"#));
        let header = CopyHeader {
            table: QualifiedName::new("public", "users"),
            columns: vec!["id".into()],
        };
        let line = "COPY public.users (id) FROM stdin;";
        assert_eq!(
            shaper.copy_header(&header, line),
            "COPY public.users (id) FROM stdin WITH (FREEZE);"
        );
        let other = CopyHeader {
            table: QualifiedName::new("public", "other"),
            columns: vec!["id".into()],
        };
        let line = "COPY public.other (id) FROM stdin;";
        assert_eq!(shaper.copy_header(&other, line), line);
    }
}
