//! How a relay ended, decided from what its two tools and the relay itself reported. The order
//! matters: a psql that exited 0 after the relay sent `COMMIT` has committed the load, even when
//! Ctrl-C came in between (the interrupt then stops the command after this step, and the command
//! says the data is loaded). Only without that confirmation does an interrupt mean "rolled back".

/// What the relay knows at the end of a load.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ended {
    /// Ctrl-C was pressed (at any time before the tools were reaped).
    pub interrupted: bool,
    /// The relay wrote and flushed the epilogue and `COMMIT` into psql's input.
    pub commit_sent: bool,
    /// psql exited 0.
    pub load_ok: bool,
    /// pg_dump exited 0.
    pub dump_ok: bool,
}

/// The relay's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `COMMIT` was sent and psql exited 0 (with `ON_ERROR_STOP`, every statement succeeded).
    Committed,
    /// Ctrl-C before `COMMIT` was sent: psql reached the end of its input (or was stopped) with
    /// the transaction open, and the server rolled it back.
    InterruptedBeforeCommit,
    /// Ctrl-C after `COMMIT` was sent, and psql was stopped before it confirmed it: psql sends
    /// `COMMIT` only after the epilogue's statements, so the load was rolled back unless the
    /// `COMMIT` itself had already reached the server.
    InterruptedUnconfirmed,
    /// psql failed (an error, a kill): nothing was committed.
    LoadFailed,
    /// pg_dump failed: no `COMMIT` was sent.
    DumpFailed,
    /// Both tools exited 0 but the relay did not send `COMMIT` (a cut stream, an I/O error).
    StreamStopped,
}

pub(super) fn decide(end: Ended) -> Outcome {
    match end {
        Ended {
            commit_sent: true,
            load_ok: true,
            ..
        } => Outcome::Committed,
        Ended {
            interrupted: true,
            commit_sent: true,
            ..
        } => Outcome::InterruptedUnconfirmed,
        Ended {
            interrupted: true, ..
        } => Outcome::InterruptedBeforeCommit,
        Ended { load_ok: false, .. } => Outcome::LoadFailed,
        Ended { dump_ok: false, .. } => Outcome::DumpFailed,
        _ => Outcome::StreamStopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(interrupted: bool, commit_sent: bool, load_ok: bool, dump_ok: bool) -> Outcome {
        decide(Ended {
            interrupted,
            commit_sent,
            load_ok,
            dump_ok,
        })
    }

    #[test]
    fn a_confirmed_commit_is_committed_even_when_ctrl_c_came_after_it() {
        assert_eq!(end(false, true, true, true), Outcome::Committed);
        assert_eq!(end(true, true, true, true), Outcome::Committed);
    }

    #[test]
    fn an_interrupt_without_a_confirmed_commit_is_not_committed() {
        // psql killed by the interrupt after COMMIT went into its input.
        assert_eq!(
            end(true, true, false, true),
            Outcome::InterruptedUnconfirmed
        );
        // No COMMIT sent: psql ends at end of input with the transaction open, whatever the
        // tools' statuses (a docker exec client may exit 0 on Ctrl-C).
        for (load_ok, dump_ok) in [(true, true), (false, true), (true, false), (false, false)] {
            assert_eq!(
                end(true, false, load_ok, dump_ok),
                Outcome::InterruptedBeforeCommit,
                "psql ok {load_ok}, pg_dump ok {dump_ok}"
            );
        }
    }

    #[test]
    fn failures_without_an_interrupt_name_the_tool_that_failed() {
        assert_eq!(end(false, true, false, true), Outcome::LoadFailed);
        assert_eq!(end(false, false, false, false), Outcome::LoadFailed);
        assert_eq!(end(false, false, true, false), Outcome::DumpFailed);
        assert_eq!(end(false, false, true, true), Outcome::StreamStopped);
    }
}
