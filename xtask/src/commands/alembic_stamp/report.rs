//! What alembic-stamp says: the lines for people about each target, the refusal, and the
//! `--json` report (one object per database).

use std::collections::BTreeMap;

use serde::Serialize;

use super::check::{Checked, Finding, Problem};
use super::stamp::Plan;
use crate::config::{Database, Side};

/// The `--json` report: one object per database.
#[derive(Serialize)]
pub(super) struct JsonReport {
    /// Every database is at the revision now (stamped, or already there).
    pub stamped: bool,
    pub dry_run: bool,
    pub force: bool,
    pub revision: String,
    pub databases: Vec<JsonDatabase>,
}

#[derive(Serialize)]
pub(super) struct JsonDatabase {
    pub database: Database,
    pub side: Side,
    pub config: &'static str,
    pub url: String,
    /// `null`: no alembic_version table (or not read, when the check could not run).
    pub before: Option<Vec<String>>,
    /// What is (or would be) stamped.
    pub revisions: Vec<String>,
    /// `null` when the check could not run (`--force` only).
    pub schema_matches: Option<bool>,
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
    pub check_error: Option<String>,
    /// stamped | already_at_revision | would_stamp | refused | not_stamped
    pub action: &'static str,
    /// The revisions read back after stamping.
    pub after: Option<Vec<String>>,
}

pub(super) fn revisions_text(revisions: Option<&[String]>) -> String {
    match revisions {
        None => "no alembic_version table".to_string(),
        Some([]) => "no revision (alembic_version is empty)".to_string(),
        Some(revs) => revs.join(", "),
    }
}

pub(super) fn before_text(check: &Result<Checked, String>) -> String {
    match check {
        Ok(c) => revisions_text(c.before.as_deref()),
        Err(_) => "unknown (not checked)".to_string(),
    }
}

/// `1 missing, 2 different` for one target.
pub(super) fn count_problems(plan: &Plan) -> String {
    let Ok(checked) = &plan.check else {
        return "not checked".to_string();
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &checked.problems {
        let key = match p.problem {
            Finding::Missing => "missing",
            Finding::Extra => "extra",
            Finding::Differs => "different",
        };
        *counts.entry(key).or_default() += 1;
    }
    ["missing", "different", "extra"]
        .into_iter()
        .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human lines for one checked target.
pub(super) fn describe(plan: &Plan, revision: &str) -> Vec<String> {
    let t = &plan.target;
    let mut lines = vec![format!("{} {} ({})", t.name(), t.url, t.alembic.ini())];
    match &plan.check {
        Err(_) => lines.push(
            "  schema: NOT CHECKED: the check could not run (the warning below says why)".into(),
        ),
        Ok(c) => {
            lines.push(format!(
                "  alembic_version now: {}; the migrations at {revision} record: {}",
                revisions_text(c.before.as_deref()),
                revisions_text(Some(&c.revisions))
            ));
            if c.problems.is_empty() {
                lines.push(format!(
                    "  schema: matches the migrations at {revision} ({} tables; columns, \
                     constraints, indexes)",
                    c.tables
                ));
            } else {
                lines.push(format!(
                    "  schema: DOES NOT MATCH the migrations at {revision} ({}):",
                    count_problems(plan)
                ));
                lines.extend(c.problems.iter().map(|p| format!("    {p}")));
            }
            lines.extend(c.notes.iter().map(|n| format!("  note: {n}")));
        }
    }
    lines
}

pub(super) fn refusal(refused: &[&Plan], revision: &str) -> anyhow::Error {
    let which: Vec<String> = refused
        .iter()
        .map(|p| {
            format!(
                "{} ({}: {})",
                p.target.name(),
                p.target.url.dbname(),
                count_problems(p)
            )
        })
        .collect();
    let upgrades: Vec<String> = refused
        .iter()
        .map(|p| {
            format!(
                "`cd backend && uv run alembic -c {} upgrade {revision}` with {} set to {}",
                p.target.alembic.ini(),
                p.target.alembic.url_var(),
                p.target.url.dbname()
            )
        })
        .collect();
    let already: Vec<String> = refused
        .iter()
        .filter(|p| p.already_stamped())
        .map(|p| p.target.name())
        .collect();
    let already = if already.is_empty() {
        String::new()
    } else {
        format!(
            ". ({} already record(s) {revision}, yet the schema is not there: stamp the revision \
             the schema really is at, then upgrade from it)",
            already.join(" and ")
        )
    };
    anyhow::anyhow!(
        "alembic-stamp refused: the schema of {} does not match what the migrations build at \
         {revision} (each difference is listed above). Stamping would record migrations as \
         applied that never ran, and the app would fail on what is missing: `upgrade` is the \
         right move ({}). --force stamps anyway. Nothing was stamped{already}",
        which.join(", "),
        upgrades.join("; ")
    )
}

pub(super) fn json_database(plan: &Plan, revision: &str) -> JsonDatabase {
    let t = &plan.target;
    let (before, schema_matches, problems, notes, check_error) = match &plan.check {
        Ok(c) => (
            c.before.clone(),
            Some(c.problems.is_empty()),
            c.problems.clone(),
            c.notes.clone(),
            None,
        ),
        Err(e) => (None, None, Vec::new(), Vec::new(), Some(e.clone())),
    };
    JsonDatabase {
        database: t.db,
        side: t.side,
        config: t.alembic.ini(),
        url: t.url.to_string(),
        before,
        revisions: plan
            .stamp_revisions(revision)
            .into_iter()
            .map(str::to_string)
            .collect(),
        schema_matches,
        problems,
        notes,
        check_error,
        action: "not_stamped",
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_read_as_text() {
        assert_eq!(revisions_text(None), "no alembic_version table");
        assert_eq!(
            revisions_text(Some(&[])),
            "no revision (alembic_version is empty)"
        );
        assert_eq!(revisions_text(Some(&["a".into(), "b".into()])), "a, b");
    }
}
