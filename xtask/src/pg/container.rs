//! Finding the local PostgreSQL container: the one given by `--container`, else the Compose
//! container of project `backend`, service `postgres` (found by its labels, whatever Compose
//! version named it), else the names Compose v2 and v1 give it.
//!
//! Every `docker` call here has a deadline (`XTASK_DOCKER_TIMEOUT`, default 15 s): the docker CLI
//! itself waits forever on an engine whose socket accepts but never answers (a hung daemon, a
//! stale `DOCKER_HOST`), and a command that hangs before it says anything is the worst failure.

use std::{
    io::Read,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use xshell::Shell;

use crate::config::DbUrl;
use crate::exit::UsageError;

pub const COMPOSE_PROJECT: &str = "backend";
pub const COMPOSE_SERVICE: &str = "postgres";
/// Compose v2 names it `backend-postgres-1`, v1 `backend_postgres_1`.
pub const FALLBACK_NAMES: [&str; 2] = ["backend-postgres-1", "backend_postgres_1"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
}

/// What `docker inspect` tells about the container that the tools run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub running: bool,
    pub network_mode: String,
    pub ports: Vec<PortBinding>,
}

impl ContainerInfo {
    /// How a local URL looks from inside the container: a loopback URL on a published host port
    /// becomes the container's own port. On the host network, the URL works unchanged.
    pub fn inside_view(&self, url: &DbUrl) -> DbUrl {
        if self.network_mode == "host" || !url.is_loopback() {
            return url.clone();
        }
        match self.ports.iter().find(|p| p.host_port == url.port()) {
            Some(binding) => url.with_address("localhost", binding.container_port),
            None => url.clone(),
        }
    }

    /// Parses the JSON of `docker inspect --format '{{json .}}' NAME`.
    pub fn from_inspect_json(json: &str) -> Result<ContainerInfo> {
        let v: Value = serde_json::from_str(json).context("docker inspect printed invalid JSON")?;
        let name = v["Name"]
            .as_str()
            .context("docker inspect: no Name")?
            .trim_start_matches('/')
            .to_string();
        let running = v["State"]["Running"].as_bool().unwrap_or(false);
        let network_mode = v["HostConfig"]["NetworkMode"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut ports = Vec::new();
        if let Some(map) = v["NetworkSettings"]["Ports"].as_object() {
            for (key, bindings) in map {
                let Some(container_port) =
                    key.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok())
                else {
                    continue;
                };
                for binding in bindings.as_array().into_iter().flatten() {
                    if let Some(host_port) =
                        binding["HostPort"].as_str().and_then(|p| p.parse().ok())
                    {
                        let binding = PortBinding {
                            container_port,
                            host_port,
                        };
                        if !ports.contains(&binding) {
                            ports.push(binding);
                        }
                    }
                }
            }
        }
        Ok(ContainerInfo {
            name,
            running,
            network_mode,
            ports,
        })
    }
}

/// Picks the container from `docker ps -a --format '{{.Names}}\t{{.State}}'` lines: a running one
/// first, else the first listed.
pub fn choose_from_ps(ps_output: &str) -> Option<String> {
    let rows: Vec<(&str, &str)> = ps_output
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let name = parts.next()?.trim();
            (!name.is_empty()).then(|| (name, parts.next().unwrap_or("").trim()))
        })
        .collect();
    rows.iter()
        .find(|(_, state)| *state == "running")
        .or_else(|| rows.first())
        .map(|(name, _)| name.to_string())
}

/// How long one `docker` call may take before the engine is called unresponsive.
pub const DEFAULT_DOCKER_TIMEOUT: Duration = Duration::from_secs(15);

/// `XTASK_DOCKER_TIMEOUT` (whole seconds, above 0), else 15 s. A bad value is a usage error.
pub fn docker_timeout() -> Result<Duration> {
    match std::env::var_os("XTASK_DOCKER_TIMEOUT") {
        None => Ok(DEFAULT_DOCKER_TIMEOUT),
        Some(raw) => parse_docker_timeout(&raw.to_string_lossy()),
    }
}

fn parse_docker_timeout(raw: &str) -> Result<Duration> {
    match raw.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(UsageError::new(format!(
            "XTASK_DOCKER_TIMEOUT={raw:?} is not a whole number of seconds above 0 (how long a \
             `docker` call may take; default {})",
            DEFAULT_DOCKER_TIMEOUT.as_secs()
        ))
        .into()),
    }
}

/// Which engine the docker CLI talks to, for messages: `DOCKER_HOST=...` (a password in it
/// masked), or the CLI's default.
pub fn docker_host() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => format!("DOCKER_HOST={}", mask_userinfo(&host)),
        _ => "DOCKER_HOST not set: the current docker context, by default \
              unix:///var/run/docker.sock"
            .to_string(),
    }
}

/// `tcp://user:secret@host` -> `tcp://user:****@host`.
fn mask_userinfo(host: &str) -> String {
    let Some((scheme, rest)) = host.split_once("://") else {
        return host.to_string();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rsplit_once('@').and_then(|(info, _)| {
        info.split_once(':')
            .map(|(user, _)| (user, &rest[info.len()..]))
    }) {
        Some((user, from_at)) => format!("{scheme}://{user}:****{from_at}"),
        None => host.to_string(),
    }
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs a command to its end, or kills it at the deadline (`Ok(None)`). Both pipes are drained on
/// threads of their own: a child blocked on a full pipe must not look like a hung engine.
pub fn output_with_deadline(
    mut cmd: Command,
    timeout: Duration,
) -> std::io::Result<Option<Output>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            // The reader threads end when the pipes close; they are not waited for, in case
            // something the child started still holds them.
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    Ok(Some(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }))
}

/// `docker <args>` in the shell's folder, within `XTASK_DOCKER_TIMEOUT`. A missing docker CLI and
/// an engine that does not answer in time are errors that say what to do; a non-zero exit is
/// returned for the caller to read.
pub fn docker(sh: &Shell, args: &[&str]) -> Result<Output> {
    let timeout = docker_timeout()?;
    let mut cmd = Command::new("docker");
    cmd.args(args).current_dir(sh.current_dir());
    let shown = format!("docker {}", args.join(" "));
    match output_with_deadline(cmd, timeout) {
        Ok(Some(output)) => Ok(output),
        Ok(None) => bail!(
            "the Docker engine did not answer within {} s ({}): is it running? Try `docker \
             info`; start Docker (Docker Desktop, or `sudo systemctl start docker`), fix \
             DOCKER_HOST, or use --via host (`{shown}` was stopped; XTASK_DOCKER_TIMEOUT sets \
             the limit)",
            timeout.as_secs(),
            docker_host()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow!(
            "cannot run `docker`: it is not installed or not on PATH. Install Docker Engine \
             (https://docs.docker.com/engine/install/), or use --via host"
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot run `{shown}`"))),
    }
}

/// The engine's version (`docker version`), within `XTASK_DOCKER_TIMEOUT`.
pub fn engine_version(sh: &Shell) -> Result<String> {
    let output = docker(sh, &["version", "--format", "{{.Server.Version}}"])?;
    if !output.status.success() {
        bail!("{}", engine_down("docker version", &output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The message for a docker call that the engine refused or could not take.
fn engine_down(call: &str, stderr: &[u8]) -> String {
    format!(
        "the Docker engine does not answer (`{call}` failed: {}; {}). Is it running? Try `docker \
         info`; start Docker, fix DOCKER_HOST, or use --via host",
        String::from_utf8_lossy(stderr).trim(),
        docker_host()
    )
}

/// `docker inspect` of one container; `Ok(None)` when no such container exists.
pub fn inspect(sh: &Shell, name: &str) -> Result<Option<ContainerInfo>> {
    let output = docker(
        sh,
        &[
            "inspect",
            "--type",
            "container",
            "--format",
            "{{json .}}",
            name,
        ],
    )?;
    if output.status.success() {
        let json = String::from_utf8_lossy(&output.stdout);
        return ContainerInfo::from_inspect_json(json.trim()).map(Some);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such container") || stderr.contains("No such object") {
        return Ok(None);
    }
    bail!(
        "{}",
        engine_down(&format!("docker inspect {name}"), &output.stderr)
    )
}

/// The Compose container of `project`/`service`, found by its labels.
pub fn find_by_compose_labels(sh: &Shell, project: &str, service: &str) -> Result<Option<String>> {
    let project_label = format!("label=com.docker.compose.project={project}");
    let service_label = format!("label=com.docker.compose.service={service}");
    let output = docker(
        sh,
        &[
            "ps",
            "-a",
            "--filter",
            &project_label,
            "--filter",
            &service_label,
            "--format",
            "{{.Names}}\t{{.State}}",
        ],
    )?;
    if !output.status.success() {
        bail!("{}", engine_down("docker ps", &output.stderr));
    }
    Ok(choose_from_ps(&String::from_utf8_lossy(&output.stdout)))
}

/// The container the tools run in: `--container` if given, else by Compose labels, else by name.
pub fn find(sh: &Shell, explicit: Option<&str>) -> Result<ContainerInfo> {
    if let Some(name) = explicit {
        return inspect(sh, name)?.with_context(|| {
            format!(
                "container {name} (from --container / POSTGRES_CONTAINER) does not exist: check \
                 `docker ps -a`, or start the local database with `docker compose up -d` in backend/"
            )
        });
    }
    let mut candidates = Vec::new();
    if let Some(name) = find_by_compose_labels(sh, COMPOSE_PROJECT, COMPOSE_SERVICE)? {
        candidates.push(name);
    }
    candidates.extend(FALLBACK_NAMES.iter().map(|n| n.to_string()));
    for name in &candidates {
        if let Some(info) = inspect(sh, name)? {
            return Ok(info);
        }
    }
    bail!(
        "no local PostgreSQL container: none has the Compose labels project={COMPOSE_PROJECT}, \
         service={COMPOSE_SERVICE}, and none is named {}. Start it with `docker compose up -d` in \
         backend/, pass --container NAME (or POSTGRES_CONTAINER), or use --via host",
        FALLBACK_NAMES.join(" or ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_a_running_container() {
        let ps = "backend_postgres_1\texited\nbackend-postgres-1\trunning\n";
        assert_eq!(choose_from_ps(ps).as_deref(), Some("backend-postgres-1"));
        assert_eq!(choose_from_ps("old\texited\n").as_deref(), Some("old"));
        assert_eq!(choose_from_ps("\n"), None);
    }

    const INSPECT: &str = r#"{"Name":"/backend-postgres-1","State":{"Running":true},
        "HostConfig":{"NetworkMode":"backend_default"},
        "NetworkSettings":{"Ports":{"5432/tcp":[{"HostIp":"0.0.0.0","HostPort":"5433"},
        {"HostIp":"::","HostPort":"5433"}],"9999/udp":null}}}"#;

    #[test]
    fn parses_inspect_output() {
        let info = ContainerInfo::from_inspect_json(INSPECT).unwrap();
        assert_eq!(info.name, "backend-postgres-1");
        assert!(info.running);
        assert_eq!(
            info.ports,
            [PortBinding {
                container_port: 5432,
                host_port: 5433
            }]
        );
    }

    #[test]
    fn docker_timeout_is_whole_seconds_above_zero() {
        assert_eq!(parse_docker_timeout("3").unwrap(), Duration::from_secs(3));
        assert_eq!(
            parse_docker_timeout(" 20 ").unwrap(),
            Duration::from_secs(20)
        );
        for bad in ["0", "-1", "1.5", "15s", ""] {
            let err = parse_docker_timeout(bad).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}");
            assert!(err.to_string().contains("XTASK_DOCKER_TIMEOUT"), "{err}");
        }
    }

    #[test]
    fn a_password_in_docker_host_is_masked() {
        assert_eq!(
            mask_userinfo("tcp://me:s3cret@docker.example:2376"),
            "tcp://me:****@docker.example:2376"
        );
        assert_eq!(mask_userinfo("ssh://me@host"), "ssh://me@host");
        assert_eq!(
            mask_userinfo("unix:///var/run/docker.sock"),
            "unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped() {
        let started = Instant::now();
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let out = output_with_deadline(sleep, Duration::from_millis(300)).unwrap();
        assert!(out.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = output_with_deadline(echo, Duration::from_secs(10))
            .unwrap()
            .expect("finished in time");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn published_port_is_mapped_back_inside_the_container() {
        let info = ContainerInfo::from_inspect_json(INSPECT).unwrap();
        let local = DbUrl::parse("postgresql://u:p@127.0.0.1:5433/db").unwrap();
        assert_eq!(info.inside_view(&local).port(), 5432);
        let other = DbUrl::parse("postgresql://u:p@127.0.0.1:6000/db").unwrap();
        assert_eq!(info.inside_view(&other).port(), 6000);
        let remote = DbUrl::parse("postgresql://u:p@db.example:5433/db").unwrap();
        assert_eq!(info.inside_view(&remote), remote);
    }
}
