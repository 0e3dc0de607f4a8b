//! Time limits set from the environment (`XTASK_STATEMENT_TIMEOUT`, `XTASK_LOCK_TIMEOUT`): whole
//! seconds (`90`) or a whole number with one of PostgreSQL's time units (`500ms`, `30s`, `10min`,
//! `2h`, `1d`); `0` is no limit. A value that does not parse is a usage error (exit 2), never a
//! silent fallback to the default.

use std::time::Duration;

use anyhow::Result;

use crate::exit::UsageError;

/// PostgreSQL caps its timeouts at INT_MAX milliseconds (about 24.8 days).
const MAX_MS: u128 = i32::MAX as u128;

/// One such setting: its variable, its default, and the examples its error gives.
pub struct DurationSetting {
    pub var: &'static str,
    pub default: Duration,
    /// The default as people read it (`30min`, `30s`).
    default_shown: &'static str,
    /// The whole-seconds example of the error (`90`).
    seconds_example: &'static str,
    /// The unit examples of the error (`` `500ms`, `10min`, `2h` ``).
    unit_examples: &'static str,
}

/// The limit on each of the xtask's own queries.
pub const STATEMENT_TIMEOUT: DurationSetting = DurationSetting {
    var: "XTASK_STATEMENT_TIMEOUT",
    // Long enough for checksums of large tables, short of hanging for ever.
    default: Duration::from_secs(30 * 60),
    default_shown: "30min",
    seconds_example: "90",
    unit_examples: "`500ms`, `10min`, `2h`",
};

/// The bound on each lock wait of a load: long enough for a short app transaction to end, short
/// enough that the app's queries, queued behind the waiting load, are not held for long. The
/// source's read waits longer by default (`SOURCE_LOCK_TIMEOUT_DEFAULT`).
pub const LOCK_TIMEOUT: DurationSetting = DurationSetting {
    var: "XTASK_LOCK_TIMEOUT",
    default: Duration::from_secs(30),
    default_shown: "30s",
    seconds_example: "30",
    unit_examples: "`500ms`, `2min`",
};

/// The source's read blocks nobody (it only reads), so it may wait longer for a table that a
/// migration or a VACUUM FULL holds.
pub const SOURCE_LOCK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

impl DurationSetting {
    /// Parses a value of this setting; `None` is no limit (`0`).
    pub fn parse(&self, raw: &str) -> std::result::Result<Option<Duration>, String> {
        let text = raw.trim();
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, unit) = text.split_at(digits);
        let bad = |why: &str| {
            format!(
                "{}={raw:?} {why}: give whole seconds (`{}`) or a whole number with a unit, ms, \
                 s, min, h or d ({}); `0` for no limit (default {})",
                self.var, self.seconds_example, self.unit_examples, self.default_shown
            )
        };
        let value: u128 = number.parse().map_err(|_| bad("is not a duration"))?;
        let unit_ms: u128 = match unit.trim() {
            "" | "s" => 1000,
            "ms" => 1,
            "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad("has an unknown unit")),
        };
        let ms = value.saturating_mul(unit_ms);
        if ms == 0 {
            return Ok(None);
        }
        if ms > MAX_MS {
            return Err(bad("is longer than PostgreSQL allows (about 24 days)"));
        }
        Ok(Some(Duration::from_millis(ms as u64)))
    }

    /// The setting's value, else its default; a bad value is a usage error.
    pub fn get(&self) -> Result<Option<Duration>> {
        self.get_or(self.default)
    }

    /// The setting's value, else `default`; a bad value is a usage error.
    pub fn get_or(&self, default: Duration) -> Result<Option<Duration>> {
        match std::env::var_os(self.var) {
            None => Ok(Some(default)),
            Some(raw) => self
                .parse(&raw.to_string_lossy())
                .map_err(|m| UsageError::new(m).into()),
        }
    }

    /// The setting as messages show it: `XTASK_LOCK_TIMEOUT=2s`, or the default.
    pub fn shown(&self) -> String {
        match std::env::var(self.var) {
            Ok(raw) => format!("{}={}", self.var, raw.trim()),
            Err(_) => format!(
                "{} (not set: the default, {})",
                self.var,
                self.default_long()
            ),
        }
    }

    fn default_long(&self) -> String {
        let secs = self.default.as_secs();
        if secs >= 60 && secs.is_multiple_of(60) {
            format!("{} minutes", secs / 60)
        } else {
            format!("{secs} s")
        }
    }
}

/// As PostgreSQL's `SET ... = '<ms>ms'` takes it: `0` is no limit.
pub fn millis(limit: Option<Duration>) -> u128 {
    limit.map(|d| d.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_settings_take_the_same_units_and_name_their_own_examples() {
        for setting in [&STATEMENT_TIMEOUT, &LOCK_TIMEOUT] {
            assert_eq!(setting.parse("2s"), Ok(Some(Duration::from_secs(2))));
            assert_eq!(setting.parse("0"), Ok(None));
            let err = setting.parse("2 weeks").unwrap_err();
            assert!(err.starts_with(setting.var), "{err}");
        }
        assert!(STATEMENT_TIMEOUT
            .parse("x")
            .unwrap_err()
            .contains("(default 30min)"));
        assert!(LOCK_TIMEOUT
            .parse("x")
            .unwrap_err()
            .contains("`500ms`, `2min`"));
        assert_eq!(STATEMENT_TIMEOUT.default_long(), "30 minutes");
        assert_eq!(LOCK_TIMEOUT.default_long(), "30 s");
        assert_eq!(millis(None), 0);
        assert_eq!(millis(Some(Duration::from_secs(2))), 2000);
    }
}
