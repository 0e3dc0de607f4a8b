//! `--schema source` by pg_dump's sections, in pg_restore's order: the pre-data section (schemas,
//! extensions in the schema the source has them in, types, tables, views, functions) before the
//! data, the post-data section (primary keys, indexes, constraints including NOT VALID checks and
//! foreign keys, triggers, rules, policies, materialized views' refreshes) after it. A source row
//! that breaks a NOT VALID constraint is then copied, and the constraint stays NOT VALID; the
//! triggers do not fire on the copied rows.
//!
//! Both sections are dumped in the source's exported snapshot and held in memory (a schema is
//! small), so that what an older target rejects is left out: pg_dump 17's
//! `SET transaction_timeout = 0;` before PostgreSQL 17. The post-data section runs inside the
//! load's transaction (`around_data`), after the data and its row-count checks, before COMMIT.

use anyhow::{Context, Result};
use xshell::Shell;

use super::{load::LoadMode, source::SourceRead};
use crate::{
    config::{timeouts::LOCK_TIMEOUT, DbUrl, Side},
    ctx::Ctx,
    pg::{client, version::ToolVersion, PgTools, Tool},
};

/// The source's schema, cut where pg_restore cuts it.
struct SourceSchema {
    pre_data: String,
    post_data: String,
}

/// One target's view of the sections: what it can run, filtered for its version.
struct TargetSql {
    pre_data: String,
    post_data: String,
}

impl SourceSchema {
    /// `pg_dump --section=pre-data` and `--section=post-data` of the source, in its snapshot,
    /// both at once (each is mostly pg_dump's start-up and catalog reads).
    fn dump(tools: &PgTools, source: &SourceRead, side: Side) -> Result<Self> {
        let section = |name: &str| {
            let mut args = vec![
                "--no-owner".to_string(),
                "--no-privileges".to_string(),
                format!("--section={name}"),
            ];
            args.extend(source.dump_args());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let sh = Shell::new().context("starting a shell")?;
            tools
                .command(Tool::PgDump, side, &source.endpoint.url, &args)
                .read(&sh)
                .with_context(|| {
                    format!(
                        "dumping the {name} section of the schema of {}",
                        source.endpoint.url
                    )
                })
        };
        let (pre_data, post_data) = std::thread::scope(|scope| {
            let post_data = scope.spawn(|| section("post-data"));
            let pre_data = section("pre-data");
            let post_data = post_data
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the post-data dump's thread panicked")));
            (pre_data, post_data)
        });
        Ok(SourceSchema {
            pre_data: pre_data?,
            post_data: post_data?,
        })
    }

    /// Both sections as a `server` of this version can run them.
    fn for_target(&self, server: &ToolVersion) -> TargetSql {
        TargetSql {
            pre_data: filtered(&self.pre_data, server),
            post_data: filtered(&self.post_data, server),
        }
    }
}

/// The start of a `--schema source` copy: the source's two sections dumped (in its snapshot), the
/// pre-data section run on `target` now (committed on its own), and the post-data section
/// returned as the target can run it, for the load's transaction or to run at once.
pub fn create_pre_data(
    ctx: &Ctx,
    tools: &PgTools,
    source: (&SourceRead, Side),
    target: (&DbUrl, Side),
) -> Result<String> {
    let ((source, source_side), (target, target_side)) = (source, target);
    let schema = SourceSchema::dump(tools, source, source_side)?;
    let server = ctx.block_on(async {
        let conn = client::connect(target, ctx.timeout()).await?;
        client::server_version(&conn)
            .await
            .with_context(|| format!("reading the server version of {target}"))
    })?;
    let sql = schema.for_target(&server);
    run_section(
        ctx,
        tools,
        target,
        target_side,
        "pre-data section (schemas, extensions, types, tables, functions)",
        &sql.pre_data,
    )?;
    Ok(sql.post_data)
}

/// The dump's text without the settings the target must not get: those the `server` rejects
/// ([`ToolVersion::rejects_dump_setting`]: `SET transaction_timeout` before 17), and pg_dump's
/// `SET lock_timeout = 0;`, which inside the load's transaction would lift the load's bound on
/// lock waits for the post-data statements. Only pg_dump's own header is filtered: the same text
/// inside a function's body or a comment's literal further down is the source's, and is copied.
fn filtered(sql: &str, server: &ToolVersion) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_header = true;
    for line in sql.split_inclusive('\n') {
        let statement = line.trim_end();
        in_header = in_header && is_header_line(statement);
        let dropped = in_header
            && (statement == "SET lock_timeout = 0;" || server.rejects_dump_setting(statement));
        if !dropped {
            out.push_str(line);
        }
    }
    out
}

/// A line of what pg_dump writes before the first object: comments, blank lines, its settings and
/// psql meta-commands (`\restrict`).
fn is_header_line(line: &str) -> bool {
    line.is_empty()
        || line.starts_with("--")
        || line.starts_with("SET ")
        || line.starts_with("SELECT pg_catalog.set_config(")
        || line.starts_with('\\')
}

/// Runs `sql` (a pg_dump section) on `target` through psql, in one transaction.
pub fn run_section(
    ctx: &Ctx,
    tools: &PgTools,
    target: &DbUrl,
    side: Side,
    what: &str,
    sql: &str,
) -> Result<()> {
    tools
        .command(
            Tool::Psql,
            side,
            target,
            &["--quiet", "--single-transaction"],
        )
        .read_with_stdin(&ctx.sh, Some(bounded(sql, LOCK_TIMEOUT.get()?).as_bytes()))
        .with_context(|| {
            format!(
                "creating the source's {what} in {target} (each lock wait bounded by {})",
                LOCK_TIMEOUT.shown()
            )
        })?;
    Ok(())
}

/// `sql` with every lock wait bounded: an app session holding a table the section alters would
/// otherwise hold it, and every app query queued behind it, for ever. pg_dump's own header
/// setting (`SET lock_timeout = 0`) is filtered out ([`filtered`]), so this one stands.
fn bounded(sql: &str, limit: Option<std::time::Duration>) -> String {
    format!(
        "SET lock_timeout = '{}ms';\n{sql}",
        crate::config::timeouts::millis(limit)
    )
}

/// Whether the post-data section waits for the data. An upsert merges by primary key, so the
/// target's keys must exist before its data: the whole schema goes first then.
pub fn post_data_after_load(mode: LoadMode) -> bool {
    mode == LoadMode::Replace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_an_older_target_rejects_are_left_out() {
        let server = |num| ToolVersion::from_server_version_num(num).unwrap();
        let dump =
            "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET transaction_timeout = 0;\n\
                    CREATE TABLE public.t (x int);\n";
        let schema = SourceSchema {
            pre_data: dump.to_string(),
            post_data: String::new(),
        };
        let old = schema.for_target(&server(150004)).pre_data;
        assert_eq!(
            old,
            "SET statement_timeout = 0;\nCREATE TABLE public.t (x int);\n"
        );
        let body = "SET lock_timeout = 0;\nCREATE PROCEDURE public.p() LANGUAGE sql AS $$\n\
                    SET lock_timeout = 0;\nSET transaction_timeout = 0;\n$$;\n";
        let kept = SourceSchema {
            pre_data: body.to_string(),
            post_data: String::new(),
        }
        .for_target(&server(150004))
        .pre_data;
        assert_eq!(
            kept,
            "CREATE PROCEDURE public.p() LANGUAGE sql AS $$\nSET lock_timeout = 0;\n\
             SET transaction_timeout = 0;\n$$;\n",
            "a procedure's body is the source's: copied whole"
        );
        let new = schema.for_target(&server(170002)).pre_data;
        assert!(new.contains("SET transaction_timeout = 0;"), "{new}");
        assert!(!new.contains("SET lock_timeout"), "{new}");
    }
}
