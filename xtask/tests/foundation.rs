//! The foundation against real servers: the CLI contract, doctor, container discovery, the
//! tools in docker and host mode, Alembic through uv, and the seed.

mod support;

use std::process::Command;

use support::{query, query_one, run_xtask, HostCluster, PgContainer};
use xshell::Shell;
use xtask::{
    config::{DbUrl, Side, Via},
    pg::{PgTools, Tool},
};

#[test]
fn help_lists_every_command_with_a_description() {
    let run = run_xtask(&["--help"], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    for (command, words) in [
        ("db-pull", "Pull remote"),
        ("db-push", "Push local"),
        ("db-verify", "Compare two sides"),
        ("alembic-stamp", "Stamp both Alembic configs"),
        ("doctor", "Preflight"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("{command} missing from --help:\n{}", run.stdout));
        assert!(line.contains(words), "{line}");
    }
    for flag in [
        "--env-file",
        "--via",
        "--container",
        "--local-url",
        "--local-ai-url",
        "--remote-url",
        "--remote-ai-url",
        "--core-only",
        "--yes",
        "--json",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_copy_without_its_urls_names_the_missing_setting() {
    let run = run_xtask(&["db-push", "--dry-run", "--via", "host"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("DATABASE_URL"), "{}", run.stderr);
}

#[test]
fn bad_url_is_a_usage_error_that_hides_the_password() {
    let run = run_xtask(
        &["doctor", "--local-url", "mysql://u:hunter2secret@h/d"],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("--local-url / DATABASE_URL"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("unsupported scheme"), "{}", run.stderr);
    assert!(!run.all().contains("hunter2"), "{}", run.all());
    support::fault_case(
        "any",
        "a URL with an unsupported scheme (its password hidden)",
        &run,
        2,
        &["unsupported scheme", "--local-url / DATABASE_URL"],
        "nothing is read or written",
    );
}

#[test]
fn malformed_env_file_is_named_and_its_value_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("bad.env");
    std::fs::write(
        &env,
        "DATABASE_URL=postgresql://u:pw@h/d\nRAILWAY_DB_URL postgresql://u:sekrit@h/d\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    let out = cmd
        .arg("--env-file")
        .arg(&env)
        .arg("doctor")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.env"), "{stderr}");
    assert!(
        stderr.contains("malformed line 2: `RAILWAY_DB_URL`"),
        "{stderr}"
    );
    assert!(!stderr.contains("sekrit"), "{stderr}");
    support::record_case(
        "any",
        "a .env with a malformed line (its value hidden)",
        "2",
        "malformed line 2: `RAILWAY_DB_URL`",
        "nothing is read or written",
    );
}

#[test]
fn flag_beats_environment_beats_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("x.env");
    // Same database for Core and AI: refused, and the message shows which URL won.
    std::fs::write(&env, "DATABASE_URL=postgresql://u:pw@fromfile/db\nAI_DATABASE_URL=postgresql://u:pw@fromfile/db\n").unwrap();
    let base = |extra: &[&str], env_var: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.env_remove("DATABASE_URL")
            .env_remove("AI_DATABASE_URL")
            .env("XTASK_CONNECT_TIMEOUT", "2");
        if let Some(v) = env_var {
            cmd.env("AI_DATABASE_URL", v);
        }
        let out = cmd
            .arg("--env-file")
            .arg(&env)
            .arg("db-init")
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = base(&[], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("same database") && stderr.contains("fromfile"),
        "{stderr}"
    );
    // The environment beats the file: the AI URL now differs, so the refusal is gone and db-init
    // goes on to the file's Core URL (whose host does not exist).
    let (code, stderr) = base(&[], Some("postgresql://u:pw@fromenv.invalid/db"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("same database"), "{stderr}");
    assert!(
        stderr.contains("cannot reach postgresql://u:****@fromfile"),
        "{stderr}"
    );
    // A flag beats the environment.
    let (code, stderr) = base(
        &["--local-ai-url", "postgresql://u:pw@fromfile/db"],
        Some("postgresql://u:pw@fromenv/db"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("same database"), "{stderr}");
}

#[test]
fn doctor_passes_on_the_bench_and_fails_with_a_hint_when_the_container_stops() {
    require_docker!();
    let pg = PgContainer::start();
    let urls = [
        ("DATABASE_URL", pg.url("sigmasight_db")),
        ("AI_DATABASE_URL", pg.url("sigmasight_ai_db")),
        ("POSTGRES_CONTAINER", pg.name.clone()),
    ];
    let env: Vec<(&str, &str)> = urls.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // The AI database does not exist yet: doctor says so and names the fix.
    let before = run_xtask(&["doctor"], &env);
    assert_eq!(before.code, 1, "{}", before.all());
    assert!(
        before.stdout.contains("FAIL  local ai"),
        "{}",
        before.stdout
    );
    assert!(
        before.stdout.contains("cargo xtask db-init"),
        "{}",
        before.stdout
    );

    let init = run_xtask(&["db-init"], &env);
    assert_eq!(init.code, 0, "{}", init.all());
    assert!(
        init.stderr.contains("sigmasight_ai_db created"),
        "{}",
        init.stderr
    );
    assert_eq!(
        query_one(
            &pg.url("sigmasight_ai_db"),
            "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        ),
        "1"
    );

    let ok = run_xtask(&["doctor"], &env);
    assert_eq!(ok.code, 0, "{}", ok.all());
    for line in [
        "ok    docker engine",
        "ok    container",
        "ok    pg tools",
        "pg_dump 17.",
        "ok    local core",
        "ok    local ai",
        "ok    alembic alembic.ini",
        "single head c0005_correlations",
        "ok    local URLs",
    ] {
        assert!(
            ok.stdout.contains(line),
            "missing {line:?} in\n{}",
            ok.stdout
        );
    }

    let json = run_xtask(&["doctor", "--json"], &env);
    assert_eq!(json.code, 0, "{}", json.all());
    let report: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("--json prints one JSON document");
    assert_eq!(report["ok"], true);
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "container" && c["status"] == "pass"));

    pg.stop();
    let stopped = run_xtask(&["doctor"], &env);
    assert_eq!(stopped.code, 1, "{}", stopped.all());
    assert!(
        stopped.stdout.contains("FAIL  container"),
        "{}",
        stopped.stdout
    );
    assert!(stopped.stdout.contains("hint: "), "{}", stopped.stdout);
    assert!(stopped.stderr.contains("failing"), "{}", stopped.stderr);
}

#[test]
fn container_is_found_by_compose_labels_or_named() {
    require_docker!();
    let project = format!("xtasktest{}", std::process::id());
    let pg = PgContainer::start_with_labels(&[
        ("com.docker.compose.project", &project),
        ("com.docker.compose.service", "postgres"),
    ]);
    let sh = Shell::new().unwrap();
    let found = xtask::pg::container::find_by_compose_labels(&sh, &project, "postgres").unwrap();
    assert_eq!(found.as_deref(), Some(pg.name.as_str()));
    assert_eq!(
        xtask::pg::container::find_by_compose_labels(&sh, &project, "redis").unwrap(),
        None
    );

    let info = xtask::pg::container::find(&sh, Some(&pg.name)).unwrap();
    assert!(info.running);
    assert_eq!(info.network_mode, "host");

    let err = format!(
        "{:#}",
        xtask::pg::container::find(&sh, Some("xtask-no-such-container")).unwrap_err()
    );
    assert!(
        err.contains("xtask-no-such-container") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn docker_tools_run_in_the_container_and_pipes_fail_on_either_side() {
    require_docker!();
    let pg = PgContainer::start();
    let sh = Shell::new().unwrap();
    let tools = PgTools::resolve(&sh, Via::Docker, Some(&pg.name)).unwrap();
    let src = DbUrl::parse(&pg.url("sigmasight_db")).unwrap();
    let psql = |url: &DbUrl, sql: &str| {
        tools
            .command(
                Tool::Psql,
                Side::Local,
                url,
                &["--quiet", "--tuples-only", "--no-align"],
            )
            .read_with_stdin(&sh, Some(sql.as_bytes()))
    };
    psql(&src, "CREATE TABLE \"Odd Name\" (id int primary key, note text); INSERT INTO \"Odd Name\" SELECT g, 'tab\there' FROM generate_series(1, 500) g;").unwrap();
    psql(&src, "CREATE DATABASE copy_target").unwrap();
    let dst = src.with_dbname("copy_target");

    let logs = tempfile::tempdir().unwrap();
    let (l, r) = (logs.path().join("dump.log"), logs.path().join("load.log"));
    let dump = tools.command(Tool::PgDump, Side::Local, &src, &["--no-owner"]);
    let load = tools.command(Tool::Psql, Side::Local, &dst, &["--quiet"]);
    PgTools::pipe(&dump, &load, &l, &r).unwrap();
    assert_eq!(
        psql(&dst, "SELECT count(*), sum(id) FROM \"Odd Name\"")
            .unwrap()
            .trim(),
        "500|125250"
    );

    // Left side fails (pg_dump of a table that does not exist), right side would succeed.
    let bad_dump = tools.command(
        Tool::PgDump,
        Side::Local,
        &src,
        &["--table=no_such_table", "--strict-names"],
    );
    let err = format!("{:#}", PgTools::pipe(&bad_dump, &load, &l, &r).unwrap_err());
    assert!(
        err.contains("pg_dump said:") && err.contains("no_such_table"),
        "{err}"
    );

    // Right side fails: the table already exists in the target, and ON_ERROR_STOP stops psql.
    let err = format!("{:#}", PgTools::pipe(&dump, &load, &l, &r).unwrap_err());
    assert!(
        err.contains("psql said:") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(
        psql(&dst, "SELECT count(*) FROM \"Odd Name\"")
            .unwrap()
            .trim(),
        "500"
    );

    // A single command's failure carries stderr's tail.
    let err = format!(
        "{:#}",
        psql(&src, "SELECT * FROM missing_table").unwrap_err()
    );
    assert!(
        err.contains("missing_table") && err.contains("exit code"),
        "{err}"
    );
}

#[test]
fn host_mode_runs_host_tools_and_refuses_an_old_pg_dump_against_a_newer_server() {
    let cluster = HostCluster::start();
    let sh = Shell::new().unwrap();
    // Host mode with the host's own tools: the tools on PATH are what `--via host` runs.
    let path = format!(
        "{}:{}",
        cluster.bin.display(),
        std::env::var("PATH").unwrap()
    );
    let host_env = [("PATH", path.as_str())];

    let url = cluster.url("sigmasight_db");
    let env = [host_env[0], ("DATABASE_URL", url.as_str())];
    let run = run_xtask(&["doctor", "--via", "host", "--core-only"], &env);
    assert!(run.stdout.contains("skip  docker engine"), "{}", run.stdout);
    assert!(run.stdout.contains("ok    local core"), "{}", run.stdout);
    assert!(run.stdout.contains("ok    pg tools"), "{}", run.stdout);

    let _guard = sh.push_env("PATH", &path);
    let db = DbUrl::parse(&url).unwrap();
    let out = PgTools::Host
        .command(
            Tool::Psql,
            Side::Local,
            &db,
            &[
                "--tuples-only",
                "--no-align",
                "--command=SELECT current_database()",
            ],
        )
        .read(&sh)
        .unwrap();
    assert_eq!(out.trim(), "sigmasight_db");

    if !support::docker_ready() {
        return;
    }
    // The runbooks' incompatibility: the host's pg_dump is older than a PostgreSQL 17 server.
    let pg = PgContainer::start();
    let newer = pg.url("sigmasight_db");
    let env = [host_env[0], ("DATABASE_URL", newer.as_str())];
    let run = run_xtask(&["doctor", "--via", "host", "--core-only"], &env);
    let host_major = query_one(
        &url,
        "SELECT current_setting('server_version_num')::int / 10000",
    );
    if host_major.parse::<u32>().unwrap() < 17 {
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stdout.contains(&format!("pg_dump {host_major}.")),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("server 17."), "{}", run.stdout);
        assert!(run.stdout.contains("--via docker"), "{}", run.stdout);
    }
}

#[test]
fn alembic_upgrade_downgrade_round_trips_on_fresh_databases() {
    require_docker!();
    let pg = PgContainer::start();
    let core = pg.url("sigmasight_db");
    let ai = pg.url("sigmasight_ai_db");
    let env = [
        ("DATABASE_URL", core.as_str()),
        ("AI_DATABASE_URL", ai.as_str()),
    ];
    let init = run_xtask(&["db-init"], &env);
    assert_eq!(init.code, 0, "{}", init.all());

    let tables = |url: &str| {
        query_one(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
    };
    assert_eq!(tables(&core), "15");
    assert_eq!(tables(&ai), "3");
    assert_eq!(
        query_one(&core, "SELECT version_num FROM alembic_version"),
        "c0005_correlations"
    );
    assert_eq!(
        query_one(&ai, "SELECT version_num FROM alembic_version"),
        "a0002_memories_feedback"
    );

    let sh = Shell::new().unwrap();
    let rt = xtask::runtime::Runtime::new().unwrap();
    for (config, url) in [
        (xtask::alembic::AlembicConfig::Core, &core),
        (xtask::alembic::AlembicConfig::Ai, &ai),
    ] {
        let db = DbUrl::parse(url).unwrap();
        config
            .upgrade(&rt, &sh, &support::backend_dir(), &db, "head")
            .unwrap();
        config
            .command(&support::backend_dir(), Some(&db), &["downgrade", "base"])
            .read(&sh)
            .unwrap();
        assert_eq!(tables(url), "0", "downgrade base left tables in {url}");
        config
            .upgrade(&rt, &sh, &support::backend_dir(), &db, "head")
            .unwrap();
    }
    assert_eq!(tables(&core), "15");
    assert_eq!(tables(&ai), "3");
    // The HNSW index is there after the round trip.
    assert_eq!(
        query_one(
            &ai,
            "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
        ),
        "2"
    );
}

/// Per-table row counts and content hashes, read back from the server.
fn fingerprint(url: &str) -> Vec<(String, String, String)> {
    let tables: Vec<String> = query(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    tables
        .into_iter()
        .map(|t| {
            let row = &query(url, &format!("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM \"{t}\" x"))[0];
            (t, row[0].clone().unwrap(), row[1].clone().unwrap())
        })
        .collect()
}

#[test]
fn seed_gives_the_production_shape_deterministically_with_awkward_values() {
    require_docker!();
    let pg = PgContainer::start();
    let seed = |core: &str, ai: &str| {
        let run = run_xtask(
            &["seed", "--scale", "1"],
            &[("DATABASE_URL", core), ("AI_DATABASE_URL", ai)],
        );
        assert_eq!(run.code, 0, "{}", run.all());
    };
    let (core_a, ai_a) = (pg.url("seed_a"), pg.url("seed_a_ai"));
    let (core_b, ai_b) = (pg.url("seed_b"), pg.url("seed_b_ai"));
    seed(&core_a, &ai_a);
    seed(&core_b, &ai_b);

    let counts: std::collections::HashMap<String, String> = fingerprint(&core_a)
        .into_iter()
        .map(|(t, n, _)| (t, n))
        .collect();
    for (table, expected) in [
        ("users", "6"),
        ("portfolios", "6"),
        ("positions", "97"),
        ("market_data_cache", "193488"),
        ("company_profiles", "556"),
        ("position_factor_exposures", "828"),
        ("position_market_betas", "69"),
        ("portfolio_snapshots", "12"),
    ] {
        assert_eq!(counts[table], expected, "{table}");
    }
    assert_eq!(
        fingerprint(&core_a),
        fingerprint(&core_b),
        "the Core seed is not deterministic"
    );
    assert_eq!(
        fingerprint(&ai_a),
        fingerprint(&ai_b),
        "the AI seed is not deterministic"
    );
    assert_eq!(query_one(&ai_a, "SELECT count(*) FROM ai_kb_documents WHERE embedding IS NOT NULL AND vector_dims(embedding) = 1536"), "450");

    // Values that break naive tools are really there.
    let awkward = query_one(
        &core_a,
        "SELECT count(*) FROM company_profiles WHERE description LIKE E'%\\t%' OR description LIKE E'%\\n%' OR description LIKE E'%\\\\%' OR description ~ '[^\\x01-\\x7f]' OR length(description) > 10000",
    );
    assert_ne!(awkward, "0");

    // Seeding a database that holds data is refused, and nothing changes.
    let before = fingerprint(&core_a);
    let again = run_xtask(
        &["seed", "--core-only"],
        &[("DATABASE_URL", core_a.as_str())],
    );
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again.stderr.contains("already holds data"),
        "{}",
        again.stderr
    );
    assert_eq!(fingerprint(&core_a), before);
}

#[test]
fn doctor_names_an_unreachable_and_a_stalled_remote_within_its_timeout() {
    // A server that accepts connections and never answers: the connection must time out.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let closed_port = support::free_port();
    let core = support::url(closed_port, "sigmasight_db");
    let remote = format!(
        "postgresql://postgres:{}@127.0.0.1:{stalled_port}/railway",
        support::PASSWORD_ENCODED
    );
    let run = run_xtask(
        &["doctor", "--via", "host", "--core-only", "--timeout", "1"],
        &[
            ("DATABASE_URL", core.as_str()),
            ("RAILWAY_DB_URL", remote.as_str()),
        ],
    );
    drop(stalled);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("FAIL  local core") && run.stdout.contains("cannot reach"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("FAIL  remote core") && run.stdout.contains("no answer within 1s"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("check RAILWAY_DB_URL"),
        "{}",
        run.stdout
    );
    support::fault_case(
        "doctor",
        "an unreachable local server and a remote that accepts but never answers",
        &run,
        1,
        &["no answer within 1s", "check RAILWAY_DB_URL"],
        "nothing is written",
    );
}
