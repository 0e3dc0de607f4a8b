//! `db-snapshot restore` and `db-restore` stopped at each step that a test can hold: Ctrl-C on a
//! terminal (SIGINT to the whole process group) and SIGKILL. A transaction of the test on the
//! maintenance database comments on a database, and so holds the lock that the step waits for:
//! a template copy of it (`CREATE DATABASE ... TEMPLATE`, the snapshot's clone, db-restore's
//! staging database from template0) or its rename in the swap's transaction (the AI database:
//! Core's renames are then done in that open transaction). The test waits until the command's
//! own session waits for that lock, signals, releases, and asserts: the exit, both databases as
//! they were (fingerprints read back), no staging database left after a Ctrl-C (a killed run
//! cannot drop its own: the next run does), and the xtask lock gone (a later run works).

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{ended, ok, Fingerprints, Pair};
use crate::{
    bench::{finish, wait_for},
    require_docker,
    support::{self, query_one},
};

/// A lock on a database object held by an open transaction of the test; released when dropped.
struct Hold {
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Hold {
    /// `BEGIN; COMMENT ON DATABASE datname IS NULL` on `admin_url`, held until `release`.
    fn take(admin_url: &str, datname: &str) -> Hold {
        let url = xtask::config::DbUrl::parse(admin_url).unwrap();
        let sql = format!(
            "BEGIN; COMMENT ON DATABASE \"{}\" IS NULL",
            datname.replace('"', "\"\"")
        );
        let (release, released) = mpsc::channel::<()>();
        let (locked, holds) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            support::block_on(async {
                let conn = xtask::pg::client::connect(&url, Duration::from_secs(10))
                    .await
                    .unwrap();
                conn.batch_execute(&sql).await.unwrap();
                locked.send(()).unwrap();
                let _ = released.recv();
                conn.batch_execute("ROLLBACK").await.unwrap();
            })
        });
        holds.recv().unwrap();
        Hold {
            release: Some(release),
            thread: Some(thread),
        }
    }

    fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.end();
    }
}

/// How the run is stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// Ctrl-C on a terminal: SIGINT to the process group.
    CtrlC,
    Kill,
}

/// Starts `cargo xtask <args>` on the pair in a process group of its own (as a shell starts a
/// foreground job), holds it where `datname`'s lock is needed, stops it, releases the hold, and
/// returns what it said once it and its server sessions have ended.
fn stopped_at(pair: &Pair, datname: &str, args: &[&str], stop: Stop) -> support::Run {
    let admin = pair.url("postgres");
    let hold = Hold::take(&admin, datname);
    let mut cmd = pair.command(args[0], &args[1..]);
    cmd.process_group(0);
    let mut run: Child = cmd.spawn().unwrap();
    let me = format!("%(pid {})", run.id());
    let waits = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE l.locktype = 'object' AND NOT l.granted AND a.application_name LIKE '{me}' \
           AND l.objid = (SELECT oid FROM pg_database WHERE datname = '{datname}')"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while query_one(&admin, &waits) != "1" {
        if run.try_wait().unwrap().is_some() {
            panic!("{args:?} ended before it waited: {}", finish(run).all());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {args:?} to wait for {datname}'s lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sig = if stop == Stop::CtrlC { "INT" } else { "KILL" };
    let status = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{}", run.id())])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {sig}");
    hold.release();
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
    let before_pull = pair.fingerprints();
    ok(&pair.run("db-pull", &["--unmasked", "--yes"]));
    let pulled = pair.fingerprints();
    let restore = ["db-restore", "--yes", "--no-backup"];

    // Ctrl-C while Core's staging database waits to be created (from template0).
    let out = stopped_at(&pair, "template0", &restore, Stop::CtrlC);
    assert_stopped(&pair, &out, Stop::CtrlC, &pulled);
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
