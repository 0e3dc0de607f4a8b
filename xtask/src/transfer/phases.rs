//! Where a run's time goes: the seconds spent in each phase of a pull or a push (summed over its
//! databases), said in one line at the end and reported in `--json` as `phases`, so that a user
//! sees which step to look at when a copy is slow.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// The phases, in the order a pull runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Locks, the sources' snapshots, catalogs and counts, the targets read.
    Preflight,
    Backup,
    /// The staging database's schema: cloned from the cache, migrated, or the source's.
    Schema,
    /// From the load's start until its last row was sent.
    Data,
    /// From the last row sent until the load committed: index builds, constraints, row counts.
    Indexes,
    Verify,
    /// The staging databases renamed into place and the replaced ones dropped.
    Swap,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Preflight,
        Phase::Backup,
        Phase::Schema,
        Phase::Data,
        Phase::Indexes,
        Phase::Verify,
        Phase::Swap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Backup => "backup",
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::Indexes => "indexes",
            Phase::Verify => "verify",
            Phase::Swap => "swap",
        }
    }
}

/// The time spent so far in each phase that ran.
#[derive(Default)]
pub struct Phases {
    spent: Mutex<Vec<(Phase, Duration)>>,
    /// When the running load sent its last row, once it has.
    data_sent: Mutex<Option<Instant>>,
    /// Phases that ran beside the others (db-pull's backups beside its copies): their time
    /// overlaps the others'.
    beside: Mutex<Vec<Phase>>,
}

impl Phases {
    pub fn add(&self, phase: Phase, spent: Duration) {
        let mut all = self.spent.lock().expect("phases lock");
        match all.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += spent,
            None => all.push((phase, spent)),
        }
    }

    /// Adds the time of every phase of `other` (a database's copy that ran on a thread of its
    /// own) to these.
    pub fn absorb(&self, other: Phases) {
        for (phase, spent) in other.spent.into_inner().expect("phases lock") {
            self.add(phase, spent);
        }
    }

    /// Notes that `phase` ran beside the others rather than before them.
    pub fn beside(&self, phase: Phase) {
        let mut beside = self.beside.lock().expect("phases lock");
        if !beside.contains(&phase) {
            beside.push(phase);
        }
    }

    /// Runs `step`, its time counted to `phase` (whether it succeeds or not).
    pub fn time<T>(&self, phase: Phase, step: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = step();
        self.add(phase, started.elapsed());
        result
    }

    /// Notes when the running load sent its last row (`None`: unknown, it failed first).
    pub fn data_sent(&self, at: Option<Instant>) {
        *self.data_sent.lock().expect("phases lock") = at;
    }

    /// A load that ran from `started` until now: data until its last row was sent
    /// ([`Phases::data_sent`]; all of it when that is unknown), indexes after.
    pub fn load(&self, started: Instant) {
        let ended = Instant::now();
        let data_sent = self.data_sent.lock().expect("phases lock").take();
        let sent = data_sent.unwrap_or(ended).clamp(started, ended);
        self.add(Phase::Data, sent - started);
        self.add(Phase::Indexes, ended - sent);
    }

    /// Each phase that ran and its seconds, in the order of the run.
    pub fn seconds(&self) -> Vec<(&'static str, f64)> {
        let all = self.spent.lock().expect("phases lock");
        Phase::ALL
            .iter()
            .filter_map(|phase| all.iter().find(|(p, _)| p == phase))
            .map(|(p, spent)| (p.name(), (spent.as_secs_f64() * 1000.0).round() / 1000.0))
            .collect()
    }

    /// `phases: preflight 0.15 s, backup 0.60 s (beside the copy), data 1.20 s, ...`
    pub fn line(&self) -> String {
        let beside: Vec<&str> = self
            .beside
            .lock()
            .expect("phases lock")
            .iter()
            .map(|p| p.name())
            .collect();
        let parts: Vec<String> = self
            .seconds()
            .iter()
            .map(|(name, s)| match beside.contains(name) {
                true => format!("{name} {s:.2} s (beside the copy)"),
                false => format!("{name} {s:.2} s"),
            })
            .collect();
        format!("phases: {}", parts.join(", "))
    }

    /// `{"preflight": 0.153, "data": 1.204, ...}`: each phase that ran, in seconds.
    pub fn to_json(&self) -> serde_json::Value {
        self.seconds()
            .into_iter()
            .map(|(name, s)| (name.to_string(), serde_json::Value::from(s)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_summed_and_listed_in_the_runs_order() {
        let phases = Phases::default();
        phases.add(Phase::Verify, Duration::from_millis(250));
        phases.add(Phase::Preflight, Duration::from_millis(1500));
        phases.add(Phase::Verify, Duration::from_millis(1000));
        assert_eq!(phases.seconds(), [("preflight", 1.5), ("verify", 1.25)]);
        assert_eq!(phases.line(), "phases: preflight 1.50 s, verify 1.25 s");
        phases.add(Phase::Backup, Duration::from_millis(600));
        phases.beside(Phase::Backup);
        assert_eq!(
            phases.line(),
            "phases: preflight 1.50 s, backup 0.60 s (beside the copy), verify 1.25 s"
        );
        assert_eq!(
            phases.to_json(),
            serde_json::json!({"preflight": 1.5, "backup": 0.6, "verify": 1.25})
        );
    }

    #[test]
    fn a_load_is_split_at_its_last_row() {
        let phases = Phases::default();
        let started = Instant::now() - Duration::from_secs(3);
        phases.data_sent(Some(started + Duration::from_secs(2)));
        phases.load(started);
        let seconds = phases.seconds();
        assert_eq!(seconds[0], ("data", 2.0));
        assert_eq!(seconds[1].0, "indexes");
        assert!((1.0..1.5).contains(&seconds[1].1), "{seconds:?}");
        // Failed before its last row: all of it is data.
        let phases = Phases::default();
        phases.load(started);
        assert_eq!(phases.seconds().len(), 2);
        assert!(phases.seconds()[0].1 >= 3.0);
        assert_eq!(phases.seconds()[1], ("indexes", 0.0));
    }
}
