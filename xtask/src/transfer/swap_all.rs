//! Several staging databases swapped in at once: every rename in one transaction on the
//! maintenance connection, so that Core and AI are both replaced or neither is (`ALTER DATABASE
//! ... RENAME` is transactional, unlike `CREATE` and `DROP DATABASE`). The replaced databases are
//! dropped after the commit.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::local_set::LocalSet;
use crate::{
    ctx::Ctx,
    interrupt,
    pg::{
        client,
        ident::quote_ident,
        scratch::{self, ScratchDb},
    },
};

/// Swaps `staged` (one staging database per target of `set`, in its order) in: other sessions
/// refused or ended (`terminate`) once more, right before, then `swap_all`.
pub fn swap_in_staged(
    ctx: &Ctx,
    set: &LocalSet,
    terminate: bool,
    staged: Vec<ScratchDb>,
) -> Result<()> {
    set.clear_sessions(ctx, terminate, "the swap")?;
    let replacements: Vec<Replacement> = set
        .targets
        .iter()
        .zip(&staged)
        .map(|(t, copy)| Replacement {
            label: t.db.label(),
            target: t.url.dbname(),
            staging: copy.name(),
        })
        .collect();
    swap_all(ctx, set.admin(), &replacements)?;
    for copy in staged {
        copy.keep();
    }
    Ok(())
}

/// One database to replace: `staging` takes the name `target`.
pub struct Replacement<'a> {
    pub label: &'static str,
    pub target: &'a str,
    pub staging: &'a str,
}

/// Renames every target aside and every staging database into its place, in one transaction;
/// on any error the transaction rolls back and every target is as it was. Then drops the
/// replaced databases (a failure to drop one is a warning: the new copies are in place).
pub fn swap_all(ctx: &Ctx, admin: &Client, replacements: &[Replacement]) -> Result<()> {
    interrupt::check("the swap")?;
    ctx.block_on(async {
        let mut aside = Vec::new();
        for r in replacements {
            let old =
                scratch::sibling_name(r.target, &format!("_xtask_old_{}", std::process::id()));
            let exists = client::database_exists(admin, r.target).await?;
            aside.push((r, exists.then_some(old)));
        }
        admin
            .batch_execute("BEGIN")
            .await
            .context("starting the swap's transaction")?;
        let renamed = async {
            for (r, old) in &aside {
                if let Some(old) = old {
                    rename(admin, r.target, old).await?;
                }
                rename(admin, r.staging, r.target).await?;
            }
            // A Ctrl-C while a rename waited for a lock: rolled back, not committed.
            interrupt::check("the swap")?;
            admin
                .batch_execute("COMMIT")
                .await
                .context("committing the swap")
        }
        .await;
        if let Err(e) = renamed {
            let _ = admin.batch_execute("ROLLBACK").await;
            return Err(e.context(
                "swapping the restored copies in (rolled back: every local database is as it was)",
            ));
        }
        for (r, old) in &aside {
            let Some(old) = old else { continue };
            if let Err(e) = scratch::drop_database(admin, old).await {
                ctx.say(format!(
                    "{}: warning: the replaced database is left as {old} (dropping it failed: \
                     {e}); drop it by hand when you no longer need it",
                    r.label
                ));
            }
        }
        anyhow::Ok(())
    })
}

async fn rename(admin: &Client, from: &str, to: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(from),
            quote_ident(to)
        ))
        .await
        .with_context(|| format!("renaming the database {from} to {to}"))
}
