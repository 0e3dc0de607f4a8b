//! Ctrl-C (SIGINT) during a destructive command. The handler does not exit: it records the
//! interrupt and kills the child processes of the run, so that the command's own flow notices at
//! once, rolls back or cleans up as it would for any failure, says what state the databases are
//! in, and exits 130. A second Ctrl-C while that cleanup runs changes nothing: the cleanup
//! finishes (it is short and leaves no half state).
//!
//! Which processes are the run's:
//!
//! - every process below the xtask (found through `/proc` on Linux): the `docker exec` clients,
//!   host tools, `uv` and the Python running Alembic. A `kill -INT <pid>` reaches only the
//!   xtask, unlike Ctrl-C on a terminal, which reaches its whole process group;
//! - the children registered with [`watch`], also on systems without `/proc`;
//! - the tool that a `docker exec` client started in the container. Killing the client does not
//!   stop it (Docker does not forward signals to `exec` processes): a pg_dump would go on reading
//!   the whole database into nothing, holding its locks and snapshot. It is found by its exact
//!   command line among the processes in other PID namespaces and killed, from the host or, when
//!   the host may not signal it, with `docker exec <container> kill`. The same happens when a
//!   watched `docker exec` child's guard is dropped, whatever ended the client (a failed psql
//!   makes the relay kill the pg_dump client): no tool of a finished step runs on in a container.
//!   A client that exited on its own, successfully, can be handed back (`ChildGuard::ended`):
//!   its tool has ended, and another run's tool with the same command line is left alone.
//!
//! On a terminal, Ctrl-C also reaches the `docker exec` clients, and they exit 0 while their tool
//! goes on in the container: after an interrupt, a child's success does not mean its step
//! finished. Check [`interrupted`] before trusting it (a backup may be cut short).

use std::{
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, Once,
    },
};

use anyhow::Result;

use crate::exit::Interrupted;

/// Set by the signal handler itself (`signal_hook::flag`), not by the ctrlc thread: a step that
/// the server lets go right after a Ctrl-C (a rename granted its lock) finds it set at its next
/// check, however late the scheduler runs that thread on a loaded machine.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The ctrlc thread's own count: whether it has seen a Ctrl-C before this one.
static HANDLED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// A registered child, and the tool it runs in a container when it is a `docker exec` client.
#[derive(Clone, Debug)]
struct Watched {
    pid: u32,
    exec: Option<DockerExec>,
}

/// `docker exec [options] <container> <argv...>`, as read from the client's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DockerExec {
    container: String,
    argv: Vec<String>,
}

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            let first = !HANDLED.swap(true, Ordering::SeqCst);
            if first {
                eprintln!("\ninterrupted: stopping, then rolling back or cleaning up...");
            } else {
                eprintln!("\nstill cleaning up; it finishes on its own, please wait");
            }
            stop_everything();
        });
        // After ctrlc's handler, which it chains to (ctrlc would replace a handler installed
        // before its own).
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, &INTERRUPTED);
    });
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error (exit 130) when Ctrl-C was pressed, to be checked between steps.
pub fn check(step: &str) -> Result<()> {
    if interrupted() {
        return Err(Interrupted(format!("interrupted during {step}")).into());
    }
    Ok(())
}

/// A child that Ctrl-C must stop, for as long as the guard lives. When the guard is dropped, a
/// tool that a `docker exec` child started in the container and that still runs is killed.
pub struct ChildGuard(Watched);

pub fn watch(pid: u32) -> ChildGuard {
    // Read now: once the client is dead its command line is gone.
    let watched = Watched {
        pid,
        exec: fresh_command_line(pid).and_then(|argv| DockerExec::parse(&argv)),
    };
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(watched.clone());
    }
    // Started after the handler ran (the flow had not yet checked): stopped at once.
    if interrupted() {
        kill(&[pid]);
        if let Some(exec) = &watched.exec {
            exec.stop_in_container();
        }
    }
    ChildGuard(watched)
}

impl ChildGuard {
    /// The client exited on its own, successfully, and no Ctrl-C came: a `docker exec` client
    /// waits for its tool, so the tool has ended, and nothing is looked for in the container when
    /// the guard goes. (Looked for by its command line, it could be another run's tool: two
    /// db-restores in one container run the same `pg_restore --list`.)
    pub fn ended(mut self) {
        if !interrupted() {
            self.0.exec = None;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = CHILDREN.lock() {
            c.retain(|w| w.pid != self.0.pid);
        }
        if let Some(exec) = &self.0.exec {
            exec.stop_in_container();
        }
    }
}

/// Kills every process of the run: the watched children, every process below the xtask, and the
/// tools that `docker exec` clients among them started in a container.
fn stop_everything() {
    let watched = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    let mut pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
    let mut execs: Vec<DockerExec> = watched.into_iter().filter_map(|w| w.exec).collect();
    for pid in descendants(std::process::id()) {
        if !pids.contains(&pid) {
            pids.push(pid);
            if let Some(exec) = command_line(pid).and_then(|argv| DockerExec::parse(&argv)) {
                execs.push(exec);
            }
        }
    }
    kill(&pids);
    for exec in execs {
        exec.stop_in_container();
    }
}

/// SIGKILL; errors are ignored (a process may have ended on its own). Returns whether `kill`
/// succeeded for all of them.
fn kill(pids: &[u32]) -> bool {
    if pids.is_empty() {
        return true;
    }
    Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A process's arguments (Linux `/proc`); `None` elsewhere, or when it is gone or a zombie.
fn command_line(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// The command line of a child that was just spawned. For a moment after `spawn` returns, the
/// kernel may not have set up the new program's arguments yet (`posix_spawn` resumes the parent
/// once the child's old memory is released, before the new stack is written), and the file reads
/// empty: it is read again, for at most a tenth of a second.
fn fresh_command_line(pid: u32) -> Option<Vec<String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
    loop {
        let line = command_line(pid);
        if line.is_some() || std::time::Instant::now() > deadline {
            return line;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Every process below `root` (Linux `/proc`; empty elsewhere).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid) in &parents {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid from `/proc/<pid>/stat` (its 4th field, after the command name in parentheses,
/// which may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_parent(&stat)
}

fn parse_parent(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The `NSpid` line of `/proc/<pid>/status`: the process's pid in each PID namespace it is in,
/// outermost first.
fn namespace_pids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_namespace_pids(&status)
}

fn parse_namespace_pids(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line["NSpid:".len()..]
        .split_whitespace()
        .map(|p| p.parse().ok())
        .collect()
}

impl DockerExec {
    /// Reads `docker exec [options] <container> <argv...>`; `None` for any other command.
    fn parse(args: &[String]) -> Option<DockerExec> {
        let program = args.first()?;
        if program.rsplit('/').next() != Some("docker") || args.get(1)? != "exec" {
            return None;
        }
        // Options of `docker exec` that take a value, when it is given as the next argument.
        const WITH_VALUE: [&str; 8] = [
            "-e",
            "--env",
            "--env-file",
            "-u",
            "--user",
            "-w",
            "--workdir",
            "--detach-keys",
        ];
        let mut i = 2;
        while let Some(arg) = args.get(i) {
            if arg == "--" {
                i += 1;
                break;
            }
            if !arg.starts_with('-') {
                break;
            }
            if WITH_VALUE.contains(&arg.as_str()) {
                i += 1;
            }
            i += 1;
        }
        let container = args.get(i)?.clone();
        let argv: Vec<String> = args[i + 1..].to_vec();
        (!argv.is_empty()).then_some(DockerExec { container, argv })
    }

    /// Kills the processes running exactly this tool in another PID namespace (the container's),
    /// if any still run. On a host that does not share its `/proc` with the Docker engine (Docker
    /// Desktop), nothing is found and nothing is done.
    fn stop_in_container(&self) {
        let Some(own_depth) = namespace_pids(std::process::id()).map(|p| p.len()) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for pid in entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            if command_line(pid).as_deref() != Some(self.argv.as_slice()) {
                continue;
            }
            let Some(ns) = namespace_pids(pid) else {
                continue;
            };
            if ns.len() <= own_depth {
                continue; // one of the host's own processes: not the container's tool
            }
            if !kill(&[pid]) {
                // Not ours to signal from the host (it runs as the container's root): from
                // inside the container, by its pid there, with the image's `kill` program (no
                // shell: nothing is ever run through `sh -c`). An image without one leaves the
                // tool to stop on its own at its next write (EPIPE) or read (end of input), now
                // that its client is gone.
                let inner = ns.last().copied().unwrap_or(pid).to_string();
                let _ = Command::new("docker")
                    .args(["exec", &self.container, "kill", "-KILL"])
                    .arg(&inner)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn docker_exec_command_lines_name_the_container_and_the_tool() {
        let exec = DockerExec::parse(&args(
            "docker exec -i -e PGPASSWORD pg-1 psql --no-psqlrc --dbname=postgresql://u@h:1/d",
        ))
        .unwrap();
        assert_eq!(exec.container, "pg-1");
        assert_eq!(
            exec.argv,
            args("psql --no-psqlrc --dbname=postgresql://u@h:1/d")
        );
        let exec =
            DockerExec::parse(&args("/usr/bin/docker exec --env=X pg-1 pg_dump -Fc")).unwrap();
        assert_eq!(exec.container, "pg-1");
        assert_eq!(exec.argv, args("pg_dump -Fc"));
        assert!(DockerExec::parse(&args("docker inspect pg-1")).is_none());
        assert!(DockerExec::parse(&args("docker exec pg-1")).is_none());
        assert!(DockerExec::parse(&args("uv run alembic")).is_none());
    }

    #[test]
    fn proc_fields_are_read_whatever_the_command_name() {
        assert_eq!(parse_parent("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(
            parse_namespace_pids("Name:\tpg_dump\nNSpid:\t21662\t57\nNSpgid:\t1\n"),
            Some(vec![21662, 57])
        );
        assert_eq!(parse_namespace_pids("NSpid:\t300\n"), Some(vec![300]));
    }

    #[test]
    fn descendants_of_this_process_include_a_grandchild() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while descendants(child.id()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let found = descendants(std::process::id());
        assert!(found.contains(&child.id()), "{found:?}");
        // Only this test's processes: other tests of this binary run meanwhile.
        let ours = descendants(child.id());
        assert_eq!(ours.len(), 1, "the shell's sleep: {ours:?}");
        assert!(found.contains(&ours[0]), "{found:?}");
        kill(&ours);
        kill(&[child.id()]);
        let _ = child.wait();
    }
}
