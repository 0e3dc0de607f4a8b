//! `cargo xtask onboard`: everything a new hire's setup decides once the tools are there
//! (`scripts/onboard.sh` checks and installs those, then hands over here). Creates .env from
//! .env.example when missing, starts the local PostgreSQL 17 + pgvector container, creates and
//! migrates both local databases, fills them from Railway (RAILWAY_DB_URL) or else from a sandbox
//! "remote" on the same server (seeded here), and checks the result the way db-verify does.
//!
//! Idempotent: an existing .env is kept, the container and databases are reused, a seeded
//! sandbox is not seeded again, and no pull runs when the local databases already equal their
//! source. The other commands run in-process (their `run` on their own args), so URLs stay in
//! memory: none is put on a command line or shown with its password.
//!
//! Exit codes: 0 done; 1 a step failed; 2 usage (an unparsable URL, a refused confirmation).

mod container;
pub mod plan;

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{
    commands::{
        db_init::DbInit,
        db_pull::DbPull,
        db_verify::verify_all,
        seed::{Seed, Target},
    },
    config::{Database, DbArgs, DbUrl, Side},
    ctx::Ctx,
    pg::{client, scratch},
    project_root,
    transfer::{CopyArgs, SchemaMode},
    verify::{report::Report, Endpoint},
};
use plan::{
    DbState, EnvState, Plan, PullDecision, SandboxAction, Settings, SourceKind, Summary,
    SANDBOX_AI_DB, SANDBOX_DB,
};

#[derive(Args, Debug)]
pub struct Onboard {
    /// The checkout whose .env (created from its .env.example when missing) and
    /// backend/docker-compose.yml onboarding uses [default: the repo root]
    #[arg(long, env = "XTASK_ONBOARD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl Onboard {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let args = ctx.args();
        let root = self.root.unwrap_or_else(project_root);
        // --env-file names the .env to keep (main has already required it to exist).
        let env_file = args.env_file.clone().unwrap_or_else(|| root.join(".env"));
        let terminal = std::io::stdin().is_terminal();
        onboard(ctx, &root, &env_file, terminal)
    }
}

fn step(text: &str) {
    eprintln!("\n==> {text}");
}

fn say(text: &str) {
    eprintln!("onboard: {text}");
}

/// Steps 2 to 5 of onboarding (step 1, the prerequisites, is the shell script's).
pub fn onboard(ctx: &Ctx, root: &Path, env_file: &Path, terminal: bool) -> Result<()> {
    let (sh, args) = (&ctx.sh, ctx.args());
    step("2/5 .env");
    let env = ensure_env_file(root, env_file)?;
    let file = plan::read_env_file(env_file)?;
    let get = |given: &Option<String>, key: &str| plan::setting(given.as_deref(), &file, key);
    let plan = plan::plan(&Settings {
        local: get(&args.local_url, "DATABASE_URL"),
        local_ai: get(&args.local_ai_url, "AI_DATABASE_URL"),
        remote: get(&args.remote_url, "RAILWAY_DB_URL"),
        remote_ai: get(&args.remote_ai_url, "RAILWAY_AI_DB_URL"),
    })?;
    match plan.kind {
        SourceKind::Railway => say(&format!(
            "source: Railway ({}, {})",
            plan.source, plan.source_ai
        )),
        SourceKind::Sandbox => say(&format!(
            "source: the embedded default, a sandbox \"remote\" on the local server \
             ({SANDBOX_DB}, {SANDBOX_AI_DB}); set RAILWAY_DB_URL and RAILWAY_AI_DB_URL in .env \
             to pull from Railway instead"
        )),
    }

    step("3/5 local databases");
    let container = container::ensure(sh, root, args.container.as_deref(), &plan.local)?;
    say(&format!(
        "container {} is running ({}, localhost:{})",
        container.name,
        plan::IMAGE,
        plan.local.port()
    ));
    say("db-init: create the local databases and the vector extension when missing, migrate both to head");
    let local_args = with_urls(args, (&plan.local, &plan.local_ai), None, false);
    DbInit {}
        .run(&ctx.with_args(local_args)?)
        .context("db-init of the local databases")?;

    step("4/5 fill the local databases");
    let (states, summary) = match plan.kind {
        SourceKind::Sandbox => fill_sandbox(ctx, &plan)?,
        SourceKind::Railway => compare(ctx, &plan)?,
    };
    if plan::replaces_data(&states) {
        say(&summary);
    }
    let pulled = match plan::pull_decision(&states, args.yes, terminal)? {
        PullDecision::Skip => {
            say("the local databases already equal the source: no pull needed");
            false
        }
        PullDecision::Pull {
            yes,
            no_backup,
            replaces_data,
        } => {
            if replaces_data && !yes {
                say("the local databases hold data that differs from the source (above): db-pull asks before replacing each one (a backup goes to backups/ first)");
            }
            say(&format!(
                "db-pull{}{} (source -> local, both databases)",
                if yes { " --yes" } else { "" },
                if no_backup { " --no-backup" } else { "" }
            ));
            pull(ctx, &plan, yes, no_backup).context("db-pull from the source")?;
            true
        }
    };

    step("5/5 check");
    let report = verify(ctx, &plan)?;
    print!("{}", report.render_human());
    let summary = report.summary();
    println!("\n{summary}");
    let states = plan::digest(&report)?;
    if !report.equal {
        bail!(
            "db-verify found the local databases different from the source ({summary}; see above)"
        );
    }

    let hooks = crate::git::hooks_path(sh, root);
    let compose = container.compose.as_ref().map(|c| c.join(" "));
    eprintln!("\nonboard: done. What is where:");
    for line in plan::summary_lines(&Summary {
        container: &container.name,
        compose: compose.as_deref(),
        local_port: plan.local.port(),
        states: &states,
        plan: &plan,
        pulled,
        env,
        hooks: hooks.as_deref(),
    }) {
        eprintln!("{line}");
    }
    Ok(())
}

/// An existing .env is kept as it is; a missing one is copied from .env.example.
fn ensure_env_file(root: &Path, env_file: &Path) -> Result<EnvState> {
    if env_file.exists() {
        say(&format!("{} exists: kept as it is", shown(root, env_file)));
        return Ok(EnvState::Kept);
    }
    let example = root.join(".env.example");
    std::fs::copy(&example, env_file)
        .with_context(|| format!("creating {} from {}", env_file.display(), example.display()))?;
    say(&format!(
        "created {} from .env.example",
        shown(root, env_file)
    ));
    Ok(EnvState::Created)
}

/// A path relative to the checkout when it is inside it (`.env`), else as given.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// The shared flags of a sub-command: the caller's, with these URLs (in memory only) and `--yes`.
fn with_urls(
    args: &DbArgs,
    local: (&DbUrl, &DbUrl),
    remote: Option<(&DbUrl, &DbUrl)>,
    yes: bool,
) -> DbArgs {
    DbArgs {
        local_url: Some(local.0.to_secret_uri()),
        local_ai_url: Some(local.1.to_secret_uri()),
        remote_url: remote.map(|r| r.0.to_secret_uri()),
        remote_ai_url: remote.map(|r| r.1.to_secret_uri()),
        core_only: false,
        yes,
        json: false,
        ..args.clone()
    }
}

/// db-init and, once, the seed on the sandbox; returns its comparison with the local databases.
fn fill_sandbox(ctx: &Ctx, plan: &Plan) -> Result<(Vec<DbState>, String)> {
    let sandbox = ctx.with_args(with_urls(
        ctx.args(),
        (&plan.source, &plan.source_ai),
        None,
        false,
    ))?;
    say(&format!(
        "the sandbox: db-init on {SANDBOX_DB} and {SANDBOX_AI_DB}"
    ));
    DbInit {}.run(&sandbox).context("db-init of the sandbox")?;
    let compared = compare(ctx, plan)?;
    match plan::sandbox_action(&compared.0) {
        SandboxAction::Keep { core_rows, ai_rows } => {
            say(&format!(
                "the sandbox already holds data (core {core_rows} rows, ai {ai_rows} rows): not seeded again"
            ));
            return Ok(compared);
        }
        SandboxAction::Recreate { core_rows, ai_rows } => {
            say(&format!(
                "the sandbox is half seeded (core {core_rows} rows, ai {ai_rows} rows; an interrupted run?): recreating it"
            ));
            drop_databases(ctx, &[&plan.source, &plan.source_ai])?;
            DbInit {}
                .run(&sandbox)
                .context("db-init of the recreated sandbox")?;
        }
        SandboxAction::Seed => {}
    }
    say("seed --target local (on the sandbox): the production shape, deterministic");
    Seed {
        scale: 1,
        target: Target::Local,
    }
    .run(&sandbox)
    .context("seeding the sandbox")?;
    compare(ctx, plan)
}

/// Drops databases (ending their sessions), connected to the server's `postgres` database.
fn drop_databases(ctx: &Ctx, urls: &[&DbUrl]) -> Result<()> {
    ctx.block_on(async {
        for url in urls {
            let admin_url = url.with_dbname("postgres");
            let admin = client::connect(&admin_url, ctx.timeout()).await?;
            scratch::drop_database(&admin, url.dbname())
                .await
                .with_context(|| format!("dropping database {} on {admin_url}", url.dbname()))?;
        }
        anyhow::Ok(())
    })
}

/// Source (left) against local (right), both databases, as db-verify compares them.
fn verify(ctx: &Ctx, plan: &Plan) -> Result<Report> {
    let targets = [
        (Database::Core, &plan.source, &plan.local),
        (Database::Ai, &plan.source_ai, &plan.local_ai),
    ]
    .into_iter()
    .map(|(db, source, local)| {
        (
            db,
            Endpoint::new(Side::Remote.label(), source.clone()),
            Endpoint::new(Side::Local.label(), local.clone()),
        )
    })
    .collect();
    let outcomes = ctx.block_on(verify_all(targets, false, Vec::new(), ctx.timeout()));
    Ok(Report::new(false, outcomes))
}

/// `verify`, digested, with db-verify's summary line; a database that could not be compared
/// fails onboarding.
fn compare(ctx: &Ctx, plan: &Plan) -> Result<(Vec<DbState>, String)> {
    let report = verify(ctx, plan)?;
    Ok((plan::digest(&report)?, report.summary()))
}

fn pull(ctx: &Ctx, plan: &Plan, yes: bool, no_backup: bool) -> Result<()> {
    let pull_args = with_urls(
        ctx.args(),
        (&plan.local, &plan.local_ai),
        Some((&plan.source, &plan.source_ai)),
        yes,
    );
    DbPull {
        copy: CopyArgs {
            schema: SchemaMode::Migrations,
            allow_revision_mismatch: false,
            no_backup,
            dry_run: false,
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            checksums: false,
            jobs: 1,
            // Onboarding never leaves anything out on its own: a refusal names the flag.
            allow_uncopyable: false,
        },
        terminate_connections: false,
        // Onboarding always masks: a laptop gets production's data only through the policy.
        unmasked: false,
        fallback_mask_key: match plan.kind {
            SourceKind::Sandbox => Some(plan::SANDBOX_MASK_KEY),
            SourceKind::Railway => None,
        },
    }
    .run(&ctx.with_args(pull_args)?)
}
