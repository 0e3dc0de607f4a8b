//! A full pull's new copy, built next to the local database and swapped in only once verified:
//! the staging database `<name>_xtask_new` (extensions, then the schema from the migrations, a
//! cached build of them, or the source's pre-data section, its post-data section kept for after
//! the data), and the swap, two renames in one transaction. Until the
//! swap the local database is untouched; a failure drops the staging database (the caller's
//! clean-up, through `pg::scratch`).

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

use super::{
    driver::{Job, Run},
    roles, schema_cache,
    sections::{self, SourceSchema},
    selection, source, SchemaMode,
};
use crate::{
    alembic::AlembicConfig,
    backend_dir,
    config::{Database, DbUrl, Side},
    ctx::Ctx,
    interrupt,
    pg::{client, ident::quote_ident, scratch, sessions},
};

/// The staging database's name next to `target`.
pub fn staging_name(target: &DbUrl) -> String {
    scratch::sibling_name(target.dbname(), "_xtask_new")
}

/// A staging database whose schema is ready for the data.
pub struct Built {
    pub url: DbUrl,
    /// `--schema source`: the post-data section, for the load to run after the data.
    pub post_data: Option<String>,
    /// The NOLOGIN roles created on the local server for the source's policies.
    pub created_roles: Vec<String>,
}

/// Creates the staging database for `job` through `admin` (the lock's connection) and builds
/// its schema; `staging` is set as soon as it exists, so that a failure after that drops it.
pub fn build<T>(
    run: &Run,
    job: &Job<T>,
    admin: &Client,
    staging: &mut Option<DbUrl>,
) -> Result<Built> {
    let ctx = run.ctx;
    let label = job.db.label();
    let name = staging_name(&job.target);
    let url = job.target.with_dbname(&name);
    // A leftover of a run that was killed: ours to drop, since we hold the lock.
    ctx.block_on(scratch::drop_database(admin, &name))
        .with_context(|| format!("dropping a leftover staging database {name}"))?;

    let extensions = extensions(job);
    let config = AlembicConfig::of(job.db);
    let cached = match run.copy.schema {
        SchemaMode::Migrations => schema_cache::template(run, job, admin, &extensions)?,
        SchemaMode::Source => None,
    };
    ctx.block_on(scratch::create_database(admin, &name, cached.as_deref()))
        .with_context(|| {
            format!(
                "creating the staging database {name} next to {}",
                job.target
            )
        })?;
    *staging = Some(url.clone());
    interrupt::check("the schema step")?;
    let mut built = Built {
        url: url.clone(),
        post_data: None,
        created_roles: Vec::new(),
    };

    match (run.copy.schema, &cached) {
        (SchemaMode::Migrations, Some(template)) => ctx.say(format!(
            "{label}: schema of alembic -c {} upgrade head, cloned from {template} (built by these \
             same migrations; XTASK_SCHEMA_CACHE=off runs them every time)",
            config.ini()
        )),
        (SchemaMode::Migrations, None) => {
            create_extensions(ctx, &url, &extensions)?;
            config.upgrade(&ctx.rt, &ctx.sh, &backend_dir(), &url, "head")?;
            ctx.say(format!(
                "{label}: schema built by alembic -c {} upgrade head",
                config.ini()
            ));
        }
        (SchemaMode::Source, _) => {
            // The source's own CREATE EXTENSION statements (pre-data) create each extension in
            // its schema; none is created ahead, so none lands in the wrong one.
            copy_source_schema(run, job, &mut built).context("copying the source's schema")?;
            ctx.say(format!(
                "{label}: schema copied from the source (pre-data now, post-data after the data)"
            ));
        }
    }
    interrupt::check("the schema step")?;
    let as_built = ctx.block_on(source::read_snapshot(&url, ctx.timeout()))?;
    selection::check_target_can_hold(
        &job.source.catalog,
        &as_built.catalog,
        &job.selection,
        "local (as built)",
    )?;
    Ok(built)
}

/// `--schema source` into the staging database: the roles the source's policies name, created on
/// the local server where missing; the pre-data section; the post-data section kept in `built`.
fn copy_source_schema<T>(run: &Run, job: &Job<T>, built: &mut Built) -> Result<()> {
    let (ctx, url) = (run.ctx, &built.url);
    // The sections are dumped while the roles are checked and the target's version read.
    let (tools, source) = (run.tools, &job.source);
    let (roles, version, schema) = std::thread::scope(|scope| {
        let schema = scope.spawn(move || SourceSchema::dump(tools, source, Side::Remote));
        let roles = roles::missing_on_target(ctx, &job.source.endpoint.url, url);
        let version = sections::target_version(ctx, url);
        let schema = schema
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the schema dump's thread panicked")));
        (roles, version, schema)
    });
    let (roles, schema) = (roles?, schema?);
    if !roles.is_empty() {
        roles::create_nologin(ctx, url, &roles)?;
        ctx.say(format!(
            "{}: created NOLOGIN role(s) on the local server, named by the source's policies: {}",
            job.db.label(),
            roles.join(", ")
        ));
    }
    built.created_roles = roles;
    let sql = schema.for_target(version?);
    sections::run_section(
        ctx,
        run.tools,
        url,
        Side::Local,
        "pre-data section (schemas, extensions, types, tables, functions)",
        &sql.pre_data,
    )?;
    built.post_data = Some(sql.post_data);
    Ok(())
}

/// With `--schema migrations`: the source's extensions (plpgsql comes with every database), and
/// on the AI database `vector`, which its migrations need.
fn extensions<T>(job: &Job<T>) -> Vec<String> {
    let mut extensions: Vec<String> = job
        .source
        .catalog
        .extensions
        .keys()
        .filter(|e| e.as_str() != "plpgsql")
        .cloned()
        .collect();
    if job.db == Database::Ai && !extensions.iter().any(|e| e == "vector") {
        extensions.push("vector".to_string());
    }
    extensions
}

/// The source's extensions, in a database just created from template0.
pub fn create_extensions(ctx: &Ctx, url: &DbUrl, extensions: &[String]) -> Result<()> {
    ctx.block_on(async {
        let conn = client::connect(url, ctx.timeout()).await?;
        for ext in extensions {
            conn.batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {}",
                quote_ident(ext)
            ))
            .await
            .with_context(|| {
                format!(
                    "creating extension {ext} in {url}: is it installed on the local server \
                     (pgvector: image pgvector/pgvector:pg17)?"
                )
            })?;
        }
        anyhow::Ok(())
    })
}

/// A CHECKPOINT on its own connection, for speed only: it needs superuser or `pg_checkpoint`,
/// and any failure is ignored (the drop's own checkpoint does the work then).
pub async fn early_checkpoint(server: DbUrl) {
    if let Ok(conn) = client::connect(&server, client::default_connect_timeout()).await {
        let _ = conn.batch_execute("CHECKPOINT").await;
    }
}

/// Swapping a verified staging database in as the local database.
pub struct Swap<'a> {
    pub label: &'static str,
    /// The lock's connection, on the server's maintenance database.
    pub admin: &'a Client,
    pub target: &'a DbUrl,
    pub staging: &'a DbUrl,
    /// The local database exists (it is renamed away, then dropped).
    pub replaces: bool,
    /// `--terminate-connections`: end the other sessions on it first.
    pub terminate: bool,
}

impl Swap<'_> {
    /// Two renames in one transaction; then the replaced database is dropped (a failure to drop
    /// it is a warning: the new copy is in place).
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let (admin, label) = (self.admin, self.label);
        let target = self.target.dbname();
        ctx.block_on(async {
            if self.replaces {
                if self.terminate {
                    let n = sessions::terminate_sessions(admin, target).await?;
                    if n > 0 {
                        ctx.say(format!("{label}: ended {n} other session(s) on {target}"));
                    }
                }
                let others = sessions::sessions_after_grace(admin, target).await?;
                if !others.is_empty() {
                    bail!(
                        "the local database {target} has other session(s) now: {}; stop them \
                         (or pass --terminate-connections) and pull again",
                        sessions::describe(&others)
                    );
                }
            }
            let old = scratch::sibling_name(target, &format!("_xtask_old_{}", std::process::id()));
            admin.batch_execute("BEGIN").await?;
            let renamed = async {
                if self.replaces {
                    admin
                        .batch_execute(&format!(
                            "ALTER DATABASE {} RENAME TO {}",
                            quote_ident(target),
                            quote_ident(&old)
                        ))
                        .await?;
                }
                admin
                    .batch_execute(&format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        quote_ident(self.staging.dbname()),
                        quote_ident(target)
                    ))
                    .await?;
                admin.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = renamed {
                let _ = admin.batch_execute("ROLLBACK").await;
                return Err(
                    anyhow::Error::new(e).context(format!("swapping the new copy in as {target}"))
                );
            }
            if self.replaces {
                if let Err(e) = scratch::drop_database(admin, &old).await {
                    ctx.say(format!(
                        "{label}: warning: the replaced database is left as {old} (dropping it \
                         failed: {e}); drop it by hand when you no longer need it"
                    ));
                }
            }
            anyhow::Ok(())
        })
    }
}
