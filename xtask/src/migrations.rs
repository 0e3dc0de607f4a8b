//! What this repo's migrations produce, remembered by their content, so that the everyday commands
//! do not start Python for an answer they already had. Starting Alembic is slow (it imports
//! SQLAlchemy), and `alembic heads` in every db-pull and db-verify, and `alembic upgrade head`
//! into every staging database, would pay for it each time.
//!
//! The key is a fingerprint of everything that decides the answer: the config's `.ini`, every file
//! under its `script_location` (env.py, the versions), `migration_env.py` and `uv.lock` (the
//! Alembic and SQLAlchemy versions). Editing a migration in place changes the fingerprint, so a
//! cached answer is never one for other migrations.
//!
//! - **Heads** are kept in a file, `target/xtask-cache/heads-<config>-<fingerprint>`.
//! - **The schema** that `alembic upgrade head` builds into an empty database (with the source's
//!   extensions) is kept on the local server as a database that nobody may connect to,
//!   `xtask_schema_<config>_<key>`; a pull clones it (`CREATE DATABASE ... TEMPLATE`) instead of
//!   running the migrations again. It is built under an advisory lock into a temporary name and
//!   renamed when complete, so a half-built one is never used.
//!
//! `XTASK_SCHEMA_CACHE=off` turns both off: every command then runs Alembic, as the runbooks did.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::alembic::AlembicConfig;

/// Whether cached answers may be used (`XTASK_SCHEMA_CACHE=off` says no).
pub fn cache_enabled() -> bool {
    !matches!(
        std::env::var("XTASK_SCHEMA_CACHE").as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}

/// Where cached heads are kept: `XTASK_CACHE_DIR`, else `target/xtask-cache` in the repo.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XTASK_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target").join("xtask-cache"))
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (std's hasher is neither promised).
#[derive(Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A part of a key, length first, so that ("ab", "c") and ("a", "bc") differ.
    pub fn part(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The folder an ini's `script_location` names (`%(here)s` is the ini's folder).
fn script_location(ini_text: &str, backend: &Path) -> Option<PathBuf> {
    let value = ini_text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "script_location").then(|| value.trim().to_string())
    })?;
    let here = backend.display().to_string();
    Some(PathBuf::from(value.replace("%(here)s", &here)))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "__pycache__" || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The fingerprint of what decides `config`'s heads and schema; `None` when the ini does not say
/// where its scripts are (then nothing is cached).
pub fn fingerprint(config: AlembicConfig, backend: &Path) -> Result<Option<String>> {
    let ini = backend.join(config.ini());
    let ini_text =
        std::fs::read_to_string(&ini).with_context(|| format!("reading {}", ini.display()))?;
    let Some(scripts) = script_location(&ini_text, backend) else {
        return Ok(None);
    };
    let mut files = Vec::new();
    files_under(&scripts, &mut files)?;
    files.sort();
    let mut hash = Fnv64::default();
    hash.part(ini_text.as_bytes());
    for extra in ["migration_env.py", "uv.lock"] {
        let path = backend.join(extra);
        if path.exists() {
            files.push(path);
        }
    }
    for path in &files {
        let rel = path.strip_prefix(backend).unwrap_or(path);
        hash.part(rel.to_string_lossy().as_bytes());
        hash.part(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    Ok(Some(hash.hex()))
}

/// `alembic heads` of `config`, from the cache when these same migrations were asked before.
pub fn heads(config: AlembicConfig, sh: &Shell, backend: &Path) -> Result<Vec<String>> {
    let fingerprint = match cache_enabled() {
        true => fingerprint(config, backend).ok().flatten(),
        false => None,
    };
    let Some(fingerprint) = fingerprint else {
        return config.heads(sh, backend);
    };
    let file = cache_dir().join(format!("heads-{config:?}-{fingerprint}").to_lowercase());
    if let Ok(text) = std::fs::read_to_string(&file) {
        let heads: Vec<String> = text.lines().map(str::to_string).collect();
        if !heads.is_empty() {
            return Ok(heads);
        }
    }
    let heads = config.heads(sh, backend)?;
    // Best effort: a cache that cannot be written only makes the next run ask Alembic again.
    // Written to a temporary name and renamed, so a reader never sees half a file.
    let _ = std::fs::create_dir_all(cache_dir()).and_then(|()| {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, heads.join("\n"))?;
        std::fs::rename(&tmp, &file)
    });
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_location_expands_here() {
        let ini = "[alembic]\nscript_location = %(here)s/migrations_core\nprepend_sys_path = .\n";
        assert_eq!(
            script_location(ini, Path::new("/repo/backend")),
            Some(PathBuf::from("/repo/backend/migrations_core"))
        );
        assert_eq!(script_location("[alembic]\n", Path::new("/x")), None);
    }

    #[test]
    fn fingerprint_changes_when_a_migration_changes() {
        let dir = tempfile::tempdir().unwrap();
        let backend = dir.path();
        std::fs::write(
            backend.join("alembic.ini"),
            "[alembic]\nscript_location = %(here)s/m\n",
        )
        .unwrap();
        std::fs::create_dir_all(backend.join("m/versions/__pycache__")).unwrap();
        std::fs::write(backend.join("m/versions/a.py"), "revision = 'a'\n").unwrap();
        let first = fingerprint(AlembicConfig::Core, backend).unwrap().unwrap();
        assert_eq!(
            fingerprint(AlembicConfig::Core, backend).unwrap().unwrap(),
            first
        );
        // Compiled files do not count; an edit in place does.
        std::fs::write(backend.join("m/versions/__pycache__/a.pyc"), "x").unwrap();
        assert_eq!(
            fingerprint(AlembicConfig::Core, backend).unwrap().unwrap(),
            first
        );
        std::fs::write(
            backend.join("m/versions/a.py"),
            "revision = 'a'  # edited\n",
        )
        .unwrap();
        assert_ne!(
            fingerprint(AlembicConfig::Core, backend).unwrap().unwrap(),
            first
        );
    }

    #[test]
    fn key_parts_are_length_prefixed() {
        let key = |parts: &[&str]| {
            let mut h = Fnv64::default();
            for p in parts {
                h.part(p.as_bytes());
            }
            h.hex()
        };
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
    }
}
