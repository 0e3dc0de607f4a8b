//! SQL identifiers: quoting for SQL text and for people, and the schema-qualified name that
//! every layer (streams, loads, the catalog) passes around.

use std::{borrow::Cow, fmt};

use serde::Serialize;

/// Quotes an identifier for SQL the way PostgreSQL's quote_ident does, always: a name with
/// capitals, spaces, quotes or a reserved word stays exactly itself.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A schema-qualified name (table, index or sequence), kept as its two raw parts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The name as SQL: both parts always quoted.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `ALTER TABLE <this table> DROP CONSTRAINT <constraint>;` and its line end.
    pub fn drop_constraint_sql(&self, constraint: &str) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {};\n",
            self.sql(),
            quote_ident(constraint)
        )
    }
}

/// For people: `public.users`, `"My Schema"."we""ird.name"` (quoted only when it must be read
/// back unambiguously).
impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            shown_ident(&self.schema),
            shown_ident(&self.name)
        )
    }
}

/// An identifier as people read it: plain when it is lower-case letters, digits and `_`, else
/// quoted like SQL (so `we"ird.name` shows as `"we""ird.name"` and never looks like two names).
pub fn shown_ident(name: &str) -> Cow<'_, str> {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(quote_ident(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("My \"odd\" Table"), "\"My \"\"odd\"\" Table\"");
    }

    #[test]
    fn names_are_shown_plain_only_when_unambiguous() {
        assert_eq!(
            QualifiedName::new("public", "users").to_string(),
            "public.users"
        );
        assert_eq!(
            QualifiedName::new("My Schema", "we\"ird.name").to_string(),
            "\"My Schema\".\"we\"\"ird.name\""
        );
        assert_eq!(
            QualifiedName::new("public", "Users").sql(),
            "\"public\".\"Users\""
        );
    }
}
