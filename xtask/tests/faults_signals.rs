//! Kills and Ctrl-C in the middle of `db-pull`, `db-push` and `alembic-stamp`, against real
//! containers, uv and Alembic. Each case holds the command at a known step, without sleeping and
//! hoping: a lock queued behind the command's own snapshot (pg_dump waits behind it), a lock that
//! the step needs held by the test (taken once the preflight has passed, which another held lock
//! makes the command wait for), or a migration that waits (a copy of the migrations with a
//! `pg_sleep` in the last one). Then it interrupts (SIGINT to the xtask alone, or to its whole
//! process group as a terminal's Ctrl-C does) or kills, and asserts:
//!
//! 1. the exit code;
//! 2. the message: what happened, what state the databases are in, how to finish;
//! 3. the databases hold exactly what they held before (fingerprints read back here);
//! 4. no process of the run is left: nothing below the xtask (docker exec clients, uv, Alembic's
//!    Python), and no tool in a container (pg_dump, psql), even one that a held lock would keep
//!    alive; no staging or throwaway database (`*_xtask_new`, `*_xtask_old_*`,
//!    `*_xtask_stamp_check`) is left.

mod bench;
mod support;

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bench::{both_fingerprints, fingerprint, init_and_seed, wait_for, walk, Bench, AI, CORE};
use support::{query, query_one, PgContainer, Run, PASSWORD, PASSWORD_ENCODED};
use xtask::config::DbUrl;

// ---------------------------------------------------------------------------------------------
// Containers that survive a `docker kill` (no --rm), so that a killed server can be started again.

/// A PostgreSQL 17 + pgvector container like `PgContainer::start`'s, but kept when it stops.
fn start_restartable() -> PgContainer {
    let name = support::unique("xtask-test-pg-kept");
    let port = support::free_port();
    let status = Command::new("docker")
        .args(["run", "-d", "--name", &name, "--network", "host"])
        .args(["--label", "xtask-test=1"])
        .args(["-e", &format!("POSTGRES_USER={}", support::USER)])
        .args(["-e", "POSTGRES_PASSWORD"])
        .env("POSTGRES_PASSWORD", PASSWORD)
        .args(["-e", "POSTGRES_DB=sigmasight_db"])
        .args([support::IMAGE, "postgres", "-c", &format!("port={port}")])
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "docker run {name}");
    let pg = PgContainer { name, port };
    support::wait_ready(&pg.url("postgres"));
    pg
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the server's container (SIGKILL: a crash, not a shutdown) and waits until it is down.
fn crash(pg: &PgContainer) {
    docker(&["kill", &pg.name]);
    wait_for("the container to stop", 30, || {
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.State.Running}}", &pg.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "false"
    });
}

/// Starts a crashed server again and waits for it: PostgreSQL recovers from its WAL, which rolls
/// back every transaction that had not committed.
fn restart(pg: &PgContainer) {
    docker(&["start", &pg.name]);
    support::wait_ready(&pg.url("postgres"));
}

/// Two containers prepared at once, each restartable where asked.
fn bench_with(
    remote: impl Fn(&PgContainer) + Sync,
    remote_restartable: bool,
    local: impl Fn(&PgContainer) + Sync,
    local_restartable: bool,
) -> Bench {
    let start = |restartable: bool| {
        if restartable {
            start_restartable()
        } else {
            PgContainer::start()
        }
    };
    let (remote, local) = std::thread::scope(|s| {
        let r = s.spawn(|| {
            let pg = start(remote_restartable);
            remote(&pg);
            pg
        });
        let l = s.spawn(|| {
            let pg = start(local_restartable);
            local(&pg);
            pg
        });
        (r.join().unwrap(), l.join().unwrap())
    });
    Bench {
        remote,
        local,
        dirs: tempfile::TempDir::new().unwrap(),
    }
}

/// The remote with data that a push replaces.
fn drifted_remote(pg: &PgContainer) {
    init_and_seed(pg);
    query(
        &pg.url(CORE),
        "DELETE FROM market_data_cache WHERE id % 2 = 0; UPDATE users SET full_name = 'remote'",
    );
    query(&pg.url(AI), "DELETE FROM ai_memories WHERE id::text < '8'");
}

// ---------------------------------------------------------------------------------------------
// The command under test, running in the background.

struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
    /// Processes seen below the xtask while it ran (pid, command line): none may outlive it.
    seen: Vec<(u32, String)>,
    /// The servers' maintenance databases, whose sessions a timeout shows.
    servers: Vec<String>,
}

/// Starts `cargo xtask <args>` with `env`, in a process group of its own, as a shell starts a
/// foreground job (a terminal's Ctrl-C reaches that whole group).
fn spawn(env: &[(String, String)], args: &[&str]) -> Running {
    let mut cmd = support::xtask();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let pipe_into = |mut from: Box<dyn Read + Send>, into: Arc<Mutex<String>>| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let readers = vec![
        pipe_into(Box::new(child.stderr.take().unwrap()), stderr.clone()),
        pipe_into(Box::new(child.stdout.take().unwrap()), stdout.clone()),
    ];
    let servers = env
        .iter()
        .filter(|(k, _)| k == "DATABASE_URL" || k == "RAILWAY_DB_URL")
        .map(|(_, v)| {
            DbUrl::parse(v)
                .unwrap()
                .with_dbname("postgres")
                .to_secret_uri()
        })
        .collect();
    Running {
        child,
        stderr,
        readers,
        stdout,
        seen: Vec::new(),
        servers,
    }
}

fn env_of(bench: &Bench, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = bench.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// A command left running by a failed assertion is killed with its group.
impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Fails the test at once, with what the command said, when it already ended.
    fn still_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the command ended ({status}) while waiting for {what}:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits until `ok`, failing early if the command ends first.
    fn wait_until(&mut self, what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            self.still_running(what);
            if Instant::now() > deadline {
                let tree: Vec<String> = descendants(self.pid())
                    .into_iter()
                    .filter_map(command_line)
                    .collect();
                let activity: Vec<String> = self
                    .servers
                    .iter()
                    .map(|url| {
                        format!(
                            "{:?}",
                            query(
                                url,
                                "SELECT datname, application_name, state, wait_event_type, \
                                 wait_event, left(query, 80) FROM pg_stat_activity \
                                 WHERE backend_type = 'client backend'"
                            )
                        )
                    })
                    .collect();
                panic!(
                    "timed out waiting for {what}:\n{}\nprocesses: {tree:#?}\nsessions: {activity:#?}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_said(&mut self, needle: &str, secs: u64) {
        let stderr = self.stderr.clone();
        self.wait_until(&format!("{needle:?} on stderr"), secs, || {
            stderr.lock().unwrap().contains(needle)
        });
    }

    /// Records the processes below the xtask now (they must all be gone once it has ended).
    fn note_children(&mut self) {
        for pid in descendants(self.pid()) {
            if let Some(line) = command_line(pid) {
                if !self.seen.iter().any(|(p, _)| *p == pid) {
                    self.seen.push((pid, line));
                }
            }
        }
    }

    /// `kill -INT <xtask>`: the xtask alone gets the signal, not its children.
    fn interrupt(&mut self) {
        self.note_children();
        signal("INT", self.pid());
    }

    /// Ctrl-C on a terminal: SIGINT to the whole foreground process group.
    fn interrupt_group(&mut self) {
        self.note_children();
        signal_group("INT", self.pid());
    }

    /// Waits for the end (at most `secs`), then returns what it printed.
    fn finish(&mut self, secs: u64) -> Run {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                signal_group("KILL", self.pid());
                let _ = self.child.wait();
                panic!(
                    "the command did not end within {secs} s; killed. It said:\n{}",
                    self.stderr()
                );
            }
            self.note_children();
            std::thread::sleep(Duration::from_millis(50));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr(),
        };
        assert!(
            !run.all().contains(PASSWORD) && !run.all().contains(PASSWORD_ENCODED),
            "the password leaked:\n{}",
            run.all()
        );
        eprintln!("--- {} ---\n{}", run.code, run.stderr);
        run
    }
}

/// `kill -s <sig> <pid>`.
fn signal(sig: &str, pid: u32) {
    let pid = pid.to_string();
    let status = Command::new("kill")
        .args(["-s", sig, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {sig} {pid}");
}

/// `kill -s <sig> -- -<pgid>`: every process of the group (procps' kill reads `-<pgid>` without
/// the `--` as an option, and signals nothing).
fn signal_group(sig: &str, pgid: u32) {
    let group = format!("-{pgid}");
    let status = Command::new("kill")
        .args(["-s", sig, "--", &group])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {sig} -- {group}");
}

fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (!raw.is_empty()).then(|| String::from_utf8_lossy(&raw).replace('\0', " "))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Processes (pid, command line) whose command line holds every needle.
fn processes_with(needles: &[&str]) -> Vec<(u32, String)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, command_line(pid)?)))
        .filter(|(_, line)| needles.iter().all(|n| line.contains(n)))
        .collect()
}

/// What of the run still runs: the processes seen below the xtask, the tools of this bench's
/// servers (in a container or not: their `--dbname` names the port), and any process naming one
/// of `also` (a copied backend folder: uv and Alembic's Python).
fn leftovers(run: &Running, ports: &[u16], also: &[&str]) -> Vec<(u32, String)> {
    let mut left: Vec<(u32, String)> = run
        .seen
        .iter()
        .filter(|(pid, line)| command_line(*pid).as_deref() == Some(line.as_str()))
        .cloned()
        .collect();
    for port in ports {
        let needle = format!(":{port}/");
        left.extend(processes_with(&[&needle]));
    }
    for needle in also {
        left.extend(processes_with(&[needle]));
    }
    // The test binary itself names the folders in its own arguments only when asked to.
    left.retain(|(pid, _)| *pid != std::process::id());
    left.sort();
    left.dedup();
    left
}

/// Asserts that nothing of the run is left (waiting a little for killed processes to be reaped).
/// Call it while the holds that would keep a leftover tool alive are still in place.
fn assert_nothing_left(run: &Running, ports: &[u16], also: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers(run, ports, also);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the run are left after it ended: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The databases whose name says the xtask made them for one run (staging, replaced, throwaway,
/// a schema build in progress). The complete schema builds that db-pull keeps on purpose
/// (`xtask_schema_<config>_<key>`, see `migrations.rs`) are not a run's leftovers.
fn xtask_databases(pg: &PgContainer) -> String {
    query_one(
        &pg.url("postgres"),
        "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database \
         WHERE datname LIKE '%xtask%' AND datname !~ '^xtask_schema_[a-z]+_[0-9a-f]+$'",
    )
}

fn sessions(pg: &PgContainer, condition: &str) -> i64 {
    query_one(
        &pg.url("postgres"),
        &format!("SELECT count(*) FROM pg_stat_activity WHERE {condition}"),
    )
    .parse()
    .unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    walk(dir).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Holds: a session of the test that holds a lock, or waits in the lock queue, until released.

struct Hold {
    admin: String,
    app: String,
    thread: Option<JoinHandle<()>>,
}

impl Hold {
    /// Runs `BEGIN; <sql>` on `url` and keeps the transaction open (in `pg_sleep`) until released.
    fn start(url: &str, sql: &str) -> Hold {
        let app = support::unique("xtask-test-hold");
        let thread = std::thread::spawn({
            let (url, app, sql) = (DbUrl::parse(url).unwrap(), app.clone(), sql.to_string());
            move || {
                let _ = support::block_on(async {
                    let c = xtask::pg::client::connect(&url, Duration::from_secs(10)).await?;
                    c.batch_execute(&format!(
                        "SET application_name = '{app}'; BEGIN; {sql}; SELECT pg_sleep(3600)"
                    ))
                    .await?;
                    anyhow::Ok(())
                });
            }
        });
        Hold::of(url, app, thread)
    }

    /// `start`, but only once the command (application_name `xtask`) holds `table`: see
    /// `support::when_locked_by`.
    fn behind_xtask(url: &str, table: &str, sql: &str) -> Hold {
        let app = support::unique("xtask-test-hold");
        let thread = support::when_locked_by(
            url,
            "xtask",
            table,
            &app,
            &format!("{sql}; SELECT pg_sleep(3600)"),
        );
        Hold::of(url, app, thread)
    }

    fn of(url: &str, app: String, thread: JoinHandle<()>) -> Hold {
        let admin = DbUrl::parse(url)
            .unwrap()
            .with_dbname("postgres")
            .to_secret_uri();
        Hold {
            admin,
            app,
            thread: Some(thread),
        }
    }

    fn state(&self) -> String {
        let rows = query(
            &self.admin,
            &format!(
                "SELECT coalesce(wait_event_type, '') || '/' || coalesce(wait_event, '') \
                 FROM pg_stat_activity WHERE application_name = '{}'",
                self.app
            ),
        );
        rows.first().and_then(|r| r[0].clone()).unwrap_or_default()
    }

    /// Waits until the lock is held (the session sleeps after taking it).
    fn granted(self) -> Hold {
        wait_for("the test's lock", 30, || self.state() == "Timeout/PgSleep");
        self
    }

    /// Ends the session: its lock (or its place in the queue) goes with it.
    fn release(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Ok(url) = DbUrl::parse(&self.admin) {
                let app = self.app.clone();
                let _ = support::block_on(async move {
                    let c = xtask::pg::client::connect(&url, Duration::from_secs(5)).await?;
                    c.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name IN ($1, $1 || '-poll')",
                        &[&app],
                    )
                    .await?;
                    anyhow::Ok(())
                });
            }
            let _ = thread.join();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The command's source snapshot holds `table` on `source` (its transaction counted every table
/// it copies); a lock request of the test queued behind it makes the data's reader, which asks
/// next, wait: pg_dump, or psql's `COPY (SELECT ...)` for a job that copies a table's ctid ranges
/// (`--jobs`, a big table split). Returns the queued request (released, it lets the reader go on).
fn stall_source_read(run: &mut Running, source: &PgContainer, dbname: &str, table: &str) -> Hold {
    let url = source.url(dbname);
    let queued = Hold::behind_xtask(
        &url,
        &format!("public.{table}"),
        &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"),
    );
    run.wait_until("the source's reader to wait for its lock", 120, || {
        sessions(
            source,
            &format!(
                "application_name IN ('pg_dump', 'psql') AND datname = '{dbname}' \
                 AND wait_event_type = 'Lock'"
            ),
        ) > 0
    });
    queued
}

/// Holds the command with every row sent into the target's open transaction, before COMMIT:
/// the source's reader is held first (see `stall_source_read`, on `stall`, a table the command
/// copies), then the test takes a lock on the target's `market_data_cache_id_seq`, which psql
/// needs for the `setval` that follows the data. Returns the lock on the sequence (released, psql
/// goes on).
fn all_rows_sent(
    run: &mut Running,
    source: &PgContainer,
    target: &PgContainer,
    target_db: &str,
    stall: &str,
) -> Hold {
    let mut queued = stall_source_read(run, source, CORE, stall);
    psql_connected(run, target, target_db);
    let sequence = Hold::start(
        &target.url(target_db),
        "ALTER SEQUENCE public.market_data_cache_id_seq CACHE 1",
    )
    .granted();
    queued.release();
    run.wait_until("psql to wait at the sequence, every row sent", 120, || {
        sessions(
            target,
            &format!(
                "application_name = 'psql' AND datname = '{target_db}' \
                 AND wait_event_type = 'Lock' AND query LIKE '%setval%'"
            ),
        ) > 0
    });
    sequence
}

/// Waits until the command, past the preflight of its first database (Core), waits in the
/// preflight of the second (AI) for a table of `server`'s AI database that the test holds: what
/// the test takes now is in place before the command goes on to its backups.
/// Starts `command` (db-pull or db-push) and holds it in the backup of the target's Core database:
/// a locked source AI table keeps it in its AI preflight until the test holds a target Core table,
/// which the backup's pg_dump then waits for. Returns the run and the hold on that Core table.
fn held_in_backup(
    env: &[(String, String)],
    command: &str,
    source: &PgContainer,
    target: &PgContainer,
) -> (Running, Hold) {
    let mut ai = Hold::start(
        &source.url(AI),
        "LOCK TABLE ai_feedback IN ACCESS EXCLUSIVE MODE",
    )
    .granted();
    let mut args = vec![command, "--yes"];
    if command == "db-pull" {
        args.push("--unmasked");
    }
    let mut run = spawn(env, &args);
    wait_in_ai_preflight(&mut run, source);
    let core = Hold::start(
        &target.url(CORE),
        "LOCK TABLE positions IN ACCESS EXCLUSIVE MODE",
    )
    .granted();
    ai.release();
    run.wait_until("the backup's pg_dump to wait for its lock", 120, || {
        sessions(
            target,
            &format!(
                "application_name = 'pg_dump' AND datname = '{CORE}' \
                 AND wait_event_type = 'Lock'"
            ),
        ) > 0
    });
    (run, core)
}

/// Waits until the load's psql is connected to `target_db`, waiting for its input (pg_dump is
/// held, and the relay has not flushed `BEGIN` to it yet). A pull starts its pg_dump before it
/// creates the staging database and starts psql.
fn psql_connected(run: &mut Running, target: &PgContainer, target_db: &str) {
    run.wait_until("psql to connect to the target", 120, || {
        sessions(
            target,
            &format!("application_name = 'psql' AND datname = '{target_db}'"),
        ) > 0
    });
}

fn wait_in_ai_preflight(run: &mut Running, server: &PgContainer) {
    run.wait_until("the command to wait in the AI preflight", 120, || {
        sessions(
            server,
            &format!(
                "datname = '{AI}' AND application_name = 'xtask' AND wait_event_type = 'Lock'"
            ),
        ) > 0
    });
}

/// The tool itself (not its docker exec client) whose command line names `needles`.
fn tool_process(tool: &str, needles: &[&str]) -> u32 {
    let found: Vec<u32> = processes_with(needles)
        .into_iter()
        .filter(|(_, line)| line.starts_with(&format!("{tool} ")))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(found.len(), 1, "one {tool} with {needles:?}: {found:?}");
    found[0]
}

/// A copy of backend/ whose last Core migration (c0005) first waits ten minutes: `alembic
/// upgrade` through it stays in the schema step until it is stopped.
fn slow_migrations(dir: &Path) {
    support::copy_backend(dir);
    let path = dir.join("migrations_core/versions/c0005_correlations.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let slowed = text.replacen(
        "def upgrade() -> None:\n",
        "def upgrade() -> None:\n    op.execute(\"SELECT pg_sleep(600)\")\n",
        1,
    );
    assert_ne!(slowed, text, "c0005's upgrade() was not found");
    std::fs::write(&path, slowed).unwrap();
}

/// Debugging aid: `FAULTS_CASES=2,3` runs only those cases of each test.
fn case(n: u32) -> bool {
    std::env::var("FAULTS_CASES")
        .map(|v| v.split(',').any(|c| c.trim() == n.to_string()))
        .unwrap_or(true)
}

fn assert_said(run: &Run, parts: &[&str]) {
    for part in parts {
        assert!(
            run.stderr.contains(part),
            "the message lacks {part:?}:\n{}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn db_pull_interrupted_or_killed_at_each_step_keeps_the_local_data_whole() {
    require_docker!();
    let bench = bench_with(init_and_seed, false, bench::differing_local, true);
    let before = both_fingerprints(&bench.local);
    let remote = both_fingerprints(&bench.remote);
    assert_ne!(before, remote, "the bench must start with different data");
    let ports = [bench.remote.port, bench.local.port];
    let env = env_of(&bench, &[]);

    // 1. Ctrl-C during the backup (pg_dump -Fc of the local Core database). The command is held
    //    in its AI preflight until the test holds a local Core table, which pg_dump then waits for.
    if case(1) {
        let (mut run, mut core) = held_in_backup(&env, "db-pull", &bench.remote, &bench.local);
        assert_eq!(
            files_in(&bench.backups()).len(),
            1,
            "the backup is being written"
        );
        run.interrupt();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "nothing was changed", "run the pull again"],
        );
        assert_nothing_left(&run, &ports, &[]);
        assert_eq!(
            files_in(&bench.backups()),
            Vec::<PathBuf>::new(),
            "no partial backup"
        );
        assert_eq!(xtask_databases(&bench.local), "");
        core.release();
        assert_eq!(both_fingerprints(&bench.local), before);
        // The lock went with the run.
        let dry = bench.run("db-pull", &["--unmasked", "--dry-run"]);
        assert_eq!(dry.code, 0, "{}", dry.all());
        support::record_case(
            "db-pull",
            "Ctrl-C during the backup",
            "130",
            "db-pull interrupted during the backup of the local core database: nothing was changed \
             and no partial backup is kept; run the pull again",
            "both local databases unchanged; no partial backup file; no pg_dump left",
        );
    }

    // 2. Ctrl-C during the schema step: `alembic upgrade head`, held by a migration that waits,
    //    (a) into the schema build that pulls keep and clone (its first build for these
    //    migrations), (b) with XTASK_SCHEMA_CACHE=off, into the staging database itself. The
    //    xtask alone gets SIGINT: it must stop uv and Python itself.
    for (cache, into) in [
        ("on", "the schema build that pulls clone"),
        ("off", "the staging database"),
    ] {
        if !case(2) {
            break;
        }
        let slow = tempfile::TempDir::new().unwrap();
        slow_migrations(slow.path());
        let backend = slow.path().display().to_string();
        let env = env_of(
            &bench,
            &[
                ("XTASK_BACKEND_DIR", backend.as_str()),
                ("XTASK_SCHEMA_CACHE", cache),
            ],
        );
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
            ],
        );
        run.wait_until(&format!("the migration to run in {into}"), 120, || {
            sessions(
                &bench.local,
                "datname LIKE '%xtask%' AND wait_event = 'PgSleep'",
            ) > 0
        });
        run.interrupt();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "unchanged", "run the same db-pull again"],
        );
        assert_nothing_left(&run, &ports, &[&backend]);
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(both_fingerprints(&bench.local), before);
        support::record_case(
            "db-pull",
            &format!("Ctrl-C during the schema step (alembic upgrade head into {into})"),
            "130",
            "db-pull interrupted: core: building the new copy: ... local core database \
             sigmasight_db: unchanged ... to finish: run the same db-pull again",
            "local unchanged; no staging database or half-built schema left; uv and Alembic's \
             Python stopped",
        );
    }

    // 3. Ctrl-C on a terminal (SIGINT to the whole process group) with every row sent into the
    //    staging database, before COMMIT.
    if case(3) {
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
            ],
        );
        let mut sequence = all_rows_sent(
            &mut run,
            &bench.remote,
            &bench.local,
            "sigmasight_db_xtask_new",
            "positions",
        );
        run.interrupt_group();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "unchanged", "run the same db-pull again"],
        );
        assert_nothing_left(&run, &ports, &[]);
        sequence.release();
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(both_fingerprints(&bench.local), before);
        support::record_case(
            "db-pull",
            "Ctrl-C on a terminal (the whole process group) with every row sent, before COMMIT",
            "130",
            "db-pull interrupted: core: loading the data: ... unchanged (the new copy was discarded \
             before the swap) ... to finish: run the same db-pull again",
            "local unchanged; staging database dropped; pg_dump and psql stopped in the container",
        );
    }

    // 4. A second Ctrl-C while the first one's cleanup runs: the local server is paused, so the
    //    cleanup (dropping the staging database) cannot finish until it is unpaused.
    if case(4) {
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
            ],
        );
        let mut queued = stall_source_read(&mut run, &bench.remote, CORE, "positions");
        psql_connected(&mut run, &bench.local, "sigmasight_db_xtask_new");
        docker(&["pause", &bench.local.name]);
        run.interrupt();
        run.wait_said("interrupted: stopping", 30);
        run.interrupt();
        run.wait_said("still cleaning up", 30);
        run.still_running("the cleanup, which waits for the paused server");
        docker(&["unpause", &bench.local.name]);
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &[
                "still cleaning up",
                "unchanged",
                "run the same db-pull again",
            ],
        );
        assert_nothing_left(&run, &ports, &[]);
        queued.release();
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(both_fingerprints(&bench.local), before);
        support::record_case(
            "db-pull",
            "a second Ctrl-C while the first one's cleanup waits for the (paused) local server",
            "130",
            "still cleaning up; it finishes on its own, please wait ... unchanged (the new copy was \
             discarded before the swap)",
            "local unchanged; staging database dropped once the server answered; nothing left",
        );
    }

    // 7. Ctrl-C on a terminal during a parallel load (--jobs 2): one job's read of the source is
    //    held (psql's, as market_data_cache is split into ctid ranges), the other's may have
    //    committed its tables into the staging database.
    if case(7) {
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
                "--jobs",
                "2",
            ],
        );
        let mut queued = stall_source_read(&mut run, &bench.remote, CORE, "positions");
        run.interrupt_group();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "unchanged", "run the same db-pull again"],
        );
        assert_nothing_left(&run, &ports, &[]);
        queued.release();
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(both_fingerprints(&bench.local), before);
        support::record_case(
            "db-pull",
            "Ctrl-C on a terminal during a parallel load (--jobs 2)",
            "130",
            "db-pull interrupted: core: loading the data: ... unchanged (the new copy was discarded \
             before the swap)",
            "local unchanged; the staging database with the jobs' committed tables dropped; every \
             job's pg_dump and psql stopped",
        );
    }

    // 5. psql killed (SIGKILL, in the container) while the load's transaction is open.
    if case(5) {
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
            ],
        );
        let mut queued = stall_source_read(&mut run, &bench.remote, CORE, "positions");
        psql_connected(&mut run, &bench.local, "sigmasight_db_xtask_new");
        run.note_children();
        let staging = format!(":{}/sigmasight_db_xtask_new", bench.local.port);
        signal("KILL", tool_process("psql", &[&staging]));
        queued.release();
        let out = run.finish(60);
        assert_nothing_left(&run, &ports, &[]);
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(both_fingerprints(&bench.local), before);
        support::fault_case(
            "db-pull",
            "psql killed (SIGKILL) during the data load",
            &out,
            1,
            &[
                "loading into the target failed",
                "unchanged",
                "run the same db-pull again",
            ],
            "local unchanged; staging database dropped; pg_dump stopped",
        );
    }

    // 6. The local server (the target) killed while the data streams: the tools die with it.
    //    After a restart the local databases hold what they held; the staging database that
    //    could not be dropped is dropped by the next pull.
    if case(6) {
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
            ],
        );
        let mut queued = stall_source_read(&mut run, &bench.remote, CORE, "positions");
        psql_connected(&mut run, &bench.local, "sigmasight_db_xtask_new");
        run.note_children();
        crash(&bench.local);
        let out = run.finish(60);
        assert_nothing_left(&run, &ports, &[]);
        queued.release();
        restart(&bench.local);
        assert_eq!(both_fingerprints(&bench.local), before);
        support::fault_case(
            "db-pull",
            "the local server (the target) killed during the data load",
            &out,
            1,
            &[
                "unchanged (the new copy was not swapped in)",
                "the next db-pull drops it",
            ],
            "local unchanged after the restart; the leftover staging database dropped by the next pull",
        );
        let again = bench.run(
            "db-pull",
            &["--unmasked", "--yes", "--core-only", "--no-backup"],
        );
        assert_eq!(again.code, 0, "{}", again.all());
        assert_eq!(xtask_databases(&bench.local), "");
        assert_eq!(fingerprint(&bench.local.url(CORE)), remote[0]);
    }

    // 8. A partial pull (--tables) whose load COMMITTED, then whose verification failed: its
    //    read of the local table waits behind a lock the test queued behind the load (granted
    //    at the COMMIT) and gives up after XTASK_LOCK_TIMEOUT. The tables were replaced in
    //    place, and the message must say so, not "unchanged".
    if case(8) {
        let (local, remote) = (bench.local.url(CORE), bench.remote.url(CORE));
        query(&local, "DELETE FROM market_data_cache WHERE id % 3 = 0");
        let rows = |url: &str| query_one(url, "SELECT count(*) FROM market_data_cache");
        assert_ne!(rows(&local), rows(&remote));
        let env = env_of(&bench, &[("XTASK_LOCK_TIMEOUT", "10s")]);
        let mut run = spawn(
            &env,
            &[
                "db-pull",
                "--unmasked",
                "--yes",
                "--core-only",
                "--no-backup",
                "--tables",
                "market_data_cache",
            ],
        );
        let mut sequence = all_rows_sent(
            &mut run,
            &bench.remote,
            &bench.local,
            CORE,
            "market_data_cache",
        );
        let table = Hold::start(
            &local,
            "LOCK TABLE market_data_cache IN ACCESS EXCLUSIVE MODE",
        );
        wait_for("the test's lock to queue behind the load", 30, || {
            table.state() == "Lock/relation"
        });
        sequence.release();
        let mut table = table.granted();
        let out = run.finish(120);
        table.release();
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert_said(
            &out,
            &[
                "the selected tables WERE replaced (the load committed), but were not verified",
                "lock timeout",
            ],
        );
        assert_nothing_left(&run, &ports, &[]);
        assert_eq!(rows(&local), rows(&remote));
        support::record_case(
            "db-pull",
            "--tables: the load committed, then the verification failed (a lock held on a \
             pulled table, XTASK_LOCK_TIMEOUT=10s)",
            "1",
            "the selected tables WERE replaced (the load committed), but were not verified",
            "local table replaced in place by the source's rows (count read back), as the message \
             says",
        );
    }
}

#[test]
fn db_push_interrupted_or_killed_at_each_step_leaves_the_remote_as_it_was() {
    require_docker!();
    let bench = bench_with(drifted_remote, true, init_and_seed, false);
    let before = both_fingerprints(&bench.remote);
    let local = both_fingerprints(&bench.local);
    assert_ne!(before, local, "the bench must start with different data");
    let ports = [bench.remote.port, bench.local.port];
    let env = env_of(&bench, &[]);

    // 1. Ctrl-C on a terminal (the whole process group) during the backup of the remote. The
    //    command is held in its AI preflight until the test holds a remote Core table.
    if case(1) {
        let (mut run, mut core) = held_in_backup(&env, "db-push", &bench.local, &bench.remote);
        run.interrupt_group();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "nothing was changed", "run the push again"],
        );
        assert_nothing_left(&run, &ports, &[]);
        assert_eq!(
            files_in(&bench.backups()),
            Vec::<PathBuf>::new(),
            "no partial backup"
        );
        core.release();
        assert_eq!(both_fingerprints(&bench.remote), before);
        let dry = bench.run("db-push", &["--dry-run"]);
        assert_eq!(dry.code, 0, "{}", dry.all());
        support::record_case(
            "db-push",
            "Ctrl-C on a terminal (the whole process group) during the backup of the remote",
            "130",
            "db-push interrupted during the backup of the remote core database: nothing was changed \
             and no partial backup is kept; run the push again",
            "both remote databases unchanged; no partial backup file; no pg_dump left",
        );
    }

    // 2. Ctrl-C (SIGINT to the xtask alone) with every row sent into the remote's open
    //    transaction (its tables emptied in it), before COMMIT.
    if case(2) {
        let mut run = spawn(&env, &["db-push", "--yes", "--core-only", "--no-backup"]);
        let mut sequence = all_rows_sent(&mut run, &bench.local, &bench.remote, CORE, "positions");
        run.interrupt();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &["interrupted", "unchanged", "run the same db-push again"],
        );
        assert_nothing_left(&run, &ports, &[]);
        // The server side of the killed psql waits for the sequence; released, it finds its
        // client gone and rolls back.
        sequence.release();
        wait_for("the killed psql's session to end", 60, || {
            sessions(&bench.remote, "application_name = 'psql'") == 0
        });
        assert_eq!(both_fingerprints(&bench.remote), before);
        support::record_case(
            "db-push",
            "Ctrl-C with every row sent into the remote, before COMMIT",
            "130",
            "db-push interrupted: core: loading the data: ... data unchanged (the load's transaction \
             was rolled back, or never started) ... to finish: run the same db-push again",
            "remote unchanged (its emptied tables are whole again); pg_dump and psql stopped",
        );
    }

    // 3. psql killed (SIGKILL, in the container) with every row sent and not committed.
    if case(3) {
        let mut run = spawn(&env, &["db-push", "--yes", "--core-only", "--no-backup"]);
        let mut sequence = all_rows_sent(&mut run, &bench.local, &bench.remote, CORE, "positions");
        run.note_children();
        let target = format!(":{}/{CORE}", bench.remote.port);
        signal("KILL", tool_process("psql", &[&target]));
        let out = run.finish(60);
        assert_nothing_left(&run, &ports, &[]);
        // The server side of the killed psql waits for the sequence; released, it finds its
        // client gone and rolls back.
        sequence.release();
        wait_for("the killed psql's session to end", 60, || {
            sessions(&bench.remote, "application_name = 'psql'") == 0
        });
        assert_eq!(both_fingerprints(&bench.remote), before);
        support::fault_case(
            "db-push",
            "psql killed (SIGKILL) with every row sent, before COMMIT",
            &out,
            1,
            &[
                "loading into the target failed",
                "unchanged",
                "run the same db-push again",
            ],
            "remote unchanged: the open transaction was rolled back",
        );
    }

    // 4. The remote server (the target) killed with every row sent, before COMMIT; started
    //    again, it holds exactly its old data.
    if case(4) {
        let mut run = spawn(&env, &["db-push", "--yes", "--core-only", "--no-backup"]);
        let mut sequence = all_rows_sent(&mut run, &bench.local, &bench.remote, CORE, "positions");
        run.note_children();
        crash(&bench.remote);
        let out = run.finish(60);
        assert_nothing_left(&run, &ports, &[]);
        sequence.release();
        restart(&bench.remote);
        assert_eq!(both_fingerprints(&bench.remote), before);
        assert_eq!(xtask_databases(&bench.remote), "");
        support::fault_case(
            "db-push",
            "the remote server (the target) killed with every row sent, before COMMIT",
            &out,
            1,
            &[
                "server closed the connection unexpectedly",
                "data unchanged",
                "run the same db-push again",
            ],
            "remote unchanged after its restart (crash recovery rolled the load back)",
        );
    }

    // 5. Ctrl-C during `alembic upgrade head` on a remote one migration behind: the migration
    //    waits for a lock the test holds. Alembic runs every migration in one transaction.
    if case(5) {
        support::alembic(
            &bench.remote.url(CORE),
            "alembic.ini",
            &["downgrade", "c0004_risk_analytics"],
        );
        let behind = fingerprint(&bench.remote.url(CORE));
        let mut portfolios = Hold::start(
            &bench.remote.url(CORE),
            "LOCK TABLE portfolios IN ROW EXCLUSIVE MODE",
        )
        .granted();
        let mut run = spawn(&env, &["db-push", "--yes", "--core-only", "--no-backup"]);
        run.wait_until("the migration to wait for its lock", 120, || {
            sessions(
                &bench.remote,
                &format!(
                    "datname = '{CORE}' AND wait_event_type = 'Lock' \
                     AND query LIKE '%CREATE TABLE correlation_calculations%'"
                ),
            ) > 0
        });
        run.interrupt();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &[
                "interrupted",
                "c0004_risk_analytics",
                "data unchanged",
                "run the same db-push again",
            ],
        );
        assert!(!out.stderr.contains("WAS migrated"), "{}", out.stderr);
        assert_nothing_left(&run, &ports, &[]);
        // The killed Alembic's server session still waits for the lock; released, it finds its
        // client gone and rolls the migration back.
        portfolios.release();
        wait_for("the killed Alembic's session to end", 60, || {
            sessions(
                &bench.remote,
                &format!("datname = '{CORE}' AND backend_type = 'client backend'"),
            ) == 0
        });
        assert_eq!(
            query_one(
                &bench.remote.url(CORE),
                "SELECT version_num FROM alembic_version"
            ),
            "c0004_risk_analytics"
        );
        assert_eq!(fingerprint(&bench.remote.url(CORE)), behind);
        support::record_case(
            "db-push",
            "Ctrl-C during alembic upgrade head on a remote one migration behind",
            "130",
            "db-push interrupted: core: migrating the remote to head: ... the database is at \
             revision c0004_risk_analytics now ... data unchanged",
            "remote schema and data unchanged (the upgrade's one transaction rolled back)",
        );
        // Pushed again, it ends equal.
        let again = bench.run("db-push", &["--yes", "--core-only", "--no-backup"]);
        assert_eq!(again.code, 0, "{}", again.all());
        assert_eq!(fingerprint(&bench.remote.url(CORE)), local[0]);
    }
}

#[test]
fn alembic_stamp_stopped_in_its_check_leaves_no_check_database_and_stamps_nothing() {
    require_docker!();
    let pg = PgContainer::start();
    let (core, ai) = (pg.url(CORE), pg.url(AI));
    let init = support::run_xtask(
        &["db-init"],
        &[("DATABASE_URL", &core), ("AI_DATABASE_URL", &ai)],
    );
    assert_eq!(init.code, 0, "{}", init.all());
    // A stale revision, as after runbook 002's restore: the stamp would replace it.
    query(
        &core,
        "UPDATE alembic_version SET version_num = 'c0003_merge'",
    );
    let slow = tempfile::TempDir::new().unwrap();
    slow_migrations(slow.path());
    let backend = slow.path().display().to_string();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", core.as_str()),
        ("AI_DATABASE_URL", ai.as_str()),
        ("XTASK_BACKEND_DIR", backend.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let schema = fingerprint(&core);
    let checking = |run: &mut Running| {
        run.wait_until(
            "the check's migrations to run in the throwaway database",
            120,
            || {
                sessions(
                    &pg,
                    "datname = 'sigmasight_db_xtask_stamp_check' AND wait_event = 'PgSleep'",
                ) > 0
            },
        );
    };
    let unchanged = || {
        assert_eq!(
            xtask_databases(&pg),
            "",
            "the throwaway database is dropped"
        );
        assert_eq!(
            query_one(&core, "SELECT version_num FROM alembic_version"),
            "c0003_merge"
        );
        assert_eq!(fingerprint(&core), schema);
    };

    // Ctrl-C (SIGINT to the xtask alone) while the check builds the migrations' schema.
    if case(1) {
        let mut run = spawn(&env, &["alembic-stamp", "--yes", "--config", "core"]);
        checking(&mut run);
        run.interrupt();
        let out = run.finish(60);
        assert_eq!(out.code, 130, "{}", out.stderr);
        assert_said(
            &out,
            &[
                "interrupted",
                "nothing was stamped",
                "run the same alembic-stamp again",
            ],
        );
        assert_nothing_left(&run, &[pg.port], &[&backend]);
        unchanged();
        support::record_case(
            "alembic-stamp",
            "Ctrl-C while the check builds the migrations' schema",
            "130",
            "alembic-stamp interrupted: ... nothing was stamped: alembic_version is as it was, and \
             the throwaway check database is dropped",
            "alembic_version unchanged; the throwaway check database dropped; uv and Python stopped",
        );
    }

    // Alembic killed (SIGKILL) in the check: its server session goes on with its statement, and
    // the throwaway database must still be dropped.
    if case(2) {
        let mut run = spawn(&env, &["alembic-stamp", "--yes", "--config", "core"]);
        checking(&mut run);
        run.note_children();
        let python: Vec<u32> = processes_with(&[&backend, "alembic", "upgrade"])
            .into_iter()
            .filter(|(_, line)| line.contains("/.venv/bin/"))
            .map(|(pid, _)| pid)
            .collect();
        assert_eq!(python.len(), 1, "one Alembic Python: {python:?}");
        signal("KILL", python[0]);
        let out = run.finish(60);
        assert_nothing_left(&run, &[pg.port], &[&backend]);
        unchanged();
        support::fault_case(
            "alembic-stamp",
            "Alembic killed (SIGKILL) while the check builds the migrations' schema",
            &out,
            1,
            &["nothing was stamped"],
            "alembic_version unchanged; the throwaway check database dropped",
        );
    }
}
