//! The CRDs on a real API server: they install and become Established, the examples are
//! accepted, and every shared invalid object is rejected with the message naming its field.

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
