//! db-pull's masking (issue 19): the data policy (`backend/data_policy.toml`, `policy/`) applied
//! on the source, so that no raw value of a masked column leaves it. Loaded in the preflight, before
//! anything local is touched: a missing policy, a source column without a decided rule, or a
//! missing key refuses the pull (exit 2). The data then comes from psql's `COPY (SELECT masked
//! ...) TO STDOUT` in the source's exported snapshot (`policy::dump`), in pg_dump's shape, so the
//! relay and the load take it as they take pg_dump's; the pads of the key reach psql only through
//! `PGOPTIONS` in its environment.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use super::{
    leak_scan::{scanned_columns, Scanned},
    source::SourceRead,
};
use crate::{
    config::{Database, Side},
    exit::UsageError,
    pg::{ident::QualifiedName, PgTools, PreparedCommand, Tool},
    policy::{
        columns::read_columns,
        dump::{masked_copy_args, policy_table, CopyPart},
        gate::{key_pads, needs_key, refuse_unclassified},
        mask::{Pads, KEY_VAR},
        policy_path, DbKey, Policy, TableKey,
    },
};

/// The policy of a masked pull, and the key's pads when a rule needs them.
pub struct Masking {
    policy: Policy,
    pads: Option<Pads>,
}

impl Masking {
    /// Reads the policy (`policy::policy_path`) and the key (`XTASK_MASK_KEY`, from the
    /// environment only, else `fallback`); a usage error when there is no policy or the key is
    /// missing or bad.
    pub fn load(fallback: Option<&str>) -> Result<Masking> {
        let path = policy_path();
        let Some((policy, _)) = Policy::load(&path)? else {
            return Err(UsageError::new(format!(
                "there is no data policy at {}: a pull masks the source's data by it, column by \
                 column. Restore the file (`cargo xtask data-policy init` writes one to decide), \
                 or pass --unmasked to copy every column as it is; nothing local was touched",
                path.display()
            ))
            .into());
        };
        let pads = match needs_key(&policy) {
            true => {
                let key = std::env::var(KEY_VAR).ok();
                Some(key_pads(key.as_deref().or(fallback))?)
            }
            false => None,
        };
        Ok(Masking { policy, pads })
    }

    /// Refuses (exit 2, each column named with the line to add) when a column of the source, read
    /// in its snapshot, has no decided rule that its type can take.
    pub async fn check_source(&self, db: Database, source: &SourceRead) -> Result<()> {
        let columns = read_columns(&source.client).await.with_context(|| {
            format!(
                "reading the columns of {} for the data policy",
                source.endpoint.url
            )
        })?;
        refuse_unclassified(&self.policy, DbKey::of(db), &columns, "the source")
    }

    /// psql printing the data of `tables` (masked, in the source's snapshot) as pg_dump's data
    /// dump prints it.
    pub fn data_command<'a>(
        &self,
        tools: &PgTools,
        source: &SourceRead,
        side: Side,
        db: Database,
        tables: impl IntoIterator<Item = &'a QualifiedName>,
    ) -> PreparedCommand {
        copy_command(
            tools,
            source,
            side,
            db,
            tables.into_iter().map(CopyPart::from),
            Some(self),
        )
    }

    /// The columns of `tables` that the leak scan reads (`leak_scan`).
    pub fn scanned_columns<'a>(
        &self,
        db: Database,
        source: &SourceRead,
        tables: impl IntoIterator<Item = &'a QualifiedName>,
    ) -> Vec<Scanned> {
        scanned_columns(&self.policy, db, source, tables)
    }

    /// Each selected table's columns that the policy changes (every rule but keep): their
    /// values differ from the source's by design, so a checksum leaves them out.
    pub fn masked_columns<'a>(
        &self,
        db: Database,
        source: &SourceRead,
        tables: impl IntoIterator<Item = &'a QualifiedName>,
    ) -> BTreeMap<QualifiedName, BTreeSet<String>> {
        tables
            .into_iter()
            .filter_map(|t| {
                let key = TableKey {
                    db: DbKey::of(db),
                    table: policy_table(&source.partitions.root_of(t)),
                };
                let entry = self.policy.tables.get(&key)?;
                let masked = entry.masked_columns();
                (!masked.is_empty()).then(|| (t.clone(), masked))
            })
            .collect()
    }
}

/// psql printing `parts` of the source's tables (in its snapshot) as pg_dump's data dump prints
/// them: masked by `masking`'s policy, or with `None` every column as it is (a parallel load's
/// ctid ranges, which pg_dump cannot print).
pub fn copy_command<'a>(
    tools: &PgTools,
    source: &SourceRead,
    side: Side,
    db: Database,
    parts: impl IntoIterator<Item = CopyPart<'a>>,
    masking: Option<&Masking>,
) -> PreparedCommand {
    let unmasked = Policy::default();
    let copy = masked_copy_args(
        &source.snapshot,
        &source.catalog,
        parts,
        masking.map_or(&unmasked, |m| &m.policy),
        DbKey::of(db),
        |t| source.partitions.root_of(t),
    );
    // psql's session as pg_dump sets its own, so the text of every value is what pg_dump
    // would print; a lock that waits is bounded as pg_dump's are; a row-level security
    // policy that would hide rows fails the copy instead.
    let mut settings = vec![
        "SET client_encoding = 'UTF8'".to_string(),
        "SET datestyle = 'ISO'".to_string(),
        "SET intervalstyle = 'postgres'".to_string(),
        "SET extra_float_digits = 3".to_string(),
        "SET statement_timeout = 0".to_string(),
        "SET row_security = off".to_string(),
    ];
    if let Some(limit) = source.lock_wait {
        settings.push(format!("SET lock_timeout = '{}ms'", limit.as_millis()));
    }
    // The load reads the rows in the encoding they are printed in.
    settings.push("\\qecho 'SET client_encoding = ''UTF8'';'".to_string());
    // `copy` starts with psql's options, then its `-c` commands: the settings go first.
    let first = copy.iter().position(|a| a == "-c").unwrap_or(copy.len());
    let mut args: Vec<String> = copy[..first].to_vec();
    for s in settings {
        args.push("-c".to_string());
        args.push(s);
    }
    args.extend_from_slice(&copy[first..]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let options = masking
        .and_then(|m| m.pads.as_ref())
        .map(|p| p.pgoptions(std::env::var("PGOPTIONS").ok().as_deref()));
    let env: Vec<(&str, &str)> = options
        .as_deref()
        .map(|o| ("PGOPTIONS", o))
        .into_iter()
        .collect();
    tools.command_with_env(Tool::Psql, side, &source.endpoint.url, &args, &env)
}
