//! Synthetic traces for tests and benchmarks: small ConfigMaps and Deployments in namespaces
//! bench-0..bench-9, applied over a time span, some deleted later, written as SimKube v2 msgpack.
//! Written event by event with low-level msgpack calls, so a 100 MB file never sits in memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::lifecycle::PodLifecycle;

/// Objects (applied plus deleted) per event; events are small, as in a recorded cluster.
const OBJECTS_PER_EVENT: usize = 8;
/// Owners given recorded lifecycles, capped so the lifecycle map stays small at any size.
const MAX_LIFECYCLE_OWNERS: usize = 50;
/// Span and start of `write_synthetic` traces.
const BENCH_SPAN_SECONDS: i64 = 3600;
const BENCH_START_TS: i64 = 1_700_000_000;

/// splitmix64: a deterministic, dependency-free mixer; the same arguments always give the same trace.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Decides which objects each event applies and deletes.
struct Generator {
    seed: u64,
    state: u64,
    objects: usize,
    events: usize,
    span_seconds: i64,
    start_ts: i64,
    next_event: usize,
    next_id: u64,
    /// Objects applied in earlier events and not yet deleted: the candidates for deletion.
    live: Vec<u64>,
    /// (Deployment id, apply time) of owners that get recorded lifecycles.
    lifecycle_owners: Vec<(u64, i64)>,
}

impl Generator {
    fn new(objects: usize, span_seconds: i64, start_ts: i64) -> Self {
        let seed = mix(objects as u64 ^ mix(span_seconds as u64 ^ mix(start_ts as u64)));
        Generator {
            seed,
            state: seed,
            objects,
            events: objects.div_ceil(OBJECTS_PER_EVENT),
            span_seconds: span_seconds.max(0),
            start_ts,
            next_event: 0,
            next_id: 0,
            live: Vec::new(),
            lifecycle_owners: Vec::new(),
        }
    }

    fn random(&mut self) -> u64 {
        self.state = mix(self.state);
        self.state
    }

    fn is_deployment(&self, id: u64) -> bool {
        mix(id ^ self.seed).is_multiple_of(3)
    }

    /// The next event's timestamp, applied ids and deleted ids; `objects` entries over all events.
    fn next(&mut self) -> (i64, Vec<u64>, Vec<u64>) {
        let j = self.next_event;
        self.next_event += 1;
        let lo = self.objects * j / self.events;
        let hi = self.objects * (j + 1) / self.events;
        let offset = if self.events > 1 {
            (i128::from(self.span_seconds) * j as i128 / (self.events as i128 - 1)) as i64
        } else {
            0
        };
        let ts = self.start_ts.saturating_add(offset);
        let (mut applied, mut deleted) = (Vec::new(), Vec::new());
        for _ in lo..hi {
            if !self.live.is_empty() && self.random().is_multiple_of(4) {
                let victim = (self.random() % self.live.len() as u64) as usize;
                deleted.push(self.live.swap_remove(victim));
            } else {
                applied.push(self.next_id);
                if self.is_deployment(self.next_id) && self.lifecycle_owners.len() < MAX_LIFECYCLE_OWNERS {
                    self.lifecycle_owners.push((self.next_id, ts));
                }
                self.next_id += 1;
            }
        }
        // Only now: deletions always refer to objects of earlier events.
        self.live.extend_from_slice(&applied);
        (ts, applied, deleted)
    }

    fn gvk(&self, id: u64) -> &'static str {
        if self.is_deployment(id) { "apps/v1.Deployment" } else { "v1.ConfigMap" }
    }

    fn owner(&self, id: u64) -> String {
        let (namespace, name) = self.name(id);
        format!("{namespace}/{name}")
    }

    fn name(&self, id: u64) -> (String, String) {
        let namespace = format!("bench-{}", id % 10);
        let name = if self.is_deployment(id) { format!("deploy-{id}") } else { format!("cm-{id}") };
        (namespace, name)
    }

    fn object(&self, id: u64) -> Value {
        let (namespace, name) = self.name(id);
        if self.is_deployment(id) {
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "replicas": 1 + id % 3,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }]},
                    },
                },
            })
        } else {
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "bench"}},
                "data": {"key": format!("value-{id}")},
            })
        }
    }
}

fn encode_error(err: rmp_serde::encode::Error) -> io::Error {
    io::Error::other(err)
}

fn u32_len(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("msgpack length exceeds u32"))
}

fn map_len(w: &mut impl Write, len: usize) -> io::Result<()> {
    rmp::encode::write_map_len(w, u32_len(len)?)?;
    Ok(())
}

fn array_len(w: &mut impl Write, len: usize) -> io::Result<()> {
    rmp::encode::write_array_len(w, u32_len(len)?)?;
    Ok(())
}

fn key(w: &mut impl Write, key: &str) -> io::Result<()> {
    rmp::encode::write_str(w, key).map_err(io::Error::from)
}

/// Writes a whole trace; the events array length is known up front, so nothing is buffered.
fn write_trace(w: &mut impl Write, objects: usize, span_seconds: i64, start_ts: i64) -> io::Result<()> {
    let mut generator = Generator::new(objects, span_seconds, start_ts);
    map_len(w, 5)?;
    key(w, "version")?;
    rmp::encode::write_uint(w, 2)?;
    key(w, "config")?;
    let config = json!({"trackedObjects": {
        "apps/v1.Deployment": {"trackLifecycle": true},
        "v1.ConfigMap": {"podSpecTemplatePaths": []},
    }});
    rmp_serde::encode::write_named(w, &config).map_err(encode_error)?;

    key(w, "events")?;
    array_len(w, generator.events)?;
    for _ in 0..generator.events {
        let (ts, applied, deleted) = generator.next();
        map_len(w, 3)?;
        key(w, "ts")?;
        rmp::encode::write_sint(w, ts)?;
        for (field, ids) in [("applied_objs", &applied), ("deleted_objs", &deleted)] {
            key(w, field)?;
            array_len(w, ids.len())?;
            for &id in ids {
                rmp_serde::encode::write_named(w, &generator.object(id)).map_err(encode_error)?;
            }
        }
    }

    // index: GVK → "ns/name" → spec hash, for every object ever applied, as SimKube records it.
    key(w, "index")?;
    let deployments = (0..generator.next_id).filter(|&id| generator.is_deployment(id)).count();
    let config_maps = generator.next_id as usize - deployments;
    let groups: Vec<(&str, usize, bool)> =
        [("apps/v1.Deployment", deployments, true), ("v1.ConfigMap", config_maps, false)]
            .into_iter()
            .filter(|&(_, count, _)| count > 0)
            .collect();
    map_len(w, groups.len())?;
    for (gvk, count, deployment) in groups {
        key(w, gvk)?;
        map_len(w, count)?;
        for id in (0..generator.next_id).filter(|&id| generator.is_deployment(id) == deployment) {
            key(w, &generator.owner(id))?;
            rmp::encode::write_uint(w, mix(id))?;
        }
    }

    // pod_lifecycles: [GVK, "ns/owner"] → {spec hash → [lifecycle, ...]}.
    key(w, "pod_lifecycles")?;
    map_len(w, generator.lifecycle_owners.len())?;
    for &(id, ts) in &generator.lifecycle_owners {
        array_len(w, 2)?;
        key(w, generator.gvk(id))?;
        key(w, &generator.owner(id))?;
        map_len(w, 1)?;
        rmp::encode::write_uint(w, mix(id ^ 1))?;
        let lives = [PodLifecycle::Finished(ts + 5, ts + 35), PodLifecycle::Running(ts + 40)];
        rmp_serde::encode::write_named(w, &lives).map_err(encode_error)?;
    }
    Ok(())
}

/// A msgpack trace re-encoded in the JSON form the reader accepts: `pod_lifecycles`, keyed by
/// [GVK, owner] pairs in msgpack, becomes an array of `[[GVK, owner], {hash: [...]}]` pairs.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    #[derive(serde::Deserialize)]
    struct Whole {
        version: u64,
        config: serde_json::Value,
        events: Vec<serde_json::Value>,
        #[serde(default)]
        index: serde_json::Value,
        #[serde(default)]
        pod_lifecycles:
            std::collections::BTreeMap<(String, String), std::collections::BTreeMap<u64, serde_json::Value>>,
    }
    let whole: Whole = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    let lifecycles: Vec<serde_json::Value> =
        whole.pod_lifecycles.into_iter().map(|((gvk, owner), lives)| json!([[gvk, owner], lives])).collect();
    let doc = json!({
        "version": whole.version, "config": whole.config, "events": whole.events,
        "index": whole.index, "pod_lifecycles": lifecycles,
    });
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// A valid version-2 msgpack trace of `objects` applied-plus-deleted objects, events spread evenly over
/// `span_seconds` from `start_ts`; deterministic in its arguments.
pub fn synthetic(objects: usize, span_seconds: i64, start_ts: i64) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_trace(&mut bytes, objects, span_seconds, start_ts).expect("writing to a Vec cannot fail");
    bytes
}

/// Streams a synthetic trace of roughly `target_bytes` to `path` (never holding it in memory);
/// returns its object count.
pub fn write_synthetic(path: &Path, target_bytes: u64) -> io::Result<usize> {
    // Average encoded size per object, measured on a sample, sets how many objects reach the target.
    const SAMPLE: usize = 2_000;
    let per_object = (synthetic(SAMPLE, BENCH_SPAN_SECONDS, BENCH_START_TS).len() / SAMPLE).max(1) as u64;
    let objects = usize::try_from(target_bytes / per_object).unwrap_or(usize::MAX).max(1);
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write_trace(&mut writer, objects, BENCH_SPAN_SECONDS, BENCH_START_TS)?;
    writer.flush()?;
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::super::Trace;
    use super::*;

    #[test]
    fn synthetic_trace_has_requested_objects_and_span() {
        let trace = Trace::parse(synthetic(1000, 600, 1_000), "synthetic").unwrap();
        assert_eq!(trace.version(), 2);
        assert_eq!(trace.object_count(), 1000);
        assert_eq!(trace.event_count(), 125);
        assert_eq!(trace.first_ts(), Some(1_000));
        assert_eq!(trace.last_ts(), Some(1_600));
        let kinds: Vec<(String, String)> = trace.kinds().iter().cloned().collect();
        assert_eq!(
            kinds,
            vec![("apps/v1".to_string(), "Deployment".to_string()), ("v1".to_string(), "ConfigMap".to_string())]
        );
        let deleted: usize = trace.events().map(|e| e.unwrap().deleted.len()).sum();
        assert!(deleted > 100 && deleted < 400, "{deleted} deletions");
        assert_eq!(trace.config()["trackedObjects"]["apps/v1.Deployment"]["trackLifecycle"], true);
    }

    #[test]
    fn deletions_refer_to_objects_applied_earlier() {
        let trace = Trace::parse(synthetic(500, 100, 0), "synthetic").unwrap();
        let mut live = std::collections::BTreeSet::new();
        for event in trace.events() {
            let event = event.unwrap();
            for object in &event.deleted {
                let name = object["metadata"]["name"].as_str().unwrap().to_string();
                assert!(live.remove(&name), "{name} deleted before it was applied");
            }
            for object in &event.applied {
                assert!(live.insert(object["metadata"]["name"].as_str().unwrap().to_string()));
            }
        }
    }

    #[test]
    fn synthetic_lifecycles_are_recorded() {
        let trace = Trace::parse(synthetic(200, 100, 0), "synthetic").unwrap();
        let event = trace.event(0).unwrap();
        let deployment = event.applied.iter().find(|o| o["kind"] == "Deployment").expect("a deployment in event 0");
        let owner = format!(
            "{}/{}",
            deployment["metadata"]["namespace"].as_str().unwrap(),
            deployment["metadata"]["name"].as_str().unwrap()
        );
        let lives = trace.lifecycles("apps/v1.Deployment", &owner);
        assert_eq!(lives, &[PodLifecycle::Finished(5, 35), PodLifecycle::Running(40)]);
        assert_eq!(lives[0].duration_seconds(), Some(30));
    }

    #[test]
    fn empty_synthetic_trace_is_valid() {
        let trace = Trace::parse(synthetic(0, 10, 5), "synthetic").unwrap();
        assert_eq!((trace.event_count(), trace.object_count(), trace.first_ts()), (0, 0, None));
    }

    #[test]
    fn property_object_count_matches_decoded_events() {
        // Many sizes, spans and starts (the generator's seed derives from all three).
        for objects in [1, 2, 7, 8, 9, 15, 16, 17, 63, 100, 257, 1000] {
            for (span, start) in [(0, 0), (1, 1_743_286_823), (59, -100), (3600, 42), (86_400, 1_000_000)] {
                let trace = Trace::parse(synthetic(objects, span, start), "synthetic").unwrap();
                let decoded: usize =
                    trace.events().map(|e| e.map(|e| e.applied.len() + e.deleted.len()).unwrap()).sum();
                assert_eq!(trace.object_count(), objects, "objects {objects} span {span} start {start}");
                assert_eq!(decoded, objects, "objects {objects} span {span} start {start}");
                assert_eq!(trace.first_ts(), Some(start));
                assert_eq!(trace.last_ts(), Some(start + if trace.event_count() > 1 { span } else { 0 }));
                let ts: Vec<i64> = trace.event_timestamps().collect();
                assert!(ts.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }

    #[test]
    fn write_synthetic_streams_roughly_the_target_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.sktrace");
        let objects = write_synthetic(&path, 2_000_000).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!((1_800_000..2_200_000).contains(&size), "{size} bytes");
        let trace = Trace::parse(std::fs::read(&path).unwrap(), "bench.sktrace").unwrap();
        assert_eq!(trace.object_count(), objects);
    }

    #[test]
    fn the_json_form_reads_back_as_the_same_trace() {
        let packed = synthetic(200, 100, 0);
        let (a, b) = (
            Trace::parse(packed.clone(), "msgpack").unwrap(),
            Trace::parse(msgpack_to_json(&packed).unwrap(), "json").unwrap(),
        );
        assert_eq!(
            (b.event_count(), b.object_count(), b.first_ts(), b.last_ts()),
            (a.event_count(), a.object_count(), a.first_ts(), a.last_ts())
        );
        for i in 0..a.event_count() {
            let (x, y) = (a.event(i).unwrap(), b.event(i).unwrap());
            assert_eq!((x.ts, &x.applied, &x.deleted), (y.ts, &y.applied, &y.deleted), "event {i}");
        }
        let event = a.event(0).unwrap();
        let d = event.applied.iter().find(|o| o["kind"] == "Deployment").expect("a deployment in event 0");
        let owner =
            format!("{}/{}", d["metadata"]["namespace"].as_str().unwrap(), d["metadata"]["name"].as_str().unwrap());
        assert_eq!(b.lifecycles("apps/v1.Deployment", &owner), a.lifecycles("apps/v1.Deployment", &owner));
        assert!(msgpack_to_json(b"not msgpack").is_err());
    }
}
