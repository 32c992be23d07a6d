//! The CRDs on a real API server: they install and become Established, the examples are
//! accepted, every shared invalid object is rejected with the message naming its field, and a
//! Scenario the size of a production export is accepted (and a bad action in it named).

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use rehearsal_crds::{Scenario, Simulation, SimulationRoot};
use rehearsal_e2e::{client, install_crds};

fn api_for(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    let ar = match kind {
        "Simulation" => ApiResource::erase::<Simulation>(&()),
        "Scenario" => ApiResource::erase::<Scenario>(&()),
        "SimulationRoot" => ApiResource::erase::<SimulationRoot>(&()),
        other => panic!("unexpected kind {other}"),
    };
    Api::all_with(client.clone(), &ar)
}

fn dry_run() -> PostParams {
    PostParams { dry_run: true, field_manager: Some(rehearsal_e2e::MANAGER.into()) }
}

#[tokio::test]
async fn crds_install_and_examples_are_accepted() {
    let client = client().await;
    install_crds(&client).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    for file in ["simulation-trace.yaml", "simulation-scenario.yaml", "scenario.yaml"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("example readable");
        let mut obj: DynamicObject = serde_saphyr::from_str(&text).expect("example parses");
        // A name of its own: the example itself may be applied in this sandbox (make demo).
        obj.metadata.name = Some(rehearsal_e2e::unique("example"));
        let kind = obj.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        let created = api_for(&client, &kind)
            .create(&dry_run(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{file} rejected by the API server: {e}"));
        // Defaults are filled in by the API server from the schema.
        if kind == "Simulation" {
            assert_eq!(created.data["spec"]["virtualNamespacePrefix"], "virtual", "{file}");
            assert!(created.data["spec"]["repetitions"].as_i64().is_some_and(|r| r >= 1), "{file}");
        }
    }
    let root: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rehearsal.dev/v1alpha1", "kind": "SimulationRoot", "metadata": {"name": "e2e-root"}, "spec": {}
    }))
    .expect("root literal");
    api_for(&client, "SimulationRoot").create(&dry_run(), &root).await.expect("an empty SimulationRoot is accepted");
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    let client = client().await;
    install_crds(&client).await;
    let mut wrong = vec![];
    for case in rehearsal_crds::testdata::invalid_objects() {
        let obj: DynamicObject = serde_json::from_value(case.object.clone()).expect("case object parses");
        let kind = case.object["kind"].as_str().unwrap_or_default();
        match api_for(&client, kind).create(&dry_run(), &obj).await {
            Ok(_) => wrong.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let msg = status.message.clone();
                let want = case.server_message.as_ref().unwrap_or(&case.message);
                if status.code != 422 || !msg.contains(&case.field) || !msg.contains(want.as_str()) {
                    wrong.push(format!(
                        "{}: got {} {msg:?}, want {:?} and {want:?}",
                        case.name, status.code, case.field
                    ));
                }
            }
            Err(e) => wrong.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(wrong.is_empty(), "the API server disagreed:\n{}", wrong.join("\n"));
}

/// A Scenario the size of a production export (1,000 actions in one step, 10,000 in all, over
/// 9,001 steps and 300 Deployments) is accepted and stored: the Scenario CRD installed above, so
/// its CEL cost estimate is within the API server's budget, and no count bound refuses it.
#[tokio::test]
async fn a_scenario_the_size_of_an_export_is_accepted() {
    use rehearsal_crds::testdata::{BIG_ACTIONS, BIG_FIRST_STEP_ACTIONS, BIG_STEPS, big_scenario};
    let client = client().await;
    install_crds(&client).await;
    let name = rehearsal_e2e::unique("big-scenario");
    let obj: DynamicObject = serde_json::from_value(big_scenario(&name)).expect("big scenario");
    let api = api_for(&client, "Scenario");
    // Created for real, not a dry run: etcd's size limit applies only to what is stored.
    let created = api
        .create(&PostParams { dry_run: false, field_manager: Some(rehearsal_e2e::MANAGER.into()) }, &obj)
        .await
        .unwrap_or_else(|e| panic!("the big Scenario was refused: {e}"));
    let _ = api.delete(&name, &Default::default()).await;
    let steps = created.data["spec"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), BIG_STEPS);
    assert_eq!(steps[0]["actions"].as_array().map(Vec::len), Some(BIG_FIRST_STEP_ACTIONS));
    let total: usize = steps.iter().filter_map(|s| s["actions"].as_array()).map(Vec::len).sum();
    assert_eq!(total, BIG_ACTIONS);
}

/// A bad number or name in such a Scenario is refused by the schema's OpenAPI bounds, naming the
/// step, the action and the field of each.
#[tokio::test]
async fn a_bad_action_in_a_big_scenario_is_rejected_naming_it() {
    let client = client().await;
    install_crds(&client).await;
    let mut value = rehearsal_crds::testdata::big_scenario(&rehearsal_e2e::unique("big-bad"));
    *value.pointer_mut("/spec/steps/0/actions/517/data/replicas").expect("action 517") = serde_json::json!(-1);
    *value.pointer_mut("/spec/steps/6000/actions/0/data/name").expect("step 6000") = serde_json::json!("");
    let obj: DynamicObject = serde_json::from_value(value).expect("big scenario");
    match api_for(&client, "Scenario").create(&dry_run(), &obj).await {
        Ok(_) => panic!("a Scenario with replicas -1 and an empty name was accepted"),
        Err(kube::Error::Api(status)) => {
            let msg = status.message;
            assert_eq!(status.code, 422, "{msg}");
            for want in [
                "spec.steps[0].actions[517].data.replicas",
                "should be greater than or equal to 0",
                "spec.steps[6000].actions[0].data.name",
                "should be at least 1 chars long",
            ] {
                assert!(msg.contains(want), "{want:?} not in {msg:?}");
            }
        }
        Err(e) => panic!("{e}"),
    }
}

/// What an action's type needs is no schema rule any more: each Scenario of
/// `crds/testdata/invalid-actions.yaml` is accepted, for the operator to mark Valid=False (the
/// operator's test checks that).
#[tokio::test]
async fn actions_missing_their_data_are_accepted_for_the_operator_to_judge() {
    let client = client().await;
    install_crds(&client).await;
    let mut wrong = vec![];
    for case in rehearsal_crds::testdata::invalid_actions() {
        let mut obj: DynamicObject = serde_json::from_value(case.object.clone()).expect("case object parses");
        obj.metadata.name = Some(rehearsal_e2e::unique("invalid-action"));
        if let Err(e) = api_for(&client, "Scenario").create(&dry_run(), &obj).await {
            wrong.push(format!("{}: {e}", case.name));
        }
    }
    assert!(wrong.is_empty(), "refused by the API server:\n{}", wrong.join("\n"));
}
