//! Which recorded lifetime a simulated pod gets, once per pod.
//!
//! SimKube records an owner's pod lifecycles per pod-spec hash ([`super::spec_hash`]), so a pod
//! takes the next lifetime recorded for its owner *and* its spec: pods of a Deployment before
//! and after a rollout keep their own lifetimes whatever order they are created in. A pod whose
//! hash the trace does not know for its owner (a trace without hashes, a spec that changed)
//! falls back to the owner's lifetimes in recorded order.
//!
//! Taking a lifetime moves a counter, so it must happen once per pod: an admission request
//! asked again (same request uid: the API server retries a call whose answer it did not get)
//! gets the answer it had, a dry run only looks, and nothing is taken when the answer could not
//! be built. What is remembered per request is bounded ([`super::cache::BoundedMap`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::cache::BoundedMap;
use super::owners::TraceObject;
use crate::trace::{PodLifecycle, Trace};

/// Recorded pod lifetimes of the trace objects.
pub trait Lifetimes: Send + Sync {
    /// Seconds (already divided by the speed) the `n`-th pod of `owner` lives once running,
    /// counting all the owner's recorded pods in the trace's order; None when the trace has no
    /// finished lifecycle for it.
    fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64>;

    /// The same for the `n`-th pod of `owner` whose spec hashes to `hash`; `Unrecorded` when the
    /// trace has no pod of that hash for the owner (the default: a source without hashes).
    fn lifetime_by_hash(&self, _owner: &TraceObject, _hash: u64, _n: usize) -> HashLookup {
        HashLookup::Unrecorded
    }
}

/// What the trace holds for one pod-spec hash of an owner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HashLookup {
    /// Pods of this hash were recorded; the lifetime of the one asked for, if it finished.
    Recorded(Option<f64>),
    /// No pod of this hash was recorded for the owner.
    Unrecorded,
}

impl Lifetimes for HashMap<TraceObject, Vec<Option<f64>>> {
    fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64> {
        self.get(owner).and_then(|l| l.get(n)).copied().flatten()
    }
}

/// Lifetimes straight from a parsed trace, divided by the speed, looked up by pod-spec hash too.
pub struct TraceLifetimes {
    trace: Arc<Trace>,
    speed: f64,
}

impl TraceLifetimes {
    /// Lifetimes of `trace` replayed at `speed`.
    pub fn new(trace: Arc<Trace>, speed: f64) -> Self {
        TraceLifetimes { trace, speed }
    }

    fn seconds(&self, lifecycle: Option<&PodLifecycle>) -> Option<f64> {
        let recorded = lifecycle?.duration_seconds()?.max(0);
        let seconds = recorded as f64 / self.speed;
        (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
    }
}

impl Lifetimes for TraceLifetimes {
    fn lifetime(&self, owner: &TraceObject, n: usize) -> Option<f64> {
        self.seconds(self.trace.lifecycles(&owner.gvk, &owner.owner).get(n))
    }

    fn lifetime_by_hash(&self, owner: &TraceObject, hash: u64, n: usize) -> HashLookup {
        match self.trace.lifecycles_for_hash(&owner.gvk, &owner.owner, hash) {
            Some(list) => HashLookup::Recorded(self.seconds(list.get(n))),
            None => HashLookup::Unrecorded,
        }
    }
}

/// Which of an owner's recorded lists a pod counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum List {
    /// The pods recorded under this spec hash.
    Hash(u64),
    /// All the owner's pods in recorded order (the fallback).
    Owner,
}

/// One pod asking for its lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The AdmissionReview request uid ("" remembers nothing).
    pub uid: &'a str,
    /// The trace object the pod descends from.
    pub owner: &'a TraceObject,
    /// The pod's spec hashes, best first ([`super::spec_hash::pod_spec_hashes`]).
    pub hashes: &'a [u64],
    /// A dry run sees the lifetime without taking it.
    pub dry_run: bool,
}

/// Lifetimes taken so far in one run, and what each admission request was given.
#[derive(Debug)]
pub struct Assignments {
    /// Pods that took a lifetime, per owner and list. Bounded by the trace: owners are its
    /// objects, and hash lists are only counted when the trace records the hash.
    taken: HashMap<TraceObject, HashMap<List, usize>>,
    /// The lifetime each request (by uid) was given; the oldest are forgotten first.
    answered: BoundedMap<String, Option<f64>>,
}

impl Assignments {
    /// Nothing taken yet; at most `remembered` request uids kept.
    pub fn new(remembered: usize) -> Self {
        Assignments { taken: HashMap::new(), answered: BoundedMap::new(remembered) }
    }

    /// Starts over (a new run).
    pub fn clear(&mut self) {
        self.taken.clear();
        self.answered.clear();
    }

    /// Number of request uids remembered.
    pub fn remembered(&self) -> usize {
        self.answered.len()
    }

    fn count(&self, owner: &TraceObject, list: List) -> usize {
        self.taken.get(owner).and_then(|lists| lists.get(&list)).copied().unwrap_or(0)
    }

    /// The list the pod counts in, its place there and its lifetime, without taking it.
    fn next(&self, lifetimes: &dyn Lifetimes, owner: &TraceObject, hashes: &[u64]) -> (List, usize, Option<f64>) {
        for &hash in hashes {
            let n = self.count(owner, List::Hash(hash));
            if let HashLookup::Recorded(lifetime) = lifetimes.lifetime_by_hash(owner, hash, n) {
                return (List::Hash(hash), n, lifetime);
            }
        }
        // The trace has no pod of this spec for the owner (or keeps no hashes): fall back to
        // the owner's lifetimes in recorded order, so traces without hashes still work.
        let n = self.count(owner, List::Owner);
        (List::Owner, n, lifetimes.lifetime(owner, n))
    }

    /// Hands the pod's lifetime to `respond` and returns its answer. The lifetime is taken (the
    /// next pod of the list gets the next one) and remembered for the request uid only when
    /// `respond` succeeds and the request is not a dry run; a remembered uid gets the same
    /// lifetime again and takes nothing.
    pub fn assign<R, E>(
        &mut self,
        lifetimes: &dyn Lifetimes,
        request: &Request<'_>,
        respond: impl FnOnce(Option<f64>) -> Result<R, E>,
    ) -> Result<R, E> {
        if let Some(given) = self.answered.get(request.uid) {
            return respond(*given);
        }
        let (list, n, lifetime) = self.next(lifetimes, request.owner, request.hashes);
        let answer = respond(lifetime)?;
        if !request.dry_run {
            self.taken.entry(request.owner.clone()).or_default().insert(list, n.saturating_add(1));
            if !request.uid.is_empty() {
                self.answered.insert(request.uid.to_string(), lifetime);
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::tests::ByHash;

    fn web() -> TraceObject {
        TraceObject { gvk: "apps/v1.Deployment".into(), owner: "default/web".into() }
    }

    fn recorded() -> ByHash {
        ByHash(HashMap::from([(web(), vec![(1, vec![Some(10.0), Some(11.0)]), (2, vec![Some(20.0)])])]))
    }

    fn take(a: &mut Assignments, l: &dyn Lifetimes, uid: &str, hashes: &[u64], dry_run: bool) -> Option<f64> {
        let owner = web();
        let request = Request { uid, owner: &owner, hashes, dry_run };
        a.assign(l, &request, Ok::<_, ()>).expect("respond never fails here")
    }

    #[test]
    fn each_hash_takes_its_own_lifetimes_in_any_order() {
        let l = recorded();
        let mut a = Assignments::new(10);
        assert_eq!(take(&mut a, &l, "u1", &[2], false), Some(20.0));
        assert_eq!(take(&mut a, &l, "u2", &[1], false), Some(10.0));
        assert_eq!(take(&mut a, &l, "u3", &[1], false), Some(11.0));
        // More pods of a hash than recorded: no lifetime, as for an owner's order.
        assert_eq!(take(&mut a, &l, "u4", &[2], false), None);
    }

    #[test]
    fn the_first_recorded_hash_wins() {
        let l = recorded();
        let mut a = Assignments::new(10);
        // The pinned hash (9) is unknown; the unpinned one (2) is recorded.
        assert_eq!(take(&mut a, &l, "u1", &[9, 2], false), Some(20.0));
        assert_eq!(take(&mut a, &l, "u2", &[9, 1], false), Some(10.0));
    }

    #[test]
    fn unknown_hashes_fall_back_to_the_owners_order() {
        let l = recorded();
        let mut a = Assignments::new(10);
        assert_eq!(take(&mut a, &l, "u1", &[7], false), Some(10.0));
        assert_eq!(take(&mut a, &l, "u2", &[], false), Some(11.0));
        assert_eq!(take(&mut a, &l, "u3", &[8], false), Some(20.0));
        // A source without hashes: always the owner's order.
        let plain: HashMap<TraceObject, Vec<Option<f64>>> = HashMap::from([(web(), vec![Some(3.0), None])]);
        let mut b = Assignments::new(10);
        assert_eq!(take(&mut b, &plain, "u1", &[1], false), Some(3.0));
        assert_eq!(take(&mut b, &plain, "u2", &[1], false), None);
    }

    #[test]
    fn a_request_asked_again_gets_the_same_and_takes_nothing() {
        let l = recorded();
        let mut a = Assignments::new(10);
        assert_eq!(take(&mut a, &l, "u1", &[1], false), Some(10.0));
        assert_eq!(take(&mut a, &l, "u1", &[1], false), Some(10.0));
        assert_eq!(take(&mut a, &l, "u2", &[1], false), Some(11.0));
        assert_eq!(take(&mut a, &l, "u1", &[1], false), Some(10.0));
        // An empty uid is never remembered.
        let mut b = Assignments::new(10);
        assert_eq!(take(&mut b, &l, "", &[1], false), Some(10.0));
        assert_eq!(take(&mut b, &l, "", &[1], false), Some(11.0));
        assert_eq!(b.remembered(), 0);
    }

    #[test]
    fn dry_runs_and_failed_answers_take_nothing() {
        let l = recorded();
        let mut a = Assignments::new(10);
        for _ in 0..3 {
            assert_eq!(take(&mut a, &l, "dry", &[1], true), Some(10.0));
        }
        let owner = web();
        let request = Request { uid: "fails", owner: &owner, hashes: &[1], dry_run: false };
        assert_eq!(a.assign(&l, &request, |_| Err::<(), _>("cannot encode")), Err("cannot encode"));
        assert_eq!(a.remembered(), 0);
        assert_eq!(take(&mut a, &l, "u1", &[1], false), Some(10.0));
        assert_eq!(take(&mut a, &l, "fails", &[1], false), Some(11.0));
    }

    #[test]
    fn remembered_requests_are_bounded() {
        let l = recorded();
        let mut a = Assignments::new(4);
        for i in 0..20 {
            take(&mut a, &l, &format!("u{i}"), &[7], false);
            assert!(a.remembered() <= 4);
        }
        assert_eq!(a.remembered(), 4);
        a.clear();
        assert_eq!(a.remembered(), 0);
        assert_eq!(take(&mut a, &l, "u0", &[1], false), Some(10.0));
    }
}
