//! `cargo xtask alembic-stamp`: records a revision in `alembic_version` without running any
//! migration (`uv run alembic -c <config> stamp`), for a schema that got there another way, such
//! as a restored dump whose `alembic_version` is stale (runbook 002: `upgrade head` then dies with
//! `DuplicateTable`).
//!
//! Safe by default (runbook 003: stamping a schema that is not really at the revision breaks the
//! app). Before stamping, it builds the schema that the migrations produce at that revision in a
//! throwaway database on the target's server (`<target>_xtask_stamp_check`: `upgrade <rev>`, then
//! dropped, also on failure), and compares it with the target's schema with the db-verify engine:
//! tables, columns, constraints and indexes, by name; not rows, not `alembic_version` itself. Any
//! difference refuses the stamp (exit 1) and names each one: `upgrade` is then the right move.
//! `--force` stamps anyway, with a warning. Each target is locked for the whole run (one xtask
//! command per database at a time), every target is checked before any is stamped, and the stamp
//! is confirmed as the design's rule 6 says.
//!
//! Exit codes: 0 stamped (or already at the revision); 1 refused (the schema differs, or `head`
//! is ambiguous because the scripts have several heads) or failed; 2 usage error or a refused
//! confirmation.

use std::{collections::BTreeMap, fmt, io::IsTerminal, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio_postgres::Client;
use xshell::Shell;

use crate::{
    alembic::{self, AlembicConfig},
    backend_dir,
    config::{Database, DbUrl, Side},
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::{Interrupted, UsageError},
    interrupt,
    pg::{
        client,
        ident::{quote_ident, shown_ident, QualifiedName},
        lock::{self, DbLock},
    },
    runtime::Runtime,
    verify::{
        self,
        catalog::{self, Measures, Snapshot, TableMeasure},
        Endpoint, SchemaObject, TableStatus,
    },
};

/// How the schema built from the migrations is named in comparisons.
const MIGRATIONS: &str = "migrations";
/// The throwaway database is the target's name plus this (cut to PostgreSQL's 63 bytes).
const SCRATCH_SUFFIX: &str = "_xtask_stamp_check";

/// Which Alembic config(s) a command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfigChoice {
    /// alembic.ini, the Core database
    Core,
    /// alembic_ai.ini, the AI database
    Ai,
    /// both (AI left out with --core-only)
    Both,
}

#[derive(Args, Debug)]
pub struct AlembicStamp {
    /// The revision to record: `head` (the single head), `heads` (every head, when the history
    /// has unmerged branches), or a revision id
    #[arg(long, value_name = "REV", default_value = "head")]
    pub revision: String,
    /// Which Alembic config(s) to stamp: core (alembic.ini), ai (alembic_ai.ini) or both
    #[arg(long, value_enum, value_name = "CONFIG", default_value_t = ConfigChoice::Both)]
    pub config: ConfigChoice,
    /// Stamp the remote (Railway) databases instead of the local ones
    #[arg(long)]
    pub remote: bool,
    /// Stamp even when the schema does not match the revision's (what differs is printed as a
    /// warning)
    #[arg(long)]
    pub force: bool,
    /// Check and print what would be stamped; stamp nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// One database to stamp.
struct Target {
    db: Database,
    side: Side,
    url: DbUrl,
    alembic: AlembicConfig,
}

impl Target {
    /// `local core`
    fn name(&self) -> String {
        format!("{} {}", self.side.label(), self.db.label())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Finding {
    /// The migrations create it; the target does not have it.
    Missing,
    /// The target has it; the migrations do not create it.
    Extra,
    /// Both have it, differently.
    Differs,
}

/// One way in which the target's schema is not the migrations' schema at the revision.
#[derive(Clone, Debug, Serialize)]
struct Problem {
    problem: Finding,
    /// table | column | constraint | index | extension
    kind: String,
    object: String,
    detail: String,
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
struct Checked {
    /// What the migrations record at the revision (read from the throwaway database after the
    /// upgrade): exactly what gets stamped.
    revisions: Vec<String>,
    /// The target's revisions now; `None` when it has no `alembic_version` table.
    before: Option<Vec<String>>,
    /// Tables the migrations create up to the revision (`alembic_version` left out).
    tables: usize,
    problems: Vec<Problem>,
    /// Differences that do not stop a stamp (an extra extension, another extension version).
    notes: Vec<String>,
}

impl Checked {
    fn already_stamped(&self) -> bool {
        self.before
            .as_ref()
            .is_some_and(|b| sorted(b) == sorted(&self.revisions))
    }
}

/// One target, locked, with the outcome of its check.
struct Plan {
    target: Target,
    /// Held until the command ends: no other xtask command works on this database meanwhile.
    _lock: DbLock,
    /// `Err` only with `--force`: the check could not run, and the stamp goes ahead anyway.
    check: Result<Checked, String>,
}

impl Plan {
    fn refused(&self) -> bool {
        matches!(&self.check, Ok(c) if !c.problems.is_empty())
    }

    /// The revisions to stamp: the checked ones, or the requested one when there was no check.
    fn stamp_revisions<'a>(&'a self, requested: &'a str) -> Vec<&'a str> {
        match &self.check {
            Ok(c) if !c.revisions.is_empty() => c.revisions.iter().map(String::as_str).collect(),
            _ => vec![requested],
        }
    }
}

/// The `--json` report: one object per database.
#[derive(Serialize)]
struct JsonReport {
    /// Every database is at the revision now (stamped, or already there).
    stamped: bool,
    dry_run: bool,
    force: bool,
    revision: String,
    databases: Vec<JsonDatabase>,
}

#[derive(Serialize)]
struct JsonDatabase {
    database: Database,
    side: Side,
    config: &'static str,
    url: String,
    /// `null`: no alembic_version table (or not read, when the check could not run).
    before: Option<Vec<String>>,
    /// What is (or would be) stamped.
    revisions: Vec<String>,
    /// `null` when the check could not run (`--force` only).
    schema_matches: Option<bool>,
    problems: Vec<Problem>,
    notes: Vec<String>,
    check_error: Option<String>,
    /// stamped | already_at_revision | would_stamp | refused | not_stamped
    action: &'static str,
    /// The revisions read back after stamping.
    after: Option<Vec<String>>,
}

impl AlembicStamp {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        // Ctrl-C stops the checks' Alembic, drops their throwaway databases and stamps nothing.
        interrupt::install();
        let config = ctx.config()?;
        let revision = self.revision.trim().to_string();
        if revision.is_empty()
            || revision.starts_with('-')
            || revision.contains(char::is_whitespace)
        {
            return Err(UsageError::new(format!(
                "--revision {:?} is not a revision: give `head`, `heads` or a revision id",
                self.revision
            ))
            .into());
        }
        let side = if self.remote {
            Side::Remote
        } else {
            Side::Local
        };
        let databases = match self.config {
            ConfigChoice::Core => vec![Database::Core],
            ConfigChoice::Ai if config.core_only => {
                return Err(UsageError::new("--config ai contradicts --core-only").into())
            }
            ConfigChoice::Ai => vec![Database::Ai],
            ConfigChoice::Both => config.databases(),
        };
        // Every URL first: a missing one is a usage error before any work.
        let mut targets = Vec::new();
        for db in databases {
            targets.push(Target {
                db,
                side,
                url: config.require_url(side, db)?.clone(),
                alembic: AlembicConfig::of(db),
            });
        }
        let backend = backend_dir();
        let timeout = ctx.timeout();
        let json = config.json;
        let say = |line: &str| {
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        };
        let progress = !json && std::io::stderr().is_terminal();

        // One runtime for the whole command: the locks live on its connections.
        let rt = &ctx.rt;

        // Check every target (at once, each in its own thread) before stamping any.
        let checked: Vec<Result<Plan>> = std::thread::scope(|s| {
            let tasks: Vec<_> = targets
                .into_iter()
                .map(|target| {
                    let (this, rt, revision, backend) =
                        (&self, &rt, revision.as_str(), backend.as_path());
                    s.spawn(move || {
                        let sh = Shell::new().context("starting a shell")?;
                        if revision == "head" {
                            single_head(&sh, &target, backend)?;
                        }
                        this.prepare(&sh, rt, target, revision, backend, timeout, progress)
                    })
                })
                .collect();
            tasks
                .into_iter()
                .map(|t| t.join().expect("a check thread panicked"))
                .collect()
        });
        let plans = checked
            .into_iter()
            .collect::<Result<Vec<Plan>>>()
            .map_err(|e| {
                if interrupt::interrupted() {
                    interrupted_in_check(&e)
                } else {
                    e
                }
            })?;
        // With --force a check that could not run does not stop the stamp; Ctrl-C does.
        if interrupt::interrupted() {
            return Err(interrupted_in_check(&anyhow::anyhow!("the schema checks")));
        }
        for plan in &plans {
            for line in describe(plan, &revision) {
                say(&line);
            }
        }

        let mut report = JsonReport {
            stamped: false,
            dry_run: self.dry_run,
            force: self.force,
            revision: revision.clone(),
            databases: plans.iter().map(|p| json_database(p, &revision)).collect(),
        };
        let print_json = |report: &JsonReport| {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(report).expect("the report serializes")
                );
            }
        };

        let refused: Vec<&Plan> = plans.iter().filter(|p| p.refused()).collect();
        if !refused.is_empty() && !self.force {
            for d in &mut report.databases {
                d.action = if d.schema_matches == Some(false) {
                    "refused"
                } else {
                    "not_stamped"
                };
            }
            print_json(&report);
            return Err(refusal(&refused, &revision));
        }
        for plan in &refused {
            eprintln!(
                "warning: --force: stamping {} although its schema does not match the \
                 migrations' at {revision} ({}); the app may fail on what differs",
                plan.target.name(),
                count_problems(plan),
            );
        }
        for plan in &plans {
            if let Err(e) = &plan.check {
                eprintln!(
                    "warning: --force: stamping {} without checking its schema, because the \
                     check could not run: {e}",
                    plan.target.name()
                );
            }
        }

        let todo: Vec<usize> = (0..plans.len())
            .filter(|&i| !matches!(&plans[i].check, Ok(c) if c.already_stamped()))
            .collect();
        for (i, plan) in plans.iter().enumerate() {
            if !todo.contains(&i) {
                say(&format!(
                    "{} {}: already at {}; nothing to stamp",
                    plan.target.name(),
                    plan.target.url.dbname(),
                    plan.stamp_revisions(&revision).join(", ")
                ));
                report.databases[i].action = "already_at_revision";
            }
        }
        if self.dry_run {
            for &i in &todo {
                let plan = &plans[i];
                say(&format!(
                    "would stamp {} {}: {} -> {} (--dry-run: nothing was changed)",
                    plan.target.name(),
                    plan.target.url.dbname(),
                    before_text(&plan.check),
                    plan.stamp_revisions(&revision).join(", ")
                ));
                report.databases[i].action = "would_stamp";
            }
            print_json(&report);
            return Ok(());
        }

        // Confirm every stamp, then stamp: a refusal leaves every database as it was.
        for &i in &todo {
            let plan = &plans[i];
            confirm_destructive(
                &format!(
                    "stamp {} database {} at {} (rewrites alembic_version only; no migration \
                     runs)",
                    plan.target.name(),
                    plan.target.url.dbname(),
                    plan.stamp_revisions(&revision).join(", ")
                ),
                plan.target.url.dbname(),
                config.yes,
            )?;
        }
        let stamped: Vec<(usize, Result<Vec<String>>)> = std::thread::scope(|s| {
            let tasks: Vec<_> = todo
                .iter()
                .map(|&i| {
                    let (plan, rt, revision, backend) =
                        (&plans[i], &rt, revision.as_str(), backend.as_path());
                    (
                        i,
                        s.spawn(move || stamp(plan, rt, revision, backend, timeout)),
                    )
                })
                .collect();
            tasks
                .into_iter()
                .map(|(i, t)| (i, t.join().expect("a stamp thread panicked")))
                .collect()
        });
        let mut failures = Vec::new();
        for (i, outcome) in stamped {
            let plan = &plans[i];
            match outcome {
                Ok(after) => {
                    say(&format!(
                        "stamped {} {}: {} -> {} (alembic_version only; no migration ran)",
                        plan.target.name(),
                        plan.target.url.dbname(),
                        before_text(&plan.check),
                        after.join(", ")
                    ));
                    report.databases[i].action = "stamped";
                    report.databases[i].after = Some(after);
                }
                Err(e) => failures.push(e),
            }
        }
        if let Some(first) = failures.into_iter().next() {
            print_json(&report);
            return Err(first);
        }
        report.stamped = true;
        print_json(&report);
        Ok(())
    }

    /// Locks the target, then checks it. Without `--force` a check that cannot run is an error.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        sh: &Shell,
        rt: &Runtime,
        target: Target,
        revision: &str,
        backend: &Path,
        timeout: Duration,
        progress: bool,
    ) -> Result<Plan> {
        let server = target.url.with_dbname("postgres");
        let lock = rt
            .block_on(lock::acquire(
                &server,
                target.url.dbname(),
                "alembic-stamp",
                timeout,
            ))
            .with_context(|| format!("locking {} for the stamp", target.name()))?;
        let check = match check(
            sh,
            rt,
            &target,
            lock.client(),
            revision,
            backend,
            timeout,
            progress,
        ) {
            Ok(checked) => Ok(checked),
            Err(e) if self.force => Err(format!("{e:#}")),
            Err(e) => {
                return Err(e.context(format!(
                    "checking {} against the migrations at {revision} (--force stamps without \
                     this check); nothing was stamped",
                    target.name()
                )))
            }
        };
        Ok(Plan {
            target,
            _lock: lock,
            check,
        })
    }
}

/// Ctrl-C during the checks: nothing was stamped, and the throwaway databases were dropped
/// (`Scratch`; a drop that failed has printed its own warning).
fn interrupted_in_check(e: &anyhow::Error) -> anyhow::Error {
    Interrupted(format!(
        "alembic-stamp interrupted: {e:#}\n  nothing was stamped: alembic_version is as it was, \
         and the throwaway check database is dropped (a warning above names one that could not \
         be)\n  to finish: run the same alembic-stamp again"
    ))
    .into()
}

/// `head` must name one revision: with unmerged branches it names none, and a merge revision is
/// needed.
fn single_head(sh: &Shell, target: &Target, backend: &Path) -> Result<()> {
    let heads = target.alembic.heads(sh, backend)?;
    if heads.len() > 1 {
        bail!(
            "{} has {} heads ({}), so `head` names no single revision: a merge revision is \
             needed to join them. Create it in backend/ with `{}`, then upgrade to it; or stamp \
             every head with --revision heads. Nothing was stamped",
            target.alembic.ini(),
            heads.len(),
            heads.join(", "),
            target.alembic.merge_command(&heads),
        );
    }
    Ok(())
}

/// Stamps one target and reads its `alembic_version` back: the revisions it holds now, which must
/// be the checked ones.
fn stamp(
    plan: &Plan,
    rt: &Runtime,
    revision: &str,
    backend: &Path,
    timeout: Duration,
) -> Result<Vec<String>> {
    let target = &plan.target;
    let sh = Shell::new().context("starting a shell")?;
    target
        .alembic
        .stamp(&sh, backend, &target.url, &plan.stamp_revisions(revision))
        .with_context(|| format!("stamping {}", target.name()))?;
    let after = rt
        .block_on(read_revisions(&target.url, timeout))
        .with_context(|| format!("reading back the alembic_version of {}", target.name()))?
        .unwrap_or_default();
    if let Ok(checked) = &plan.check {
        if sorted(&after) != sorted(&checked.revisions) {
            bail!(
                "{} was stamped, but its alembic_version reads {} instead of {}",
                target.name(),
                revisions_text(Some(&after)),
                checked.revisions.join(", ")
            );
        }
    }
    Ok(after)
}

/// Builds the migrations' schema at `revision` in a throwaway database on the target's server,
/// reads both schemas and compares them. The throwaway database is dropped in every case.
#[allow(clippy::too_many_arguments)]
fn check(
    sh: &Shell,
    rt: &Runtime,
    target: &Target,
    admin: &Client,
    revision: &str,
    backend: &Path,
    timeout: Duration,
    progress: bool,
) -> Result<Checked> {
    let name = scratch_name(target.url.dbname());
    let scratch_url = target.url.with_dbname(&name);
    if progress {
        eprintln!(
            "alembic-stamp: building {} at {revision} in the throwaway database {name}...",
            target.alembic.ini()
        );
    }
    let scratch = Scratch::create(rt, admin, &target.url, &name)?;
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
        .upgrade(sh, backend, &scratch_url, revision)
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
    let candidates = printed_differently(&expected, &actual);
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

/// Where a definition that both sides have lives, to re-create it.
enum Definition {
    Constraint {
        table: QualifiedName,
        name: String,
    },
    Index {
        index: QualifiedName,
    },
    Default {
        table: QualifiedName,
        column: String,
    },
}

/// A definition that both sides have but print differently. A dump and restore does that: the
/// server deparses `x IN ('a', 'b')` as `x = ANY ((ARRAY['a'::varchar, ...])::text[])`, and the
/// restored copy parses that text into `x = ANY (ARRAY[('a'::varchar)::text, ...])`.
struct Candidate {
    what: Definition,
    kind: SchemaObject,
    /// As the comparison names it: `public.positions.ck_positions_position_type`.
    object: String,
    expected: String,
    actual: String,
}

fn printed_differently(expected: &Snapshot, actual: &Snapshot) -> Vec<Candidate> {
    let (e, a) = (&expected.catalog, &actual.catalog);
    let mut out = Vec::new();
    for (name, et) in &e.tables {
        let Some(at) = a.tables.get(name) else {
            continue;
        };
        for (con, ec) in &et.constraints {
            match at.constraints.get(con) {
                Some(ac) if ac.definition != ec.definition => out.push(Candidate {
                    what: Definition::Constraint {
                        table: name.clone(),
                        name: con.clone(),
                    },
                    kind: SchemaObject::Constraint,
                    object: format!("{name}.{}", shown_ident(con)),
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
                        what: Definition::Default {
                            table: name.clone(),
                            column: col.clone(),
                        },
                        kind: SchemaObject::Column,
                        object: format!("{name}.{}", shown_ident(col)),
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
        let invalid = |d: &str| d.ends_with(" (INVALID)");
        if ai.definition != ei.definition
            && !invalid(&ai.definition)
            && !invalid(&ei.definition)
            && e.tables.contains_key(&ei.table)
            && a.tables.contains_key(&ai.table)
        {
            out.push(Candidate {
                what: Definition::Index {
                    index: name.clone(),
                },
                kind: SchemaObject::Index,
                object: name.to_string(),
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
async fn same_once_recreated(
    scratch: &DbUrl,
    timeout: Duration,
    candidates: Vec<Candidate>,
) -> Result<Vec<Candidate>> {
    let mut conn = client::connect(scratch, timeout).await?;
    let mut same = Vec::new();
    for c in candidates {
        let expected = recreate(&mut conn, &c.what, &c.expected).await;
        let actual = recreate(&mut conn, &c.what, &c.actual).await;
        if expected.is_some() && expected == actual {
            same.push(c);
        }
    }
    Ok(same)
}

/// Re-creates one definition from its text and returns how the server prints it back; the
/// transaction is rolled back, so the throwaway database keeps the migrations' schema. `None`
/// when the text cannot be re-created there.
async fn recreate(conn: &mut Client, what: &Definition, text: &str) -> Option<String> {
    let tx = conn.transaction().await.ok()?;
    // Printed as the comparison prints it: every name schema-qualified.
    tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
        .await
        .ok()?;
    let printed = match what {
        Definition::Constraint { table, name } => {
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
        Definition::Index { index } => {
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
        Definition::Default { table, column } => {
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
    };
    let _ = tx.rollback().await;
    Some(printed)
}

/// The throwaway database; dropped when this goes out of scope, also on an error.
struct Scratch<'a> {
    rt: &'a Runtime,
    admin: &'a Client,
    server: DbUrl,
    name: String,
    dropped: bool,
}

impl<'a> Scratch<'a> {
    /// Creates it on the target's server through `admin` (a connection to that server's
    /// `postgres` database). One left by a killed run is dropped first: the lock on the target
    /// means no other xtask is using it.
    fn create(rt: &'a Runtime, admin: &'a Client, target: &DbUrl, name: &str) -> Result<Self> {
        let server = target.with_dbname("postgres");
        rt.block_on(admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        )))
        .with_context(|| format!("dropping a leftover throwaway database {name} on {server}"))?;
        rt.block_on(admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(name))))
            .with_context(|| {
                format!(
                    "creating the throwaway database {name} on {server} to build the migrations' \
                     schema in (the user needs CREATEDB)"
                )
            })?;
        Ok(Scratch {
            rt,
            admin,
            server,
            name: name.to_string(),
            dropped: false,
        })
    }

    fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        self.drop_database()
    }

    fn drop_database(&self) -> Result<()> {
        self.rt
            // FORCE: the session of an Alembic that was stopped (Ctrl-C, killed) may still be
            // running its statement there, and would make a plain drop fail.
            .block_on(self.admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            )))
            .with_context(|| {
                format!(
                    "dropping the throwaway database {} on {}",
                    self.name, self.server
                )
            })
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if !self.dropped {
            if let Err(e) = self.drop_database() {
                eprintln!("warning: {e:#}; drop it by hand");
            }
        }
    }
}

/// `<target>_xtask_stamp_check`, with the target's name cut so that the whole fits in
/// PostgreSQL's 63 bytes.
fn scratch_name(target: &str) -> String {
    let mut keep = 63 - SCRATCH_SUFFIX.len();
    if target.len() <= keep {
        return format!("{target}{SCRATCH_SUFFIX}");
    }
    while !target.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{SCRATCH_SUFFIX}", &target[..keep])
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
    let side = target.side.label();
    let comparison = verify::build(
        target.db,
        &Endpoint::new(MIGRATIONS, scratch_url.clone()),
        &Endpoint::new(side, target.url.clone()),
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
            kind: "table".into(),
            object: table.name().to_string(),
            detail,
        });
    }
    let only_migrations = format!("only on {MIGRATIONS}: ");
    let only_target = format!("only on {side}: ");
    for c in same {
        notes.push(format!(
            "{} {} is written differently, as after a dump and restore, but is the same \
             definition once re-created: not a difference",
            c.kind, c.object
        ));
    }
    for d in &comparison.schema_differences {
        let field = match d.kind {
            SchemaObject::Column => "default ",
            _ => "definition ",
        };
        if d.detail.starts_with(field)
            && same
                .iter()
                .any(|c| c.kind == d.kind && c.object == d.object)
        {
            continue;
        }
        let (problem, detail) = if let Some(what) = d.detail.strip_prefix(&only_migrations) {
            (Finding::Missing, what.to_string())
        } else if let Some(what) = d.detail.strip_prefix(&only_target) {
            (
                Finding::Extra,
                format!("{what}; not created by the migrations"),
            )
        } else {
            (Finding::Differs, d.detail.clone())
        };
        if d.kind == SchemaObject::Extension && problem != Finding::Missing {
            notes.push(format!(
                "extension {}: {} (no reason to refuse a stamp)",
                d.object, d.detail
            ));
            continue;
        }
        problems.push(Problem {
            problem,
            kind: d.kind.to_string(),
            object: d.object.clone(),
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

/// The revisions in `alembic_version` of a database, on a connection of its own.
async fn read_revisions(url: &DbUrl, timeout: Duration) -> Result<Option<Vec<String>>> {
    let conn = client::connect(url, timeout).await?;
    alembic::recorded_revisions(&conn, url).await
}

fn sorted(revisions: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = revisions.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

fn revisions_text(revisions: Option<&[String]>) -> String {
    match revisions {
        None => "no alembic_version table".to_string(),
        Some([]) => "no revision (alembic_version is empty)".to_string(),
        Some(revs) => revs.join(", "),
    }
}

fn before_text(check: &Result<Checked, String>) -> String {
    match check {
        Ok(c) => revisions_text(c.before.as_deref()),
        Err(_) => "unknown (not checked)".to_string(),
    }
}

/// `1 missing, 2 different` for one target.
fn count_problems(plan: &Plan) -> String {
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
fn describe(plan: &Plan, revision: &str) -> Vec<String> {
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

fn refusal(refused: &[&Plan], revision: &str) -> anyhow::Error {
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
        .filter(|p| matches!(&p.check, Ok(c) if c.already_stamped()))
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

fn json_database(plan: &Plan, revision: &str) -> JsonDatabase {
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
    fn scratch_names_fit_in_63_bytes() {
        assert_eq!(
            scratch_name("sigmasight_db"),
            "sigmasight_db_xtask_stamp_check"
        );
        let long = "é".repeat(40);
        let name = scratch_name(&long);
        assert!(name.len() <= 63, "{}", name.len());
        assert!(name.ends_with(SCRATCH_SUFFIX));
    }

    #[test]
    fn problems_read_as_sentences() {
        let p = Problem {
            problem: Finding::Missing,
            kind: "table".into(),
            object: "public.pairwise_correlations".into(),
            detail: String::new(),
        };
        assert_eq!(p.to_string(), "missing table public.pairwise_correlations");
        let p = Problem {
            problem: Finding::Differs,
            kind: "column".into(),
            object: "public.positions.notes".into(),
            detail: "type text (migrations) vs character varying(20) (local)".into(),
        };
        assert_eq!(
            p.to_string(),
            "column public.positions.notes: type text (migrations) vs character varying(20) \
             (local)"
        );
    }

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
