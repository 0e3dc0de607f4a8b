//! Definitions that both schemas have but print differently, as after a dump and restore: the
//! server deparses `x IN ('a', 'b')` as `x = ANY ((ARRAY['a'::varchar, ...])::text[])`, and the
//! restored copy parses that text into `x = ANY (ARRAY[('a'::varchar)::text, ...])`. Each side's
//! text is re-created in a database of the xtask's own that has the tables (alembic-stamp's
//! throwaway database, a remote restore's staging copy); when both print back the same, they are
//! the same definition: no reason to refuse a stamp, nor a difference between a restored backup
//! and the migrated remote it was taken of.

use std::time::Duration;

use anyhow::Result;
use tokio_postgres::Client;

use crate::{
    config::DbUrl,
    pg::{client, ident::quote_ident},
    verify::{catalog::Catalog, Change, Field, SchemaDifference, SchemaObject},
};

/// A constraint, an index, or a column's default, printed differently on the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// A constraint or an index (its definition), or a column (its default).
    pub object: SchemaObject,
    pub expected: String,
    pub actual: String,
}

impl Candidate {
    /// What of the object is printed differently.
    fn field(&self) -> Field {
        match self.object {
            SchemaObject::Column { .. } => Field::Default,
            _ => Field::Definition,
        }
    }

    /// Whether `d` is the difference that this candidate explains.
    pub fn explains(&self, d: &SchemaDifference) -> bool {
        d.change == Change::Field(self.field()) && d.object == self.object
    }
}

pub fn printed_differently(expected: &Catalog, actual: &Catalog) -> Vec<Candidate> {
    let (e, a) = (expected, actual);
    let mut out = Vec::new();
    for (name, et) in &e.tables {
        let Some(at) = a.tables.get(name) else {
            continue;
        };
        for (con, ec) in &et.constraints {
            match at.constraints.get(con) {
                Some(ac) if ac.definition != ec.definition => out.push(Candidate {
                    object: SchemaObject::Constraint {
                        table: name.clone(),
                        name: con.clone(),
                    },
                    expected: ec.definition.clone(),
                    actual: ac.definition.clone(),
                }),
                _ => {}
            }
        }
        for (col, ecol) in &et.columns {
            let acol = at.columns.get(col);
            if let (Some(ed), Some(ad)) = (&ecol.default, acol.and_then(|c| c.default.as_ref())) {
                if ed != ad {
                    out.push(Candidate {
                        object: SchemaObject::Column {
                            table: name.clone(),
                            column: col.clone(),
                        },
                        expected: ed.clone(),
                        actual: ad.clone(),
                    });
                }
            }
        }
    }
    for (name, ei) in &e.indexes {
        let Some(ai) = a.indexes.get(name) else {
            continue;
        };
        if ai.definition != ei.definition
            && ai.valid
            && ei.valid
            && e.tables.contains_key(&ei.table)
            && a.tables.contains_key(&ai.table)
        {
            out.push(Candidate {
                object: SchemaObject::Index(name.clone()),
                expected: ei.definition.clone(),
                actual: ai.definition.clone(),
            });
        }
    }
    out
}

/// The candidates that are the same definition: each side's text, re-created in the throwaway
/// database (in a transaction that is rolled back), prints back the same. Anything that cannot be
/// re-created (an index behind a constraint, say) stays a difference.
pub async fn same_once_recreated(
    scratch: &DbUrl,
    timeout: Duration,
    candidates: Vec<Candidate>,
) -> Result<Vec<Candidate>> {
    let mut conn = client::connect(scratch, timeout).await?;
    let mut same = Vec::new();
    for c in candidates {
        let expected = recreate(&mut conn, &c.object, &c.expected).await;
        let actual = recreate(&mut conn, &c.object, &c.actual).await;
        if expected.is_some() && expected == actual {
            same.push(c);
        }
    }
    Ok(same)
}

/// Re-creates one definition from its text and returns how the server prints it back; the
/// transaction is rolled back, so the throwaway database keeps the migrations' schema. `None`
/// when the text cannot be re-created there.
async fn recreate(conn: &mut Client, what: &SchemaObject, text: &str) -> Option<String> {
    let tx = conn.transaction().await.ok()?;
    // Printed as the comparison prints it: every name schema-qualified.
    tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
        .await
        .ok()?;
    let printed = match what {
        SchemaObject::Constraint { table, name } => {
            let (t, n) = (table.sql(), quote_ident(name));
            tx.batch_execute(&format!(
                "ALTER TABLE {t} DROP CONSTRAINT {n}; ALTER TABLE {t} ADD CONSTRAINT {n} {text}"
            ))
            .await
            .ok()?;
            tx.query_one(
                "SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint \
                 WHERE conrelid = $1::text::pg_catalog.regclass AND conname = $2",
                &[&t, name],
            )
            .await
            .ok()?
            .get(0)
        }
        SchemaObject::Index(index) => {
            if !text.starts_with("CREATE ") {
                return None;
            }
            tx.batch_execute(&format!("DROP INDEX {}; {text}", index.sql()))
                .await
                .ok()?;
            tx.query_one(
                "SELECT pg_catalog.pg_get_indexdef($1::text::pg_catalog.regclass)",
                &[&index.sql()],
            )
            .await
            .ok()?
            .get(0)
        }
        SchemaObject::Column { table, column } => {
            tx.batch_execute(&format!(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {text}",
                table.sql(),
                quote_ident(column)
            ))
            .await
            .ok()?;
            tx.query_one(
                "SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
                 WHERE d.adrelid = $1::text::pg_catalog.regclass AND a.attname = $2",
                &[&table.sql(), column],
            )
            .await
            .ok()?
            .get(0)
        }
        // Only constraints, indexes and column defaults are candidates (`printed_differently`):
        // any other definition that differs stays a difference.
        _ => return None,
    };
    let _ = tx.rollback().await;
    Some(printed)
}
