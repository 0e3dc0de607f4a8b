//! What a copy cannot make exact, found in the source's snapshot before anything is touched
//! (the fidelity rule of `../shared/design.md`): event triggers, publications, subscriptions,
//! foreign tables (their data lives elsewhere and pg_dump never copies it), and large objects
//! (pg_dump leaves them out of a `--table` dump, and nothing compares them yet). A copy of a
//! source that holds any of them is refused, naming each, unless `--allow-uncopyable` is given:
//! then each is a warning in the plan and in the `--json` report.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::{config::DbUrl, pg::ident::shown_ident, pg::ident::QualifiedName};

/// The flag that turns the refusal into warnings.
pub const FLAG: &str = "--allow-uncopyable";

/// `(kind, schema, name)` of each object the copy does not make exact; for large objects their
/// count as the name. Objects that belong to an extension are left out: the extension is
/// copied, and they come with it. A subscription is listed from the columns every role may read
/// (`subconninfo`, which holds passwords, is the one revoked), for this database only.
const UNCOPYABLE_SQL: &str = r#"
SELECT 'event trigger', NULL::text, e.evtname::text
FROM pg_catalog.pg_event_trigger e
WHERE NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
      AND d.objid = e.oid AND d.deptype = 'e')
UNION ALL
SELECT 'publication', NULL, p.pubname::text FROM pg_catalog.pg_publication p
UNION ALL
SELECT 'subscription', NULL, s.subname::text
FROM pg_catalog.pg_subscription s
WHERE s.subdbid = (SELECT oid FROM pg_catalog.pg_database
                   WHERE datname = pg_catalog.current_database())
UNION ALL
SELECT 'foreign table', n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'f'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'large objects', NULL, pg_catalog.count(*)::text
FROM pg_catalog.pg_largeobject_metadata
HAVING pg_catalog.count(*) > 0
ORDER BY 1, 2, 3"#;

/// Each object of the source that the copy cannot make exact, named for people:
/// `event trigger audit_ddl`, `foreign table public.ft (its data is not copied)`.
pub async fn read(client: &Client, url: &DbUrl) -> Result<Vec<String>> {
    let rows = client
        .query(UNCOPYABLE_SQL, &[])
        .await
        .with_context(|| {
            format!("reading the event triggers, publications, subscriptions, foreign tables and large objects of {url}")
        })?;
    Ok(rows
        .iter()
        .map(|r| {
            let (kind, schema, name): (String, Option<String>, String) =
                (r.get(0), r.get(1), r.get(2));
            describe(&kind, schema, &name)
        })
        .collect())
}

fn describe(kind: &str, schema: Option<String>, name: &str) -> String {
    match (kind, schema) {
        ("large objects", _) => format!("{name} large object(s)"),
        (_, Some(schema)) => format!(
            "{kind} {} (its data is not copied)",
            QualifiedName::new(schema, name.to_string())
        ),
        (_, None) => format!("{kind} {}", shown_ident(name)),
    }
}

/// The refusal: what the source holds, why it stops the copy, and the two ways on.
pub fn refusal(command: &str, side: &str, label: &str, objects: &[String]) -> String {
    format!(
        "the {side} {label} database holds what {command} cannot copy exactly: {}. Remove them \
         from the source, or pass {FLAG} to copy without them (with --schema source, pg_dump \
         still writes the definitions it knows, but nothing checks them): each is then a \
         warning",
        objects.join(", ")
    )
}

/// The warning for each object left out with the flag.
pub fn warnings(objects: &[String]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("not copied exactly, not verified ({FLAG}): {o}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_named_for_people() {
        assert_eq!(
            describe("event trigger", None, "Audit DDL"),
            "event trigger \"Audit DDL\""
        );
        assert_eq!(
            describe("foreign table", Some("public".into()), "ft"),
            "foreign table public.ft (its data is not copied)"
        );
        assert_eq!(describe("large objects", None, "3"), "3 large object(s)");
    }

    #[test]
    fn the_refusal_names_every_object_and_the_flag() {
        let objects = vec!["event trigger e".to_string(), "publication p".to_string()];
        let text = refusal("db-pull", "remote", "core", &objects);
        assert!(text.contains("event trigger e, publication p"), "{text}");
        assert!(text.contains(FLAG), "{text}");
        assert_eq!(warnings(&objects).len(), 2);
    }
}
