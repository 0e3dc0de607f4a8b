//! What the xtask asks of this checkout's git: one-line answers, `None` when git, the repository
//! or the setting is not there (the callers go on without them: a snapshot's record, onboarding's
//! summary).

use std::path::Path;

use xshell::{cmd, Shell};

/// The commit checked out in `root`.
pub fn head_commit(sh: &Shell, root: &Path) -> Option<String> {
    one_line(sh, root, &["rev-parse", "HEAD"])
}

/// `core.hooksPath` of the checkout in `root`, when set.
pub fn hooks_path(sh: &Shell, root: &Path) -> Option<String> {
    one_line(sh, root, &["config", "--get", "core.hooksPath"])
}

/// `git -C <root> <args>`'s output, trimmed; `None` when it fails or says nothing.
fn one_line(sh: &Shell, root: &Path, args: &[&str]) -> Option<String> {
    cmd!(sh, "git -C {root} {args...}")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_repository_there_is_no_answer() {
        let sh = Shell::new().unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        assert_eq!(head_commit(&sh, dir.path()), None);
        assert_eq!(hooks_path(&sh, dir.path()), None);
    }
}
