//! `db-restore --list [--keep N]`: the backups in the backup folder, each with its database,
//! time, size and what it holds (tables and rows with data, from the archive itself); with
//! `--keep N`, all but the newest N of each database are removed first.

use anyhow::{Context, Result};

use super::{archive, backups};
use crate::{commands::db_snapshot::human_bytes, ctx::Ctx, transfer::backup::backups_dir};

pub fn list(ctx: &Ctx, keep: Option<usize>) -> Result<()> {
    let dir = backups_dir();
    let mut all = backups::scan(&dir)?;
    let mut removed = Vec::new();
    if let Some(keep) = keep {
        for old in backups::beyond(&all, keep) {
            std::fs::remove_file(&old.path)
                .with_context(|| format!("removing the old backup {}", old.path.display()))?;
            removed.push(old.path.clone());
        }
        all.retain(|b| !removed.contains(&b.path));
    }
    // What each holds needs pg_restore; without the tools the list still shows the files.
    let tools = ctx.tools();
    let mut rows = Vec::new();
    for b in &all {
        let holds = match &tools {
            Ok(tools) => archive::read_toc(tools, &b.path)
                .map(|toc| (toc.tables, toc.with_data))
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        rows.push((b, holds));
    }

    if ctx.out.json {
        let doc = serde_json::json!({
            "command": "db-restore --list",
            "dir": dir,
            "backups": rows.iter().map(|(b, holds)| serde_json::json!({
                "path": b.path,
                "side": b.side,
                "database": b.database,
                "stamp": b.stamp,
                "bytes": b.bytes,
                "tables": holds.as_ref().ok().map(|h| h.0),
                "error": holds.as_ref().err(),
            })).collect::<Vec<_>>(),
            "removed": removed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for path in &removed {
        println!("removed {} (--keep)", path.display());
    }
    if all.is_empty() {
        println!("no backups in {}", dir.display());
        return Ok(());
    }
    for (b, holds) in &rows {
        let holds = match holds {
            Ok((tables, with_data)) => format!("{tables} tables, {with_data} with data"),
            Err(e) => format!("contents unknown: {e}"),
        };
        println!(
            "{} {} {}  {}  {}  ({holds})",
            b.side.label(),
            b.database,
            b.stamp,
            human_bytes(b.bytes as i64),
            b.path.display()
        );
    }
    let total: u64 = all.iter().map(|b| b.bytes).sum();
    println!(
        "{} backups take {} in {}",
        all.len(),
        human_bytes(total as i64),
        dir.display()
    );
    Ok(())
}
