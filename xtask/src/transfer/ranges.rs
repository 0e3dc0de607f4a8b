//! A parallel load's big tables cut into ctid ranges (issue 17), so that `--jobs N` helps when one
//! table holds most of the rows: a selected table larger than the selection's total over the jobs
//! (and at least [`SPLIT_MIN_BYTES`]) is split into one block range per job, each copied by its
//! job's psql as `COPY (SELECT ... WHERE ctid >= '(a,0)' AND ctid < '(b,0)') TO STDOUT` in the
//! source's exported snapshot (masked by the data policy, or the plain column list). PostgreSQL
//! 14 and later read such a range by a TID range scan: only its blocks; an older source is not
//! split (each job would read the whole table).
//!
//! The number of blocks is read in the snapshot's session, but a relation may grow after it: the
//! last range has no upper bound, so no row can fall outside every range. A split table is loaded
//! by several sessions at once: it is neither truncated in a job's transaction nor `COPY FREEZE`d,
//! and its row count is asserted as every table's is, its ranges' rows summed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

use super::{selection::spread, source::SourceRead};
use crate::{
    pg::{ident::QualifiedName, stream::TableProgress},
    verify::catalog::TableKind,
};

/// The smallest table (on disk: heap, indexes, TOAST) that a parallel load splits.
pub const SPLIT_MIN_BYTES: i64 = 8 << 20;

/// The oldest source whose server reads a ctid range by a TID range scan.
const TID_RANGE_SCAN_MAJOR: u32 = 14;

/// Blocks `start..end` of a table's heap; `end` `None`: every block from `start` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl BlockRange {
    /// The SQL condition on `ctid` that selects the rows stored in these blocks.
    pub fn condition(&self) -> String {
        let tid = |block: u64| format!("'({block},0)'::pg_catalog.tid");
        let mut parts = Vec::new();
        if self.start > 0 {
            parts.push(format!("ctid >= {}", tid(self.start)));
        }
        if let Some(end) = self.end {
            parts.push(format!("ctid < {}", tid(end)));
        }
        match parts.is_empty() {
            true => "true".to_string(),
            false => parts.join(" AND "),
        }
    }
}

/// `blocks` cut into at most `parts` ranges of nearly equal size, in order, that cover every
/// block once; the last one open-ended.
pub fn split_blocks(blocks: u64, parts: usize) -> Vec<BlockRange> {
    let parts = (parts.max(1) as u64).min(blocks.max(1));
    (0..parts)
        .map(|i| BlockRange {
            start: blocks * i / parts,
            end: (i + 1 < parts).then(|| blocks * (i + 1) / parts),
        })
        .collect()
}

/// One job's share of a parallel load: whole tables, and ranges of split ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobWork {
    pub tables: Vec<QualifiedName>,
    pub ranges: Vec<(QualifiedName, BlockRange)>,
}

/// The tables of `selection` worth splitting over `jobs` by their size on disk: more than the
/// total over the jobs, at least [`SPLIT_MIN_BYTES`], plain tables (a partitioned one holds no
/// rows itself).
pub fn candidates(
    source: &SourceRead,
    selection: &BTreeSet<QualifiedName>,
    jobs: usize,
) -> Vec<QualifiedName> {
    if jobs < 2 || source.version.major < TID_RANGE_SCAN_MAJOR {
        return Vec::new();
    }
    let size = |t: &QualifiedName| source.sizes.get(t).copied().unwrap_or(0);
    let total: i64 = selection.iter().map(size).sum();
    selection
        .iter()
        .filter(|t| size(t) >= SPLIT_MIN_BYTES && size(t) > total / jobs as i64)
        .filter(|t| {
            source
                .catalog
                .tables
                .get(*t)
                .is_some_and(|t| t.kind == TableKind::Ordinary)
        })
        .cloned()
        .collect()
}

/// Each table's heap size in blocks, read in the source's snapshot session.
pub async fn read_blocks(
    source: &SourceRead,
    tables: &[QualifiedName],
) -> Result<BTreeMap<QualifiedName, u64>> {
    let mut out = BTreeMap::new();
    for table in tables {
        let row = source
            .client
            .query_one(
                "SELECT pg_catalog.pg_relation_size($1::pg_catalog.text::pg_catalog.regclass) \
                 / pg_catalog.current_setting('block_size')::pg_catalog.int8",
                &[&table.sql()],
            )
            .await
            .with_context(|| {
                format!(
                    "reading the size of {table} in blocks on {}",
                    source.endpoint.url
                )
            })?;
        out.insert(
            table.clone(),
            u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        );
    }
    Ok(out)
}

/// The jobs' work: each split table's ranges one per job (from the first), then the other tables
/// biggest first onto the least loaded job (a range weighs its share of its table's size). Jobs
/// left with nothing are dropped.
pub fn plan(
    tables: &BTreeSet<QualifiedName>,
    sizes: &BTreeMap<QualifiedName, i64>,
    blocks: &BTreeMap<QualifiedName, u64>,
    jobs: usize,
) -> Vec<JobWork> {
    let jobs = jobs.max(1);
    let mut work = vec![JobWork::default(); jobs];
    let mut loads = vec![0i64; jobs];
    for (table, &n) in blocks {
        let ranges = split_blocks(n, jobs);
        // A table of one block (or none) gains nothing from a split.
        if ranges.len() < 2 {
            continue;
        }
        let share = sizes.get(table).copied().unwrap_or(0) / ranges.len() as i64;
        for (i, range) in ranges.into_iter().enumerate() {
            work[i].ranges.push((table.clone(), range));
            loads[i] += share;
        }
    }
    let whole: BTreeSet<QualifiedName> = tables
        .iter()
        .filter(|t| !work.iter().any(|w| w.ranges.iter().any(|(r, _)| r == *t)))
        .cloned()
        .collect();
    for (i, list) in spread(&whole, sizes, loads).into_iter().enumerate() {
        work[i].tables = list;
    }
    work.retain(|w| !w.tables.is_empty() || !w.ranges.is_empty());
    work
}

/// The tables split and into how many ranges.
pub fn split_tables(work: &[JobWork]) -> BTreeMap<QualifiedName, usize> {
    let mut out = BTreeMap::new();
    for (table, _) in work.iter().flat_map(|w| &w.ranges) {
        *out.entry(table.clone()).or_insert(0) += 1;
    }
    out
}

/// Each split table's rows relayed, summed over its ranges, against the source's count: a
/// range lost or copied twice fails the load here, before its checks in the target.
pub fn check_ranges_rows(
    source: &SourceRead,
    split: &BTreeMap<QualifiedName, usize>,
    loaded: &[TableProgress],
) -> Result<()> {
    for table in split.keys() {
        let relayed: u64 = loaded
            .iter()
            .filter(|p| &p.header.table == table)
            .map(|p| p.rows)
            .sum();
        let want = source.rows(table);
        if i64::try_from(relayed).ok() != Some(want) {
            bail!(
                "{table}: its ctid ranges relayed {relayed} rows, the source's snapshot holds \
                 {want}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block `0..blocks` in exactly one range, in order, the last one open-ended.
    fn assert_covers(blocks: u64, parts: usize) {
        let ranges = split_blocks(blocks, parts);
        assert!(!ranges.is_empty());
        assert!(ranges.len() <= parts.max(1), "{ranges:?}");
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges.last().unwrap().end, None, "{ranges:?}");
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, Some(pair[1].start), "{ranges:?}");
            assert!(pair[1].start > pair[0].start, "{ranges:?}");
        }
        for block in 0..blocks {
            let holding = ranges
                .iter()
                .filter(|r| block >= r.start && r.end.is_none_or(|e| block < e))
                .count();
            assert_eq!(holding, 1, "block {block} of {blocks} in {ranges:?}");
        }
    }

    #[test]
    fn block_ranges_cover_every_block_once_and_the_last_is_open() {
        for blocks in [0, 1, 2, 3, 7, 100, 1001, 4096] {
            for parts in [0, 1, 2, 3, 4, 8] {
                assert_covers(blocks, parts);
            }
        }
        assert_eq!(
            split_blocks(10, 3),
            vec![
                BlockRange {
                    start: 0,
                    end: Some(3)
                },
                BlockRange {
                    start: 3,
                    end: Some(6)
                },
                BlockRange {
                    start: 6,
                    end: None
                },
            ]
        );
        // Fewer blocks than parts: one range per block at most.
        assert_eq!(split_blocks(2, 8).len(), 2);
    }

    #[test]
    fn conditions_bound_the_ctid_and_leave_the_last_range_open() {
        let first = BlockRange {
            start: 0,
            end: Some(512),
        };
        assert_eq!(first.condition(), "ctid < '(512,0)'::pg_catalog.tid");
        let mid = BlockRange {
            start: 512,
            end: Some(1024),
        };
        assert_eq!(
            mid.condition(),
            "ctid >= '(512,0)'::pg_catalog.tid AND ctid < '(1024,0)'::pg_catalog.tid"
        );
        let last = BlockRange {
            start: 1024,
            end: None,
        };
        assert_eq!(last.condition(), "ctid >= '(1024,0)'::pg_catalog.tid");
        let all = BlockRange {
            start: 0,
            end: None,
        };
        assert_eq!(all.condition(), "true");
    }

    #[test]
    fn a_plan_gives_each_job_a_range_and_the_rest_by_size() {
        let t = |n: &str| QualifiedName::new("public", n);
        let sizes: BTreeMap<QualifiedName, i64> =
            [(t("big"), 1000), (t("mid"), 300), (t("small"), 100)].into();
        let tables: BTreeSet<QualifiedName> = sizes.keys().cloned().collect();
        let blocks: BTreeMap<QualifiedName, u64> = [(t("big"), 100)].into();
        let work = plan(&tables, &sizes, &blocks, 2);
        assert_eq!(work.len(), 2);
        assert_eq!(
            work[0].ranges,
            vec![(
                t("big"),
                BlockRange {
                    start: 0,
                    end: Some(50)
                }
            )]
        );
        assert_eq!(
            work[1].ranges,
            vec![(
                t("big"),
                BlockRange {
                    start: 50,
                    end: None
                }
            )]
        );
        // Both jobs weigh 500 after the ranges: mid onto the first, small onto the second.
        assert_eq!(work[0].tables, vec![t("mid")]);
        assert_eq!(work[1].tables, vec![t("small")]);
        assert_eq!(split_tables(&work), [(t("big"), 2)].into());
        // A table of one block is not split: it goes whole to a job.
        let one: BTreeMap<QualifiedName, u64> = [(t("big"), 1)].into();
        let work = plan(&tables, &sizes, &one, 2);
        assert!(work.iter().all(|w| w.ranges.is_empty()), "{work:?}");
        assert_eq!(work[0].tables, vec![t("big")]);
        assert_eq!(work[1].tables, vec![t("mid"), t("small")]);
        // More jobs than work: no empty job.
        assert_eq!(plan(&tables, &sizes, &BTreeMap::new(), 8).len(), 3);
    }
}
