//! `--schema source` by pg_dump's sections, against real servers: one PostgreSQL 17 container and
//! one host PostgreSQL 15 cluster, shared by the tests of this file (each test its own small
//! databases). A pull and a push copy a row that breaks a NOT VALID check and foreign key (the
//! constraints stay NOT VALID), create triggers after the data, put an extension in the schema
//! the source has it in, and add `vector` only where the source has it; a pull creates the roles
//! the source's policies name as NOLOGIN roles, a push refuses them by name; a push goes into a
//! PostgreSQL 15 remote; a second source-mode push loads into the remote's equal schema, and one
//! into a different schema is refused with the differences. Every check reads the servers back.

mod support;

use std::sync::{Arc, Mutex, Weak};

use support::{query, query_one, run_xtask, unique, HostCluster, PgContainer, Run};

static CONTAINER: Mutex<Weak<PgContainer>> = Mutex::new(Weak::new());
static CLUSTER: Mutex<Weak<HostCluster>> = Mutex::new(Weak::new());

/// The file's server, started by the first test that needs it and removed when the last test
/// holding it ends.
fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(start());
    *slot = Arc::downgrade(&server);
    server
}

fn container() -> Arc<PgContainer> {
    shared(&CONTAINER, PgContainer::start)
}

fn cluster() -> Arc<HostCluster> {
    shared(&CLUSTER, HostCluster::start)
}

/// A new empty database on the server of `admin_url` (its `postgres` database); its name.
fn new_database(admin_url: &str, prefix: &str) -> String {
    let name = unique(prefix).replace('-', "_");
    query(admin_url, &format!("CREATE DATABASE {name}"));
    name
}

/// `cargo xtask <command> --yes --schema source <args>` in docker mode, its backups and logs in a
/// directory of its own.
fn run_copy(command: &str, pg: &PgContainer, args: &[&str]) -> Run {
    let dirs = tempfile::TempDir::new().unwrap();
    let (backups, logs) = (dirs.path().join("b"), dirs.path().join("l"));
    let mut all = vec![
        command,
        "--yes",
        "--schema",
        "source",
        "--container",
        &pg.name,
    ];
    // These schemas are the tests' own, not the app's: the data policy does not classify them.
    if command == "db-pull" {
        all.push("--unmasked");
    }
    all.extend_from_slice(args);
    run_xtask(
        &all,
        &[
            ("XTASK_BACKUP_DIR", backups.to_str().unwrap()),
            ("XTASK_LOG_DIR", logs.to_str().unwrap()),
        ],
    )
}

/// [`run_copy`] of the Core database only, from `remote` to `local` or back.
fn copy(command: &str, pg: &PgContainer, remote: &str, local: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--core-only", "--remote-url", remote, "--local-url", local];
    args.extend_from_slice(extra);
    run_copy(command, pg, &args)
}

/// A table whose policy names a role made for the test, in the database at `url` (the role on
/// its server); the role's name.
fn policy_naming_a_new_role(url: &str, prefix: &str) -> String {
    let role = unique(prefix).replace('-', "_");
    query(
        url,
        &format!(
            "CREATE ROLE {role} NOLOGIN;
             CREATE TABLE public.notes (id int PRIMARY KEY, owner text);
             INSERT INTO public.notes SELECT g, 'u' || g % 4 FROM generate_series(1, 30) g;
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_notes ON public.notes TO {role} USING (owner = current_user);"
        ),
    );
    role
}

/// A schema that only pg_restore's order copies: an extension in its own schema, a row that
/// breaks a NOT VALID check and a NOT VALID foreign key, a trigger that refuses every insert.
const SECTIONS_SCHEMA: &str = "
    CREATE SCHEMA extensions;
    CREATE EXTENSION citext SCHEMA extensions;
    CREATE TABLE public.parent (id int PRIMARY KEY);
    CREATE TABLE public.child (
        id int PRIMARY KEY, parent_id int, qty int, email extensions.citext);
    INSERT INTO public.parent SELECT g FROM generate_series(1, 3) g;
    INSERT INTO public.child SELECT g, 1 + g % 3, g, 'User' || g || '@Example.org'
        FROM generate_series(1, 40) g;
    INSERT INTO public.child VALUES (41, 99, -1, 'orphan@example.org');
    ALTER TABLE public.child ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID;
    ALTER TABLE public.child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id)
        REFERENCES public.parent (id) NOT VALID;
    CREATE INDEX child_email ON public.child (email);
    CREATE FUNCTION public.no_inserts() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'no inserts'; END $$;
    CREATE TRIGGER child_no_inserts BEFORE INSERT ON public.child
        FOR EACH ROW EXECUTE FUNCTION public.no_inserts();";

/// What the target holds of `SECTIONS_SCHEMA`, read back: rows, the orphan row, the constraints'
/// validity, the trigger, the index, the column's type and the extension's schema.
fn sections_state(url: &str) -> Vec<String> {
    [
        "SELECT count(*) || ' ' || sum(qty) FROM public.child",
        "SELECT count(*) FROM public.child WHERE parent_id = 99 AND qty = -1",
        "SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname) \
         FROM pg_constraint WHERE conrelid = 'public.child'::regclass AND contype IN ('c', 'f')",
        "SELECT string_agg(tgname, ', ') FROM pg_trigger \
         WHERE tgrelid = 'public.child'::regclass AND NOT tgisinternal",
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'child_email'",
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'public.child'::regclass AND attname = 'email'",
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'citext'",
        "SELECT count(*) FROM public.child WHERE email OPERATOR(extensions.=) 'USER7@EXAMPLE.ORG'",
    ]
    .iter()
    .map(|sql| query_one(url, sql))
    .collect()
}

#[test]
fn a_pull_copies_rows_that_break_not_valid_constraints_and_adds_only_the_sources_extensions() {
    require_docker!();
    let pg = container();
    let admin = pg.url("postgres");
    let (src, dst) = (new_database(&admin, "src"), new_database(&admin, "dst"));
    let (src_ai, dst_ai) = (new_database(&admin, "srcai"), new_database(&admin, "dstai"));
    query(&pg.url(&src), SECTIONS_SCHEMA);
    query(
        &pg.url(&src_ai),
        "CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 25) g;",
    );

    let urls = [&src, &src_ai, &dst, &dst_ai].map(|db| pg.url(db));
    let run = run_copy(
        "db-pull",
        &pg,
        &[
            "--remote-url",
            &urls[0],
            "--remote-ai-url",
            &urls[1],
            "--local-url",
            &urls[2],
            "--local-ai-url",
            &urls[3],
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let state = sections_state(&urls[2]);
    assert_eq!(state, sections_state(&urls[0]), "{}", run.all());
    assert_eq!(state[0], "41 819");
    assert_eq!(state[2], "child_parent false, qty_positive false");
    assert_eq!(state[3], "child_no_inserts");
    assert_eq!(state[5], "extensions.citext");
    assert_eq!(state[6], "extensions");
    assert_eq!(state[7], "1", "citext compares without case");
    // On several connections, the post-data section runs after them all.
    let jobs = pg.url(&new_database(&admin, "dstjobs"));
    let run = copy("db-pull", &pg, &urls[0], &jobs, &["--jobs", "2"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("on 2 connections"), "{}", run.stderr);
    assert_eq!(sections_state(&jobs), state);
    // The AI source has no vector extension: neither has its copy.
    let extensions = "SELECT coalesce(string_agg(extname, ', ' ORDER BY extname), '') \
                      FROM pg_extension WHERE extname <> 'plpgsql'";
    assert_eq!(query_one(&urls[3], extensions), "");
    assert_eq!(query_one(&urls[3], "SELECT count(*) FROM notes"), "25");
}

#[test]
fn a_pull_creates_the_roles_the_sources_policies_name_as_nologin_roles() {
    require_docker!();
    let (pg, remote) = (container(), cluster());
    let src = new_database(&remote.url("postgres"), "src");
    let dst = new_database(&pg.url("postgres"), "dst");
    let role = policy_naming_a_new_role(&remote.url(&src), "reader");
    let has_role = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'");
    assert_eq!(query_one(&pg.url("postgres"), &has_role), "0");

    let run = copy(
        "db-pull",
        &pg,
        &remote.url(&src),
        &pg.url(&dst),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("NOLOGIN role(s)") && run.stderr.contains(&role),
        "{}",
        run.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let created = &report["databases"][0]["created_roles"];
    assert_eq!(created, &serde_json::json!([role]), "{}", run.stdout);
    assert_eq!(
        query_one(
            &pg.url("postgres"),
            &format!("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = '{role}'")
        ),
        "false"
    );
    let dst_url = pg.url(&dst);
    assert_eq!(
        query_one(
            &dst_url,
            "SELECT policyname || ' ' || array_to_string(roles, ',') FROM pg_policies"
        ),
        format!("own_notes {role}")
    );
    assert_eq!(
        query_one(&dst_url, "SELECT count(*) FROM public.notes"),
        "30"
    );
}

#[test]
fn a_push_into_postgresql_15_then_into_its_equal_schema_and_a_refusal_of_a_different_one() {
    require_docker!();
    let (pg, remote) = (container(), cluster());
    let local = new_database(&pg.url("postgres"), "local");
    let target = new_database(&remote.url("postgres"), "remote");
    query(&pg.url(&local), SECTIONS_SCHEMA);
    let (local_url, remote_url) = (pg.url(&local), remote.url(&target));

    // pg_dump 17 writes `SET transaction_timeout`, which PostgreSQL 15 rejects.
    let run = copy("db-push", &pg, &remote_url, &local_url, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(sections_state(&remote_url), sections_state(&local_url));
    assert!(
        query_one(&remote_url, "SELECT version()").starts_with("PostgreSQL 15."),
        "the remote is the host's PostgreSQL 15"
    );

    // Again, into the remote's schema, equal to the local one: it loads the local rows.
    query(
        &local_url,
        "ALTER TABLE public.child DISABLE TRIGGER child_no_inserts;
         INSERT INTO public.child VALUES (42, 2, 5, 'new@example.org');
         ALTER TABLE public.child ENABLE TRIGGER child_no_inserts;",
    );
    let run = copy("db-push", &pg, &remote_url, &local_url, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("equals the local one"),
        "{}",
        run.stderr
    );
    assert_eq!(sections_state(&remote_url), sections_state(&local_url));
    assert_eq!(sections_state(&remote_url)[0], "42 824");

    // A remote whose schema differs is refused, naming each difference, and left as it was.
    query(
        &remote_url,
        "ALTER TABLE public.child ADD COLUMN note text; CREATE TABLE public.extra (x int);",
    );
    query(&local_url, "DELETE FROM public.child WHERE id > 20");
    let run = copy("db-push", &pg, &remote_url, &local_url, &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("column public.child.note: only on remote"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("table public.extra: only on remote"),
        "{}",
        run.stderr
    );
    assert_eq!(sections_state(&remote_url)[0], "42 824", "untouched");
}

#[test]
fn a_push_refuses_by_name_the_roles_the_remote_lacks_and_creates_none() {
    require_docker!();
    let (pg, remote) = (container(), cluster());
    let local = new_database(&pg.url("postgres"), "local");
    let target = new_database(&remote.url("postgres"), "remote");
    let role = policy_naming_a_new_role(&pg.url(&local), "writer");
    let run = copy("db-push", &pg, &remote.url(&target), &pg.url(&local), &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains(&format!("lacks: {role}")),
        "{}",
        run.stderr
    );
    let remote_url = remote.url(&target);
    assert_eq!(
        query_one(
            &remote_url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "nothing written"
    );
    assert_eq!(
        query_one(
            &remote_url,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'")
        ),
        "0",
        "no role created on the remote"
    );
}
