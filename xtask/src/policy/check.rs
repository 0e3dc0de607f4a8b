//! The policy against the columns that exist: every column classified by a decided rule that its
//! type can take, and no entry for a table or column that does not exist. Pure: the columns are
//! given (from the migrations, `columns`, or from a source).

use std::collections::BTreeSet;
use std::fmt;

use super::{
    columns::{Column, TypeClass},
    toml_key, DbKey, Policy, Rule, TableKey, RULES_HELP, UNDECIDED,
};

/// One thing that keeps the policy from passing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A column with no entry: the line to add under the table's section.
    Unclassified { table: TableKey, column: String },
    /// An entry that `data-policy init` wrote and nobody decided.
    Undecided { table: TableKey, column: String },
    /// A rule the column's type cannot take.
    WrongType {
        table: TableKey,
        column: String,
        rule: Rule,
        why: String,
    },
    /// An entry for a column that the table does not have.
    NoSuchColumn { table: TableKey, column: String },
    /// A section for a table that does not exist.
    NoSuchTable { table: TableKey },
}

/// The line that classifies `column`, as `init` writes it.
pub fn entry_line(column: &str) -> String {
    format!(
        "{} = \"{UNDECIDED}\"  # data-policy init: decide: {RULES_HELP}",
        toml_key(column)
    )
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unclassified { table, column } => write!(
                f,
                "{table}.{column}: no rule; add under {}, with TODO replaced by the rule:\n      {}",
                table.header(),
                entry_line(column)
            ),
            Problem::Undecided { table, column } => write!(
                f,
                "{table}.{column}: not decided (\"{UNDECIDED}\"): under {}, replace \"{UNDECIDED}\" \
                 with {RULES_HELP}",
                table.header()
            ),
            Problem::WrongType {
                table,
                column,
                rule,
                why,
            } => write!(f, "{table}.{column}: rule {rule} {why}"),
            Problem::NoSuchColumn { table, column } => write!(
                f,
                "{table}.{column}: the policy has an entry but the table has no such column: \
                 remove `{}` from {} (or fix its name)",
                toml_key(column),
                table.header()
            ),
            Problem::NoSuchTable { table } => write!(
                f,
                "{table}: the policy has a section {} but there is no such table: remove the \
                 section (or fix its name)",
                table.header()
            ),
        }
    }
}

/// Why `rule` cannot be written into `column`, if it cannot.
fn type_mismatch(rule: &Rule, column: &Column) -> Option<String> {
    let text = column.class == TypeClass::Text;
    match rule {
        Rule::Email | Rule::Name if !text => Some(format!(
            "writes text, and the column is {}: use hash, null, a fixed value or keep",
            column.data_type
        )),
        Rule::Hash if !(text || column.class == TypeClass::Uuid) => Some(format!(
            "writes text or a uuid, and the column is {}: use null, a fixed value or keep",
            column.data_type
        )),
        Rule::Null if column.not_null => Some(
            "cannot be applied: the column is NOT NULL; use a fixed value, hash or keep"
                .to_string(),
        ),
        _ => None,
    }
}

/// Every problem of `policy` against the columns of each database, sorted (tables, then columns).
/// `databases` lists which sections are checked: a section of a database not given is left alone.
pub fn check(policy: &Policy, databases: &[(DbKey, &[Column])]) -> Vec<Problem> {
    let mut problems = BTreeSet::new();
    for (db, columns) in databases {
        let mut tables = BTreeSet::new();
        for column in *columns {
            let table = column.table_key(*db);
            tables.insert(table.clone());
            let name = column.name.clone();
            match policy.rule(&table, &column.name) {
                None => problems.insert(Problem::Unclassified {
                    table,
                    column: name,
                }),
                Some(Rule::Undecided) => problems.insert(Problem::Undecided {
                    table,
                    column: name,
                }),
                Some(rule) => match type_mismatch(rule, column) {
                    Some(why) => problems.insert(Problem::WrongType {
                        table,
                        column: name,
                        rule: rule.clone(),
                        why,
                    }),
                    None => false,
                },
            };
        }
        for (table, entry) in policy.tables.iter().filter(|(t, _)| t.db == *db) {
            if !tables.contains(table) {
                problems.insert(Problem::NoSuchTable {
                    table: table.clone(),
                });
                continue;
            }
            for column in entry.columns.keys() {
                let exists = columns
                    .iter()
                    .any(|c| c.table == table.table && &c.name == column);
                if !exists {
                    problems.insert(Problem::NoSuchColumn {
                        table: table.clone(),
                        column: column.clone(),
                    });
                }
            }
        }
    }
    problems.into_iter().collect()
}
