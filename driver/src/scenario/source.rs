//! The scenario a play runs, read from a directory or taken from a Scenario object, and fully
//! validated (`actions_of`) before anything touches the cluster.

use std::path::{Path, PathBuf};

use kube::ResourceExt;
use rehearsal_crds::Scenario;

use super::actions::{PlannedAction, actions_of};
use super::config::Cluster;
use super::convert::DEFAULT_NAMESPACE;
use super::directory::{DEFAULT_NODEPOOL_DIRECTORY, ScenarioDir, load};
use super::error::ScenarioError;
use super::logs::run_id_value;
use super::objects::{describe, parse_documents};

/// A validated scenario, ready to play.
#[derive(Debug, Clone)]
pub struct Playable {
    /// The Scenario, its namespace resolved.
    pub scenario: Scenario,
    /// Its actions per step (indexed like `spec.steps`).
    pub plan: Vec<Vec<PlannedAction>>,
    /// Where each optional manifest came from (a file of the directory, or its place in the
    /// Scenario), for the warning when one is skipped.
    pub optional_sources: Vec<String>,
    /// The run id: runId, else the Scenario's name, as a folder name and label value.
    pub run_id: String,
    /// What is odd but playable in the source (a deployment listed twice in `config.yml`), one
    /// line each, for the player to log once.
    pub warnings: Vec<String>,
}

/// Reads and validates a scenario directory; `namespace` overrides karpenter-test.
pub fn from_directory(dir: &Path, namespace: Option<&str>) -> Result<Playable, ScenarioError> {
    let loaded = load(dir)?;
    let scenario = loaded.to_scenario_in(&loaded.suggested_name(), namespace.unwrap_or(DEFAULT_NAMESPACE));
    let sources = optional_sources(&loaded);
    let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
    playable(scenario, sources, warnings)
}

/// Validates a Scenario object; `namespace` overrides its `spec.namespace`.
pub fn from_object(mut scenario: Scenario, namespace: Option<&str>) -> Result<Playable, ScenarioError> {
    if let Some(ns) = namespace {
        scenario.spec.namespace = ns.to_string();
    }
    let sources = scenario
        .spec
        .optional_manifests
        .iter()
        .enumerate()
        .map(|(i, o)| format!("optionalManifests[{i}] ({})", describe(&o.0)))
        .collect();
    playable(scenario, sources, Vec::new())
}

fn playable(
    scenario: Scenario,
    optional_sources: Vec<String>,
    warnings: Vec<String>,
) -> Result<Playable, ScenarioError> {
    let plan = actions_of(&scenario.spec)?;
    let run_id = run_id_value(scenario.spec.run_id.as_deref().unwrap_or(&scenario.name_any()));
    Ok(Playable { scenario, plan, optional_sources, run_id, warnings })
}

/// The file of each optional manifest of a loaded directory, relative to it, found the way
/// `load` found them (the node pool directories, their YAML files sorted by name, documents in
/// order). Falls back to `optional manifest N` if the files changed since.
fn optional_sources(loaded: &ScenarioDir) -> Vec<String> {
    let mut directories: Vec<PathBuf> = Vec::new();
    for cluster in &loaded.config.clusters {
        let Cluster::Kubernetes(k) = cluster else { continue };
        let path = loaded.dir.join(k.nodepool_directory.as_deref().unwrap_or(DEFAULT_NODEPOOL_DIRECTORY));
        if !directories.contains(&path) {
            directories.push(path);
        }
    }
    if directories.is_empty() {
        directories.push(loaded.dir.join(DEFAULT_NODEPOOL_DIRECTORY));
    }
    let mut sources = Vec::new();
    for directory in directories {
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for file in files {
            let count =
                std::fs::read_to_string(&file).ok().and_then(|t| parse_documents(&t).ok()).map_or(0, |d| d.len());
            let shown = file.strip_prefix(&loaded.dir).unwrap_or(&file).display().to_string();
            sources.extend(std::iter::repeat_n(shown, count));
        }
    }
    if sources.len() == loaded.optional_manifests.len() {
        sources
    } else {
        (1..=loaded.optional_manifests.len()).map(|n| format!("optional manifest {n}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/karpenter-scenarios/kubernetes_scenario_1753908801"
    );

    #[test]
    fn fixture_is_playable_with_its_node_pool_files_named() {
        let p = from_directory(Path::new(FIXTURE), None).unwrap();
        assert_eq!(p.run_id, "k8s_scenario_1753908801");
        assert_eq!(p.scenario.spec.namespace, "karpenter-test");
        assert_eq!(p.plan.len(), 60);
        assert_eq!(p.optional_sources, ["nodepools/default.yaml", "nodepools/default.yaml"]);
        let elsewhere = from_directory(Path::new(FIXTURE), Some("load-1")).unwrap();
        assert_eq!(elsewhere.scenario.spec.namespace, "load-1");

        let object = from_object(p.scenario.clone(), Some("other")).unwrap();
        assert_eq!(object.scenario.spec.namespace, "other");
        assert_eq!(
            object.optional_sources,
            [r#"optionalManifests[0] (NodePool "default")"#, r#"optionalManifests[1] (KWOKNodeClass "default")"#]
        );
        let mut unnamed = p.scenario;
        unnamed.spec.run_id = None;
        unnamed.metadata.name = Some("web-burst".into());
        assert_eq!(from_object(unnamed, None).unwrap().run_id, "web-burst");
    }

    #[test]
    fn an_invalid_object_is_refused() {
        let mut s = from_directory(Path::new(FIXTURE), None).unwrap().scenario;
        s.spec.steps[2].actions[0].data.as_mut().unwrap().replicas = Some(-4);
        let err = from_object(s, None).unwrap_err().to_string();
        assert_eq!(err, r#"spec.steps[2].actions[0] (step "3", K8S_SCALE): data.replicas must be at least 0 (got -4)"#);
    }
}
