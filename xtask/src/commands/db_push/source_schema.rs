//! `db-push --schema source`: the local schema on the remote. Into an empty remote it is created
//! by pg_dump's sections (pre-data before the data, post-data in the load's transaction after it);
//! into a remote that has tables it is not created again: the remote's schema is compared with
//! the local one by the verify engine, and the push loads into it when they are equal, or refuses
//! (exit 2) listing each difference. Roles the local policies name must exist on the remote: a
//! push never creates roles there.

use anyhow::{Context, Result};

use super::Pushed;
use crate::{
    config::{DbUrl, Side},
    exit::UsageError,
    transfer::{roles, sections, Job, Run},
    verify::{self, catalog::Catalog, recreate::Candidate, Change, Field},
};

/// The preflight's checks (nothing written yet): a remote with tables has the local schema, and
/// every role the local policies name exists on the remote's server.
pub(super) fn check_remote(
    run: &Run,
    label: &str,
    local: (&DbUrl, &Catalog),
    remote: (&DbUrl, &Catalog),
    alike: &[Candidate],
    untouched: &str,
) -> Result<()> {
    let (local_url, local) = local;
    let (remote_url, remote) = remote;
    if !remote.tables.is_empty() {
        let differences = schema_differences(local, remote, alike);
        if !differences.is_empty() {
            return Err(UsageError::new(format!(
                "--schema source: the remote {label} database {} already has tables, and its \
                 schema differs from the local one:\n  {}\nMake the remote's schema equal to the \
                 local one (or push into an empty database), or use --schema migrations; \
                 {untouched}",
                remote_url.dbname(),
                differences.join("\n  ")
            ))
            .into());
        }
    }
    let missing = roles::missing_on_target(run.ctx, local_url, remote_url)
        .with_context(|| format!("{label}: checking the roles the local policies name"))?;
    if !missing.is_empty() {
        return Err(UsageError::new(format!(
            "--schema source: the local {label} database's policies name role(s) that the \
             remote's server lacks: {}; a push never creates roles on a remote: create them \
             there (CREATE ROLE ... NOLOGIN), then push again; {untouched}",
            missing.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Every difference of structure between the two sides, by name: tables on one side only, then
/// what the verify engine compares. Sequence positions are data, not schema: the load sets them;
/// definitions in `alike` print differently but were found the same once re-created.
fn schema_differences(local: &Catalog, remote: &Catalog, alike: &[Candidate]) -> Vec<String> {
    let only = |a: &Catalog, b: &Catalog, side: &str| -> Vec<String> {
        a.tables
            .keys()
            .filter(|t| !b.tables.contains_key(*t))
            .map(|t| format!("table {t}: only on {side}"))
            .collect()
    };
    let mut out = only(local, remote, "local");
    out.extend(only(remote, local, "remote"));
    out.extend(
        verify::compare_schema(local, remote, "local", "remote")
            .into_iter()
            .filter(|d| d.change != Change::Field(Field::LastValue))
            .filter(|d| !alike.iter().any(|c| c.explains(d)))
            .map(|d| d.to_string()),
    );
    out
}

/// Creates the local schema on an empty remote: the pre-data section now (committed on its own,
/// into a database that had no tables), the post-data section kept in `p.post_data` for the
/// load's transaction, or run now when the load needs the keys first (upsert).
pub(super) fn create(run: &Run, p: &mut Job<Pushed>, post_data_after: bool) -> Result<()> {
    let ctx = run.ctx;
    let post_data = sections::create_pre_data(
        ctx,
        run.tools,
        (&p.source, Side::Local),
        (&p.target, Side::Remote),
    )?;
    p.own.schema_created = true;
    if post_data_after {
        p.post_data = Some(post_data);
    } else {
        sections::run_section(
            ctx,
            run.tools,
            &p.target,
            Side::Remote,
            "post-data section (indexes, constraints, triggers, policies)",
            &post_data,
        )?;
    }
    Ok(())
}
