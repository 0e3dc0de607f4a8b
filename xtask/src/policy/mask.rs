//! The policy as SQL that runs on the source: each masked table's rows selected through
//! `COPY (SELECT <masked expressions> FROM ONLY t) TO STDOUT`, so raw values never leave it.
//!
//! No extension is needed on the source: HMAC-SHA256 is written in core SQL from `sha256()`
//! (PG11+). The key's inner and outer pads are computed here and reach the session through the
//! environment (`\getenv`, PG15+ psql) and `set_config`, never through a command line nor the
//! COPY statements' text (which psql may print back with an error).

use anyhow::{bail, Result};

use super::{columns::Column, columns::TypeClass, Rule, TablePolicy};
use crate::pg::ident::{quote_ident, QualifiedName};

/// The environment variable that holds the masking key.
pub const KEY_VAR: &str = "XTASK_MASK_KEY";
/// The variables that carry the key's pads (hex) to psql.
pub const IPAD_VAR: &str = "XTASK_MASK_IPAD";
pub const OPAD_VAR: &str = "XTASK_MASK_OPAD";
/// The session settings the pads are kept in on the source.
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

/// The SQL that puts the pads into the session from psql variables `mask_ipad` / `mask_opad`
/// (set by `\getenv` from [`IPAD_VAR`] / [`OPAD_VAR`]).
pub fn session_setup() -> String {
    format!(
        "\\getenv mask_ipad {IPAD_VAR}\n\\getenv mask_opad {OPAD_VAR}\n\
         SELECT pg_catalog.set_config('{IPAD_SETTING}', :'mask_ipad', true), \
         pg_catalog.set_config('{OPAD_SETTING}', :'mask_opad', true) \\g /dev/null\n"
    )
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

/// The psql script lines that print one table as pg_dump would (`COPY ... FROM stdin;`, the
/// rows, `\.`), its rows from `select`.
pub fn copy_block(table: &QualifiedName, columns: &[Column], select: &str) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let header = format!("COPY {} ({}) FROM stdin;", table.sql(), names.join(", "));
    format!(
        "\\qecho {}\nCOPY ({select}) TO STDOUT;\n\\qecho {}\n",
        psql_quoted(&header),
        psql_quoted("\\.")
    )
}

/// The whole script: in the source's exported snapshot, the key in the session, each block.
pub fn script(snapshot: &str, blocks: &[String]) -> String {
    let mut s = String::from("\\set ON_ERROR_STOP on\n\\set QUIET on\n");
    s.push_str("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n");
    s.push_str(&format!(
        "SET TRANSACTION SNAPSHOT {};\n",
        literal(snapshot)
    ));
    s.push_str(&session_setup());
    for block in blocks {
        s.push_str(block);
    }
    s.push_str("COMMIT;\n");
    s
}
