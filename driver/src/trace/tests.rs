//! Parsing the shared SimKube fixtures and rejecting bad input with pinned messages.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/simkube-traces/");

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_fixture(name: &str) -> Trace {
    Trace::parse(fixture(name), name).unwrap()
}

fn kinds(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect()
}

fn name_of(object: &Value) -> (&str, &str, &str) {
    (
        object["kind"].as_str().unwrap(),
        object["metadata"]["namespace"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap(),
    )
}

/// Builds a trace document (as JSON) from a parsed trace, for re-encoding in the other format.
fn document(trace: &Trace, lifecycles: Value) -> Value {
    let events: Vec<Value> = trace
        .events()
        .map(|e| {
            let e = e.unwrap();
            json!({"ts": e.ts, "applied_objs": e.applied, "deleted_objs": e.deleted})
        })
        .collect();
    json!({"version": 2, "config": trace.config(), "events": events, "index": {}, "pod_lifecycles": lifecycles})
}

fn msgpack(value: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

fn parse_err(bytes: impl Into<Vec<u8>>, origin: &str) -> String {
    Trace::parse(bytes.into(), origin).unwrap_err().to_string()
}

#[test]
fn fixture_path_resolves_to_the_shared_folder() {
    let path = std::path::Path::new(FIXTURES).canonicalize().unwrap();
    assert!(path.ends_with("shared/fixtures/simkube-traces"), "{}", path.display());
}

#[test]
fn cronjob_fixture() {
    let trace = parse_fixture("cronjob.sktrace");
    assert_eq!(trace.format(), TraceFormat::Msgpack);
    assert_eq!(trace.version(), 2);
    assert_eq!(trace.origin(), "cronjob.sktrace");
    assert_eq!(trace.event_count(), 3);
    assert_eq!(trace.object_count(), 2);
    assert_eq!(trace.first_ts(), Some(1743286823));
    assert_eq!(trace.last_ts(), Some(1743287028));
    assert_eq!(trace.event_timestamps().collect::<Vec<_>>(), vec![1743286823, 1743286823, 1743287028]);
    assert_eq!(trace.kinds(), &kinds(&[("batch/v1", "CronJob")]));
    assert_eq!(trace.config()["trackedObjects"]["batch/v1.CronJob"], json!({"trackLifecycle": true}));
    assert_eq!(trace.config()["trackedObjects"]["apps/v1.Deployment"], json!({}));

    let first = trace.event(0).unwrap();
    assert!(first.applied.is_empty() && first.deleted.is_empty());
    let applied = trace.event(1).unwrap();
    assert_eq!(applied.ts, 1743286823);
    assert_eq!(applied.applied.len(), 1);
    assert!(applied.deleted.is_empty());
    assert_eq!(name_of(&applied.applied[0]), ("CronJob", "default", "hello-simkube"));
    assert_eq!(applied.applied[0]["apiVersion"], "batch/v1");
    assert_eq!(applied.applied[0]["spec"]["schedule"], "* * * * *");
    let deleted = trace.event(2).unwrap();
    assert_eq!(deleted.ts, 1743287028);
    assert!(deleted.applied.is_empty());
    assert_eq!(name_of(&deleted.deleted[0]), ("CronJob", "default", "hello-simkube"));

    let lives = trace.lifecycles(&gvk_string("batch/v1", "CronJob"), "default/hello-simkube");
    assert_eq!(
        lives,
        &[
            PodLifecycle::Finished(1743286861, 1743286891),
            PodLifecycle::Finished(1743286921, 1743286951),
            PodLifecycle::Finished(1743286981, 1743287011),
        ]
    );
    assert!(lives.iter().all(|l| l.duration_seconds() == Some(30)));
    assert!(trace.lifecycles("batch/v1.CronJob", "other/hello-simkube").is_empty());
    assert!(trace.lifecycles("batch/v1.Job", "default/hello-simkube").is_empty());

    assert_eq!(trace.event(3).unwrap_err().to_string(), "cronjob.sktrace: there is no event 3; the trace has 3 events");
}

#[test]
fn bare_pods_fixture() {
    let trace = parse_fixture("bare-pods.sktrace");
    assert_eq!(trace.event_count(), 4);
    assert_eq!(trace.object_count(), 4);
    assert_eq!(trace.event_timestamps().collect::<Vec<_>>(), vec![1781282468, 1781282510, 1781282570, 1781282630]);
    assert_eq!(trace.kinds(), &kinds(&[("v1", "Pod")]));
    assert_eq!(
        trace.config()["trackedObjects"]["v1.Pod"],
        json!({"podSpecTemplatePaths": [""], "trackLifecycle": true, "skipOwned": true})
    );
    let names: Vec<String> = trace
        .events()
        .map(|e| {
            let e = e.unwrap();
            assert!(e.deleted.is_empty());
            assert_eq!(e.applied.len(), 1);
            let (kind, namespace, name) = name_of(&e.applied[0]);
            assert_eq!((kind, namespace), ("Pod", "testing"));
            name.to_string()
        })
        .collect();
    assert_eq!(names, ["bare-pod-1781282449", "bare-pod-1781282509", "bare-pod-1781282570", "bare-pod-1781282630"]);

    let pod = |name: &str| trace.lifecycles("v1.Pod", &format!("testing/{name}")).to_vec();
    assert_eq!(pod("bare-pod-1781282449"), [PodLifecycle::Finished(1781282468, 1781282480)]);
    assert_eq!(pod("bare-pod-1781282509"), [PodLifecycle::Finished(1781282511, 1781282541)]);
    assert_eq!(pod("bare-pod-1781282570"), [PodLifecycle::Finished(1781282571, 1781282601)]);
    assert_eq!(pod("bare-pod-1781282630"), [PodLifecycle::Running(1781282631)]);
    assert_eq!(pod("bare-pod-1781282630")[0].duration_seconds(), None);
    assert_eq!(pod("bare-pod-1781282449")[0].duration_seconds(), Some(12));
}

#[test]
fn trace_json_fixture() {
    let trace = parse_fixture("trace.json");
    assert_eq!(trace.format(), TraceFormat::Json);
    assert_eq!(trace.version(), 2);
    assert_eq!(trace.event_count(), 1);
    assert_eq!(trace.object_count(), 2);
    assert_eq!((trace.first_ts(), trace.last_ts()), (Some(1709241485), Some(1709241485)));
    assert_eq!(trace.kinds(), &kinds(&[("apps/v1", "Deployment")]));
    assert_eq!(
        trace.config()["trackedObjects"]["apps/v1.Deployment"]["podSpecTemplatePaths"],
        json!(["/spec/template"])
    );
    let event = trace.event(0).unwrap();
    assert_eq!(event.ts, 1709241485);
    assert_eq!(name_of(&event.applied[0]), ("Deployment", "default", "nginx-deployment"));
    // The recorded deletion is of a second Deployment (the fixture's own content).
    assert_eq!(name_of(&event.deleted[0]), ("Deployment", "default", "nginx-deployment-2"));
    assert!(trace.lifecycles("apps/v1.Deployment", "default/nginx-deployment").is_empty());
}

#[test]
fn both_formats_parse_to_the_same_structures() {
    // msgpack fixture → JSON (lifecycles in the array-of-pairs form JSON can hold) → same trace.
    let packed = parse_fixture("cronjob.sktrace");
    let lifecycles = json!([[["batch/v1.CronJob", "default/hello-simkube"], {
        "10855072724872030168": [
            {"Finished": [1743286861, 1743286891]},
            {"Finished": [1743286921, 1743286951]},
            {"Finished": [1743286981, 1743287011]},
        ]
    }]]);
    let json_bytes = serde_json::to_vec_pretty(&document(&packed, lifecycles)).unwrap();
    let from_json = Trace::parse(json_bytes, "cronjob.json").unwrap();
    assert_eq!(from_json.format(), TraceFormat::Json);
    assert_same(&packed, &from_json);
    assert_eq!(
        from_json.lifecycles("batch/v1.CronJob", "default/hello-simkube"),
        packed.lifecycles("batch/v1.CronJob", "default/hello-simkube")
    );
    // The pod-spec hash (a JSON object key, so a string) is kept as SimKube's u64.
    fn by_hash(t: &Trace) -> Option<&[PodLifecycle]> {
        t.lifecycles_for_hash("batch/v1.CronJob", "default/hello-simkube", 10855072724872030168)
    }
    assert_eq!(by_hash(&from_json), by_hash(&packed));
    assert_eq!(by_hash(&from_json).map(<[PodLifecycle]>::len), Some(3));

    // JSON fixture → msgpack → same trace.
    let from_file = parse_fixture("trace.json");
    let repacked = Trace::parse(msgpack(&document(&from_file, json!({}))), "trace.sktrace").unwrap();
    assert_eq!(repacked.format(), TraceFormat::Msgpack);
    assert_same(&from_file, &repacked);
}

fn assert_same(a: &Trace, b: &Trace) {
    assert_eq!(a.version(), b.version());
    assert_eq!(a.config(), b.config());
    assert_eq!(a.event_count(), b.event_count());
    assert_eq!(a.object_count(), b.object_count());
    assert_eq!(a.kinds(), b.kinds());
    assert_eq!(a.event_timestamps().collect::<Vec<_>>(), b.event_timestamps().collect::<Vec<_>>());
    for i in 0..a.event_count() {
        assert_eq!(a.event(i).unwrap(), b.event(i).unwrap(), "event {i}");
    }
}

#[test]
fn empty_input() {
    assert_eq!(parse_err(vec![], "empty.sktrace"), "empty.sktrace: the trace is empty");
    assert_eq!(parse_err(b" \n\t\r\n".to_vec(), "blank.json"), "blank.json: the trace is empty");
}

#[test]
fn unknown_formats_name_the_first_bytes() {
    assert_eq!(
        parse_err(vec![0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03], "trace.sktrace.gz"),
        "trace.sktrace.gz: not a trace: expected a msgpack map or a JSON object, but the first bytes are \
         1f 8b 08 00 00 00 00 00 (\"........\")"
    );
    assert_eq!(
        parse_err(b"\n<html>404</html>".to_vec(), "page.html"),
        "page.html: not a trace: expected a msgpack map or a JSON object, but the first bytes are \
         3c 68 74 6d 6c 3e 34 30 (\"<html>40\")"
    );
    assert_eq!(
        parse_err(b"[1]".to_vec(), "array.json"),
        "array.json: not a trace: expected a msgpack map or a JSON object, but the first bytes are 5b 31 5d (\"[1]\")"
    );
}

/// A tiny deterministic generator for "random bytes" tests.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_errors_not_panics() {
    for seed in 0..500u64 {
        let mut bytes = pseudo_random(seed, 1 + (seed as usize * 7) % 300);
        // Half of them start like a msgpack map or a JSON object, to get past format detection.
        match seed % 4 {
            0 => bytes[0] = 0x80 | (bytes[0] & 0x0f),
            1 => bytes[0] = 0xde,
            2 => bytes[0] = b'{',
            _ => {}
        }
        let err = Trace::parse(bytes, "random.bin").unwrap_err().to_string();
        assert!(err.starts_with("random.bin"), "{err}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let original = fixture("cronjob.sktrace");
    for i in 0..original.len() {
        for replacement in [0x00, 0x7f, 0xc1, 0xdc, 0xdf, 0xdb, 0xff] {
            let mut bytes = original.clone();
            bytes[i] = replacement;
            if let Err(err) = Trace::parse(bytes, "flipped.sktrace") {
                assert!(err.to_string().starts_with("flipped.sktrace"), "{err}");
            }
        }
    }
}

#[test]
fn other_versions_are_rejected() {
    let original = fixture("cronjob.sktrace");
    // 0x85, fixstr "version" (8 bytes), then the version as a positive fixint.
    assert_eq!(&original[..10], b"\x85\xa7version\x02");
    for version in [1u8, 3] {
        let mut bytes = original.clone();
        bytes[9] = version;
        assert_eq!(
            parse_err(bytes, "cronjob.sktrace"),
            format!("cronjob.sktrace is trace format version {version}; this driver reads version 2")
        );
    }
    // Re-encoded documents: a large version and a JSON one.
    let mut doc = document(&parse_fixture("cronjob.sktrace"), json!({}));
    doc["version"] = json!(70000);
    assert_eq!(
        parse_err(msgpack(&doc), "v.sktrace"),
        "v.sktrace is trace format version 70000; this driver reads version 2"
    );
    doc["version"] = json!(3);
    assert_eq!(
        parse_err(serde_json::to_vec(&doc).unwrap(), "v3.json"),
        "v3.json is trace format version 3; this driver reads version 2"
    );
    doc["version"] = json!("2");
    let bytes = msgpack(&doc);
    let at = bytes.windows(8).position(|w| w == b"\xa7version").unwrap() + 8;
    assert_eq!(
        parse_err(bytes, "v.sktrace"),
        format!("v.sktrace: byte {at}: version: expected an integer, found a string")
    );
}

#[test]
fn truncated_files_are_errors() {
    let original = fixture("cronjob.sktrace");
    for cut in (0..original.len()).step_by(97).chain([original.len() - 1]) {
        let err = parse_err(original[..cut].to_vec(), "cut.sktrace");
        if cut == 0 {
            assert_eq!(err, "cut.sktrace: the trace is empty");
        } else {
            assert!(
                err.starts_with(&format!("cut.sktrace: byte {cut}: ")) && err.ends_with("the trace is truncated)"),
                "cut at {cut}: {err}"
            );
        }
    }
    // Which part was being read is named.
    assert_eq!(
        parse_err(original[..200].to_vec(), "cut.sktrace"),
        "cut.sktrace: byte 200: events[1]: unexpected end of data (the trace is truncated)"
    );
    assert_eq!(
        parse_err(original[..1600].to_vec(), "cut.sktrace"),
        "cut.sktrace: byte 1600: pod_lifecycles[batch/v1.CronJob, default/hello-simkube]: unexpected end of data \
         (the trace is truncated)"
    );
}

#[test]
fn truncated_json_is_an_error_with_line_and_column() {
    let original = fixture("trace.json");
    for cut in (1..original.len()).step_by(97) {
        let err = parse_err(original[..cut].to_vec(), "cut.json");
        assert!(err.starts_with("cut.json: line "), "cut at {cut}: {err}");
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = fixture("cronjob.sktrace");
    bytes.push(0xc0);
    assert_eq!(
        parse_err(bytes, "cronjob.sktrace"),
        "cronjob.sktrace: byte 1620: top level: 1 unexpected bytes after the end of the trace"
    );
}

fn one_event_doc(event: Value) -> Value {
    json!({"version": 2, "config": {}, "events": [event], "index": {}, "pod_lifecycles": {}})
}

#[test]
fn event_with_string_ts_msgpack() {
    let bytes = msgpack(&one_event_doc(json!({"ts": "soon", "applied_objs": [], "deleted_objs": []})));
    let at = bytes.windows(5).position(|w| w == b"\xa4soon").unwrap();
    assert_eq!(
        parse_err(bytes, "bad-ts.sktrace"),
        format!("bad-ts.sktrace: byte {at}: events[0].ts: expected an integer, found a string")
    );
}

#[test]
fn event_with_string_ts_json() {
    let text = "{\n  \"version\": 2,\n  \"config\": {},\n  \"events\": [\n    {\"ts\": \"soon\", \"applied_objs\": [], \
                \"deleted_objs\": []}\n  ]\n}\n";
    assert_eq!(
        parse_err(text, "bad-ts.json"),
        "bad-ts.json: line 5, column 17: events[0].ts: invalid type: string \"soon\", expected i64"
    );
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text =
        "{\n  \"version\": 2,\n  \"config\": {},\n  \"events\": [\n    {\"ts\": 1 \"applied_objs\": []}\n  ]\n}\n";
    assert_eq!(parse_err(text, "broken.json"), "broken.json: line 5, column 14: top level: expected `,` or `}`");
    let text = "{\"version\": 2, \"config\": {}, \"events\": []} x";
    assert_eq!(parse_err(text, "extra.json"), "extra.json: line 1, column 44: top level: trailing characters");
}

#[test]
fn missing_and_malformed_fields() {
    let bytes = msgpack(&json!({"version": 2, "config": {}}));
    assert_eq!(parse_err(bytes, "t.sktrace"), "t.sktrace: byte 0: top level: missing key `events`");
    assert_eq!(
        parse_err(r#"{"version": 2, "events": []}"#, "t.json"),
        "t.json: line 1, column 1: top level: missing field `config`"
    );
    let bytes = msgpack(&one_event_doc(json!({"ts": 5, "applied_objs": []})));
    let err = parse_err(bytes, "t.sktrace");
    assert!(err.ends_with(": events[0]: missing key `deleted_objs`"), "{err}");
    let bytes = msgpack(&json!({"version": 2, "config": [], "events": []}));
    let err = parse_err(bytes, "t.sktrace");
    assert!(err.ends_with(": config: expected a map"), "{err}");
    let bytes = msgpack(&json!({"version": 2, "config": {}, "events": {}}));
    let err = parse_err(bytes, "t.sktrace");
    assert!(err.ends_with(": events: expected an array, found a map"), "{err}");
}

#[test]
fn objects_need_api_version_kind_and_name() {
    let cases = [
        (json!("a string"), "expected an object"),
        (json!({"kind": "Pod", "metadata": {"name": "p"}}), "object has no `apiVersion` string"),
        (json!({"apiVersion": "v1", "metadata": {"name": "p"}}), "object has no `kind` string"),
        (json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}), "object has no `metadata.name` string"),
    ];
    for (object, problem) in cases {
        let doc = one_event_doc(json!({"ts": 1, "applied_objs": [], "deleted_objs": [object]}));
        let err = parse_err(msgpack(&doc), "o.sktrace");
        assert!(
            err.starts_with("o.sktrace: byte ") && err.ends_with(&format!(": events[0].deleted_objs[0]: {problem}")),
            "{err}"
        );
        let err = parse_err(serde_json::to_vec(&doc).unwrap(), "o.json");
        assert!(
            err.starts_with("o.json: line 1, column ")
                && err.ends_with(&format!(": events[0].deleted_objs[0]: {problem}")),
            "{err}"
        );
    }
}

#[test]
fn events_must_be_in_time_order() {
    let event = |ts: i64| json!({"ts": ts, "applied_objs": [], "deleted_objs": []});
    let doc = json!({"version": 2, "config": {}, "events": [event(10), event(10), event(5)]});
    let err = parse_err(msgpack(&doc), "order.sktrace");
    assert!(
        err.ends_with(
            ": events[2].ts: timestamp 5 is earlier than the previous event's 10; events must be in time order"
        ),
        "{err}"
    );
}

#[test]
fn json_lifecycles_object_must_be_empty() {
    let doc = json!({"version": 2, "config": {}, "events": [], "pod_lifecycles": {"x": {}}});
    assert_eq!(
        parse_err(serde_json::to_vec(&doc).unwrap(), "l.json"),
        "l.json: line 1, column 43: pod_lifecycles: keys must be [GVK, \"namespace/name\"] pairs, which a JSON \
         object cannot hold; write an array of [[GVK, \"namespace/name\"], {hash: [lifecycle, ...]}] pairs instead"
    );
}

#[test]
fn unknown_keys_are_skipped() {
    let doc = json!({
        "version": 2, "config": {}, "future": [1, {"a": null}],
        "events": [{"ts": 1, "extra": "x", "applied_objs": [], "deleted_objs": []}],
    });
    assert_eq!(Trace::parse(msgpack(&doc), "u.sktrace").unwrap().event_count(), 1);
    assert_eq!(Trace::parse(serde_json::to_vec(&doc).unwrap(), "u.json").unwrap().event_count(), 1);
}

#[test]
fn gvk_strings() {
    assert_eq!(gvk_string("apps/v1", "Deployment"), "apps/v1.Deployment");
    assert_eq!(gvk_string("v1", "Pod"), "v1.Pod");
    assert_eq!(gvk_string("batch/v1", "CronJob"), "batch/v1.CronJob");
}

#[test]
fn index_is_small_and_proportional_to_events() {
    // ~20 MB: the Trace holds the bytes plus 24 bytes per event, not decoded objects.
    let bytes = synthetic(90_000, 3600, 1_700_000_000);
    assert!(bytes.len() > 15_000_000, "{} bytes", bytes.len());
    let len = bytes.len();
    let trace = Trace::parse(bytes, "bench.sktrace").unwrap();
    assert_eq!(trace.object_count(), 90_000);
    assert_eq!(std::mem::size_of::<EventSpan>(), 24);
    assert_eq!(trace.events.capacity(), trace.event_count());
    let heap = trace.index_heap_bytes();
    assert!(heap <= 24 * trace.event_count() + 16_384, "{heap} bytes of index");
    assert!(heap * 50 < len, "{heap} bytes of index for {len} bytes of trace");
}

#[test]
fn timestamps_at_the_i64_bounds_are_rejected_not_overflowed() {
    // i64::MIN then i64::MAX: in order, but their difference overflows an i64.
    for (ts, format) in [(i64::MIN, "msgpack"), (i64::MAX, "msgpack"), (i64::MIN, "json"), (i64::MAX, "json")] {
        let doc = json!({"version": 2, "config": {}, "index": {}, "pod_lifecycles": {}, "events": [
            {"ts": 0, "applied_objs": [], "deleted_objs": []},
            {"ts": ts, "applied_objs": [], "deleted_objs": []},
        ]});
        let bytes = if format == "json" { serde_json::to_vec(&doc).unwrap() } else { msgpack(&doc) };
        let err = parse_err(bytes, "extreme");
        let expected = format!(
            "events[1].ts: timestamp {ts} is outside -62135596800..=253402300799 (0001-01-01 to 9999-12-31 in \
             Unix seconds)"
        );
        assert!(err.starts_with("extreme: ") && err.ends_with(&expected), "{format} {ts}: {err}");
    }
    let doc = one_event_doc(json!({"ts": i64::MIN, "applied_objs": [], "deleted_objs": []}));
    let err = parse_err(msgpack(&doc), "min.sktrace");
    assert_eq!(
        err,
        "min.sktrace: byte 17: events[0].ts: timestamp -9223372036854775808 is outside -62135596800..=253402300799 \
         (0001-01-01 to 9999-12-31 in Unix seconds)"
    );
    // The bounds themselves are accepted.
    for ts in [crate::limits::MIN_TRACE_TS, crate::limits::MAX_TRACE_TS] {
        let doc = one_event_doc(json!({"ts": ts, "applied_objs": [], "deleted_objs": []}));
        assert_eq!(Trace::parse(msgpack(&doc), "t").unwrap().first_ts(), Some(ts));
    }
}

#[test]
fn lifecycles_at_the_i64_bounds_are_rejected() {
    let lifecycles = json!([[["v1.Pod", "ns/p"], {"1": [{"Finished": [i64::MIN, i64::MAX]}]}]]);
    let doc = json!({"version": 2, "config": {}, "events": [], "pod_lifecycles": lifecycles});
    assert_eq!(
        parse_err(serde_json::to_vec(&doc).unwrap(), "life.json"),
        "life.json: line 1, column 1: pod_lifecycles[v1.Pod, ns/p]: Finished(-9223372036854775808, \
         9223372036854775807) has a timestamp outside -62135596800..=253402300799 (0001-01-01 to 9999-12-31 in \
         Unix seconds)"
    );
    // msgpack: keys are [GVK, owner] arrays, so the document is written by hand.
    let mut bytes = Vec::new();
    rmp::encode::write_map_len(&mut bytes, 3).unwrap();
    for (k, v) in [("version", json!(2)), ("config", json!({})), ("events", json!([]))] {
        rmp::encode::write_str(&mut bytes, k).unwrap();
        if k == "version" {
            rmp::encode::write_uint(&mut bytes, 2).unwrap();
        } else {
            bytes.extend(msgpack(&v));
        }
    }
    bytes[0] = 0x84;
    rmp::encode::write_str(&mut bytes, "pod_lifecycles").unwrap();
    rmp::encode::write_map_len(&mut bytes, 1).unwrap();
    rmp::encode::write_array_len(&mut bytes, 2).unwrap();
    rmp::encode::write_str(&mut bytes, "v1.Pod").unwrap();
    rmp::encode::write_str(&mut bytes, "ns/p").unwrap();
    rmp::encode::write_map_len(&mut bytes, 1).unwrap();
    rmp::encode::write_uint(&mut bytes, 7).unwrap();
    bytes.extend(msgpack(&json!([{"Running": i64::MAX}])));
    let err = parse_err(bytes, "life.sktrace");
    assert_eq!(
        err,
        "life.sktrace: byte 0: pod_lifecycles[v1.Pod, ns/p]: Running(9223372036854775807) has a timestamp outside \
         -62135596800..=253402300799 (0001-01-01 to 9999-12-31 in Unix seconds)"
    );
}

#[test]
fn lifecycles_keep_simkube_pod_spec_hashes() {
    // The keys SimKube wrote: the hash of each owner's pods' stable spec.
    let cronjob = parse_fixture("cronjob.sktrace");
    let owner = ("batch/v1.CronJob", "default/hello-simkube");
    let recorded = cronjob.lifecycles_for_hash(owner.0, owner.1, 10855072724872030168);
    assert_eq!(recorded, Some(cronjob.lifecycles(owner.0, owner.1)));
    assert_eq!(cronjob.lifecycles_for_hash(owner.0, owner.1, 1), None);
    assert_eq!(cronjob.lifecycles_for_hash("batch/v1.Job", owner.1, 10855072724872030168), None);

    let bare = parse_fixture("bare-pods.sktrace");
    assert_eq!(
        bare.lifecycles_for_hash("v1.Pod", "testing/bare-pod-1781282449", 2151974655102796215),
        Some(&[PodLifecycle::Finished(1781282468, 1781282480)][..])
    );

    // Hand-written JSON: several hashes of one owner stay apart, in recorded order each.
    let doc = json!({"version": 2, "config": {}, "events": [], "pod_lifecycles": [[["apps/v1.Deployment", "ns/web"], {
        "18446744073709551615": [{"Finished": [10, 40]}],
        "5": [{"Finished": [0, 5]}, {"Running": 7}]
    }]]});
    let trace = Trace::parse(serde_json::to_vec(&doc).unwrap(), "h.json").unwrap();
    let get = |hash| trace.lifecycles_for_hash("apps/v1.Deployment", "ns/web", hash);
    assert_eq!(get(5), Some(&[PodLifecycle::Finished(0, 5), PodLifecycle::Running(7)][..]));
    assert_eq!(get(u64::MAX), Some(&[PodLifecycle::Finished(10, 40)][..]));
    assert_eq!(get(6), None);
    assert_eq!(
        trace.lifecycles("apps/v1.Deployment", "ns/web"),
        &[PodLifecycle::Finished(0, 5), PodLifecycle::Running(7), PodLifecycle::Finished(10, 40)]
    );
}
