//! Backups of what a copy overwrites: `pg_dump --format=custom` of the target database with a
//! fast compression ([`compression`]: zstd:1, or gzip:1 before pg_dump 16), written on this
//! machine under `backups/` at the repo root (`XTASK_BACKUP_DIR` elsewhere), readable only by its
//! owner, named after the side, the database and the time.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::config::{Database, DbUrl, Side};
use crate::interrupt;
use crate::pg::{
    describe_status, private_file, tail_block, version::ToolVersion, PgTools, PreparedCommand, Tool,
};

/// A finished backup.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

/// `backups/` at the repo root, or `XTASK_BACKUP_DIR`.
pub fn backups_dir() -> PathBuf {
    std::env::var_os("XTASK_BACKUP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("backups"))
}

/// `logs/` at the repo root, or `XTASK_LOG_DIR`.
pub fn logs_dir() -> PathBuf {
    std::env::var_os("XTASK_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("logs"))
}

/// `20261121-093015` in UTC, for file names that sort by time.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A file name part made of the database name: anything unusual becomes `_`.
pub fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A backup file being written: removed when dropped unless `keep` was called, so that no
/// failure (no room, a dead pg_dump, Ctrl-C, an error of ours) leaves a truncated `.dump` that
/// looks like a real backup. It is written under a `.partial` name (`writing_name`), which no
/// listing takes for a backup, so a SIGKILL, which runs no clean-up, cannot leave one either.
struct PartialFile {
    path: PathBuf,
    keep: bool,
}

impl PartialFile {
    fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

/// The name a backup is written under until pg_dump has ended well.
fn writing_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether a failed write means the folder's file system is full (or the user's quota spent), in
/// any of the ways it is reported: pg_dump's own `could not write to output file: No space left
/// on device`, the docker CLI's `write /dev/stdout: no space left on device`, an io error.
fn out_of_room(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["no space left", "disk quota exceeded", "file too large"]
        .iter()
        .any(|needle| text.contains(needle))
}

fn out_of_room_message(url: &DbUrl, dir: &Path) -> String {
    format!(
        "the backup folder {} is out of room: the backup of {url} did not fit (the partial file \
         was removed). Free some space there, or point XTASK_BACKUP_DIR at a folder with room, \
         and run again",
        dir.display()
    )
}

/// pg_dump's `--compress` for a backup: zstd at level 1 where pg_dump has it (16 and later), else
/// gzip at level 1. Both are several times faster than the default (gzip at level 6, the pull's
/// single slowest step), and zstd:1's file is no bigger than the default's (docs/performance.md).
/// Every pg_restore that reads pg_dump 16's archives reads its zstd; older pg_dumps' gzip
/// archives are read by every pg_restore.
fn compression(pg_dump: &ToolVersion) -> &'static str {
    if pg_dump.major >= 16 {
        "--compress=zstd:1"
    } else {
        GZIP_FAST
    }
}

const GZIP_FAST: &str = "--compress=1";

/// Whether pg_dump refused the compression because it was built without it (a pg_dump 16+ built
/// without zstd): `this build does not support compression with zstd`.
fn compression_unsupported(stderr: &str) -> bool {
    stderr.contains("does not support compression")
}

/// Dumps the whole database (schema, data, owners, privileges) in custom format to `dir`.
/// A partial file is removed; the error names the cause (no room, unreachable, version).
pub fn take(tools: &PgTools, side: Side, url: &DbUrl, dir: &Path, stamp: &str) -> Result<Backup> {
    fs::create_dir_all(dir).map_err(|e| {
        let room = out_of_room(&e.to_string());
        let err =
            anyhow::Error::new(e).context(format!("creating the backup folder {}", dir.display()));
        if room {
            err.context(out_of_room_message(url, dir))
        } else {
            err
        }
    })?;
    let path = dir.join(format!(
        "{}-{}-{stamp}.dump",
        side.label(),
        file_part(url.dbname())
    ));
    let interrupted = || {
        crate::exit::Interrupted(format!(
            "interrupted while backing up {url}; the partial file {} was removed",
            path.display()
        ))
    };
    let version = tools.tool_version(&Shell::new()?, Tool::PgDump);
    // A Ctrl-C ends the version's `docker exec` too: an interruption, not a failure.
    if interrupt::interrupted() {
        return Err(interrupted().into());
    }
    let version = version?;
    let partial = PartialFile {
        path: writing_name(&path),
        keep: false,
    };
    let mut compress = compression(&version);
    let (cmd, output) = loop {
        let cmd = tools.command(Tool::PgDump, side, url, &["--format=custom", compress]);
        let output = dump_to(&cmd, &partial.path)?;
        let refused = !output.status.success()
            && compress != GZIP_FAST
            && compression_unsupported(&String::from_utf8_lossy(&output.stderr));
        if !refused || interrupt::interrupted() {
            break (cmd, output);
        }
        compress = GZIP_FAST;
    };
    // A Ctrl-C may end pg_dump's client with exit 0 while the file is cut short: never kept.
    if interrupt::interrupted() {
        drop(partial);
        return Err(interrupted().into());
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        drop(partial);
        if out_of_room(&stderr) {
            bail!(
                "{} ({} {}){}",
                out_of_room_message(url, dir),
                cmd.program_label(),
                describe_status(output.status),
                tail_block(&stderr)
            );
        }
        bail!(
            "backing up {url} to {} failed ({}); the partial file was removed{}",
            path.display(),
            describe_status(output.status),
            tail_block(&stderr)
        );
    }
    let bytes = fs::metadata(&partial.path)
        .with_context(|| format!("reading the size of {}", partial.path.display()))?
        .len();
    if bytes == 0 {
        bail!(
            "backing up {url} wrote nothing to {}: is the folder's disk full? Free some space \
             there, or point XTASK_BACKUP_DIR elsewhere",
            path.display()
        );
    }
    fs::rename(&partial.path, &path)
        .with_context(|| format!("renaming the finished backup to {}", path.display()))?;
    partial.keep();
    Ok(Backup { path, bytes })
}

/// Runs `cmd` (a pg_dump) with its output into the private file `path`, created anew; watched,
/// so that Ctrl-C stops it.
fn dump_to(cmd: &PreparedCommand, path: &Path) -> Result<Output> {
    let file = private_file(path)?;
    let child = cmd
        .to_std()
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{cmd}`"))?;
    let _watch = interrupt::watch(child.id());
    child
        .wait_with_output()
        .with_context(|| format!("waiting for `{cmd}`"))
}

/// The backup that `command` (db-pull, db-push) takes of the `side` database it is about to
/// overwrite, into `backups_dir()`. After a Ctrl-C no file is kept, even one whose pg_dump seemed
/// to end well (on a terminal's Ctrl-C a `docker exec` client exits 0 while its pg_dump goes on in
/// the container, so the file may be cut short), and the error says that nothing was changed.
pub fn take_first(
    tools: &PgTools,
    command: &str,
    side: Side,
    db: Database,
    url: &DbUrl,
    stamp: &str,
) -> Result<Backup> {
    let interrupted = || {
        format!(
            "{command} interrupted during the backup of the {} {} database: nothing was changed \
             and no partial backup is kept; run the {} again",
            side.label(),
            db.label(),
            command.trim_start_matches("db-")
        )
    };
    let backup = take(tools, side, url, &backups_dir(), stamp).with_context(|| {
        if interrupt::interrupted() {
            interrupted()
        } else {
            format!(
                "backing up the {} {} database (nothing was changed)",
                side.label(),
                db.label()
            )
        }
    })?;
    if interrupt::interrupted() {
        let _ = fs::remove_file(&backup.path);
        return Err(crate::exit::Interrupted(interrupted()).into());
    }
    Ok(backup)
}

impl Backup {
    /// How to put the database back by hand, for messages.
    pub fn restore_hint(&self, url: &DbUrl) -> String {
        format!(
            "pg_restore --clean --if-exists --no-owner --single-transaction --dbname='{}' {}",
            url.to_libpq_uri(),
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_room_is_recognised_however_it_is_worded() {
        assert!(out_of_room(
            "pg_dump: error: could not write to output file: No space left on device"
        ));
        assert!(out_of_room("write /dev/stdout: no space left on device"));
        assert!(out_of_room("Disk quota exceeded (os error 122)"));
        assert!(!out_of_room("pg_dump: error: connection to server failed"));
    }

    #[test]
    fn a_partial_file_is_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.dump");
        fs::write(&gone, b"half").unwrap();
        drop(PartialFile {
            path: gone.clone(),
            keep: false,
        });
        assert!(!gone.exists());
        let kept = dir.path().join("kept.dump");
        fs::write(&kept, b"whole").unwrap();
        let path = PartialFile {
            path: kept.clone(),
            keep: false,
        }
        .keep();
        assert_eq!(path, kept);
        assert!(kept.exists());
    }

    #[test]
    fn backups_use_zstd_from_pg_dump_16_and_fast_gzip_before() {
        let v = |text: &str| ToolVersion::parse(&format!("pg_dump (PostgreSQL) {text}")).unwrap();
        assert_eq!(compression(&v("17.12")), "--compress=zstd:1");
        assert_eq!(compression(&v("16.0")), "--compress=zstd:1");
        assert_eq!(compression(&v("15.18")), "--compress=1");
        assert!(compression_unsupported(
            "pg_dump: error: this build does not support compression with zstd"
        ));
        assert!(!compression_unsupported(
            "pg_dump: error: connection to server failed"
        ));
    }

    #[test]
    fn timestamps_sort_and_file_parts_are_plain() {
        let t = timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert_eq!(file_part("sigmasight-db/x y"), "sigmasight-db_x_y");
    }
}
