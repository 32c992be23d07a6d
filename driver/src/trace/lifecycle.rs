//! Recorded pod lifecycles, by owner: what the webhook needs to give a simulated pod its lifetime.

use std::collections::BTreeMap;

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

/// Lifecycles by owner GVK string, then owner "namespace/name"; nested maps so lookups need no allocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Lifecycles {
    by_owner: BTreeMap<String, BTreeMap<String, Vec<PodLifecycle>>>,
}

impl Lifecycles {
    /// Records one owner's lifecycles, flattened by ascending pod-spec hash so the order never depends on
    /// the recorder's hash-map order.
    pub(crate) fn insert(&mut self, gvk: String, owner: String, by_hash: BTreeMap<u64, Vec<PodLifecycle>>) {
        let flat: Vec<PodLifecycle> = by_hash.into_values().flatten().collect();
        self.by_owner.entry(gvk).or_default().insert(owner, flat);
    }

    /// The owner's lifecycles, empty when none were recorded.
    pub(crate) fn get(&self, gvk: &str, owner: &str) -> &[PodLifecycle] {
        self.by_owner.get(gvk).and_then(|owners| owners.get(owner)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first recorded lifecycle with a timestamp outside `range`, with its owner's GVK and
    /// name: the replay subtracts and scales these, so they are checked before it starts.
    pub(crate) fn first_outside(&self, range: std::ops::RangeInclusive<i64>) -> Option<(&str, &str, PodLifecycle)> {
        self.by_owner.iter().find_map(|(gvk, owners)| {
            owners.iter().find_map(|(owner, list)| {
                list.iter()
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
