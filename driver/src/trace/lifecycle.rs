//! Recorded pod lifecycles, by owner and pod-spec hash: what the webhook needs to give a simulated
//! pod its lifetime. SimKube records each owner's pods under the hash of their "stable" spec, so
//! pods of one owner with different specs (a Deployment before and after a rollout) keep their own
//! lifetimes; the hashes are kept here so the webhook can match a replayed pod to its recording.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// One recorded pod's life, as SimKube's `PodLifecycleData` (externally tagged; `Empty` is a bare string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodLifecycle {
    /// Recorded, but the pod never started.
    Empty,
    /// Started at the given Unix time and still running when the trace ended.
    Running(i64),
    /// Started and ended at the given Unix times.
    Finished(i64, i64),
}

impl PodLifecycle {
    /// Seconds between start and end when finished.
    pub fn duration_seconds(&self) -> Option<i64> {
        match *self {
            // Saturating: a parsed trace's timestamps are bounded, but this is public.
            PodLifecycle::Finished(start, end) => Some(end.saturating_sub(start)),
            PodLifecycle::Empty | PodLifecycle::Running(_) => None,
        }
    }
}

/// One owner's lifecycles: all of them in one list, and where each pod-spec hash's part lies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct OwnerLifecycles {
    /// By ascending pod-spec hash, then in recorded order.
    all: Vec<PodLifecycle>,
    /// (hash, its range in `all`), sorted by hash.
    by_hash: Vec<(u64, Range<usize>)>,
}

/// Lifecycles by owner GVK string, then owner "namespace/name"; nested maps so lookups need no allocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Lifecycles {
    by_owner: BTreeMap<String, BTreeMap<String, OwnerLifecycles>>,
}

impl Lifecycles {
    /// Records one owner's lifecycles by pod-spec hash. The owner's flat list is ordered by
    /// ascending hash so it never depends on the recorder's hash-map order.
    pub(crate) fn insert(&mut self, gvk: String, owner: String, by_hash: BTreeMap<u64, Vec<PodLifecycle>>) {
        let mut recorded = OwnerLifecycles::default();
        for (hash, list) in by_hash {
            let start = recorded.all.len();
            recorded.all.extend(list);
            recorded.by_hash.push((hash, start..recorded.all.len()));
        }
        self.by_owner.entry(gvk).or_default().insert(owner, recorded);
    }

    fn owner(&self, gvk: &str, owner: &str) -> Option<&OwnerLifecycles> {
        self.by_owner.get(gvk).and_then(|owners| owners.get(owner))
    }

    /// The owner's lifecycles over all hashes, empty when none were recorded.
    pub(crate) fn get(&self, gvk: &str, owner: &str) -> &[PodLifecycle] {
        self.owner(gvk, owner).map(|o| o.all.as_slice()).unwrap_or(&[])
    }

    /// The owner's lifecycles recorded under one pod-spec hash; None when the trace has none there.
    pub(crate) fn get_for_hash(&self, gvk: &str, owner: &str, hash: u64) -> Option<&[PodLifecycle]> {
        let recorded = self.owner(gvk, owner)?;
        let at = recorded.by_hash.binary_search_by_key(&hash, |(h, _)| *h).ok()?;
        let (_, range) = recorded.by_hash.get(at)?;
        recorded.all.get(range.clone())
    }

    /// The first recorded lifecycle with a timestamp outside `range`, with its owner's GVK and
    /// name: the replay subtracts and scales these, so they are checked before it starts.
    pub(crate) fn first_outside(&self, range: std::ops::RangeInclusive<i64>) -> Option<(&str, &str, PodLifecycle)> {
        self.by_owner.iter().find_map(|(gvk, owners)| {
            owners.iter().find_map(|(owner, recorded)| {
                recorded
                    .all
                    .iter()
                    .find(|l| match **l {
                        PodLifecycle::Empty => false,
                        PodLifecycle::Running(t) => !range.contains(&t),
                        PodLifecycle::Finished(a, b) => !range.contains(&a) || !range.contains(&b),
                    })
                    .map(|l| (gvk.as_str(), owner.as_str(), *l))
            })
        })
    }

    #[cfg(test)]
    /// Number of owners with recorded lifecycles.
    pub(crate) fn owner_count(&self) -> usize {
        self.by_owner.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_only_when_finished() {
        assert_eq!(PodLifecycle::Finished(10, 40).duration_seconds(), Some(30));
        assert_eq!(PodLifecycle::Running(10).duration_seconds(), None);
        assert_eq!(PodLifecycle::Empty.duration_seconds(), None);
        assert_eq!(PodLifecycle::Finished(i64::MIN, i64::MAX).duration_seconds(), Some(i64::MAX));
        assert_eq!(PodLifecycle::Finished(i64::MAX, i64::MIN).duration_seconds(), Some(i64::MIN));
    }

    #[test]
    fn flattened_by_ascending_hash_then_list_order() {
        let mut lifecycles = Lifecycles::default();
        let by_hash = BTreeMap::from([
            (9, vec![PodLifecycle::Running(5)]),
            (1, vec![PodLifecycle::Finished(1, 2), PodLifecycle::Empty]),
        ]);
        lifecycles.insert("v1.Pod".into(), "ns/a".into(), by_hash);
        assert_eq!(
            lifecycles.get("v1.Pod", "ns/a"),
            &[PodLifecycle::Finished(1, 2), PodLifecycle::Empty, PodLifecycle::Running(5)]
        );
        assert!(lifecycles.get("v1.Pod", "ns/b").is_empty());
        assert!(lifecycles.get("apps/v1.Deployment", "ns/a").is_empty());
        assert_eq!(lifecycles.owner_count(), 1);
    }

    #[test]
    fn each_hash_keeps_its_own_lifecycles() {
        let mut lifecycles = Lifecycles::default();
        let by_hash = BTreeMap::from([
            (u64::MAX, vec![PodLifecycle::Running(5)]),
            (1, vec![PodLifecycle::Finished(1, 2), PodLifecycle::Empty]),
            (7, vec![]),
        ]);
        lifecycles.insert("v1.Pod".into(), "ns/a".into(), by_hash);
        let get = |hash| lifecycles.get_for_hash("v1.Pod", "ns/a", hash);
        assert_eq!(get(1), Some(&[PodLifecycle::Finished(1, 2), PodLifecycle::Empty][..]));
        assert_eq!(get(u64::MAX), Some(&[PodLifecycle::Running(5)][..]));
        // Recorded with no lifecycles: known, but empty.
        assert_eq!(get(7), Some(&[][..]));
        assert_eq!(get(2), None);
        assert_eq!(lifecycles.get_for_hash("v1.Pod", "ns/b", 1), None);
        assert_eq!(lifecycles.get_for_hash("batch/v1.Job", "ns/a", 1), None);
        // A second record of the same owner replaces the first, hashes included.
        lifecycles.insert("v1.Pod".into(), "ns/a".into(), BTreeMap::from([(2, vec![PodLifecycle::Empty])]));
        assert_eq!(lifecycles.get_for_hash("v1.Pod", "ns/a", 1), None);
        assert_eq!(lifecycles.get_for_hash("v1.Pod", "ns/a", 2), Some(&[PodLifecycle::Empty][..]));
        assert_eq!(lifecycles.get("v1.Pod", "ns/a"), &[PodLifecycle::Empty]);
    }

    #[test]
    fn serde_shapes_match_simkube() {
        let json = r#"[{"Finished":[1,31]},{"Running":7},"Empty"]"#;
        let parsed: Vec<PodLifecycle> = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, vec![PodLifecycle::Finished(1, 31), PodLifecycle::Running(7), PodLifecycle::Empty]);
        let packed = rmp_serde::to_vec_named(&parsed).unwrap();
        assert_eq!(rmp_serde::from_slice::<Vec<PodLifecycle>>(&packed).unwrap(), parsed);
        // The unit variant is a bare string in msgpack, as SimKube writes it.
        assert!(packed.ends_with(b"\xa5Empty"));
    }
}
