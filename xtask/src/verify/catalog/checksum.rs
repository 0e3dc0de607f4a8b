//! The checksum of a table's rows, computed on the server in one pass (the rows stream through
//! the server's aggregate; the xtask receives one row). Why it is built this way, what it
//! catches and what it costs: docs/checksums.md.
//!
//! Each row hashes to 64 bits; the table's checksum is `md5(count || ':' || sum of the row
//! hashes)`, so neither the row order nor the physical column order matters (both sides get the
//! same list of columns, the ones they share, in name order), and a duplicated row counts twice.
//! How a row hashes is [`ChecksumMethod`]'s choice, the same on both sides of a comparison.

use super::{Column, QualifiedName, Table};
use crate::pg::ident::quote_ident;

/// How each row is hashed: chosen once for both sides of a comparison from their server versions
/// ([`ChecksumMethod::for_servers`]), since the two methods give different checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMethod {
    /// PostgreSQL 14 and later on both sides: `hash_record_extended` over each column's value in
    /// a form that hashes exactly (see [`typed_value`]), that 64-bit hash hashed once more.
    Typed,
    /// A side before PostgreSQL 14 (no `hash_record_extended`): `hashtextextended` of each row's
    /// text, `ROW(...)::text`.
    RowText,
}

impl ChecksumMethod {
    /// The method both servers can run (`server_version` as the catalog reads it: `17.4`).
    pub fn for_servers(left: &str, right: &str) -> ChecksumMethod {
        let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
        match (major(left), major(right)) {
            (Some(l), Some(r)) if l >= 14 && r >= 14 => ChecksumMethod::Typed,
            _ => ChecksumMethod::RowText,
        }
    }
}

/// The query that returns a table's row count and its checksum over `columns` (each a column of
/// `table`; a name it does not have hashes by its text, as a column of unknown type would).
pub fn checksum_sql(
    name: &QualifiedName,
    table: &Table,
    columns: &[String],
    method: ChecksumMethod,
) -> String {
    let alias = quote_ident("xtask_row");
    let column = |c: &String| format!("{alias}.{}", quote_ident(c));
    let row_hash = match method {
        ChecksumMethod::Typed => {
            let values: Vec<String> = columns
                .iter()
                .map(|c| typed_value(&column(c), table.columns.get(c)))
                .collect();
            format!(
                "pg_catalog.hashtextextended(pg_catalog.hash_record_extended(ROW({}), 0)::text \
                 COLLATE pg_catalog.\"C\", 0)",
                values.join(", ")
            )
        }
        ChecksumMethod::RowText => {
            let values: Vec<String> = columns.iter().map(column).collect();
            format!(
                "pg_catalog.hashtextextended(ROW({})::text COLLATE pg_catalog.\"C\", 0)",
                values.join(", ")
            )
        }
    };
    format!(
        "SELECT pg_catalog.count(*), pg_catalog.md5(pg_catalog.count(*)::text || ':' || \
         COALESCE(pg_catalog.sum({row_hash}), 0)::text) FROM {from} AS {alias}",
        from = table.kind.from_clause(name),
    )
}

/// One column's part of the row given to `hash_record_extended`, which hashes each part with
/// its type's own hash function: only types whose hash tells every two different values apart
/// as their text does go as they are; the others in a form that does (docs/checksums.md).
fn typed_value(column: &str, info: Option<&Column>) -> String {
    let base = info.map(|c| base_type(&c.data_type)).unwrap_or_default();
    match base.as_str() {
        "smallint" | "integer" | "boolean" | "date" | "uuid" | "bytea" | "oid" => column.into(),
        // int8's hash folds its two halves into 32 bits: the high half beside it restores them.
        "bigint" => format!("{column}, {column} >> 32"),
        "text" | "character varying" => format!("{column} COLLATE pg_catalog.\"C\""),
        // Their binary form: the value exactly (a numeric's scale and sign included).
        "numeric" => format!("pg_catalog.numeric_send({column})"),
        "timestamp with time zone" => format!("pg_catalog.timestamptz_send({column})"),
        "timestamp without time zone" => format!("pg_catalog.timestamp_send({column})"),
        "time without time zone" => format!("pg_catalog.time_send({column})"),
        // Its cast to text drops the padding that its text output keeps.
        "character" => format!("pg_catalog.bpcharsend({column})"),
        _ => format!("CAST({column} AS pg_catalog.text) COLLATE pg_catalog.\"C\""),
    }
}

/// A `format_type` name without its type modifiers: `timestamp(3) with time zone` is
/// `timestamp with time zone`, `numeric(16,4)` is `numeric`; an array keeps its `[]`.
fn base_type(data_type: &str) -> String {
    let mut base = String::with_capacity(data_type.len());
    let mut depth = 0usize;
    for ch in data_type.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => base.push(ch),
            _ => {}
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::verify::catalog::TableKind;

    fn table(columns: &[(&str, &str)]) -> Table {
        Table {
            kind: TableKind::Ordinary,
            columns: columns
                .iter()
                .map(|(name, data_type)| (name.to_string(), Column::of_type(data_type)))
                .collect(),
            constraints: BTreeMap::new(),
        }
    }

    #[test]
    fn the_method_needs_postgresql_14_on_both_sides() {
        use ChecksumMethod::*;
        assert_eq!(ChecksumMethod::for_servers("17.4", "15.13"), Typed);
        assert_eq!(ChecksumMethod::for_servers("14.0", "17.11"), Typed);
        assert_eq!(ChecksumMethod::for_servers("13.20", "17.11"), RowText);
        assert_eq!(ChecksumMethod::for_servers("17.4", "9.6.24"), RowText);
        assert_eq!(ChecksumMethod::for_servers("17.4", "devel"), RowText);
    }

    #[test]
    fn typmods_are_not_part_of_the_base_type() {
        assert_eq!(base_type("numeric(16,4)"), "numeric");
        assert_eq!(
            base_type("timestamp(3) with time zone"),
            "timestamp with time zone"
        );
        assert_eq!(base_type("character varying(20)[]"), "character varying[]");
        assert_eq!(base_type("public.vector(1536)"), "public.vector");
    }

    #[test]
    fn each_type_goes_into_the_row_in_a_form_that_hashes_exactly() {
        let t = table(&[
            ("Order", "bigint"),
            ("amount", "numeric(12,2)"),
            ("at", "timestamp(3) with time zone"),
            ("code", "character(3)"),
            ("id", "integer"),
            ("name", "character varying(20)"),
            ("score", "double precision"),
            ("tags", "text[]"),
        ]);
        let columns: Vec<String> = t.columns.keys().cloned().collect();
        let name = QualifiedName::new("My Schema", "select");
        let sql = checksum_sql(&name, &t, &columns, ChecksumMethod::Typed);
        let row = concat!(
            r#"ROW("xtask_row"."Order", "xtask_row"."Order" >> 32, "#,
            r#"pg_catalog.numeric_send("xtask_row"."amount"), "#,
            r#"pg_catalog.timestamptz_send("xtask_row"."at"), "#,
            r#"pg_catalog.bpcharsend("xtask_row"."code"), "xtask_row"."id", "#,
            r#""xtask_row"."name" COLLATE pg_catalog."C", "#,
            r#"CAST("xtask_row"."score" AS pg_catalog.text) COLLATE pg_catalog."C", "#,
            r#"CAST("xtask_row"."tags" AS pg_catalog.text) COLLATE pg_catalog."C")"#,
        );
        assert!(
            sql.contains(&format!("pg_catalog.hash_record_extended({row}, 0)")),
            "{sql}"
        );
        assert!(
            sql.contains(r#"FROM ONLY "My Schema"."select" AS "xtask_row""#),
            "{sql}"
        );
        let sql = checksum_sql(&name, &t, &columns[..2], ChecksumMethod::RowText);
        assert!(
            sql.contains(
                r#"hashtextextended(ROW("xtask_row"."Order", "xtask_row"."amount")::text"#
            ),
            "{sql}"
        );
    }
}
