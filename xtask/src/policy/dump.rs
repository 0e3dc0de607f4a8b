//! psql's arguments for a masked pull's data: every selected table as `COPY (SELECT ...) TO
//! STDOUT` in the source's exported snapshot, masked by the policy, printed in pg_dump's shape so
//! that the relay (`pg/stream/`) and the load take it as they take pg_dump's. Generated columns
//! are left out, as pg_dump leaves them out.
//!
//! Partitions: the policy names a partitioned table (its root); each partition is copied on its
//! own, by its own columns, under its root's rules. A partitioned table holds no rows itself and
//! is not copied (as pg_dump writes its rows as each partition's). db-pull calls this through
//! `transfer/masking.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    columns::{Column, TypeClass},
    mask::{copy_commands, masked_select, psql_args},
    DbKey, Policy, TableKey, TablePolicy,
};
use crate::{
    pg::ident::QualifiedName,
    verify::catalog::{Catalog, TableKind},
};

/// What a rule may write into a column of this type (`format_type`'s text, as the catalog has it).
pub fn type_class(data_type: &str) -> TypeClass {
    if data_type == "uuid" {
        TypeClass::Uuid
    } else if data_type == "text"
        || data_type.starts_with("character varying")
        || data_type.starts_with("character(")
        || data_type == "character"
    {
        TypeClass::Text
    } else {
        TypeClass::Other
    }
}

/// The policy's name of a table: `users` for `public.users`, `schema.table` otherwise.
pub fn policy_table(table: &QualifiedName) -> String {
    if table.schema == "public" {
        table.name.clone()
    } else {
        format!("{}.{}", table.schema, table.name)
    }
}

/// The table a policy name stands for: `users` is `public.users`, `schema.table` that table.
pub fn named_table(policy_name: &str) -> QualifiedName {
    match policy_name.split_once('.') {
        Some((schema, name)) => QualifiedName::new(schema, name),
        None => QualifiedName::new("public", policy_name),
    }
}

/// Each table's columns that `policy`'s `db` section changes (every rule but keep): a masked
/// copy's values there differ from the source's by design.
pub fn masked_columns(policy: &Policy, db: DbKey) -> BTreeMap<QualifiedName, BTreeSet<String>> {
    policy
        .tables
        .iter()
        .filter(|(key, _)| key.db == db)
        .map(|(key, entry)| (named_table(&key.table), entry.masked_columns()))
        .filter(|(_, masked)| !masked.is_empty())
        .collect()
}

/// A table to copy: whole, or only its rows that `only` (an SQL condition) selects.
#[derive(Clone, Debug)]
pub struct CopyPart<'a> {
    pub table: &'a QualifiedName,
    pub only: Option<String>,
}

impl<'a> From<&'a QualifiedName> for CopyPart<'a> {
    fn from(table: &'a QualifiedName) -> CopyPart<'a> {
        CopyPart { table, only: None }
    }
}

/// psql's arguments that print `parts` of `catalog`'s tables (each masked by `policy`'s `db`
/// section, under the rules of the table that `root_of` names: a partition's root; an empty
/// policy prints every column as it is) in the exported `snapshot`. Partitioned tables are left
/// out: their partitions hold their rows.
pub fn masked_copy_args<'a>(
    snapshot: &str,
    catalog: &Catalog,
    parts: impl IntoIterator<Item = CopyPart<'a>>,
    policy: &Policy,
    db: DbKey,
    root_of: impl Fn(&QualifiedName) -> QualifiedName,
) -> Vec<String> {
    let empty = TablePolicy::default();
    let blocks: Vec<Vec<String>> = parts
        .into_iter()
        .filter_map(|CopyPart { table: name, only }| {
            let table = catalog.tables.get(name)?;
            if table.kind == TableKind::Partitioned {
                return None;
            }
            let key = TableKey {
                db,
                table: policy_table(&root_of(name)),
            };
            let columns: Vec<Column> = table
                .columns
                .iter()
                .filter(|(_, c)| c.generated.is_none())
                .map(|(column, c)| Column {
                    table: key.table.clone(),
                    name: column.clone(),
                    data_type: c.data_type.clone(),
                    class: type_class(&c.data_type),
                    not_null: c.not_null,
                })
                .collect();
            let entry = policy.tables.get(&key).unwrap_or(&empty);
            let select = masked_select(name, &columns, entry).unwrap_or_else(|| {
                let list: Vec<String> = columns
                    .iter()
                    .map(|c| crate::pg::ident::quote_ident(&c.name))
                    .collect();
                format!(
                    "SELECT {} FROM {}",
                    list.join(", "),
                    table.kind.from_clause(name)
                )
            });
            // Both selects end with their FROM clause: the condition applies to the table's rows.
            let select = match only {
                Some(condition) => format!("{select} WHERE {condition}"),
                None => select,
            };
            Some(copy_commands(name, &columns, &select))
        })
        .collect();
    psql_args(snapshot, &blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_table_names() {
        assert_eq!(type_class("character varying(255)"), TypeClass::Text);
        assert_eq!(type_class("character(3)"), TypeClass::Text);
        assert_eq!(type_class("uuid"), TypeClass::Uuid);
        assert_eq!(type_class("public.vector(1536)"), TypeClass::Other);
        assert_eq!(
            policy_table(&QualifiedName::new("public", "users")),
            "users"
        );
        assert_eq!(policy_table(&QualifiedName::new("app", "t")), "app.t");
        assert_eq!(named_table("users"), QualifiedName::new("public", "users"));
        assert_eq!(named_table("app.t"), QualifiedName::new("app", "t"));
        let policy = Policy::parse(
            "[core.users]\nid = \"keep\"\nemail = \"email\"\n[core.kept]\nid = \"keep\"\n\
             [ai.\"app.notes\"]\nbody = \"null\"\n",
        )
        .unwrap();
        let core = masked_columns(&policy, DbKey::Core);
        assert_eq!(core.len(), 1, "{core:?}");
        assert!(core[&QualifiedName::new("public", "users")].contains("email"));
        let ai = masked_columns(&policy, DbKey::Ai);
        assert!(ai[&QualifiedName::new("app", "notes")].contains("body"));
    }
}
