//! `events.jsonl`: Kubernetes Events, one record when an Event appears and one each time its
//! count grows.
//!
//! Read through `core/v1` rather than `events.k8s.io/v1`: both are views of the same stored
//! objects, and the core view shows the fields of old-style recorders (`count`,
//! `lastTimestamp`, `source`) and of new ones (`eventTime`, `series`, `reportingComponent`) under
//! the names the records use; its `involvedObject.kind` field selector picks the Events about
//! nodes without reading every Event of the cluster.
//!
//! Events that exist when the collectors start are remembered, not written: they are about what
//! happened before the run. Events found by a re-list after a lost watch are written when new or
//! grown. An Event's deletion (its TTL) writes nothing.

use super::records::EventRecord;
use super::time;
use super::view::EventView;
use super::watch::{Diff, Seen};

/// Kinds whose Events are "about nodes" (Karpenter's NodeClaims and NodePools included): they
/// are kept from every namespace.
pub const NODE_KINDS: [&str; 3] = ["Node", "NodeClaim", "NodePool"];

/// Whether `event` is about a node, a NodeClaim or a NodePool.
pub fn about_nodes(event: &EventView) -> bool {
    event.involved_object.kind.as_deref().is_some_and(|k| NODE_KINDS.contains(&k))
}

/// The Event collector's diff; the state is the count last seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Events;

impl Diff for Events {
    type Object = EventView;
    type State = i32;
    type Record = EventRecord;

    fn observe(&self, old: Option<i32>, event: &EventView, seen: Seen, t: &str) -> (i32, Vec<EventRecord>) {
        let count = count(event);
        let write = match old {
            None => seen != Seen::FirstList,
            Some(old) => count > old,
        };
        let records = if write { vec![record(event, count, t)] } else { Vec::new() };
        (old.map_or(count, |old| old.max(count)), records)
    }

    fn gone(&self, _last: i32, _seen: Seen, _t: &str) -> Vec<EventRecord> {
        Vec::new()
    }
}

/// How many times it happened: `series.count` for new-style Events, `count` for old ones.
fn count(event: &EventView) -> i32 {
    let series = event.series.as_ref().and_then(|s| s.count).unwrap_or(0);
    event.count.unwrap_or(0).max(series).max(1)
}

fn record(event: &EventView, count: i32, t: &str) -> EventRecord {
    let about = &event.involved_object;
    let namespace = about.namespace.clone().unwrap_or_default();
    let kind = about.kind.as_deref().unwrap_or_default();
    let name = about.name.as_deref().unwrap_or_default();
    let object = if namespace.is_empty() { format!("{kind} {name}") } else { format!("{kind} {namespace}/{name}") };
    // When it happened this time: a series' last occurrence, else the new-style eventTime
    // (microseconds), else the old-style timestamps.
    let at = event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .or(event.event_time.as_ref())
        .map(time::at_micro)
        .or_else(|| event.last_timestamp.as_ref().or(event.first_timestamp.as_ref()).map(time::at));
    let source = event
        .reporting_component
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| event.source.as_ref().and_then(|s| s.component.clone()))
        .unwrap_or_default();
    EventRecord {
        t: t.to_string(),
        at,
        type_: event.type_.clone().unwrap_or_default(),
        reason: event.reason.clone().unwrap_or_default(),
        message: event.message.clone().unwrap_or_default(),
        object,
        namespace,
        count,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::view;
    use k8s_openapi::api::core::v1::{Event, EventSeries, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn old_style(count: i32) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some("web-1.abc".into()),
                namespace: Some("ns".into()),
                uid: Some("e1".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("ns".into()),
                name: Some("web-1".into()),
                ..Default::default()
            },
            type_: Some("Warning".into()),
            reason: Some("BackOff".into()),
            message: Some("Back-off restarting failed container".into()),
            count: Some(count),
            first_timestamp: Some(Time(Timestamp::from_second(1_796_205_600).unwrap())),
            last_timestamp: Some(Time(Timestamp::from_second(1_796_205_600 + i64::from(count)).unwrap())),
            source: Some(EventSource { component: Some("kubelet".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn new_style(series: Option<i32>) -> Event {
        let t = |us: i64| MicroTime(Timestamp::from_microsecond(1_796_205_600_000_000 + us).unwrap());
        Event {
            metadata: ObjectMeta {
                name: Some("n.1".into()),
                namespace: Some("default".into()),
                uid: Some("e2".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Node".into()),
                name: Some("kwok-node-0".into()),
                ..Default::default()
            },
            type_: Some("Normal".into()),
            reason: Some("RegisteredNode".into()),
            message: Some("Node kwok-node-0 event: Registered Node".into()),
            event_time: Some(t(1)),
            series: series.map(|count| EventSeries { count: Some(count), last_observed_time: Some(t(500)) }),
            reporting_component: Some("node-controller".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_event_is_written_when_it_appears_and_when_its_count_grows() {
        let mut state = None;
        let mut counts = Vec::new();
        for (count, seen) in
            [(1, Seen::Watch), (1, Seen::Watch), (2, Seen::Watch), (2, Seen::Relist), (5, Seen::Relist)]
        {
            let (s, records) = Events.observe(state.take(), &view::of(&old_style(count)), seen, "t");
            state = Some(s);
            counts.extend(records.iter().map(|r| r.count));
        }
        assert_eq!(counts, [1, 2, 5]);
        assert!(Events.gone(5, Seen::Watch, "t").is_empty());
        let (_, records) = Events.observe(None, &view::of(&old_style(3)), Seen::Watch, "t");
        assert_eq!(
            serde_json::to_string(&records[0]).unwrap(),
            r#"{"t":"t","at":"2026-12-02T10:00:03Z","type":"Warning","reason":"BackOff","message":"Back-off restarting failed container","object":"Pod ns/web-1","namespace":"ns","count":3,"source":"kubelet"}"#
        );
    }

    #[test]
    fn events_from_before_the_run_are_remembered_not_written() {
        let (state, records) = Events.observe(None, &view::of(&old_style(4)), Seen::FirstList, "t");
        assert!(records.is_empty());
        let (_, records) = Events.observe(Some(state), &view::of(&old_style(5)), Seen::Watch, "t");
        assert_eq!(records.len(), 1);
        let (_, records) = Events.observe(None, &view::of(&old_style(1)), Seen::Relist, "t");
        assert_eq!(records.len(), 1, "new during a gap");
    }

    #[test]
    fn new_style_events_count_their_series_and_say_when_it_last_happened() {
        let (state, first) = Events.observe(None, &view::of(&new_style(None)), Seen::Watch, "t");
        assert_eq!((first[0].count, first[0].at.as_deref()), (1, Some("2026-12-02T10:00:00.000001Z")));
        assert_eq!((first[0].object.as_str(), first[0].namespace.as_str()), ("Node kwok-node-0", ""));
        assert_eq!(first[0].source, "node-controller");
        let (_, again) = Events.observe(Some(state), &view::of(&new_style(Some(2))), Seen::Watch, "t");
        assert_eq!((again[0].count, again[0].at.as_deref()), (2, Some("2026-12-02T10:00:00.0005Z")));
        assert!(about_nodes(&view::of(&new_style(None))) && !about_nodes(&view::of(&old_style(1))));
    }
}
