//! How alembic-status shows what it found: one line per database, a block per config, and the
//! summary line.

use super::status::{ConfigStatus, DatabaseStatus, DbStatus};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a database's line says about where it stands.
pub(super) fn describe(d: &DatabaseStatus) -> String {
    match d.status {
        DbStatus::AtHead => "at head".to_string(),
        DbStatus::Behind => format!(
            "BEHIND: {} pending",
            plural(d.pending.unwrap_or(0), "migration", "migrations")
        ),
        DbStatus::NotStamped => format!(
            "NOT STAMPED ({}): {} pending",
            if d.revisions.is_none() {
                "no alembic_version table"
            } else {
                "alembic_version is empty"
            },
            plural(d.pending.unwrap_or(0), "migration", "migrations")
        ),
        DbStatus::UnknownRevision => {
            "UNKNOWN REVISION: not in these migration scripts (a newer checkout's? another \
             branch's?)"
                .to_string()
        }
        DbStatus::HeadsUnknown => "not compared: the scripts did not load".to_string(),
        DbStatus::Error => format!("ERROR: {}", d.error.as_deref().unwrap_or("")),
        DbStatus::NotConfigured => format!(
            "not configured ({}): not checked",
            d.error.as_deref().unwrap_or("")
        ),
    }
}

/// The human report: per config, its heads, then one aligned line per database.
pub(super) fn render(statuses: &[ConfigStatus], offline: bool) -> String {
    let mut out = String::new();
    for c in statuses {
        let heads = if let Some(e) = &c.scripts_error {
            format!("the scripts do not load: {e}")
        } else if c.multiple_heads {
            format!(
                "MULTIPLE HEADS: {} ({} heads)",
                c.heads.join(", "),
                c.heads.len()
            )
        } else {
            format!(
                "head {}{}",
                c.heads.join(", "),
                c.revisions
                    .map(|n| format!(" ({})", plural(n, "revision", "revisions")))
                    .unwrap_or_default()
            )
        };
        out.push_str(&format!("{} ({}): {heads}\n", c.config, c.database.label()));
        if let Some(cmd) = &c.merge_command {
            out.push_str(&format!(
                "  fix: create the merge revision in backend/: {cmd}\n"
            ));
        }
        if offline {
            continue;
        }
        // Rows without a revision (not configured, unreadable) say so on their own, unaligned.
        let one_cell =
            |d: &DatabaseStatus| matches!(d.status, DbStatus::NotConfigured | DbStatus::Error);
        let shown = c.databases.iter().filter(|d| !one_cell(d));
        let rev_width = shown
            .clone()
            .map(|d| revision_cell(d).len())
            .max()
            .unwrap_or(0);
        let status_width = shown.map(|d| describe(d).len()).max().unwrap_or(0);
        for d in &c.databases {
            let line = if one_cell(d) {
                format!("  {:<6}  {}", d.side.label(), describe(d))
            } else {
                format!(
                    "  {:<6}  {:<rev_width$}  {:<status_width$}  {}",
                    d.side.label(),
                    revision_cell(d),
                    describe(d),
                    d.url.as_deref().unwrap_or("")
                )
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn revision_cell(d: &DatabaseStatus) -> String {
    match (&d.status, &d.revisions) {
        (_, None) => "(none)".to_string(),
        (_, Some(r)) if r.is_empty() => "(none)".to_string(),
        (_, Some(r)) => r.join(", "),
    }
}

/// The last line: what is not at a single head, or that everything is.
pub(super) fn summary(statuses: &[ConfigStatus], offline: bool) -> String {
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    for c in statuses {
        if c.multiple_heads {
            problems.push(format!(
                "{} has {} heads ({})",
                c.config,
                c.heads.len(),
                c.heads.join(", ")
            ));
        }
        for d in &c.databases {
            let name = format!("{} {}", d.side.label(), c.database.label());
            match d.status {
                DbStatus::NotConfigured => skipped.push(name),
                DbStatus::AtHead => checked += 1,
                DbStatus::Behind => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is {} behind",
                        plural(d.pending.unwrap_or(0), "migration", "migrations")
                    ))
                }
                DbStatus::NotStamped => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is not stamped ({} pending)",
                        plural(d.pending.unwrap_or(0), "migration", "migrations")
                    ))
                }
                DbStatus::UnknownRevision => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is at {}, unknown to the scripts",
                        d.unknown_revisions.join(", ")
                    ))
                }
                DbStatus::HeadsUnknown | DbStatus::Error => {}
            }
        }
    }
    if !problems.is_empty() {
        return format!("alembic-status: {}", problems.join("; "));
    }
    let configs = format!(
        "{}: {}",
        statuses
            .iter()
            .map(|c| c.config)
            .collect::<Vec<_>>()
            .join(" and "),
        if statuses.len() == 1 {
            "single head"
        } else {
            "single head each"
        }
    );
    if offline {
        return format!(
            "alembic-status: {configs}, every script loads (--offline: no database checked)"
        );
    }
    let mut line = format!(
        "alembic-status: {configs}; {} at head",
        plural(checked, "database", "databases")
    );
    if !skipped.is_empty() {
        line.push_str(&format!(
            "; not configured, not checked: {}",
            skipped.join(", ")
        ));
    }
    line
}
