//! Exit codes of the command contract, carried through `anyhow` as typed errors so that any layer
//! can say "this is a usage error" and `main` maps it to the right code.

use std::fmt;

/// `0` success; `1` an operation failed; `2` usage error or refused confirmation; `3` differences.
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const DIFFERENCES: u8 = 3;
/// Ctrl-C, as shells report a SIGINT death: 128 + 2.
pub const INTERRUPTED: u8 = 130;

/// Bad input or a refused confirmation: exit 2. Nothing was changed.
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError(message.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `db-verify` (or the verification at the end of a copy) found differences: exit 3.
#[derive(Debug)]
pub struct Differences(pub String);

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Differences {}

/// Ctrl-C stopped the command: exit 130. The message says what state the databases are in.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The exit code for an error anywhere in the chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if crate::interrupt::interrupted() || err.chain().any(|c| c.is::<Interrupted>()) {
        return INTERRUPTED;
    }
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if cause.is::<Differences>() {
            return DIFFERENCES;
        }
    }
    FAILED
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_survive_context() {
        let usage: anyhow::Result<()> = Err(UsageError::new("bad flag").into());
        assert_eq!(code_for(&usage.context("parsing").unwrap_err()), USAGE);
        let diff: anyhow::Result<()> = Err(Differences("2 tables".into()).into());
        assert_eq!(code_for(&diff.context("verify").unwrap_err()), DIFFERENCES);
        assert_eq!(code_for(&anyhow::anyhow!("boom")), FAILED);
    }
}
