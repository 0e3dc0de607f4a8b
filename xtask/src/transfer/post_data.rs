//! `--schema source`'s post-data section cut for a parallel load (`--jobs N`), pgcopydb's order:
//! its indexes and key constraints (pg_dump's `INDEX` and `CONSTRAINT` entries: primary keys,
//! unique and exclusion constraints) built first, spread over the connections; then the rest of
//! the section in pg_dump's order and in one transaction (index attachments, foreign keys, which
//! validate every row, triggers, rules, policies, comments).
//!
//! The section is cut at pg_dump's entry headers (`--` / `-- Name: ...; Type: ...` / `--`).
//! The `SET default_tablespace` that pg_dump writes before an entry whose tablespace differs goes
//! with that entry: each of them runs after the tablespace in force at its place in the dump.

/// The section, cut.
#[derive(Debug, Default, PartialEq)]
pub struct PostDataPlan {
    /// pg_dump's settings before the first entry (without psql's meta-commands), for every
    /// connection that builds.
    pub settings: String,
    /// The `INDEX` and `CONSTRAINT` entries, each with its tablespace setting and the name line
    /// pg_dump gave it (`-- Name: table index; Type: INDEX; Schema: public; ...`).
    pub builds: Vec<Build>,
    /// The section without those entries, to run after them.
    pub rest: String,
}

/// One index or key constraint to build.
#[derive(Debug, PartialEq)]
pub struct Build {
    /// `Schema` and `Name` of pg_dump's header (the name starts with its table's).
    pub schema: String,
    pub name: String,
    pub sql: String,
}

use std::collections::BTreeMap;

use anyhow::Result;

use super::{driver::Run, parallel::build_on_lanes, sections};
use crate::{
    config::{
        timeouts::{millis, LOCK_TIMEOUT},
        DbUrl, Side,
    },
    pg::ident::QualifiedName,
};

const NAME: &str = "-- Name: ";
const DUMP_END: &str = "-- PostgreSQL database dump complete";

impl PostDataPlan {
    pub fn cut(section: &str) -> PostDataPlan {
        let lines: Vec<&str> = section.split_inclusive('\n').collect();
        let is_header = |i: usize| {
            lines[i].trim_end() == "--"
                && lines.get(i + 2).is_some_and(|l| l.trim_end() == "--")
                && lines
                    .get(i + 1)
                    .is_some_and(|l| l.starts_with(NAME) || l.trim_end() == DUMP_END)
        };
        let starts: Vec<usize> = (0..lines.len()).filter(|i| is_header(*i)).collect();
        let first = starts.first().copied().unwrap_or(lines.len());
        let preamble: String = lines[..first].concat();
        let mut plan = PostDataPlan {
            settings: preamble
                .split_inclusive('\n')
                .filter(|l| !l.starts_with('\\'))
                .collect(),
            builds: Vec::new(),
            rest: preamble.clone(),
        };
        let mut tablespace = last_tablespace(&preamble).unwrap_or_default();
        for (n, start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(lines.len());
            let entry: String = lines[*start..end].concat();
            let (body, next_tablespace) = split_trailing_tablespace(&entry);
            let header = lines[start + 1].trim_end();
            match entry_kind(header) {
                Some((kind, schema, name)) if kind == "INDEX" || kind == "CONSTRAINT" => {
                    plan.builds.push(Build {
                        schema: schema.to_string(),
                        name: name.to_string(),
                        sql: format!("{tablespace}{body}"),
                    });
                }
                _ => {
                    plan.rest.push_str(&tablespace);
                    plan.rest.push_str(body);
                }
            }
            if let Some(next) = next_tablespace {
                tablespace = next;
            }
        }
        plan
    }
}

impl PostDataPlan {
    /// The builds on `jobs` lanes, the largest tables' first (a build's table is found by the
    /// start of its entry's name).
    pub fn lanes(&self, sizes: &BTreeMap<QualifiedName, i64>, jobs: usize) -> Vec<Vec<String>> {
        let size = |b: &Build| {
            sizes
                .iter()
                .filter(|(t, _)| {
                    t.schema == b.schema
                        && b.name.len() > t.name.len()
                        && b.name.starts_with(&t.name)
                        && b.name.as_bytes()[t.name.len()] == b' '
                })
                .map(|(_, s)| *s)
                .max()
                .unwrap_or(0)
        };
        let mut builds: Vec<&Build> = self.builds.iter().collect();
        builds.sort_by_key(|b| std::cmp::Reverse(size(b)));
        let mut lanes: Vec<Vec<String>> = vec![Vec::new(); jobs.min(builds.len()).max(1)];
        for (i, b) in builds.into_iter().enumerate() {
            let n = lanes.len();
            lanes[i % n].push(b.sql.clone());
        }
        lanes
    }
}

/// A staging database's post-data section after a parallel load: the indexes and key
/// constraints on `jobs` connections at once (each lock wait bounded), then the rest in one
/// transaction.
pub fn run_parallel(
    run: &Run,
    target: &DbUrl,
    side: Side,
    post_data: &str,
    sizes: &BTreeMap<QualifiedName, i64>,
    jobs: usize,
) -> Result<()> {
    let plan = PostDataPlan::cut(post_data);
    let setup = format!(
        "{}SET lock_timeout = '{}ms';\n",
        plan.settings,
        millis(LOCK_TIMEOUT.get()?)
    );
    let ctx = run.ctx;
    ctx.block_on(build_on_lanes(
        target,
        ctx.timeout(),
        &plan.lanes(sizes, jobs),
        &setup,
    ))?;
    sections::run_section(
        ctx,
        run.tools,
        target,
        side,
        "post-data section (index attachments, foreign keys, triggers, policies)",
        &plan.rest,
    )
}

/// `Type`, `Schema` and `Name` of an entry's header line.
fn entry_kind(header: &str) -> Option<(&str, &str, &str)> {
    let rest = header.strip_prefix(NAME)?;
    let (name, rest) = rest.split_once("; Type: ")?;
    let (kind, rest) = rest.split_once("; Schema: ")?;
    let (schema, _) = rest.split_once("; Owner: ")?;
    Some((kind, schema, name))
}

fn is_tablespace_setting(line: &str) -> bool {
    line.starts_with("SET default_tablespace = ") && line.trim_end().ends_with(';')
}

/// The last `SET default_tablespace` line of `text`, with its newline.
fn last_tablespace(text: &str) -> Option<String> {
    text.split_inclusive('\n')
        .rev()
        .find(|l| is_tablespace_setting(l))
        .map(|l| format!("{}\n", l.trim_end()))
}

/// An entry without the `SET default_tablespace` lines at its end (they are for the next entry),
/// and the last of them.
fn split_trailing_tablespace(entry: &str) -> (&str, Option<String>) {
    let mut cut = entry.len();
    let mut found = None;
    for line in entry.split_inclusive('\n').collect::<Vec<_>>().iter().rev() {
        if line.trim().is_empty() {
            cut -= line.len();
        } else if is_tablespace_setting(line) {
            found.get_or_insert_with(|| format!("{}\n", line.trim_end()));
            cut -= line.len();
        } else {
            break;
        }
    }
    match found {
        Some(ts) => (&entry[..cut], Some(ts)),
        None => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTION: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\
        SET default_tablespace = '';\n\n\
        --\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\n\
        ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n\n\
        SET default_tablespace = fast;\n\n\
        --\n-- Name: t t_v_idx; Type: INDEX; Schema: public; Owner: -\n--\n\n\
        CREATE INDEX t_v_idx ON public.t USING btree (v);\n\n\n\
        SET default_tablespace = '';\n\n\
        --\n-- Name: u u_t_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -\n--\n\n\
        ALTER TABLE ONLY public.u\n    ADD CONSTRAINT u_t_fkey FOREIGN KEY (t) REFERENCES public.t(id);\n\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn indexes_and_keys_are_built_apart_each_in_its_tablespace() {
        let plan = PostDataPlan::cut(SECTION);
        assert!(!plan.settings.contains("\\restrict"), "{}", plan.settings);
        assert!(plan.settings.contains("set_config('search_path', ''"));
        let names: Vec<&str> = plan.builds.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["t t_pkey", "t t_v_idx"]);
        assert!(plan.builds[0]
            .sql
            .starts_with("SET default_tablespace = '';\n--\n"));
        assert!(plan.builds[0].sql.contains("PRIMARY KEY (id);"));
        assert!(
            !plan.builds[0].sql.contains("fast"),
            "{}",
            plan.builds[0].sql
        );
        assert!(plan.builds[1]
            .sql
            .starts_with("SET default_tablespace = fast;\n"));
        assert_eq!(plan.builds[1].schema, "public");
        assert!(plan.rest.starts_with("--\n-- PostgreSQL database dump\n"));
        assert!(plan.rest.contains("FOREIGN KEY (t)"), "{}", plan.rest);
        assert!(plan.rest.contains("\\unrestrict abc"), "{}", plan.rest);
        assert!(!plan.rest.contains("CREATE INDEX"), "{}", plan.rest);
        assert!(!plan.rest.contains("PRIMARY KEY"), "{}", plan.rest);
    }

    #[test]
    fn the_largest_tables_builds_lead_the_lanes() {
        let plan = PostDataPlan::cut(SECTION);
        let sizes = [
            (QualifiedName::new("public", "t"), 10),
            (QualifiedName::new("public", "t t"), 99),
        ]
        .into();
        let lanes = plan.lanes(&sizes, 4);
        assert_eq!(lanes.len(), 2);
        assert!(lanes[0][0].contains("t_pkey"), "{lanes:?}");
        assert_eq!(plan.lanes(&sizes, 1).len(), 1);
    }

    #[test]
    fn a_section_without_entries_is_all_rest() {
        let plan = PostDataPlan::cut("SET x = 1;\n");
        assert!(plan.builds.is_empty());
        assert_eq!(plan.rest, "SET x = 1;\n");
    }
}
