//! What a backup (`pg_dump --format=custom`) holds, read from the archive itself, and its restore
//! into a staging database. The archive is fed to pg_restore on stdin, so the same code serves
//! the tools in the container and on the host: `--list` gives how many tables the dump creates
//! and fills, its SQL (`--file=-`) their names, quoted as pg_dump quotes them (the list does not
//! quote them), and each table's row count (one line per row in a COPY block), independently of
//! the restored database that they are then checked against.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Stdio},
};

use anyhow::{bail, Context, Result};

use crate::{
    config::{DbUrl, Side},
    interrupt,
    pg::{describe_status, ident::QualifiedName, tail_block, PgTools, PreparedCommand, Tool},
};

/// How many tables the dump's table of contents creates and fills.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ArchiveToc {
    /// `TABLE` entries.
    pub tables: usize,
    /// `TABLE DATA` entries: the tables whose rows it holds.
    pub with_data: usize,
}

/// `pg_restore --list`: each line `id; tableoid oid DESC schema name owner`. Names are not
/// quoted there (a schema, a name or an owner may hold spaces), so only the kinds of entries are
/// read from it: the tables' names come from the SQL (`read_sql`). A `TABLE` entry is a
/// `pg_class` row (tableoid 1259); a `TABLE DATA` entry has tableoid 0, which tells the two apart
/// even for a table in a schema named `DATA`.
pub fn parse_toc(list: &str) -> ArchiveToc {
    let mut toc = ArchiveToc::default();
    for line in list.lines().filter(|l| !l.starts_with(';')) {
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let mut fields = rest.splitn(3, ' ');
        let (Some(tableoid), Some(_oid), Some(entry)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        match tableoid {
            "1259" if entry.starts_with("TABLE ") => toc.tables += 1,
            "0" if entry.starts_with("TABLE DATA ") => toc.with_data += 1,
            _ => {}
        }
    }
    toc
}

/// What the dump's SQL (`pg_restore --file=-`) creates and holds: the tables of its `CREATE
/// TABLE` statements and each table's rows in its COPY blocks, names read as pg_dump quotes them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ArchiveSql {
    pub tables: BTreeSet<QualifiedName>,
    pub rows: BTreeMap<QualifiedName, i64>,
}

/// Reads one identifier as pg_dump writes it (quoted when it must be, `""` inside quotes) from
/// the start of `s`; returns it and the rest.
fn read_ident(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find(['.', ' ', '(']).unwrap_or(s.len());
        return Some((s[..end].to_string(), &s[end..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if matches!(chars.peek(), Some((_, '"'))) {
                chars.next();
                out.push('"');
            } else {
                return Some((out, &quoted[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// `schema.name` at the start of `s`, as pg_dump writes a qualified name; `None` when it is cut
/// short (a quoted name that goes on on the next line) or is not one.
fn qualified_name(s: &str) -> Option<(QualifiedName, &str)> {
    let (schema, rest) = read_ident(s)?;
    let (name, rest) = read_ident(rest.strip_prefix('.')?)?;
    Some((QualifiedName::new(schema, name), rest))
}

/// The table of a `COPY schema.name (columns) FROM stdin;` statement.
fn copy_target(statement: &str) -> Option<QualifiedName> {
    let rest = statement.strip_prefix("COPY ")?;
    if !statement.ends_with(" FROM stdin;") {
        return None;
    }
    qualified_name(rest).map(|(table, _)| table)
}

/// The table of a `CREATE [UNLOGGED] TABLE schema.name ...` statement's first line(s).
fn created_table(statement: &str) -> Option<QualifiedName> {
    let rest = statement
        .strip_prefix("CREATE TABLE ")
        .or_else(|| statement.strip_prefix("CREATE UNLOGGED TABLE "))?;
    qualified_name(rest).map(|(table, _)| table)
}

/// The header pg_restore writes before a table's definition: `-- Name: ...; Type: TABLE; ...`.
/// A `CREATE TABLE` line is read only right after one, never inside a function's body.
fn is_table_header(line: &str) -> bool {
    line.starts_with("-- Name: ") && line.contains("; Type: TABLE; Schema: ")
}

/// A statement's head is cut short when a quoted name in it goes on on the next line (an odd
/// number of `"`); such heads are joined with the lines that follow, up to this many.
const MAX_HEAD_LINES: usize = 64;

/// Where the reader of pg_restore's SQL is.
enum At {
    /// Between statements; `table_header` after a table's header comment.
    Sql { table_header: bool },
    /// The first lines of a statement whose quoted name goes on.
    Head { text: String, lines: usize },
    /// Inside a COPY block.
    Data(QualifiedName, i64),
}

/// Reads pg_restore's SQL output: the tables created and the rows of each COPY block (COPY's
/// text format escapes newlines inside values, so a row is one line; `\.` ends the block).
pub fn read_sql(out: impl BufRead) -> Result<ArchiveSql> {
    let mut found = ArchiveSql::default();
    let mut at = At::Sql {
        table_header: false,
    };
    for line in out.split(b'\n') {
        let line = line.context("reading pg_restore's output")?;
        at = match at {
            At::Data(table, rows) if line == b"\\." => {
                found.rows.insert(table, rows);
                At::Sql {
                    table_header: false,
                }
            }
            At::Data(table, rows) => At::Data(table, rows + 1),
            At::Head { mut text, lines } => {
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&line));
                statement_head(&mut found, text, lines + 1, true)
            }
            At::Sql { table_header } => {
                if line.starts_with(b"COPY ") || (table_header && line.starts_with(b"CREATE ")) {
                    statement_head(
                        &mut found,
                        String::from_utf8_lossy(&line).into(),
                        1,
                        table_header,
                    )
                } else {
                    let text = String::from_utf8_lossy(&line);
                    At::Sql {
                        table_header: is_table_header(&text)
                            || (table_header && (text == "--" || text.is_empty())),
                    }
                }
            }
        };
    }
    match at {
        At::Data(table, _) => {
            bail!("pg_restore's output ended inside the data of {table}: the archive is cut short")
        }
        At::Head { text, .. } => bail!("pg_restore's output ended inside the statement {text}"),
        At::Sql { .. } => Ok(found),
    }
}

/// A `COPY` or (after a table's header) `CREATE` statement's first `lines` lines: a COPY block
/// starts, a table is noted, or, with a quoted name still open, the next line is awaited.
fn statement_head(found: &mut ArchiveSql, text: String, lines: usize, table_header: bool) -> At {
    if text.matches('"').count() % 2 == 1 && lines < MAX_HEAD_LINES {
        return At::Head { text, lines };
    }
    if let Some(table) = copy_target(&text) {
        return At::Data(table, 0);
    }
    if let Some(table) = created_table(&text).filter(|_| table_header) {
        found.tables.insert(table);
    }
    At::Sql {
        table_header: false,
    }
}

/// Starts `cmd` with the archive on its stdin.
fn spawn_on(cmd: &PreparedCommand, archive: &Path, stdout: Stdio) -> Result<Child> {
    let file =
        File::open(archive).with_context(|| format!("opening the backup {}", archive.display()))?;
    cmd.to_std()
        .stdin(file)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{cmd}`"))
}

/// Waits for `child` (watched by `watch`); an interrupt or a failure is an error naming `what`
/// and stderr's tail.
fn finish(
    mut child: Child,
    watch: interrupt::ChildGuard,
    cmd: &PreparedCommand,
    what: &str,
) -> Result<()> {
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{cmd}`"))?;
    if status.success() {
        watch.ended();
    }
    interrupt::check(what)?;
    if !status.success() {
        bail!(
            "{what} failed (`{cmd}` {}){}",
            describe_status(status),
            tail_block(&stderr)
        );
    }
    Ok(())
}

/// The archive's table of contents.
pub fn read_toc(tools: &PgTools, archive: &Path) -> Result<ArchiveToc> {
    let cmd = tools.archive_command(Tool::PgRestore, &["--list"]);
    let mut child = spawn_on(&cmd, archive, Stdio::piped())?;
    let watch = interrupt::watch(child.id());
    let mut list = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut list)
            .context("reading pg_restore --list")?;
    }
    finish(
        child,
        watch,
        &cmd,
        &format!("listing the backup {}", archive.display()),
    )?;
    Ok(parse_toc(&list))
}

/// The tables that the archive's SQL creates and each one's rows in its data.
pub fn read_contents(tools: &PgTools, archive: &Path) -> Result<ArchiveSql> {
    let cmd = tools.archive_command(Tool::PgRestore, &["--file=-"]);
    let mut child = spawn_on(&cmd, archive, Stdio::piped())?;
    let watch = interrupt::watch(child.id());
    let out = child.stdout.take().expect("stdout is piped");
    let read = read_sql(BufReader::new(out));
    if read.is_err() {
        // It may be blocked writing output nobody reads now.
        let _ = child.kill();
    }
    let what = format!(
        "reading the tables and rows of the backup {}",
        archive.display()
    );
    finish(child, watch, &cmd, &what)?;
    read.with_context(|| what)
}

/// Restores the whole archive into `staging` in one transaction (owners left to the user
/// restoring, as the backup's own restore hint does).
pub fn restore_into(tools: &PgTools, archive: &Path, staging: &DbUrl) -> Result<()> {
    let cmd = tools.command(
        Tool::PgRestore,
        Side::Local,
        staging,
        &["--no-owner", "--single-transaction"],
    );
    let child = spawn_on(&cmd, archive, Stdio::null())?;
    let watch = interrupt::watch(child.id());
    finish(
        child,
        watch,
        &cmd,
        &format!("restoring {} into {staging}", archive.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --list` and `--file=-` of a real pg_dump 17 archive (SET lines left out):
    /// names with spaces, quotes, dots and a line break; a table in `public` named `DATA`; a
    /// function whose body creates a table.
    const LIST: &str = ";\n; Archive created at 2026-12-03 17:00:00 UTC\n;\n\
        6; 2615 16384 SCHEMA - my schema postgres\n\
        221; 1255 16396 FUNCTION public f() postgres\n\
        218; 1259 16385 TABLE my schema order \"items\".x postgres\n\
        220; 1259 16393 TABLE public DATA postgres\n\
        219; 1259 16390 TABLE public line break postgres\n\
        3426; 0 16385 TABLE DATA my schema order \"items\".x postgres\n\
        3428; 0 16393 TABLE DATA public DATA postgres\n\
        3427; 0 16390 TABLE DATA public line break postgres\n\
        3290; 2606 16400 CONSTRAINT public users users_pkey postgres\n";

    const SQL: &str = "--\n-- Name: my schema; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\n\
        CREATE SCHEMA \"my schema\";\n\n\
        --\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres\n--\n\n\
        CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n\
        CREATE TABLE inner_t (i int);\nEND $$;\n\n\
        --\n-- Name: order \"items\".x; Type: TABLE; Schema: my schema; Owner: postgres\n--\n\n\
        CREATE TABLE \"my schema\".\"order \"\"items\"\".x\" (\n    id integer,\n    \"we ird\" text\n);\n\n\
        ALTER TABLE \"my schema\".\"order \"\"items\"\".x\" OWNER TO postgres;\n\n\
        --\n-- Name: DATA; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
        CREATE UNLOGGED TABLE public.\"DATA\" (\n    i integer\n);\n\n\
        --\n-- Name: line break; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
        CREATE TABLE public.\"line\nbreak\" (\n    id integer\n);\n\n\
        --\n-- Data for Name: order \"items\".x; Type: TABLE DATA; Schema: my schema; Owner: postgres\n--\n\n\
        COPY \"my schema\".\"order \"\"items\"\".x\" (id, \"we ird\") FROM stdin;\n1\ta\\nb\n2\t\\N\n\\.\n\n\
        --\n-- Data for Name: DATA; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
        COPY public.\"DATA\" (i) FROM stdin;\n\\.\n\n\
        --\n-- Data for Name: line break; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
        COPY public.\"line\nbreak\" (id) FROM stdin;\n7\n\\.\n\n\
        SELECT pg_catalog.setval('public.users_id_seq', 2, true);\n";

    #[test]
    fn the_table_list_and_the_row_counts_are_read_from_the_archive() {
        assert_eq!(
            parse_toc(LIST),
            ArchiveToc {
                tables: 3,
                with_data: 3
            }
        );
        let sql = read_sql(SQL.as_bytes()).unwrap();
        let items = QualifiedName::new("my schema", "order \"items\".x");
        let data = QualifiedName::new("public", "DATA");
        let line_break = QualifiedName::new("public", "line\nbreak");
        assert_eq!(
            sql.tables,
            BTreeSet::from([items.clone(), data.clone(), line_break.clone()]),
            "the function's CREATE TABLE is not a table of the dump"
        );
        assert_eq!(
            sql.rows,
            BTreeMap::from([(items, 2), (data, 0), (line_break, 1)])
        );

        let cut = read_sql("COPY public.users (id) FROM stdin;\n1\n".as_bytes());
        assert!(cut.unwrap_err().to_string().contains("cut short"));
    }
}
