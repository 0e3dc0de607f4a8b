//! The check before a stamp: the migrations' schema at the revision, built in a throwaway
//! database on the target's server (dropped in every case), against the target's schema, with
//! the db-verify engine. Tables, columns, constraints, indexes, views, functions, triggers,
//! enum types, domains, policies and sequences by name; not rows, not sequence positions, not
//! `alembic_version` itself.

use std::{fmt, time::Duration};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;
use xshell::Shell;

use super::{sorted, StampCtx, Target};
use crate::verify::recreate::{printed_differently, same_once_recreated, Candidate};
use crate::{
    config::{Database, DbUrl},
    pg::{
        client,
        scratch::{sibling_name, ScratchDb},
    },
    verify::{
        self,
        catalog::{self, Measures, Snapshot, TableMeasure},
        Change, Endpoint, Field, ObjectKind, TableStatus,
    },
};

/// How the schema built from the migrations is named in comparisons.
const MIGRATIONS: &str = "migrations";
/// The throwaway database is the target's name plus this (cut to PostgreSQL's 63 bytes).
const SCRATCH_SUFFIX: &str = "_xtask_stamp_check";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Finding {
    /// The migrations create it; the target does not have it.
    Missing,
    /// The target has it; the migrations do not create it.
    Extra,
    /// Both have it, differently.
    Differs,
}

/// What kind of object a problem is about: the comparison's own kinds (a table missing or extra
/// is `Table`, as is a table's row-security setting), with the same text and JSON.
pub(super) type ProblemKind = ObjectKind;

/// One way in which the target's schema is not the migrations' schema at the revision.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Problem {
    pub problem: Finding,
    pub kind: ProblemKind,
    pub object: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Finding::Missing => write!(f, "missing {} {}", self.kind, self.object)?,
            Finding::Extra => write!(f, "extra {} {}", self.kind, self.object)?,
            Finding::Differs => write!(f, "{} {}", self.kind, self.object)?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What the check found for one target.
pub(super) struct Checked {
    /// What the migrations record at the revision (read from the throwaway database after the
    /// upgrade): exactly what gets stamped.
    pub revisions: Vec<String>,
    /// The target's revisions now; `None` when it has no `alembic_version` table.
    pub before: Option<Vec<String>>,
    /// Tables the migrations create up to the revision (`alembic_version` left out).
    pub tables: usize,
    pub problems: Vec<Problem>,
    /// Differences that do not stop a stamp (an extra extension, another extension version).
    pub notes: Vec<String>,
}

impl Checked {
    pub fn already_stamped(&self) -> bool {
        self.before
            .as_ref()
            .is_some_and(|b| sorted(b) == sorted(&self.revisions))
    }
}

/// `<target>_xtask_stamp_check`, cut to fit in PostgreSQL's 63 bytes.
fn scratch_name(target: &str) -> String {
    sibling_name(target, SCRATCH_SUFFIX)
}

/// Builds the migrations' schema at the revision in a throwaway database on the target's server,
/// reads both schemas and compares them. The throwaway database is dropped in every case.
pub(super) fn check(
    sh: &Shell,
    run: &StampCtx,
    target: &Target,
    admin: &Client,
) -> Result<Checked> {
    let (rt, revision, timeout) = (run.rt, run.revision, run.timeout);
    let name = scratch_name(target.url.dbname());
    if run.progress {
        eprintln!(
            "alembic-stamp: building {} at {revision} in the throwaway database {name}...",
            target.alembic.ini()
        );
    }
    let scratch = ScratchDb::create(
        rt,
        admin,
        &target.url,
        &name,
        // What a plain CREATE DATABASE copies.
        Some("template1"),
        "to build the migrations' schema in (the user needs CREATEDB)",
    )?;
    let scratch_url = scratch.url().clone();
    if target.db == Database::Ai {
        // As db-init does: the AI migrations need pgvector.
        rt.block_on(async {
            let conn = client::connect(&scratch_url, timeout).await?;
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .await
                .with_context(|| {
                    format!(
                        "creating the vector extension in {scratch_url}: is pgvector installed \
                         on that server?"
                    )
                })
        })?;
    }
    target
        .alembic
        .upgrade(rt, sh, run.backend, &scratch_url, revision)
        .with_context(|| {
            format!(
                "building the schema of {} at {revision} in the throwaway database {name}",
                target.alembic.ini()
            )
        })?;
    let (expected, actual) = rt.block_on(async {
        tokio::try_join!(
            read_schema(&scratch_url, timeout),
            read_schema(&target.url, timeout)
        )
    })?;
    let (expected, actual) = (
        without_version_table(expected),
        without_version_table(actual),
    );
    let candidates = printed_differently(&expected.catalog, &actual.catalog);
    let same = if candidates.is_empty() {
        Vec::new()
    } else {
        rt.block_on(same_once_recreated(&scratch_url, timeout, candidates))?
    };
    scratch.drop_now()?;
    Ok(compare(target, &scratch_url, &expected, &actual, &same))
}

/// What the migrations recorded in the throwaway database.
fn revisions_of(snap: &Snapshot) -> Vec<String> {
    snap.catalog
        .alembic
        .as_ref()
        .map(|a| a.revisions.clone())
        .unwrap_or_default()
}

/// The structure of a database, in one read-only snapshot. Rows are not read: every table is
/// recorded as measured alike, so that the comparison sees only the structure.
async fn read_schema(url: &DbUrl, timeout: Duration) -> Result<Snapshot> {
    let mut conn = catalog::connect(url, timeout).await?;
    let tx = catalog::begin(&mut conn, url).await?;
    let catalog = catalog::read_catalog(&tx, url).await?;
    let _ = tx.rollback().await;
    let tables = catalog
        .tables
        .keys()
        .map(|name| {
            (
                name.clone(),
                TableMeasure {
                    rows: 0,
                    checksum: None,
                },
            )
        })
        .collect();
    Ok(Snapshot {
        catalog,
        measures: Measures {
            tables,
            ..Measures::default()
        },
    })
}

/// The snapshot without its Alembic version table, which the stamp rewrites and which is no part
/// of the schema being compared (its revisions stay in `catalog.alembic`).
fn without_version_table(mut snap: Snapshot) -> Snapshot {
    if let Some(state) = &snap.catalog.alembic {
        let table = state.table.clone();
        snap.catalog.tables.remove(&table);
        snap.catalog.indexes.retain(|_, index| index.table != table);
        snap.catalog
            .foreign_keys
            .retain(|fk| fk.table != table && fk.parent != table);
        snap.catalog.sequences.retain(|s| s.table != table);
        snap.measures.tables.remove(&table);
    }
    snap
}

/// The target's schema against the migrations' (both without their version table): each
/// table, column, constraint or index that is missing, extra or different is a problem, except
/// the definitions in `same` (printed differently, the same once re-created: a note); extension
/// differences other than a missing extension are notes too.
fn compare(
    target: &Target,
    scratch_url: &DbUrl,
    expected: &Snapshot,
    actual: &Snapshot,
    same: &[Candidate],
) -> Checked {
    // The migrations are the left side, the target the right.
    let comparison = verify::build(
        target.db,
        &Endpoint::new(MIGRATIONS, scratch_url.clone()),
        &Endpoint::new(target.side.label(), target.url.clone()),
        expected,
        actual,
        None,
        false,
    );
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for table in &comparison.tables {
        let (problem, detail) = match table.status {
            TableStatus::OnlyLeft => (Finding::Missing, String::new()),
            TableStatus::OnlyRight => (Finding::Extra, "not created by the migrations".to_string()),
            _ => continue,
        };
        problems.push(Problem {
            problem,
            kind: ProblemKind::Table,
            object: table.name().to_string(),
            detail,
        });
    }
    for c in same {
        notes.push(format!(
            "{} {} is written differently, as after a dump and restore, but is the same \
             definition once re-created: not a difference",
            c.object.kind(),
            c.object
        ));
    }
    for d in &comparison.schema_differences {
        if same.iter().any(|c| c.explains(d)) {
            continue;
        }
        // A sequence's position is data: the throwaway database's sequences are all fresh.
        if d.change == Change::Field(Field::LastValue) {
            continue;
        }
        // A view's or a function's definition takes many lines: named, not shown.
        let long = d.kind().has_long_definition();
        let shown = |v: &Option<String>| {
            if long {
                String::new()
            } else {
                v.clone().unwrap_or_default()
            }
        };
        let (problem, detail) = match d.change {
            Change::OnlyLeft => (Finding::Missing, shown(&d.left)),
            Change::OnlyRight if long => {
                (Finding::Extra, "not created by the migrations".to_string())
            }
            Change::OnlyRight => (
                Finding::Extra,
                format!("{}; not created by the migrations", shown(&d.right)),
            ),
            Change::Field(_) => (Finding::Differs, d.detail()),
        };
        if d.kind() == ObjectKind::Extension && problem != Finding::Missing {
            notes.push(format!(
                "extension {}: {} (no reason to refuse a stamp)",
                d.object,
                d.detail()
            ));
            continue;
        }
        problems.push(Problem {
            problem,
            kind: d.kind(),
            object: d.object.to_string(),
            detail,
        });
    }
    // What is missing first, then what differs, then what is extra.
    problems.sort_by_key(|p| match p.problem {
        Finding::Missing => 0,
        Finding::Differs => 1,
        Finding::Extra => 2,
    });
    Checked {
        revisions: revisions_of(expected),
        before: actual.catalog.alembic.as_ref().map(|a| a.revisions.clone()),
        tables: expected.catalog.tables.len(),
        problems,
        notes,
    }
}

#[cfg(test)]
mod tests;
