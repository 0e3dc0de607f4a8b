//! What every command works with, built once per run (`commands::Cli::run`) and passed as one
//! `&Ctx`: the shell, the async runtime, the settings, where the pg tools run, the connect timeout
//! and where human text and the JSON report go.
//!
//! The settings and the tools are resolved on first use, not up front: `alembic-status --offline`
//! needs no URL, `db-verify` needs no container, and a command must fail on what it uses only.

use std::{cell::OnceCell, io::IsTerminal, time::Duration};

use anyhow::Result;
use xshell::Shell;

use crate::{
    config::{Config, DbArgs},
    pg::{client, PgTools},
    runtime::Runtime,
};

pub struct Ctx {
    pub sh: Shell,
    pub rt: Runtime,
    pub out: Output,
    args: DbArgs,
    config: OnceCell<Config>,
    tools: OnceCell<PgTools>,
}

impl Ctx {
    pub fn new(args: DbArgs) -> Result<Ctx> {
        Ok(Ctx {
            sh: Shell::new()?,
            rt: Runtime::new()?,
            out: Output {
                json: args.json,
                progress: true,
            },
            args,
            config: OnceCell::new(),
            tools: OnceCell::new(),
        })
    }

    /// A context of its own for another command run in-process with other settings (onboarding
    /// runs db-init, seed and db-pull on the URLs it decided, kept in memory).
    pub fn with_args(&self, args: DbArgs) -> Result<Ctx> {
        Ctx::new(args)
    }

    /// A context for a step that runs on a thread of its own beside this one (db-pull's AI copy
    /// beside its Core copy): its own shell and runtime, the same settings and tools, and no
    /// progress display (the terminal's status line stays the first step's).
    pub fn fork(&self) -> Result<Ctx> {
        Ok(Ctx {
            out: Output {
                progress: false,
                ..self.out
            },
            config: self.config.clone(),
            tools: self.tools.clone(),
            ..Ctx::new(self.args.clone())?
        })
    }

    /// The shared flags as given (flag, environment, `.env`).
    pub fn args(&self) -> &DbArgs {
        &self.args
    }

    /// The settings, checked (the Core and AI URLs of a side differ): a usage error otherwise.
    pub fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::from_args(&self.args)?;
        Ok(self.config.get_or_init(|| config))
    }

    /// The settings with each URL parsed but not checked against the others (`doctor` reports
    /// that as a check of its own).
    pub fn unchecked_config(&self) -> Result<Config> {
        Config::resolve(&self.args)
    }

    /// Where pg_dump, psql and pg_restore run (`--via`, `--container`), found once.
    pub fn tools(&self) -> Result<&PgTools> {
        if let Some(tools) = self.tools.get() {
            return Ok(tools);
        }
        let config = self.config()?;
        let tools = PgTools::resolve(&self.sh, config.via, config.container.as_deref())?;
        Ok(self.tools.get_or_init(|| tools))
    }

    /// How long to wait for a server before calling it unreachable: `--timeout`, else
    /// `XTASK_CONNECT_TIMEOUT`, else 10 s.
    pub fn timeout(&self) -> Duration {
        self.timeout_or(client::default_connect_timeout())
    }

    /// `--timeout` when given, else `default` (doctor waits less than a transfer).
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.args
            .timeout
            .map(Duration::from_secs)
            .unwrap_or(default)
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// One line of human text (stderr: stdout carries the result or the JSON document).
    pub fn say(&self, line: impl AsRef<str>) {
        self.out.say(line)
    }
}

/// Where a command's output goes: human text to stderr, the result (or `--json`'s one document)
/// to stdout, progress only on a terminal.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
    /// Whether this context may draw progress (a forked one does not).
    pub progress: bool,
}

/// Whether a progress status line is on the terminal now (it has no newline: a line said while
/// it is there must clear it first, or the two run together; db-pull's AI copy speaks while
/// Core's load draws its status line).
static STATUS_LINE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// Draws `text` as the terminal's status line (in place of the one before), or clears it.
pub fn status_line(text: Option<&str>) {
    let mut drawn = STATUS_LINE.lock().unwrap_or_else(|e| e.into_inner());
    match text {
        Some(text) => eprint!("\r\x1b[2K{text}"),
        None => eprint!("\r\x1b[2K"),
    }
    *drawn = text.is_some();
}

impl Output {
    pub fn say(&self, line: impl AsRef<str>) {
        let drawn = STATUS_LINE.lock().unwrap_or_else(|e| e.into_inner());
        if *drawn {
            // The next redraw puts the status line back under this line.
            eprint!("\r\x1b[2K");
        }
        eprintln!("{}", line.as_ref());
    }

    /// Progress is drawn on a terminal only, never with --json: pipes and CI stay quiet.
    pub fn progress_wanted(&self) -> bool {
        self.progress && !self.json && std::io::stderr().is_terminal()
    }
}
