//! The `/mutate` admission webhook: pins the run's pods to the virtual nodes and gives them
//! their recorded lifetimes. It is only called for pods of the run's virtual namespaces, so a
//! pod there that does not belong to the current run (a leftover controller of another run, a
//! pod made before the run started) is denied rather than let through to a real node.
//! Lifetimes are matched by owner and pod-spec hash, as SimKube records them, and taken once per
//! pod ([`lifetimes`]): dry-run requests get the same answer but change no state
//! (`sideEffects: NoneOnDryRun`), and a request asked again gets the answer it had.

pub mod cache;
pub mod lifetimes;
pub mod mutate;
pub mod owners;
pub mod register;
pub mod server;
pub mod spec_hash;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use rehearsal_crds::keys::LIFETIME_ANNOTATION;
use serde_json::Value;

use self::cache::BoundedMap;
use self::lifetimes::{Assignments, Request};
pub use self::lifetimes::{HashLookup, Lifetimes, TraceLifetimes};
use self::mutate::{Mutation, patch_for};
use self::owners::{ObjectLookup, TraceObject, trace_owner};

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
    /// Lifetimes taken per owner and pod-spec hash, and the answer of each recent request.
    assignments: Mutex<Assignments>,
    /// What each owner (by UID) resolved to, so the pods of one ReplicaSet or Job cost one walk.
    /// At most [`MAX_CACHED_OWNERS`], the oldest forgotten first (it is only a cache).
    by_owner: Mutex<BoundedMap<String, Option<TraceObject>>>,
}

/// Most owners remembered by the owner cache.
pub const MAX_CACHED_OWNERS: usize = 50_000;

/// Most admission request uids remembered with the lifetime they were given (the same bound as
/// the owner cache; a retried request comes back within seconds).
pub const MAX_REMEMBERED_REQUESTS: usize = MAX_CACHED_OWNERS;

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
            assignments: Mutex::new(Assignments::new(MAX_REMEMBERED_REQUESTS)),
            by_owner: Mutex::new(BoundedMap::new(MAX_CACHED_OWNERS)),
        }
    }

    /// Starts mutating the pods of this run (until then, every pod is left alone).
    pub fn set_run(&self, info: RunInfo) {
        if let Ok(mut run) = self.run.write() {
            *run = Some(info);
        }
        self.assignments.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.by_owner.lock().unwrap_or_else(PoisonError::into_inner).clear();
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
        let cached = owner_uid.as_deref().and_then(|uid| self.by_owner.lock().ok()?.get(uid).cloned());
        let resolved = match cached {
            Some(hit) => Ok(hit),
            None => {
                let found = trace_owner(&self.lookup, &namespace, &self.prefix, &pod, &run.root_uid).await;
                if let (Some(uid), Ok(found)) = (&owner_uid, &found)
                    && let Ok(mut m) = self.by_owner.lock()
                {
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
        let respond = |lifetime: Option<f64>| {
            let ops = patch_for(&pod, &Mutation { simulation: &self.simulation, lifetime_seconds: lifetime });
            response.clone().with_patch(json_patch::Patch(ops)).map(|r| (r, lifetime))
        };
        let carries_lifetime = pod.pointer("/metadata/annotations").and_then(|a| a.get(LIFETIME_ANNOTATION)).is_some();
        let hashes = if carries_lifetime { Vec::new() } else { spec_hash::pod_spec_hashes(&pod) };
        let answered = if carries_lifetime {
            // It already has one (this admission was asked before, or its maker set one): it
            // keeps it, and takes none from the trace.
            respond(None)
        } else {
            let request = Request { uid: &req.uid, owner: &owner, hashes: &hashes, dry_run: req.dry_run };
            self.assignments.lock().unwrap_or_else(PoisonError::into_inner).assign(
                run.lifetimes.as_ref(),
                &request,
                respond,
            )
        };
        match answered {
            Ok((r, lifetime)) => {
                tracing::debug!(%namespace, owner = %owner.owner, ?hashes, ?lifetime, carries_lifetime, "mutating pod");
                Ok(r.into_review())
            }
            Err(e) => Ok(response.deny(format!("rehearsal webhook cannot encode its patch: {e}")).into_review()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    /// A lookup that finds nothing (shared by the webhook's tests).
    pub(crate) struct NoLookup;
    impl ObjectLookup for NoLookup {
        async fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Result<Option<Value>, kube::Error> {
            Ok(None)
        }
    }

    /// Lifetimes by owner and pod-spec hash (shared by the webhook's tests); the owner's order
    /// is by ascending hash, as the trace's.
    pub(crate) struct ByHash(pub(crate) HashMap<TraceObject, Vec<HashList>>);

    /// One recorded pod-spec hash and its pods' lifetimes.
    pub(crate) type HashList = (u64, Vec<Option<f64>>);

    impl Lifetimes for ByHash {
        fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64> {
            let mut lists = self.0.get(owner)?.clone();
            lists.sort_by_key(|(hash, _)| *hash);
            lists.into_iter().flat_map(|(_, l)| l).nth(n).flatten()
        }

        fn lifetime_by_hash(&self, owner: &TraceObject, hash: u64, n: usize) -> HashLookup {
            match self.0.get(owner).and_then(|lists| lists.iter().find(|(h, _)| *h == hash)) {
                Some((_, list)) => HashLookup::Recorded(list.get(n).copied().flatten()),
                None => HashLookup::Unrecorded,
            }
        }
    }

    /// A fresh request uid per review, as the API server sends them.
    fn next_uid() -> String {
        static UIDS: AtomicUsize = AtomicUsize::new(0);
        format!("u-{}", UIDS.fetch_add(1, Ordering::SeqCst))
    }

    fn review_with(pod: Value, operation: &str, uid: &str, dry_run: bool) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "virtual-testing", "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:job-controller"},
                "object": pod, "dryRun": dry_run
            }
        }))
        .expect("review literal")
    }

    fn review(pod: Value, operation: &str) -> Vec<u8> {
        review_with(pod, operation, &next_uid(), false)
    }

    fn bare_pod(name: &str, root: &str) -> Value {
        pod_with_image(name, root, "busybox")
    }

    /// A bare pod of the run (owned by the root): it is its own trace object, `v1.Pod testing/<name>`.
    fn pod_with_image(name: &str, root: &str, image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "virtual-testing",
            "ownerReferences": [{"apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "name": "r", "uid": root}]},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn pod_key() -> TraceObject {
        TraceObject { gvk: "v1.Pod".into(), owner: "testing/p".into() }
    }

    fn state_with(lifetimes: impl Lifetimes + 'static) -> State<NoLookup> {
        let s = State::new("sim-a", "virtual", NoLookup);
        s.set_run(RunInfo { root_uid: "root".into(), lifetimes: Arc::new(lifetimes) });
        s
    }

    /// A trace without hashes: `testing/p` has one finished pod then one still running.
    fn state() -> State<NoLookup> {
        state_with(HashMap::from([(pod_key(), vec![Some(3.0), None])]))
    }

    fn hash_of(pod: &Value) -> u64 {
        *spec_hash::pod_spec_hashes(pod).first().expect("the pod has a spec")
    }

    /// `testing/p` recorded with two specs: image `a` lived 10 s then 11 s, image `b` 20 s.
    fn two_spec_state() -> State<NoLookup> {
        let (a, b) = (hash_of(&pod_with_image("p", "root", "a")), hash_of(&pod_with_image("p", "root", "b")));
        state_with(ByHash(HashMap::from([(pod_key(), vec![(a, vec![Some(10.0), Some(11.0)]), (b, vec![Some(20.0)])])])))
    }

    fn patch_of(review: &AdmissionReview<DynamicObject>) -> Option<Value> {
        let resp = serde_json::to_value(review).expect("review serialises");
        assert!(resp["response"]["uid"].as_str().is_some_and(|u| u.starts_with("u-")), "{resp}");
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
        // kube writes the patch bytes as a JSON array of numbers, which the API server's
        // decoder accepts for a []byte field just like base64.
        let bytes: Option<Vec<u8>> = serde_json::from_value(resp["response"]["patch"].clone()).ok();
        bytes.map(|b| serde_json::from_slice(&b).expect("patch is JSON"))
    }

    /// The lifetime annotation the webhook's patch writes, if any.
    fn lifetime_in(patch: &Value) -> Option<String> {
        patch.as_array()?.iter().find_map(|op| {
            (op["path"] == "/metadata/annotations/simkube.io~1lifetime-seconds")
                .then(|| op["value"].as_str().map(str::to_string))?
        })
    }

    async fn lifetime_of(s: &State<NoLookup>, body: &[u8]) -> Option<String> {
        let review = s.review(body).await.expect("review");
        lifetime_in(&patch_of(&review).expect("the pod is patched"))
    }

    #[tokio::test]
    async fn run_pods_get_patched_with_their_lifetimes_in_order() {
        let s = state();
        let first = s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review");
        let patch = patch_of(&first).expect("first pod patched");
        assert_eq!(lifetime_in(&patch).as_deref(), Some("3"), "{patch}");
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
    async fn pods_of_different_specs_get_their_own_lifetimes_in_any_order() {
        let (a, b) = (|| pod_with_image("p", "root", "a"), || pod_with_image("p", "root", "b"));
        // b first: it still gets b's 20 s, and a its own first, 10 s.
        let s = two_spec_state();
        assert_eq!(lifetime_of(&s, &review(b(), "CREATE")).await.as_deref(), Some("20"));
        assert_eq!(lifetime_of(&s, &review(a(), "CREATE")).await.as_deref(), Some("10"));
        assert_eq!(lifetime_of(&s, &review(a(), "CREATE")).await.as_deref(), Some("11"));
        // The other order gives each the same.
        let s = two_spec_state();
        assert_eq!(lifetime_of(&s, &review(a(), "CREATE")).await.as_deref(), Some("10"));
        assert_eq!(lifetime_of(&s, &review(a(), "CREATE")).await.as_deref(), Some("11"));
        assert_eq!(lifetime_of(&s, &review(b(), "CREATE")).await.as_deref(), Some("20"));
        // More pods of b than recorded run on (no lifetime) rather than borrow a's.
        assert_eq!(lifetime_of(&s, &review(b(), "CREATE")).await, None);
    }

    #[tokio::test]
    async fn pods_of_an_unknown_spec_fall_back_to_the_owners_order() {
        let s = two_spec_state();
        let c = || pod_with_image("p", "root", "c");
        // The owner's order is by ascending hash, then recorded order.
        let mut expected: Vec<(u64, Vec<&str>)> = vec![
            (hash_of(&pod_with_image("p", "root", "a")), vec!["10", "11"]),
            (hash_of(&pod_with_image("p", "root", "b")), vec!["20"]),
        ];
        expected.sort();
        let expected: Vec<&str> = expected.into_iter().flat_map(|(_, l)| l).collect();
        for want in expected {
            assert_eq!(lifetime_of(&s, &review(c(), "CREATE")).await.as_deref(), Some(want));
        }
        assert_eq!(lifetime_of(&s, &review(c(), "CREATE")).await, None);
        // A recorded spec still gets its own first lifetime: the fallback has its own count.
        assert_eq!(lifetime_of(&s, &review(pod_with_image("p", "root", "b"), "CREATE")).await.as_deref(), Some("20"));
    }

    #[tokio::test]
    async fn a_retried_request_gets_the_same_lifetime_and_does_not_shift_the_next_pod() {
        let s = two_spec_state();
        let a = || pod_with_image("p", "root", "a");
        let retried = review_with(a(), "CREATE", "u-retried", false);
        for _ in 0..3 {
            assert_eq!(lifetime_of(&s, &retried).await.as_deref(), Some("10"));
        }
        assert_eq!(lifetime_of(&s, &review(a(), "CREATE")).await.as_deref(), Some("11"));
        assert_eq!(lifetime_of(&s, &retried).await.as_deref(), Some("10"));
        // Also without hashes.
        let s = state();
        let retried = review_with(bare_pod("p", "root"), "CREATE", "u-retried", false);
        assert_eq!(lifetime_of(&s, &retried).await.as_deref(), Some("3"));
        assert_eq!(lifetime_of(&s, &retried).await.as_deref(), Some("3"));
        assert_eq!(lifetime_of(&s, &review(bare_pod("p", "root"), "CREATE")).await, None);
    }

    #[tokio::test]
    async fn dry_runs_do_not_shift_lifetimes() {
        for s in [state(), two_spec_state()] {
            let pod = || pod_with_image("p", "root", "a");
            for _ in 0..3 {
                let dry = review_with(pod(), "CREATE", &next_uid(), true);
                assert!(lifetime_of(&s, &dry).await.is_some(), "a dry run is answered as a real one");
            }
            // The first real pod still gets the first recorded lifetime.
            let first = lifetime_of(&s, &review(pod(), "CREATE")).await;
            assert!(matches!(first.as_deref(), Some("3" | "10")), "{first:?}");
            // A dry run that reuses a real request's uid is not remembered under it either.
            let dry = review_with(pod(), "CREATE", "u-dry-then-real", true);
            let peeked = lifetime_of(&s, &dry).await;
            let real = lifetime_of(&s, &review_with(pod(), "CREATE", "u-dry-then-real", false)).await;
            assert_eq!(peeked, real);
        }
    }

    #[tokio::test]
    async fn a_pod_that_carries_a_lifetime_keeps_it_and_takes_none() {
        let s = state();
        let mut pod = bare_pod("p", "root");
        pod["metadata"]["annotations"] = json!({"simkube.io/lifetime-seconds": "42"});
        let patch = patch_of(&s.review(&review(pod, "CREATE")).await.expect("review")).expect("patched");
        assert_eq!(lifetime_in(&patch), None, "{patch}");
        assert!(patch.to_string().contains("kwok-provider"), "still pinned: {patch}");
        // The next pod still gets the first recorded lifetime.
        assert_eq!(lifetime_of(&s, &review(bare_pod("p", "root"), "CREATE")).await.as_deref(), Some("3"));
    }

    #[tokio::test]
    async fn remembered_requests_are_bounded() {
        let s = state();
        *s.assignments.lock().expect("lock") = Assignments::new(16);
        for _ in 0..40 {
            s.review(&review(bare_pod("p", "root"), "CREATE")).await.expect("review");
        }
        assert_eq!(s.assignments.lock().expect("lock").remembered(), 16);
        // The real bound is kept.
        assert_eq!(MAX_REMEMBERED_REQUESTS, MAX_CACHED_OWNERS);
        let fresh = state();
        let remembered = fresh.assignments.lock().expect("lock").remembered();
        assert_eq!(remembered, 0);
    }

    #[tokio::test]
    async fn lifetimes_come_from_the_trace_by_hash() {
        // The JSON form of a trace: `testing/p` recorded 30 s for image `a`, 60 s for `b`.
        let (a, b) = (pod_with_image("p", "root", "a"), pod_with_image("p", "root", "b"));
        let doc = json!({"version": 2, "config": {}, "events": [], "pod_lifecycles": [[["v1.Pod", "testing/p"], {
            hash_of(&a).to_string(): [{"Finished": [100, 130]}],
            hash_of(&b).to_string(): [{"Finished": [100, 160]}]
        }]]});
        let trace = crate::trace::Trace::parse(serde_json::to_vec(&doc).expect("json"), "t.json").expect("trace");
        let s = state_with(TraceLifetimes::new(Arc::new(trace), 2.0));
        assert_eq!(lifetime_of(&s, &review(b, "CREATE")).await.as_deref(), Some("30"));
        assert_eq!(lifetime_of(&s, &review(a, "CREATE")).await.as_deref(), Some("15"));
    }

    /// Counts lookups; knows one ReplicaSet owned by the root.
    struct Counting(AtomicUsize);
    impl ObjectLookup for Counting {
        async fn get(&self, _: &str, kind: &str, _: &str, name: &str) -> Result<Option<Value>, kube::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
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
        assert_eq!(s.lookup.0.load(Ordering::SeqCst), 1);
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
