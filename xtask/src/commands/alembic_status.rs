//! `cargo xtask alembic-status`: for both Alembic configs (Core, and AI unless `--core-only`),
//! the heads of the migration scripts, and the revision that the local and the remote database
//! record, against head, with the number of migrations pending. The check that the pre-commit and
//! CI hooks call: `--offline` checks only the scripts (they load, and each config has a single
//! head), with no database.
//!
//! A database without a URL is not checked, and the output says so (a remote URL is often not
//! set). Read-only: the revisions are read with one query each, nothing is written.
//!
//! Exit codes: 0 every config has a single head and every database checked is at it; 3
//! (`exit::Differences`) multiple heads, or a database behind, unstamped or at a revision the
//! scripts do not know; 1 a database could not be read, or the scripts do not load.

use std::{io::IsTerminal, path::Path, time::Duration};

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use xshell::Shell;

use crate::{
    alembic::{self, AlembicConfig, RevisionGraph},
    backend_dir,
    config::{url_setting, Config, Database, DbUrl, Side},
    ctx::Ctx,
    exit::Differences,
    pg::client,
    runtime::Runtime,
};

/// How the databases are read: on the command's runtime, each connection waiting at most
/// `timeout` for its server.
#[derive(Clone, Copy)]
struct Reader<'a> {
    rt: &'a Runtime,
    timeout: Duration,
}

#[derive(Args, Debug)]
pub struct AlembicStatus {
    /// Check only the migration scripts (each config loads and has a single head); no database
    #[arg(long)]
    pub offline: bool,
}

/// Where one database stands against its config's heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbStatus {
    AtHead,
    /// Known revision(s), with migrations pending.
    Behind,
    /// No `alembic_version` table, or an empty one: every migration is pending.
    NotStamped,
    /// A revision the scripts do not know: migrated by a newer checkout or another branch.
    UnknownRevision,
    /// The scripts did not load, so where the database stands is unknown.
    HeadsUnknown,
    /// The database could not be read (unreachable, authentication, missing...).
    Error,
    /// No URL for it: not checked.
    NotConfigured,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatabaseStatus {
    pub side: Side,
    /// The URL with its password masked; `null` when not configured.
    pub url: Option<String>,
    pub status: DbStatus,
    /// What `alembic_version` holds; `null` when not read or there is no such table.
    pub revisions: Option<Vec<String>>,
    /// Migrations that `upgrade heads` would run; `null` when unknown.
    pub pending: Option<usize>,
    /// Revisions of the database that the scripts do not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_revisions: Vec<String>,
    /// Why it could not be read, or which setting would configure it.
    pub error: Option<String>,
}

impl DatabaseStatus {
    fn ok(&self) -> bool {
        matches!(self.status, DbStatus::AtHead | DbStatus::NotConfigured)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigStatus {
    pub database: Database,
    /// `alembic.ini` | `alembic_ai.ini`
    pub config: &'static str,
    pub heads: Vec<String>,
    pub multiple_heads: bool,
    /// How many revisions the scripts have; `null` offline (not read).
    pub revisions: Option<usize>,
    /// Why the scripts could not be read (a script that does not load...).
    pub scripts_error: Option<String>,
    /// The command (in backend/) that creates the merge revision, when there are several heads.
    pub merge_command: Option<String>,
    /// Local, then remote; empty with `--offline`.
    pub databases: Vec<DatabaseStatus>,
}

impl ConfigStatus {
    fn ok(&self) -> bool {
        self.scripts_error.is_none()
            && !self.multiple_heads
            && self.databases.iter().all(DatabaseStatus::ok)
    }
}

/// The `--json` document.
#[derive(Serialize)]
struct JsonReport<'a> {
    /// true only when the exit code is 0.
    ok: bool,
    offline: bool,
    configs: &'a [ConfigStatus],
}

impl AlembicStatus {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let args = ctx.args();
        // Offline needs no URL: a broken one in .env must not fail the pre-commit hook.
        let config = if self.offline {
            None
        } else {
            Some(ctx.config()?)
        };
        let databases = if args.core_only {
            vec![Database::Core]
        } else {
            vec![Database::Core, Database::Ai]
        };
        let reader = Reader {
            rt: &ctx.rt,
            timeout: ctx.timeout(),
        };
        let backend = backend_dir();
        if !args.json && std::io::stderr().is_terminal() {
            eprintln!(
                "alembic-status: reading the migration scripts{}...",
                if self.offline {
                    ""
                } else {
                    " and the databases"
                }
            );
        }
        // One thread per config: each runs uv (and reads its databases) on its own.
        let statuses: Vec<ConfigStatus> = std::thread::scope(|s| {
            let tasks: Vec<_> = databases
                .iter()
                .map(|&db| {
                    let backend = backend.as_path();
                    s.spawn(move || config_status(db, config, backend, reader))
                })
                .collect();
            tasks
                .into_iter()
                .map(|t| t.join().expect("a status thread panicked"))
                .collect()
        });

        let text = render(&statuses, self.offline);
        let ok = statuses.iter().all(ConfigStatus::ok);
        if args.json {
            let report = JsonReport {
                ok,
                offline: self.offline,
                configs: &statuses,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("the report serializes")
            );
            eprint!("{text}");
        } else {
            print!("{text}");
        }

        let unreadable: Vec<String> = statuses
            .iter()
            .flat_map(|c| {
                let scripts = c
                    .scripts_error
                    .as_ref()
                    .map(|e| format!("the scripts of {}: {e}", c.config));
                let dbs = c
                    .databases
                    .iter()
                    .filter(|d| d.status == DbStatus::Error)
                    .map(move |d| {
                        format!(
                            "{} {}: {}",
                            d.side.label(),
                            c.database.label(),
                            d.error.as_deref().unwrap_or("error")
                        )
                    });
                scripts.into_iter().chain(dbs)
            })
            .collect();
        if !unreadable.is_empty() {
            bail!("alembic-status could not check {}", unreadable.join("; "));
        }
        let summary = summary(&statuses, self.offline);
        if ok {
            if args.json {
                eprintln!("{summary}");
            } else {
                println!("{summary}");
            }
            Ok(())
        } else {
            Err(Differences(summary).into())
        }
    }
}

/// One config: its scripts, then each side's database (online).
fn config_status(
    db: Database,
    config: Option<&Config>,
    backend: &Path,
    reader: Reader,
) -> ConfigStatus {
    let alembic = AlembicConfig::of(db);
    let mut status = ConfigStatus {
        database: db,
        config: alembic.ini(),
        heads: Vec::new(),
        multiple_heads: false,
        revisions: None,
        scripts_error: None,
        merge_command: None,
        databases: Vec::new(),
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            status.scripts_error = Some(format!("cannot start a shell: {e}"));
            return status;
        }
    };
    // `alembic heads` imports every script: one that does not load fails it.
    match alembic.heads(&sh, backend) {
        Ok(heads) => status.heads = heads,
        Err(e) => status.scripts_error = Some(format!("{e:#}")),
    }
    status.multiple_heads = status.heads.len() > 1;
    if status.multiple_heads {
        status.merge_command = Some(alembic.merge_command(&status.heads));
    }
    let Some(config) = config else {
        return status;
    };
    let graph = if status.scripts_error.is_none() {
        match alembic.history(&sh, backend) {
            Ok(graph) => Some(graph),
            Err(e) => {
                status.scripts_error = Some(format!("{e:#}"));
                None
            }
        }
    } else {
        None
    };
    status.revisions = graph.as_ref().map(|g| g.parents.len());
    for side in [Side::Local, Side::Remote] {
        status.databases.push(database_status(
            side,
            config.url(side, db),
            db,
            graph.as_ref(),
            &status.heads,
            reader,
        ));
    }
    status
}

fn database_status(
    side: Side,
    url: Option<&DbUrl>,
    db: Database,
    graph: Option<&RevisionGraph>,
    heads: &[String],
    reader: Reader,
) -> DatabaseStatus {
    let mut status = DatabaseStatus {
        side,
        url: url.map(ToString::to_string),
        status: DbStatus::NotConfigured,
        revisions: None,
        pending: None,
        unknown_revisions: Vec::new(),
        error: None,
    };
    let Some(url) = url else {
        let (flag, env) = url_setting(side, db);
        status.error = Some(format!("no {flag} / {env}"));
        return status;
    };
    let read = reader.rt.block_on(async {
        let conn = client::connect(url, reader.timeout).await?;
        alembic::recorded_revisions(&conn, url).await
    });
    let recorded = match read {
        Ok(recorded) => recorded,
        Err(e) => {
            status.status = DbStatus::Error;
            status.error = Some(format!("{e:#}"));
            return status;
        }
    };
    classify(&mut status, recorded, graph, heads);
    status
}

/// Where a database that records `recorded` stands against the scripts (`graph`, `heads`).
fn classify(
    status: &mut DatabaseStatus,
    recorded: Option<Vec<String>>,
    graph: Option<&RevisionGraph>,
    heads: &[String],
) {
    let current = recorded.clone().unwrap_or_default();
    status.revisions = recorded;
    let Some(graph) = graph else {
        status.status = DbStatus::HeadsUnknown;
        return;
    };
    match graph.pending(&current) {
        Err(unknown) => {
            status.status = DbStatus::UnknownRevision;
            status.unknown_revisions = unknown;
        }
        Ok(pending) => {
            status.pending = Some(pending);
            let mut have: Vec<&String> = current.iter().collect();
            let mut want: Vec<&String> = heads.iter().collect();
            have.sort();
            want.sort();
            status.status = if current.is_empty() {
                DbStatus::NotStamped
            } else if pending == 0 && have == want {
                DbStatus::AtHead
            } else {
                DbStatus::Behind
            };
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a database's line says about where it stands.
fn describe(d: &DatabaseStatus) -> String {
    match d.status {
        DbStatus::AtHead => "at head".to_string(),
        DbStatus::Behind => format!(
            "BEHIND: {} pending",
            plural(d.pending.unwrap_or(0), "migration", "migrations")
        ),
        DbStatus::NotStamped => format!(
            "NOT STAMPED ({}): {} pending",
            if d.revisions.is_none() {
                "no alembic_version table"
            } else {
                "alembic_version is empty"
            },
            plural(d.pending.unwrap_or(0), "migration", "migrations")
        ),
        DbStatus::UnknownRevision => {
            "UNKNOWN REVISION: not in these migration scripts (a newer checkout's? another \
             branch's?)"
                .to_string()
        }
        DbStatus::HeadsUnknown => "not compared: the scripts did not load".to_string(),
        DbStatus::Error => format!("ERROR: {}", d.error.as_deref().unwrap_or("")),
        DbStatus::NotConfigured => format!(
            "not configured ({}): not checked",
            d.error.as_deref().unwrap_or("")
        ),
    }
}

/// The human report: per config, its heads, then one aligned line per database.
fn render(statuses: &[ConfigStatus], offline: bool) -> String {
    let mut out = String::new();
    for c in statuses {
        let heads = if let Some(e) = &c.scripts_error {
            format!("the scripts do not load: {e}")
        } else if c.multiple_heads {
            format!(
                "MULTIPLE HEADS: {} ({} heads)",
                c.heads.join(", "),
                c.heads.len()
            )
        } else {
            format!(
                "head {}{}",
                c.heads.join(", "),
                c.revisions
                    .map(|n| format!(" ({})", plural(n, "revision", "revisions")))
                    .unwrap_or_default()
            )
        };
        out.push_str(&format!("{} ({}): {heads}\n", c.config, c.database.label()));
        if let Some(cmd) = &c.merge_command {
            out.push_str(&format!(
                "  fix: create the merge revision in backend/: {cmd}\n"
            ));
        }
        if offline {
            continue;
        }
        // Rows without a revision (not configured, unreadable) say so on their own, unaligned.
        let one_cell =
            |d: &DatabaseStatus| matches!(d.status, DbStatus::NotConfigured | DbStatus::Error);
        let shown = c.databases.iter().filter(|d| !one_cell(d));
        let rev_width = shown
            .clone()
            .map(|d| revision_cell(d).len())
            .max()
            .unwrap_or(0);
        let status_width = shown.map(|d| describe(d).len()).max().unwrap_or(0);
        for d in &c.databases {
            let line = if one_cell(d) {
                format!("  {:<6}  {}", d.side.label(), describe(d))
            } else {
                format!(
                    "  {:<6}  {:<rev_width$}  {:<status_width$}  {}",
                    d.side.label(),
                    revision_cell(d),
                    describe(d),
                    d.url.as_deref().unwrap_or("")
                )
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn revision_cell(d: &DatabaseStatus) -> String {
    match (&d.status, &d.revisions) {
        (_, None) => "(none)".to_string(),
        (_, Some(r)) if r.is_empty() => "(none)".to_string(),
        (_, Some(r)) => r.join(", "),
    }
}

/// The last line: what is not at a single head, or that everything is.
fn summary(statuses: &[ConfigStatus], offline: bool) -> String {
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    for c in statuses {
        if c.multiple_heads {
            problems.push(format!(
                "{} has {} heads ({})",
                c.config,
                c.heads.len(),
                c.heads.join(", ")
            ));
        }
        for d in &c.databases {
            let name = format!("{} {}", d.side.label(), c.database.label());
            match d.status {
                DbStatus::NotConfigured => skipped.push(name),
                DbStatus::AtHead => checked += 1,
                DbStatus::Behind => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is {} behind",
                        plural(d.pending.unwrap_or(0), "migration", "migrations")
                    ))
                }
                DbStatus::NotStamped => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is not stamped ({} pending)",
                        plural(d.pending.unwrap_or(0), "migration", "migrations")
                    ))
                }
                DbStatus::UnknownRevision => {
                    checked += 1;
                    problems.push(format!(
                        "{name} is at {}, unknown to the scripts",
                        d.unknown_revisions.join(", ")
                    ))
                }
                DbStatus::HeadsUnknown | DbStatus::Error => {}
            }
        }
    }
    if !problems.is_empty() {
        return format!("alembic-status: {}", problems.join("; "));
    }
    let configs = format!(
        "{}: {}",
        statuses
            .iter()
            .map(|c| c.config)
            .collect::<Vec<_>>()
            .join(" and "),
        if statuses.len() == 1 {
            "single head"
        } else {
            "single head each"
        }
    );
    if offline {
        return format!(
            "alembic-status: {configs}, every script loads (--offline: no database checked)"
        );
    }
    let mut line = format!(
        "alembic-status: {configs}; {} at head",
        plural(checked, "database", "databases")
    );
    if !skipped.is_empty() {
        line.push_str(&format!(
            "; not configured, not checked: {}",
            skipped.join(", ")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> RevisionGraph {
        RevisionGraph::parse(
            "Rev: b (head)\nParent: a\nPath: /b.py\n\nRev: a\nParent: <base>\nPath: /a.py\n",
        )
    }

    fn status_of(recorded: Option<&[&str]>) -> DatabaseStatus {
        let mut status = DatabaseStatus {
            side: Side::Local,
            url: Some("postgresql://u:****@h:1/d".into()),
            status: DbStatus::Error,
            revisions: None,
            pending: None,
            unknown_revisions: Vec::new(),
            error: None,
        };
        let recorded = recorded.map(|r| r.iter().map(|s| s.to_string()).collect());
        classify(&mut status, recorded, Some(&graph()), &["b".to_string()]);
        status
    }

    #[test]
    fn classifies_against_the_heads() {
        let d = status_of(Some(&["b"]));
        assert_eq!((d.status, d.pending), (DbStatus::AtHead, Some(0)));
        assert!(d.ok());
        let d = status_of(Some(&["a"]));
        assert_eq!((d.status, d.pending), (DbStatus::Behind, Some(1)));
        assert_eq!(describe(&d), "BEHIND: 1 migration pending");
        let d = status_of(None);
        assert_eq!((d.status, d.pending), (DbStatus::NotStamped, Some(2)));
        assert_eq!(
            describe(&d),
            "NOT STAMPED (no alembic_version table): 2 migrations pending"
        );
        let d = status_of(Some(&["i6j7k8l9m0n1"]));
        assert_eq!(d.status, DbStatus::UnknownRevision);
        assert_eq!(d.unknown_revisions, ["i6j7k8l9m0n1"]);
        assert!(!d.ok());
    }

    #[test]
    fn a_missing_url_is_not_configured_and_names_its_setting() {
        let d = database_status(
            Side::Remote,
            None,
            Database::Ai,
            Some(&graph()),
            &["b".to_string()],
            Reader {
                rt: &Runtime::new().unwrap(),
                timeout: Duration::from_secs(1),
            },
        );
        assert_eq!(d.status, DbStatus::NotConfigured);
        assert!(d.ok());
        assert_eq!(
            describe(&d),
            "not configured (no --remote-ai-url / RAILWAY_AI_DB_URL): not checked"
        );
    }

    #[test]
    fn multiple_heads_fail_and_name_the_merge() {
        let status = ConfigStatus {
            database: Database::Core,
            config: "alembic.ini",
            heads: vec!["c6a".into(), "c6b".into()],
            multiple_heads: true,
            revisions: None,
            scripts_error: None,
            merge_command: Some(AlembicConfig::Core.merge_command(&["c6a".into(), "c6b".into()])),
            databases: Vec::new(),
        };
        assert!(!status.ok());
        let text = render(std::slice::from_ref(&status), true);
        assert!(
            text.contains("MULTIPLE HEADS: c6a, c6b (2 heads)"),
            "{text}"
        );
        assert!(
            text.contains("uv run alembic -c alembic.ini merge -m \"merge heads\" c6a c6b"),
            "{text}"
        );
        assert_eq!(
            summary(&[status], true),
            "alembic-status: alembic.ini has 2 heads (c6a, c6b)"
        );
    }
}
