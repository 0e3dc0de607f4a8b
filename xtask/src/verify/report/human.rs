//! A verification for people: per database, the sides, the aligned table of row counts, then
//! Alembic, schema differences, orphans, sequences, notes and the summary line.

use super::FailedComparison;
use crate::verify::{
    alembic::revisions_text, AlembicSide, DatabaseComparison, SideInfo, TableStatus,
};

fn side_line(side: &SideInfo) -> String {
    match &side.server_version {
        Some(v) => format!("{} {} (PostgreSQL {v})", side.side, side.url),
        None => format!("{} {}", side.side, side.url),
    }
}

fn title(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn rows(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// One database for people: the aligned table (Table / Remote / Local [/ Checksum] / Status),
/// then Alembic, schema differences, orphans, sequences, notes and the summary.
pub fn render_comparison(c: &DatabaseComparison) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}: {}  vs  {}\n",
        c.database.label(),
        side_line(&c.left),
        side_line(&c.right)
    ));
    out.push_str(&table(c));
    out.push_str(&findings(c));
    out
}

/// The aligned table: one line per table, row counts right-aligned under their headers.
fn table(c: &DatabaseComparison) -> String {
    let mut out = String::new();
    let mut header = vec![
        "Table".to_string(),
        title(&c.left.side),
        title(&c.right.side),
    ];
    if c.checksums {
        header.push("Checksum".to_string());
    }
    header.push("Status".to_string());
    let mut lines: Vec<Vec<String>> = vec![header];
    for t in &c.tables {
        let mut line = vec![t.name().to_string(), rows(t.left_rows), rows(t.right_rows)];
        if c.checksums {
            line.push(
                match (&t.left_checksum, &t.right_checksum) {
                    (Some(a), Some(b)) if a == b => "match",
                    (Some(_), Some(_)) => "DIFF",
                    _ => "-",
                }
                .to_string(),
            );
        }
        line.push(match t.status {
            TableStatus::Ok => "ok".to_string(),
            TableStatus::RowsDiffer => match (t.left_rows, t.right_rows) {
                (Some(a), Some(b)) => format!("DIFF ({:+})", b - a),
                _ => "DIFF".to_string(),
            },
            TableStatus::ChecksumDiffers => "DIFF (contents)".to_string(),
            TableStatus::OnlyLeft => format!("only {}", c.left.side),
            TableStatus::OnlyRight => format!("only {}", c.right.side),
        });
        lines.push(line);
    }
    if c.tables.is_empty() {
        lines.push(vec!["(no tables)".to_string()]);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.push_str("  ");
            // Row counts right-aligned, words left-aligned.
            if (i == 1 || i == 2) && line.len() == columns {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < line.len() {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// Alembic, schema differences, orphans, sequences, notes and the summary.
fn findings(c: &DatabaseComparison) -> String {
    let mut out = String::new();
    let a = &c.alembic;
    let revision = |side: &str, s: &AlembicSide| {
        let revs = revisions_text(&s.revisions);
        let state = match s.at_head {
            Some(true) => " (at head)",
            Some(false) => " (not at head)",
            None => "",
        };
        format!("{side} {revs}{state}")
    };
    let config = match (&a.config, &a.heads) {
        (Some(cfg), Some(heads)) => {
            format!(" ({cfg}, head {})", revisions_text(heads))
        }
        (Some(cfg), None) => format!(" ({cfg}, heads unknown)"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "  Alembic{config}: {}, {}: {}\n",
        revision(&c.left.side, &a.left),
        revision(&c.right.side, &a.right),
        if a.findings.is_empty() { "ok" } else { "DIFF" }
    ));
    for f in &a.findings {
        out.push_str(&format!("    {f}\n"));
    }
    match c.schema_differences.len() {
        0 => out.push_str("  Schema: same (columns, constraints, indexes, extensions)\n"),
        n => {
            out.push_str(&format!(
                "  Schema: {n} difference{}\n",
                if n == 1 { "" } else { "s" }
            ));
            for d in &c.schema_differences {
                out.push_str(&format!("    {d}\n"));
            }
        }
    }
    if c.orphans.is_empty() {
        out.push_str("  Orphans: none (every foreign key has its parent rows)\n");
    } else {
        out.push_str("  Orphans:\n");
        for o in &c.orphans {
            out.push_str(&format!("    {o}\n"));
        }
    }
    if c.sequences.is_empty() {
        out.push_str("  Sequences: none behind their columns\n");
    } else {
        out.push_str("  Sequences:\n");
        for s in &c.sequences {
            out.push_str(&format!("    {s}\n"));
        }
    }
    for n in &c.notes {
        out.push_str(&format!("  Note: {n}\n"));
    }
    out.push_str(&format!("  => {}\n", c.summary()));
    out
}

pub(super) fn render_failure(f: &FailedComparison) -> String {
    format!(
        "{}: {}  vs  {}\n  could not compare: {}\n",
        f.database.label(),
        side_line(&f.left),
        side_line(&f.right),
        f.error.message
    )
}
