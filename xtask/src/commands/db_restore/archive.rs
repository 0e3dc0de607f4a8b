//! What a backup (`pg_dump --format=custom`) holds, read from the archive itself, and its restore
//! into a staging database. The archive is fed to pg_restore on stdin, so the same code serves
//! the tools in the container and on the host: `--list` gives the dump's own table list, the
//! data as SQL (`--data-only --file=-`) gives each table's row count (one line per row in a
//! COPY block), independently of the restored database that they are then checked against.

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

/// The tables of the dump's table of contents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ArchiveToc {
    /// `TABLE` entries: the tables the dump creates.
    pub tables: BTreeSet<QualifiedName>,
    /// `TABLE DATA` entries: the tables whose rows it holds.
    pub with_data: BTreeSet<QualifiedName>,
}

/// `pg_restore --list`: each line `id; tableoid oid DESC schema name owner`. Names are not
/// quoted there, so a table list is read only from entries whose schema has no space.
pub fn parse_toc(list: &str) -> ArchiveToc {
    let mut toc = ArchiveToc::default();
    for line in list.lines().filter(|l| !l.starts_with(';')) {
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        // `tableoid oid` come first.
        let rest = rest.splitn(3, ' ').nth(2).unwrap_or("");
        let (set, named) = if let Some(named) = rest.strip_prefix("TABLE DATA ") {
            (&mut toc.with_data, named)
        } else if let Some(named) = rest.strip_prefix("TABLE ") {
            (&mut toc.tables, named)
        } else {
            continue;
        };
        // `schema name owner`; the name may hold spaces, the owner is the last word.
        let Some((schema, rest)) = named.split_once(' ') else {
            continue;
        };
        let name = rest.rsplit_once(' ').map_or(rest, |(name, _owner)| name);
        set.insert(QualifiedName::new(schema, name));
    }
    toc
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

/// The table of a `COPY schema.name (columns) FROM stdin;` line.
fn copy_target(line: &str) -> Option<QualifiedName> {
    let rest = line.strip_prefix("COPY ")?;
    if !line.ends_with(" FROM stdin;") {
        return None;
    }
    let (schema, rest) = read_ident(rest)?;
    let (name, _) = read_ident(rest.strip_prefix('.')?)?;
    Some(QualifiedName::new(schema, name))
}

/// Counts the rows of each COPY block in pg_restore's SQL output (COPY's text format escapes
/// newlines inside values, so a row is one line; `\.` ends the block).
pub fn count_copy_rows(out: impl BufRead) -> Result<BTreeMap<QualifiedName, i64>> {
    let mut counts = BTreeMap::new();
    let mut current: Option<(QualifiedName, i64)> = None;
    for line in out.split(b'\n') {
        let line = line.context("reading pg_restore's output")?;
        match &mut current {
            Some((table, rows)) => {
                if line == b"\\." {
                    counts.insert(table.clone(), *rows);
                    current = None;
                } else {
                    *rows += 1;
                }
            }
            None => {
                if let Some(table) = line
                    .starts_with(b"COPY ")
                    .then(|| copy_target(&String::from_utf8_lossy(&line)))
                    .flatten()
                {
                    current = Some((table, 0));
                }
            }
        }
    }
    if let Some((table, _)) = current {
        bail!("pg_restore's output ended inside the data of {table}: the archive is cut short");
    }
    Ok(counts)
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

/// Waits for `child`; an interrupt or a failure is an error naming `what` and stderr's tail.
fn finish(mut child: Child, cmd: &PreparedCommand, what: &str) -> Result<()> {
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{cmd}`"))?;
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
    let _watch = interrupt::watch(child.id());
    let mut list = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut list)
            .context("reading pg_restore --list")?;
    }
    finish(
        child,
        &cmd,
        &format!("listing the backup {}", archive.display()),
    )?;
    Ok(parse_toc(&list))
}

/// Each table's rows in the archive's data.
pub fn count_rows(tools: &PgTools, archive: &Path) -> Result<BTreeMap<QualifiedName, i64>> {
    let cmd = tools.archive_command(Tool::PgRestore, &["--data-only", "--file=-"]);
    let mut child = spawn_on(&cmd, archive, Stdio::piped())?;
    let _watch = interrupt::watch(child.id());
    let out = child.stdout.take().expect("stdout is piped");
    let counted = count_copy_rows(BufReader::new(out));
    if counted.is_err() {
        // It may be blocked writing output nobody reads now.
        let _ = child.kill();
    }
    let what = format!("counting the rows in the backup {}", archive.display());
    finish(child, &cmd, &what)?;
    counted.with_context(|| what)
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
    let _watch = interrupt::watch(child.id());
    finish(
        child,
        &cmd,
        &format!("restoring {} into {staging}", archive.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_list_and_the_row_counts_are_read_from_the_archive() {
        let list = ";\n; Archive created at 2026-12-02\n;\n\
            215; 1259 16390 TABLE public users sigmasight\n\
            216; 1259 16391 TABLE public order items sigmasight\n\
            3401; 0 16390 TABLE DATA public users sigmasight\n\
            3290; 2606 16400 CONSTRAINT public users users_pkey sigmasight\n";
        let toc = parse_toc(list);
        assert_eq!(
            toc.tables,
            BTreeSet::from([
                QualifiedName::new("public", "users"),
                QualifiedName::new("public", "order items"),
            ])
        );
        assert_eq!(
            toc.with_data,
            BTreeSet::from([QualifiedName::new("public", "users")])
        );

        let sql = "SET x = 1;\nCOPY public.users (id, name) FROM stdin;\n1\ta\\nb\n2\tc\n\\.\n\
            COPY \"My Schema\".\"we\"\"ird\" (id) FROM stdin;\n\\.\n\
            SELECT pg_catalog.setval('public.users_id_seq', 2, true);\n";
        let counts = count_copy_rows(sql.as_bytes()).unwrap();
        assert_eq!(counts[&QualifiedName::new("public", "users")], 2);
        assert_eq!(counts[&QualifiedName::new("My Schema", "we\"ird")], 0);
        let cut = count_copy_rows("COPY public.users (id) FROM stdin;\n1\n".as_bytes());
        assert!(cut.unwrap_err().to_string().contains("cut short"));
    }
}
