//! `db-snapshot list`: the snapshots on the local server, newest last, each with its time, git
//! commit, Alembic revisions, rows and the disk space each database takes now. Reads only; takes
//! no lock.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{
    human_bytes, print_json,
    record::{find, SnapshotDb},
    save::revisions_text,
};
use crate::{
    config::{Database, Side},
    ctx::Ctx,
    pg::client,
};

/// One snapshot name and each database's part of it (`None`: that database has none).
pub struct NamedSnapshot {
    pub name: String,
    pub databases: Vec<(Database, Option<SnapshotDb>)>,
}

/// The snapshots of every local database of the run, by name, in time order.
pub struct Listing {
    pub by_name: Vec<NamedSnapshot>,
    /// Databases named like snapshots without an xtask record (never touched).
    pub unrecorded: Vec<SnapshotDb>,
}

impl Listing {
    /// Reads the listing through `admin`, for the local databases `of` (`(core, name)`...).
    pub async fn read(
        admin: &tokio_postgres::Client,
        of: &[(Database, String)],
    ) -> Result<Listing> {
        let mut order: Vec<(String, String)> = Vec::new();
        let mut found: BTreeMap<(String, &'static str), SnapshotDb> = BTreeMap::new();
        let mut unrecorded = Vec::new();
        for (db, dbname) in of {
            for snapshot in find(admin, dbname).await? {
                let Some(record) = &snapshot.record else {
                    unrecorded.push(snapshot);
                    continue;
                };
                order.push((record.created_at.clone(), record.name.clone()));
                found.insert((record.name.clone(), db.label()), snapshot);
            }
        }
        order.sort();
        let mut names: Vec<String> = Vec::new();
        for (_, name) in order {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let by_name = names
            .into_iter()
            .map(|name| {
                let databases = of
                    .iter()
                    .map(|(db, _)| (*db, found.remove(&(name.clone(), db.label()))))
                    .collect();
                NamedSnapshot { name, databases }
            })
            .collect();
        Ok(Listing {
            by_name,
            unrecorded,
        })
    }
}

pub fn list(ctx: &Ctx) -> Result<()> {
    let config = ctx.config()?;
    let mut of = Vec::new();
    for db in config.databases() {
        of.push((
            db,
            config.require_url(Side::Local, db)?.dbname().to_string(),
        ));
    }
    let server = config
        .require_url(Side::Local, Database::Core)?
        .with_dbname("postgres");
    let listing = ctx.block_on(async {
        let admin = client::connect(&server, ctx.timeout()).await?;
        Listing::read(&admin, &of).await
    })?;

    if ctx.out.json {
        return print_json(&serde_json::json!({
            "command": "db-snapshot list",
            "snapshots": listing.by_name.iter().map(|n| serde_json::json!({
                "name": n.name,
                "complete": n.databases.iter().all(|(_, s)| s.is_some()),
                "databases": n.databases.iter().map(|(db, s)| serde_json::json!({
                    "database": db,
                    "snapshot": s,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "unrecorded": listing.unrecorded,
        }));
    }
    if listing.by_name.is_empty() {
        println!("no snapshots on {server} (cargo xtask db-snapshot save [NAME] makes one)");
    }
    let mut total = 0;
    for NamedSnapshot { name, databases } in &listing.by_name {
        let first = databases
            .iter()
            .find_map(|(_, s)| s.as_ref()?.record.as_ref());
        let Some(first) = first else { continue };
        println!(
            "{name}  saved {}  git {}",
            first.created_at,
            first
                .git_commit
                .as_deref()
                .map_or("unknown", |c| &c[..c.len().min(12)])
        );
        for (db, snapshot) in databases {
            match snapshot
                .as_ref()
                .and_then(|s| Some((s, s.record.as_ref()?)))
            {
                Some((s, r)) => {
                    total += s.bytes;
                    println!(
                        "  {}: {} ({} tables, {} rows, {}, Alembic {})",
                        db.label(),
                        s.datname,
                        r.tables.len(),
                        r.rows,
                        human_bytes(s.bytes),
                        revisions_text(&r.alembic_revisions)
                    );
                }
                None => println!(
                    "  {}: missing (this snapshot cannot be restored; delete it)",
                    db.label()
                ),
            }
        }
    }
    for s in &listing.unrecorded {
        println!(
            "{} ({}): named like a snapshot but has no xtask record; left alone",
            s.datname,
            human_bytes(s.bytes)
        );
    }
    if total > 0 {
        println!("snapshots take {} on the server", human_bytes(total));
    }
    Ok(())
}
