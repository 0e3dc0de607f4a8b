//! `data-policy init`'s edit: an undecided entry (`column = "TODO"`, see `check::entry_line`) for
//! each unclassified column, inserted at the end of its table's section, or in a new section at
//! the end of the file. No line a human wrote is changed, moved or removed: only lines are added.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::{check::entry_line, DbKey, Policy, TableKey};

/// Where each existing section of `text` ends: the index of the line after which its new entries
/// go (its last entry, or the header of an empty section).
fn section_ends(lines: &[&str]) -> BTreeMap<TableKey, usize> {
    let mut ends = BTreeMap::new();
    let mut current: Option<TableKey> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = header_table(trimmed);
            if let Some(table) = &current {
                ends.insert(table.clone(), i);
            }
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            if let Some(table) = &current {
                ends.insert(table.clone(), i);
            }
        }
    }
    ends
}

/// The table a `[core.TABLE]` header names (TOML itself reads the header, quotes and all).
fn header_table(header: &str) -> Option<TableKey> {
    let doc: toml::Table = header.parse().ok()?;
    let (db, tables) = doc.iter().next()?;
    let db = match db.as_str() {
        "core" => DbKey::Core,
        "ai" => DbKey::Ai,
        _ => return None,
    };
    let tables = tables.as_table()?;
    let (table, inner) = tables.iter().next()?;
    (tables.len() == 1 && inner.as_table()?.is_empty()).then(|| TableKey {
        db,
        table: table.clone(),
    })
}

/// `text` with an undecided entry for each of `missing` (table, column); the result is checked to
/// parse. Returns the new text.
pub fn add_entries(text: &str, missing: &[(TableKey, String)]) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let ends = section_ends(&lines);
    let mut after_line: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut new_sections: BTreeMap<&TableKey, Vec<String>> = BTreeMap::new();
    for (table, column) in missing {
        match ends.get(table) {
            Some(&end) => after_line.entry(end).or_default().push(entry_line(column)),
            None => new_sections
                .entry(table)
                .or_default()
                .push(entry_line(column)),
        }
    }
    let mut out = String::with_capacity(text.len() + missing.len() * 80);
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        for added in after_line.get(&i).into_iter().flatten() {
            out.push_str(added);
            out.push('\n');
        }
    }
    for (table, entries) in new_sections {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}  # data-policy init: a table with no entry yet\n",
            table.header()
        ));
        for entry in entries {
            out.push_str(&entry);
            out.push('\n');
        }
    }
    Policy::parse(&out).context(
        "the policy with the new entries does not parse (a bug: the file was left unchanged)",
    )?;
    Ok(out)
}
