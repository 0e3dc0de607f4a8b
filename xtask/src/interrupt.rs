//! Ctrl-C (SIGINT) during a destructive command. The handler does not exit: it records the
//! interrupt and kills the child processes that are streaming data, so that the command's own
//! flow notices at once, rolls back or cleans up as it would for any failure, says what state the
//! databases are in, and exits 130. A second Ctrl-C while that cleanup runs changes nothing: the
//! cleanup finishes (it is short and leaves no half state).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex, Once,
};

use anyhow::Result;

use crate::exit::Interrupted;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let first = !INTERRUPTED.swap(true, Ordering::SeqCst);
            if first {
                eprintln!("\ninterrupted: stopping, then rolling back or cleaning up...");
            } else {
                eprintln!("\nstill cleaning up; it finishes on its own, please wait");
            }
            for pid in CHILDREN.lock().map(|c| c.clone()).unwrap_or_default() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
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

/// A child that Ctrl-C must stop, for as long as the guard lives.
pub struct ChildGuard(u32);

pub fn watch(pid: u32) -> ChildGuard {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
    ChildGuard(pid)
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = CHILDREN.lock() {
            c.retain(|p| *p != self.0);
        }
    }
}
