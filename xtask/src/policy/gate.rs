//! What a masked db-pull refuses on before anything local is touched: a source column (or a
//! column of this checkout's migrations) without a decided rule that its type can take, and a
//! masking rule with no key in the environment. Exit 2 (`UsageError`), each column named with the
//! line to add.

use anyhow::Result;

use super::{
    check::{check, Problem},
    columns::Column,
    mask::{Pads, KEY_VAR},
    DbKey, Policy, Rule,
};
use crate::exit::UsageError;

/// The problems that stop a pull: entries for what the source lacks do not (it may be behind).
fn stops_a_pull(problem: &Problem) -> bool {
    !matches!(
        problem,
        Problem::NoSuchColumn { .. } | Problem::NoSuchTable { .. }
    )
}

/// Refuses, naming each column, when `columns` (one database's, read from `what`: "the source"
/// or "the migrations") are not all classified by `policy`.
pub fn refuse_unclassified(
    policy: &Policy,
    db: DbKey,
    columns: &[Column],
    what: &str,
) -> Result<()> {
    let problems: Vec<String> = check(policy, &[(db, columns)])
        .iter()
        .filter(|p| stops_a_pull(p))
        .map(|p| format!("  - {p}"))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "the data policy does not classify every column of {what} ({}): a masked pull copies no \
         column nobody decided on. Nothing local was touched.\n{}\n(cargo xtask data-policy init \
         adds the lines as TODO for you to decide)",
        db.label(),
        problems.join("\n")
    ))
    .into())
}

/// Whether any rule of `policy` needs the key (email, name and hash are keyed).
pub fn needs_key(policy: &Policy) -> bool {
    policy
        .tables
        .values()
        .flat_map(|t| t.columns.values())
        .any(|r| matches!(r, Rule::Email | Rule::Name | Rule::Hash))
}

/// The key's pads from `XTASK_MASK_KEY`; a usage error when it is missing or of the wrong length.
pub fn key_pads(value: Option<&str>) -> Result<Pads> {
    let Some(key) = value.filter(|k| !k.is_empty()) else {
        return Err(UsageError::new(format!(
            "{KEY_VAR} is not set: the policy's email, name and hash rules are keyed HMACs. Set it \
             (16 to 64 bytes, the team's shared key, so every laptop gets the same masked values) \
             in the environment or .env"
        ))
        .into());
    };
    Pads::from_key(key.as_bytes()).map_err(|e| UsageError::new(format!("{e:#}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::columns::TypeClass;

    fn col(table: &str, name: &str) -> Column {
        Column {
            table: table.into(),
            name: name.into(),
            data_type: "text".into(),
            class: TypeClass::Text,
            not_null: false,
        }
    }

    #[test]
    fn a_source_column_without_a_rule_refuses_with_the_line_to_add() {
        let policy = Policy::parse("[core.users]\nemail = \"email\"\ngone = \"keep\"\n").unwrap();
        let columns = [col("users", "email"), col("users", "nickname")];
        let err = refuse_unclassified(&policy, DbKey::Core, &columns, "the source").unwrap_err();
        assert!(err.is::<UsageError>());
        let text = format!("{err:#}");
        assert!(
            text.starts_with("the data policy does not classify every column of the source (core)"),
            "{text}"
        );
        assert!(
            text.contains("core users.nickname: no rule; add under [core.users]"),
            "{text}"
        );
        assert!(text.contains("nickname = \"TODO\""), "{text}");
        // An entry the source lacks (it may be behind the migrations) does not stop a pull.
        assert!(!text.contains("gone"), "{text}");
        assert!(refuse_unclassified(&policy, DbKey::Core, &columns[..1], "the source").is_ok());
    }

    #[test]
    fn the_key_must_be_set_and_long_enough() {
        let policy = Policy::parse("[core.users]\nemail = \"email\"\n").unwrap();
        assert!(needs_key(&policy));
        assert!(!needs_key(
            &Policy::parse("[core.users]\nx = \"null\"\n").unwrap()
        ));
        let missing = format!("{:#}", key_pads(None).err().unwrap());
        assert!(
            missing.starts_with("XTASK_MASK_KEY is not set"),
            "{missing}"
        );
        let short = format!("{:#}", key_pads(Some("short")).err().unwrap());
        assert!(
            short.contains("must be 16 to 64 bytes long (it is 5)"),
            "{short}"
        );
        let pads = key_pads(Some("0123456789abcdef")).unwrap();
        assert_eq!(pads.inner.len(), 128);
        assert!(pads.inner.starts_with("0607")); // '0' ^ 0x36, '1' ^ 0x36
        assert!(pads.outer.starts_with("6c6d")); // '0' ^ 0x5c, '1' ^ 0x5c
    }
}
