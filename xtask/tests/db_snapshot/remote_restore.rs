//! `db-restore` of a push's backup (`remote-<db>-<stamp>.dump`) onto the remote it was taken of.
//! Each test has its own small Core databases, cloned from the seeds and thinned: a local pair
//! and a remote one on the bench's remote server. A push writes the remote's backup, the remote
//! then changes, and the restore must put back exactly what the backup holds (each table's rows
//! and content hash read back here), or, refused or failing, leave the remote as it was.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::PathBuf};

use super::{ended, ok, Pair};
use crate::{
    bench::{fingerprint, CORE},
    require_docker,
    support::{self, query, query_one, IdleInTransaction, Run},
};

/// A test's pair of local databases and its remote Core database.
struct Remote {
    pair: Pair,
    name: String,
}

impl Remote {
    /// The pair `<prefix>_core` / `<prefix>_ai` and the remote `<prefix>_rcore`, both Core
    /// databases thinned to a few thousand rows, then the local one pushed onto the remote: the
    /// push's backup holds the remote as it was, whose fingerprint is returned.
    fn pushed(prefix: &str) -> (Remote, Fingerprint) {
        let pair = Pair::new(prefix);
        let name = format!("{prefix}_rcore");
        query(
            &pair.bench.remote.url("postgres"),
            &format!("CREATE DATABASE {name} TEMPLATE {CORE}"),
        );
        let remote = Remote { pair, name };
        let thin = "DELETE FROM market_data_cache WHERE id % 40 <> 0";
        query(&remote.url(), thin);
        query(&remote.pair.url(&remote.pair.core), thin);
        let before = fingerprint(&remote.url());
        ok(&remote.run("db-push", &["--yes", "--core-only"], &[]));
        let pushed = fingerprint(&remote.url());
        assert_eq!(pushed, fingerprint(&remote.pair.url(&remote.pair.core)));
        assert_ne!(pushed, before, "the push must change the remote");
        (remote, before)
    }

    fn url(&self) -> String {
        self.pair.bench.remote.url(&self.name)
    }

    /// `cargo xtask <command> <args>` with this test's local and remote databases.
    fn run(&self, command: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let (core, ai, remote) = (
            self.pair.url(&self.pair.core),
            self.pair.url(&self.pair.ai),
            self.url(),
        );
        let mut env = vec![
            ("DATABASE_URL", core.as_str()),
            ("AI_DATABASE_URL", ai.as_str()),
            ("RAILWAY_DB_URL", remote.as_str()),
        ];
        env.extend_from_slice(extra);
        self.pair.bench.run_with(command, args, &env)
    }

    /// The remote's backups, oldest first.
    fn backups(&self) -> Vec<PathBuf> {
        let prefix = format!("remote-{}-", self.name);
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.pair.bench.backups())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect();
        found.sort();
        found
    }

    /// The push's backup: the first of the remote's.
    fn pushed_backup(&self) -> String {
        self.backups()[0].display().to_string()
    }

    /// Changes the remote after the push, as the app would.
    fn change(&self) -> Fingerprint {
        query(
            &self.url(),
            "UPDATE users SET full_name = 'after the push'; \
             DELETE FROM market_data_cache WHERE id % 80 = 0",
        );
        fingerprint(&self.url())
    }

    /// Staging databases of the restore left on the local server.
    fn leftovers(&self) -> String {
        query_one(
            &self.pair.url("postgres"),
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_xtask%'",
                self.name
            ),
        )
    }
}

type Fingerprint = std::collections::BTreeMap<String, (String, String)>;

#[test]
fn a_push_backup_restored_onto_the_remote_puts_it_back_exactly() {
    require_docker!();
    let (remote, before) = Remote::pushed("rr_ok");
    let changed = remote.change();
    let backup = remote.pushed_backup();

    // A dry run and a run without --yes (no terminal) change nothing.
    let run = remote.run("db-restore", &[&backup, "--dry-run"], &[]);
    ended(
        &run,
        0,
        &[
            "dry run: nothing was changed",
            "restore: the remote's data replaced",
        ],
    );
    let run = remote.run("db-restore", &[&backup], &[]);
    ended(&run, 2, &["--yes"]);
    assert_eq!(fingerprint(&remote.url()), changed);
    assert_eq!(remote.backups().len(), 1, "nothing was backed up");

    let run = remote.run(
        "db-restore",
        &[&backup, "--yes", "--checksums", "--json"],
        &[],
    );
    ended(&run, 0, &["read back: it holds what the remote does"]);
    assert_eq!(
        fingerprint(&remote.url()),
        before,
        "the remote is as the backup holds it"
    );
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(doc["command"], "db-restore", "{doc}");
    assert_eq!(
        doc["databases"][0]["restored_from"],
        backup.as_str(),
        "{doc}"
    );
    let verified = doc["databases"][0]["verified"].as_str().unwrap_or_default();
    assert!(verified.contains("checksums match"), "{doc}");
    // Its own backup holds what the restore replaced: restoring it brings the change back.
    let fresh = remote.backups();
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    assert_eq!(
        doc["databases"][0]["backup"]["path"],
        fresh[1].display().to_string()
    );
    assert_eq!(remote.leftovers(), "0");
    let fresh = fresh[1].display().to_string();
    ok(&remote.run("db-restore", &[&fresh, "--yes", "--no-backup"], &[]));
    assert_eq!(fingerprint(&remote.url()), changed);
    assert_eq!(remote.leftovers(), "0");
}

#[test]
fn a_remote_restore_is_refused_on_a_protected_host_without_the_exact_target_and_elsewhere() {
    require_docker!();
    let (remote, before) = Remote::pushed("rr_guard");
    let changed = remote.change();
    let backup = remote.pushed_backup();
    let protected = [("XTASK_PROTECTED_HOSTS", "example.org, 127.0.0.1")];
    let id = format!("127.0.0.1/{}", remote.name);

    let run = remote.run("db-restore", &[&backup, "--yes"], &protected);
    ended(
        &run,
        2,
        &["protected host", &format!("--confirm-target {id}")],
    );
    let wrong = format!("127.0.0.1/{CORE}");
    let run = remote.run(
        "db-restore",
        &[&backup, "--yes", "--confirm-target", &wrong],
        &protected,
    );
    ended(&run, 2, &[&format!("got --confirm-target {wrong}")]);
    let run = remote.run(
        "db-restore",
        &[&backup, "--yes", "--confirm-target", &id, "--no-backup"],
        &protected,
    );
    ended(&run, 2, &["--no-backup is refused"]);
    // A backup of another database than the configured remote.
    let other = remote.pair.bench.remote.url(CORE);
    let run = remote.run(
        "db-restore",
        &[&backup, "--yes"],
        &[("RAILWAY_DB_URL", &other)],
    );
    ended(
        &run,
        2,
        &[
            &format!("a backup of the remote database {}", remote.name),
            "core sigmasight_db",
        ],
    );
    // A table on the remote that the backup lacks: refused by name.
    query(
        &remote.url(),
        "CREATE TABLE public.added_later (id int); INSERT INTO public.added_later VALUES (1)",
    );
    let run = remote.run("db-restore", &[&backup, "--yes"], &[]);
    ended(&run, 2, &["table public.added_later: only on remote"]);
    query(&remote.url(), "DROP TABLE public.added_later");
    assert_eq!(
        fingerprint(&remote.url()),
        changed,
        "every refusal changed nothing"
    );
    assert_eq!(remote.backups().len(), 1, "nothing was backed up");
    assert_eq!(remote.leftovers(), "0");

    // --yes and the exact target: restored.
    let run = remote.run(
        "db-restore",
        &[&backup, "--yes", "--confirm-target", &id],
        &protected,
    );
    ended(&run, 0, &["(PROTECTED)"]);
    assert_eq!(fingerprint(&remote.url()), before);
}

#[test]
fn a_failing_remote_restore_leaves_the_remote_as_it_was() {
    require_docker!();
    let (remote, before) = Remote::pushed("rr_fail");
    let changed = remote.change();
    let backup = remote.pushed_backup();

    // A session of the app idle in a transaction on a table the load replaces: the load's lock
    // wait is bounded, the holder named, its transaction rolled back.
    let mut app = IdleInTransaction::start(&remote.url(), "rr-app", "SELECT count(*) FROM users");
    let started = std::time::Instant::now();
    let run = remote.run(
        "db-restore",
        &[&backup, "--yes"],
        &[("XTASK_LOCK_TIMEOUT", "2s")],
    );
    let took = started.elapsed();
    app.release();
    ended(
        &run,
        1,
        &[
            "waited longer than XTASK_LOCK_TIMEOUT=2s for a lock",
            &format!("pid {} (", app.pid),
            "rr-app",
            "unchanged",
        ],
    );
    assert!(took < std::time::Duration::from_secs(120), "{took:?}");
    assert_eq!(fingerprint(&remote.url()), changed);
    assert_eq!(remote.leftovers(), "0");

    // A damaged backup (cut short) is refused before the remote is read.
    let bytes = std::fs::read(&backup).unwrap();
    let cut = remote
        .pair
        .bench
        .backups()
        .join(format!("remote-{}-20000101-000000.dump", remote.name));
    // Private, as every backup must be (the bench checks).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&cut)
        .unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    drop(file);
    let run = remote.run("db-restore", &[cut.to_str().unwrap(), "--yes"], &[]);
    std::fs::remove_file(&cut).unwrap();
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(fingerprint(&remote.url()), changed);
    assert_eq!(remote.leftovers(), "0");

    // Once the app's session is gone, the same restore works.
    ok(&remote.run("db-restore", &[&backup, "--yes"], &[]));
    assert_eq!(fingerprint(&remote.url()), before);
}
