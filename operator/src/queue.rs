//! The queue of Simulations waiting for the virtual nodes, as a pure decision over the
//! Simulations the API server holds. Nothing is kept in memory: a restarted operator reads the
//! same state and decides the same way.
//!
//! A Simulation holds a slot while its phase is Initializing or Running. The others that can run
//! (not finished, not being deleted, not suspended, not stalled) wait in order of creation
//! (then name); the first ones start while fewer than `max_active` slots are held.

use k8s_openapi::jiff::Timestamp;
use rehearsal_crds::conditions::{self, STALLED};
use rehearsal_crds::{Phase, Simulation};

/// One Simulation as the queue sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Name.
    pub name: String,
    /// Creation time (unset sorts first, as the API server always sets it).
    pub created: Option<Timestamp>,
    /// Holds a slot.
    pub active: bool,
    /// Wants a slot.
    pub waiting: bool,
}

impl Entry {
    /// How the queue sees `sim`.
    pub fn of(sim: &Simulation) -> Entry {
        let status = sim.status.as_ref();
        let phase = status.and_then(|s| s.phase).unwrap_or_default();
        let stalled = status.and_then(|s| conditions::find(&s.conditions, STALLED)).is_some_and(|c| c.status == "True");
        let deleting = sim.metadata.deletion_timestamp.is_some();
        let active = matches!(phase, Phase::Initializing | Phase::Running);
        let finished = matches!(phase, Phase::Succeeded | Phase::Failed);
        Entry {
            name: sim.metadata.name.clone().unwrap_or_default(),
            created: sim.metadata.creation_timestamp.as_ref().map(|t| t.0),
            active,
            waiting: !active && !finished && !deleting && !sim.spec.suspend && !stalled,
        }
    }
}

/// What a Simulation may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take a slot and start.
    Start,
    /// Wait: `position` among the waiting (1 = next), behind `ahead` (a Simulation that holds a
    /// slot, or that waits before this one).
    Wait {
        /// 1-based place in the queue.
        position: usize,
        /// Name of the Simulation ahead.
        ahead: String,
    },
}

/// Decides for `me` given every Simulation (including `me`, counted as waiting).
pub fn decide(me: &str, entries: &[Entry], max_active: usize) -> Decision {
    let active: Vec<&Entry> = entries.iter().filter(|e| e.active && e.name != me).collect();
    let mut waiting: Vec<&Entry> = entries.iter().filter(|e| e.waiting || e.name == me).collect();
    waiting.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    waiting.dedup_by(|a, b| a.name == b.name);
    let position = waiting.iter().position(|e| e.name == me).unwrap_or(0);
    let free = max_active.saturating_sub(active.len());
    if position < free {
        return Decision::Start;
    }
    // Name the one this Simulation waits for: the one just ahead in the queue, else the
    // oldest one running.
    let ahead = match position.checked_sub(1).and_then(|p| waiting.get(p)) {
        Some(e) if position >= free && free > 0 => e.name.clone(),
        _ => active
            .iter()
            .min_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
            .map_or_else(|| waiting.first().map(|e| e.name.clone()).unwrap_or_default(), |e| e.name.clone()),
    };
    Decision::Wait { position: position + 1, ahead }
}

/// Number of Simulations waiting for a slot.
pub fn length(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| e.waiting).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, secs: i64, active: bool, waiting: bool) -> Entry {
        Entry { name: name.into(), created: Timestamp::from_second(secs).ok(), active, waiting }
    }

    #[test]
    fn first_come_first_served() {
        let all = [e("a", 1, true, false), e("b", 2, false, true), e("c", 3, false, true)];
        assert_eq!(decide("b", &all, 1), Decision::Wait { position: 1, ahead: "a".into() });
        assert_eq!(decide("c", &all, 1), Decision::Wait { position: 2, ahead: "a".into() });
        assert_eq!(decide("b", &all, 2), Decision::Start);
        assert_eq!(decide("c", &all, 2), Decision::Wait { position: 2, ahead: "b".into() });
        assert_eq!(decide("c", &all, 3), Decision::Start);
        assert_eq!(length(&all), 2);
    }

    #[test]
    fn a_slot_frees_when_the_active_one_finishes() {
        let all = [e("a", 1, false, false), e("b", 2, false, true), e("c", 3, false, true)];
        assert_eq!(decide("b", &all, 1), Decision::Start);
        assert_eq!(decide("c", &all, 1), Decision::Wait { position: 2, ahead: "b".into() });
    }

    #[test]
    fn ties_on_creation_time_go_by_name_and_an_older_newcomer_goes_first() {
        let all = [e("y", 5, false, true), e("x", 5, false, true)];
        assert_eq!(decide("x", &all, 1), Decision::Start);
        assert_eq!(decide("y", &all, 1), Decision::Wait { position: 2, ahead: "x".into() });
        // `me` counts as waiting even before its own status says so.
        let all = [e("old", 1, false, false), e("new", 9, false, true)];
        assert_eq!(decide("old", &all, 1), Decision::Start);
    }
}
