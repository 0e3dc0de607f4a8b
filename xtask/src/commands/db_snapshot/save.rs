//! `db-snapshot save [NAME]`: every local database cloned by `CREATE DATABASE ... TEMPLATE`,
//! measured (rows, and its files for a restore's cheap check: `untouched.rs`), its record
//! written, closed to connections (so that nothing works in a snapshot by mistake: a restore
//! clones it without connecting). A failure drops the snapshots already made by this run: the
//! snapshot exists for every database or for none.

use anyhow::{Context, Result};

use super::{
    delete, human_bytes, print_json,
    record::{snapshot_db_name, SnapshotRecord},
    untouched, SaveArgs,
};
use crate::{
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    pg::{
        client,
        ident::quote_ident,
        scratch::{self, ScratchDb},
    },
    transfer::{backup, local_set::LocalSet, read_snapshot},
};

pub fn save(ctx: &Ctx, args: &SaveArgs) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(backup::timestamp);
    let set = LocalSet::lock(ctx, "db-snapshot save", &ctx.config()?.databases())?;
    let admin = set.admin();
    let mut datnames = Vec::new();
    for t in &set.targets {
        let of = t.url.dbname();
        let datname = snapshot_db_name(of, &name)?;
        if !ctx.block_on(client::database_exists(admin, of))? {
            anyhow::bail!(
                "the local {} database {of} does not exist: there is nothing to snapshot (cargo \
                 xtask db-init creates it); nothing was saved",
                t.db.label()
            );
        }
        if ctx.block_on(client::database_exists(admin, &datname))? {
            return Err(UsageError::new(format!(
                "a snapshot named {name} exists already ({datname}); pick another name, or drop \
                 it first: cargo xtask db-snapshot delete {name}"
            ))
            .into());
        }
        datnames.push(datname);
    }
    set.clear_sessions(
        ctx,
        args.terminate_connections,
        "a snapshot (CREATE DATABASE ... TEMPLATE)",
    )?;
    // The record is still useful without it.
    let commit = crate::git::head_commit(&ctx.sh, &crate::project_root());

    let mut made = Vec::new();
    for (t, datname) in set.targets.iter().zip(&datnames) {
        interrupt::check("the snapshot")?;
        let of = t.url.dbname();
        let snapshot = ScratchDb::create_with(
            &ctx.rt,
            admin,
            &t.url,
            datname,
            &format!("as a snapshot of {of} (CREATE DATABASE ... TEMPLATE {of})"),
            scratch::copy_database(admin, datname, of),
        )?;
        let measured = ctx
            .block_on(read_snapshot(snapshot.url(), ctx.timeout()))
            .with_context(|| format!("counting the rows of the snapshot {datname}"))?;
        let record = ctx.block_on(async {
            let files = {
                let conn = client::connect(snapshot.url(), ctx.timeout()).await?;
                untouched::relation_files(&conn)
                    .await
                    .with_context(|| format!("in the snapshot {datname}"))?
            };
            let writes = untouched::writes(admin, datname).await?;
            let row = admin
                .query_one(
                    "SELECT pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', \
                            'YYYY-MM-DD HH24:MI:SS.US \"UTC\"'), \
                            pg_catalog.pg_database_size($1::text)",
                    &[&datname],
                )
                .await
                .with_context(|| format!("reading the size of the snapshot {datname}"))?;
            let record = SnapshotRecord {
                files: Some(files),
                writes,
                ..SnapshotRecord::new(
                    &name,
                    t.db.label(),
                    of,
                    row.get(0),
                    commit.clone(),
                    &measured,
                    row.get(1),
                )
            };
            record.write(admin, datname).await?;
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                    quote_ident(datname)
                ))
                .await
                .with_context(|| format!("closing the snapshot {datname} to connections"))?;
            anyhow::Ok(record)
        })?;
        made.push((snapshot, record));
    }
    interrupt::check("the snapshot")?;
    let records: Vec<SnapshotRecord> = made
        .into_iter()
        .map(|(snapshot, record)| {
            snapshot.keep();
            record
        })
        .collect();
    let dropped = match args.keep {
        Some(keep) => delete::prune(ctx, &set, keep)?,
        None => Vec::new(),
    };

    if ctx.out.json {
        return print_json(&serde_json::json!({
            "command": "db-snapshot save",
            "ok": true,
            "name": name,
            "databases": records,
            "dropped": dropped,
        }));
    }
    for (r, datname) in records.iter().zip(&datnames) {
        println!(
            "{}: saved {} as {datname} ({} tables, {} rows, {}, Alembic {})",
            r.database,
            r.of,
            r.tables.len(),
            r.rows,
            human_bytes(r.bytes),
            revisions_text(&r.alembic_revisions)
        );
    }
    for name in &dropped {
        println!("dropped the older snapshot {name} (--keep)");
    }
    Ok(())
}

/// `c0005`, `none` (empty table) or `no alembic_version`.
pub fn revisions_text(revisions: &Option<Vec<String>>) -> String {
    match revisions {
        None => "no alembic_version".to_string(),
        Some(r) if r.is_empty() => "none".to_string(),
        Some(r) => r.join(", "),
    }
}
