//! Onboarding's local server: the container named by `--container` / POSTGRES_CONTAINER (started
//! when stopped), else the Compose service `postgres` of backend/docker-compose.yml (brought up
//! when not running), then waited for until PostgreSQL takes TCP connections.

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    config::DbUrl,
    pg::{
        container::{self, docker, COMPOSE_PROJECT, COMPOSE_SERVICE},
        PreparedCommand,
    },
};

use super::say;

/// How long PostgreSQL may take to come up (a first start initializes the data directory).
const READY_WITHIN: Duration = Duration::from_secs(90);

/// The running local server's container.
pub struct Running {
    pub name: String,
    /// The Compose program (`docker compose` or `docker-compose`), when Compose runs it.
    pub compose: Option<Vec<String>>,
}

/// `docker compose` (v2 plugin) or `docker-compose` (v1 program), whichever works.
fn detect_compose(sh: &Shell) -> Result<Vec<String>> {
    if docker(sh, &["compose", "version"])?.status.success() {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    let v1 = PreparedCommand::new("docker-compose").arg("version");
    if v1
        .to_xshell(sh)
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(vec!["docker-compose".into()]);
    }
    bail!(
        "Docker Compose: neither `docker compose` nor `docker-compose` works. Debian/Ubuntu: \
         `sudo apt-get install docker-compose` (or docker-compose-plugin from Docker's packages)"
    )
}

/// `<compose> up -d postgres`, run in backend/ (the Compose project is named after the folder).
pub fn compose_up(compose: &[String]) -> PreparedCommand {
    PreparedCommand::new(&compose[0])
        .args(compose[1..].iter().cloned())
        .args(["up", "-d", COMPOSE_SERVICE])
}

/// Whether something already listens on the loopback port the container would publish.
fn port_taken(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The running container, started if needed, with PostgreSQL ready in it.
pub fn ensure(sh: &Shell, root: &Path, explicit: Option<&str>, local: &DbUrl) -> Result<Running> {
    let running = match explicit {
        Some(name) => ensure_named(sh, name)?,
        None => ensure_compose(sh, root, local)?,
    };
    wait_ready(sh, &running, local)?;
    Ok(running)
}

fn ensure_named(sh: &Shell, name: &str) -> Result<Running> {
    let info = container::inspect(sh, name)?.with_context(|| {
        format!(
            "container {name} (from --container / POSTGRES_CONTAINER) does not exist: check \
             `docker ps -a`, or unset POSTGRES_CONTAINER to let onboarding start the Compose \
             container of backend/"
        )
    })?;
    if !info.running {
        say(&format!(
            "starting the local container {name} (docker start)"
        ));
        let out = docker(sh, &["start", name])?;
        if !out.status.success() {
            bail!(
                "`docker start {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(Running {
        name: info.name,
        compose: None,
    })
}

fn ensure_compose(sh: &Shell, root: &Path, local: &DbUrl) -> Result<Running> {
    let compose = detect_compose(sh)?;
    let shown = compose.join(" ");
    let existing = container::find_by_compose_labels(sh, COMPOSE_PROJECT, COMPOSE_SERVICE)?;
    let running = match &existing {
        Some(name) => container::inspect(sh, name)?.is_some_and(|i| i.running),
        None => false,
    };
    if !running {
        let port = local.port();
        if port_taken(port) {
            bail!(
                "port {port} is already taken by another program, so the local container cannot \
                 publish it. A PostgreSQL installed on the host? (`sudo systemctl stop \
                 postgresql`). `ss -ltnp 'sport = :{port}'` shows who holds it"
            );
        }
        say(&format!(
            "starting the local container (cd backend && {shown} up -d postgres)"
        ));
        let backend = root.join("backend");
        let _dir = sh.push_dir(&backend);
        let out = compose_up(&compose)
            .to_xshell(sh)
            .ignore_status()
            .output()
            .with_context(|| {
                format!("running `{shown} up -d postgres` in {}", backend.display())
            })?;
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            bail!("`{shown} up -d postgres` failed in backend/ (output above)");
        }
    }
    let name = container::find_by_compose_labels(sh, COMPOSE_PROJECT, COMPOSE_SERVICE)?
        .context("Compose started no postgres container (backend/docker-compose.yml)")?;
    Ok(Running {
        name,
        compose: Some(compose),
    })
}

/// Ready means accepting TCP connections inside the container: the image's first-start setup
/// runs a socket-only server first, which a plain pg_isready would already call ready.
fn wait_ready(sh: &Shell, running: &Running, local: &DbUrl) -> Result<()> {
    let name = &running.name;
    say(&format!("waiting for PostgreSQL in {name}"));
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let info = container::inspect(sh, name)?
            .with_context(|| format!("container {name} disappeared while starting"))?;
        if !info.running {
            let logs = docker(sh, &["logs", "--tail", "20", name])?;
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
            eprint!("{log}");
            if log.contains("incompatible with server") {
                let down = match &running.compose {
                    Some(c) => format!("`cd backend && {} down -v`", c.join(" ")),
                    None => format!("`docker rm -v {name}`"),
                };
                bail!(
                    "the volume of {name} holds a data directory from another PostgreSQL major \
                     version (15?), which PostgreSQL 17 cannot open. Save anything you need from \
                     it with the old version first; then {down} (deletes the volume) and run \
                     scripts/onboard.sh again"
                );
            }
            bail!("the container {name} stopped (its log is above)");
        }
        let port = info.inside_view(local).port().to_string();
        let ready = docker(
            sh,
            &[
                "exec",
                name,
                "pg_isready",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
            ],
        )?;
        if ready.status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "PostgreSQL in {name} is not ready after {} s: see `docker logs {name}`",
                READY_WITHIN.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_up_is_built_for_either_compose() {
        let v2 = compose_up(&["docker".into(), "compose".into()]);
        assert_eq!(v2.program, "docker");
        assert_eq!(v2.args, ["compose", "up", "-d", "postgres"]);
        let v1 = compose_up(&["docker-compose".into()]);
        assert_eq!(v1.program, "docker-compose");
        assert_eq!(v1.args, ["up", "-d", "postgres"]);
    }
}
