//! One watch of one kind: kube-runtime's `watcher` (list, then watch from the list's
//! resourceVersion; re-list after a 410 or a lost resourceVersion) feeding a [`Tracker`], which
//! turns each event into records by diffing with the last known state of the object.
//!
//! Why a tracker and not the watch events themselves: after a lost watch the watcher lists
//! everything again (Init, InitApply..., InitDone). Diffing each listed object with what was
//! known writes only what changed while the watch was down (no duplicates), and a known object
//! missing from the list was deleted during the gap, so it gets its `deleted` record. Only
//! state for live objects is kept; it goes when the object does.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// After stop is asked, how long a watch keeps writing what is still arriving.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// After stop is asked, a watch quiet this long is done.
const STOP_IDLE: Duration = Duration::from_millis(300);
/// How long the list made at stop may keep failing (the API server may be restarting).
const FINAL_LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two tries of the list made at stop.
const FINAL_LIST_RETRY: Duration = Duration::from_secs(1);
/// Error messages kept per watch for the report (the count is always exact).
pub const ERROR_SAMPLES: usize = 5;

/// When an object was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// In the list made when the collectors started: what existed before the run.
    FirstList,
    /// In a list made again after the watch was lost.
    Relist,
    /// In the watch.
    Watch,
}

/// The pure part of a collector: what to remember about an object, and which records a new
/// version of it makes.
pub trait Diff {
    /// The watched kind.
    type Object;
    /// What is remembered of one live object between its versions.
    type State;
    /// The line written for a change.
    type Record: Serialize;

    /// The records `obj` makes given what was known of it (`old`, None when new), and what to
    /// remember now.
    fn observe(
        &self,
        old: Option<Self::State>,
        obj: &Self::Object,
        seen: Seen,
        t: &str,
    ) -> (Self::State, Vec<Self::Record>);

    /// The records of an object that is gone (`seen`: a watch's delete, or missing from a list),
    /// from what was last known of it.
    fn gone(&self, last: Self::State, seen: Seen, t: &str) -> Vec<Self::Record>;
}

/// What a list that just ended found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// The first list is done: the watch is ready.
    First {
        /// Objects in scope.
        objects: usize,
    },
    /// A list after a lost watch is done.
    Again {
        /// Objects in scope.
        objects: usize,
        /// Objects known before that the list no longer holds (deleted during the gap).
        vanished: usize,
    },
}

/// One page of a list: the objects and the token of the next page, if any.
pub type Page<K> = (Vec<K>, Option<String>);

/// Lists the watch's scope one page at a time (the argument is the continue token): the list
/// made at stop, so what the watch had not delivered yet (it may be reconnecting after the API
/// server went away) is still written.
pub type FinalList<K> =
    Box<dyn Fn(Option<String>) -> futures::future::BoxFuture<'static, Result<Page<K>, String>> + Send + Sync>;

/// Which objects a tracker follows (the others are in no namespace of the run).
type Keep<K> = Box<dyn Fn(&K) -> bool + Send + Sync>;

/// Keeps the last known state of each live object in scope and turns watch events into records.
pub struct Tracker<D: Diff> {
    diff: D,
    keep: Keep<D::Object>,
    known: HashMap<String, D::State>,
    /// Keys listed since the last Init, while a list is in progress.
    listing: Option<HashSet<String>>,
    /// Whether a list has ended (a list broken off by an error is started again).
    listed: bool,
}

impl<D> Tracker<D>
where
    D: Diff,
    D::Object: Resource,
{
    /// A tracker of the objects `keep` accepts (the others are ignored).
    pub fn new(diff: D, keep: impl Fn(&D::Object) -> bool + Send + Sync + 'static) -> Self {
        Tracker { diff, keep: Box::new(keep), known: HashMap::new(), listing: None, listed: false }
    }

    /// Objects currently known.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// The records of one watch event, and what a list found when the event ends one.
    pub fn handle(&mut self, event: Event<D::Object>, t: &str) -> (Vec<D::Record>, Option<Listed>) {
        match event {
            Event::Init => {
                self.listing = Some(HashSet::new());
                (Vec::new(), None)
            }
            Event::InitApply(obj) => {
                if !(self.keep)(&obj) {
                    return (Vec::new(), None);
                }
                let key = key_of(&obj);
                let seen = if self.listed { Seen::Relist } else { Seen::FirstList };
                let records = self.observe(key.clone(), &obj, seen, t);
                if let Some(listing) = &mut self.listing {
                    listing.insert(key);
                }
                (records, None)
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let objects = listed.len();
                // Known and not listed: deleted since it was seen (before the first list ends,
                // only an object of a list broken off by an error can be in that case).
                let vanished: Vec<String> = self.known.keys().filter(|k| !listed.contains(*k)).cloned().collect();
                let first = !self.listed;
                let seen = if first { Seen::FirstList } else { Seen::Relist };
                let mut records = Vec::new();
                for key in &vanished {
                    if let Some(last) = self.known.remove(key) {
                        records.extend(self.diff.gone(last, seen, t));
                    }
                }
                self.listed = true;
                let listed =
                    if first { Listed::First { objects } } else { Listed::Again { objects, vanished: vanished.len() } };
                (records, Some(listed))
            }
            Event::Apply(obj) => {
                if !(self.keep)(&obj) {
                    return (Vec::new(), None);
                }
                (self.observe(key_of(&obj), &obj, Seen::Watch, t), None)
            }
            Event::Delete(obj) => {
                if !(self.keep)(&obj) {
                    return (Vec::new(), None);
                }
                // The last version may say what happened just before (a container's exit).
                let key = key_of(&obj);
                let mut records = self.observe(key.clone(), &obj, Seen::Watch, t);
                if let Some(last) = self.known.remove(&key) {
                    records.extend(self.diff.gone(last, Seen::Watch, t));
                }
                (records, None)
            }
        }
    }

    fn observe(&mut self, key: String, obj: &D::Object, seen: Seen, t: &str) -> Vec<D::Record> {
        let old = self.known.remove(&key);
        let (state, records) = self.diff.observe(old, obj, seen, t);
        self.known.insert(key, state);
        records
    }
}

/// An object's identity: its UID (a name reused after a deletion is another object), else
/// `namespace/name`.
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    match &meta.uid {
        Some(uid) if !uid.is_empty() => uid.clone(),
        _ => format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()),
    }
}

/// Whether a watch has done its first list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Still listing; the last error, if the list failed.
    Listing(Option<String>),
    /// The first list is done.
    Listed,
}

/// How one watch went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Times the watch was lost and came back.
    pub restarts: u32,
    /// Times it had to list everything again.
    pub relists: u32,
    /// Errors: watch errors, and lines that could not be made or handed to the writer.
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

impl WatchStats {
    fn error(&mut self, message: String) {
        self.errors = self.errors.saturating_add(1);
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(message);
        }
    }
}

/// Runs one watch until `stop` changes (or its sender goes), then keeps writing for up to
/// [`STOP_GRACE`] while events still arrive, so what the run's last actions caused is written
/// with the time it was seen; then lists once more (`final_list`) and writes what the watch had
/// not delivered, so nothing is lost however far behind the watch was.
/// Each record becomes one JSON line sent to `out`; `ready` says when the first list is done.
pub async fn run<D, S>(
    name: String,
    stream: S,
    mut tracker: Tracker<D>,
    final_list: Option<FinalList<D::Object>>,
    out: mpsc::Sender<String>,
    ready: watch::Sender<Readiness>,
    mut stop: watch::Receiver<bool>,
) -> WatchStats
where
    D: Diff,
    D::Object: Resource,
    S: Stream<Item = Result<Event<D::Object>, watcher::Error>>,
{
    let mut stream = pin!(stream);
    let mut stats = WatchStats::default();
    // The watch was lost after its first list (a restart when it comes back).
    let mut lost = false;
    // The first list failed at least once.
    let mut list_failed = false;
    // Between the Init and the InitDone of a list made after the first.
    let mut relisting = false;
    let mut stopping: Option<Instant> = None;
    loop {
        let item = match stopping {
            None => tokio::select! {
                item = stream.next() => item,
                _ = stop.changed() => {
                    stopping = Some(Instant::now() + STOP_GRACE);
                    continue;
                }
            },
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now()).min(STOP_IDLE);
                match tokio::time::timeout(wait, stream.next()).await {
                    Ok(item) => item,
                    Err(_) => break,
                }
            }
        };
        let Some(item) = item else { break };
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                let message = format!("{name}: {e}");
                let listed = *ready.borrow() == Readiness::Listed;
                if listed && !lost {
                    tracing::warn!(collector = %name, error = %e, "watch lost; retrying with backoff");
                    lost = true;
                } else if !listed && !list_failed {
                    tracing::warn!(collector = %name, error = %e, "first list failed; retrying with backoff");
                    list_failed = true;
                } else {
                    tracing::debug!(collector = %name, error = %e, "watch still down");
                }
                if !listed {
                    ready.send_replace(Readiness::Listing(Some(message.clone())));
                }
                stats.error(message);
                continue;
            }
        };
        if matches!(event, Event::Init) && *ready.borrow() == Readiness::Listed {
            relisting = true;
            stats.relists = stats.relists.saturating_add(1);
        }
        if lost && !relisting {
            // Back without a list: the watch went on from the last resourceVersion it had.
            lost = false;
            stats.restarts = stats.restarts.saturating_add(1);
            tracing::info!(collector = %name, "watch resumed from its last resourceVersion");
        }
        let t = super::time::now();
        let (records, listed) = tracker.handle(event, &t);
        match listed {
            Some(Listed::First { objects }) => {
                tracing::debug!(collector = %name, objects, "first list done");
                ready.send_replace(Readiness::Listed);
            }
            Some(Listed::Again { objects, vanished }) => {
                relisting = false;
                if lost {
                    lost = false;
                    stats.restarts = stats.restarts.saturating_add(1);
                }
                tracing::info!(
                    collector = %name, objects, deleted_meanwhile = vanished,
                    "watch resumed: listed again, wrote what changed while it was down"
                );
            }
            None => {}
        }
        if !write(&name, records, &out, &mut stats).await {
            return stats;
        }
    }
    // Only a watch that listed once has a state to bring up to date.
    if let Some(list) = final_list.filter(|_| stopping.is_some() && *ready.borrow() == Readiness::Listed)
        && list_at_stop(&name, &list, &mut tracker, &out, &mut stats).await
        && lost
    {
        // Lost and not heard from since: still backing off, or back but with nothing to say (a
        // watch that resumes from its resourceVersion is silent until the next change). The list
        // at stop is its relist either way.
        stats.relists = stats.relists.saturating_add(1);
        stats.restarts = stats.restarts.saturating_add(1);
        tracing::info!(
            collector = %name,
            "watch not heard from since it was lost; the list at stop wrote what changed meanwhile"
        );
    }
    stats
}

/// Sends each record as a JSON line; false once the writer has stopped.
async fn write<R: Serialize>(name: &str, records: Vec<R>, out: &mpsc::Sender<String>, stats: &mut WatchStats) -> bool {
    for record in records {
        match serde_json::to_string(&record) {
            Ok(line) => {
                if out.send(line).await.is_err() {
                    stats.error(format!("{name}: the file's writer has stopped; records lost"));
                    return false;
                }
            }
            Err(e) => stats.error(format!("{name}: cannot serialize a record: {e}")),
        }
    }
    true
}

/// The list made at stop, fed to the tracker as a list after a lost watch: objects changed or
/// gone since the watch last delivered get their records. Retried for [`FINAL_LIST_TIMEOUT`];
/// a list broken off halfway starts again. True when the list was read to its end and written.
async fn list_at_stop<D>(
    name: &str,
    list: &FinalList<D::Object>,
    tracker: &mut Tracker<D>,
    out: &mpsc::Sender<String>,
    stats: &mut WatchStats,
) -> bool
where
    D: Diff,
    D::Object: Resource,
{
    let deadline = Instant::now() + FINAL_LIST_TIMEOUT;
    let mut written = 0usize;
    'again: loop {
        let (records, _) = tracker.handle(Event::Init, &super::time::now());
        written = written.saturating_add(records.len());
        let mut token = None;
        loop {
            let page = match tokio::time::timeout_at(deadline, list(token.take())).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) if Instant::now() + FINAL_LIST_RETRY < deadline => {
                    tracing::debug!(collector = %name, error = %e, "the list at stop failed; retrying");
                    tokio::time::sleep(FINAL_LIST_RETRY).await;
                    continue 'again;
                }
                Ok(Err(e)) => {
                    stats.error(format!("{name}: the list at stop failed, changes not yet watched are missing: {e}"));
                    return false;
                }
                Err(_) => {
                    stats.error(format!(
                        "{name}: the list at stop did not answer within {}s, changes not yet watched are missing",
                        FINAL_LIST_TIMEOUT.as_secs()
                    ));
                    return false;
                }
            };
            let t = super::time::now();
            let (items, next) = page;
            let mut records = Vec::new();
            for obj in items {
                records.extend(tracker.handle(Event::InitApply(obj), &t).0);
            }
            written = written.saturating_add(records.len());
            if !write(name, records, out, stats).await {
                return false;
            }
            match next {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break 'again,
            }
        }
    }
    let (records, listed) = tracker.handle(Event::InitDone, &super::time::now());
    written = written.saturating_add(records.len());
    if !write(name, records, out, stats).await {
        return false;
    }
    let vanished = match listed {
        Some(Listed::Again { vanished, .. }) => vanished,
        _ => 0,
    };
    if written > 0 {
        tracing::info!(
            collector = %name, records = written, deleted_meanwhile = vanished,
            "the list at stop found changes the watch had not delivered; written"
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    /// A diff that records "new", "changed" and "gone" with the ConfigMap's data value.
    struct Values;

    impl Diff for Values {
        type Object = ConfigMap;
        type State = (String, String);
        type Record = String;

        fn observe(
            &self,
            old: Option<(String, String)>,
            obj: &ConfigMap,
            seen: Seen,
            _t: &str,
        ) -> ((String, String), Vec<String>) {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let value = obj.data.as_ref().and_then(|d| d.get("v").cloned()).unwrap_or_default();
            let records = match &old {
                None => vec![format!("new {name}={value} ({seen:?})")],
                Some((_, v)) if *v != value => vec![format!("changed {name}={value}")],
                Some(_) => vec![],
            };
            ((name, value), records)
        }

        fn gone(&self, last: (String, String), _seen: Seen, _t: &str) -> Vec<String> {
            vec![format!("gone {}", last.0)]
        }
    }

    fn cm(uid: &str, name: &str, ns: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }

    fn feed(tracker: &mut Tracker<Values>, events: Vec<Event<ConfigMap>>) -> Vec<String> {
        events.into_iter().flat_map(|e| tracker.handle(e, "t").0).collect()
    }

    #[test]
    fn a_relist_writes_only_what_changed_and_deletes_what_vanished() {
        let mut tracker = Tracker::new(Values, |c: &ConfigMap| c.metadata.namespace.as_deref() == Some("run"));
        let first = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(cm("1", "a", "run", "x")),
                Event::InitApply(cm("9", "other", "elsewhere", "x")),
                Event::InitApply(cm("2", "b", "run", "x")),
            ],
        );
        assert_eq!(first, ["new a=x (FirstList)", "new b=x (FirstList)"]);
        assert_eq!(tracker.handle(Event::InitDone, "t"), (vec![], Some(Listed::First { objects: 2 })));
        let live =
            feed(&mut tracker, vec![Event::Apply(cm("3", "c", "run", "x")), Event::Apply(cm("1", "a", "run", "x"))]);
        assert_eq!(live, ["new c=x (Watch)"]);
        // The watch is lost; meanwhile a changes, b is deleted, d is created, c stays as it was.
        let again = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(cm("1", "a", "run", "y")),
                Event::InitApply(cm("3", "c", "run", "x")),
                Event::InitApply(cm("4", "d", "run", "x")),
            ],
        );
        assert_eq!(again, ["changed a=y", "new d=x (Relist)"]);
        assert_eq!(
            tracker.handle(Event::InitDone, "t"),
            (vec!["gone b".to_string()], Some(Listed::Again { objects: 3, vanished: 1 }))
        );
        assert_eq!(tracker.len(), 3);
        // The same list again writes nothing.
        let same = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(cm("1", "a", "run", "y")),
                Event::InitApply(cm("3", "c", "run", "x")),
                Event::InitApply(cm("4", "d", "run", "x")),
                Event::InitDone,
            ],
        );
        assert!(same.is_empty(), "{same:?}");
    }

    #[test]
    fn a_delete_writes_the_last_change_then_gone_and_forgets_the_object() {
        let mut tracker = Tracker::new(Values, |_: &ConfigMap| true);
        let records = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitDone,
                Event::Apply(cm("1", "a", "run", "x")),
                Event::Delete(cm("1", "a", "run", "z")),
                // A name reused is another object.
                Event::Apply(cm("2", "a", "run", "x")),
            ],
        );
        assert_eq!(records, ["new a=x (Watch)", "changed a=z", "gone a", "new a=x (Watch)"]);
        assert_eq!(tracker.len(), 1);
    }

    #[test]
    fn a_first_list_broken_off_and_started_again_is_still_the_first() {
        let mut tracker = Tracker::new(Values, |_: &ConfigMap| true);
        let records = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(cm("1", "a", "run", "x")),
                Event::Init,
                Event::InitApply(cm("2", "b", "run", "x")),
            ],
        );
        assert_eq!(records, ["new a=x (FirstList)", "new b=x (FirstList)"]);
        // a went before the second list: it existed, and it is gone.
        assert_eq!(
            tracker.handle(Event::InitDone, "t"),
            (vec!["gone a".to_string()], Some(Listed::First { objects: 1 }))
        );
        assert_eq!(feed(&mut tracker, vec![Event::Apply(cm("3", "c", "run", "x"))]), ["new c=x (Watch)"]);
    }

    async fn run_on(events: Vec<Result<Event<ConfigMap>, watcher::Error>>) -> (WatchStats, Vec<String>, Readiness) {
        let (tx, mut rx) = mpsc::channel(100);
        let (ready_tx, ready_rx) = watch::channel(Readiness::Listing(None));
        let (_stop_tx, stop_rx) = watch::channel(false);
        let tracker = Tracker::new(Values, |_: &ConfigMap| true);
        let stats = run("cms".into(), futures::stream::iter(events), tracker, None, tx, ready_tx, stop_rx).await;
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        let readiness = ready_rx.borrow().clone();
        (stats, lines, readiness)
    }

    #[tokio::test]
    async fn errors_and_relists_are_counted_and_lines_are_json() {
        let (stats, lines, readiness) = run_on(vec![
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("1", "a", "run", "x"))),
            Ok(Event::InitDone),
            // Lost, resumed from the resourceVersion.
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Apply(cm("1", "a", "run", "y"))),
            // Lost, listed again: a is gone, b is new.
            Err(watcher::Error::NoResourceVersion),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("2", "b", "run", "x"))),
            Ok(Event::InitDone),
        ])
        .await;
        assert_eq!(lines, [r#""new a=x (FirstList)""#, r#""changed a=y""#, r#""new b=x (Relist)""#, r#""gone a""#]);
        assert_eq!((stats.restarts, stats.relists, stats.errors), (2, 1, 4));
        assert_eq!(stats.error_samples.len(), 4);
        assert!(stats.error_samples[0].starts_with("cms: "), "{:?}", stats.error_samples);
        assert_eq!(readiness, Readiness::Listed);
    }

    #[tokio::test]
    async fn a_failing_first_list_says_why() {
        let (stats, lines, readiness) = run_on(vec![Err(watcher::Error::NoResourceVersion)]).await;
        assert!(lines.is_empty());
        assert_eq!(stats.errors, 1);
        assert!(matches!(readiness, Readiness::Listing(Some(m)) if m.contains("resourceVersion")));
    }

    #[tokio::test]
    async fn stop_ends_a_quiet_watch_after_writing_what_was_pending() {
        let (tx, mut rx) = mpsc::channel(100);
        let (ready_tx, _ready_rx) = watch::channel(Readiness::Listing(None));
        let (stop_tx, stop_rx) = watch::channel(false);
        let events =
            futures::stream::iter(vec![Ok(Event::Init), Ok(Event::InitDone)]).chain(futures::stream::pending());
        let tracker = Tracker::new(Values, |_: &ConfigMap| true);
        let task = tokio::spawn(run("cms".into(), events, tracker, None, tx, ready_tx, stop_rx));
        tokio::task::yield_now().await;
        stop_tx.send_replace(true);
        let stats = task.await.unwrap();
        assert_eq!(stats, WatchStats::default());
        assert!(rx.recv().await.is_none(), "the sender is dropped when the watch ends");
    }

    /// Runs a watch whose first list delivers a and b, then `then` and silence; asks it to stop
    /// once it wrote the first list's two lines. Its stats and every line it wrote.
    async fn stopped_after_the_first_list(
        then: Vec<Result<Event<ConfigMap>, watcher::Error>>,
        list: FinalList<ConfigMap>,
    ) -> (WatchStats, Vec<String>) {
        let (tx, mut rx) = mpsc::channel(100);
        let (ready_tx, _ready_rx) = watch::channel(Readiness::Listing(None));
        let (stop_tx, stop_rx) = watch::channel(false);
        let first = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(cm("1", "a", "run", "x"))),
            Ok(Event::InitApply(cm("2", "b", "run", "x"))),
            Ok(Event::InitDone),
        ];
        let events = futures::stream::iter(first.into_iter().chain(then)).chain(futures::stream::pending());
        let tracker = Tracker::new(Values, |_: &ConfigMap| true);
        let task = tokio::spawn(run("cms".into(), events, tracker, Some(list), tx, ready_tx, stop_rx));
        let mut lines = Vec::new();
        for _ in 0..2 {
            lines.push(rx.recv().await.expect("the first list's lines"));
        }
        stop_tx.send_replace(true);
        let stats = task.await.expect("watch task");
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        (stats, lines)
    }

    /// The watch delivered a and b, then fell silent (reconnecting); meanwhile a changed, b was
    /// deleted and c created. The list at stop (failing once, then two pages) writes all three.
    #[tokio::test]
    async fn the_list_at_stop_writes_what_the_watch_had_not_delivered() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let list: FinalList<ConfigMap> = Box::new({
            let calls = calls.clone();
            move |token| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    match (n, token.as_deref()) {
                        (0, _) => Err("connection refused".to_string()),
                        (_, None) => Ok((vec![cm("1", "a", "run", "y")], Some("p2".to_string()))),
                        (_, Some("p2")) => Ok((vec![cm("3", "c", "run", "x")], None)),
                        (_, Some(other)) => Err(format!("unexpected token {other}")),
                    }
                })
            }
        });
        let (stats, lines) = stopped_after_the_first_list(vec![], list).await;
        assert_eq!(
            lines,
            [
                r#""new a=x (FirstList)""#,
                r#""new b=x (FirstList)""#,
                r#""changed a=y""#,
                r#""new c=x (Relist)""#,
                r#""gone b""#
            ]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one failed try, then two pages");
        assert_eq!(stats.errors, 0, "a list that failed and then worked lost nothing: {stats:?}");
    }

    /// The watch was lost and not heard from again before the run ended (still backing off, or
    /// resumed with nothing to deliver): b was deleted meanwhile. The list at stop writes its
    /// deletion and counts as the watch's relist.
    #[tokio::test]
    async fn a_watch_lost_until_the_stop_is_brought_up_to_date_by_the_list_at_stop() {
        let list: FinalList<ConfigMap> =
            Box::new(|_token| Box::pin(async { Ok((vec![cm("1", "a", "run", "x")], None)) }));
        let (stats, lines) = stopped_after_the_first_list(vec![Err(watcher::Error::NoResourceVersion)], list).await;
        assert_eq!(lines, [r#""new a=x (FirstList)""#, r#""new b=x (FirstList)""#, r#""gone b""#]);
        assert_eq!((stats.restarts, stats.relists, stats.errors), (1, 1, 1), "{stats:?}");
    }

    #[tokio::test]
    async fn a_dropped_stop_sender_ends_the_watch_too() {
        let (tx, _rx) = mpsc::channel(100);
        let (ready_tx, _ready_rx) = watch::channel(Readiness::Listing(None));
        let (stop_tx, stop_rx) = watch::channel(false);
        let events = futures::stream::pending::<Result<Event<ConfigMap>, watcher::Error>>();
        let task = tokio::spawn(run(
            "cms".into(),
            events,
            Tracker::new(Values, |_: &ConfigMap| true),
            None,
            tx,
            ready_tx,
            stop_rx,
        ));
        drop(stop_tx);
        assert_eq!(task.await.unwrap(), WatchStats::default());
    }
}
