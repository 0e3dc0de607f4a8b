//! The test bench shared by the db-pull and db-push tests: a "remote" and a "local" container
//! (the tools run in the local one, as in `backend-postgres-1`), the folders the xtask writes
//! backups and logs into, and fingerprints of the data read back independently of the xtask.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::support::{query, run_xtask, xtask, PgContainer, Run, PASSWORD};

/// Two containers and the folders the xtask writes into.
pub struct Bench {
    pub remote: PgContainer,
    pub local: PgContainer,
    pub dirs: TempDir,
}

pub const CORE: &str = "sigmasight_db";
pub const AI: &str = "sigmasight_ai_db";

impl Bench {
    /// Two containers, prepared at once: `remote` and `local` each get their own preparation.
    pub fn start(
        remote: impl Fn(&PgContainer) + Sync,
        local: impl Fn(&PgContainer) + Sync,
    ) -> Bench {
        let (remote, local) = std::thread::scope(|s| {
            let r = s.spawn(|| {
                let pg = PgContainer::start();
                remote(&pg);
                pg
            });
            let l = s.spawn(|| {
                let pg = PgContainer::start();
                local(&pg);
                pg
            });
            (r.join().unwrap(), l.join().unwrap())
        });
        Bench {
            remote,
            local,
            dirs: TempDir::new().unwrap(),
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.local.url(CORE)),
            ("AI_DATABASE_URL".into(), self.local.url(AI)),
            ("RAILWAY_DB_URL".into(), self.remote.url(CORE)),
            ("RAILWAY_AI_DB_URL".into(), self.remote.url(AI)),
            ("POSTGRES_CONTAINER".into(), self.local.name.clone()),
            (
                "XTASK_BACKUP_DIR".into(),
                self.backups().display().to_string(),
            ),
            ("XTASK_LOG_DIR".into(), self.logs().display().to_string()),
        ]
    }

    pub fn backups(&self) -> PathBuf {
        self.dirs.path().join("backups")
    }

    pub fn logs(&self) -> PathBuf {
        self.dirs.path().join("logs")
    }

    /// Runs a command with the bench's settings; checks that no file it wrote leaks a secret.
    pub fn run(&self, command: &str, args: &[&str]) -> Run {
        self.run_with(command, args, &[])
    }

    /// `run`, with more settings in the environment (they win over the bench's).
    pub fn run_with(&self, command: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let env = self.env();
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        let mut all = vec![command];
        all.extend_from_slice(args);
        let run = run_xtask(&all, &env);
        assert_no_secret_in_files(self.dirs.path());
        run
    }

    /// Starts a command in the background (for faults injected while it runs).
    pub fn spawn(&self, command: &str, args: &[&str]) -> Child {
        let mut cmd = xtask();
        cmd.arg(command).args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

pub fn init_and_seed(pg: &PgContainer) {
    let (core, ai) = (pg.url(CORE), pg.url(AI));
    let env = [
        ("DATABASE_URL", core.as_str()),
        ("AI_DATABASE_URL", ai.as_str()),
    ];
    let run = run_xtask(&["db-init"], &env);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = run_xtask(&["seed", "--scale", "1"], &env);
    assert_eq!(run.code, 0, "{}", run.all());
}

/// Every user table's exact row count and an order-independent hash of its rows, read here.
pub fn fingerprint(url: &str) -> BTreeMap<String, (String, String)> {
    let tables = query(
        url,
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    tables
        .into_iter()
        .map(|row| {
            let t = row[0].clone().unwrap();
            let r = query(
                url,
                &format!(
                    // Order-independent, without a sort: the sum of each row's md5 (60 bits).
                    "SELECT count(*), coalesce(sum(('x' || substr(md5(x::text), 1, 15))::bit(60)\
                     ::bigint), 0)::text FROM {t} AS x"
                ),
            );
            (
                t,
                (
                    r[0][0].clone().unwrap(),
                    r[0][1].clone().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

pub fn both_fingerprints(pg: &PgContainer) -> [BTreeMap<String, (String, String)>; 2] {
    [fingerprint(&pg.url(CORE)), fingerprint(&pg.url(AI))]
}

/// Neither the logs nor the backups' names hold the password, and both are private.
pub fn assert_no_secret_in_files(dir: &Path) {
    let Ok(entries) = walk(dir) else { return };
    for path in entries {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "{} must be readable only by its owner",
            path.display()
        );
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains(PASSWORD), "password in {}", path.display());
        }
    }
}

pub fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// Waits for a condition, polling; panics with `what` after `secs`.
pub fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Host pids of processes whose command line holds every one of `needles`.
pub fn pids_with(needles: &[&str]) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().all(|n| line.contains(n)) {
            pids.push(pid);
        }
    }
    pids
}

pub fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.all().contains(PASSWORD),
        "password leaked:\n{}",
        run.all()
    );
    run
}

/// The xtask's databases left on a server (staging, swapped-out, stamp-check), comma-separated;
/// the cached schema builds (`xtask_schema_*`, kept on purpose) are not leftovers.
pub fn leftover_databases(pg: &PgContainer) -> String {
    query(
        &pg.url("postgres"),
        "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database \
         WHERE datname LIKE '%xtask%' AND datname NOT LIKE 'xtask\\_schema\\_%'",
    )[0][0]
        .clone()
        .unwrap_or_default()
}

/// Seeded, then changed (rows gone, a name changed): the side that a pull or a push must replace
/// whole.
pub fn differing_local(pg: &PgContainer) {
    init_and_seed(pg);
    query(
        &pg.url(CORE),
        "DELETE FROM position_tags; UPDATE users SET full_name = 'local only'; \
         DELETE FROM market_data_cache WHERE id % 3 = 0",
    );
    query(&pg.url(AI), "DELETE FROM ai_feedback");
}
