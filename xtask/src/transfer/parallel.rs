//! A full pull's load into its staging database on several connections (`--jobs N`): each job
//! relays its own tables in the source's one snapshot (truncating its large ones first in its
//! transaction, so that their COPY may `FREEZE`), and its ctid range of each table big enough to
//! be split over the jobs (`ranges`: copied by psql, as a masked pull's tables are), then the
//! indexes (primary keys and unique ones included) are built spread over the connections and one
//! last transaction attaches the keys, re-adds the foreign keys and checks the counts.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context, Result};

use super::{
    copy::CopyStep,
    driver::Run,
    load::{with_freeze, LoadShaper},
    masking::copy_command,
    progress::ProgressDisplay,
    ranges,
    selection::dump_args,
};
use crate::pg::{
    client,
    ident::QualifiedName,
    stream::{self, CopyHeader, Shaper, StreamProgress, TableProgress},
    Tool,
};
use crate::policy::dump::CopyPart;

/// One job's relay: `BEGIN`, its large tables truncated, the COPY blocks (theirs `FREEZE`),
/// `COMMIT`.
struct FrozenJob {
    frozen: BTreeSet<QualifiedName>,
}

impl Shaper for FrozenJob {
    fn prologue(&mut self) -> String {
        if self.frozen.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .frozen
            .iter()
            .map(|t| format!("ONLY {}", t.sql()))
            .collect();
        format!("TRUNCATE TABLE {};\n", list.join(", "))
    }
    fn copy_header(&mut self, header: &CopyHeader, line: &str) -> String {
        match self.frozen.contains(&header.table) {
            true => with_freeze(line).unwrap_or_else(|| line.to_string()),
            false => line.to_string(),
        }
    }
    fn epilogue(&mut self, _loaded: &[TableProgress]) -> String {
        String::new()
    }
}

impl CopyStep<'_> {
    /// A staging database loaded by `jobs` relays at once, each with its own tables in the same
    /// snapshot: the set-up (foreign keys and secondary indexes off, triggers disabled) commits
    /// first, the relays commit each their own tables, the indexes are built on `jobs`
    /// connections, and the last transaction re-adds the foreign keys (validating every row),
    /// asserts every row count and restores the triggers. Any failure fails the load; the caller
    /// discards the staging database.
    pub(super) fn load_parallel(
        &self,
        run: &Run,
        shaper: &mut LoadShaper,
        jobs: usize,
    ) -> Result<(Vec<TableProgress>, BTreeMap<QualifiedName, usize>)> {
        // The jobs' threads get the tools and the runtime, never the Ctx (not Sync).
        let (rt, tools) = (&run.ctx.rt, run.tools);
        let timeout = run.ctx.timeout();
        let target = self.target;
        let setup = shaper.prologue();
        rt.block_on(async {
            let conn = client::connect(target, timeout).await?;
            conn.batch_execute(&format!("BEGIN;\n{setup}COMMIT;"))
                .await
                .with_context(|| format!("preparing {target} for a parallel load"))
        })?;

        // The big tables cut into ctid ranges, one per job (`ranges`), the others spread whole.
        let candidates = ranges::candidates(self.source, &self.selection.tables, jobs);
        let blocks = rt.block_on(ranges::read_blocks(self.source, &candidates))?;
        let parts = ranges::plan(&self.selection.tables, &self.source.sizes, &blocks, jobs);
        let split = ranges::split_tables(&parts);
        let large = self.large_tables();
        // Only a job's whole tables: a split one is loaded by several sessions at once.
        let frozen: Vec<BTreeSet<QualifiedName>> = parts
            .iter()
            .map(|work| {
                work.tables
                    .iter()
                    .filter(|t| large.contains(*t) && !shaper.schema().is_partitioned(t))
                    .cloned()
                    .collect()
            })
            .collect();
        let group = stream::JobGroup::default();
        let progress: Vec<StreamProgress> =
            parts.iter().map(|_| StreamProgress::default()).collect();
        let _display = run.ctx.out.progress_wanted().then(|| {
            ProgressDisplay::start(
                self.db.label(),
                self.source,
                self.selection,
                progress.clone(),
            )
        });
        let results: Vec<(Result<()>, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .enumerate()
                .map(|(i, work)| {
                    let (group, progress) = (&group, &progress[i]);
                    let frozen = frozen[i].clone();
                    s.spawn(move || {
                        let tables = &work.tables;
                        // Job 0 also sets every sequence; owned ones may come twice (same value).
                        let mut only: Vec<&QualifiedName> = tables.iter().collect();
                        if i == 0 {
                            only.extend(&self.source.sequences);
                        }
                        let dump = match (self.masking, work.ranges.is_empty()) {
                            // psql's copy (masked, or the ranges that pg_dump cannot print) sets
                            // no sequence: the last transaction sets them all (`finish`), as it
                            // does after pg_dump's.
                            (masking, false) | (masking @ Some(_), true) => {
                                let whole = tables.iter().map(CopyPart::from);
                                let ranges = work.ranges.iter().map(|(table, range)| CopyPart {
                                    table,
                                    only: Some(range.condition()),
                                });
                                copy_command(
                                    tools,
                                    self.source,
                                    self.source_side,
                                    self.db,
                                    whole.chain(ranges),
                                    masking,
                                )
                            }
                            (None, true) => {
                                let args = dump_args(self.source, Some(&only));
                                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                                tools.command(
                                    Tool::PgDump,
                                    self.source_side,
                                    &self.source.endpoint.url,
                                    &args,
                                )
                            }
                        };
                        // The job's number makes each psql's command line its own: a tool in a
                        // container is found (to be stopped) by its command line.
                        let job = format!("--variable=XTASK_JOB={i}");
                        let load =
                            tools.command(Tool::Psql, self.target_side, target, &["--quiet", &job]);
                        let logs = self.logs.job(i);
                        let result = stream::relay(
                            &dump,
                            &load,
                            &mut FrozenJob { frozen },
                            &logs.dump,
                            &logs.load,
                            progress,
                            Some(group),
                        );
                        // The job whose failure stops the others is the cause to report.
                        let cause = result.is_err() && group.cancel();
                        (result, cause)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (Err(anyhow!("a load job panicked")), true))
                })
                .collect()
        });
        // The job that failed first, not one stopped because another had failed.
        let mut errors: Vec<(anyhow::Error, bool)> = results
            .into_iter()
            .filter_map(|(r, cause)| r.err().map(|e| (e, cause)))
            .collect();
        if !errors.is_empty() {
            let first = errors.iter().position(|(_, cause)| *cause).unwrap_or(0);
            return Err(errors.swap_remove(first).0);
        }
        run.phases.data_sent(Some(std::time::Instant::now()));
        crate::interrupt::check("the data load")?;
        let loaded: Vec<TableProgress> =
            progress.iter().flat_map(StreamProgress::snapshot).collect();
        ranges::check_ranges_rows(self.source, &split, &loaded)?;

        // Every index, the keys' included: the biggest tables' first, spread over the connections.
        let mut builds = shaper.index_builds();
        builds.sort_by_key(|(t, _)| std::cmp::Reverse(self.source.sizes.get(t).copied()));
        let mut lanes: Vec<Vec<String>> = vec![Vec::new(); jobs.min(builds.len()).max(1)];
        for (i, (_, sql)) in builds.into_iter().enumerate() {
            let n = lanes.len();
            lanes[i % n].push(sql);
        }
        let constraints = shaper.constraints();
        rt.block_on(async {
            build_on_lanes(target, timeout, &lanes, "").await?;
            let conn = client::connect(target, timeout).await?;
            conn.batch_execute(&format!("BEGIN;\n{constraints}COMMIT;"))
                .await
                .with_context(|| {
                    format!("checking {target} after the parallel load (foreign keys, row counts)")
                })
        })?;
        Ok((loaded, split))
    }
}

/// Runs each lane's statements on a connection of its own, the lanes at once: each statement in
/// its own transaction, so that a lane holds one table's lock at a time and no two lanes can wait
/// for each other (an `ALTER TABLE` beside a `CREATE INDEX` on the same table only waits). Each
/// connection first runs `setup` (settings).
pub(super) async fn build_on_lanes(
    target: &crate::config::DbUrl,
    timeout: std::time::Duration,
    lanes: &[Vec<String>],
    setup: &str,
) -> Result<()> {
    futures_util::future::try_join_all(lanes.iter().filter(|l| !l.is_empty()).map(
        |lane| async move {
            let conn = client::connect(target, timeout).await?;
            if !setup.is_empty() {
                conn.batch_execute(setup)
                    .await
                    .with_context(|| format!("setting up an index build session on {target}"))?;
            }
            for sql in lane {
                conn.batch_execute(sql).await.with_context(|| {
                    format!("building indexes in {target}: {}", first_statement(sql))
                })?;
            }
            anyhow::Ok(())
        },
    ))
    .await?;
    Ok(())
}

/// The first line of `sql` that is neither a comment nor a setting, for an error message.
fn first_statement(sql: &str) -> &str {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with("SET "))
        .unwrap_or("")
}
