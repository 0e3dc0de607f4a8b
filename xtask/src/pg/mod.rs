//! Where the PostgreSQL tools run and how they are called: `PgTools` builds each pg_dump, psql or
//! pg_restore invocation as a `PreparedCommand` (inside the local container through `docker exec`,
//! or on the host), runs it with its exit status checked and the tail of its stderr in the error,
//! and runs pipelines whose both sides are checked.
//!
//! Passwords never appear in an argument: the tools get `--dbname=<uri without password>` and the
//! password through `PGPASSWORD` in their environment (`docker exec -e PGPASSWORD` with no value
//! forwards it from the docker client's environment).

pub mod client;
mod command;
pub mod container;
pub mod ident;
pub mod lock;
pub mod scratch;
pub mod sessions;
pub mod stream;
pub mod version;

use std::{path::Path, sync::Mutex};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::config::{DbUrl, Side, Via};
use command::indent_or_nothing;
pub(crate) use command::{create_log_dirs, tail_lines, tail_of_file};
pub use command::{describe_status, kill_process, private_file, tail_block, PreparedCommand};
use container::ContainerInfo;
use version::ToolVersion;

/// The PostgreSQL client programs the xtask runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    PgDump,
    PgRestore,
    Psql,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::PgDump => "pg_dump",
            Tool::PgRestore => "pg_restore",
            Tool::Psql => "psql",
        }
    }

    /// Options that every call of this tool carries, whatever the caller asks: psql stops at the
    /// first error (the runbooks lost 24% of rows without it) and reads no ~/.psqlrc.
    fn mandatory_args(self) -> &'static [&'static str] {
        match self {
            Tool::Psql => &["--no-psqlrc", "--set=ON_ERROR_STOP=1"],
            Tool::PgRestore => &["--exit-on-error"],
            Tool::PgDump => &[],
        }
    }

    fn reads_stdin(self) -> bool {
        matches!(self, Tool::Psql | Tool::PgRestore)
    }
}

/// Where the tools run, resolved once per command: the container is found and inspected up front.
#[derive(Clone, Debug)]
pub enum PgTools {
    Docker(ContainerInfo),
    Host,
}

impl PgTools {
    pub fn resolve(sh: &Shell, via: Via, container: Option<&str>) -> Result<PgTools> {
        match via {
            Via::Host => Ok(PgTools::Host),
            Via::Docker => {
                let info = container::find(sh, container)?;
                if !info.running {
                    bail!(
                        "container {} exists but is not running: start it with `docker start {}` \
                         (or `docker compose up -d` in backend/)",
                        info.name,
                        info.name
                    );
                }
                Ok(PgTools::Docker(info))
            }
        }
    }

    pub fn via(&self) -> Via {
        match self {
            PgTools::Docker(_) => Via::Docker,
            PgTools::Host => Via::Host,
        }
    }

    /// Where the tools run, for messages: `container backend-postgres-1` or `host`.
    pub fn place(&self) -> String {
        match self {
            PgTools::Docker(info) => format!("container {}", info.name),
            PgTools::Host => "host".to_string(),
        }
    }

    /// The URL as the tools must use it. Inside the container a local database is reached at the
    /// container's own port, whatever port the host publishes it on.
    pub fn url_for(&self, side: Side, url: &DbUrl) -> DbUrl {
        match (self, side) {
            (PgTools::Docker(info), Side::Local) => info.inside_view(url),
            _ => url.clone(),
        }
    }

    /// A tool invocation against one database. `args` come after the mandatory ones.
    pub fn command(&self, tool: Tool, side: Side, url: &DbUrl, args: &[&str]) -> PreparedCommand {
        self.command_with_env(tool, side, url, args, &[])
    }

    /// [`PgTools::command`] with more variables in the tool's environment (values may be
    /// secrets: `docker exec -e NAME` forwards each from the client's environment, so no value is
    /// on a command line).
    pub fn command_with_env(
        &self,
        tool: Tool,
        side: Side,
        url: &DbUrl,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> PreparedCommand {
        let url = self.url_for(side, url);
        let tool_args = tool
            .mandatory_args()
            .iter()
            .map(|a| a.to_string())
            .chain([format!("--dbname={}", url.to_libpq_uri())])
            .chain(args.iter().map(|a| a.to_string()));
        let mut prepared = match self {
            PgTools::Docker(info) => {
                let mut docker = PreparedCommand::new("docker").arg("exec");
                if tool.reads_stdin() {
                    docker = docker.arg("-i");
                }
                docker = docker.args(["-e", "PGPASSWORD"]);
                for (name, _) in env {
                    docker = docker.args(["-e", name]);
                }
                docker.arg(&info.name).arg(tool.program()).args(tool_args)
            }
            PgTools::Host => PreparedCommand::new(tool.program()).args(tool_args),
        };
        for (name, value) in env {
            prepared = prepared.secret_env(name, value);
        }
        match url.password() {
            Some(password) => prepared = prepared.secret_env("PGPASSWORD", password),
            None => prepared.env_remove.push("PGPASSWORD".to_string()),
        }
        prepared
    }

    /// A tool invocation that connects to no database: pg_restore reading an archive on stdin
    /// and writing what it holds to stdout (`--list`, or the SQL with `--file=-`).
    pub fn archive_command(&self, tool: Tool, args: &[&str]) -> PreparedCommand {
        let tool_args = tool
            .mandatory_args()
            .iter()
            .chain(args)
            .map(|a| a.to_string());
        match self {
            PgTools::Docker(info) => PreparedCommand::new("docker")
                .args(["exec", "-i", &info.name, tool.program()])
                .args(tool_args),
            PgTools::Host => PreparedCommand::new(tool.program()).args(tool_args),
        }
    }

    /// `pg_dump --version` (or another tool's) where the tools run, read once per process: a
    /// pull reads pg_dump's while it reads each source and needs it again for each backup.
    pub fn tool_version(&self, sh: &Shell, tool: Tool) -> Result<ToolVersion> {
        static READ: Mutex<Vec<(String, &str, ToolVersion)>> = Mutex::new(Vec::new());
        let place = self.place();
        let known = |read: &[(String, &str, ToolVersion)]| {
            read.iter()
                .find(|(p, t, _)| *p == place && *t == tool.program())
                .map(|(_, _, v)| v.clone())
        };
        if let Some(v) = known(&READ.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(v);
        }
        let version = self.read_tool_version(sh, tool)?;
        READ.lock().unwrap_or_else(|e| e.into_inner()).push((
            place,
            tool.program(),
            version.clone(),
        ));
        Ok(version)
    }

    fn read_tool_version(&self, sh: &Shell, tool: Tool) -> Result<ToolVersion> {
        let prepared = match self {
            PgTools::Docker(info) => PreparedCommand::new("docker").args([
                "exec",
                &info.name,
                tool.program(),
                "--version",
            ]),
            PgTools::Host => PreparedCommand::new(tool.program()).arg("--version"),
        };
        let out = prepared.read(sh).with_context(|| {
            format!(
                "reading the version of {} ({})",
                tool.program(),
                self.place()
            )
        })?;
        ToolVersion::parse(&out)
    }

    /// Refuses a pg_dump older than the server it would read: it cannot dump a newer server.
    pub fn check_can_dump(
        &self,
        tool: &ToolVersion,
        server: &ToolVersion,
        url: &DbUrl,
    ) -> Result<()> {
        if tool.major >= server.major {
            return Ok(());
        }
        let fix = match self {
            PgTools::Host => format!(
                "use --via docker (the container's tools match its server), or install \
                 postgresql-client-{} on the host",
                server.major
            ),
            PgTools::Docker(info) => format!(
                "the container {} has old tools: use an image with PostgreSQL {} (pgvector/pgvector:pg{})",
                info.name, server.major, server.major
            ),
        };
        bail!(
            "pg_dump {} ({}) is older than the server {} at {url}: pg_dump cannot dump a newer \
             server; {fix}",
            tool.text,
            self.place(),
            server.text,
        )
    }

    /// Runs `left | right`, checking both sides (a failed pg_dump behind a succeeding psql is
    /// an error, the runbooks' `tee` mistake). Each side's stderr goes to its own log file, and
    /// the tails of both are in the error.
    pub fn pipe(
        left: &PreparedCommand,
        right: &PreparedCommand,
        left_log: &Path,
        right_log: &Path,
    ) -> Result<()> {
        create_log_dirs(&[left_log, right_log])?;
        let right_out = private_file(right_log)?;
        let expr = left.to_duct().stderr_file(private_file(left_log)?).pipe(
            right
                .to_duct()
                .stdout_file(right_out.try_clone()?)
                .stderr_file(right_out),
        );
        // Started, then watched: Ctrl-C stops both sides (and their tools in the container).
        let result = expr.unchecked().start().and_then(|handle| {
            let _watch: Vec<_> = handle
                .pids()
                .into_iter()
                .map(crate::interrupt::watch)
                .collect();
            handle.wait().cloned()
        });
        let failure = match result {
            Err(e) => Some(format!("could not run the pipeline: {e}")),
            Ok(output) if !output.status.success() => Some(describe_status(output.status)),
            Ok(_) => None,
        };
        // duct's unchecked pipe reports the right side's status, or the left's when the right
        // succeeded; re-checking each side's log makes the message name the side that failed.
        if let Some(status) = failure {
            bail!(
                "pipeline `{left}` | `{right}` failed ({status})\n  {} said:{}\n  {} said:{}",
                left.program_label(),
                indent_or_nothing(&tail_of_file(left_log)),
                right.program_label(),
                indent_or_nothing(&tail_of_file(right_log)),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::container::{ContainerInfo, PortBinding};

    fn url() -> DbUrl {
        DbUrl::parse("postgresql://sigmasight:p%40ss%3Aw%2Frd%25%3F@localhost:5433/sigmasight_db")
            .unwrap()
    }

    fn container(network_mode: &str, ports: Vec<PortBinding>) -> PgTools {
        PgTools::Docker(ContainerInfo {
            name: "backend-postgres-1".into(),
            running: true,
            network_mode: network_mode.into(),
            ports,
        })
    }

    #[test]
    fn docker_psql_forwards_password_by_name_and_stops_on_error() {
        let tools = container(
            "bridge",
            vec![PortBinding {
                container_port: 5432,
                host_port: 5433,
            }],
        );
        let cmd = tools.command(Tool::Psql, Side::Local, &url(), &["--quiet"]);
        assert_eq!(cmd.program, "docker");
        assert_eq!(
            cmd.args,
            [
                "exec",
                "-i",
                "-e",
                "PGPASSWORD",
                "backend-postgres-1",
                "psql",
                "--no-psqlrc",
                "--set=ON_ERROR_STOP=1",
                // The host's 5433 is the container's 5432.
                "--dbname=postgresql://sigmasight@localhost:5432/sigmasight_db",
                "--quiet",
            ]
        );
        assert_eq!(
            cmd.env,
            [("PGPASSWORD".to_string(), "p@ss:w/rd%?".to_string())]
        );
        let shown = cmd.to_string();
        assert!(!shown.contains("p@ss"), "{shown}");
        assert!(shown.starts_with("PGPASSWORD=**** docker exec"), "{shown}");
    }

    #[test]
    fn remote_urls_are_used_as_given_and_pg_dump_needs_no_stdin() {
        let tools = container(
            "bridge",
            vec![PortBinding {
                container_port: 5432,
                host_port: 5433,
            }],
        );
        let remote =
            DbUrl::parse("postgresql://postgres:pw@remote.invalid:41234/railway?sslmode=require")
                .unwrap();
        let cmd = tools.command(Tool::PgDump, Side::Remote, &remote, &["--format=custom"]);
        assert_eq!(
            cmd.args,
            [
                "exec",
                "-e",
                "PGPASSWORD",
                "backend-postgres-1",
                "pg_dump",
                "--dbname=postgresql://postgres@remote.invalid:41234/railway?sslmode=require",
                "--format=custom",
            ]
        );
    }

    #[test]
    fn host_network_keeps_the_local_port() {
        let tools = container("host", vec![]);
        let cmd = tools.command(Tool::PgRestore, Side::Local, &url(), &[]);
        assert!(cmd.args.contains(
            &"--dbname=postgresql://sigmasight@localhost:5433/sigmasight_db".to_string()
        ));
        assert!(cmd.args.contains(&"--exit-on-error".to_string()));
    }

    #[test]
    fn host_mode_runs_the_tool_directly() {
        let cmd = PgTools::Host.command(Tool::PgDump, Side::Local, &url(), &["--schema-only"]);
        assert_eq!(cmd.program, "pg_dump");
        assert_eq!(
            cmd.args,
            [
                "--dbname=postgresql://sigmasight@localhost:5433/sigmasight_db",
                "--schema-only"
            ]
        );
    }

    #[test]
    fn no_password_removes_a_stray_pgpassword() {
        let url = DbUrl::parse("postgresql://u@h/d").unwrap();
        let cmd = PgTools::Host.command(Tool::Psql, Side::Remote, &url, &[]);
        assert!(cmd.env.is_empty());
        assert_eq!(cmd.env_remove, ["PGPASSWORD"]);
    }

    #[test]
    fn old_pg_dump_is_refused_naming_both_versions() {
        let tool =
            ToolVersion::parse("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)").unwrap();
        let server = ToolVersion::from_server_version_num(170011).unwrap();
        let err = PgTools::Host
            .check_can_dump(&tool, &server, &url())
            .unwrap_err()
            .to_string();
        assert!(err.contains("pg_dump 15.18"), "{err}");
        assert!(err.contains("server 17.11"), "{err}");
        assert!(err.contains("--via docker"), "{err}");
        assert!(!err.contains("p@ss"), "{err}");
        assert!(PgTools::Host
            .check_can_dump(&server, &server, &url())
            .is_ok());
    }
}
