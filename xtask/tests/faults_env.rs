//! The fault matrix's environment cases (issue 9), against real containers, a real Docker engine,
//! real uv and Alembic: the Docker engine does not answer, uv is missing, a migration fails
//! halfway, the xtask's own statement timeout fires, the source or target server is stalled
//! (`docker pause`), the backup folder has no room (a small tmpfs), a wrong password, an unknown
//! target database. Each case asserts the exit code, that the message names what went wrong and
//! what to do, and that the databases hold exactly what they held before (fingerprints read back
//! here, independently of the xtask), then records its row for the reliability matrix
//! (docs/reliability.md).
//!
//! One bench (two containers) serves every case, one after the other: the remote holds the seed,
//! the local holds different data, so that any pull or push that went through would show.

mod bench;
mod support;

use std::{
    collections::BTreeMap,
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

use bench::{
    assert_no_secret_in_files, both_fingerprints, fingerprint, finish, walk, Bench, AI, CORE,
};
use support::{fault_case, query, query_one, PgContainer, Run, PASSWORD_ENCODED, USER};

type Fingerprints = [BTreeMap<String, (String, String)>; 2];

/// One group of cases: the bench, then the local's and the remote's fingerprints from the start.
type Phase = fn(&Bench, &Fingerprints, &Fingerprints);

/// The remote seeded; the local seeded, then changed, so that a pull that went through would show.
fn fault_bench() -> Bench {
    Bench::start(bench::init_and_seed, |pg: &PgContainer| {
        bench::init_and_seed(pg);
        query(
            &pg.url(CORE),
            "DELETE FROM position_tags; UPDATE users SET full_name = 'local only'",
        );
        query(&pg.url(AI), "DELETE FROM ai_feedback");
    })
}

/// How long one command may take here. Every case fails within seconds; a hang (the very fault
/// the Docker and connection deadlines prevent) must fail the test, not stall the suite.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Runs a command with the bench's settings and `extra` on top (a later setting wins), within
/// RUN_LIMIT, and checks that neither its output nor anything it wrote leaks the password. URLs
/// go through the environment only.
fn run_with(bench: &Bench, command: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut cmd = support::xtask();
    cmd.arg(command).args(args);
    for (k, v) in bench.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(finish(child));
    });
    let run = match rx.recv_timeout(RUN_LIMIT) {
        Ok(run) => run,
        Err(RecvTimeoutError::Timeout) => {
            // Our own child, by its pid.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let run = rx.recv().ok();
            panic!(
                "`xtask {command} {args:?}` did not finish within {RUN_LIMIT:?}; it hangs:\n{}",
                run.map(|r| r.all()).unwrap_or_default()
            );
        }
        Err(RecvTimeoutError::Disconnected) => {
            panic!("`xtask {command} {args:?}`: its output failed a check (see above)")
        }
    };
    assert!(
        !run.all().contains(PASSWORD_ENCODED),
        "the password leaked into the output of {command} {args:?}:\n{}",
        run.all()
    );
    assert_no_secret_in_files(bench.dirs.path());
    run
}

/// Databases whose names say the xtask made them and that a failed command must not leave
/// (staging copies, half-built schemas, swapped-out copies, stamp checks). A complete cached
/// schema (`xtask_schema_<config>_<key>`, see xtask/src/migrations.rs) is kept on purpose.
fn xtask_databases(pg: &PgContainer) -> String {
    query_one(
        &pg.url("postgres"),
        "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database \
         WHERE datname LIKE '%xtask%' AND datname !~ '^xtask_schema_[a-z]+_[0-9a-f]+$'",
    )
}

/// `bench::both_fingerprints`, with Core and AI read at once (the checks run after every case).
fn fingerprints(pg: &PgContainer) -> Fingerprints {
    std::thread::scope(|s| {
        let ai = s.spawn(|| fingerprint(&pg.url(AI)));
        let core = fingerprint(&pg.url(CORE));
        [core, ai.join().unwrap()]
    })
}

/// The local databases hold what they held, and no staging database is left.
fn assert_local_unchanged(bench: &Bench, before: &Fingerprints, case: &str) {
    assert_eq!(
        &fingerprints(&bench.local),
        before,
        "{case}: the local data changed"
    );
    assert_eq!(
        xtask_databases(&bench.local),
        "",
        "{case}: a staging database was left behind"
    );
}

fn assert_remote_unchanged(bench: &Bench, before: &Fingerprints, case: &str) {
    assert_eq!(
        &fingerprints(&bench.remote),
        before,
        "{case}: the remote data changed"
    );
    assert_eq!(
        xtask_databases(&bench.remote),
        "",
        "{case}: a leftover database on the remote"
    );
}

const LOCAL_SAME: &str = "local Core and AI unchanged (fingerprints); no staging database";
const REMOTE_SAME: &str = "remote Core and AI unchanged (fingerprints)";

#[test]
fn environment_faults_end_with_a_clear_error_and_change_nothing() {
    require_docker!();
    let started = Instant::now();
    let bench = fault_bench();
    eprintln!("bench ready in {:?}", started.elapsed());
    let local = both_fingerprints(&bench.local);
    let remote = both_fingerprints(&bench.remote);
    assert_ne!(local, remote, "the bench must start with different data");

    let phases: [(&str, Phase); 7] = [
        ("docker engine", docker_engine_does_not_answer),
        ("uv missing", uv_is_missing),
        ("wrong password, unknown database", credentials_and_names),
        ("statement timeout", statement_timeout),
        ("stalled server", stalled_server),
        ("no room for the backup", no_room_for_the_backup),
        ("migration fails halfway", migration_fails_halfway),
    ];
    for (name, phase) in phases {
        let t = Instant::now();
        phase(&bench, &local, &remote);
        eprintln!("{name}: {:?}", t.elapsed());
    }
    eprintln!("all cases in {:?}", started.elapsed());
}

/// Case 1, the Docker engine: DOCKER_HOST at a socket that does not exist, then at one that
/// accepts and never replies (the docker CLI would wait for ever: the xtask's deadline stops it).
fn docker_engine_does_not_answer(bench: &Bench, local: &Fingerprints, _: &Fingerprints) {
    let gone = "unix:///path/that/does/not/exist";
    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes"],
        &[("DOCKER_HOST", gone)],
    );
    assert_local_unchanged(bench, local, "no docker socket");
    fault_case(
        "db-pull",
        "Docker engine does not answer (DOCKER_HOST names a socket that does not exist)",
        &run,
        1,
        &[
            "the Docker engine does not answer",
            "DOCKER_HOST=unix:///path/that/does/not/exist",
            "docker info",
            "--via host",
        ],
        LOCAL_SAME,
    );

    let run = run_with(bench, "doctor", &[], &[("DOCKER_HOST", gone)]);
    assert_local_unchanged(bench, local, "doctor without docker");
    fault_case(
        "doctor",
        "Docker engine does not answer (DOCKER_HOST names a socket that does not exist)",
        &run,
        1,
        &[
            "the Docker engine does not answer",
            "start Docker",
            "fix the failing checks",
        ],
        "nothing written (doctor only reads); local unchanged (fingerprints)",
    );

    // A socket that takes every connection and never says a word: a hung engine.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let host = format!("unix://{}", socket.display());
    let t = Instant::now();
    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes"],
        &[("DOCKER_HOST", &host), ("XTASK_DOCKER_TIMEOUT", "2")],
    );
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "a hung engine must be given up on within XTASK_DOCKER_TIMEOUT, took {took:?}"
    );
    assert_local_unchanged(bench, local, "hung docker socket");
    fault_case(
        "db-pull",
        "Docker engine does not answer (DOCKER_HOST socket never replies)",
        &run,
        1,
        &[
            "the Docker engine did not answer within 2 s",
            &format!("DOCKER_HOST={host}"),
            "docker info",
            "XTASK_DOCKER_TIMEOUT",
        ],
        LOCAL_SAME,
    );

    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes"],
        &[("XTASK_DOCKER_TIMEOUT", "soon")],
    );
    assert_local_unchanged(bench, local, "bad XTASK_DOCKER_TIMEOUT");
    fault_case(
        "db-pull",
        "XTASK_DOCKER_TIMEOUT is not a number of seconds",
        &run,
        2,
        &["XTASK_DOCKER_TIMEOUT=\"soon\"", "whole number of seconds"],
        LOCAL_SAME,
    );
}

/// A folder holding only `docker` and the host's PostgreSQL tools: a PATH without uv.
fn path_without_uv() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let which = |program: &str| -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    };
    let docker = which("docker").expect("docker on PATH");
    std::os::unix::fs::symlink(docker, dir.path().join("docker")).unwrap();
    if let Some(bin) = support::HostCluster::bin_dir() {
        for tool in ["pg_dump", "pg_restore", "psql"] {
            let _ = std::os::unix::fs::symlink(bin.join(tool), dir.path().join(tool));
        }
    }
    dir
}

/// Case 2, no uv on PATH: Alembic cannot run; the pull stops before the local data is touched.
fn uv_is_missing(bench: &Bench, local: &Fingerprints, _: &Fingerprints) {
    let bin = path_without_uv();
    assert!(!bin.path().join("uv").exists());
    let path = bin.path().display().to_string();
    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes"],
        &[("PATH", &path)],
    );
    assert_local_unchanged(bench, local, "uv missing");
    // Where uv is first needed depends on what the migrations cache already knows (the heads, in
    // the preflight; the schema, in the staging step): either way the message says the state.
    assert!(
        run.stderr.contains("nothing local was touched")
            || run
                .stderr
                .contains("local core database sigmasight_db: unchanged"),
        "the message must say what state the local databases are in:\n{}",
        run.stderr
    );
    fault_case(
        "db-pull",
        "uv is not on PATH",
        &run,
        1,
        &["uv is not installed or not on PATH", "pip install uv"],
        LOCAL_SAME,
    );
}

/// A URL of `pg` whose password is wrong.
fn wrong_password_url(pg: &PgContainer, db: &str) -> String {
    format!(
        "postgresql://{USER}:not-{PASSWORD_ENCODED}@127.0.0.1:{}/{db}",
        pg.port
    )
}

/// Case 7, names and credentials: a wrong password on either command's source, and a push into a
/// database that does not exist.
fn credentials_and_names(bench: &Bench, local: &Fingerprints, remote: &Fingerprints) {
    let bad = wrong_password_url(&bench.remote, CORE);
    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes", "--core-only"],
        &[("RAILWAY_DB_URL", &bad)],
    );
    assert_local_unchanged(bench, local, "wrong source password");
    fault_case(
        "db-pull",
        "wrong password for the source (remote)",
        &run,
        1,
        &[
            "authentication failed",
            "check the user and password in the URL",
            "nothing local was touched",
        ],
        LOCAL_SAME,
    );

    let bad = wrong_password_url(&bench.local, CORE);
    let run = run_with(
        bench,
        "db-push",
        &["--yes", "--core-only"],
        &[("DATABASE_URL", &bad)],
    );
    assert_remote_unchanged(bench, remote, "wrong source password (push)");
    fault_case(
        "db-push",
        "wrong password for the source (local)",
        &run,
        1,
        &[
            "authentication failed",
            "check the user and password in the URL",
            "nothing on the remote was touched",
        ],
        REMOTE_SAME,
    );

    let missing = bench.remote.url("no_such_db");
    let run = run_with(
        bench,
        "db-push",
        &["--yes", "--core-only"],
        &[("RAILWAY_DB_URL", &missing)],
    );
    assert_remote_unchanged(bench, remote, "unknown target database");
    assert_eq!(
        query_one(
            &bench.remote.url("postgres"),
            "SELECT count(*) FROM pg_database WHERE datname = 'no_such_db'"
        ),
        "0",
        "the push must not create the database it was pointed at"
    );
    fault_case(
        "db-push",
        "target database does not exist",
        &run,
        1,
        &[
            "the database does not exist",
            "no_such_db",
            "nothing on the remote was touched",
        ],
        "remote unchanged (fingerprints); no database created",
    );
}

/// Case 4, XTASK_STATEMENT_TIMEOUT: a bad value is refused up front; a tiny one fires on the
/// xtask's own queries (the counts and checksums of 193,488 market-data rows take far more than
/// 1 ms).
fn statement_timeout(bench: &Bench, local: &Fingerprints, remote: &Fingerprints) {
    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes", "--core-only"],
        &[("XTASK_STATEMENT_TIMEOUT", "soon")],
    );
    assert_local_unchanged(bench, local, "bad statement timeout");
    fault_case(
        "db-pull",
        "XTASK_STATEMENT_TIMEOUT is not a duration",
        &run,
        2,
        &["XTASK_STATEMENT_TIMEOUT=\"soon\"", "`10min`"],
        LOCAL_SAME,
    );

    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes", "--core-only"],
        &[("XTASK_STATEMENT_TIMEOUT", "1ms")],
    );
    assert_local_unchanged(bench, local, "statement timeout in db-pull");
    fault_case(
        "db-pull",
        "the xtask's own query runs past XTASK_STATEMENT_TIMEOUT (1ms)",
        &run,
        1,
        &[
            "XTASK_STATEMENT_TIMEOUT=1ms",
            "XTASK_STATEMENT_TIMEOUT=0 for no limit",
            "nothing local was touched",
        ],
        LOCAL_SAME,
    );

    let run = run_with(
        bench,
        "db-verify",
        &["--checksums", "--core-only"],
        &[("XTASK_STATEMENT_TIMEOUT", "1ms")],
    );
    // Each side names the timeout, even when what the server refused first was the client's own
    // statement (a type lookup) and the listed queries only saw "current transaction is aborted".
    for side in ["local: ", "remote: "] {
        let said = run.all();
        let part = said.split(side).nth(1).unwrap_or("");
        let part = part.split("; remote: ").next().unwrap_or("");
        assert!(
            part.contains("XTASK_STATEMENT_TIMEOUT=1ms"),
            "{side}{}",
            said
        );
    }
    assert_local_unchanged(bench, local, "statement timeout in db-verify");
    assert_remote_unchanged(bench, remote, "statement timeout in db-verify");
    fault_case(
        "db-verify",
        "a count or checksum runs past XTASK_STATEMENT_TIMEOUT (1ms)",
        &run,
        1,
        &["XTASK_STATEMENT_TIMEOUT=1ms", "db-verify could not compare"],
        "both sides unchanged (read-only; fingerprints)",
    );
}

/// A paused container, unpaused when dropped (also when an assertion fails).
struct Paused<'a>(&'a PgContainer);

impl<'a> Paused<'a> {
    fn pause(pg: &'a PgContainer) -> Paused<'a> {
        let ok = Command::new("docker")
            .args(["pause", &pg.name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "docker pause {}", pg.name);
        Paused(pg)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["unpause", &self.0.name])
            .status();
    }
}

/// Case 5, a stalled server: the remote's container paused; its kernel still completes the TCP
/// handshake, the server never answers. The pull (source) and the push (target) give up within
/// --timeout.
fn stalled_server(bench: &Bench, local: &Fingerprints, remote: &Fingerprints) {
    let (pull, push, pull_took, push_took) = {
        let _paused = Paused::pause(&bench.remote);
        let t = Instant::now();
        let pull = run_with(
            bench,
            "db-pull",
            &["--unmasked", "--yes", "--timeout", "3"],
            &[],
        );
        let pull_took = t.elapsed();
        let t = Instant::now();
        let push = run_with(bench, "db-push", &["--yes", "--timeout", "3"], &[]);
        (pull, push, pull_took, t.elapsed())
    };
    for (what, took) in [("db-pull", pull_took), ("db-push", push_took)] {
        assert!(
            took < Duration::from_secs(30),
            "{what} against a paused server took {took:?}"
        );
    }
    assert_local_unchanged(bench, local, "stalled remote (pull)");
    fault_case(
        "db-pull",
        "the source server is stalled (container paused)",
        &pull,
        1,
        &[
            "the server did not answer",
            "no answer within 3s",
            "nothing local was touched",
        ],
        LOCAL_SAME,
    );
    assert_remote_unchanged(bench, remote, "stalled remote (push)");
    fault_case(
        "db-push",
        "the target server is stalled (container paused)",
        &push,
        1,
        &[
            "the server did not answer",
            "no answer within 3s",
            "nothing on the remote was touched",
        ],
        REMOTE_SAME,
    );
}

/// A 256 kB tmpfs (the backups of the bench's databases are megabytes), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("xtask-full-disk")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a small tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Case 6, no room for the backup: refused before anything is dropped, no partial backup left.
fn no_room_for_the_backup(bench: &Bench, local: &Fingerprints, remote: &Fingerprints) {
    let disk = SmallDisk::mount();
    let dir = disk.path().display().to_string();
    let room = format!("the backup folder {dir} is out of room");

    let run = run_with(
        bench,
        "db-pull",
        &["--unmasked", "--yes"],
        &[("XTASK_BACKUP_DIR", &dir)],
    );
    let left = walk(disk.path()).unwrap();
    assert!(left.is_empty(), "a partial backup was left: {left:?}");
    assert_local_unchanged(bench, local, "no room (pull)");
    fault_case(
        "db-pull",
        "the backup folder is out of room (256 kB tmpfs)",
        &run,
        1,
        // The first part is the matrix's: the same in every run (the folder's name is not).
        &[
            "is out of room",
            &room,
            "XTASK_BACKUP_DIR",
            "nothing was changed",
        ],
        "local unchanged (fingerprints); no staging database; no partial backup file",
    );

    let run = run_with(bench, "db-push", &["--yes"], &[("XTASK_BACKUP_DIR", &dir)]);
    let left = walk(disk.path()).unwrap();
    assert!(left.is_empty(), "a partial backup was left: {left:?}");
    assert_remote_unchanged(bench, remote, "no room (push)");
    fault_case(
        "db-push",
        "the backup folder is out of room (256 kB tmpfs)",
        &run,
        1,
        // The first part is the matrix's: the same in every run (the folder's name is not).
        &[
            "is out of room",
            &room,
            "XTASK_BACKUP_DIR",
            "nothing was changed",
        ],
        "remote unchanged (fingerprints); no partial backup file",
    );
}

/// A new Core head that creates a table, fills it, and then fails.
const FAILING_MIGRATION: &str = r#""""fails halfway: creates a table, then raises

Revision ID: c0006_fails_halfway
Revises: c0005_correlations
"""
import sqlalchemy as sa
from alembic import op

revision = "c0006_fails_halfway"
down_revision = "c0005_correlations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("xtask_half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO xtask_half_done VALUES (1)")
    raise RuntimeError("c0006_fails_halfway stops here on purpose")


def downgrade() -> None:
    op.drop_table("xtask_half_done")
"#;

/// Case 3, a migration fails halfway (after it created a table): the pull's staging copy is
/// discarded; the push's remote keeps its data and its revision (Alembic's one transaction is
/// rolled back).
fn migration_fails_halfway(bench: &Bench, local: &Fingerprints, remote: &Fingerprints) {
    let backend = support::backend_with_core_migration("c0006_fails_halfway.py", FAILING_MIGRATION);
    let backend_dir = backend.path().display().to_string();
    // Both sides are at c0005_correlations, behind this copy's head: let the copies go on.
    let env = [("XTASK_BACKEND_DIR", backend_dir.as_str())];
    let args = ["--yes", "--core-only", "--allow-revision-mismatch"];

    let pull_args = [
        "--unmasked",
        "--yes",
        "--core-only",
        "--allow-revision-mismatch",
    ];
    let run = run_with(bench, "db-pull", &pull_args, &env);
    assert_local_unchanged(bench, local, "failing migration (pull)");
    fault_case(
        "db-pull",
        "a migration fails halfway (creates a table, then raises)",
        &run,
        1,
        &[
            "failed in the migration c0005_correlations -> c0006_fails_halfway",
            "RuntimeError: c0006_fails_halfway stops here on purpose",
            "Fix that migration",
            "local core database sigmasight_db: unchanged",
        ],
        LOCAL_SAME,
    );

    let run = run_with(bench, "db-push", &args, &env);
    let revision = query_one(
        &bench.remote.url(CORE),
        "SELECT string_agg(version_num, ',') FROM alembic_version",
    );
    assert_eq!(
        revision, "c0005_correlations",
        "the remote's alembic_version"
    );
    assert_eq!(
        query_one(
            &bench.remote.url(CORE),
            "SELECT to_regclass('public.xtask_half_done') IS NULL"
        ),
        "t",
        "the failed migration's table must have been rolled back"
    );
    assert_remote_unchanged(bench, remote, "failing migration (push)");
    // The upgrade was rolled back whole: nothing to downgrade, and the message must not say so.
    assert!(!run.all().contains("was migrated from"), "{}", run.all());
    fault_case(
        "db-push",
        "a migration fails halfway (remote behind head; creates a table, then raises)",
        &run,
        1,
        &[
            "failed in the migration c0005_correlations -> c0006_fails_halfway",
            "RuntimeError: c0006_fails_halfway stops here on purpose",
            "the database is at revision c0005_correlations now",
            "Fix that migration",
        ],
        "remote unchanged (fingerprints), alembic_version still c0005_correlations, the \
         migration's table absent",
    );
}
