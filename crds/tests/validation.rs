//! Every CEL rule of the CRDs, evaluated without a cluster on the generated schema: valid
//! objects pass, and each invalid object is rejected with a message naming its field. The
//! same invalid objects are tried against a real API server in `e2e/tests`.

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use rehearsal_crds::{Scenario, Simulation, SimulationRoot};
use serde_json::{Value, json};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).expect("CRD schema is JSON")
}

/// The messages of every failed rule, each prefixed with its field path.
fn errors<K: CustomResourceExt>(object: &Value) -> Vec<String> {
    match Validator::new().validate(&schema::<K>(), object, None) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
    }
}

fn simulation(spec: Value) -> Value {
    json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Simulation", "metadata": {"name": "sim"}, "spec": spec})
}

fn scenario(spec: Value) -> Value {
    json!({"apiVersion": "rehearsal.dev/v1alpha1", "kind": "Scenario", "metadata": {"name": "scn"}, "spec": spec})
}

fn trace_spec() -> Value {
    json!({"source": {"trace": {"uri": "s3://bucket/trace.sktrace"}}})
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = base.pointer_mut(parent).expect("parent exists").as_object_mut().expect("parent is an object");
    target.insert(key.to_string(), value);
    base
}

/// Asserts exactly one error, at `path`, whose message contains `needle`.
#[track_caller]
fn assert_rejected<K: CustomResourceExt>(object: &Value, path: &str, needle: &str) {
    let errs = errors::<K>(object);
    assert_eq!(errs.len(), 1, "expected one error at {path}, got {errs:?} for {object}");
    assert!(
        errs[0].starts_with(&format!("{path}: ")) && errs[0].contains(needle),
        "expected an error at {path} containing {needle:?}, got {:?}",
        errs[0]
    );
}

fn example(name: &str) -> Value {
    let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

#[test]
fn examples_are_valid_and_typed() {
    for file in ["simulation-trace.yaml", "simulation-scenario.yaml"] {
        let obj = example(file);
        assert_eq!(errors::<Simulation>(&obj), Vec::<String>::new(), "{file}");
        let _: Simulation = serde_json::from_value(obj).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let obj = example("scenario.yaml");
    assert_eq!(errors::<Scenario>(&obj), Vec::<String>::new());
    let scn: Scenario = serde_json::from_value(obj).expect("scenario example is a Scenario");
    assert_eq!(scn.spec.steps.len(), 5);
}

#[test]
fn simulation_defaults() {
    let sim: Simulation = serde_json::from_value(simulation(trace_spec())).expect("minimal simulation");
    assert_eq!(sim.spec.speed, 1.0);
    assert_eq!(sim.spec.repetitions, 1);
    assert_eq!(sim.spec.virtual_namespace_prefix, "virtual");
    let driver: rehearsal_crds::DriverConfig = serde_json::from_value(json!({})).expect("empty driver config");
    assert_eq!(driver.port, 8888);
    // The same defaults are in the schema, so the API server fills them in.
    let s = schema::<Simulation>();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["speed"]["default"], json!(1.0));
    assert_eq!(spec["repetitions"]["default"], json!(1));
    assert_eq!(spec["virtualNamespacePrefix"]["default"], json!("virtual"));
    assert_eq!(spec["driver"]["properties"]["port"]["default"], json!(8888));
}

#[test]
fn simulation_needs_exactly_one_source() {
    let both = simulation(json!({"source": {"trace": {"uri": "s3://b/t"}, "scenarioRef": {"name": "x"}}}));
    assert_rejected::<Simulation>(&both, "spec.source", "exactly one of source.trace or source.scenarioRef");
    let neither = simulation(json!({"source": {}}));
    assert_rejected::<Simulation>(&neither, "spec.source", "exactly one of source.trace or source.scenarioRef");
    let scenario_only = simulation(json!({"source": {"scenarioRef": {"name": "web"}}}));
    assert_eq!(errors::<Simulation>(&scenario_only), Vec::<String>::new());
}

#[test]
fn trace_source_rules() {
    let both = simulation(
        json!({"source": {"trace": {"uri": "s3://b/t", "configMapRef": {"namespace": "ns", "name": "n", "key": "k"}}}}),
    );
    assert_rejected::<Simulation>(&both, "spec.source.trace", "exactly one of trace.uri or trace.configMapRef");
    let neither = simulation(json!({"source": {"trace": {}}}));
    assert_rejected::<Simulation>(&neither, "spec.source.trace", "exactly one of trace.uri or trace.configMapRef");
    let ftp = simulation(json!({"source": {"trace": {"uri": "ftp://host/t"}}}));
    assert_rejected::<Simulation>(&ftp, "spec.source.trace.uri", "trace.uri must start with s3://");
    for ok in ["s3://b/k", "file:///t.sktrace", "http://127.0.0.1/t", "https://x/t.json"] {
        assert_eq!(
            errors::<Simulation>(&simulation(json!({"source": {"trace": {"uri": ok}}}))),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    let bad_ns =
        simulation(json!({"source": {"trace": {"configMapRef": {"namespace": "Bad_NS", "name": "n", "key": "k"}}}}));
    assert_rejected::<Simulation>(
        &bad_ns,
        "spec.source.trace.configMapRef.namespace",
        "configMapRef.namespace must be a DNS label",
    );
    let no_key =
        simulation(json!({"source": {"trace": {"configMapRef": {"namespace": "ns", "name": "n", "key": ""}}}}));
    assert_rejected::<Simulation>(&no_key, "spec.source.trace.configMapRef.key", "configMapRef.key must not be empty");
    let no_name =
        simulation(json!({"source": {"trace": {"configMapRef": {"namespace": "ns", "name": "", "key": "k"}}}}));
    assert_rejected::<Simulation>(
        &no_name,
        "spec.source.trace.configMapRef.name",
        "configMapRef.name must not be empty",
    );
    let empty_ref = simulation(json!({"source": {"scenarioRef": {"name": ""}}}));
    assert_rejected::<Simulation>(&empty_ref, "spec.source.scenarioRef.name", "scenarioRef.name must not be empty");
}

#[test]
fn speed_is_bounded() {
    for bad in [json!(0.0), json!(-1.5)] {
        let obj = with(simulation(trace_spec()), "/spec/speed", bad);
        assert_rejected::<Simulation>(&obj, "spec.speed", "speed must be from 0.001 to 10000");
    }
    assert!(errors::<Simulation>(&with(simulation(trace_spec()), "/spec/speed", json!(0.01))).is_empty());
    for bad in [json!(1e-20), json!(0.0009), json!(10000.5), json!(1e300)] {
        let obj = with(simulation(trace_spec()), "/spec/speed", bad.clone());
        assert_rejected::<Simulation>(&obj, "spec.speed", "speed must be from 0.001 to 10000");
    }
    assert!(errors::<Simulation>(&with(simulation(trace_spec()), "/spec/speed", json!(10000.0))).is_empty());
}

#[test]
fn repetitions_at_least_one() {
    let obj = with(simulation(trace_spec()), "/spec/repetitions", json!(0));
    assert_rejected::<Simulation>(&obj, "spec.repetitions", "repetitions must be at least 1");
}

#[test]
fn duration_is_a_go_duration() {
    for bad in ["5 minutes", "10", "-5m", ""] {
        let obj = with(simulation(trace_spec()), "/spec/duration", json!(bad));
        assert_rejected::<Simulation>(&obj, "spec.duration", "duration must be a Go duration");
    }
    for ok in ["90s", "5m", "1h30m", "1.5h", "250ms"] {
        assert!(errors::<Simulation>(&with(simulation(trace_spec()), "/spec/duration", json!(ok))).is_empty(), "{ok}");
    }
}

#[test]
fn virtual_namespace_prefix_must_make_valid_namespaces() {
    for bad in ["Virtual", "-virtual", "virtual-", "vir_tual", "abcdefghijklmnopqrstu", ""] {
        let obj = with(simulation(trace_spec()), "/spec/virtualNamespacePrefix", json!(bad));
        assert_rejected::<Simulation>(
            &obj,
            "spec.virtualNamespacePrefix",
            "virtualNamespacePrefix must be a DNS label",
        );
    }
    for ok in ["v", "sim-1", "abcdefghijklmnopqrst"] {
        assert!(
            errors::<Simulation>(&with(simulation(trace_spec()), "/spec/virtualNamespacePrefix", json!(ok))).is_empty(),
            "{ok}"
        );
    }
}

#[test]
fn simulation_name_must_be_a_short_dns_label() {
    for bad in ["Big", "has.dot", &"a".repeat(51)] {
        let obj = with(simulation(trace_spec()), "/metadata/name", json!(bad));
        let errs = errors::<Simulation>(&obj);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(errs[0].contains("metadata.name of a Simulation must be a DNS label"), "{bad}: {errs:?}");
    }
    assert!(errors::<Simulation>(&with(simulation(trace_spec()), "/metadata/name", json!("a".repeat(50)))).is_empty());
}

#[test]
fn hook_rules() {
    let hook = |h: Value| with(simulation(trace_spec()), "/spec/hooks", json!({"preRun": [h]}));
    assert_rejected::<Simulation>(
        &hook(json!({"command": ""})),
        "spec.hooks.preRun[0].command",
        "hook command must not be empty",
    );
    assert_rejected::<Simulation>(
        &hook(json!({"command": "true", "timeoutSeconds": 0})),
        "spec.hooks.preRun[0].timeoutSeconds",
        "hook timeoutSeconds must be between 1 and 86400",
    );
    let ok: Simulation = serde_json::from_value(hook(json!({"command": "true"}))).expect("hook with defaults");
    let h = &ok.spec.hooks.expect("hooks").pre_run[0];
    assert_eq!((h.timeout_seconds, h.ignore_failure, h.send_simulation), (60, false, false));
}

#[test]
fn artifacts_rules() {
    let art = |a: Value| with(simulation(trace_spec()), "/spec/artifacts", a);
    assert_rejected::<Simulation>(
        &art(json!({"bucket": "My_Bucket"})),
        "spec.artifacts.bucket",
        "artifacts.bucket must be a valid S3 bucket name",
    );
    assert_rejected::<Simulation>(
        &art(json!({"bucket": "ok-bucket", "prefix": "/abs"})),
        "spec.artifacts.prefix",
        "artifacts.prefix must not start with '/'",
    );
    assert_rejected::<Simulation>(
        &art(json!({"bucket": "ok-bucket", "endpoint": "minio:9000"})),
        "spec.artifacts.endpoint",
        "artifacts.endpoint must start with http://",
    );
    assert_rejected::<Simulation>(
        &art(json!({"bucket": "ok-bucket", "credentialsSecret": {"name": ""}})),
        "spec.artifacts.credentialsSecret.name",
        "secret name must not be empty",
    );
    assert!(
        errors::<Simulation>(&art(
            json!({"bucket": "ok-bucket", "endpoint": "http://127.0.0.1:9000", "prefix": "a/b"})
        ))
        .is_empty()
    );
}

#[test]
fn driver_port_in_range() {
    for bad in [0, 65536] {
        let obj = with(simulation(trace_spec()), "/spec/driver", json!({"port": bad}));
        assert_rejected::<Simulation>(&obj, "spec.driver.port", "driver.port must be between 1 and 65535");
    }
}

fn scenario_spec() -> Value {
    json!({"timestep": 15, "steps": [{"name": "1", "actions": [{"type": "K8S_SCALE", "data": {"name": "web", "replicas": 3}}]}]})
}

#[test]
fn scenario_defaults() {
    let scn: Scenario = serde_json::from_value(scenario(scenario_spec())).expect("minimal scenario");
    assert_eq!(scn.spec.start_step, 1);
    assert_eq!(scn.spec.namespace, "karpenter-test");
    assert_eq!(scn.spec.limit, None);
}

#[test]
fn scenario_number_rules() {
    for (field, bad, msg) in [
        ("timestep", json!(0), "timestep must be greater than 0"),
        ("timestep", json!(-15), "timestep must be greater than 0"),
        ("startStep", json!(0), "startStep must be at least 1"),
        ("limit", json!(0), "limit must be at least 1"),
    ] {
        let obj = with(scenario(scenario_spec()), &format!("/spec/{field}"), bad);
        assert_rejected::<Scenario>(&obj, &format!("spec.{field}"), msg);
    }
}

#[test]
fn scenario_names_must_make_valid_namespaces() {
    for bad in ["Karpenter", "a_b", &"n".repeat(64)] {
        let obj = with(scenario(scenario_spec()), "/spec/namespace", json!(bad));
        assert_rejected::<Scenario>(&obj, "spec.namespace", "namespace must be a DNS label");
    }
    let obj = with(scenario(scenario_spec()), "/spec/runId", json!("run id!"));
    assert_rejected::<Scenario>(&obj, "spec.runId", "runId may hold only");
    let obj = with(scenario(scenario_spec()), "/spec/runId", json!("k8s_scenario_1753908801"));
    assert!(errors::<Scenario>(&obj).is_empty());
}

#[test]
fn scenario_needs_steps() {
    let obj = with(scenario(scenario_spec()), "/spec/steps", json!([]));
    assert_rejected::<Scenario>(&obj, "spec.steps", "steps must hold at least one step");
}

/// The schema node and the value at an API field path such as `spec.steps[0].actions[1].data.name`.
fn at_path<'a>(schema: &'a Value, object: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let (mut node, mut value) = (schema, object);
    for segment in path.split('.') {
        let mut parts = segment.split('[');
        let key = parts.next().expect("a key");
        (node, value) = (&node["properties"][key], &value[key]);
        for index in parts {
            let i: usize = index.trim_end_matches(']').parse().expect("an index");
            (node, value) = (&node["items"], &value[i]);
        }
    }
    (node, value)
}

/// Asserts that `path` of `object` breaks the OpenAPI bound (minimum or minLength) of its schema
/// node, and that `message` is the API server's wording of that bound.
#[track_caller]
fn assert_breaks_bound(object: &Value, path: &str, message: &str) {
    let s = schema::<Scenario>();
    let (node, value) = at_path(&s, object, path);
    if let Some(min) = node["minimum"].as_f64() {
        let v = value.as_f64().unwrap_or_else(|| panic!("{path}: {value} is not a number"));
        assert!(v < min, "{path}: {v} does not break minimum {min}");
        assert_eq!(message, format!("should be greater than or equal to {min}"), "{path}");
    } else if let Some(min) = node["minLength"].as_u64() {
        let v = value.as_str().unwrap_or_else(|| panic!("{path}: {value} is not a string"));
        assert!((v.chars().count() as u64) < min, "{path}: {v:?} does not break minLength {min}");
        assert_eq!(message, format!("should be at least {min} chars long"), "{path}");
    } else {
        panic!("{path}: no minimum or minLength in {node}");
    }
}

#[test]
fn action_data_bounds_are_openapi_not_cel() {
    let action = |a: Value| with(scenario(scenario_spec()), "/spec/steps", json!([{"name": "s", "actions": [a]}]));
    for (a, field, message) in [
        (
            json!({"type": "K8S_SCALE", "data": {"name": "web", "replicas": -1}}),
            "replicas",
            "should be greater than or equal to 0",
        ),
        (
            json!({"type": "SCALE", "data": {"name": "web", "desiredCount": -2}}),
            "desiredCount",
            "should be greater than or equal to 0",
        ),
        (json!({"type": "K8S_SCALE", "data": {"name": "", "replicas": 1}}), "name", "should be at least 1 chars long"),
        (
            json!({"type": "WAIT_AVAILABLE", "data": {"name": "web", "timeoutSeconds": 0}}),
            "timeoutSeconds",
            "should be greater than or equal to 1",
        ),
    ] {
        let obj = action(a);
        // No CEL rule runs on an action: the API server's OpenAPI validation rejects these.
        assert_eq!(errors::<Scenario>(&obj), Vec::<String>::new(), "{obj}");
        assert_breaks_bound(&obj, &format!("spec.steps[0].actions[0].data.{field}"), message);
    }
    for ok in [
        json!({"type": "SCALE", "data": {"name": "web", "desiredCount": 4}}),
        json!({"type": "K8S_SCALE", "data": {"name": "web", "replicas": 0}}),
        json!({"type": "WAIT_AVAILABLE", "data": {"name": "web", "timeoutSeconds": 1}}),
        json!({"type": "APPLY", "data": {"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}}}),
        json!({"type": "DELETE", "data": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}),
    ] {
        assert!(errors::<Scenario>(&action(ok.clone())).is_empty(), "{ok}");
    }
}

/// Every CEL rule under `node`, as `path: rule`.
fn cel_rules(path: &str, node: &Value, out: &mut Vec<String>) {
    for rule in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
        out.push(format!("{path}: {}", rule["rule"]));
    }
    for (key, child) in node["properties"].as_object().into_iter().flatten() {
        cel_rules(&format!("{path}.{key}"), child, out);
    }
    if node["items"].is_object() {
        cel_rules(&format!("{path}[]"), &node["items"], out);
    }
}

#[test]
fn no_cel_rule_runs_per_item_of_the_unbounded_lists() {
    // The API server estimates a rule's cost times the most items it may run on; these lists
    // have no maxItems (an export holds thousands of actions), so one CEL rule inside them would
    // put the CRD over its budget. Their checks are OpenAPI bounds and the operator's `Valid`.
    let s = schema::<Scenario>();
    let spec = &s["properties"]["spec"]["properties"];
    for list in ["steps", "manifests", "optionalManifests"] {
        assert!(spec[list]["maxItems"].is_null(), "{list} has a maxItems again: {}", spec[list]["maxItems"]);
        let mut inside = vec![];
        cel_rules(&format!("spec.{list}[]"), &spec[list]["items"], &mut inside);
        assert_eq!(inside, Vec::<String>::new(), "CEL rules per item of spec.{list}");
    }
    let steps = &spec["steps"]["items"]["properties"]["actions"];
    assert!(steps["maxItems"].is_null(), "actions has a maxItems again");
}

#[test]
fn scenarios_the_size_of_an_export_pass_the_schema() {
    use rehearsal_crds::testdata::{BIG_ACTIONS, BIG_FIRST_STEP_ACTIONS, BIG_STEPS, big_scenario};
    let big = big_scenario("big");
    assert_eq!(errors::<Scenario>(&big), Vec::<String>::new());
    let scn: Scenario = serde_json::from_value(big).expect("the big scenario is a Scenario");
    assert_eq!(scn.spec.steps.len(), BIG_STEPS);
    assert_eq!(scn.spec.steps[0].actions.len(), BIG_FIRST_STEP_ACTIONS);
    assert_eq!(scn.spec.steps.iter().map(|s| s.actions.len()).sum::<usize>(), BIG_ACTIONS);
}

#[test]
fn invalid_actions_pass_the_schema() {
    let cases = rehearsal_crds::testdata::invalid_actions();
    assert!(cases.len() >= 7, "the shared cases went missing");
    for case in cases {
        assert_eq!(errors::<Scenario>(&case.object), Vec::<String>::new(), "{}", case.name);
        let _: Scenario = serde_json::from_value(case.object.clone()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn action_type_is_a_closed_enum() {
    let s = schema::<Scenario>();
    let ty = &s["properties"]["spec"]["properties"]["steps"]["items"]["properties"]["actions"]["items"]["properties"]["type"];
    assert_eq!(ty["enum"], json!(["K8S_SCALE", "SCALE", "APPLY", "DELETE", "WAIT_AVAILABLE"]));
    let bad = with(scenario(scenario_spec()), "/spec/steps", json!([{"name": "s", "actions": [{"type": "RESIZE"}]}]));
    let err = serde_json::from_value::<Scenario>(bad).expect_err("unknown action type is rejected");
    assert!(err.to_string().contains("unknown variant `RESIZE`"), "{err}");
}

#[test]
fn conditions_are_list_maps_keyed_by_type() {
    for s in [schema::<Simulation>(), schema::<Scenario>()] {
        let c = &s["properties"]["status"]["properties"]["conditions"];
        assert_eq!(c["x-kubernetes-list-type"], json!("map"), "{c}");
        assert_eq!(c["x-kubernetes-list-map-keys"], json!(["type"]), "{c}");
    }
}

#[test]
fn all_kinds_are_cluster_scoped_with_status() {
    assert_eq!(Simulation::crd().spec.scope, "Cluster");
    assert_eq!(Scenario::crd().spec.scope, "Cluster");
    assert_eq!(SimulationRoot::crd().spec.scope, "Cluster");
    for crd in [Simulation::crd(), Scenario::crd()] {
        assert!(crd.spec.versions[0].subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    }
}

#[test]
fn printer_columns() {
    let names = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Simulation::crd()), ["Phase", "Progress", "Runs", "Speed", "Age"]);
    assert_eq!(names(Scenario::crd()), ["Valid", "Steps", "Duration", "Age"]);
}

#[test]
fn every_field_is_described() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                // metadata, apiVersion and kind are described by Kubernetes itself.
                let standard = path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind");
                if !standard && sub.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    missing.push(p.clone());
                }
                walk(&p, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = vec![];
    walk("", &schema::<Simulation>(), &mut missing);
    walk("", &schema::<Scenario>(), &mut missing);
    // Fields of Kubernetes' own types (ResourceRequirements, Condition) carry their upstream
    // descriptions; only this project's fields are checked to be non-empty here.
    assert_eq!(missing, Vec::<String>::new());
}

#[test]
fn shared_invalid_objects_are_rejected() {
    let cases = rehearsal_crds::testdata::invalid_objects();
    assert!(cases.len() >= 25, "the shared cases went missing");
    for case in cases {
        let kind = case.object["kind"].as_str().unwrap_or_default().to_string();
        if case.rule.as_deref() == Some("enum") {
            let err = serde_json::from_value::<Scenario>(case.object.clone()).expect_err(&case.name);
            assert!(err.to_string().contains("unknown variant"), "{}: {err}", case.name);
            continue;
        }
        if case.rule.as_deref() == Some("bound") {
            assert_breaks_bound(&case.object, &case.field, &case.message);
            continue;
        }
        let errs = match kind.as_str() {
            "Simulation" => errors::<Simulation>(&case.object),
            "Scenario" => errors::<Scenario>(&case.object),
            other => panic!("{}: unexpected kind {other}", case.name),
        };
        assert_eq!(errs.len(), 1, "{}: {errs:?}", case.name);
        let want = if case.field.is_empty() { String::new() } else { format!("{}: ", case.field) };
        assert!(errs[0].starts_with(&want) && errs[0].contains(&case.message), "{}: got {:?}", case.name, errs[0]);
    }
}

/// Messages of the rules that fail when `old` is changed into `new` (transition rules).
fn transition_errors<K: CustomResourceExt>(new: &Value, old: &Value) -> Vec<String> {
    match Validator::new().validate(&schema::<K>(), new, Some(old)) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
    }
}

#[test]
fn simulation_spec_is_immutable_except_suspend() {
    let old = simulation(json!({"source": {"trace": {"uri": "s3://b/t"}}, "speed": 2.0, "repetitions": 1,
        "virtualNamespacePrefix": "virtual"}));
    assert_eq!(transition_errors::<Simulation>(&old, &old), Vec::<String>::new());
    let suspended = with(old.clone(), "/spec/suspend", json!(true));
    assert_eq!(transition_errors::<Simulation>(&suspended, &old), Vec::<String>::new(), "suspend may change");
    for (pointer, value) in [
        ("/spec/speed", json!(3.0)),
        ("/spec/repetitions", json!(2)),
        ("/spec/duration", json!("5m")),
        ("/spec/source", json!({"scenarioRef": {"name": "x"}})),
        ("/spec/hooks", json!({"preRun": [{"command": "true"}]})),
    ] {
        let changed = with(old.clone(), pointer, value);
        let errs = transition_errors::<Simulation>(&changed, &old);
        assert_eq!(errs.len(), 1, "{pointer}: {errs:?}");
        assert!(errs[0].contains("cannot change once created, except spec.suspend"), "{pointer}: {errs:?}");
    }
}

#[test]
fn duration_is_bounded() {
    for ok in ["720h", "90s", "1h30m", "43199m"] {
        let obj = with(simulation(trace_spec()), "/spec/duration", json!(ok));
        assert_eq!(errors::<Simulation>(&obj), Vec::<String>::new(), "{ok}");
    }
    for bad in ["721h", "43201m", "1000h"] {
        let obj = with(simulation(trace_spec()), "/spec/duration", json!(bad));
        assert_rejected::<Simulation>(&obj, "spec.duration", "duration must be at most 720h (30 days)");
    }
}
