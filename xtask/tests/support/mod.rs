//! The test bench: real PostgreSQL servers only. `PgContainer` is a PostgreSQL 17 + pgvector
//! container on the host network (one URL works from the host and from inside every container);
//! `HostCluster` is a throwaway cluster of the host's PostgreSQL (15 on Debian bookworm) on a free
//! loopback port. Both are removed when dropped.
#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use xtask::config::DbUrl;

mod copies;
mod idle;
// Each test binary uses some of these (the module's dead-code allowance does not cover imports).
#[allow(unused_imports)]
pub use copies::{copy_schema_source, copy_schema_source_in, pull, pull_core};
#[allow(unused_imports)]
pub use idle::IdleInTransaction;

pub const IMAGE: &str = "pgvector/pgvector:pg17";
pub const USER: &str = "sigmasight";
/// Made up, and full of characters that must be percent-encoded in a URL.
pub const PASSWORD: &str = "p@ss:w/rd%?#&";
pub const PASSWORD_ENCODED: &str = "p%40ss%3Aw%2Frd%25%3F%23%26";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `prefix-<pid>-<n>`: a name no other test of any binary running now uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A port for a throwaway server, below the kernel's ephemeral range: a port in that range (what
/// binding port 0 hands out) can be taken at any moment as the local end of a client's
/// connection, and the server then fails to bind it (CI's throwaway server once did). Ports are
/// tried in turn from a place that depends on the process, so that two servers of one test binary
/// never get the same one; a port something is bound to is skipped.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32768);
    let (base, span) = if ephemeral_low > 21024 {
        (ephemeral_low - 20000, 20000)
    } else {
        (1024, ephemeral_low.saturating_sub(1024).max(1))
    };
    let start = std::process::id() as usize * 7919;
    for _ in 0..span {
        let port = (base + (start + NEXT.fetch_add(1, Ordering::SeqCst)) % span) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port below the ephemeral range ({base}..{})",
        base + span
    )
}

pub fn url(port: u16, dbname: &str) -> String {
    format!("postgresql://{USER}:{PASSWORD_ENCODED}@127.0.0.1:{port}/{dbname}")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether Docker tests can run here. With `CI` set they must: a skip is a failure.
pub fn docker_ready() -> bool {
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let image = engine
        && Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if engine && image {
        return true;
    }
    let why = if engine {
        format!("image {IMAGE} is missing (scripts/pg-image/build.sh builds it)")
    } else {
        "the Docker engine does not answer".to_string()
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and a Docker test cannot run: {why}. A skipped Docker test in CI is a failure.");
    }
    eprintln!("SKIPPED (not CI): {why}");
    false
}

/// `docker_ready()` or return from the test.
#[macro_export]
macro_rules! require_docker {
    () => {
        if !support::docker_ready() {
            return;
        }
    };
}

/// A PostgreSQL 17 + pgvector container on the host network.
pub struct PgContainer {
    pub name: String,
    pub port: u16,
}

impl PgContainer {
    pub fn start() -> PgContainer {
        Self::start_with_labels(&[])
    }

    pub fn start_with_labels(labels: &[(&str, &str)]) -> PgContainer {
        let name = unique("xtask-test-pg");
        let port = free_port();
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--rm", "--name", &name, "--network", "host"])
            .args(["--label", "xtask-test=1"])
            .args(["-e", &format!("POSTGRES_USER={USER}")])
            .args(["-e", "POSTGRES_PASSWORD"])
            .env("POSTGRES_PASSWORD", PASSWORD)
            .args(["-e", "POSTGRES_DB=sigmasight_db"]);
        for (k, v) in labels {
            cmd.args(["--label", &format!("{k}={v}")]);
        }
        cmd.args([IMAGE, "postgres", "-c", &format!("port={port}")])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        check(&mut cmd);
        let container = PgContainer { name, port };
        wait_ready(&container.url("sigmasight_db"));
        container
    }

    pub fn url(&self, dbname: &str) -> String {
        url(self.port, dbname)
    }

    pub fn stop(&self) {
        check(Command::new("docker").args(["stop", "-t", "5", &self.name]));
    }
}

impl Drop for PgContainer {
    fn drop(&mut self) {
        // -v: the image declares a volume for its data; without it every test would leave one
        // behind (this machine's disk once filled up with hundreds of them).
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

/// A throwaway cluster of the host's PostgreSQL on a free loopback port.
pub struct HostCluster {
    pub port: u16,
    pub bin: PathBuf,
    data: tempfile::TempDir,
}

impl HostCluster {
    /// The host's PostgreSQL binaries, newest first (Debian installs them per major version).
    pub fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    pub fn start() -> HostCluster {
        Self::start_with(false)
    }

    /// A cluster that takes TCP connections over TLS only (`hostssl` in pg_hba.conf, a
    /// self-signed certificate), as Railway's servers are reached: a connection in clear is refused.
    pub fn start_tls_only() -> HostCluster {
        Self::start_with(true)
    }

    fn start_with(tls_only: bool) -> HostCluster {
        let bin = Self::bin_dir().expect(
            "no PostgreSQL server on the host: scripts/test.sh installs postgresql-15 from Debian",
        );
        let data = tempfile::Builder::new()
            .prefix("xtask-cluster")
            .tempdir()
            .unwrap();
        let port = free_port();
        let pgdata = data.path().join("pgdata");
        let pwfile = data.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        // initdb refuses to run as root; CI runs as root, so the cluster belongs to `postgres`.
        if running_as_root() {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(data.path()),
            );
        }
        let wrap = as_cluster_owner;
        check(
            wrap(&bin.join("initdb"))
                .arg("-D")
                .arg(&pgdata)
                .args([
                    "-U",
                    USER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .args(["--encoding=UTF8", "--locale=C.UTF-8"]),
        );
        let mut server_options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            data.path().display()
        );
        if tls_only {
            let (crt, key) = (pgdata.join("server.crt"), pgdata.join("server.key"));
            check(
                Command::new("openssl")
                    .args(["req", "-new", "-x509", "-days", "2", "-nodes"])
                    .args(["-newkey", "rsa:2048", "-subj", "/CN=xtask-test-server"])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&crt),
            );
            std::fs::write(
                pgdata.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            check(Command::new("chmod").arg("600").arg(&key));
            if running_as_root() {
                check(
                    Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(&crt)
                        .arg(&key)
                        .arg(pgdata.join("pg_hba.conf")),
                );
            }
            server_options.push_str(" -c ssl=on");
        }
        check(
            wrap(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&pgdata)
                .arg("-l")
                .arg(data.path().join("server.log"))
                .arg("-o")
                .arg(server_options)
                .args(["-w", "start"]),
        );
        let cluster = HostCluster { port, bin, data };
        check(
            Command::new(cluster.bin.join("psql"))
                .arg(format!(
                    "--dbname={}",
                    DbUrl::parse(&cluster.url("postgres"))
                        .unwrap()
                        .to_libpq_uri()
                ))
                .env("PGPASSWORD", PASSWORD)
                .args([
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "CREATE DATABASE sigmasight_db",
                ]),
        );
        cluster
    }

    pub fn url(&self, dbname: &str) -> String {
        url(self.port, dbname)
    }
}

impl Drop for HostCluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let pgdata = self.data.path().join("pgdata");
        let mut cmd = as_cluster_owner(&pg_ctl);
        let _ = cmd
            .arg("-D")
            .arg(pgdata)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A server program run as the cluster's owner: `postgres` when the tests run as root.
fn as_cluster_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    // No libc dependency for one call: /proc tells the effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Waits until the server accepts connections with the test password.
pub fn wait_ready(url: &str) {
    let url = DbUrl::parse(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ok = block_on(async {
            xtask::pg::client::connect(&url, Duration::from_secs(2))
                .await
                .is_ok()
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not come up within 90 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `future` to its end on a runtime of its own (each test thread makes its own).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    xtask::runtime::Runtime::new()
        .expect("starting a tokio runtime")
        .block_on(future)
}

/// Runs a query on a database and returns the rows, each as its columns' text.
pub fn query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let url = DbUrl::parse(url).unwrap();
    block_on(async {
        let client = xtask::pg::client::connect(&url, Duration::from_secs(10))
            .await
            .unwrap();
        let rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

pub fn query_one(url: &str, sql: &str) -> String {
    query(url, sql)[0][0].clone().unwrap_or_default()
}

/// The `cargo xtask` binary with a clean environment: no settings leak in from the developer's
/// environment or .env; the test passes what it means.
pub fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for var in [
        "DATABASE_URL",
        "AI_DATABASE_URL",
        "RAILWAY_DB_URL",
        "RAILWAY_AI_DB_URL",
        "XTASK_PG_VIA",
        "POSTGRES_CONTAINER",
        "PGPASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["--env-file", "/dev/null"]);
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The finished xtask's exit code and output, after asserting that the test password shows
    /// nowhere in it (`what` names the run in the failure).
    pub fn checked(out: Output, what: &str) -> Run {
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !r.all().contains(PASSWORD) && !r.all().contains(PASSWORD_ENCODED),
            "the password leaked into the output of {what}:\n{}",
            r.all()
        );
        r
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run_xtask(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = xtask();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::checked(run(&mut cmd), &format!("{args:?}"))
}

pub fn backend_dir() -> PathBuf {
    xtask::project_root().join("backend")
}

/// A schema "restored from a dump", as the runbooks made one: database `from` of the container is
/// dumped with the container's pg_dump and loaded into a new database `to` with its psql
/// (`ON_ERROR_STOP=1`). The password travels as `PGPASSWORD` in the environment only.
pub fn dump_restore(pg: &PgContainer, from: &str, to: &str) {
    use std::io::Write;
    use std::process::Stdio;
    query(&pg.url("postgres"), &format!("CREATE DATABASE \"{to}\""));
    let port = pg.port.to_string();
    let tool = |program: &str, db: &str| {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-i", "-e", "PGPASSWORD", &pg.name, program])
            .args(["-h", "127.0.0.1", "-p", &port, "-U", USER, "-d", db])
            .env("PGPASSWORD", PASSWORD);
        cmd
    };
    let dump = run(&mut tool("pg_dump", from));
    assert!(
        dump.status.success(),
        "pg_dump {from}: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut psql = tool("psql", to);
    psql.args(["-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = psql.spawn().expect("cannot run docker exec psql");
    child.stdin.take().unwrap().write_all(&dump.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of backend/'s Alembic side (configs, env, migrations, uv project) in `dest`, for tests
/// that change the migrations (`XTASK_BACKEND_DIR` points the xtask at it).
pub fn copy_backend(dest: &Path) {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == "__pycache__" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                copy_dir(&path, &to.join(&name));
            } else {
                std::fs::copy(&path, to.join(&name)).unwrap();
            }
        }
    }
    let src = backend_dir();
    for file in [
        "alembic.ini",
        "alembic_ai.ini",
        "migration_env.py",
        "pyproject.toml",
        "uv.lock",
    ] {
        std::fs::copy(src.join(file), dest.join(file)).unwrap();
    }
    for dir in ["migrations_core", "migrations_ai"] {
        copy_dir(&src.join(dir), &dest.join(dir));
    }
}

/// A copy of backend/ (see `copy_backend`) with one more Core migration, `file` under
/// `migrations_core/versions/`, holding `text`. Removed when dropped.
pub fn backend_with_core_migration(file: &str, text: &str) -> tempfile::TempDir {
    let backend = tempfile::Builder::new()
        .prefix("xtask-backend")
        .tempdir()
        .unwrap();
    copy_backend(backend.path());
    std::fs::write(
        backend.path().join("migrations_core/versions").join(file),
        text,
    )
    .unwrap();
    backend
}

/// Asserts one fault or bad-input case's exit code and message, then records it for the
/// reliability matrix in docs/reliability.md (`scripts/reliability-matrix.py` renders the records;
/// CI fails when that table differs from what the suite recorded). Call it after asserting the
/// databases' contents: `data` says what was asserted about them. `says` are the message's parts
/// that must appear; the first is shown in the matrix.
pub fn fault_case(command: &str, case: &str, run: &Run, code: i32, says: &[&str], data: &str) {
    assert_eq!(
        run.code,
        code,
        "{command}, {case}: exit code\n{}",
        run.all()
    );
    for part in says {
        assert!(
            run.all().contains(part),
            "{command}, {case}: the message lacks {part:?}:\n{}",
            run.all()
        );
    }
    record_case(
        command,
        case,
        &code.to_string(),
        says.first().copied().unwrap_or(""),
        data,
    );
}

/// Records a matrix row whose exit code and message the caller asserted itself (a signal's 130,
/// a message matched by a pattern).
pub fn record_case(command: &str, case: &str, exit: &str, says: &str, data: &str) {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability");
    std::fs::create_dir_all(&dir).unwrap();
    let test = std::thread::current()
        .name()
        .unwrap_or("?")
        .rsplit("::")
        .next()
        .unwrap_or("?")
        .to_string();
    let line = serde_json::json!({
        "command": command,
        "case": case,
        "exit": exit,
        "says": says,
        "data": data,
        "test": format!("{}::{test}", env!("CARGO_CRATE_NAME")),
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.jsonl", std::process::id())))
        .unwrap();
    // One write per line: records of tests running in parallel do not interleave.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Runs `BEGIN; <sql>` on `url`, in a session named `app`, the moment a session named `holder`
/// holds a lock on `table` and sits idle in its transaction: the way a test queues a lock request
/// between a command's snapshot (which takes every table when it counts them, until it ends) and
/// the tool that asks for the same table next. Idle, because while the snapshot's catalog is
/// read, functions such as `pg_get_indexdef` take and release their locks call by call: a
/// request queued behind one of those would block the command's own next call. Both connections
/// are opened first and the locks are polled every 2 ms, because the gap can be short (a pull
/// starts pg_dump right after its preflight: some 100 ms). Gives up after 120 s. The thread ends
/// when `sql` does (or its session is terminated).
pub fn when_locked_by(
    url: &str,
    holder: &str,
    table: &str,
    app: &str,
    sql: &str,
) -> std::thread::JoinHandle<()> {
    let url = DbUrl::parse(url).unwrap();
    let (holder, table, app, sql) = (
        holder.to_string(),
        table.to_string(),
        app.to_string(),
        sql.to_string(),
    );
    std::thread::spawn(move || {
        let _ = block_on(async {
            // The poller is named after the locker (`<app>-poll`): terminating both sessions
            // ends the thread at once, whether it polls or waits for its lock.
            let poller = xtask::pg::client::connect(&url, Duration::from_secs(10)).await?;
            poller
                .execute(
                    "SELECT set_config('application_name', $1 || '-poll', false)",
                    &[&app],
                )
                .await?;
            let locker = xtask::pg::client::connect(&url, Duration::from_secs(10)).await?;
            locker
                .execute("SELECT set_config('application_name', $1, false)", &[&app])
                .await?;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let held: i64 = poller
                    .query_one(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                         WHERE a.application_name = $1 AND l.granted \
                         AND a.state = 'idle in transaction' \
                         AND l.relation = $2::text::regclass",
                        &[&holder, &table],
                    )
                    .await?
                    .get(0);
                if held > 0 {
                    break;
                }
                if Instant::now() > deadline {
                    anyhow::bail!("{holder} never held {table}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            locker.batch_execute(&format!("BEGIN; {sql}")).await?;
            anyhow::Ok(())
        });
    })
}

/// `uv run alembic` on a database, its URL in the environment only.
pub fn alembic(url: &str, ini: &str, args: &[&str]) {
    let var = if ini == "alembic.ini" {
        "DATABASE_URL"
    } else {
        "AI_DATABASE_URL"
    };
    let out = std::process::Command::new("uv")
        .args(["run", "--locked", "--directory"])
        .arg(backend_dir())
        .args(["alembic", "-c", ini])
        .args(args)
        .env(var, url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "alembic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
