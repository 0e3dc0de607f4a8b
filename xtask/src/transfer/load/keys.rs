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
    let mut sql = String::new();
    for k in keys {
        let _ = writeln!(
            sql,
            "ALTER TABLE {} DROP CONSTRAINT {};",
            k.table.sql(),
            quote_ident(&k.name)
        );
    }
    sql
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
