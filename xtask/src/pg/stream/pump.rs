//! The relay's loop: pg_dump's output read in large blocks and written on to psql. COPY data goes
//! through a block at a time (its rows counted by `copy_data`, the progress updated once per
//! block); only the lines outside COPY blocks (headers, settings) are looked at one by one.

use std::{
    io::{BufWriter, Read, Write},
    process::{Child, ExitStatus},
    sync::atomic::Ordering,
    time::Instant,
};

use super::{
    copy_data::scan_copy_data, CopyHeader, Shaper, StreamProgress, TableProgress, RELAY_BUFFER,
};
use crate::interrupt;

pub(super) enum Stop {
    /// psql closed its stdin (it stopped on an error).
    LoadClosed,
    /// The dump's output ended in the middle of a COPY block.
    Truncated,
    /// pg_dump exited non-zero: no COMMIT was sent.
    DumpFailed,
    /// Ctrl-C: no COMMIT was sent.
    Interrupted,
    Io(anyhow::Error),
}

fn write_or_closed(out: &mut impl Write, bytes: &[u8]) -> Result<(), Stop> {
    out.write_all(bytes).map_err(closed_or_io)
}

fn closed_or_io(e: std::io::Error) -> Stop {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Stop::LoadClosed,
        _ => Stop::Io(anyhow::Error::new(e).context("writing to psql")),
    }
}

/// pg_dump's output not yet passed on, in one buffer that is refilled in place.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ended: bool,
}

impl<R: Read> Input<R> {
    fn new(reader: R) -> Input<R> {
        Input {
            reader,
            buf: vec![0; RELAY_BUFFER],
            start: 0,
            end: 0,
            ended: false,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more after what is pending; false once pg_dump's output has ended. The buffer grows
    /// only for a line outside COPY data that does not fit (COPY rows pass on in pieces).
    fn fill(&mut self) -> Result<bool, Stop> {
        if self.ended {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => {
                    break other.map_err(|e| {
                        Stop::Io(anyhow::Error::new(e).context("reading pg_dump's output"))
                    })?
                }
            }
        };
        self.end += n;
        self.ended = n == 0;
        Ok(!self.ended)
    }

    /// The next whole line (with its newline, unless it is the output's last and has none);
    /// `None` at the end of the output.
    fn next_line(&mut self) -> Result<Option<&[u8]>, Stop> {
        let mut searched = 0;
        let len = loop {
            if let Some(i) = memchr::memchr(b'\n', &self.pending()[searched..]) {
                break searched + i + 1;
            }
            searched = self.end - self.start;
            if !self.fill()? {
                break self.end - self.start;
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let line = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(line))
    }
}

/// Passes one COPY block's rows on, from just after its header; true when its end marker came,
/// false when pg_dump's output ended first.
fn relay_copy_data<R: Read>(
    input: &mut Input<R>,
    output: &mut impl Write,
    progress: &StreamProgress,
) -> Result<bool, Stop> {
    let mut at_line_start = true;
    loop {
        let pending = input.pending();
        let scan = scan_copy_data(pending, at_line_start);
        at_line_start = scan.ends_at_line_start(pending, at_line_start);
        let passed = scan.data + scan.end_marker.unwrap_or(0);
        write_or_closed(output, &pending[..passed])?;
        progress.bytes.fetch_add(passed as u64, Ordering::Relaxed);
        {
            let mut tables = progress.tables.lock().expect("progress lock");
            let current = tables.last_mut().expect("a table is being copied");
            current.rows += scan.rows;
            current.bytes += scan.data as u64;
            current.done = scan.end_marker.is_some();
        }
        input.consume(passed);
        if scan.end_marker.is_some() {
            return Ok(true);
        }
        if !input.fill()? {
            // A cut that might have begun the marker: pass it on; the block is unfinished.
            let rest = input.pending();
            write_or_closed(output, rest)?;
            progress
                .bytes
                .fetch_add(rest.len() as u64, Ordering::Relaxed);
            return Ok(false);
        }
    }
}

/// Passes pg_dump's output on to the end, through `shaper`; true when it ended inside a COPY
/// block.
fn relay_dump<R: Read>(
    input: &mut Input<R>,
    output: &mut impl Write,
    shaper: &mut dyn Shaper,
    progress: &StreamProgress,
) -> Result<bool, Stop> {
    while let Some(line) = input.next_line()? {
        progress
            .bytes
            .fetch_add(line.len() as u64, Ordering::Relaxed);
        let text = String::from_utf8_lossy(line);
        let trimmed = text.trim_end_matches('\n');
        if let Some(header) = CopyHeader::parse(trimmed) {
            let sent = shaper.copy_header(&header, trimmed);
            progress
                .tables
                .lock()
                .expect("progress lock")
                .push(TableProgress {
                    header,
                    rows: 0,
                    bytes: 0,
                    done: false,
                });
            write_or_closed(output, sent.as_bytes())?;
            write_or_closed(output, b"\n")?;
            if !relay_copy_data(input, output, progress)? {
                return Ok(true);
            }
        } else if shaper.keep_line(trimmed) {
            write_or_closed(output, line)?;
        }
    }
    Ok(false)
}

pub(super) fn copy_stream(
    dump: &mut Child,
    load: &mut Child,
    shaper: &mut dyn Shaper,
    progress: &StreamProgress,
) -> Result<(), Stop> {
    let stdout = dump.stdout.take().expect("dump stdout is piped");
    let stdin = load.stdin.take().expect("load stdin is piped");
    let mut input = Input::new(stdout);
    let mut output = BufWriter::with_capacity(RELAY_BUFFER, stdin);
    write_or_closed(&mut output, b"BEGIN;\n")?;
    write_or_closed(&mut output, shaper.prologue().as_bytes())?;

    let in_copy = relay_dump(&mut input, &mut output, shaper, progress)?;
    if let Ok(mut sent) = progress.data_sent.lock() {
        *sent = Some(Instant::now());
    }
    // Nothing more will come: the COMMIT goes out only for a complete, successful dump.
    let status: ExitStatus = dump
        .wait()
        .map_err(|e| Stop::Io(anyhow::Error::new(e).context("waiting for pg_dump")))?;
    if !status.success() {
        drop(output);
        return Err(Stop::DumpFailed);
    }
    if in_copy {
        drop(output);
        return Err(Stop::Truncated);
    }
    // Ctrl-C may end the tools with exit 0 and a short stream: no COMMIT after an interrupt.
    if interrupt::interrupted() {
        drop(output);
        return Err(Stop::Interrupted);
    }
    let loaded = progress.snapshot();
    write_or_closed(&mut output, shaper.epilogue(&loaded).as_bytes())?;
    write_or_closed(&mut output, b"COMMIT;\n")?;
    output.flush().map_err(closed_or_io)?;
    Ok(())
}

#[cfg(test)]
mod tests;
