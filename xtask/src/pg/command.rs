//! A child process built apart from running it (`PreparedCommand`: `--dry-run` prints it, tests
//! inspect it), run with its exit status checked and the tail of its stderr in the error; the
//! process-group, kill and private log file pieces every runner shares.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// A child process, built apart from running it: `--dry-run` prints it and tests inspect it.
/// `env` values may be secrets: they are never displayed, only their names.
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedCommand {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables removed from the child's environment (a stray PGPASSWORD must not be used).
    pub env_remove: Vec<String>,
}

impl PreparedCommand {
    pub fn new(program: impl Into<String>) -> PreparedCommand {
        PreparedCommand {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn secret_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn to_xshell<'a>(&self, sh: &'a Shell) -> xshell::Cmd<'a> {
        let program = &self.program;
        let args = &self.args;
        let mut cmd = cmd!(sh, "{program} {args...}").quiet();
        for name in &self.env_remove {
            cmd = cmd.env_remove(name);
        }
        for (name, value) in &self.env {
            cmd = cmd.env(name, value);
        }
        cmd
    }

    pub fn to_duct(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args).before_spawn(|cmd| {
            own_process_group(cmd);
            Ok(())
        });
        for name in &self.env_remove {
            expr = expr.env_remove(name);
        }
        for (name, value) in &self.env {
            expr = expr.env(name, value);
        }
        expr
    }

    /// The same command for `std::process`, when the caller wires the pipes itself.
    pub fn to_std(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        own_process_group(&mut cmd);
        for name in &self.env_remove {
            cmd.env_remove(name);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd
    }

    /// Runs to completion and returns stdout; a non-zero exit is an error holding stderr's tail.
    pub fn read(&self, sh: &Shell) -> Result<String> {
        self.read_with_stdin(sh, None)
    }

    pub fn read_with_stdin(&self, sh: &Shell, stdin: Option<&[u8]>) -> Result<String> {
        let mut cmd = self.to_xshell(sh).ignore_status();
        if let Some(input) = stdin {
            cmd = cmd.stdin(input);
        }
        let output = cmd
            .output()
            .with_context(|| format!("cannot start `{self}`: is {} installed?", self.program))?;
        if !output.status.success() {
            bail!(
                "`{self}` failed ({}){}",
                describe_status(output.status),
                tail_block(&String::from_utf8_lossy(&output.stderr))
            );
        }
        String::from_utf8(output.stdout).with_context(|| format!("`{self}` printed non-UTF-8"))
    }
}

/// The command line as a shell would show it, with environment names but never their values.
impl fmt::Display for PreparedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, _) in &self.env {
            write!(f, "{name}=**** ")?;
        }
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PreparedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PreparedCommand({self})")
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        // `docker exec` passes on its tool's status: 128 + 9.
        Some(137) => {
            "exit code 137: killed (SIGKILL), in the container if it ran there".to_string()
        }
        Some(code) => format!("exit code {code}"),
        None => "no exit code".to_string(),
    }
}

/// The last non-blank lines of a child's stderr, indented for an error message.
pub(crate) fn tail_lines(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(12);
    (!lines.is_empty()).then(|| format!("\n  {}", lines[start..].join("\n  ")))
}

/// The tail of a child's stderr, ready to append to an error message (empty when it said nothing).
pub fn tail_block(stderr: &str) -> String {
    tail_lines(stderr)
        .map(|lines| format!("; stderr:{lines}"))
        .unwrap_or_default()
}

/// The tail of a log file, at most the last 4 KiB.
pub(crate) fn tail_of_file(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

impl PreparedCommand {
    /// `pg_dump` for `docker exec ... pg_dump ...`, else the program.
    pub(crate) fn program_label(&self) -> String {
        if self.program == "docker" {
            for arg in &self.args {
                if matches!(arg.as_str(), "pg_dump" | "psql" | "pg_restore") {
                    return arg.clone();
                }
            }
        }
        self.program.clone()
    }
}

pub(crate) fn indent_or_nothing(text: &str) -> String {
    tail_lines(text).unwrap_or_else(|| " (nothing)".to_string())
}

/// A terminal's Ctrl-C goes to the whole foreground process group. A `docker exec` client that
/// gets it exits 0 while its tool runs on in the container, which looks like success; in a group of
/// its own, only the xtask gets the signal, and its handler stops every child with SIGKILL, which
/// never does.
fn own_process_group(cmd: &mut std::process::Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// SIGKILL, for children that must stop now (their output is thrown away); errors are ignored,
/// since the process may have ended on its own.
pub fn kill_process(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The folders of the tools' logs, made when missing.
pub(crate) fn create_log_dirs(logs: &[&Path]) -> Result<()> {
    for dir in logs.iter().filter_map(|log| log.parent()) {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the log folder {}", dir.display()))?;
    }
    Ok(())
}

/// Creates (truncates) a file readable only by its owner: logs may name tables and hosts.
pub fn private_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_odd_arguments() {
        let cmd = PreparedCommand::new("psql")
            .arg("--command=SELECT 1")
            .arg("it's");
        assert_eq!(cmd.to_string(), r"psql '--command=SELECT 1' 'it'\''s'");
    }
}
