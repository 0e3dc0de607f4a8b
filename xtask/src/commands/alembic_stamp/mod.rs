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

mod check;
mod report;
mod stamp;

use std::{path::Path, time::Duration};

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Config, Database, DbUrl, Side},
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    runtime::Runtime,
};
use report::{before_text, count_problems, describe, json_database, refusal, JsonReport};
use stamp::{check_all, Plan};

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

/// What every target's check and stamp share; the threads that check and stamp borrow it.
struct StampCtx<'a> {
    /// The command's one runtime: the locks live on its connections.
    rt: &'a Runtime,
    backend: &'a Path,
    /// As requested (`head`, `heads` or an id), trimmed.
    revision: &'a str,
    timeout: Duration,
    /// Progress lines on a terminal (never with --json).
    progress: bool,
    force: bool,
}

/// Where the lines for people go: stdout, or stderr when stdout carries the JSON report.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn say(self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn report(self, report: &JsonReport) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(report).expect("the report serializes")
            );
        }
    }
}

impl AlembicStamp {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        // Ctrl-C stops the checks' Alembic, drops their throwaway databases and stamps nothing.
        interrupt::install();
        let config = ctx.config()?;
        let revision = self.requested_revision()?;
        let targets = self.targets(config)?;
        let backend = backend_dir();
        let out = Out { json: config.json };
        let run = StampCtx {
            rt: &ctx.rt,
            backend: &backend,
            revision: &revision,
            timeout: ctx.timeout(),
            progress: ctx.out.progress_wanted(),
            force: self.force,
        };

        let plans = check_all(&run, targets)?;
        for plan in &plans {
            for line in describe(plan, &revision) {
                out.say(&line);
            }
        }
        let mut report = JsonReport {
            stamped: false,
            dry_run: self.dry_run,
            force: self.force,
            revision: revision.clone(),
            databases: plans.iter().map(|p| json_database(p, &revision)).collect(),
        };
        self.refuse_or_warn(&plans, &revision, &mut report, out)?;
        let todo = skip_already_stamped(&plans, &revision, &mut report, out);
        if self.dry_run {
            say_would_stamp(&plans, &todo, &revision, &mut report, out);
            out.report(&report);
            return Ok(());
        }
        // Confirm every stamp, then stamp: a refusal leaves every database as it was.
        confirm_all(&plans, &todo, &revision, config.yes)?;
        let stamped = stamp_all(&run, &plans, &todo, &mut report, out);
        if stamped.is_ok() {
            report.stamped = true;
        }
        out.report(&report);
        stamped
    }

    /// `--revision`, trimmed: one word that is not a flag.
    fn requested_revision(&self) -> Result<String> {
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
        Ok(revision)
    }

    /// The databases to stamp, each with its URL: a missing one is a usage error before any work.
    fn targets(&self, config: &Config) -> Result<Vec<Target>> {
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
        databases
            .into_iter()
            .map(|db| {
                Ok(Target {
                    db,
                    side,
                    url: config.require_url(side, db)?.clone(),
                    alembic: AlembicConfig::of(db),
                })
            })
            .collect()
    }

    /// Without `--force`, a schema that does not match refuses every stamp (the report says
    /// which); with it, each stamp that goes ahead regardless is warned about.
    fn refuse_or_warn(
        &self,
        plans: &[Plan],
        revision: &str,
        report: &mut JsonReport,
        out: Out,
    ) -> Result<()> {
        let refused: Vec<&Plan> = plans.iter().filter(|p| p.refused()).collect();
        if !refused.is_empty() && !self.force {
            for d in &mut report.databases {
                d.action = if d.schema_matches == Some(false) {
                    "refused"
                } else {
                    "not_stamped"
                };
            }
            out.report(report);
            return Err(refusal(&refused, revision));
        }
        for plan in &refused {
            eprintln!(
                "warning: --force: stamping {} although its schema does not match the \
                 migrations' at {revision} ({}); the app may fail on what differs",
                plan.target.name(),
                count_problems(plan),
            );
        }
        for plan in plans {
            if let Err(e) = &plan.check {
                eprintln!(
                    "warning: --force: stamping {} without checking its schema, because the \
                     check could not run: {e}",
                    plan.target.name()
                );
            }
        }
        Ok(())
    }
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

/// The targets still to stamp (by index); those already at the revision are said and reported.
fn skip_already_stamped(
    plans: &[Plan],
    revision: &str,
    report: &mut JsonReport,
    out: Out,
) -> Vec<usize> {
    let mut todo = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        if !plan.already_stamped() {
            todo.push(i);
            continue;
        }
        out.say(&format!(
            "{} {}: already at {}; nothing to stamp",
            plan.target.name(),
            plan.target.url.dbname(),
            plan.stamp_revisions(revision).join(", ")
        ));
        report.databases[i].action = "already_at_revision";
    }
    todo
}

/// `--dry-run`: what each stamp would do.
fn say_would_stamp(
    plans: &[Plan],
    todo: &[usize],
    revision: &str,
    report: &mut JsonReport,
    out: Out,
) {
    for &i in todo {
        let plan = &plans[i];
        out.say(&format!(
            "would stamp {} {}: {} -> {} (--dry-run: nothing was changed)",
            plan.target.name(),
            plan.target.url.dbname(),
            before_text(&plan.check),
            plan.stamp_revisions(revision).join(", ")
        ));
        report.databases[i].action = "would_stamp";
    }
}

/// Each stamp confirmed as the design's rule 6 says (typed name on a terminal, else `--yes`).
fn confirm_all(plans: &[Plan], todo: &[usize], revision: &str, yes: bool) -> Result<()> {
    for &i in todo {
        let plan = &plans[i];
        confirm_destructive(
            &format!(
                "stamp {} database {} at {} (rewrites alembic_version only; no migration \
                 runs)",
                plan.target.name(),
                plan.target.url.dbname(),
                plan.stamp_revisions(revision).join(", ")
            ),
            plan.target.url.dbname(),
            yes,
        )?;
    }
    Ok(())
}

/// Stamps the targets at once (each in its own thread) and records each stamp that succeeded;
/// the first failure is the error.
fn stamp_all(
    run: &StampCtx,
    plans: &[Plan],
    todo: &[usize],
    report: &mut JsonReport,
    out: Out,
) -> Result<()> {
    let stamped: Vec<(usize, Result<Vec<String>>)> = std::thread::scope(|s| {
        let tasks: Vec<_> = todo
            .iter()
            .map(|&i| {
                let plan = &plans[i];
                (i, s.spawn(move || plan.stamp(run)))
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
                out.say(&format!(
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
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

fn sorted(revisions: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = revisions.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}
