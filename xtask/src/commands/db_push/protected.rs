//! db-push's production guard: a target whose host is in `XTASK_PROTECTED_HOSTS` needs `--yes`
//! and `--confirm-target <host>/<db>` spelled exactly, and refuses `--no-backup`, before anything
//! is read.

use anyhow::Result;
use clap::Args;

use super::DbPush;
use crate::{
    config::{Config, DbUrl},
    exit::UsageError,
};

/// The guard's flags: db-push's, and db-restore's for a remote backup.
#[derive(Args, Debug, Clone)]
pub struct GuardArgs {
    /// For a protected target: `<host>/<database>`, typed exactly (with --yes)
    #[arg(long, value_name = "HOST/DB")]
    pub confirm_target: Option<String>,
    /// Hosts that are production (comma-separated): writing to them needs --confirm-target
    #[arg(
        long,
        env = "XTASK_PROTECTED_HOSTS",
        value_delimiter = ',',
        value_name = "HOSTS"
    )]
    pub protected_hosts: Vec<String>,
}

/// `host/dbname` as `--confirm-target` must spell it.
fn target_id(url: &DbUrl) -> String {
    format!("{}/{}", url.host(), url.dbname())
}

impl DbPush {
    /// Whether the target's host is in `XTASK_PROTECTED_HOSTS` (production).
    pub(super) fn is_protected(&self, url: &DbUrl) -> bool {
        self.guard
            .protected_hosts
            .iter()
            .map(|h| h.trim())
            .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(url.host()))
    }

    /// The production guard, before anything is read: exit 2 unless the confirmation is exact.
    pub(super) fn check_protected(&self, config: &Config, url: &DbUrl) -> Result<()> {
        if !self.is_protected(url) {
            return Ok(());
        }
        let id = target_id(url);
        if self.copy.no_backup {
            return Err(UsageError::new(format!(
                "{id} is a protected host (XTASK_PROTECTED_HOSTS): --no-backup is refused for it; \
                 nothing was changed"
            ))
            .into());
        }
        if !config.yes || self.guard.confirm_target.as_deref() != Some(id.as_str()) {
            return Err(UsageError::new(format!(
                "{id} is a protected host (XTASK_PROTECTED_HOSTS): pushing to it needs --yes and \
                 --confirm-target {id}, spelled exactly{}; nothing was changed",
                match &self.guard.confirm_target {
                    Some(given) if given != &id => format!(" (got --confirm-target {given})"),
                    _ => String::new(),
                }
            ))
            .into());
        }
        Ok(())
    }
}
