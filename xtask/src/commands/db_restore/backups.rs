//! The backups under `backups/` (`transfer::backup::backups_dir`), as db-pull and db-push name
//! them: `<side>-<database>-<YYYYMMDD-HHMMSS>.dump`. Finding the latest of a database, and
//! retention (`--keep N`: the newest N of each database stay).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Side;

/// One backup file, from its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    pub path: PathBuf,
    pub side: Side,
    /// The database's name as the file name has it (`transfer::backup::file_part`).
    pub database: String,
    /// `20261121-093015`, UTC.
    pub stamp: String,
    pub bytes: u64,
}

/// `local-sigmasight_db-20261121-093015.dump` → (local, `sigmasight_db`, `20261121-093015`).
pub fn parse_name(file_name: &str) -> Option<(Side, String, String)> {
    let stem = file_name.strip_suffix(".dump")?;
    let (side, rest) = if let Some(rest) = stem.strip_prefix("local-") {
        (Side::Local, rest)
    } else {
        (Side::Remote, stem.strip_prefix("remote-")?)
    };
    let split = rest.len().checked_sub(16)?;
    let (database, stamp) = (rest.get(..split)?, rest.get(split + 1..)?);
    let stamp_shaped = rest.as_bytes()[split] == b'-'
        && stamp.len() == 15
        && stamp
            .char_indices()
            .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() });
    (stamp_shaped && !database.is_empty()).then(|| (side, database.to_string(), stamp.to_string()))
}

/// Every backup in `dir` (none when it does not exist), oldest first within each database.
pub fn scan(dir: &Path) -> Result<Vec<BackupFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the backup folder {}", dir.display()))
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("reading the backup folder {}", dir.display()))?;
        let name = entry.file_name();
        let Some((side, database, stamp)) = parse_name(&name.to_string_lossy()) else {
            continue;
        };
        let bytes = entry
            .metadata()
            .with_context(|| format!("reading the size of {}", entry.path().display()))?
            .len();
        found.push(BackupFile {
            path: entry.path(),
            side,
            database,
            stamp,
            bytes,
        });
    }
    found.sort_by(|a, b| {
        (a.side.label(), &a.database, &a.stamp).cmp(&(b.side.label(), &b.database, &b.stamp))
    });
    Ok(found)
}

/// The newest backup of the local database whose file name part is `database`.
pub fn latest_local<'a>(backups: &'a [BackupFile], database: &str) -> Option<&'a BackupFile> {
    backups
        .iter()
        .filter(|b| b.side == Side::Local && b.database == database)
        .max_by(|a, b| a.stamp.cmp(&b.stamp))
}

/// The backups beyond the newest `keep` of each side and database.
pub fn beyond(backups: &[BackupFile], keep: usize) -> Vec<&BackupFile> {
    let mut old = Vec::new();
    for b in backups {
        let newer = backups
            .iter()
            .filter(|o| o.side == b.side && o.database == b.database && o.stamp > b.stamp)
            .count();
        if newer >= keep {
            old.push(b);
        }
    }
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_retention_keeps_the_newest() {
        assert_eq!(
            parse_name("local-sigmasight_db-20261121-093015.dump"),
            Some((
                Side::Local,
                "sigmasight_db".to_string(),
                "20261121-093015".to_string()
            ))
        );
        assert_eq!(
            parse_name("remote-my-db-20261121-093015.dump").map(|p| p.1),
            Some("my-db".to_string())
        );
        for bad in [
            "local-x-2026112-093015.dump",
            "local--20261121-093015.dump",
            "other-x-20261121-093015.dump",
            "local-x-20261121-093015.sql",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let file = |database: &str, stamp: &str| BackupFile {
            path: PathBuf::from(format!("{database}-{stamp}")),
            side: Side::Local,
            database: database.to_string(),
            stamp: stamp.to_string(),
            bytes: 1,
        };
        let all = vec![
            file("a", "20260101-000000"),
            file("a", "20260102-000000"),
            file("a", "20260103-000000"),
            file("b", "20260101-000000"),
        ];
        let old: Vec<_> = beyond(&all, 2).into_iter().map(|b| &b.path).collect();
        assert_eq!(old, vec![&PathBuf::from("a-20260101-000000")]);
        assert_eq!(latest_local(&all, "a").unwrap().stamp, "20260103-000000");
    }
}
