//! `db-snapshot restore NAME`: everything checked before anything is touched (each database's
//! snapshot and record, its Alembic revision against this checkout's history, other sessions),
//! then each snapshot cloned into a staging database and checked against its record (its files
//! as saved and no writes since, else its rows counted), then every staging database swapped in,
//! in one transaction. Until that commit the local databases are untouched; a failure or Ctrl-C
//! drops the staging databases.

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

use super::{
    print_json,
    record::{find, snapshot_db_name, table_counts, SnapshotDb, SnapshotRecord},
    save::revisions_text,
    untouched, RestoreArgs,
};
use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::Database,
    confirm::confirm_destructive,
    ctx::Ctx,
    exit::UsageError,
    interrupt,
    pg::{
        client,
        scratch::{self, ScratchDb},
    },
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
    for (target, (snapshot, record)) in set
        .targets
        .iter()
        .zip(find_snapshots(ctx, &set, &args.name)?)
    {
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
        interrupt::check("the restore")?;
        let how = check_clone(ctx, admin, p, &copy)?;
        ctx.say(format!(
            "{label}: {name} cloned from {} and checked ({} tables, {} rows: {how})",
            p.snapshot.datname,
            p.record.tables.len(),
            p.record.rows
        ));
        staged.push(copy);
    }
    swap_in_staged(ctx, set, terminate, staged)
}

/// The clone holds what the record says: shown cheaply when the snapshot was not written to
/// since save (`untouched.rs`: the clone is a copy of its files), else by counting every table's
/// rows. Returns how it was shown, for the progress line.
fn check_clone(ctx: &Ctx, admin: &Client, p: &Planned, copy: &ScratchDb) -> Result<String> {
    let datname = &p.snapshot.datname;
    let why_count = ctx.block_on(async {
        let files = {
            let conn = client::connect(copy.url(), ctx.timeout()).await?;
            untouched::relation_files(&conn)
                .await
                .with_context(|| format!("in {}", copy.name()))?
        };
        let evidence = untouched::Evidence {
            saved_files: p.record.files.as_ref(),
            saved_writes: p.record.writes,
            allows_connections: untouched::allows_connections(admin, datname).await?,
            writes: untouched::writes(admin, datname).await?,
            files: &files,
        };
        anyhow::Ok(untouched::unwritten(&evidence).err())
    })?;
    let Some(why) = why_count else {
        return Ok("its files as saved, not written to since".to_string());
    };
    let measured = ctx
        .block_on(read_snapshot(copy.url(), ctx.timeout()))
        .with_context(|| format!("counting the rows of {}", copy.name()))?;
    let counts = table_counts(&measured);
    if counts != p.record.tables {
        bail!(
            "the {} snapshot {datname} does not hold what its record says ({}); it was changed \
             after it was saved (its rows were counted since {why})",
            p.target.db.label(),
            count_differences(&p.record, &counts)
        );
    }
    Ok(format!("rows counted, since {why}"))
}

/// Each target's snapshot named `name`, with its record. A name that no database has is a usage
/// error (exit 2); a snapshot that lacks a database or a record (changed by hand) is refused by
/// the check (exit 1), as db-pull refuses a state it cannot work from.
fn find_snapshots(
    ctx: &Ctx,
    set: &LocalSet,
    name: &str,
) -> Result<Vec<(SnapshotDb, SnapshotRecord)>> {
    let mut found = Vec::new();
    for target in &set.targets {
        let of = target.url.dbname();
        let datname = snapshot_db_name(of, name)?;
        let snapshot = ctx
            .block_on(find(target.lock.client(), of))?
            .into_iter()
            .find(|s| s.datname == datname);
        found.push((target, datname, snapshot));
    }
    if found.iter().all(|(_, _, s)| s.is_none()) {
        return Err(UsageError::new(format!(
            "there is no snapshot named {name} (cargo xtask db-snapshot list shows the \
             snapshots); nothing was changed"
        ))
        .into());
    }
    let mut whole = Vec::new();
    for (target, datname, snapshot) in found {
        let label = target.db.label();
        match snapshot {
            None => bail!(
                "snapshot {name} has no {label} database ({datname} does not exist: it was \
                 dropped by hand; cargo xtask db-snapshot list shows the snapshots); nothing was \
                 changed"
            ),
            Some(SnapshotDb { record: None, .. }) => bail!(
                "{datname} has no xtask snapshot record in its comment, so what it holds is \
                 unknown; it is not restored (nothing was changed)"
            ),
            Some(mut s) => {
                let record = s.record.take().expect("matched above");
                whole.push((s, record));
            }
        }
    }
    Ok(whole)
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
    // Exit 1, as db-pull's refusal of a source at a revision this checkout lacks.
    bail!(
        "{what}. Check out that commit first, or restore anyway with --allow-revision-mismatch; \
         nothing was changed"
    )
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
