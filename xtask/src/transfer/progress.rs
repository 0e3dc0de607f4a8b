//! Rule 7: long loads show progress on a terminal, and stay quiet in pipes, in CI and under
//! `--json` (the caller starts a display only when `Output::progress_wanted`).

use std::{collections::BTreeMap, time::Duration};

use super::{human_bytes, selection::Selection, source::SourceRead};
use crate::pg::{ident::QualifiedName, stream::StreamProgress};

/// Rule 7: on a terminal, one status line per database, redrawn twice a second: the table being
/// loaded, its rows against the source's count, bytes sent, and an ETA from the rows so far.
/// Nothing is drawn in pipes, in CI or under `--json` (the caller does not start it there).
pub struct ProgressDisplay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Draws `label`'s load: one stream, or the streams of a parallel load (each job's table).
    pub fn start(
        label: &'static str,
        source: &SourceRead,
        selection: &Selection,
        streams: Vec<StreamProgress>,
    ) -> ProgressDisplay {
        use std::sync::atomic::Ordering;
        let expected: BTreeMap<QualifiedName, i64> = selection
            .tables
            .iter()
            .map(|t| (t.clone(), source.rows(t)))
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let total: i64 = expected.values().sum();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let started = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let mut done = 0u64;
                    let mut bytes = 0u64;
                    let mut current = Vec::new();
                    for stream in &streams {
                        let tables = stream.snapshot();
                        done += tables.iter().map(|t| t.rows).sum::<u64>();
                        bytes += stream.bytes.load(Ordering::Relaxed);
                        if let Some(t) = tables.iter().rev().find(|t| !t.done) {
                            let want = expected.get(&t.header.table).copied().unwrap_or(0);
                            current.push(format!("{} {}/{want} rows", t.header.table, t.rows));
                        }
                    }
                    let table = if current.is_empty() {
                        "between tables".to_string()
                    } else {
                        current.join(", ")
                    };
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = if done > 0 && total > done as i64 {
                        format!(
                            ", ETA {:.0}s",
                            elapsed * (total as f64 - done as f64) / done as f64
                        )
                    } else {
                        String::new()
                    };
                    crate::ctx::status_line(Some(&format!(
                        "{label}: loading {table} | {done}/{total} rows, {} sent{eta}",
                        human_bytes(bytes as i64)
                    )));
                }
                crate::ctx::status_line(None);
            }
        });
        ProgressDisplay {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
