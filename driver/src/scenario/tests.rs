//! Tests over whole scenario directories: the Karpenter fixture, variants of it with one mistake
//! each (edited copies in a temporary directory), and the conversion to a Scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rehearsal_crds::{ActionType, Scenario};
use serde_json::json;

use super::*;

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/karpenter-scenarios/kubernetes_scenario_1753908801");

fn fixture() -> ScenarioDir {
    load(Path::new(FIXTURE)).unwrap_or_else(|e| panic!("{e}"))
}

/// A writable copy of the fixture (its files are read-only, so they are rewritten, not copied).
fn copy_fixture() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                std::fs::create_dir(&target).unwrap();
                copy_dir(&path, &target);
            } else {
                std::fs::write(&target, std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(Path::new(FIXTURE), tmp.path());
    tmp
}

/// Replaces the first `from` of `file` with `to`.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// The problems `load` reports, as displayed.
fn problems(dir: &Path) -> Vec<String> {
    match load(dir) {
        Err(ScenarioError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected problems, got {other:?}"),
        Ok(_) => panic!("expected problems, got a valid scenario"),
    }
}

fn file_error(dir: &Path) -> ScenarioError {
    match load(dir) {
        Err(ScenarioError::Invalid(problems)) => panic!("expected a file-level error, got {problems:?}"),
        Err(e) => e,
        Ok(_) => panic!("expected an error, got a valid scenario"),
    }
}

#[test]
fn fixture_config_parses_in_full() {
    let scn = fixture();
    let c = &scn.config;
    assert_eq!(c.run_id.as_deref(), Some("k8s_scenario_1753908801"));
    assert_eq!(c.run_description.as_deref(), Some("Generated Kubernetes scenario with 3 deployments"));
    assert_eq!(c.associated_scenario.as_deref(), Some("k8s_scenario_1753908801"));
    assert_eq!(c.timestep, 15.0);
    assert_eq!((c.start_step, c.limit), (Some(1), Some(60)));
    assert_eq!((c.instance_pool_size, c.logging), (Some(1000), Some(1)));
    assert_eq!(
        c.clusters,
        vec![Cluster::Kubernetes(KubernetesCluster {
            type_: Some("KubernetesCluster".into()),
            name: Some("default".into()),
            node_count: Some(3),
            node_type: Some("c5.large".into()),
            autoscaling: Some(true),
            nodepool_directory: Some("nodepools".into()),
            extra: BTreeMap::new(),
        })]
    );
    assert_eq!(c.workloads, None);
    assert_eq!(c.deployments_directory.as_deref(), Some("deployments"));
    assert_eq!(c.deployments, vec!["deploy-if", "deploy-ov", "deploy-h0"]);
    assert!(c.extra.is_empty());
    assert_eq!(scn.dir, PathBuf::from(FIXTURE));
}

#[test]
fn fixture_steps_parse_in_full() {
    let scn = fixture();
    assert_eq!(scn.steps.len(), 60);
    assert_eq!(scn.steps.iter().filter(|s| s.actions.is_empty()).count(), 15);
    assert_eq!(scn.steps.iter().map(|s| s.actions.len()).sum::<usize>(), 73);
    assert!(scn.steps.iter().enumerate().all(|(i, s)| s.name == (i + 1).to_string()));
    let step1 = &scn.steps[0];
    let scaled: Vec<_> = step1
        .actions
        .iter()
        .map(|a| (a.action_type, a.args.clone(), a.comment.clone().unwrap(), a.action_data.as_str()))
        .collect();
    assert_eq!(
        scaled,
        vec![
            (
                ActionType::K8sScale,
                ActionArgs::K8sScale { name: "deploy-if".into(), replicas: 12 },
                "Scales deployment deploy-if to 12 replicas".to_string(),
                "name=deploy-if,replicas=12"
            ),
            (
                ActionType::K8sScale,
                ActionArgs::K8sScale { name: "deploy-ov".into(), replicas: 40 },
                "Scales deployment deploy-ov to 40 replicas".to_string(),
                "name=deploy-ov,replicas=40"
            ),
            (
                ActionType::K8sScale,
                ActionArgs::K8sScale { name: "deploy-h0".into(), replicas: 16 },
                "Scales deployment deploy-h0 to 16 replicas".to_string(),
                "name=deploy-h0,replicas=16"
            ),
        ]
    );
    // The replica timeline the generator plotted: peak 106 at step 30, 50 through steps 42–48.
    let mut replicas = BTreeMap::new();
    let totals: Vec<i32> = scn
        .steps
        .iter()
        .map(|step| {
            for a in &step.actions {
                let ActionArgs::K8sScale { name, replicas: r } = &a.args else { panic!("{a:?}") };
                replicas.insert(name.clone(), *r);
            }
            replicas.values().sum()
        })
        .collect();
    assert_eq!(totals.iter().max(), Some(&106));
    assert_eq!(totals[29], 106);
    assert!(totals[41..48].iter().all(|&t| t == 50));
}

#[test]
fn fixture_manifests_are_kept_whole() {
    let scn = fixture();
    let ids: Vec<String> = scn.manifests.iter().map(objects::describe).collect();
    assert_eq!(
        ids,
        [
            r#"Deployment "deploy-if""#,
            r#"PodDisruptionBudget "deploy-if-pdb""#,
            r#"Deployment "deploy-ov""#,
            r#"PodDisruptionBudget "deploy-ov-pdb""#,
            r#"Deployment "deploy-h0""#,
            r#"PodDisruptionBudget "deploy-h0-pdb""#,
        ]
    );
    let deploy_if = &scn.manifests[0];
    let pod = &deploy_if["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["resources"]["requests"], json!({"cpu": "1.0", "memory": "4096Mi"}));
    assert_eq!(pod["terminationGracePeriodSeconds"], json!(30));
    assert_eq!(pod["nodeSelector"], json!({"karpenter.sh/nodepool": "default"}));
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        json!("kubernetes.io/hostname")
    );
    assert_eq!(pod["topologySpreadConstraints"].as_array().unwrap().len(), 2);
    assert_eq!(pod["topologySpreadConstraints"][1]["labelSelector"]["matchLabels"], json!({"tier": "backend"}));
    assert_eq!(deploy_if["spec"]["selector"]["matchLabels"], json!({"app": "deploy-if"}));
    assert_eq!(
        scn.manifests[1],
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "deploy-if-pdb"},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "deploy-if"}}}
        })
    );
    assert_eq!(
        scn.manifests[4]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        json!("2.0")
    );

    let ids: Vec<String> = scn.optional_manifests.iter().map(objects::describe).collect();
    assert_eq!(ids, [r#"NodePool "default""#, r#"KWOKNodeClass "default""#]);
    let pool = &scn.optional_manifests[0];
    assert_eq!(pool["apiVersion"], json!("karpenter.sh/v1"));
    assert_eq!(pool["spec"]["limits"], json!({"cpu": 10000}));
    assert_eq!(pool["spec"]["template"]["spec"]["expireAfter"], json!("720h"));
    assert_eq!(pool["spec"]["template"]["spec"]["requirements"][0]["values"], json!(["on-demand"]));
    assert_eq!(
        pool["spec"]["disruption"],
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "60s"})
    );
    assert_eq!(scn.optional_manifests[1]["apiVersion"], json!("karpenter.kwok.sh/v1alpha1"));
}

#[test]
fn fixture_timing() {
    let scn = fixture();
    let spec = scn.to_scenario("s").spec;
    let limit = spec.limit.unwrap() as u32;
    let sequence = step_sequence(spec.start_step as u32, limit, spec.steps.len());
    assert_eq!(sequence, (0..60).collect::<Vec<_>>());
    assert_eq!(expected_duration(limit, spec.timestep, 1.0), Duration::from_secs(885));
    assert_eq!(format_duration(expected_duration(limit, spec.timestep, 1.0)), "14m45s");
    assert_eq!(expected_duration(limit, spec.timestep, 15.0), Duration::from_secs(59));
    assert_eq!(step_offset(59, spec.timestep, 15.0), Duration::from_secs(59));
}

// ---- file-level failures: reported alone, at once ----

#[test]
fn missing_directory_or_file() {
    let tmp = copy_fixture();
    let missing = tmp.path().join("nope");
    assert_eq!(file_error(&missing).to_string(), format!("scenario directory {}: not found", missing.display()));
    let file = tmp.path().join("config.yml");
    assert_eq!(file_error(&file).to_string(), format!("scenario directory {}: not a directory", file.display()));

    std::fs::remove_file(tmp.path().join("steps.yml")).unwrap();
    assert_eq!(
        file_error(tmp.path()).to_string(),
        format!("steps.yml: not found in scenario directory {}", tmp.path().display())
    );
    std::fs::remove_file(tmp.path().join("config.yml")).unwrap();
    assert_eq!(
        file_error(tmp.path()).to_string(),
        format!("config.yml: not found in scenario directory {}", tmp.path().display())
    );
}

#[test]
fn bad_yaml_names_file_line_and_column() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "  timestep: 15\n", "  timestep: [15\n");
    let err = file_error(tmp.path());
    assert!(matches!(err, ScenarioError::Yaml { line: Some(_), column: Some(_), .. }), "{err:?}");
    assert!(err.to_string().starts_with("config.yml: "), "{err}");
    assert!(err.to_string().contains("line "), "{err}");

    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "  timestep: 15\n", "  timestep: fifteen\n");
    assert_eq!(file_error(tmp.path()).to_string(), "config.yml: invalid floating point at line 5, column 13");

    let tmp = copy_fixture();
    edit(tmp.path(), "steps.yml", "    name: 2\n", "    name: 2\n    time: 30\n");
    assert_eq!(
        file_error(tmp.path()).to_string(),
        "steps.yml: unknown field `time`, expected one of name, actions at line 19, column 5"
    );

    let tmp = copy_fixture();
    edit(tmp.path(), "steps.yml", "        action_type: K8S_SCALE\n", "        action_type: [K8S_SCALE\n");
    let err = file_error(tmp.path());
    assert!(matches!(&err, ScenarioError::Yaml { file, line: Some(_), .. } if file == "steps.yml"), "{err:?}");
}

// ---- collected problems ----

#[test]
fn timing_fields_are_checked_together() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "timestep: 15", "timestep: 0");
    edit(tmp.path(), "config.yml", "start_step: 1", "start_step: 0");
    edit(tmp.path(), "config.yml", "limit: 60", "limit: 0");
    assert_eq!(
        problems(tmp.path()),
        [
            "config.yml: timestep must be greater than 0 (got 0)",
            "config.yml: start_step must be at least 1 (got 0)",
            "config.yml: limit must be at least 1 (got 0)",
        ]
    );
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "timestep: 15", "timestep: -0.5");
    edit(tmp.path(), "config.yml", "limit: 60", "limit: 3000000000");
    assert_eq!(
        problems(tmp.path()),
        [
            "config.yml: timestep must be greater than 0 (got -0.5)",
            "config.yml: limit must be at most 100000 (got 3000000000)"
        ]
    );
    // The values that made a play materialise billions of steps, or whose deadlines overflowed.
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "timestep: 15", "timestep: 86401");
    edit(tmp.path(), "config.yml", "start_step: 1", "start_step: 9999999999");
    edit(tmp.path(), "config.yml", "limit: 60", "limit: 2000000000");
    assert_eq!(
        problems(tmp.path()),
        [
            "config.yml: timestep must be from 0.001 to 86400 seconds (got 86401)",
            "config.yml: start_step must be at most 2147483647 (got 9999999999)",
            "config.yml: limit must be at most 100000 (got 2000000000)",
        ]
    );
}

#[test]
fn decimal_timestep_and_defaults() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "timestep: 15", "timestep: 0.25");
    edit(tmp.path(), "config.yml", "  start_step: 1\n", "");
    edit(tmp.path(), "config.yml", "  limit: 60\n", "");
    let scn = load(tmp.path()).unwrap();
    assert_eq!(scn.config.timestep, 0.25);
    let spec = scn.to_scenario("s").spec;
    assert_eq!((spec.timestep, spec.start_step, spec.limit), (0.25, 1, None));
}

#[test]
fn empty_step_list() {
    let tmp = copy_fixture();
    write(tmp.path(), "steps.yml", "scenario: []\n");
    assert_eq!(problems(tmp.path()), ["steps.yml: the scenario has no steps (`scenario:` is missing or empty)"]);
    write(tmp.path(), "steps.yml", "");
    assert_eq!(problems(tmp.path()), ["steps.yml: the scenario has no steps (`scenario:` is missing or empty)"]);
}

#[test]
fn missing_deployment_file_is_reported_once() {
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("deployments/deploy-ov.yaml")).unwrap();
    // Steps scaling deploy-ov are not reported again: the missing file is the one mistake.
    assert_eq!(
        problems(tmp.path()),
        [r#"deployments/deploy-ov.yaml: not found (config.yml lists deployment "deploy-ov")"#]
    );

    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "deployments_directory: deployments", "deployments_directory: manifests");
    assert_eq!(
        problems(tmp.path()),
        [format!(
            r#"config.yml: deployments_directory "manifests": directory {} not found"#,
            tmp.path().join("manifests").display()
        )]
    );
}

#[test]
fn bad_manifests() {
    let tmp = copy_fixture();
    write(tmp.path(), "deployments/deploy-ov.yaml", "apiVersion: apps/v1\nkind: [Deployment\n");
    edit(tmp.path(), "deployments/deploy-h0-pdb.yaml", "  name: deploy-h0-pdb\n", "  labels: {}\n");
    edit(tmp.path(), "deployments/deploy-if.yaml", "kind: Deployment\n", "");
    write(tmp.path(), "nodepools/extra.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n- a list\n");
    let found = problems(tmp.path());
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[0], "deployments/deploy-if.yaml: document 1: kind is missing");
    assert!(found[1].starts_with("deployments/deploy-ov.yaml: ") && found[1].contains("line 2"), "{}", found[1]);
    assert_eq!(found[2], "deployments/deploy-h0-pdb.yaml: document 1: metadata.name is missing");
    assert_eq!(
        found[3],
        "nodepools/extra.yml: document 2: is not a mapping (a Kubernetes object needs apiVersion, kind and metadata.name)"
    );
}

#[test]
fn duplicate_objects_and_names() {
    let tmp = copy_fixture();
    edit(tmp.path(), "deployments/deploy-ov-pdb.yaml", "name: deploy-ov-pdb", "name: deploy-if-pdb");
    // A deployment listed again is no problem (see the next test), and its files are read once.
    edit(tmp.path(), "config.yml", "  - deploy-h0\n", "  - deploy-h0\n  - deploy-if\n");
    assert_eq!(
        problems(tmp.path()),
        [
            r#"deployments/deploy-ov-pdb.yaml: document 1: PodDisruptionBudget "deploy-if-pdb" is also defined in deployments/deploy-if-pdb.yaml"#,
        ]
    );
}

#[test]
fn a_deployment_listed_twice_is_one_warning_and_applied_once() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "  - deploy-h0\n", "  - deploy-h0\n  - deploy-if\n  - deploy-h0\n  - deploy-if\n");
    let loaded = load(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"config.yml: deployment "deploy-if" is listed 3 times; it is applied once"#,
            r#"config.yml: deployment "deploy-h0" is listed 2 times; it is applied once"#,
        ]
    );
    // The same manifests as the fixture's, each once.
    assert_eq!(loaded.manifests, fixture().manifests);
    assert!(fixture().warnings.is_empty());
    // The player gets the warnings once (it logs each when it starts), and plays the Scenario
    // the fixture makes.
    let playable = source::from_directory(tmp.path(), None).unwrap();
    assert_eq!(playable.warnings, warnings);
    assert_eq!(playable.scenario.spec.manifests.len(), fixture().manifests.len());
}

/// A scenario directory the size of a production export: `deployments` Deployments (each with
/// a PDB), a first step of `first` scale actions, then `more` steps of one scale action each.
fn export_like(deployments: usize, first: usize, more: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("deployments")).unwrap();
    let names: Vec<String> = (0..deployments).map(|i| format!("svc-{i:04}")).collect();
    for name in &names {
        write(
            tmp.path(),
            &format!("deployments/{name}.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n"
            ),
        );
        write(
            tmp.path(),
            &format!("deployments/{name}-pdb.yaml"),
            &format!(
                "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: {name}-pdb}}\nspec: {{minAvailable: 1, selector: {{matchLabels: {{app: {name}}}}}}}\n"
            ),
        );
    }
    let mut config = String::from(
        "simulator:\n  run_id: export\n  timestep: 10\n  deployments_directory: deployments\n  deployments:\n",
    );
    for name in &names {
        config.push_str(&format!("  - {name}\n"));
    }
    write(tmp.path(), "config.yml", &config);
    let action = |i: usize| {
        format!(
            "    - action: {{action_type: K8S_SCALE, action_data: \"name={},replicas={}\"}}\n",
            names[i % deployments],
            i % 5
        )
    };
    let mut steps = String::from("scenario:\n- step:\n    name: 1\n    actions:\n");
    (0..first).for_each(|i| steps.push_str(&action(i)));
    for k in 0..more {
        steps.push_str(&format!("- step:\n    name: {}\n    actions:\n{}", k + 2, action(k)));
    }
    write(tmp.path(), "steps.yml", &steps);
    tmp
}

#[test]
fn a_directory_the_size_of_an_export_has_no_bound_but_memory() {
    // 600 Deployments and their PDBs (1200 manifests), 1000 actions in the first step, 6001 steps
    // and 7000 actions in all: past every bound the API once had (1000 manifests, 100 actions a
    // step, 5000 steps).
    let tmp = export_like(600, 1000, 6000);
    let loaded = load(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.manifests.len(), 1200);
    assert_eq!(loaded.steps.len(), 6001);
    assert_eq!(loaded.steps[0].actions.len(), 1000);
    let playable = source::from_directory(tmp.path(), None).unwrap();
    assert_eq!(playable.plan.iter().map(Vec::len).sum::<usize>(), 7000);
    assert_eq!(playable.scenario.spec.limit, None);
    assert!(playable.warnings.is_empty());

    // One bad action among them is named by its step and action, as in a small scenario.
    edit(tmp.path(), "steps.yml", "name=svc-0517,replicas=2", "name=svc-0517,replicas=-2");
    assert_eq!(
        problems(tmp.path()),
        [
            r#"steps.yml: step 1 ("1"), action 518 (K8S_SCALE): action_data "name=svc-0517,replicas=-2": replicas "-2" is not a non-negative integer"#
        ]
    );
}

#[test]
fn the_pinned_step_error() {
    let tmp = copy_fixture();
    edit(
        tmp.path(),
        "steps.yml",
        "action_data: name=deploy-h0,replicas=17",
        "action_data: name=deploy-if,replicas=twelve",
    );
    assert_eq!(
        problems(tmp.path()),
        [
            r#"steps.yml: step 3 ("3"), action 1 (K8S_SCALE): action_data "name=deploy-if,replicas=twelve": replicas "twelve" is not a non-negative integer"#
        ]
    );
}

#[test]
fn every_problem_is_collected() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "timestep: 15", "timestep: 0");
    edit(tmp.path(), "steps.yml", "action_data: name=deploy-h0,replicas=17", "action_data: name=deploy-xx,replicas=17");
    edit(
        tmp.path(),
        "steps.yml",
        "action_type: K8S_SCALE\n        action_data: name=deploy-ov,replicas=43",
        "action_type: K8S_SCALE_UP\n        action_data: name=deploy-ov,replicas=43",
    );
    edit(tmp.path(), "steps.yml", "action_data: name=deploy-h0,replicas=18", "action_data: name=deploy-h0;replicas=18");
    edit(
        tmp.path(),
        "steps.yml",
        "action_data: name=deploy-if,replicas=13",
        "action_data: name=deploy-if,replicas=13,replicas=14,zone=a",
    );
    assert_eq!(
        problems(tmp.path()),
        [
            "config.yml: timestep must be greater than 0 (got 0)",
            r#"steps.yml: step 3 ("3"), action 1 (K8S_SCALE): action_data "name=deploy-xx,replicas=17": deployment "deploy-xx" is not created by this scenario (its Deployments: deploy-h0, deploy-if, deploy-ov)"#,
            r#"steps.yml: step 5 ("5"), action 1 (K8S_SCALE_UP): unknown action_type "K8S_SCALE_UP" (expected one of K8S_SCALE, SCALE, APPLY, DELETE, WAIT_AVAILABLE)"#,
            r#"steps.yml: step 5 ("5"), action 2 (K8S_SCALE): action_data "name=deploy-h0;replicas=18": replicas is missing"#,
            r#"steps.yml: step 6 ("6"), action 1 (K8S_SCALE): action_data "name=deploy-if,replicas=13,replicas=14,zone=a": key "replicas" given twice"#,
            r#"steps.yml: step 6 ("6"), action 1 (K8S_SCALE): action_data "name=deploy-if,replicas=13,replicas=14,zone=a": unknown key "zone" for K8S_SCALE (expected name, replicas)"#,
        ]
    );
}

#[test]
fn nodepool_directory_from_the_cluster() {
    let tmp = copy_fixture();
    std::fs::rename(tmp.path().join("nodepools"), tmp.path().join("pools")).unwrap();
    assert_eq!(
        problems(tmp.path()),
        [format!(
            r#"config.yml: clusters[0].KubernetesCluster.nodepool_directory "nodepools": directory {} not found"#,
            tmp.path().join("nodepools").display()
        )]
    );
    edit(tmp.path(), "config.yml", "nodepool_directory: nodepools", "nodepool_directory: pools");
    assert_eq!(load(tmp.path()).unwrap().optional_manifests.len(), 2);
    // Without a nodepool_directory the default `nodepools` is optional.
    edit(tmp.path(), "config.yml", "      nodepool_directory: pools\n", "");
    assert!(load(tmp.path()).unwrap().optional_manifests.is_empty());
}

#[test]
fn yaml_1_1_scalars_stay_strings_in_manifests() {
    let tmp = copy_fixture();
    edit(
        tmp.path(),
        "deployments/deploy-ov.yaml",
        "      labels:\n        app: deploy-ov\n",
        "      labels:\n        app: deploy-ov\n        tier: n\n        canary: yes\n        flag: off\n",
    );
    let scn = load(tmp.path()).unwrap();
    let labels = &scn.manifests[2]["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "deploy-ov", "tier": "n", "canary": "yes", "flag": "off"}));
    // And they stay strings through the rendered manifest, even for a YAML 1.1 reader.
    let scenario = scn.to_scenario("s");
    let yaml = render_manifest(&scenario).unwrap();
    let back: Scenario = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back.spec.manifests[2].0["spec"]["template"]["metadata"]["labels"], *labels);
}

#[test]
fn multi_document_files_and_absolute_directories() {
    let tmp = copy_fixture();
    let service =
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: deploy-ov\nspec:\n  selector: {app: deploy-ov}\n";
    let text = std::fs::read_to_string(tmp.path().join("deployments/deploy-ov.yaml")).unwrap();
    write(tmp.path(), "deployments/deploy-ov.yaml", &format!("{text}\n{service}"));
    let absolute = tmp.path().join("deployments").display().to_string();
    edit(tmp.path(), "config.yml", "deployments_directory: deployments", &format!("deployments_directory: {absolute}"));
    let scn = load(tmp.path()).unwrap();
    let ids: Vec<String> = scn.manifests.iter().map(objects::describe).collect();
    assert_eq!(
        ids[2..5],
        [r#"Deployment "deploy-ov""#, r#"Service "deploy-ov""#, r#"PodDisruptionBudget "deploy-ov-pdb""#]
    );
    assert_eq!(scn.manifests.len(), 7);
}

#[test]
fn rehearsal_extensions_in_steps_yml() {
    let tmp = copy_fixture();
    write(
        tmp.path(),
        "extra-cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: knobs\ndata:\n  mode: on\n",
    );
    edit(
        tmp.path(),
        "steps.yml",
        "    name: 2\n    actions: []\n",
        "    name: 2\n    actions:\n    - action:\n        action_type: APPLY\n        action_data: file=extra-cm.yaml\n    - action:\n        comment: legacy\n        action_type: SCALE\n        action_data: name=deploy-ov,desiredCount=41\n    - action:\n        action_type: WAIT_AVAILABLE\n        action_data: name=deploy-ov, timeoutSeconds=120\n    - action:\n        action_type: DELETE\n        action_data: apiVersion=v1,kind=ConfigMap,name=knobs\n",
    );
    let scn = load(tmp.path()).unwrap();
    let spec = scn.to_scenario("s").spec;
    let planned = actions_of(&spec).unwrap();
    let kinds: Vec<ActionKind> = planned[1].iter().map(|a| a.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            ActionKind::Apply {
                manifest: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "knobs"}, "data": {"mode": "on"}})
            },
            ActionKind::Scale { name: "deploy-ov".into(), replicas: 41 },
            ActionKind::WaitAvailable { name: "deploy-ov".into(), timeout: Duration::from_secs(120) },
            ActionKind::Delete { api_version: "v1".into(), kind: "ConfigMap".into(), name: "knobs".into() },
        ]
    );
    let data = serde_json::to_value(&spec.steps[1].actions[1]).unwrap();
    assert_eq!(data, json!({"type": "SCALE", "comment": "legacy", "data": {"name": "deploy-ov", "desiredCount": 41}}));

    edit(tmp.path(), "steps.yml", "name=deploy-ov, timeoutSeconds=120", "name=deploy-zz");
    edit(tmp.path(), "steps.yml", "file=extra-cm.yaml", "file=missing.yaml");
    assert_eq!(
        problems(tmp.path()),
        [
            r#"steps.yml: step 2 ("2"), action 1 (APPLY): action_data "file=missing.yaml": file "missing.yaml" not found"#,
            r#"steps.yml: step 2 ("2"), action 3 (WAIT_AVAILABLE): action_data "name=deploy-zz": deployment "deploy-zz" is not created by this scenario (its Deployments: deploy-h0, deploy-if, deploy-ov)"#,
        ]
    );
}

#[test]
fn unknown_config_keys_reach_karpenter_config() {
    let tmp = copy_fixture();
    edit(tmp.path(), "config.yml", "  logging: 1\n", "  logging: 1\n  seed: 42\n  notes: {owner: n}\n");
    let scn = load(tmp.path()).unwrap();
    assert_eq!(scn.config.extra.get("seed"), Some(&json!(42)));
    let config = scn.to_scenario("s").spec.karpenter_config.unwrap();
    assert_eq!(config["seed"], json!(42));
    assert_eq!(config["notes"], json!({"owner": "n"}));
}

// ---- conversion ----

#[test]
fn converts_the_fixture() {
    let scn = fixture();
    assert_eq!(scn.suggested_name(), "k8s-scenario-1753908801");
    let scenario = scn.to_scenario("k8s-scenario-1753908801");
    assert_eq!(scenario.metadata.name.as_deref(), Some("k8s-scenario-1753908801"));
    let spec = &scenario.spec;
    assert_eq!(spec.run_id.as_deref(), Some("k8s_scenario_1753908801"));
    assert_eq!(spec.description.as_deref(), Some("Generated Kubernetes scenario with 3 deployments"));
    assert_eq!((spec.timestep, spec.start_step, spec.limit), (15.0, 1, Some(60)));
    assert_eq!(spec.namespace, "karpenter-test");
    assert_eq!(scn.to_scenario_in("x", "default").spec.namespace, "default");
    assert_eq!(spec.manifests.len(), 6);
    assert_eq!(spec.optional_manifests.len(), 2);
    assert_eq!(spec.steps.len(), 60);
    assert_eq!(
        serde_json::to_value(&spec.steps[0]).unwrap()["actions"][0],
        json!({"type": "K8S_SCALE", "comment": "Scales deployment deploy-if to 12 replicas", "data": {"name": "deploy-if", "replicas": 12}})
    );
    assert_eq!(serde_json::to_value(&spec.steps[1]).unwrap(), json!({"name": "2", "actions": []}));
    assert_eq!(
        spec.karpenter_config,
        Some(json!({
            "associated_scenario": "k8s_scenario_1753908801",
            "instance_pool_size": 1000,
            "logging": 1,
            "clusters": [{"KubernetesCluster": {
                "type": "KubernetesCluster", "name": "default", "node_count": 3, "node_type": "c5.large",
                "autoscaling": true, "nodepool_directory": "nodepools"
            }}],
            "deployments_directory": "deployments",
            "deployments": ["deploy-if", "deploy-ov", "deploy-h0"]
        }))
    );
}

#[test]
fn rendered_manifest_round_trips_and_plays_like_the_directory() {
    let scn = fixture();
    let scenario = scn.to_scenario(&scn.suggested_name());
    let yaml = render_manifest(&scenario).unwrap();
    assert!(yaml.starts_with("apiVersion: rehearsal.dev/v1alpha1\nkind: Scenario\n"), "{yaml}");
    let back: Scenario = serde_saphyr::from_str(&yaml).unwrap();
    // Scenario has no PartialEq: compare its parts.
    assert_eq!(back.metadata, scenario.metadata);
    assert_eq!(back.spec, scenario.spec);
    assert_eq!(back.status, scenario.status);
    assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&scenario).unwrap());

    // The actions the player gets from the Scenario are the directory's.
    let expected: Vec<Vec<PlannedAction>> = scn
        .steps
        .iter()
        .enumerate()
        .map(|(si, step)| {
            step.actions
                .iter()
                .enumerate()
                .map(|(ai, a)| PlannedAction {
                    step_index: si,
                    step_name: step.name.clone(),
                    action_index: ai,
                    action_type: a.action_type,
                    kind: match &a.args {
                        ActionArgs::K8sScale { name, replicas } => {
                            ActionKind::Scale { name: name.clone(), replicas: *replicas }
                        }
                        other => panic!("{other:?}"),
                    },
                    comment: a.comment.clone(),
                })
                .collect()
        })
        .collect();
    assert_eq!(actions_of(&back.spec).unwrap(), expected);
    assert_eq!(actions_of(&scenario.spec).unwrap(), expected);
}

/// A directory outside the scenario holding `secret.yaml` (a valid object, so only the escape
/// itself can be the problem) and its canonical path.
fn outside_dir() -> (tempfile::TempDir, PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: secret}\n");
    std::fs::create_dir(outside.path().join("np")).unwrap();
    write(outside.path(), "np/pool.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pool}\n");
    let real = outside.path().canonicalize().unwrap();
    (outside, real)
}

/// Step 2 of the fixture with one `APPLY` per file.
fn apply_in_step_2(dir: &Path, files: &[&str]) {
    let actions: String = files
        .iter()
        .map(|f| format!("    - action:\n        action_type: APPLY\n        action_data: file={f}\n"))
        .collect();
    edit(dir, "steps.yml", "    name: 2\n    actions: []\n", &format!("    name: 2\n    actions:\n{actions}"));
}

#[test]
fn files_outside_the_scenario_directory_are_refused_and_all_reported() {
    let (_outside, real) = outside_dir();
    let tmp = copy_fixture();
    let dir = tmp.path();
    std::os::unix::fs::symlink(real.join("secret.yaml"), dir.join("link.yaml")).unwrap();
    std::fs::remove_file(dir.join("deployments/deploy-ov.yaml")).unwrap();
    std::os::unix::fs::symlink(real.join("secret.yaml"), dir.join("deployments/deploy-ov.yaml")).unwrap();
    std::os::unix::fs::symlink(real.join("secret.yaml"), dir.join("nodepools/evil.yaml")).unwrap();
    let absolute = real.join("secret.yaml").display().to_string();
    apply_in_step_2(dir, &["../../etc/passwd", &absolute, "link.yaml", "nodepools/../../x.yaml"]);
    let secret = real.join("secret.yaml").display().to_string();
    assert_eq!(
        problems(dir),
        [
            format!(
                r#"config.yml: deployment "deploy-ov": file "deployments/deploy-ov.yaml" is outside the scenario directory (it resolves to {secret})"#
            ),
            format!(
                r#"config.yml: clusters[0].KubernetesCluster.nodepool_directory "nodepools": file "nodepools/evil.yaml" is outside the scenario directory (it resolves to {secret})"#
            ),
            r#"steps.yml: step 2 ("2"), action 1 (APPLY): action_data "file=../../etc/passwd": file "../../etc/passwd" is outside the scenario directory"#.to_string(),
            format!(
                r#"steps.yml: step 2 ("2"), action 2 (APPLY): action_data "file={absolute}": file "{absolute}" is outside the scenario directory"#
            ),
            format!(
                r#"steps.yml: step 2 ("2"), action 3 (APPLY): action_data "file=link.yaml": file "link.yaml" is outside the scenario directory (it resolves to {secret})"#
            ),
            r#"steps.yml: step 2 ("2"), action 4 (APPLY): action_data "file=nodepools/../../x.yaml": file "nodepools/../../x.yaml" is outside the scenario directory"#.to_string(),
        ]
    );
}

#[test]
fn directories_outside_the_scenario_directory_are_refused() {
    let (_outside, real) = outside_dir();
    let tmp = copy_fixture();
    let dir = tmp.path();
    edit(dir, "config.yml", "deployments_directory: deployments", "deployments_directory: ../deployments");
    edit(
        dir,
        "config.yml",
        "nodepool_directory: nodepools",
        &format!("nodepool_directory: {}", real.join("np").display()),
    );
    assert_eq!(
        problems(dir),
        [
            r#"config.yml: deployments_directory "../deployments" is outside the scenario directory"#.to_string(),
            format!(
                r#"config.yml: clusters[0].KubernetesCluster.nodepool_directory "{}" is outside the scenario directory"#,
                real.join("np").display()
            ),
        ]
    );

    // The default node pool directory, a symlink to outside, is named by itself.
    let tmp = copy_fixture();
    let dir = tmp.path();
    edit(dir, "config.yml", "      nodepool_directory: nodepools\n", "");
    std::fs::remove_dir_all(dir.join("nodepools")).unwrap();
    std::os::unix::fs::symlink(real.join("np"), dir.join("nodepools")).unwrap();
    assert_eq!(
        problems(dir),
        [format!(
            r#"nodepools: the default node pool directory "nodepools" is outside the scenario directory (it resolves to {})"#,
            real.join("np").display()
        )]
    );
}

#[test]
fn required_files_outside_the_scenario_directory_stop_the_load() {
    let (_outside, real) = outside_dir();
    let tmp = copy_fixture();
    let dir = tmp.path();
    std::fs::rename(dir.join("config.yml"), real.join("config.yml")).unwrap();
    std::os::unix::fs::symlink(real.join("config.yml"), dir.join("config.yml")).unwrap();
    assert_eq!(
        problems(dir),
        [format!(
            r#"config.yml: file "config.yml" is outside the scenario directory (it resolves to {})"#,
            real.join("config.yml").display()
        )]
    );
}

#[test]
fn symlinks_and_absolute_paths_inside_the_scenario_directory_are_allowed() {
    let tmp = copy_fixture();
    let dir = tmp.path();
    write(dir, "extra-cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: knobs}\n");
    std::fs::create_dir(dir.join("more")).unwrap();
    std::os::unix::fs::symlink("../extra-cm.yaml", dir.join("more/link.yaml")).unwrap();
    // Deployments and node pools reached through symlinks that stay inside.
    std::fs::rename(dir.join("deployments"), dir.join("real-deployments")).unwrap();
    std::os::unix::fs::symlink("real-deployments", dir.join("deployments")).unwrap();
    std::fs::rename(dir.join("nodepools/default.yaml"), dir.join("pool.yaml")).unwrap();
    std::os::unix::fs::symlink("../pool.yaml", dir.join("nodepools/default.yaml")).unwrap();
    let absolute = dir.join("extra-cm.yaml").display().to_string();
    apply_in_step_2(dir, &["more/link.yaml", "./more/../extra-cm.yaml", &absolute]);
    let scn = load(dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scn.manifests.len(), fixture().manifests.len());
    assert_eq!(scn.optional_manifests, fixture().optional_manifests);
    assert_eq!(scn.steps[1].actions.len(), 3);
    assert!(
        matches!(&scn.steps[1].actions[0].args, ActionArgs::Apply { manifest, .. } if manifest["metadata"]["name"] == "knobs")
    );
}

#[test]
fn the_shared_fixture_loads_through_a_non_canonical_path() {
    // FIXTURE holds `..`: the directory is canonicalised before the checks, and kept as given.
    assert!(FIXTURE.contains("/../"));
    let scn = fixture();
    assert_eq!(scn.dir, PathBuf::from(FIXTURE));
    assert_eq!((scn.manifests.len(), scn.optional_manifests.len()), (6, 2));
}
