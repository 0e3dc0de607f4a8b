//! The COPY headers of pg_dump's plain output (`COPY schema.table (columns) FROM stdin;`), read
//! back into names: the relay counts rows per table by them and a `Shaper` may rewrite them.

use crate::pg::ident::QualifiedName;

/// `COPY public.users (id, "Full Name") FROM stdin;` as pg_dump writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyHeader {
    pub table: QualifiedName,
    pub columns: Vec<String>,
}

impl CopyHeader {
    /// Parses a COPY header line (without its newline); `None` for any other line.
    pub fn parse(line: &str) -> Option<CopyHeader> {
        let rest = line.strip_prefix("COPY ")?;
        let (schema, rest) = parse_ident(rest)?;
        let rest = rest.strip_prefix('.')?;
        let (name, rest) = parse_ident(rest)?;
        let mut rest = rest.strip_prefix(" (")?;
        let mut columns = Vec::new();
        loop {
            let (column, after) = parse_ident(rest)?;
            columns.push(column);
            if let Some(after) = after.strip_prefix(", ") {
                rest = after;
            } else {
                rest = after.strip_prefix(')')?;
                break;
            }
        }
        (rest == " FROM stdin;").then(|| CopyHeader {
            table: QualifiedName::new(schema, name),
            columns,
        })
    }
}

/// One identifier as pg_dump prints it: `"quoted ""like"" this"` or plain; returns the rest.
fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = s.strip_prefix('"') {
        let mut ident = String::new();
        loop {
            let end = rest.find('"')?;
            ident.push_str(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    ident.push('"');
                    rest = after;
                }
                None => return Some((ident, rest)),
            }
        }
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_copy_headers_with_quoted_names() {
        let h =
            CopyHeader::parse(r#"COPY public.users (id, email, "Full Name") FROM stdin;"#).unwrap();
        assert_eq!(h.table, QualifiedName::new("public", "users"));
        assert_eq!(h.columns, ["id", "email", "Full Name"]);

        let h = CopyHeader::parse(
            r#"COPY "My Schema"."we""ird.name" ("select", "a, b", x) FROM stdin;"#,
        )
        .unwrap();
        assert_eq!(h.table, QualifiedName::new("My Schema", "we\"ird.name"));
        assert_eq!(h.columns, ["select", "a, b", "x"]);
    }

    #[test]
    fn other_lines_are_not_headers() {
        assert!(CopyHeader::parse("SELECT pg_catalog.setval('public.s', 3, true);").is_none());
        assert!(CopyHeader::parse("COPY public.t (a) TO stdout;").is_none());
        assert!(CopyHeader::parse("-- COPY public.t (a) FROM stdin;").is_none());
    }
}
