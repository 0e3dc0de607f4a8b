//! The copies of a run's databases, each verified: one after the other, or side by side when the
//! command allows it (db-pull's Core and AI copies each go into a staging database of their own
//! and touch no local database until the swap). Side by side, every database after the first is
//! copied on a thread of its own with a forked context (`Ctx::fork`: its own shell and runtime,
//! no progress display), and its phases are added to the run's. The run waits for every copy;
//! the first failure in the databases' order is the one reported.

use anyhow::Result;

use super::{
    driver::{Job, Run, Transfer},
    phases::Phases,
};

/// Copies and verifies every job's database.
pub fn copy_all<T: Transfer>(transfer: &T, run: &Run, jobs: &mut [Job<T::Own>]) -> Result<()> {
    if jobs.len() < 2 || !transfer.copies_side_by_side(jobs) {
        return jobs
            .iter_mut()
            .try_for_each(|job| transfer.copy_one(run, job));
    }
    let forks = (1..jobs.len())
        .map(|_| run.ctx.fork())
        .collect::<Result<Vec<_>>>()?;
    // A thread gets what the run holds but its context (`Ctx` stays on the thread that made it).
    let (tools, copy, command, stamp) = (run.tools, run.copy, run.command, run.stamp.as_str());
    let (first, rest) = jobs.split_first_mut().expect("two jobs or more");
    let results = std::thread::scope(|s| {
        let others: Vec<_> = rest
            .iter_mut()
            .zip(forks)
            .map(|(job, ctx)| {
                s.spawn(move || {
                    let own = Run {
                        ctx: &ctx,
                        tools,
                        copy,
                        command,
                        stamp: stamp.to_string(),
                        phases: Phases::default(),
                    };
                    let copied = transfer.copy_one(&own, job);
                    (copied, own.phases)
                })
            })
            .collect();
        let mut results = vec![transfer.copy_one(run, first)];
        for other in others {
            let (copied, phases) = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            run.phases.absorb(phases);
            results.push(copied);
        }
        results
    });
    results.into_iter().collect()
}
