//! PostgreSQL versions of tools (`pg_dump --version`) and servers (`server_version_num`).

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ToolVersion {
    pub major: u32,
    pub minor: u32,
    /// As it is shown to people: `17.11`.
    pub text: String,
}

impl ToolVersion {
    /// Parses `pg_dump (PostgreSQL) 17.11 (Debian 17.11-0+deb13u1)` and the like.
    pub fn parse(version_output: &str) -> Result<ToolVersion> {
        let line = version_output.lines().next().unwrap_or_default();
        let number = line
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .with_context(|| format!("no version number in `{}`", line.trim()))?;
        // `17.11`, `18beta1`, `18rc1`: the leading digits of the first two dot-separated parts.
        let leading = |part: &str| -> u32 {
            let end = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            part[..end].parse().unwrap_or(0)
        };
        let mut parts = number.split('.');
        let major = leading(parts.next().unwrap_or_default());
        let minor = parts.next().map(leading).unwrap_or(0);
        Ok(ToolVersion {
            major,
            minor,
            text: format!("{major}.{minor}"),
        })
    }

    /// From `SHOW server_version_num` (170011 is 17.11; before 10, 90624 is 9.6.24).
    pub fn from_server_version_num(num: u32) -> Result<ToolVersion> {
        if num < 90000 {
            bail!("server_version_num {num} is too old to be supported");
        }
        let (major, minor) = if num >= 100000 {
            (num / 10000, num % 10000)
        } else {
            (num / 10000, (num / 100) % 100)
        };
        Ok(ToolVersion {
            major,
            minor,
            text: format!("{major}.{minor}"),
        })
    }

    /// Whether this server rejects `statement`, a setting of pg_dump's header (the line without
    /// its newline): pg_dump 17 writes `SET transaction_timeout = 0;`, a setting that servers
    /// before 17 do not know (unrecognized configuration parameter: with ON_ERROR_STOP the whole
    /// script fails on it, and they have no transaction timeout to turn off).
    pub fn rejects_dump_setting(&self, statement: &str) -> bool {
        self.major < 17 && statement.starts_with("SET transaction_timeout = ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_versions() {
        let v =
            ToolVersion::parse("pg_dump (PostgreSQL) 17.11 (Debian 17.11-0+deb13u1)\n").unwrap();
        assert_eq!((v.major, v.minor, v.text.as_str()), (17, 11, "17.11"));
        let v = ToolVersion::parse("psql (PostgreSQL) 18beta1").unwrap();
        assert_eq!((v.major, v.minor), (18, 0));
        assert!(ToolVersion::parse("command not found").is_err());
    }

    #[test]
    fn only_transaction_timeout_is_rejected_and_only_before_17() {
        let server = |num| ToolVersion::from_server_version_num(num).unwrap();
        for num in [150004, 160009] {
            assert!(server(num).rejects_dump_setting("SET transaction_timeout = 0;"));
            assert!(!server(num).rejects_dump_setting("SET lock_timeout = 0;"));
            assert!(!server(num).rejects_dump_setting("SET statement_timeout = 0;"));
        }
        for num in [170000, 170006, 180001] {
            assert!(!server(num).rejects_dump_setting("SET transaction_timeout = 0;"));
        }
    }

    #[test]
    fn parses_server_versions() {
        assert_eq!(
            ToolVersion::from_server_version_num(170011).unwrap().text,
            "17.11"
        );
        assert_eq!(
            ToolVersion::from_server_version_num(150018).unwrap().major,
            15
        );
        assert_eq!(
            ToolVersion::from_server_version_num(90624).unwrap().text,
            "9.6"
        );
    }
}
