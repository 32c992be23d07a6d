//! Loading a scenario directory: `config.yml`, `steps.yml`, the deployment manifests (with their
//! PodDisruptionBudgets) and the node pools, all checked before anything touches a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::{CONFIG_FILE, SimulatorConfig};
use super::error::{Problem, ScenarioError};
use super::objects::{deployment_name, describe, object_id, object_problems, parse_documents};
use super::steps::{STEPS_FILE, ScenarioStep, parse_steps_file, resolve_steps};

/// Node pool directory when the `KubernetesCluster` entry names none (the original wrapper
/// script's choice).
pub const DEFAULT_NODEPOOL_DIRECTORY: &str = "nodepools";

/// The most manifests (and, separately, optional manifests) a Scenario holds (its API's bound).
pub const MAX_MANIFESTS: usize = 1000;

/// A scenario directory, read and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioDir {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// `config.yml`.
    pub config: SimulatorConfig,
    /// `steps.yml`, with every action's data parsed.
    pub steps: Vec<ScenarioStep>,
    /// Every document of each listed deployment's file and of its `-pdb` companion, in the
    /// order of `deployments`.
    pub manifests: Vec<Value>,
    /// Every document of the node pool files (sorted by file name): applied only when the
    /// cluster serves their kinds.
    pub optional_manifests: Vec<Value>,
}

/// Reads and validates the scenario directory `dir`.
///
/// A missing directory or file, or YAML that does not parse into the format's shape, stops the
/// load at once; every other problem is collected and returned together in
/// [`ScenarioError::Invalid`].
pub fn load(dir: &Path) -> Result<ScenarioDir, ScenarioError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(ScenarioError::Directory { path: dir.to_path_buf(), reason: "not a directory" }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScenarioError::Directory { path: dir.to_path_buf(), reason: "not found" });
        }
        Err(e) => return Err(ScenarioError::Read { file: dir.display().to_string(), source: e }),
    }
    let config = SimulatorConfig::parse(&read_required(dir, CONFIG_FILE)?)?;
    let written_steps = parse_steps_file(&read_required(dir, STEPS_FILE)?)?;

    let mut problems = config.problems();
    let mut loader = Loader { dir, problems: &mut problems, defined: BTreeMap::new() };
    let (manifests, mut deployments) = loader.deployment_manifests(&config);
    let optional_manifests = loader.nodepool_manifests(&config);
    deployments.extend(manifests.iter().filter_map(deployment_name).map(str::to_string));
    for (list, count) in [("manifests", manifests.len()), ("optional manifests (node pools)", optional_manifests.len())]
    {
        if count > MAX_MANIFESTS {
            problems
                .push(Problem::file(CONFIG_FILE, format!("{count} {list}; a scenario holds at most {MAX_MANIFESTS}")));
        }
    }
    let steps = resolve_steps(written_steps, dir, &deployments, &mut problems);

    if !problems.is_empty() {
        return Err(ScenarioError::Invalid(problems));
    }
    Ok(ScenarioDir { dir: dir.to_path_buf(), config, steps, manifests, optional_manifests })
}

/// Reads a file the format requires.
fn read_required(dir: &Path, file: &str) -> Result<String, ScenarioError> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ScenarioError::MissingFile { file: file.to_string(), dir: dir.to_path_buf() })
        }
        Err(e) => Err(ScenarioError::Read { file: file.to_string(), source: e }),
    }
}

/// `path` as messages show it: relative to the scenario directory when inside it.
fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Reads manifest files, collecting problems and remembering where each object was defined.
struct Loader<'a> {
    dir: &'a Path,
    problems: &'a mut Vec<Problem>,
    defined: BTreeMap<(String, String, String, String), String>,
}

impl Loader<'_> {
    /// The listed deployments' documents and their PDBs, plus the names of listed deployments
    /// whose file has a problem: those are already reported, and steps naming them should not
    /// be reported again.
    fn deployment_manifests(&mut self, config: &SimulatorConfig) -> (Vec<Value>, BTreeSet<String>) {
        let mut manifests = Vec::new();
        let mut unreadable = BTreeSet::new();
        let Some(directory) = &config.deployments_directory else {
            unreadable.extend(config.deployments.iter().cloned());
            return (manifests, unreadable);
        };
        if config.deployments.is_empty() {
            return (manifests, unreadable);
        }
        let deployments_dir = self.dir.join(directory);
        if !deployments_dir.is_dir() {
            self.problems.push(Problem::file(
                CONFIG_FILE,
                format!("deployments_directory {directory:?}: directory {} not found", deployments_dir.display()),
            ));
            unreadable.extend(config.deployments.iter().cloned());
            return (manifests, unreadable);
        }
        let mut seen = BTreeSet::new();
        for name in &config.deployments {
            if name.is_empty() || !seen.insert(name) {
                continue; // reported by the config checks
            }
            let path = deployments_dir.join(format!("{name}.yaml"));
            let file = shown(self.dir, &path);
            let reported = self.problems.len();
            match std::fs::read_to_string(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.problems
                        .push(Problem::file(&file, format!("not found ({CONFIG_FILE} lists deployment {name:?})")));
                }
                Err(e) => self.problems.push(Problem::file(&file, format!("cannot read: {e}"))),
                Ok(text) => manifests.extend(self.documents(&file, &text).unwrap_or_default()),
            }
            if self.problems.len() > reported {
                unreadable.insert(name.clone());
            }
            let pdb = deployments_dir.join(format!("{name}-pdb.yaml"));
            if pdb.is_file() {
                manifests.extend(self.read_file(&pdb).unwrap_or_default());
            }
        }
        (manifests, unreadable)
    }

    /// Every document of every `*.yaml`/`*.yml` file of the node pool directories.
    fn nodepool_manifests(&mut self, config: &SimulatorConfig) -> Vec<Value> {
        let mut directories: Vec<(PathBuf, Option<String>)> = Vec::new();
        for (i, cluster) in config.clusters.iter().enumerate() {
            let super::config::Cluster::Kubernetes(k) = cluster else { continue };
            let (path, named) = match &k.nodepool_directory {
                Some(d) => {
                    (self.dir.join(d), Some(format!("clusters[{i}].KubernetesCluster.nodepool_directory {d:?}")))
                }
                None => (self.dir.join(DEFAULT_NODEPOOL_DIRECTORY), None),
            };
            if !directories.iter().any(|(p, _)| *p == path) {
                directories.push((path, named));
            }
        }
        if directories.is_empty() {
            directories.push((self.dir.join(DEFAULT_NODEPOOL_DIRECTORY), None));
        }
        let mut manifests = Vec::new();
        for (path, named) in directories {
            if !path.is_dir() {
                // The default directory is optional; one the config names must exist.
                if let Some(named) = named {
                    self.problems
                        .push(Problem::file(CONFIG_FILE, format!("{named}: directory {} not found", path.display())));
                }
                continue;
            }
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&path) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect(),
                Err(e) => {
                    self.problems.push(Problem::file(shown(self.dir, &path), format!("cannot read directory: {e}")));
                    continue;
                }
            };
            files.sort();
            for file in files {
                manifests.extend(self.read_file(&file).unwrap_or_default());
            }
        }
        manifests
    }

    fn read_file(&mut self, path: &Path) -> Option<Vec<Value>> {
        let file = shown(self.dir, path);
        match std::fs::read_to_string(path) {
            Ok(text) => self.documents(&file, &text),
            Err(e) => {
                self.problems.push(Problem::file(&file, format!("cannot read: {e}")));
                None
            }
        }
    }

    /// The documents of a manifest file; None (with the problem recorded) when it is not YAML.
    fn documents(&mut self, file: &str, text: &str) -> Option<Vec<Value>> {
        let docs = match parse_documents(text) {
            Ok(docs) => docs,
            Err(e) => {
                self.problems.push(Problem::file(file, e.to_string()));
                return None;
            }
        };
        if docs.is_empty() {
            self.problems.push(Problem::file(file, "holds no object"));
        }
        for (i, doc) in docs.iter().enumerate() {
            let missing = object_problems(doc);
            if !missing.is_empty() {
                self.problems.push(Problem::file(file, format!("document {}: {}", i + 1, missing.join(", "))));
            } else if let Some(id) = object_id(doc) {
                if let Some(first) = self.defined.get(&id) {
                    self.problems.push(Problem::file(
                        file,
                        format!("document {}: {} is also defined in {first}", i + 1, describe(doc)),
                    ));
                } else {
                    self.defined.insert(id, file.to_string());
                }
            }
        }
        Some(docs)
    }
}
