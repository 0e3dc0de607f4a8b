//! The masking SQL of the data policy (`policy::mask`) run by the container's psql on a real
//! PostgreSQL 17 server, in a transaction's exported snapshot: HMAC-SHA256 in core SQL matches
//! RFC 4231's test vector; the output is pg_dump's shape (a COPY header, the rows, `\.`); no raw
//! masked value is printed, the keep_where row is; the same key gives the same values twice; the
//! key's pads reach psql only through its environment.

mod support;

use std::{process::Stdio, time::Duration};

use support::{query, PgContainer, PASSWORD, USER};
use xtask::{
    config::DbUrl,
    pg::ident::QualifiedName,
    policy::{
        columns::{read_columns, Column},
        mask::{copy_commands, masked_select, psql_args, Pads},
        DbKey, Policy, TableKey,
    },
};

/// RFC 4231, test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
const RFC4231_2: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

const POLICY: &str = r#"
[core.people]
keep_where = "email = 'demo@example.org'"
id = "keep"
email = "email"
full_name = "name"
secret = "hash"
token = "hash"
pw = { fixed = "$2b$12$fixed" }
notes = "null"
"#;

/// The container's psql with `args`, the pads only in its environment (`PGOPTIONS`), no stdin.
fn run_psql(pg: &PgContainer, db: &str, args: &[String], pads: &Pads) -> String {
    let port = pg.port.to_string();
    let out = std::process::Command::new("docker")
        .args(["exec", "-e", "PGPASSWORD", "-e", "PGOPTIONS"])
        .arg(&pg.name)
        .args([
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            USER,
        ])
        .args(["-d", db])
        .args(args)
        .env("PGPASSWORD", PASSWORD)
        .env("PGOPTIONS", pads.pgoptions(None))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    for arg in args {
        assert!(
            !arg.contains(&pads.inner[..16]),
            "a pad on the command line: {arg}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stderr}");
    assert!(
        !stderr.contains(&pads.inner[..16]),
        "a pad in psql's stderr: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn masked_copy_in_the_exported_snapshot_matches_hmac_and_leaks_nothing() {
    require_docker!();
    let pg = PgContainer::start();
    let url = pg.url("sigmasight_db");
    query(
        &url,
        "CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, full_name text, \
         secret text, token uuid, pw text, notes text); \
         INSERT INTO people VALUES \
         (1, 'jane.doe@corp.example', 'Jane Doe', 'what do ya want for nothing?', \
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '$2b$12$realhash1', 'lives at 1 Main St'), \
         (2, 'demo@example.org', 'Demo User', 'demo secret', NULL, '$2b$12$demohash', 'demo'), \
         (3, 'john.roe@corp.example', NULL, NULL, NULL, NULL, NULL)",
    );
    let policy = Policy::parse(POLICY).unwrap();
    let entry = &policy.tables[&TableKey {
        db: DbKey::Core,
        table: "people".into(),
    }];
    let table = QualifiedName::new("public", "people");
    let db_url = DbUrl::parse(&url).unwrap();
    let pads = Pads::from_key_unchecked(b"Jefe");

    let rt = xtask::runtime::Runtime::new().unwrap();
    let (out1, out2) = rt.block_on(async {
        let holder = xtask::pg::client::connect(&db_url, Duration::from_secs(10))
            .await
            .unwrap();
        let columns: Vec<Column> = read_columns(&holder)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.table == "people")
            .collect();
        holder
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        let snapshot: String = holder
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .unwrap()
            .get(0);
        // A row committed after the export: the snapshot must not see it.
        let other = xtask::pg::client::connect(&db_url, Duration::from_secs(10))
            .await
            .unwrap();
        other
            .batch_execute("INSERT INTO people (id, email) VALUES (4, 'late@corp.example')")
            .await
            .unwrap();
        let select = masked_select(&table, &columns, entry).expect("people has masked columns");
        let text = psql_args(&snapshot, &[copy_commands(&table, &columns, &select)]);
        let first = run_psql(&pg, "sigmasight_db", &text, &pads);
        let second = run_psql(&pg, "sigmasight_db", &text, &pads);
        (first, second)
    });
    assert_eq!(out1, out2, "the same key must give the same masked values");

    let lines: Vec<&str> = out1.lines().collect();
    assert_eq!(
        lines[0],
        r#"COPY "public"."people" ("id", "email", "full_name", "secret", "token", "pw", "notes") FROM stdin;"#,
        "{out1}"
    );
    assert_eq!(*lines.last().unwrap(), "\\.", "{out1}");
    assert_eq!(
        lines.len(),
        5,
        "3 rows in the snapshot, not the late one:\n{out1}"
    );
    let row = |id: &str| -> Vec<&str> {
        lines[1..4]
            .iter()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f[0] == id)
            .unwrap_or_else(|| panic!("row {id} missing:\n{out1}"))
    };
    let jane = row("1");
    assert_eq!(
        jane[3], RFC4231_2,
        "HMAC-SHA256 in SQL differs from RFC 4231"
    );
    assert!(
        jane[1].starts_with("user_") && jane[1].ends_with("@example.com"),
        "{jane:?}"
    );
    assert_eq!(jane[4].len(), 36, "a uuid: {jane:?}");
    assert_eq!(jane[5], "$2b$12$fixed");
    assert_eq!(jane[6], "\\N");
    for raw in [
        "jane.doe",
        "Jane Doe",
        "what do ya want",
        "a0eebc99",
        "realhash1",
        "Main St",
        "john.roe",
    ] {
        assert!(!out1.contains(raw), "{raw:?} leaked:\n{out1}");
    }
    // keep_where: the demo row as it is.
    assert_eq!(
        row("2"),
        [
            "2",
            "demo@example.org",
            "Demo User",
            "demo secret",
            "\\N",
            "$2b$12$demohash",
            "demo"
        ]
    );
    // NULLs stay NULL under email/name/hash (a fixed value is written anyway).
    let john = row("3");
    assert_ne!(john[1], "\\N");
    assert_eq!(&john[2..5], ["\\N", "\\N", "\\N"]);
}
