//! Where a database stands, without a database: classification, and how it reads.

use super::super::render::{describe, render, summary};
use super::*;

fn graph() -> RevisionGraph {
    RevisionGraph::parse(
        "Rev: b (head)\nParent: a\nPath: /b.py\n\nRev: a\nParent: <base>\nPath: /a.py\n",
    )
}

fn status_of(recorded: Option<&[&str]>) -> DatabaseStatus {
    let mut status = DatabaseStatus {
        side: Side::Local,
        url: Some("postgresql://u:****@h:1/d".into()),
        status: DbStatus::Error,
        revisions: None,
        pending: None,
        unknown_revisions: Vec::new(),
        error: None,
    };
    let recorded = recorded.map(|r| r.iter().map(|s| s.to_string()).collect());
    classify(&mut status, recorded, Some(&graph()), &["b".to_string()]);
    status
}

#[test]
fn classifies_against_the_heads() {
    let d = status_of(Some(&["b"]));
    assert_eq!((d.status, d.pending), (DbStatus::AtHead, Some(0)));
    assert!(d.ok());
    let d = status_of(Some(&["a"]));
    assert_eq!((d.status, d.pending), (DbStatus::Behind, Some(1)));
    assert_eq!(describe(&d), "BEHIND: 1 migration pending");
    let d = status_of(None);
    assert_eq!((d.status, d.pending), (DbStatus::NotStamped, Some(2)));
    assert_eq!(
        describe(&d),
        "NOT STAMPED (no alembic_version table): 2 migrations pending"
    );
    let d = status_of(Some(&["i6j7k8l9m0n1"]));
    assert_eq!(d.status, DbStatus::UnknownRevision);
    assert_eq!(d.unknown_revisions, ["i6j7k8l9m0n1"]);
    assert!(!d.ok());
}

#[test]
fn a_missing_url_is_not_configured_and_names_its_setting() {
    let d = database_status(
        Side::Remote,
        None,
        Database::Ai,
        Some(&graph()),
        &["b".to_string()],
        Reader {
            rt: &Runtime::new().unwrap(),
            timeout: Duration::from_secs(1),
        },
    );
    assert_eq!(d.status, DbStatus::NotConfigured);
    assert!(d.ok());
    assert_eq!(
        describe(&d),
        "not configured (no --remote-ai-url / RAILWAY_AI_DB_URL): not checked"
    );
}

#[test]
fn multiple_heads_fail_and_name_the_merge() {
    let status = ConfigStatus {
        database: Database::Core,
        config: "alembic.ini",
        heads: vec!["c6a".into(), "c6b".into()],
        multiple_heads: true,
        revisions: None,
        scripts_error: None,
        merge_command: Some(AlembicConfig::Core.merge_command(&["c6a".into(), "c6b".into()])),
        databases: Vec::new(),
    };
    assert!(!status.ok());
    let text = render(std::slice::from_ref(&status), true);
    assert!(
        text.contains("MULTIPLE HEADS: c6a, c6b (2 heads)"),
        "{text}"
    );
    assert!(
        text.contains("uv run alembic -c alembic.ini merge -m \"merge heads\" c6a c6b"),
        "{text}"
    );
    assert_eq!(
        summary(&[status], true),
        "alembic-status: alembic.ini has 2 heads (c6a, c6b)"
    );
}
