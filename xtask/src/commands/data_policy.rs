//! `cargo xtask data-policy check | init`: the data policy (`backend/data_policy.toml`) against
//! every column that this checkout's migrations create, in both databases. No remote is read:
//! the columns come from the migrations (cached by their fingerprint, else built once in a
//! throwaway database on the local server, see `policy::columns`).
//!
//! - `check` exits 1 naming each unclassified column with the line to add, each entry that
//!   `init` wrote and nobody decided, each rule the column's type cannot take, and each entry for
//!   a table or column that does not exist; 0 when there is none.
//! - `init` adds an undecided entry for each unclassified column (so `check` still fails until a
//!   human writes the rule); it never changes a line that is there.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::Database,
    ctx::Ctx,
    policy::{
        check::{check, Problem},
        columns::{migrations_columns, Column, Origin},
        init::add_entries,
        policy_path, DbKey, Policy,
    },
};

#[derive(Args, Debug)]
pub struct DataPolicy {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum Action {
    /// Exit 1 naming every column without a decided rule, and every entry for nothing
    Check,
    /// Add an undecided entry ("TODO") for every column without one, for a human to decide
    Init,
}

/// The `--json` document of `check`.
#[derive(Serialize)]
struct JsonReport {
    ok: bool,
    policy: String,
    problems: Vec<String>,
}

/// What a new policy file starts with.
const NEW_FILE_HEAD: &str = "\
# The data policy: how each column of both databases leaves the source on a db-pull.
# One section per table, [core.TABLE] or [ai.TABLE]; one line per column. Rules: keep, email,
# name, hash, null, { fixed = \"...\" }; keep_where = \"SQL\" keeps the matching rows raw.
# Format: docs/data-policy.md. `cargo xtask data-policy check` must pass (the hook and CI run it).
";

impl DataPolicy {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let path = policy_path();
        let loaded = Policy::load(&path)?;
        let backend = backend_dir();
        let mut columns: Vec<(DbKey, Vec<Column>)> = Vec::new();
        for db in [Database::Core, Database::Ai] {
            let config = AlembicConfig::of(db);
            let (cols, origin) = migrations_columns(ctx, config, db, &backend)
                .with_context(|| format!("reading the columns that {} creates", config.ini()))?;
            if let Origin::Built { database } = origin {
                ctx.say(format!(
                    "data-policy: {} built at head in the throwaway database {database} (dropped; \
                     its columns are cached until a migration changes)",
                    config.ini()
                ));
            }
            columns.push((DbKey::of(db), cols));
        }
        let views: Vec<(DbKey, &[Column])> =
            columns.iter().map(|(db, c)| (*db, c.as_slice())).collect();
        let (policy, text) = loaded.clone().unwrap_or_default();
        let problems = check(&policy, &views);
        let shown = path
            .strip_prefix(crate::project_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        match self.action {
            Action::Check => report_check(ctx, &shown, loaded.is_some(), &problems),
            Action::Init => {
                let missing: Vec<_> = problems
                    .iter()
                    .filter_map(|p| match p {
                        Problem::Unclassified { table, column } => {
                            Some((table.clone(), column.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                if missing.is_empty() {
                    ctx.say(format!(
                        "data-policy init: every column has an entry in {shown}; nothing added"
                    ));
                } else {
                    let base = if loaded.is_some() {
                        text
                    } else {
                        NEW_FILE_HEAD.to_string()
                    };
                    let new_text = add_entries(&base, &missing)?;
                    let tmp = path.with_extension(format!("toml.tmp{}", std::process::id()));
                    std::fs::write(&tmp, new_text)
                        .and_then(|()| std::fs::rename(&tmp, &path))
                        .with_context(|| format!("writing {shown}"))?;
                    ctx.say(format!(
                        "data-policy init: {} undecided entries added to {shown} (\"TODO\"): \
                         decide each, then run cargo xtask data-policy check",
                        missing.len()
                    ));
                    for (table, column) in &missing {
                        ctx.say(format!("  {table}.{column}"));
                    }
                }
                let left = problems
                    .iter()
                    .filter(|p| !matches!(p, Problem::Unclassified { .. }))
                    .count();
                if left > 0 {
                    ctx.say(format!(
                        "data-policy init: {left} other problems left for a human (run check)"
                    ));
                }
                Ok(())
            }
        }
    }
}

fn report_check(ctx: &Ctx, shown: &str, exists: bool, problems: &[Problem]) -> Result<()> {
    if ctx.out.json {
        let doc = JsonReport {
            ok: problems.is_empty(),
            policy: shown.to_string(),
            problems: problems.iter().map(ToString::to_string).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    if problems.is_empty() {
        ctx.say(format!(
            "data-policy check: every column of both databases' migrations has a rule in {shown}"
        ));
        return Ok(());
    }
    let mut text = format!(
        "data-policy check: {} problems in {shown} against the migrations' columns",
        problems.len()
    );
    if !exists {
        text.push_str(" (the file does not exist: cargo xtask data-policy init writes it)");
    }
    for problem in problems {
        text.push_str(&format!("\n  - {problem}"));
    }
    text.push_str(
        "\n(cargo xtask data-policy init adds an undecided entry for each column without one)",
    );
    bail!("{text}")
}
