//! db-pull's cached schema builds: the local server keeps one empty database per set of
//! migrations (`xtask_schema_<config>_<key>`, the key from the migrations' fingerprint and the
//! extensions, see `migrations`), built once by `alembic upgrade head` and cloned by each pull as
//! its staging database's template. `XTASK_SCHEMA_CACHE=off` runs the migrations every time.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::{
    driver::{Job, Run},
    staging::create_extensions,
};
use crate::{
    alembic::AlembicConfig,
    backend_dir, interrupt,
    pg::{client, ident::quote_ident, lock, scratch},
};

/// The local server's cached build of these migrations, built now when it is missing; `None`
/// when the cache is off or another command is building it (then this pull runs the migrations
/// itself).
pub fn template<T>(
    run: &Run,
    job: &Job<T>,
    admin: &Client,
    extensions: &[String],
) -> Result<Option<String>> {
    let ctx = run.ctx;
    let config = AlembicConfig::of(job.db);
    if !crate::migrations::cache_enabled() {
        return Ok(None);
    }
    let Some(fingerprint) = crate::migrations::fingerprint(config, &backend_dir())? else {
        return Ok(None);
    };
    let mut key = crate::migrations::Fnv64::default();
    key.part(fingerprint.as_bytes());
    for ext in extensions {
        key.part(ext.as_bytes());
    }
    let prefix = format!("xtask_schema_{}_", job.db.label());
    let name = format!("{prefix}{}", key.hex());
    if ctx.block_on(client::database_exists(admin, &name))? {
        return Ok(Some(name));
    }
    let server = job.target.with_dbname("postgres");
    let Ok(_building) = ctx.block_on(lock::acquire(&server, &prefix, run.command, ctx.timeout()))
    else {
        return Ok(None);
    };
    if ctx.block_on(client::database_exists(admin, &name))? {
        return Ok(Some(name));
    }
    // Under the lock, every other cached build of this config is stale or a killed build's
    // leftover: ours to drop.
    let stale = ctx
        .block_on(admin.query(
            "SELECT datname FROM pg_catalog.pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        ))
        .context("listing the cached schema builds")?;
    for row in stale {
        let old: String = row.get(0);
        ctx.block_on(scratch::drop_database(admin, &old))
            .with_context(|| format!("dropping the stale schema build {old}"))?;
    }
    let building = format!("{name}_building");
    let building_url = job.target.with_dbname(&building);
    ctx.block_on(scratch::create_database(admin, &building, None))
        .with_context(|| format!("creating {building} to build the schema in"))?;
    let built = create_extensions(ctx, &building_url, extensions)
        .and_then(|()| config.upgrade(&ctx.rt, &ctx.sh, &backend_dir(), &building_url, "head"))
        .and_then(|()| interrupt::check("the schema step"))
        .and_then(|()| {
            // Published complete under its final name, and closed to connections: nothing can
            // change it between builds, and a clone never waits for a session on it.
            let comment = format!(
                "xtask db-pull: empty schema of alembic -c {} upgrade head (migrations \
                 fingerprint {fingerprint}); cloned by each pull, safe to drop",
                config.ini()
            );
            ctx.block_on(admin.batch_execute(&format!(
                "ALTER DATABASE {b} RENAME TO {n}; ALTER DATABASE {n} ALLOW_CONNECTIONS false; \
                 COMMENT ON DATABASE {n} IS '{c}'",
                b = quote_ident(&building),
                n = quote_ident(&name),
                c = comment.replace('\'', "''"),
            )))
            .with_context(|| format!("publishing the schema build {name}"))
        });
    if let Err(e) = built {
        let _ = ctx.block_on(scratch::drop_database(admin, &building));
        return Err(e);
    }
    ctx.say(format!(
        "{}: schema built by alembic -c {} upgrade head into {name}, kept for the next pulls",
        job.db.label(),
        config.ini()
    ));
    Ok(Some(name))
}
