//! `db-snapshot restore NAME`: everything checked before anything is touched (each database's
//! snapshot and record, its Alembic revision against this checkout's history, other sessions),
//! then each snapshot cloned into a staging database and its row counts checked against the
//! record, then every staging database swapped in, in one transaction. Until that commit the
//! local databases are untouched; a failure or Ctrl-C drops the staging databases.

use anyhow::{bail, Context, Result};

use super::{
    print_json,
    record::{find, snapshot_db_name, table_counts, SnapshotDb, SnapshotRecord},
    save::revisions_text,
    RestoreArgs,
};
use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::Database,
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    pg::scratch::{self, ScratchDb},
    transfer::{
        local_set::{LocalSet, LocalTarget},
        read_snapshot, staging,
        swap_all::swap_in_staged,
    },
};

/// One database's part of the restore.
struct Planned<'a> {
    target: &'a LocalTarget,
    snapshot: SnapshotDb,
    record: SnapshotRecord,
}

pub fn restore(ctx: &Ctx, args: &RestoreArgs) -> Result<()> {
    let set = LocalSet::lock(ctx, "db-snapshot restore", &ctx.config()?.databases())?;
    let mut plan = Vec::new();
    for target in &set.targets {
        let (snapshot, record) = find_snapshot(ctx, target, &args.name)?;
        check_revisions(ctx, target.db, &record, args.allow_revision_mismatch)?;
        plan.push(Planned {
            target,
            snapshot,
            record,
        });
    }
    set.clear_sessions(ctx, args.terminate_connections, "a restore")?;
    for p in &plan {
        ctx.say(format!(
            "{}: {} <- snapshot {} of {} (git {}, Alembic {}, {} rows)",
            p.target.db.label(),
            p.target.url.dbname(),
            p.record.name,
            p.record.created_at,
            p.record.git_commit.as_deref().unwrap_or("unknown"),
            revisions_text(&p.record.alembic_revisions),
            p.record.rows
        ));
    }
    if args.dry_run {
        ctx.say("dry run: nothing was changed");
        return report(ctx, &args.name, &plan, true);
    }
    let names: Vec<&str> = plan.iter().map(|p| p.target.url.dbname()).collect();
    confirm_destructive(
        &format!(
            "replace the local database(s) {} with snapshot {}",
            names.join(" and "),
            args.name
        ),
        names[0],
        ctx.config()?.yes,
    )?;

    clone_and_swap(ctx, &set, &plan, args.terminate_connections).with_context(|| {
        format!(
            "restoring snapshot {}: the local databases are as they were (the staging copies \
             were dropped)",
            args.name
        )
    })?;
    report(ctx, &args.name, &plan, false)
}

/// Each snapshot cloned into its staging database and checked against its record, then all
/// swapped in; a failure drops the clones (`ScratchDb`) before the swap, or rolls it back.
fn clone_and_swap(ctx: &Ctx, set: &LocalSet, plan: &[Planned], terminate: bool) -> Result<()> {
    let admin = set.admin();
    let mut staged = Vec::new();
    for p in plan {
        interrupt::check("the restore")?;
        let label = p.target.db.label();
        let name = staging::staging_name(&p.target.url);
        let copy = ScratchDb::create_with(
            &ctx.rt,
            admin,
            &p.target.url,
            &name,
            &format!("from the snapshot {}", p.snapshot.datname),
            scratch::copy_database(admin, &name, &p.snapshot.datname),
        )?;
        let measured = ctx
            .block_on(read_snapshot(copy.url(), ctx.timeout()))
            .with_context(|| format!("counting the rows of {name}"))?;
        let counts = table_counts(&measured);
        if counts != p.record.tables {
            bail!(
                "the {label} snapshot {} does not hold what its record says ({}); it was changed \
                 after it was saved",
                p.snapshot.datname,
                count_differences(&p.record, &counts)
            );
        }
        ctx.say(format!(
            "{label}: {name} cloned from {} and checked ({} tables, {} rows)",
            p.snapshot.datname,
            counts.len(),
            p.record.rows
        ));
        staged.push(copy);
    }
    swap_in_staged(ctx, set, terminate, staged)
}

/// The snapshot of `target` named `name`, with its record; a usage error naming what is missing.
fn find_snapshot(
    ctx: &Ctx,
    target: &LocalTarget,
    name: &str,
) -> Result<(SnapshotDb, SnapshotRecord)> {
    let of = target.url.dbname();
    let datname = snapshot_db_name(of, name)?;
    let found = ctx
        .block_on(find(target.lock.client(), of))?
        .into_iter()
        .find(|s| s.datname == datname);
    let label = target.db.label();
    match found {
        None => Err(UsageError::new(format!(
            "snapshot {name} has no {label} database ({datname} does not exist; cargo xtask \
             db-snapshot list shows the snapshots); nothing was changed"
        ))
        .into()),
        Some(SnapshotDb { record: None, .. }) => Err(UsageError::new(format!(
            "{datname} has no xtask snapshot record in its comment, so what it holds is unknown; \
             it is not restored (nothing was changed)"
        ))
        .into()),
        Some(mut s) => {
            let record = s.record.take().expect("matched above");
            Ok((s, record))
        }
    }
}

/// A snapshot's revisions must be in this checkout's history: a database at a revision the
/// migrations do not know cannot be migrated or pushed from here.
fn check_revisions(ctx: &Ctx, db: Database, record: &SnapshotRecord, allow: bool) -> Result<()> {
    let Some(revisions) = record.alembic_revisions.as_ref().filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let config = AlembicConfig::of(db);
    // The usual case, a snapshot at this checkout's heads, needs only the cached heads; the
    // whole history is read (`alembic history`, seconds) for any other revision.
    let mut heads = crate::migrations::heads(config, &ctx.sh, &backend_dir())?;
    heads.sort();
    let mut have = revisions.clone();
    have.sort();
    if heads == have {
        return Ok(());
    }
    let graph = config.history(&ctx.sh, &backend_dir())?;
    let unknown: Vec<&str> = revisions
        .iter()
        .filter(|r| !graph.contains(r))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let what = format!(
        "the {} snapshot {} is at Alembic revision {}, which this checkout's migrations ({}) do \
         not have: it was saved at git commit {}",
        db.label(),
        record.name,
        unknown.join(", "),
        config.ini(),
        record.git_commit.as_deref().unwrap_or("unknown")
    );
    if allow {
        ctx.say(format!("warning: {what} (--allow-revision-mismatch)"));
        return Ok(());
    }
    Err(UsageError::new(format!(
        "{what}. Check out that commit first, or restore anyway with --allow-revision-mismatch; \
         nothing was changed"
    ))
    .into())
}

/// `public.users: 10 in the record, 9 now; ...`
fn count_differences(
    record: &SnapshotRecord,
    counts: &std::collections::BTreeMap<String, i64>,
) -> String {
    let mut names: Vec<&String> = record.tables.keys().chain(counts.keys()).collect();
    names.sort();
    names.dedup();
    let shown = |n: Option<&i64>| n.map_or("no table".to_string(), i64::to_string);
    names
        .into_iter()
        .filter(|t| record.tables.get(*t) != counts.get(*t))
        .map(|t| {
            format!(
                "{t}: {} in the record, {} now",
                shown(record.tables.get(t)),
                shown(counts.get(t))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn report(ctx: &Ctx, name: &str, plan: &[Planned], dry_run: bool) -> Result<()> {
    if ctx.out.json {
        return print_json(&serde_json::json!({
            "command": "db-snapshot restore",
            "ok": true,
            "dry_run": dry_run,
            "name": name,
            "databases": plan.iter().map(|p| serde_json::json!({
                "database": p.target.db,
                "target": p.target.url.to_string(),
                "snapshot": p.snapshot.datname,
                "tables": p.record.tables.len(),
                "rows": p.record.rows,
                "alembic_revisions": p.record.alembic_revisions,
            })).collect::<Vec<_>>(),
        }));
    }
    if !dry_run {
        for p in plan {
            println!(
                "{}: restored {} from snapshot {} ({} tables, {} rows)",
                p.target.db.label(),
                p.target.url.dbname(),
                name,
                p.record.tables.len(),
                p.record.rows
            );
        }
    }
    Ok(())
}
