//! The `/mutate` admission webhook: pins the run's pods to the virtual nodes and gives them
//! their recorded lifetimes. It is only called for pods of the run's virtual namespaces, so a
//! pod there that does not belong to the current run (a leftover controller of another run, a
//! pod made before the run started) is denied rather than let through to a real node.
//! Dry-run requests get the same answer but change no state (`sideEffects: NoneOnDryRun`).

pub mod mutate;
pub mod owners;
pub mod register;
pub mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use self::mutate::{Mutation, patch_for};
use self::owners::{ObjectLookup, TraceObject, trace_owner};

/// Recorded pod lifetimes of the trace objects.
pub trait Lifetimes: Send + Sync {
    /// Seconds (already divided by the speed) the `n`-th pod of `owner` lives once running;
    /// None when the trace has no finished lifecycle for it.
    fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64>;
}

impl Lifetimes for HashMap<TraceObject, Vec<Option<f64>>> {
    fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64> {
        self.get(owner).and_then(|l| l.get(n)).copied().flatten()
    }
}

/// What the webhook knows of the run once its root exists and its trace is read.
#[derive(Clone)]
pub struct RunInfo {
    /// UID of the run's SimulationRoot.
    pub root_uid: String,
    /// Where lifetimes come from.
    pub lifetimes: Arc<dyn Lifetimes>,
}

/// Shared state of the webhook.
pub struct State<L> {
    simulation: String,
    prefix: String,
    lookup: L,
    run: RwLock<Option<RunInfo>>,
    /// Pods seen per trace object: the n-th pod gets the n-th recorded lifetime.
    seen: Mutex<HashMap<TraceObject, usize>>,
    /// What each owner (by UID) resolved to, so the pods of one ReplicaSet or Job cost one walk.
    /// Bounded: cleared when it reaches [`MAX_CACHED_OWNERS`] (it is only a cache).
    by_owner: Mutex<HashMap<String, Option<TraceObject>>>,
}

/// Most owners remembered by the owner cache before it starts over.
pub const MAX_CACHED_OWNERS: usize = 50_000;

/// Why a review could not be answered (answered with HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not an AdmissionReview.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
}

impl<L: ObjectLookup> State<L> {
    /// State for the run of `simulation`, whose namespaces start with `prefix-`.
    pub fn new(simulation: &str, prefix: &str, lookup: L) -> Self {
        State {
            simulation: simulation.to_string(),
            prefix: prefix.to_string(),
            lookup,
            run: RwLock::new(None),
            seen: Mutex::new(HashMap::new()),
            by_owner: Mutex::new(HashMap::new()),
        }
    }

    /// Starts mutating the pods of this run (until then, every pod is left alone).
    pub fn set_run(&self, info: RunInfo) {
        if let Ok(mut run) = self.run.write() {
            *run = Some(info);
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
        if let Ok(mut by_owner) = self.by_owner.lock() {
            by_owner.clear();
        }
    }

    /// The lifetime of the next pod of `owner`; a dry run sees it without taking it, so dry runs
    /// do not shift the lifetimes of the pods created after them.
    fn next_lifetime(&self, owner: &TraceObject, run: &RunInfo, dry_run: bool) -> Option<f64> {
        let mut seen = self.seen.lock().ok()?;
        let n = seen.entry(owner.clone()).or_insert(0);
        let lifetime = run.lifetimes.lifetime(owner, *n);
        if !dry_run {
            *n = n.saturating_add(1);
        }
        lifetime
    }

    /// Answers one AdmissionReview (the request body) with a review to send back.
    pub async fn review(&self, body: &[u8]) -> Result<AdmissionReview<DynamicObject>, ReviewError> {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        let req: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| ReviewError::Malformed("the review has no request".to_string()))?;
        let response = AdmissionResponse::from(&req);
        let (Some(obj), Operation::Create) = (req.object.as_ref(), &req.operation) else {
            return Ok(response.into_review());
        };
        if req.kind.kind != "Pod" {
            return Ok(response.into_review());
        }
        let Some(run) = self.run.read().ok().and_then(|r| r.clone()) else {
            return Ok(response
                .deny(format!(
                    "rehearsal webhook of simulation {}: the run has not started; no pod may be created in its namespaces yet",
                    self.simulation
                ))
                .into_review());
        };
        let pod = serde_json::to_value(obj).unwrap_or(Value::Null);
        let namespace = req.namespace.clone().unwrap_or_default();
        // Pods owned by the root itself are trace objects; other pods share their owner's answer.
        let owner_uid = pod
            .pointer("/metadata/ownerReferences/0/uid")
            .and_then(Value::as_str)
            .filter(|uid| *uid != run.root_uid)
            .map(str::to_string);
        let cached = owner_uid.as_ref().and_then(|uid| self.by_owner.lock().ok()?.get(uid).cloned());
        let resolved = match cached {
            Some(hit) => Ok(hit),
            None => {
                let found = trace_owner(&self.lookup, &namespace, &self.prefix, &pod, &run.root_uid).await;
                if let (Some(uid), Ok(found)) = (&owner_uid, &found)
                    && let Ok(mut m) = self.by_owner.lock()
                {
                    if m.len() >= MAX_CACHED_OWNERS {
                        m.clear();
                    }
                    m.insert(uid.clone(), found.clone());
                }
                found
            }
        };
        let owner = match resolved {
            Ok(Some(owner)) => owner,
            // In the run's namespaces but not made from this run's objects: never let it reach a
            // real node.
            Ok(None) => {
                let name = pod.pointer("/metadata/name").or_else(|| pod.pointer("/metadata/generateName"));
                tracing::warn!(%namespace, pod = ?name, "a pod that is not of this run; denying it");
                return Ok(response
                    .deny(format!(
                        "rehearsal webhook of simulation {}: this pod does not belong to the current run (its owners do not lead to SimulationRoot uid {}); pods in the run's namespaces must come from the run",
                        self.simulation, run.root_uid
                    ))
                    .into_review());
            }
            // Allowing the pod unchanged would let it land on a real node; deny so the
            // controller that made it retries.
            Err(e) => {
                tracing::warn!(%namespace, error = %e, "cannot resolve the owners of a pod; denying it for a retry");
                return Ok(response
                    .deny(format!("rehearsal webhook cannot resolve the pod's owners: {e}"))
                    .into_review());
            }
        };
        let lifetime = self.next_lifetime(&owner, &run, req.dry_run);
        let ops = patch_for(&pod, &Mutation { simulation: &self.simulation, lifetime_seconds: lifetime });
        tracing::debug!(%namespace, owner = %owner.owner, ?lifetime, "mutating pod");
        match response.clone().with_patch(json_patch::Patch(ops)) {
            Ok(r) => Ok(r.into_review()),
            Err(e) => Ok(response.deny(format!("rehearsal webhook cannot encode its patch: {e}")).into_review()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A lookup that finds nothing (shared by the webhook's tests).
    pub(crate) struct NoLookup;
    impl ObjectLookup for NoLookup {
        async fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Result<Option<Value>, kube::Error> {
            Ok(None)
        }
    }

    fn review(pod: Value, operation: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "virtual-testing", "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:job-controller"},
                "object": pod, "dryRun": false
            }
        }))
        .expect("review literal")
    }

    fn bare_pod(name: &str, root: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "virtual-testing",
            "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": root}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    }

    fn state() -> State<NoLookup> {
        let s = State::new("sim-a", "virtual", NoLookup);
        let key = TraceObject { gvk: "v1.Pod".into(), owner: "testing/p".into() };
        let lifetimes: HashMap<TraceObject, Vec<Option<f64>>> = HashMap::from([(key, vec![Some(3.0), None])]);
        s.set_run(RunInfo { root_uid: "root".into(), lifetimes: Arc::new(lifetimes) });
        s
    }

    fn patch_of(review: &AdmissionReview<DynamicObject>) -> Option<Value> {
        let resp = serde_json::to_value(review).expect("review serialises");
        assert_eq!(resp["response"]["uid"], "u-1");
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
        // kube writes the patch bytes as a JSON array of numbers, which the API server's
        // decoder accepts for a []byte field just like base64.
        let bytes: Option<Vec<u8>> = serde_json::from_value(resp["response"]["patch"].clone()).ok();
        bytes.map(|b| serde_json::from_slice(&b).expect("patch is JSON"))
    }

    #[tokio::test]
    async fn run_pods_get_patched_with_their_lifetimes_in_order() {
        let s = state();
        let first = s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review");
        let patch = patch_of(&first).expect("first pod patched");
        assert!(patch.to_string().contains("simkube.io~1lifetime-seconds"), "{patch}");
        let second = s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review");
        let patch = patch_of(&second).expect("second pod patched");
        assert!(!patch.to_string().contains("lifetime"), "the second recorded pod was still running: {patch}");
        assert!(patch.to_string().contains("kwok-provider"));
    }

    fn denial(review: &AdmissionReview<DynamicObject>) -> Option<String> {
        let resp = serde_json::to_value(review).expect("review serialises");
        (resp["response"]["allowed"] == false)
            .then(|| resp["response"]["status"]["message"].as_str().unwrap_or_default().to_string())
    }

    #[tokio::test]
    async fn pods_not_of_the_run_are_denied_and_updates_pass() {
        let s = state();
        let other = s.review(&review(bare_pod("p", "other-root"), "CREATE")).await.expect("review");
        let msg = denial(&other).expect("a pod of another root is denied");
        assert!(msg.contains("does not belong to the current run") && msg.contains("root"), "{msg}");
        assert_eq!(patch_of(&s.review(&review(bare_pod("p", "root"), "UPDATE")).await.expect("review")), None);
        let before_run = State::new("sim-a", "virtual", NoLookup);
        let early = before_run.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review");
        assert!(denial(&early).expect("denied before the run").contains("has not started"));
    }

    #[tokio::test]
    async fn dry_runs_do_not_shift_lifetimes() {
        let s = state();
        let mut dry: Value = serde_json::from_slice(&review(bare_pod("p", "root"), "CREATE")).expect("json");
        dry["request"]["dryRun"] = json!(true);
        let dry = serde_json::to_vec(&dry).expect("bytes");
        for _ in 0..3 {
            let patch = patch_of(&s.review(&dry).await.expect("review")).expect("a dry run is answered as a real one");
            assert!(patch.to_string().contains("lifetime"), "{patch}");
        }
        // The first real pod still gets the first recorded lifetime, the second none.
        let first =
            patch_of(&s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review")).expect("patched");
        assert!(first.to_string().contains("lifetime"), "{first}");
        let second =
            patch_of(&s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review")).expect("patched");
        assert!(!second.to_string().contains("lifetime"), "{second}");
    }

    /// Counts lookups; knows one ReplicaSet owned by the root.
    struct Counting(std::sync::atomic::AtomicUsize);
    impl ObjectLookup for Counting {
        async fn get(&self, _: &str, kind: &str, _: &str, name: &str) -> Result<Option<Value>, kube::Error> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((kind == "ReplicaSet" && name == "web-1").then(|| {
                json!({"metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": "root"}]}})
            }))
        }
    }

    #[tokio::test]
    async fn pods_of_one_owner_are_resolved_once() {
        let s = State::new("sim-a", "virtual", Counting(0.into()));
        s.set_run(RunInfo {
            root_uid: "root".into(),
            lifetimes: Arc::new(HashMap::<TraceObject, Vec<Option<f64>>>::new()),
        });
        let pod = |n: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid", "controller": true}]}, "spec": {}})
        };
        for n in ["a", "b", "c"] {
            assert!(patch_of(&s.review(&review(pod(n), "CREATE")).await.expect("review")).is_some(), "{n} is ours");
        }
        assert_eq!(s.lookup.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn malformed_reviews_are_errors_not_panics() {
        let s = state();
        for body in [&b""[..], b"{", b"[]", b"{\"kind\":\"AdmissionReview\"}", b"{\"request\": 5}", &[0xff, 0x00, 0x13]]
        {
            let err = s.review(body).await.expect_err("malformed");
            assert!(err.to_string().starts_with("malformed AdmissionReview"), "{err}");
        }
    }
}
