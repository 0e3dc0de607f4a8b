//! The Alembic part of a comparison: each side's revision, whether it is at its config's head,
//! and more than one head as a finding.

use std::path::Path;

use serde::Serialize;
use xshell::Shell;

use super::catalog::Catalog;
use crate::alembic::AlembicConfig;

/// The heads of one Alembic config, as read from the migration scripts. Reading never fails the
/// comparison: an error is kept and reported, and "at head" is then unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlembicHeads {
    /// `alembic.ini` or `alembic_ai.ini`.
    pub config: String,
    pub heads: Vec<String>,
    pub error: Option<String>,
}

impl AlembicHeads {
    /// `uv run alembic -c <ini> heads` in `backend_dir` (cached by the migrations' fingerprint).
    pub fn read(sh: &Shell, config: AlembicConfig, backend_dir: &Path) -> AlembicHeads {
        match crate::migrations::heads(config, sh, backend_dir) {
            Ok(heads) => AlembicHeads {
                config: config.ini().to_string(),
                heads,
                error: None,
            },
            Err(e) => AlembicHeads {
                config: config.ini().to_string(),
                heads: Vec::new(),
                error: Some(format!("{e:#}")),
            },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AlembicSide {
    /// The revision(s) in `alembic_version`; empty when the table is missing or empty.
    pub revisions: Vec<String>,
    /// Where the revision table is (`public.alembic_version`); `None` when there is none.
    pub table: Option<String>,
    /// Whether the revisions are exactly the config's heads; `None` when the heads are unknown.
    pub at_head: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlembicComparison {
    pub config: Option<String>,
    pub heads: Option<Vec<String>>,
    pub heads_error: Option<String>,
    pub left: AlembicSide,
    pub right: AlembicSide,
    /// What makes the databases unequal: different revisions, more than one head.
    pub findings: Vec<String>,
}

pub(super) fn revisions_text(revs: &[String]) -> String {
    if revs.is_empty() {
        "none".to_string()
    } else {
        revs.join(", ")
    }
}

pub(super) fn compare_alembic(
    l: &Catalog,
    r: &Catalog,
    heads: Option<&AlembicHeads>,
    ls: &str,
    rs: &str,
) -> AlembicComparison {
    let known_heads = heads.filter(|h| h.error.is_none() && !h.heads.is_empty());
    let side = |c: &Catalog| {
        let revisions = c
            .alembic
            .as_ref()
            .map(|a| a.revisions.clone())
            .unwrap_or_default();
        let at_head = known_heads.map(|h| {
            let mut want = h.heads.clone();
            want.sort();
            let mut have = revisions.clone();
            have.sort();
            want == have
        });
        AlembicSide {
            table: c.alembic.as_ref().map(|a| a.table.to_string()),
            revisions,
            at_head,
        }
    };
    let (left, right) = (side(l), side(r));
    let mut findings = Vec::new();
    if left.revisions != right.revisions {
        findings.push(format!(
            "revisions differ: {} ({ls}) vs {} ({rs})",
            revisions_text(&left.revisions),
            revisions_text(&right.revisions)
        ));
    }
    if let Some(h) = heads {
        if h.heads.len() > 1 {
            findings.push(format!(
                "{} has {} heads ({}): merge them (`uv run alembic -c {} merge heads -m \"merge \
                 heads\"`)",
                h.config,
                h.heads.len(),
                h.heads.join(", "),
                h.config
            ));
        }
    }
    AlembicComparison {
        config: heads.map(|h| h.config.clone()),
        heads: heads.filter(|h| h.error.is_none()).map(|h| h.heads.clone()),
        heads_error: heads.and_then(|h| h.error.clone()),
        left,
        right,
        findings,
    }
}

/// What is not a difference but worth saying: heads that could not be read, and a side that is
/// not at head.
pub(super) fn notes(
    alembic: &AlembicComparison,
    heads: Option<&AlembicHeads>,
    ls: &str,
    rs: &str,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(err) = heads.and_then(|h| h.error.as_ref().map(|e| (h, e))) {
        let (heads, err) = err;
        notes.push(format!(
            "the heads of {} could not be read, so \"at head\" is unknown: {err}",
            heads.config
        ));
    }
    for (side, at_head) in [(ls, alembic.left.at_head), (rs, alembic.right.at_head)] {
        if at_head == Some(false) {
            let heads = alembic.heads.clone().unwrap_or_default();
            notes.push(format!(
                "{side} is not at the head of {} ({}): `alembic upgrade head` would change its \
                 schema",
                alembic.config.as_deref().unwrap_or("its Alembic config"),
                heads.join(", ")
            ));
        }
    }
    notes
}
