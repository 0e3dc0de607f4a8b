//! The app's database workflow as a library, so that integration tests reach the same code that
//! `cargo xtask` runs. `main.rs` is only the CLI over it.

pub mod alembic;
pub mod commands;
pub mod config;
pub mod confirm;
pub mod ctx;
pub mod exit;
pub mod git;
pub mod interrupt;
pub mod migrations;
pub mod pg;
pub mod policy;
pub mod runtime;
pub mod transfer;
pub mod verify;

use std::path::PathBuf;

/// The repository root: the parent of this crate's folder.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the repo root")
        .to_path_buf()
}

/// `backend/`, where both Alembic configs live. `XTASK_BACKEND_DIR` points elsewhere (tests use a
/// copy of the migrations).
pub fn backend_dir() -> PathBuf {
    std::env::var_os("XTASK_BACKEND_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("backend"))
}
