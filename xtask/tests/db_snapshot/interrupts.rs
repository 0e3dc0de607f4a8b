//! `db-snapshot restore` and `db-restore` stopped at each step that a test can hold: Ctrl-C on a
//! terminal (SIGINT to the whole process group) and SIGKILL. A transaction of the test on the
//! maintenance database holds the lock that the step waits for. Commenting on a database holds
//! a template copy of it (`CREATE DATABASE ... TEMPLATE`, the snapshot's clone, db-restore's
//! staging database from template0) and its rename in the swap's transaction (the AI database:
//! Core's renames are then done in that open transaction). Dropping a role that only the backup's
//! GRANT names holds db-restore's pg_restore in the staging database, its data in. Renaming Core
//! holds the pg_dump of db-restore's own backup at its connection. The test waits until the
//! command's session or tool waits there, signals, releases, and asserts: the exit, both
//! databases as they were (fingerprints read back), no staging database left after a Ctrl-C (a
//! killed run cannot drop its own: the next run does), no backup file left by a stopped backup,
//! and the xtask lock gone (a later run works).

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command},
    time::{Duration, Instant},
};

use super::{ended, ok, Fingerprints, Pair};
use crate::{
    bench::{finish, pids_with, wait_for},
    require_docker,
    support::{self, query, query_one},
};

/// How the run is stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// Ctrl-C on a terminal: SIGINT to the process group.
    CtrlC,
    Kill,
}

/// A database's name quoted for SQL.
fn quoted(datname: &str) -> String {
    format!("\"{}\"", datname.replace('"', "\"\""))
}

/// Starts `cargo xtask <args>` on the pair in a process group of its own (as a shell starts a
/// foreground job), holds it where `datname`'s lock is needed, stops it, releases the hold, and
/// returns what it said once it and its server sessions have ended.
fn stopped_at(pair: &Pair, datname: &str, args: &[&str], stop: Stop) -> support::Run {
    let hold = format!("COMMENT ON DATABASE {} IS NULL", quoted(datname));
    stopped(pair, &hold, args, stop, |pid| {
        waits(
            pair,
            &format!(
                "a.application_name LIKE '%(pid {pid})' AND l.classid = 'pg_database'::regclass \
                 AND l.objid = (SELECT oid FROM pg_database WHERE datname = '{datname}')"
            ),
        )
    })
}

/// Whether one session that meets `condition` (`l` its lock in pg_locks, `a` it in
/// pg_stat_activity) waits for that lock.
fn waits(pair: &Pair, condition: &str) -> bool {
    query_one(
        &pair.url("postgres"),
        &format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'object' AND NOT l.granted AND {condition}"
        ),
    ) == "1"
}

/// `stopped_at`, held by the test's open transaction `BEGIN; <hold>`, stopped once
/// `held(pid of the run)` says that the run waits behind it.
fn stopped(
    pair: &Pair,
    hold: &str,
    args: &[&str],
    stop: Stop,
    held: impl Fn(u32) -> bool,
) -> support::Run {
    let admin = pair.url("postgres");
    let mut holding = support::IdleInTransaction::start(&admin, "xtask-test-hold", hold);
    let mut cmd = pair.command(args[0], &args[1..]);
    cmd.process_group(0);
    let mut run: Child = cmd.spawn().unwrap();
    let me = format!("%(pid {})", run.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !held(run.id()) {
        if run.try_wait().unwrap().is_some() {
            panic!("{args:?} ended before it waited: {}", finish(run).all());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {args:?} to wait behind {hold:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sig = if stop == Stop::CtrlC { "INT" } else { "KILL" };
    let status = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{}", run.id())])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {sig}");
    holding.release();
    let out = finish(run);
    // A killed run's statement goes on in its server session until the lock is granted; then
    // the session finds the client gone (an open transaction rolls back).
    wait_for("the run's server sessions to end", 60, || {
        query_one(
            &admin,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '{me}'"),
        ) == "0"
    });
    out
}

/// After the stop: the exit, both databases as before, and what is left.
fn assert_stopped(pair: &Pair, out: &support::Run, stop: Stop, before: &Fingerprints) {
    match stop {
        Stop::CtrlC => {
            ended(out, 130, &["interrupted", "as they were"]);
            assert_eq!(pair.leftovers(), "", "a Ctrl-C drops the staging copies");
        }
        Stop::Kill => {
            assert_eq!(out.code, -1, "killed: {}", out.all());
            let left = pair.leftovers();
            assert!(
                left.split(',')
                    .all(|d| d.is_empty() || d.ends_with("_xtask_new")),
                "only staging copies are left, never a replaced database: {left}"
            );
        }
    }
    assert_eq!(&pair.fingerprints(), before);
}

#[test]
fn a_snapshot_restore_stopped_at_each_step_leaves_both_databases_as_they_were() {
    require_docker!();
    let pair = Pair::new("snap_stops");
    let saved = pair.fingerprints();
    ok(&pair.run("db-snapshot", &["save", "s1"]));
    pair.change_data();
    let changed = pair.fingerprints();
    let restore = ["db-snapshot", "restore", "s1", "--yes"];
    let ai_snapshot = format!("{}_snap_s1", pair.ai);

    // Killed while the AI snapshot's clone waits (Core's clone is made).
    let out = stopped_at(&pair, &ai_snapshot, &restore, Stop::Kill);
    assert!(
        out.stderr.contains("core: ") && out.stderr.contains("_xtask_new cloned from"),
        "held at AI's clone: {}",
        out.stderr
    );
    assert_stopped(&pair, &out, Stop::Kill, &changed);
    // Stopped in the swap's transaction, Core's renames done, AI's waiting.
    for stop in [Stop::CtrlC, Stop::Kill] {
        let out = stopped_at(&pair, &pair.ai, &restore, stop);
        assert_eq!(
            out.stderr.matches("_xtask_new cloned from").count(),
            2,
            "held in the swap: {}",
            out.stderr
        );
        assert_stopped(&pair, &out, stop, &changed);
    }
    // The lock went with each run; the next one drops what a killed one left, and restores.
    ok(&pair.run(restore[0], &restore[1..]));
    assert_eq!(pair.leftovers(), "");
    assert_eq!(pair.fingerprints(), saved);
}

#[test]
fn a_db_restore_stopped_at_each_step_leaves_both_databases_as_they_were() {
    require_docker!();
    let pair = Pair::new("restore_stops");
    // A role that only Core's backup names, in a GRANT: pg_restore's last pass (privileges) in
    // its single transaction records that dependency under a lock on the role, which the test's
    // DROP ROLE holds. Nothing else depends on the role then: the pull copies no privileges.
    let reader = "restore_stops_reader";
    let admin = pair.url("postgres");
    query(&admin, &format!("CREATE ROLE {reader} NOLOGIN"));
    query(
        &pair.url(&pair.core),
        &format!("GRANT SELECT ON users TO {reader}"),
    );
    let before_pull = pair.fingerprints();
    ok(&pair.run("db-pull", &["--unmasked", "--yes"]));
    let pulled = pair.fingerprints();
    let restore = ["db-restore", "--yes", "--no-backup"];

    // Ctrl-C while Core's staging database waits to be created (from template0).
    let out = stopped_at(&pair, "template0", &restore, Stop::CtrlC);
    assert_stopped(&pair, &out, Stop::CtrlC, &pulled);
    // Stopped in db-restore's own backup of what it replaces: its pg_dump cannot connect to Core
    // while the test's transaction renames it (every new session on it waits for that lock), so
    // once pg_dump runs in the container the run is held in the backup. (The lock alone does not
    // say whose session waits: an autovacuum worker connecting to Core waits for it too.)
    let taken = pair_backups(&pair);
    let core = pair.core.clone();
    let dumps = || {
        pids_with(&["pg_dump", &format!("/{core}")])
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"pg_dump\0"))
            })
            .count()
    };
    for stop in [Stop::CtrlC, Stop::Kill] {
        let hold = format!(
            "ALTER DATABASE {} RENAME TO {}",
            quoted(&core),
            quoted(&format!("{core}_held"))
        );
        let out = stopped(&pair, &hold, &["db-restore", "--yes"], stop, |_| {
            dumps() == 1
        });
        if stop == Stop::CtrlC {
            ended(
                &out,
                130,
                &[
                    "db-restore interrupted during the backup of the local core database: nothing \
                   was changed and no partial backup is kept",
                ],
            );
        } else {
            assert_eq!(out.code, -1, "killed: {}", out.all());
        }
        // A killed run's pg_dump goes on in the container until it finds its client gone.
        wait_for("the run's pg_dump to end", 120, || dumps() == 0);
        assert!(
            !out.stderr.contains("backed up"),
            "held in the backup: {}",
            out.stderr
        );
        assert_eq!(pair.leftovers(), "");
        assert_eq!(pair.fingerprints(), pulled);
        // No backup file: not one cut short that a later db-restore would take for the latest.
        assert_eq!(pair_backups(&pair), taken, "{stop:?} leaves no .dump");
    }
    // Stopped while Core's pg_restore runs in the staging database, the data in and the
    // transaction open. The kill is last: its pg_restore goes on in the container, and commits
    // a staging copy that depends on the role (the next run drops it).
    let staging = format!("{}_xtask_new", pair.core);
    for stop in [Stop::CtrlC, Stop::Kill] {
        let out = stopped(
            &pair,
            &format!("DROP ROLE {reader}"),
            &restore,
            stop,
            |_| {
                waits(
                    &pair,
                    &format!(
                        "a.application_name = 'pg_restore' AND a.datname = '{staging}' \
                         AND l.classid = 'pg_authid'::regclass \
                         AND l.objid = (SELECT oid FROM pg_roles WHERE rolname = '{reader}')"
                    ),
                )
            },
        );
        assert!(
            out.stderr.contains("core: restore_stops_core <- ")
                && !out.stderr.contains("restored into"),
            "held in Core's pg_restore: {}",
            out.stderr
        );
        assert_stopped(&pair, &out, stop, &pulled);
    }
    // Stopped in the swap's transaction, both backups restored and checked, Core's renames done.
    for stop in [Stop::CtrlC, Stop::Kill] {
        let out = stopped_at(&pair, &pair.ai, &restore, stop);
        assert!(
            out.stderr.contains("ai: restored into"),
            "held in the swap: {}",
            out.stderr
        );
        assert_stopped(&pair, &out, stop, &pulled);
    }
    ok(&pair.run(restore[0], &restore[1..]));
    assert_eq!(pair.leftovers(), "");
    assert_eq!(pair.fingerprints(), before_pull);
}

/// The backups of the pair's databases in the backup folder: `.dump` files, the only ones that
/// db-restore lists.
fn pair_backups(pair: &Pair) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pair.bench.backups())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".dump")
                && [&pair.core, &pair.ai]
                    .iter()
                    .any(|db| n.starts_with(&format!("local-{db}-")))
        })
        .collect();
    names.sort();
    names
}
