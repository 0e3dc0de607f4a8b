//! The data policy (`backend/data_policy.toml`): for every column of every table of both
//! databases, `keep` or the rule that masks it on its way to a laptop, and per table the rows that
//! stay raw (`keep_where`). This module reads the file into a [`Policy`]; `check` compares it with
//! the migrations' columns (`columns`), `init` writes the entries that are missing for a human to
//! decide. The format is in docs/data-policy.md.

pub mod check;
pub mod columns;
pub mod dump;
pub mod gate;
pub mod init;
pub mod mask;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::PathBuf,
};

use anyhow::{bail, Context, Result};

use crate::config::Database;

/// The policy's file name, in `backend/` next to the Alembic configs.
pub const FILE_NAME: &str = "data_policy.toml";

/// The value that `data-policy init` writes for a column nobody has classified yet: it parses, so
/// the file stays valid, and `check` fails on it until a human writes a rule.
pub const UNDECIDED: &str = "TODO";

/// The table key that holds a table's raw-row condition, beside its columns.
pub const KEEP_WHERE: &str = "keep_where";

/// What the policy says, in words, for an error that asks for a rule.
pub const RULES_HELP: &str = r#"keep, email, name, hash, null, or { fixed = "..." }"#;

/// `backend/data_policy.toml` (under `XTASK_BACKEND_DIR` when set).
pub fn policy_path() -> PathBuf {
    crate::backend_dir().join(FILE_NAME)
}

/// What happens to one column's values on their way out of the source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// Copied as it is.
    Keep,
    /// A fake address, valid and unique, the same for the same input.
    Email,
    /// A fake name, the same for the same input.
    Name,
    /// HMAC-SHA256 of the value keyed by `XTASK_MASK_KEY`: the same input gives the same output
    /// in every table and both databases, so joins and unique keys hold.
    Hash,
    /// This value in every row (e.g. one known password's hash).
    Fixed(String),
    /// NULL in every row.
    Null,
    /// Written by `data-policy init`: a human has not decided yet.
    Undecided,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Keep => f.write_str("keep"),
            Rule::Email => f.write_str("email"),
            Rule::Name => f.write_str("name"),
            Rule::Hash => f.write_str("hash"),
            Rule::Fixed(_) => f.write_str("fixed"),
            Rule::Null => f.write_str("null"),
            Rule::Undecided => f.write_str(UNDECIDED),
        }
    }
}

/// One table's entry: its columns' rules and the rows kept raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePolicy {
    /// A SQL condition on the source's row: rows for which it is true are copied unmasked.
    pub keep_where: Option<String>,
    pub columns: BTreeMap<String, Rule>,
}

impl TablePolicy {
    /// The columns whose rule changes them (every rule but keep): a masked copy's values there
    /// differ from the source's by design.
    pub fn masked_columns(&self) -> BTreeSet<String> {
        self.columns
            .iter()
            .filter(|(_, rule)| !matches!(rule, Rule::Keep))
            .map(|(column, _)| column.clone())
            .collect()
    }
}

/// A table as the policy names it: `users` for `public.users`, `schema.table` otherwise.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableKey {
    pub db: DbKey,
    pub table: String,
}

/// The policy's two top-level sections, in the order they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DbKey {
    Core,
    Ai,
}

impl DbKey {
    pub fn of(db: Database) -> DbKey {
        match db {
            Database::Core => DbKey::Core,
            Database::Ai => DbKey::Ai,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DbKey::Core => "core",
            DbKey::Ai => "ai",
        }
    }
}

impl fmt::Display for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.db.label(), self.table)
    }
}

impl TableKey {
    /// The section header that holds this table's entries, e.g. `[core.users]`.
    pub fn header(&self) -> String {
        format!("[{}.{}]", self.db.label(), toml_key(&self.table))
    }
}

/// A key as TOML writes it: bare when it can be, else a quoted string.
pub fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// The whole policy: every table entry of both databases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub tables: BTreeMap<TableKey, TablePolicy>,
}

impl Policy {
    /// Reads `path`; a missing file is an empty policy (then `check` names every column).
    pub fn load(path: &std::path::Path) -> Result<Option<(Policy, String)>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let policy = Policy::parse(&text).with_context(|| {
            format!(
                "reading the data policy {}: fix the file (format: docs/data-policy.md)",
                path.display()
            )
        })?;
        Ok(Some((policy, text)))
    }

    /// The policy in `text`; every mistake in it named at once.
    pub fn parse(text: &str) -> Result<Policy> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            anyhow::anyhow!("not valid TOML: {}", e.to_string().trim_end())
        })?;
        let mut problems = Vec::new();
        let mut policy = Policy::default();
        for (db_name, tables) in &doc {
            let db = match db_name.as_str() {
                "core" => DbKey::Core,
                "ai" => DbKey::Ai,
                other => {
                    problems.push(format!(
                        "{}: unknown section; the policy has two, [core.TABLE] and [ai.TABLE]",
                        toml_key(other)
                    ));
                    continue;
                }
            };
            let Some(tables) = tables.as_table() else {
                problems.push(format!(
                    "{db_name}: must hold tables, written [{db_name}.TABLE]"
                ));
                continue;
            };
            for (table, entries) in tables {
                let key = TableKey {
                    db,
                    table: table.clone(),
                };
                match parse_table(&key, entries) {
                    Ok(entry) => {
                        policy.tables.insert(key, entry);
                    }
                    Err(mut found) => problems.append(&mut found),
                }
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(policy)
    }

    /// The rule for one column, when the policy has one.
    pub fn rule(&self, table: &TableKey, column: &str) -> Option<&Rule> {
        self.tables.get(table)?.columns.get(column)
    }
}

fn parse_table(key: &TableKey, entries: &toml::Value) -> Result<TablePolicy, Vec<String>> {
    let Some(entries) = entries.as_table() else {
        return Err(vec![format!(
            "{}.{}: must be a table of columns, written {}",
            key.db.label(),
            toml_key(&key.table),
            key.header()
        )]);
    };
    let mut problems = Vec::new();
    let mut table = TablePolicy::default();
    for (column, value) in entries {
        let at = format!("{} {column}", key.header());
        if column == KEEP_WHERE {
            match value.as_str() {
                Some(cond) if !cond.trim().is_empty() => table.keep_where = Some(cond.to_string()),
                _ => problems.push(format!(
                    "{at}: must be a SQL condition on the table's row, as a string, e.g. \
                     keep_where = \"email LIKE 'demo\\\\_%'\""
                )),
            }
            continue;
        }
        match parse_rule(value) {
            Ok(rule) => {
                table.columns.insert(column.clone(), rule);
            }
            Err(why) => problems.push(format!("{at}: {why}; write one of {RULES_HELP}")),
        }
    }
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(problems)
    }
}

fn parse_rule(value: &toml::Value) -> Result<Rule, String> {
    if let Some(word) = value.as_str() {
        return match word {
            "keep" => Ok(Rule::Keep),
            "email" => Ok(Rule::Email),
            "name" => Ok(Rule::Name),
            "hash" => Ok(Rule::Hash),
            "null" => Ok(Rule::Null),
            UNDECIDED => Ok(Rule::Undecided),
            other => Err(format!("{} is not a rule", toml::Value::from(other))),
        };
    }
    if let Some(inline) = value.as_table() {
        let mut keys = inline.keys();
        if let (Some(k), None) = (keys.next(), keys.next()) {
            if k == "fixed" {
                return match inline["fixed"].as_str() {
                    Some(fixed) => Ok(Rule::Fixed(fixed.to_string())),
                    None => Err("fixed takes a string (the value as SQL text)".to_string()),
                };
            }
        }
        return Err(format!("{value} is not a rule"));
    }
    Err(format!("{value} is not a rule (a rule is a string)"))
}
