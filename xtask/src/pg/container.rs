//! Finding the local PostgreSQL container: the one given by `--container`, else the Compose
//! container of project `backend`, service `postgres` (found by its labels, whatever Compose
//! version named it), else the names Compose v2 and v1 give it.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::config::DbUrl;

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

/// `docker inspect` of one container; `Ok(None)` when no such container exists.
pub fn inspect(sh: &Shell, name: &str) -> Result<Option<ContainerInfo>> {
    let format = "{{json .}}";
    let output = cmd!(
        sh,
        "docker inspect --type container --format {format} {name}"
    )
    .quiet()
    .ignore_status()
    .output()
    .context("cannot run `docker`: is Docker installed and on PATH?")?;
    if output.status.success() {
        let json = String::from_utf8_lossy(&output.stdout);
        return ContainerInfo::from_inspect_json(json.trim()).map(Some);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such container") || stderr.contains("No such object") {
        return Ok(None);
    }
    bail!(
        "the Docker engine does not answer (`docker inspect {name}` failed: {}). Start Docker, \
         or use --via host",
        stderr.trim()
    )
}

/// The Compose container of `project`/`service`, found by its labels.
pub fn find_by_compose_labels(sh: &Shell, project: &str, service: &str) -> Result<Option<String>> {
    let project_label = format!("label=com.docker.compose.project={project}");
    let service_label = format!("label=com.docker.compose.service={service}");
    let format = "{{.Names}}\t{{.State}}";
    let output = cmd!(
        sh,
        "docker ps -a --filter {project_label} --filter {service_label} --format {format}"
    )
    .quiet()
    .ignore_status()
    .output()
    .context("cannot run `docker`: is Docker installed and on PATH?")?;
    if !output.status.success() {
        bail!(
            "the Docker engine does not answer (`docker ps` failed: {}). Start Docker, or use \
             --via host",
            String::from_utf8_lossy(&output.stderr).trim()
        );
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
