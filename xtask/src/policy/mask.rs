//! The policy as SQL that runs on the source: each masked table's rows selected through
//! `COPY (SELECT <masked expressions> FROM ONLY t) TO STDOUT`, so raw values never leave it.
//!
//! No extension is needed on the source: HMAC-SHA256 is written in core SQL from `sha256()`
//! (PG11+). The key's inner and outer pads are computed here and reach the session as two custom
//! settings in libpq's `PGOPTIONS` (the environment, `PreparedCommand::secret_env`), never
//! through a command line nor the statements' text (which psql prints back with an error). So the
//! whole script is psql `-c` arguments with no secret in them, and psql reads no stdin.

use anyhow::{bail, Result};

use super::{columns::Column, columns::TypeClass, Rule, TablePolicy};
use crate::pg::ident::{quote_ident, QualifiedName};

/// The environment variable that holds the masking key.
pub const KEY_VAR: &str = "XTASK_MASK_KEY";
/// The session settings the pads are kept in on the source (set at connection by `PGOPTIONS`).
const IPAD_SETTING: &str = "xtask.mask_ipad";
const OPAD_SETTING: &str = "xtask.mask_opad";

/// HMAC-SHA256's block: a key up to this long is used as it is, zero-padded.
const BLOCK: usize = 64;

/// The key's inner and outer pads, as hex: `(K ^ 0x36..., K ^ 0x5c...)`.
pub struct Pads {
    pub inner: String,
    pub outer: String,
}

impl Pads {
    /// From `key`: 16 to 64 bytes (a longer key would need hashing first; a shorter one is weak).
    pub fn from_key(key: &[u8]) -> Result<Pads> {
        if !(16..=BLOCK).contains(&key.len()) {
            bail!(
                "{KEY_VAR} must be 16 to 64 bytes long (it is {}): the same key on every laptop \
                 gives the same masked values, so take it from the team's secret store",
                key.len()
            );
        }
        Ok(Pads::from_key_unchecked(key))
    }

    /// Short keys for tests only: the same algorithm without the length rule.
    #[doc(hidden)]
    pub fn from_key_unchecked(key: &[u8]) -> Pads {
        let pad = |byte: u8| {
            let mut block = [0u8; BLOCK];
            block[..key.len()].copy_from_slice(key);
            block.iter().map(|b| format!("{:02x}", b ^ byte)).collect()
        };
        Pads {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }
}

impl Pads {
    /// `PGOPTIONS` that sets both pads in the session, after what the user's own sets.
    pub fn pgoptions(&self, existing: Option<&str>) -> String {
        let ours = format!(
            "-c {IPAD_SETTING}={} -c {OPAD_SETTING}={}",
            self.inner, self.outer
        );
        match existing.map(str::trim).filter(|e| !e.is_empty()) {
            Some(existing) => format!("{existing} {ours}"),
            None => ours,
        }
    }
}

/// HMAC-SHA256 (bytea) of `value` (any type, as its text) with the session's key.
pub fn hmac_sql(value: &str) -> String {
    format!(
        "pg_catalog.sha256(pg_catalog.decode(pg_catalog.current_setting('{OPAD_SETTING}'), 'hex') \
         || pg_catalog.sha256(pg_catalog.decode(pg_catalog.current_setting('{IPAD_SETTING}'), 'hex') \
         || pg_catalog.convert_to(({value})::text, 'UTF8')))"
    )
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Niklaus", "Karen", "John", "Sophie", "Tony",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie", "Perlman", "Wirth", "Jones", "Backus", "Wilson", "Hoare",
];

fn sql_array(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    format!("ARRAY[{}]", quoted.join(", "))
}

/// A SQL string literal (standard_conforming_strings on, as every supported server has it).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The expression that `rule` puts in place of `column` (`None` for keep).
pub fn rule_sql(rule: &Rule, column: &Column) -> Option<String> {
    let col = quote_ident(&column.name);
    let hmac = hmac_sql(&col);
    let byte = |i: usize, n: usize| format!("(pg_catalog.get_byte({hmac}, {i}) % {n}) + 1");
    Some(match rule {
        Rule::Keep | Rule::Undecided => return None,
        Rule::Email => format!(
            "CASE WHEN {col} IS NULL THEN NULL ELSE 'user_' || pg_catalog.left(pg_catalog.encode({hmac}, 'hex'), 20) || '@example.com' END"
        ),
        Rule::Name => format!(
            "CASE WHEN {col} IS NULL THEN NULL ELSE ({})[{}] || ' ' || ({})[{}] END",
            sql_array(FIRST_NAMES),
            byte(0, FIRST_NAMES.len()),
            sql_array(LAST_NAMES),
            byte(1, LAST_NAMES.len()),
        ),
        Rule::Hash if column.class == TypeClass::Uuid => format!(
            "pg_catalog.encode(pg_catalog.substr({hmac}, 1, 16), 'hex')::uuid"
        ),
        Rule::Hash => format!("pg_catalog.encode({hmac}, 'hex')"),
        Rule::Fixed(value) => format!("CAST({} AS {})", literal(value), column.data_type),
        Rule::Null => "NULL".to_string(),
    })
}

/// `SELECT` of every column of `table` in order, masked by `policy` (rows matching its
/// `keep_where` raw), or `None` when every column is kept (then pg_dump copies the table).
pub fn masked_select(
    table: &QualifiedName,
    columns: &[Column],
    policy: &TablePolicy,
) -> Option<String> {
    let mut any = false;
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            let col = quote_ident(&c.name);
            match policy.columns.get(&c.name).and_then(|r| rule_sql(r, c)) {
                None => col,
                Some(masked) => {
                    any = true;
                    let value = match &policy.keep_where {
                        // A condition that is NULL masks: only a true one keeps a row raw.
                        Some(cond) => format!("CASE WHEN ({cond}) THEN {col} ELSE {masked} END"),
                        None => masked,
                    };
                    format!("{value} AS {col}")
                }
            }
        })
        .collect();
    any.then(|| format!("SELECT {} FROM ONLY {}", list.join(", "), table.sql()))
}

/// A psql meta-command argument in single quotes: `'` doubled, `\` escaped.
fn psql_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The psql `-c` commands that print one table as pg_dump would (`COPY ... FROM stdin;`, the
/// rows, `\.`), its rows from `select`.
pub fn copy_commands(table: &QualifiedName, columns: &[Column], select: &str) -> Vec<String> {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let header = format!("COPY {} ({}) FROM stdin;", table.sql(), names.join(", "));
    vec![
        format!("\\qecho {}", psql_quoted(&header)),
        format!("COPY ({select}) TO STDOUT"),
        format!("\\qecho {}", psql_quoted("\\.")),
    ]
}

/// psql's arguments for the whole copy: in the source's exported snapshot, read-only, each
/// table's commands in turn (each a `-c`: one request each, in one transaction).
pub fn psql_args(snapshot: &str, tables: &[Vec<String>]) -> Vec<String> {
    let mut commands = vec![
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_string(),
        format!("SET TRANSACTION SNAPSHOT {}", literal(snapshot)),
    ];
    commands.extend(tables.iter().flatten().cloned());
    commands.push("COMMIT".to_string());
    let mut args = vec!["--no-psqlrc".to_string(), "--quiet".to_string()];
    for command in commands {
        args.push("-c".to_string());
        args.push(command);
    }
    args
}
