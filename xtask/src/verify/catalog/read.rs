//! Phase one of a side's read: the structure of its database (tables, columns, constraints,
//! indexes, extensions, foreign keys, owned sequences), the objects beyond the tables
//! (`objects.rs`) and its Alembic revision.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::session::{explain, first_failure, keep_ok};
use super::sql::*;
use super::*;
use crate::config::DbUrl;

/// Phase one: the structure of the database.
pub async fn read_catalog<C: GenericClient + Sync>(tx: &C, url: &DbUrl) -> Result<Catalog> {
    let tables_sql = with_user_tables(TABLES_SQL);
    let columns_sql = with_user_tables(COLUMNS_SQL);
    let constraints_sql = with_user_tables(CONSTRAINTS_SQL);
    let indexes_sql = with_user_tables(INDEXES_SQL);
    let fks_sql = with_user_tables(FOREIGN_KEYS_SQL);
    let sequences_sql = with_user_tables(SEQUENCES_SQL);
    // All of them in flight at once: one round trip's wait instead of seven.
    let (version, tables, columns, constraints, indexes, extensions, fks, sequences) = tokio::join!(
        // `17.4`, without the packager's `(Debian 17.4-1.pgdg120+2)`.
        tx.query_one(
            "SELECT pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1)",
            &[]
        ),
        tx.query(&tables_sql, &[]),
        tx.query(&columns_sql, &[]),
        tx.query(&constraints_sql, &[]),
        tx.query(&indexes_sql, &[]),
        tx.query(EXTENSIONS_SQL, &[]),
        tx.query(&fks_sql, &[]),
        tx.query(&sequences_sql, &[]),
    );
    let mut errors = Vec::new();
    let version = keep_ok(
        version
            .map_err(explain)
            .with_context(|| format!("reading the server version of {url}")),
        &mut errors,
    );
    // Every query's error is kept: the one that failed on its own is reported.
    let mut take = |result: Result<_, tokio_postgres::Error>, what: &str| {
        keep_ok(
            result
                .map_err(explain)
                .with_context(|| format!("reading the {what} of {url}")),
            &mut errors,
        )
    };
    let tables = take(tables, "tables");
    let columns = take(columns, "columns");
    let constraints = take(constraints, "constraints");
    let indexes = take(indexes, "indexes");
    let extensions = take(extensions, "extensions");
    let fks = take(fks, "foreign keys");
    let sequences = take(sequences, "sequences");
    let (
        Some(version),
        Some(tables),
        Some(columns),
        Some(constraints),
        Some(indexes),
        Some(extensions),
        Some(fks),
        Some(sequences),
    ) = (
        version,
        tables,
        columns,
        constraints,
        indexes,
        extensions,
        fks,
        sequences,
    )
    else {
        return Err(first_failure(errors));
    };
    let server_version: String = version.get(0);
    let mut catalog = Catalog {
        server_version,
        tables: BTreeMap::new(),
        indexes: BTreeMap::new(),
        extensions: BTreeMap::new(),
        foreign_keys: Vec::new(),
        sequences: Vec::new(),
        objects: Objects::default(),
        alembic: None,
    };
    for row in tables {
        let kind: String = row.get(2);
        catalog.tables.insert(
            QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            Table {
                kind: TableKind::from_relkind(&kind),
                columns: BTreeMap::new(),
                constraints: BTreeMap::new(),
            },
        );
    }
    for row in columns {
        let table = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if let Some(t) = catalog.tables.get_mut(&table) {
            t.columns.insert(
                row.get(2),
                Column {
                    data_type: row.get(3),
                    not_null: row.get(4),
                    default: row.get(5),
                    identity: row.get(6),
                    generated: row.get(7),
                    collation: row.get(8),
                    integer: row.get(9),
                },
            );
        }
    }
    for row in constraints {
        let table = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if let Some(t) = catalog.tables.get_mut(&table) {
            t.constraints.insert(
                row.get(2),
                Constraint {
                    kind: row.get(3),
                    definition: row.get(4),
                },
            );
        }
    }
    for row in indexes {
        catalog.indexes.insert(
            QualifiedName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            Index {
                table: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                definition: row.get(4),
                valid: row.get(5),
            },
        );
    }
    for row in extensions {
        catalog.extensions.insert(
            row.get(0),
            Extension {
                version: row.get(1),
                schema: row.get(2),
            },
        );
    }
    for row in fks {
        let table_kind: String = row.get(2);
        let parent_kind: String = row.get(6);
        catalog.foreign_keys.push(ForeignKey {
            table: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            table_kind: TableKind::from_relkind(&table_kind),
            name: row.get(3),
            parent: QualifiedName::new(row.get::<_, String>(4), row.get::<_, String>(5)),
            parent_kind: TableKind::from_relkind(&parent_kind),
            match_full: row.get(7),
            columns: row.get(8),
            parent_columns: row.get(9),
            operators: row.get(10),
        });
    }
    catalog
        .foreign_keys
        .sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
    for row in sequences {
        let table_kind: String = row.get(4);
        catalog.sequences.push(OwnedSequence {
            sequence: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            table: QualifiedName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            table_kind: TableKind::from_relkind(&table_kind),
            column: row.get(5),
            integer_column: row.get(6),
            last_value: row.get(7),
            start_value: row.get(8),
            increment_by: row.get(9),
            readable: row.get(10),
        });
    }
    catalog.sequences.sort_by(|a, b| {
        (&a.table, &a.column, &a.sequence).cmp(&(&b.table, &b.column, &b.sequence))
    });
    catalog.objects = super::objects::read_objects(tx, url).await?;
    catalog.alembic = read_alembic(tx, url, &catalog).await?;
    Ok(catalog)
}

/// The `alembic_version` table (in `public` if there is one there, else the first schema that
/// has one) and its revisions; `None` when the database has no such table.
async fn read_alembic<C: GenericClient + Sync>(
    tx: &C,
    url: &DbUrl,
    catalog: &Catalog,
) -> Result<Option<AlembicState>> {
    let mut candidates: Vec<&QualifiedName> = catalog
        .tables
        .iter()
        .filter(|(name, table)| {
            name.name == "alembic_version" && table.columns.contains_key("version_num")
        })
        .map(|(name, _)| name)
        .collect();
    candidates.sort_by_key(|name| (name.schema != "public", name.schema.clone()));
    let Some(table) = candidates.first() else {
        return Ok(None);
    };
    let rows = tx
        .query(
            &format!(
                "SELECT version_num::text FROM {} WHERE version_num IS NOT NULL ORDER BY 1",
                table.sql()
            ),
            &[],
        )
        .await
        .map_err(explain)
        .with_context(|| format!("reading {table} on {url}"))?;
    Ok(Some(AlembicState {
        table: (*table).clone(),
        revisions: rows.iter().map(|r| r.get(0)).collect(),
    }))
}
