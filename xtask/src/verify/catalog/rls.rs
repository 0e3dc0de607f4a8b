//! Row-level security and the read: every count and checksum must see every row. The session
//! reads with `row_security = off` (`session.rs`), so that a policy can never filter what is
//! counted; for a role that cannot bypass row-level security PostgreSQL then refuses the query
//! (SQLSTATE 42501) rather than filter it. This module finds those tables up front, before any
//! count, and names them all with the role and what it needs.

use anyhow::{bail, Context, Result};
use tokio_postgres::GenericClient;

use super::Catalog;
use crate::config::DbUrl;
use crate::pg::ident::{shown_ident, QualifiedName};

/// The tables with row-level security enabled that the current role does not bypass: it is
/// neither a superuser nor BYPASSRLS, and it does not own the table (through membership too), or
/// it owns it but the table has FORCE ROW LEVEL SECURITY. The same rule PostgreSQL applies
/// (`check_enable_rls`).
const HIDDEN_SQL: &str = r#"
SELECT n.nspname::text, c.relname::text, CURRENT_USER::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND c.relrowsecurity
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_roles r
      WHERE r.rolname = CURRENT_USER AND (r.rolsuper OR r.rolbypassrls))
  AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))
ORDER BY 1, 2"#;

/// Fails, naming every table and the role, when row-level security would keep the role from
/// reading some of the catalog's tables whole (exit 1: nothing was compared).
pub async fn check_reads_every_row<C: GenericClient + Sync>(
    tx: &C,
    url: &DbUrl,
    catalog: &Catalog,
) -> Result<()> {
    let rows = tx
        .query(HIDDEN_SQL, &[])
        .await
        .map_err(super::session::explain)
        .with_context(|| format!("reading which tables have row-level security on {url}"))?;
    let mut role = String::new();
    let mut tables = Vec::new();
    for row in rows {
        let table = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        role = row.get(2);
        // Only the tables that are read (a table of an extension is not).
        if catalog.tables.contains_key(&table) {
            tables.push(table.to_string());
        }
    }
    if tables.is_empty() {
        return Ok(());
    }
    bail!("{}", refusal(&role, &tables, url))
}

/// The message: the role, the tables, why the rows cannot be counted, what to do.
fn refusal(role: &str, tables: &[String], url: &DbUrl) -> String {
    let role = shown_ident(role);
    format!(
        "role {role} cannot bypass row-level security on {url}, which is enabled on {}: its \
         counts and checksums would be of the rows its policies show it, not of the table, so \
         nothing was compared. Connect as a role that reads every row: one with BYPASSRLS \
         (ALTER ROLE {role} BYPASSRLS), a superuser, or the tables' owner (when FORCE ROW \
         LEVEL SECURITY is not set)",
        tables.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_role_every_table_and_the_remedy() {
        let url = DbUrl::parse("postgresql://u:secret@db.example/app").unwrap();
        let text = refusal("Reader", &["public.a".into(), "\"S\".b".into()], &url);
        assert!(
            text.contains("role \"Reader\" cannot bypass row-level security"),
            "{text}"
        );
        assert!(text.contains("public.a, \"S\".b"), "{text}");
        assert!(text.contains("BYPASSRLS"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
