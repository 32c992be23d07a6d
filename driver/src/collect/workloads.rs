//! `workloads.jsonl`: the replica counts (desired, ready, available) of Deployments,
//! ReplicaSets, StatefulSets and Jobs, written when first seen, whenever one of the three
//! changes, and at deletion (with the last counts). Status-only churn that leaves the three
//! counts alone (observedGeneration, conditions) writes nothing.

use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::Resource;

use super::view::WorkloadView;

use super::records::WorkloadRecord;
use super::watch::{Diff, Seen};

/// The three counts of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Replicas asked for.
    pub desired: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Available replicas.
    pub available: i32,
}

/// A kind with replica counts, watched through [`WorkloadView`].
pub trait Workload: k8s_openapi::Resource {}

impl Workload for Deployment {}
impl Workload for ReplicaSet {}
impl Workload for StatefulSet {}
impl Workload for Job {}

impl<K: Workload> WorkloadView<K> {
    /// Its counts now. Jobs count differently: desired is `spec.parallelism`, ready the ready
    /// pods, available the succeeded ones.
    pub fn counts(&self) -> Counts {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let job = <K as k8s_openapi::Resource>::KIND == <Job as k8s_openapi::Resource>::KIND;
        // The API server defaults spec.replicas and spec.parallelism to 1.
        let desired = if job { spec.and_then(|s| s.parallelism) } else { spec.and_then(|s| s.replicas) };
        let (ready, available) = if job {
            (status.and_then(|s| s.ready), status.and_then(|s| s.succeeded))
        } else {
            (status.and_then(|s| s.ready_replicas), status.and_then(|s| s.available_replicas))
        };
        Counts { desired: desired.unwrap_or(1), ready: ready.unwrap_or(0), available: available.unwrap_or(0) }
    }
}

/// What is remembered of a live workload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadState {
    namespace: String,
    name: String,
    counts: Counts,
}

/// The diff of one workload kind.
pub struct Workloads<K>(PhantomData<fn() -> K>);

impl<K> Default for Workloads<K> {
    fn default() -> Self {
        Workloads(PhantomData)
    }
}

impl<K: Workload> Diff for Workloads<K> {
    type Object = WorkloadView<K>;
    type State = WorkloadState;
    type Record = WorkloadRecord;

    fn observe(
        &self,
        old: Option<WorkloadState>,
        obj: &WorkloadView<K>,
        _seen: Seen,
        t: &str,
    ) -> (WorkloadState, Vec<WorkloadRecord>) {
        let meta = obj.meta();
        let state = WorkloadState {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            counts: obj.counts(),
        };
        let records = if old.is_some_and(|o| o.counts == state.counts) {
            Vec::new()
        } else {
            vec![record::<K>(&state, t, false)]
        };
        (state, records)
    }

    fn gone(&self, last: WorkloadState, _seen: Seen, t: &str) -> Vec<WorkloadRecord> {
        vec![record::<K>(&last, t, true)]
    }
}

fn record<K: Workload>(state: &WorkloadState, t: &str, deleted: bool) -> WorkloadRecord {
    WorkloadRecord {
        t: t.to_string(),
        kind: <K as k8s_openapi::Resource>::KIND.to_string(),
        namespace: state.namespace.clone(),
        name: state.name.clone(),
        desired: state.counts.desired,
        ready: state.counts.ready,
        available: state.counts.available,
        deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::view::{self, WorkloadView};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus, StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("w".into()),
            ..Default::default()
        }
    }

    fn deployment(desired: i32, ready: i32, available: i32, observed: i64) -> Deployment {
        Deployment {
            metadata: meta(),
            spec: Some(DeploymentSpec { replicas: Some(desired), ..Default::default() }),
            status: Some(DeploymentStatus {
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                observed_generation: Some(observed),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_deployment_is_written_when_its_counts_change_and_when_it_goes() {
        let diff = Workloads::<Deployment>::default();
        let versions = [
            deployment(0, 0, 0, 1),
            deployment(3, 0, 0, 1),
            deployment(3, 0, 0, 2),
            deployment(3, 2, 1, 2),
            deployment(3, 3, 3, 2),
            deployment(3, 3, 3, 3),
        ];
        let mut state = None;
        let mut written = Vec::new();
        for v in &versions {
            let (s, records) = diff.observe(state.take(), &view::of(v), Seen::Watch, "t");
            state = Some(s);
            written.extend(records.into_iter().map(|r| (r.desired, r.ready, r.available)));
        }
        assert_eq!(written, [(0, 0, 0), (3, 0, 0), (3, 2, 1), (3, 3, 3)]);
        let gone = diff.gone(state.unwrap(), Seen::Watch, "t");
        assert_eq!(
            serde_json::to_string(&gone[0]).unwrap(),
            r#"{"t":"t","kind":"Deployment","namespace":"ns","name":"web","desired":3,"ready":3,"available":3,"deleted":true}"#
        );
    }

    #[test]
    fn each_kind_counts_its_own_way() {
        let mut d = deployment(1, 0, 0, 1);
        d.spec.as_mut().unwrap().replicas = None;
        d.status = None;
        assert_eq!(view::of::<WorkloadView<Deployment>>(&d).counts(), Counts { desired: 1, ready: 0, available: 0 });
        let sts = StatefulSet {
            metadata: meta(),
            spec: Some(StatefulSetSpec { replicas: Some(4), ..Default::default() }),
            status: Some(StatefulSetStatus {
                ready_replicas: Some(2),
                available_replicas: Some(1),
                ..Default::default()
            }),
        };
        assert_eq!(view::of::<WorkloadView<StatefulSet>>(&sts).counts(), Counts { desired: 4, ready: 2, available: 1 });
        let job = Job {
            metadata: meta(),
            spec: Some(JobSpec { parallelism: Some(5), ..Default::default() }),
            status: Some(JobStatus { ready: Some(3), succeeded: Some(2), active: Some(3), ..Default::default() }),
        };
        assert_eq!(view::of::<WorkloadView<Job>>(&job).counts(), Counts { desired: 5, ready: 3, available: 2 });
        let (_, records) = Workloads::<Job>::default().observe(None, &view::of(&job), Seen::FirstList, "t");
        assert_eq!((records[0].kind.as_str(), records[0].deleted), ("Job", false));
        let rs = ReplicaSet { metadata: meta(), ..Default::default() };
        let (_, records) = Workloads::<ReplicaSet>::default().observe(None, &view::of(&rs), Seen::Relist, "t");
        assert_eq!((records[0].kind.as_str(), records[0].desired), ("ReplicaSet", 1));
    }
}
