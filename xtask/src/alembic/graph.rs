//! What the migration scripts say: the revisions of one config and their parents (`alembic
//! history --verbose`), and revision ids as `alembic heads` prints them.

use std::collections::{BTreeMap, BTreeSet};

/// The revisions of one config and their parents, as `alembic history --verbose` prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionGraph {
    /// Every revision with the revisions it comes after (`down_revision` and `depends_on`).
    pub parents: BTreeMap<String, Vec<String>>,
    /// The revisions marked `(head)`.
    pub heads: Vec<String>,
}

impl RevisionGraph {
    /// Parses the verbose history: each entry starts with `Rev: <id> [(head)] ...`, followed by
    /// `Parent: <ids>|<base>` or `Merges: <ids>`, maybe `Also depends on: <ids>`; the script's
    /// docstring is indented, so it can never be read as one of these lines.
    pub fn parse(output: &str) -> RevisionGraph {
        let mut graph = RevisionGraph::default();
        let mut current: Option<String> = None;
        let ids = |list: &str| -> Vec<String> {
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != "<base>")
                .map(str::to_string)
                .collect()
        };
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("Rev: ") {
                let mut words = rest.split_whitespace();
                let Some(id) = words.next() else { continue };
                if words.any(|w| w == "(head)") {
                    graph.heads.push(id.to_string());
                }
                graph.parents.entry(id.to_string()).or_default();
                current = Some(id.to_string());
            } else if let Some(list) = line
                .strip_prefix("Parent: ")
                .or_else(|| line.strip_prefix("Merges: "))
                .or_else(|| line.strip_prefix("Also depends on: "))
            {
                if let Some(id) = &current {
                    graph
                        .parents
                        .entry(id.clone())
                        .or_default()
                        .extend(ids(list));
                }
            }
        }
        graph
    }

    pub fn contains(&self, revision: &str) -> bool {
        self.parents.contains_key(revision)
    }

    /// How many migrations `upgrade heads` would run on a database at `current` (empty: a
    /// database that was never stamped): every revision that is not `current` or one of its
    /// ancestors. `Err` lists the revisions of `current` that the scripts do not know.
    pub fn pending(&self, current: &[String]) -> Result<usize, Vec<String>> {
        let unknown: Vec<String> = current
            .iter()
            .filter(|r| !self.contains(r))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut applied: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = current.iter().map(String::as_str).collect();
        while let Some(rev) = stack.pop() {
            if applied.insert(rev) {
                if let Some(parents) = self.parents.get(rev) {
                    stack.extend(parents.iter().map(String::as_str));
                }
            }
        }
        Ok(self
            .parents
            .keys()
            .filter(|r| !applied.contains(r.as_str()))
            .count())
    }
}

/// Revision ids from `alembic heads` / `alembic current` output: `abc123 (head)` per line.
pub fn parse_revisions(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|tok| tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect()
}
