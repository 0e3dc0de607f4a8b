//! The verification that ends every copy: the target against the source's snapshot with the
//! db-verify engine (exact row counts, optional checksums, the Alembic revision, orphans and
//! sequences), judged for what a copy must hold.

use std::time::Duration;

use anyhow::{bail, Result};

use super::{
    copy::CopyStep, driver::Run, leak_scan, load::LoadMode, phases::Phase, selection::Selection,
    source::SourceRead, SchemaMode,
};
use crate::{
    alembic::AlembicConfig,
    config::Database,
    pg::{client, ident::QualifiedName, stream::LoadFailure},
    verify::{
        self,
        catalog::{self, Snapshot},
        recreate::Candidate,
        AlembicHeads, Change, DatabaseComparison, Endpoint, Field, SchemaDifference, SchemaObject,
        TableStatus, NOT_READABLE,
    },
};

impl CopyStep<'_> {
    /// Verifies the target against the source's snapshot; returns the summary line and the
    /// warnings (already said), or fails listing every problem.
    pub fn verify(&self, run: &Run) -> Result<(String, Vec<String>)> {
        run.phases.time(Phase::Verify, || self.verify_untimed(run))
    }

    fn verify_untimed(&self, run: &Run) -> Result<(String, Vec<String>)> {
        let (ctx, copy) = (run.ctx, run.copy);
        let label = self.db.label();
        let heads = (copy.schema == SchemaMode::Migrations).then(|| AlembicHeads {
            config: AlembicConfig::of(self.db).ini().to_string(),
            heads: self.heads.to_vec(),
            error: None,
        });
        let expect = Expectations {
            selection: self.selection,
            mode: self.mode,
            alembic: !self.selection.partial && !copy.allow_revision_mismatch,
            checksums: copy.checksums,
            heads,
            schema_from_source: copy.schema == SchemaMode::Source,
            masked: self
                .masking
                .map(|m| m.masked_columns(self.db, self.source, &self.selection.tables))
                .unwrap_or_default(),
            alike: self.alike,
        };
        let target = Endpoint::new(self.target_side.label(), self.target.clone());
        let check = ctx.block_on(verify_copy(
            self.db,
            self.source,
            &target,
            &expect,
            ctx.timeout(),
        ))?;
        for w in &check.warnings {
            ctx.say(format!("{label}: warning: {w}"));
        }
        if !check.problems.is_empty() {
            bail!(
                "{label}: the {} copy does not match the source's snapshot:\n  {}",
                self.target_side.label(),
                check.problems.join("\n  ")
            );
        }
        if let Some(masking) = self.masking {
            let scanned = masking.scanned_columns(self.db, self.source, &self.selection.tables);
            let leaks = ctx.block_on(async {
                let local = client::connect(self.target, ctx.timeout()).await?;
                leak_scan::leaks(self.source, &local, &scanned).await
            })?;
            if !leaks.is_empty() {
                bail!(
                    "{label}: the masking did not hold: the {} copy holds source values of masked \
                     columns (the data policy's rules, or a keep_where, let them through):\n  {}",
                    self.target_side.label(),
                    leaks.join("\n  ")
                );
            }
            ctx.say(format!(
                "{label}: masking checked: none of {} masked column(s) holds a source value",
                scanned.len()
            ));
        }
        let summary = check.summary(&expect, self.source);
        ctx.say(format!("verified against the source's snapshot: {summary}"));
        Ok((summary, check.warnings))
    }
}

/// What the verification after a copy found.
pub struct CopyCheck {
    pub comparison: DatabaseComparison,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl CopyCheck {
    /// The line for a copy that passed. When the two sides are equal, db-verify's own summary;
    /// otherwise what was judged and held (the copied tables: a partial copy does not compare the
    /// others, and upsert keeps the target's extra rows), never the comparison's "DIFFERENT" of
    /// what the copy did not touch.
    fn summary(&self, expect: &Expectations<'_>, source: &SourceRead) -> String {
        let c = &self.comparison;
        if c.equal {
            return c.summary();
        }
        let copied: Vec<_> = c
            .tables
            .iter()
            .filter(|t| expect.selection.tables.contains(&t.name()))
            .collect();
        // Each row once: a partitioned table's rows are its partitions'.
        let rows: i64 = copied
            .iter()
            .filter(|t| !source.is_partitioned(&t.name()))
            .filter_map(|t| t.right_rows)
            .sum();
        let held = match expect.mode {
            LoadMode::Replace if expect.checksums => "as in the source, checksums match",
            LoadMode::Replace => "as in the source",
            LoadMode::Upsert => "holding at least the source's rows",
        };
        let mut line = format!(
            "{}: {} copied table(s), {rows} rows, {held}",
            c.database.label(),
            copied.len()
        );
        if expect.selection.partial {
            line += "; the tables not selected were not compared";
        }
        if !self.warnings.is_empty() {
            line += &format!("; {} warning(s) above", self.warnings.len());
        }
        line
    }
}

/// What must hold after a copy.
pub struct Expectations<'a> {
    pub selection: &'a Selection,
    pub mode: LoadMode,
    /// Compare the Alembic revisions of both sides.
    pub alembic: bool,
    pub checksums: bool,
    pub heads: Option<AlembicHeads>,
    /// The target's schema was made from the source's (`--schema source`): it must be the
    /// source's, so a difference of structure is a failure, not a warning.
    pub schema_from_source: bool,
    /// A masked pull's columns that the policy changes, per table: left out of the checksums
    /// (their values differ from the source's by design; counts and the rest are compared).
    pub masked: verify::Unchecked,
    /// Definitions printed differently on the two sides, the same once re-created: warnings.
    pub alike: &'a [Candidate],
}

/// Verifies the target against the source's snapshot: exact row counts (and checksums) of every
/// copied table, the Alembic revision, no orphans and no sequence behind its column on the target.
/// Schema differences are warnings with `--schema migrations` (the schema is this repo's), except
/// a sequence's position in a full replace copy, which the copy sets: a failure. With `--schema
/// source` every difference of structure is a failure (see `schema_must_match`).
pub async fn verify_copy(
    db: Database,
    source: &SourceRead,
    target: &Endpoint,
    expect: &Expectations<'_>,
    timeout: Duration,
) -> Result<CopyCheck> {
    let url = &target.url;
    let mut conn = client::connect(url, timeout).await?;
    let tx = catalog::begin(&mut conn, url).await?;
    let target_catalog = catalog::read_catalog(&tx, url).await?;
    let (mut source_plans, mut target_plans) =
        verify::plans(&source.catalog, &target_catalog, expect.checksums);
    verify::leave_out(&mut source_plans, &expect.masked);
    verify::leave_out(&mut target_plans, &expect.masked);
    // Both sides at once: the target's counts (and checksums) on its connection, the source's
    // checksums in its snapshot on the connection that holds it.
    let source_side = async {
        if expect.checksums {
            catalog::measure(
                &source.client,
                &source.endpoint.url,
                &source.catalog,
                &source_plans,
            )
            .await
        } else {
            Ok(source.measures.clone())
        }
    };
    let (target_measures, source_measures) = tokio::join!(
        catalog::measure(&tx, url, &target_catalog, &target_plans),
        source_side
    );
    let (target_measures, source_measures) = (target_measures?, source_measures?);
    let _ = tx.rollback().await;
    let db_source = Snapshot {
        catalog: source.catalog.clone(),
        measures: source_measures,
    };
    let db_target = Snapshot {
        catalog: target_catalog,
        measures: target_measures,
    };
    let comparison = verify::build(
        db,
        &source.endpoint,
        target,
        &db_source,
        &db_target,
        expect.heads.as_ref(),
        expect.checksums,
    );
    Ok(judge(comparison, expect, &target.side))
}

fn judge(comparison: DatabaseComparison, expect: &Expectations<'_>, target: &str) -> CopyCheck {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for t in &comparison.tables {
        let name = t.name();
        if !expect.selection.tables.contains(&name) {
            if t.status == TableStatus::OnlyRight && !expect.selection.partial {
                warnings.push(format!(
                    "{name} exists only on {target} ({} rows): the source has no such table",
                    t.right_rows.unwrap_or(0)
                ));
            }
            continue;
        }
        let (src, dst) = (t.left_rows.unwrap_or(0), t.right_rows.unwrap_or(0));
        let bad = match (expect.mode, t.status) {
            (_, TableStatus::Ok) => false,
            // Upsert keeps the target's other rows: at least the source's must be there.
            (LoadMode::Upsert, TableStatus::RowsDiffer) => dst < src,
            (LoadMode::Upsert, TableStatus::ChecksumDiffers) => false,
            _ => true,
        };
        if bad {
            problems.push(match t.status {
                TableStatus::OnlyLeft => format!("{name}: missing on {target}"),
                TableStatus::ChecksumDiffers => {
                    format!("{name}: same {src} rows but different contents (checksums)")
                }
                _ => format!("{name}: {src} rows in the source, {dst} on {target}"),
            });
        }
    }
    if expect.alembic {
        problems.extend(
            comparison
                .alembic
                .findings
                .iter()
                .map(|f| format!("Alembic: {f}")),
        );
    }
    // Orphans the source has too (a NOT VALID foreign key lets them be), the same rows by their
    // referencing keys, are copied exactly: a warning. Any other orphan on the target is a loss.
    for orphan in comparison.orphans.iter().filter(|o| o.side == target) {
        let in_source = comparison
            .orphans
            .iter()
            .any(|o| o.side != target && o.same_orphans_as(orphan));
        if in_source {
            warnings.push(format!("{orphan}, as in the source"));
        } else {
            problems.push(orphan.to_string());
        }
    }
    problems.extend(
        comparison
            .sequences
            .iter()
            .filter(|s| s.side == target)
            .map(|s| s.to_string()),
    );
    if !expect.selection.partial {
        for d in &comparison.schema_differences {
            if expect.alike.iter().any(|c| c.explains(d)) {
                warnings.push(format!(
                    "schema: {d} (printed differently, the same definition once re-created)"
                ));
            } else if position_must_match(d, expect.mode) || schema_must_match(d, expect) {
                problems.push(format!("schema: {d}"));
            } else {
                warnings.push(format!("schema: {d}"));
            }
        }
    }
    CopyCheck {
        comparison,
        problems,
        warnings,
    }
}

/// A full replace copy sets every sequence both sides have to the source's position (see
/// `super::finish`): one at another position means the copy is not exact. Upsert keeps the
/// target's sequences, and a position that a side may not read cannot be judged: warnings.
fn position_must_match(d: &SchemaDifference, mode: LoadMode) -> bool {
    let readable = |v: &Option<String>| v.as_deref().is_some_and(|v| v != NOT_READABLE);
    mode == LoadMode::Replace
        && matches!(d.object, SchemaObject::Sequence(_))
        && d.change == Change::Field(Field::LastValue)
        && readable(&d.left)
        && readable(&d.right)
}

/// With `--schema source`, the copy's structure is the source's: any object missing, added or
/// defined otherwise is a failure. Two differences stay warnings: an extension's version (pg_dump
/// creates the extension at the target server's default version, which the copy cannot choose)
/// and a sequence's position that the copy does not set (an upsert keeps the target's).
fn schema_must_match(d: &SchemaDifference, expect: &Expectations<'_>) -> bool {
    expect.schema_from_source
        && d.change != Change::Field(Field::Version)
        && d.change != Change::Field(Field::LastValue)
}

/// The table that a failed load was at, when the failure says.
pub fn failed_table(err: &anyhow::Error) -> Option<QualifiedName> {
    err.chain()
        .find_map(|c| c.downcast_ref::<LoadFailure>())
        .and_then(|f| f.table.clone())
}
