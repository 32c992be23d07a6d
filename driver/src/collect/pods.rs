//! `pods.jsonl`: each pod's life as records (see [`PodChange`]), from what changed between two
//! versions of the pod. Latencies are computed from the API server's times (`at`), as
//! kube-burner does; `t` shows when the watch learned of it.
//!
//! Evictions have no change kind of their own: the `DisruptionTarget` condition (eviction API,
//! preemption, taint manager, kubelet) is written as a `condition` record with its `reason`, a
//! kubelet eviction as the `phase` Failed record with `reason` Evicted, and `deleting` carries the
//! DisruptionTarget reason when there is one.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, PodCondition};

use super::records::{PodChange, PodRecord};
use super::time;
use super::view::{ContainerStatusView, PodView};
use super::watch::{Diff, Seen};

/// Conditions whose first True is written, in the order a pod usually reaches them.
pub const CONDITIONS: [&str; 6] =
    ["PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "DisruptionTarget"];

/// What is remembered of a live pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodState {
    namespace: String,
    name: String,
    uid: String,
    /// Bound to a node (written).
    scheduled: bool,
    /// Bit i: `CONDITIONS[i]` has been True (written).
    conditions: u8,
    phase: Option<String>,
    deleting: bool,
    /// Per container: the index of its next termination not written yet (its n-th
    /// termination is `state.terminated` while restartCount is n, then `lastState.terminated`).
    terminations: Vec<(String, i32)>,
}

/// The pod collector's diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pods;

impl Diff for Pods {
    type Object = PodView;
    type State = PodState;
    type Record = PodRecord;

    fn observe(&self, old: Option<PodState>, pod: &PodView, seen: Seen, t: &str) -> (PodState, Vec<PodRecord>) {
        let meta = &pod.metadata;
        let mut records = Vec::new();
        let mut state = match old {
            Some(state) => state,
            None => {
                let state = PodState {
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    uid: meta.uid.clone().unwrap_or_default(),
                    ..Default::default()
                };
                let mut r = record(&state, t, PodChange::Created);
                r.owner = owner(pod);
                r.at = meta.creation_timestamp.as_ref().map(time::at);
                records.push(r);
                state
            }
        };
        let status = pod.status.as_ref();
        let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();

        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
        if let Some(node) = node
            && !state.scheduled
        {
            state.scheduled = true;
            let mut r = record(&state, t, PodChange::Scheduled);
            r.node = Some(node.to_string());
            r.at =
                true_condition(conditions, "PodScheduled").and_then(|c| c.last_transition_time.as_ref()).map(time::at);
            records.push(r);
        }

        for (i, kind) in CONDITIONS.iter().enumerate() {
            let bit = 1u8 << i;
            if state.conditions & bit != 0 {
                continue;
            }
            if let Some(c) = true_condition(conditions, kind) {
                state.conditions |= bit;
                let mut r = record(&state, t, PodChange::Condition);
                r.condition = Some((*kind).to_string());
                r.at = c.last_transition_time.as_ref().map(time::at);
                if *kind == "DisruptionTarget" {
                    r.reason = c.reason.clone();
                }
                records.push(r);
            }
        }

        let phase = status.and_then(|s| s.phase.clone());
        if phase.is_some() && phase != state.phase {
            let mut r = record(&state, t, PodChange::Phase);
            r.phase = phase.clone();
            r.reason = status.and_then(|s| s.reason.clone()).filter(|r| !r.is_empty());
            records.push(r);
            state.phase = phase;
        }

        let containers = status
            .into_iter()
            .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()));
        for cs in containers {
            for term in new_terminations(&mut state.terminations, cs) {
                let mut r = record(&state, t, PodChange::Terminated);
                r.reason = term.reason.clone();
                r.exit_code = Some(term.exit_code);
                r.at = term.finished_at.as_ref().map(time::at);
                records.push(r);
            }
        }

        if let Some(deletion) = &meta.deletion_timestamp
            && !state.deleting
        {
            state.deleting = true;
            let mut r = record(&state, t, PodChange::Deleting);
            r.at = Some(time::at(deletion));
            r.reason = true_condition(conditions, "DisruptionTarget").and_then(|c| c.reason.clone());
            records.push(r);
        }
        if seen == Seen::Relist {
            records.iter_mut().for_each(|r| r.relisted = true);
        }
        (state, records)
    }

    fn gone(&self, last: PodState, seen: Seen, t: &str) -> Vec<PodRecord> {
        let mut r = record(&last, t, PodChange::Deleted);
        r.relisted = seen == Seen::Relist;
        vec![r]
    }
}

/// A record of `change` with the pod's identity and nothing else.
fn record(state: &PodState, t: &str, change: PodChange) -> PodRecord {
    PodRecord {
        t: t.to_string(),
        change,
        namespace: state.namespace.clone(),
        name: state.name.clone(),
        uid: state.uid.clone(),
        owner: None,
        at: None,
        node: None,
        condition: None,
        phase: None,
        reason: None,
        exit_code: None,
        relisted: false,
    }
}

/// `Kind/name` of the pod's controller.
fn owner(pod: &PodView) -> Option<String> {
    let refs = pod.metadata.owner_references.as_deref().unwrap_or_default();
    refs.iter().find(|o| o.controller == Some(true)).map(|o| format!("{}/{}", o.kind, o.name))
}

/// The condition `kind` when it is True.
fn true_condition<'a>(conditions: &'a [PodCondition], kind: &str) -> Option<&'a PodCondition> {
    conditions.iter().find(|c| c.type_ == kind && c.status == "True")
}

/// The terminations of a container not written yet, oldest first; moves its index on.
fn new_terminations<'a>(
    next: &mut Vec<(String, i32)>,
    cs: &'a ContainerStatusView,
) -> Vec<&'a ContainerStateTerminated> {
    let slot = match next.iter().position(|(name, _)| *name == cs.name) {
        Some(i) => i,
        None => {
            next.push((cs.name.clone(), 0));
            next.len().saturating_sub(1)
        }
    };
    let Some((_, next_index)) = next.get_mut(slot) else { return Vec::new() };
    let restarts = cs.restart_count.max(0);
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| (restarts.checked_sub(1), t));
    let current = cs.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| (Some(restarts), t));
    let mut out = Vec::new();
    for (index, term) in [last, current].into_iter().flatten() {
        if let Some(index) = index.filter(|i| *i >= 0 && *i >= *next_index) {
            out.push(term);
            *next_index = index.saturating_add(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::view;
    use k8s_openapi::api::core::v1::{ContainerState, PodSpec, PodStatus};
    use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use k8s_openapi::jiff::Timestamp;

    fn ts(s: i64) -> Time {
        Time(Timestamp::from_second(1_796_205_600 + s).unwrap())
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                creation_timestamp: Some(ts(0)),
                owner_references: Some(vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web-abc".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus { phase: Some("Pending".into()), ..Default::default() }),
        }
    }

    fn condition(kind: &str, status: &str, at: i64) -> PodCondition {
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            last_transition_time: Some(ts(at)),
            ..Default::default()
        }
    }

    fn scheduled(mut p: Pod) -> Pod {
        p.spec.get_or_insert_default().node_name = Some("kwok-node-0".into());
        p.status.get_or_insert_default().conditions.get_or_insert_default().push(condition("PodScheduled", "True", 1));
        p
    }

    fn running(mut p: Pod) -> Pod {
        let status = p.status.get_or_insert_default();
        status.phase = Some("Running".into());
        let conditions = status.conditions.get_or_insert_default();
        for (kind, at) in [("PodReadyToStartContainers", 2), ("Initialized", 2), ("ContainersReady", 3), ("Ready", 3)] {
            conditions.push(condition(kind, "True", at));
        }
        p
    }

    fn with_container(mut p: Pod, restarts: i32, last: Option<(i32, &str)>, current: Option<(i32, &str)>) -> Pod {
        let term = |(code, reason): (i32, &str)| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                finished_at: Some(ts(10)),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.status.get_or_insert_default().container_statuses = Some(vec![ContainerStatus {
            name: "main".into(),
            restart_count: restarts,
            last_state: last.map(term),
            state: current.map(term),
            ..Default::default()
        }]);
        p
    }

    /// (change, detail) of each record, for short assertions.
    fn summary(records: &[PodRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                let detail = [&r.node, &r.condition, &r.phase, &r.reason, &r.exit_code.map(|c| c.to_string())]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("{:?} {detail}", r.change).trim_end().to_string()
            })
            .collect()
    }

    /// Feeds versions of a pod one after the other; the records of each.
    fn versions(pods: &[Pod]) -> (PodState, Vec<Vec<PodRecord>>) {
        let mut state = None;
        let mut out = Vec::new();
        for p in pods {
            let (s, records) = Pods.observe(state.take(), &view::of(p), Seen::Watch, "t");
            state = Some(s);
            out.push(records);
        }
        (state.unwrap(), out)
    }

    #[test]
    fn a_pods_life_is_written_once_per_change() {
        let created = pod();
        let bound = scheduled(pod());
        let up = running(scheduled(pod()));
        let mut ending = with_container(up.clone(), 0, None, Some((0, "Completed")));
        ending.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut deleting = ending.clone();
        deleting.metadata.deletion_timestamp = Some(ts(20));
        let (state, records) =
            versions(&[created.clone(), bound.clone(), bound, up.clone(), up, ending, deleting.clone(), deleting]);
        assert_eq!(summary(&records[0]), ["Created", "Phase Pending"]);
        assert_eq!(records[0][0].owner.as_deref(), Some("ReplicaSet/web-abc"));
        assert_eq!(records[0][0].at.as_deref(), Some("2026-12-02T10:00:00Z"));
        assert_eq!(records[0][0].uid, "u1");
        assert_eq!(summary(&records[1]), ["Scheduled kwok-node-0", "Condition PodScheduled"]);
        assert_eq!(records[1][0].at.as_deref(), Some("2026-12-02T10:00:01Z"));
        assert!(records[2].is_empty(), "same version, nothing new");
        assert_eq!(
            summary(&records[3]),
            [
                "Condition PodReadyToStartContainers",
                "Condition Initialized",
                "Condition ContainersReady",
                "Condition Ready",
                "Phase Running"
            ]
        );
        assert_eq!(records[3][3].at.as_deref(), Some("2026-12-02T10:00:03Z"));
        assert!(records[4].is_empty());
        assert_eq!(summary(&records[5]), ["Phase Succeeded", "Terminated Completed 0"]);
        assert_eq!(records[5][1].at.as_deref(), Some("2026-12-02T10:00:10Z"));
        assert_eq!(summary(&records[6]), ["Deleting"]);
        assert_eq!(records[6][0].at.as_deref(), Some("2026-12-02T10:00:20Z"));
        assert!(records[7].is_empty());
        let gone = Pods.gone(state, Seen::Watch, "t2");
        assert_eq!(summary(&gone), ["Deleted"]);
        assert_eq!((gone[0].name.as_str(), gone[0].namespace.as_str(), gone[0].t.as_str()), ("web-1", "ns", "t2"));
    }

    #[test]
    fn a_pod_first_seen_late_gets_everything_it_already_went_through() {
        let (_, records) = versions(&[running(scheduled(pod()))]);
        assert_eq!(
            summary(&records[0]),
            [
                "Created",
                "Scheduled kwok-node-0",
                "Condition PodScheduled",
                "Condition PodReadyToStartContainers",
                "Condition Initialized",
                "Condition ContainersReady",
                "Condition Ready",
                "Phase Running"
            ]
        );
    }

    /// What a list after a lost watch finds is marked: its `t` is the list's, not the change's.
    #[test]
    fn records_a_relist_finds_are_marked_relisted() {
        let (state, _) = versions(&[scheduled(pod())]);
        let (state, records) = Pods.observe(Some(state), &view::of(&running(scheduled(pod()))), Seen::Relist, "t1");
        assert_eq!(records.len(), 5, "{records:?}");
        assert!(records.iter().all(|r| r.relisted), "{records:?}");
        assert!(Pods.gone(state.clone(), Seen::Relist, "t2")[0].relisted);
        assert!(!Pods.gone(state, Seen::Watch, "t2")[0].relisted);
        let (_, first) = Pods.observe(None, &view::of(&pod()), Seen::FirstList, "t0");
        assert!(first.iter().all(|r| !r.relisted), "the first list is not a relist");
        let line = serde_json::to_string(&first[0]).unwrap_or_default();
        assert!(!line.contains("relisted"), "false is left out: {line}");
    }

    #[test]
    fn only_the_first_true_of_a_condition_is_written() {
        let up = running(scheduled(pod()));
        let mut unready = up.clone();
        for c in unready.status.as_mut().unwrap().conditions.as_mut().unwrap() {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        let (_, records) = versions(&[up.clone(), unready, up]);
        assert!(records[1].is_empty() && records[2].is_empty(), "{records:?}");
    }

    #[test]
    fn restarts_write_each_termination_once() {
        let up = running(scheduled(pod()));
        let (_, records) = versions(&[
            with_container(up.clone(), 0, None, Some((1, "Error"))),
            // Back-off: the same termination moved to lastState, before or after the count.
            with_container(up.clone(), 0, Some((1, "Error")), None),
            with_container(up.clone(), 1, Some((1, "Error")), None),
            // Second crash, then third while the watch was away (only the last is visible).
            with_container(up.clone(), 1, Some((1, "Error")), Some((137, "OOMKilled"))),
            with_container(up.clone(), 3, Some((2, "Error")), None),
            with_container(up, 3, Some((2, "Error")), None),
        ]);
        let terminations: Vec<Vec<String>> = records[..].iter().map(|r| summary(r)).skip(1).collect();
        assert_eq!(summary(&records[0]).last().unwrap(), "Terminated Error 1");
        assert_eq!(
            terminations,
            [
                vec![],
                vec![],
                vec!["Terminated OOMKilled 137".to_string()],
                vec!["Terminated Error 2".to_string()],
                vec![]
            ]
        );
    }

    #[test]
    fn evictions_say_why() {
        let up = running(scheduled(pod()));
        let mut evicted = up.clone();
        let mut target = condition("DisruptionTarget", "True", 5);
        target.reason = Some("EvictionByEvictionAPI".into());
        evicted.status.as_mut().unwrap().conditions.as_mut().unwrap().push(target);
        evicted.metadata.deletion_timestamp = Some(ts(5));
        let mut kubelet = up.clone();
        kubelet.status.as_mut().unwrap().phase = Some("Failed".into());
        kubelet.status.as_mut().unwrap().reason = Some("Evicted".into());
        let (_, by_api) = versions(&[up.clone(), evicted]);
        assert_eq!(
            summary(&by_api[1]),
            ["Condition DisruptionTarget EvictionByEvictionAPI", "Deleting EvictionByEvictionAPI"]
        );
        let (_, by_kubelet) = versions(&[up, kubelet]);
        assert_eq!(summary(&by_kubelet[1]), ["Phase Failed Evicted"]);
    }

    #[test]
    fn a_pod_deleted_while_the_watch_was_down_is_deleted_and_nothing_else_repeats() {
        use crate::collect::watch::Tracker;
        use kube::runtime::watcher::Event;
        let mut tracker = Tracker::new(Pods, |_: &PodView| true);
        let mut other = running(scheduled(pod()));
        other.metadata.name = Some("web-2".into());
        other.metadata.uid = Some("u2".into());
        let mut all = Vec::new();
        for event in [
            Event::Init,
            Event::InitApply(view::of(&running(scheduled(pod())))),
            Event::InitApply(view::of(&other)),
            Event::InitDone,
            // The watch is lost; web-1 is deleted meanwhile, web-2 unchanged.
            Event::Init,
            Event::InitApply(view::of(&other)),
            Event::InitDone,
        ] {
            all.extend(tracker.handle(event, "t").0);
        }
        let of =
            |name: &str| all.iter().filter(|r| r.name == name).map(|r| format!("{:?}", r.change)).collect::<Vec<_>>();
        let life = ["Created", "Scheduled", "Condition", "Condition", "Condition", "Condition", "Condition", "Phase"];
        assert_eq!(of("web-2"), life);
        let mut deleted = life.to_vec();
        deleted.push("Deleted");
        assert_eq!(of("web-1"), deleted);
        assert_eq!(all.last().map(|r| r.uid.as_str()), Some("u1"));
    }

    #[test]
    fn a_pod_without_status_or_owner_is_still_created() {
        let mut bare = pod();
        bare.status = None;
        bare.metadata.owner_references = None;
        let (state, records) = versions(&[bare]);
        assert_eq!(summary(&records[0]), ["Created"]);
        assert_eq!(records[0][0].owner, None);
        assert_eq!(state.phase, None);
    }

    #[test]
    fn records_serialize_without_fields_that_do_not_apply() {
        let (_, records) = versions(&[scheduled(pod())]);
        let line = serde_json::to_string(&records[0][1]).unwrap();
        assert_eq!(
            line,
            r#"{"t":"t","change":"scheduled","namespace":"ns","name":"web-1","uid":"u1","at":"2026-12-02T10:00:01Z","node":"kwok-node-0"}"#
        );
    }
}
