//! `db-snapshot delete NAME` and retention (`--keep N`, also after a save): a snapshot's
//! databases dropped, only ones with an xtask record (a database merely named like one is never
//! touched).

use anyhow::{Context, Result};

use super::{list::Listing, print_json, DeleteArgs};
use crate::{
    confirm::confirm_destructive, ctx::Ctx, exit::UsageError, pg::scratch,
    transfer::local_set::LocalSet,
};

pub fn delete(ctx: &Ctx, args: &DeleteArgs) -> Result<()> {
    let set = LocalSet::lock(ctx, "db-snapshot delete", &ctx.config()?.databases())?;
    let yes = ctx.config()?.yes;
    let dropped = match (&args.name, args.keep) {
        (Some(name), _) => {
            let listing = listing(ctx, &set)?;
            if !listing.by_name.iter().any(|n| &n.name == name) {
                return Err(UsageError::new(format!(
                    "there is no snapshot named {name} (cargo xtask db-snapshot list shows them)"
                ))
                .into());
            }
            confirm_destructive(&format!("drop snapshot {name}"), name, yes)?;
            drop_named(ctx, &set, &listing, std::slice::from_ref(name))?
        }
        (None, Some(keep)) => {
            confirm_destructive(
                &format!("drop every snapshot but the newest {keep}"),
                "keep",
                yes,
            )?;
            prune(ctx, &set, keep)?
        }
        (None, None) => unreachable!("clap requires NAME or --keep"),
    };
    if ctx.out.json {
        return print_json(&serde_json::json!({
            "command": "db-snapshot delete",
            "ok": true,
            "dropped": dropped,
        }));
    }
    if dropped.is_empty() {
        println!("nothing to drop");
    }
    for name in &dropped {
        println!("dropped snapshot {name}");
    }
    Ok(())
}

/// Drops every snapshot but the newest `keep`; returns the names dropped.
pub fn prune(ctx: &Ctx, set: &LocalSet, keep: usize) -> Result<Vec<String>> {
    let listing = listing(ctx, set)?;
    let count = listing.by_name.len();
    let old: Vec<String> = listing
        .by_name
        .iter()
        .take(count.saturating_sub(keep))
        .map(|n| n.name.clone())
        .collect();
    drop_named(ctx, set, &listing, &old)
}

fn listing(ctx: &Ctx, set: &LocalSet) -> Result<Listing> {
    let of: Vec<_> = set
        .targets
        .iter()
        .map(|t| (t.db, t.url.dbname().to_string()))
        .collect();
    ctx.block_on(Listing::read(set.admin(), &of))
}

fn drop_named(
    ctx: &Ctx,
    set: &LocalSet,
    listing: &Listing,
    names: &[String],
) -> Result<Vec<String>> {
    for named in listing.by_name.iter().filter(|n| names.contains(&n.name)) {
        let name = &named.name;
        for snapshot in named.databases.iter().filter_map(|(_, s)| s.as_ref()) {
            ctx.block_on(scratch::drop_database(set.admin(), &snapshot.datname))
                .with_context(|| format!("dropping {} of snapshot {name}", snapshot.datname))?;
        }
    }
    Ok(names.to_vec())
}
