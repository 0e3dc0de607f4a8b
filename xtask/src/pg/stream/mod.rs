//! Streams pg_dump's plain data output into psql, through the xtask: `pg_dump --data-only` ->
//! relay -> `psql`. The relay moves COPY data a buffer at a time (`pump.rs`; memory stays flat
//! however big the tables are), counts each table's rows and bytes exactly (`copy_data.rs`), and
//! wraps the stream in the transaction that makes the load all-or-nothing:
//!
//! - it writes `BEGIN` and the caller's prologue before the first byte of the dump;
//! - it writes the epilogue and `COMMIT` only after pg_dump has exited 0 and the stream ended
//!   outside a COPY block. A pg_dump that dies, is killed or is interrupted leaves psql at end of
//!   input with the transaction still open: psql exits, the server rolls back, nothing is kept.
//!   (psql's own `--single-transaction` would COMMIT at end of input, partial data included.)
//!
//! A psql that exits 0 after the `COMMIT` was sent has committed the load, even when Ctrl-C came
//! in between: the relay then returns success and the caller's next interrupt check stops the
//! command, saying the data was loaded (`outcome.rs` decides, from the tools' statuses).
//!
//! A `Shaper` may rewrite the COPY headers (upsert loads into temporary tables) and drop other
//! lines (sequence settings), and writes the prologue and epilogue from what it saw.

mod copy_data;
mod header;
mod outcome;
mod pump;

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use anyhow::{Context, Result};

use super::ident::QualifiedName;
use crate::interrupt;
use crate::pg::{
    create_log_dirs, describe_status, kill_process, private_file, tail_lines, tail_of_file,
    PreparedCommand,
};
pub use header::CopyHeader;
use outcome::{decide, Ended, Outcome};
use pump::{copy_stream, Stop};

/// The relay's read and write buffers: large enough that a pipe's worth of rows goes through in
/// one step, small enough that memory stays flat.
const RELAY_BUFFER: usize = 256 * 1024;

/// What a load does around and inside the dump's stream.
pub trait Shaper {
    /// SQL written right after `BEGIN`, before the dump.
    fn prologue(&mut self) -> String;
    /// The header line to send for a COPY block (the line itself, or a rewritten one).
    fn copy_header(&mut self, header: &CopyHeader, line: &str) -> String {
        let _ = header;
        line.to_string()
    }
    /// Whether a line outside COPY data is passed on (sequence settings may be dropped).
    fn keep_line(&mut self, line: &str) -> bool {
        let _ = line;
        true
    }
    /// SQL written after the dump, before `COMMIT`, knowing every table that was sent.
    fn epilogue(&mut self, loaded: &[TableProgress]) -> String;
}

/// A relay that only moves data: `BEGIN`, the COPY blocks, `COMMIT` (one job of a parallel load
/// into a staging database, whose set-up and checks run in transactions of their own).
pub struct DataOnly;

impl Shaper for DataOnly {
    fn prologue(&mut self) -> String {
        String::new()
    }
    fn epilogue(&mut self, _loaded: &[TableProgress]) -> String {
        String::new()
    }
}

/// Relays running side by side: when one fails, the others' work is lost anyway, so their
/// children are stopped at once instead of streaming on to the end.
#[derive(Default)]
pub struct JobGroup {
    pids: Mutex<Vec<u32>>,
    cancelled: std::sync::atomic::AtomicBool,
}

impl JobGroup {
    /// Stops every job's children; true for the call that cancelled the group first.
    pub fn cancel(&self) -> bool {
        let first = !self.cancelled.swap(true, Ordering::SeqCst);
        for pid in self.pids.lock().map(|p| p.clone()).unwrap_or_default() {
            kill_process(pid);
        }
        first
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn register(&self, pid: u32) {
        if let Ok(mut pids) = self.pids.lock() {
            pids.push(pid);
        }
        if self.cancelled() {
            kill_process(pid);
        }
    }
}

/// One table's part of the stream.
#[derive(Clone, Debug)]
pub struct TableProgress {
    pub header: CopyHeader,
    pub rows: u64,
    pub bytes: u64,
    pub done: bool,
}

/// Shared with a progress display: which tables have been sent, and how much.
#[derive(Clone, Default)]
pub struct StreamProgress {
    pub tables: Arc<Mutex<Vec<TableProgress>>>,
    pub bytes: Arc<AtomicU64>,
    /// When the dump's last byte was passed on (what follows is the epilogue: index builds,
    /// constraints, the row counts' checks, COMMIT).
    pub data_sent: Arc<Mutex<Option<Instant>>>,
}

impl StreamProgress {
    pub fn snapshot(&self) -> Vec<TableProgress> {
        self.tables.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn data_sent_at(&self) -> Option<Instant> {
        self.data_sent.lock().ok().and_then(|at| *at)
    }

    fn current(&self) -> Option<QualifiedName> {
        self.tables.lock().ok().and_then(|t| {
            t.iter()
                .rev()
                .find(|t| !t.done)
                .map(|t| t.header.table.clone())
        })
    }
}

/// Why a relay failed, with the table that was being sent when it did.
#[derive(Debug)]
pub struct LoadFailure {
    pub message: String,
    pub table: Option<QualifiedName>,
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadFailure {}

/// A pg_dump started ahead of its psql, so that its start-up (`docker exec`, reading the source's
/// catalog) overlaps what the caller does before the load can begin (creating and checking the
/// target database). Until [`relay_started`] takes it, nothing reads its output: its pipe fills
/// and it waits. Dropped unused (the caller failed first), it is stopped: the client killed and
/// reaped, and its tool in a container stopped by the interrupt guard.
pub struct StartedDump {
    child: Option<Child>,
    command: PreparedCommand,
    log: PathBuf,
    _watch: interrupt::ChildGuard,
}

impl StartedDump {
    /// Starts `dump`, its stderr going to the private log `dump_log`.
    pub fn start(dump: &PreparedCommand, dump_log: &Path) -> Result<StartedDump> {
        create_log_dirs(&[dump_log])?;
        let child = dump
            .to_std()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(private_file(dump_log)?)
            .spawn()
            .with_context(|| format!("starting `{dump}`"))?;
        let watch = interrupt::watch(child.id());
        Ok(StartedDump {
            child: Some(child),
            command: dump.clone(),
            log: dump_log.to_path_buf(),
            _watch: watch,
        })
    }
}

impl Drop for StartedDump {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `dump | relay | load`. `dump` must write plain SQL on stdout (pg_dump's default format);
/// `load` is a psql reading stdin. Each side's stderr goes to its own private log.
pub fn relay(
    dump: &PreparedCommand,
    load: &PreparedCommand,
    shaper: &mut dyn Shaper,
    dump_log: &Path,
    load_log: &Path,
    progress: &StreamProgress,
    group: Option<&JobGroup>,
) -> Result<()> {
    let dump = StartedDump::start(dump, dump_log)?;
    relay_started(dump, load, shaper, load_log, progress, group)
}

/// [`relay`] from a pg_dump that is already running.
pub fn relay_started(
    mut started: StartedDump,
    load: &PreparedCommand,
    shaper: &mut dyn Shaper,
    load_log: &Path,
    progress: &StreamProgress,
    group: Option<&JobGroup>,
) -> Result<()> {
    create_log_dirs(&[load_log])?;
    let load_out = private_file(load_log)?;
    // On any early return, `started` is dropped and its pg_dump stopped.
    let mut load_child = load
        .to_std()
        .stdin(Stdio::piped())
        .stdout(load_out.try_clone()?)
        .stderr(load_out)
        .spawn()
        .with_context(|| format!("starting `{load}`"))?;
    let mut dump_child = started
        .child
        .take()
        .expect("a started dump is relayed once");
    let (dump, dump_log) = (&started.command, started.log.as_path());

    let _watch_load = interrupt::watch(load_child.id());
    if let Some(group) = group {
        group.register(load_child.id());
        group.register(dump_child.id());
    }
    let copied = copy_stream(&mut dump_child, &mut load_child, shaper, progress);
    let (dump_status, load_status) = match &copied {
        // psql stopped reading: it failed. pg_dump may be blocked on a full pipe; stop it.
        Err(Stop::LoadClosed) => {
            let _ = dump_child.kill();
            (dump_child.wait(), load_child.wait())
        }
        _ => {
            let dump_status = dump_child.wait();
            (dump_status, load_child.wait())
        }
    };
    let dump_status = dump_status.with_context(|| format!("waiting for `{dump}`"))?;
    let load_status = load_status.with_context(|| format!("waiting for `{load}`"))?;
    let table = progress.current();
    let failure = |message: String| -> anyhow::Error {
        LoadFailure {
            message,
            table: table.clone(),
        }
        .into()
    };
    let said = |cmd: &PreparedCommand, log: &Path| {
        format!(
            "\n  {} said:{}",
            cmd.program_label(),
            tail_lines(&tail_of_file(log)).unwrap_or_else(|| " (nothing)".to_string())
        )
    };
    let at = table
        .as_ref()
        .map(|t| format!(" while {t} was being loaded"))
        .unwrap_or_default();
    let outcome = decide(Ended {
        interrupted: interrupt::interrupted(),
        commit_sent: copied.is_ok(),
        load_ok: load_status.success(),
        dump_ok: dump_status.success(),
    });
    match outcome {
        // Committed, even if Ctrl-C came after the COMMIT: the caller says the data is loaded,
        // and its next interrupt check stops the command there.
        Outcome::Committed => Ok(()),
        Outcome::InterruptedBeforeCommit => Err(failure(format!(
            "interrupted{at}; no COMMIT was sent, the load was rolled back"
        ))),
        Outcome::InterruptedUnconfirmed => Err(failure(format!(
            "interrupted{at} while psql ran the load's last statements, before it confirmed the \
             COMMIT; the load was rolled back (only a COMMIT already running on the server when \
             psql was stopped would have kept it)"
        ))),
        Outcome::LoadFailed => Err(failure(format!(
            "loading into the target failed{at} ({}){}{}",
            describe_status(load_status),
            said(load, load_log),
            if dump_status.success() {
                String::new()
            } else {
                said(dump, dump_log)
            }
        ))),
        Outcome::DumpFailed => Err(failure(format!(
            "reading the source failed{at} ({}); the load was rolled back{}",
            describe_status(dump_status),
            said(dump, dump_log)
        ))),
        Outcome::StreamStopped => match copied {
            Err(Stop::Truncated) => Err(failure(format!(
                "the source's stream ended inside a table's data{at}; the load was rolled back{}",
                said(dump, dump_log)
            ))),
            Err(Stop::LoadClosed) => Err(failure(format!(
                "psql stopped reading{at} but exited 0; the transaction was not committed{}",
                said(load, load_log)
            ))),
            Err(Stop::Io(e)) => Err(failure(format!("relaying the data failed{at}: {e:#}"))),
            Ok(()) => unreachable!("a sent COMMIT is either confirmed or reported above"),
            Err(Stop::DumpFailed) => unreachable!("a failed dump is reported above"),
            Err(Stop::Interrupted) => unreachable!("an interrupt is reported above"),
        },
    }
}
