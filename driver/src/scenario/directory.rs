//! Loading a scenario directory: `config.yml`, `steps.yml`, the deployment manifests (with their
//! PodDisruptionBudgets) and the node pools, all checked before anything touches a cluster.
//!
//! Every path the scenario names (`deployments_directory`, each listed deployment and its PDB,
//! the node pool directories and their files, `APPLY file=`, and `config.yml` and `steps.yml`
//! themselves) is canonicalised and must stay inside the canonicalised scenario directory: a
//! scenario is input (often from someone else's repository), and reading `../../etc/passwd` or a
//! symlink to a secret into the manifests would send that file to the cluster and the logs.
//! Absolute paths and symlinks are followed and allowed while they resolve inside.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::config::{CONFIG_FILE, SimulatorConfig};
use super::error::{Problem, ScenarioError};
use super::objects::{deployment_name, describe, object_id, object_problems, parse_documents};
use super::steps::{STEPS_FILE, ScenarioStep, parse_steps_file, resolve_steps};

/// Node pool directory when the `KubernetesCluster` entry names none (the original wrapper
/// script's choice).
pub const DEFAULT_NODEPOOL_DIRECTORY: &str = "nodepools";

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
    /// What is odd but playable (a deployment listed twice), for the caller to log once.
    pub warnings: Vec<Problem>,
}

/// Reads and validates the scenario directory `dir`.
///
/// A missing directory or file, or YAML that does not parse into the format's shape, stops the
/// load at once; every other problem is collected and returned together in
/// [`ScenarioError::Invalid`]. There is no bound on the number of deployments, steps or actions:
/// a directory is bound only by memory.
pub fn load(dir: &Path) -> Result<ScenarioDir, ScenarioError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(ScenarioError::Directory { path: dir.to_path_buf(), reason: "not a directory" }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScenarioError::Directory { path: dir.to_path_buf(), reason: "not found" });
        }
        Err(e) => return Err(ScenarioError::Read { file: dir.display().to_string(), source: e }),
    }
    let root = dir.canonicalize().map_err(|source| ScenarioError::Read { file: dir.display().to_string(), source })?;
    let config = SimulatorConfig::parse(&read_required(dir, &root, CONFIG_FILE)?)?;
    let written_steps = parse_steps_file(&read_required(dir, &root, STEPS_FILE)?)?;

    let mut problems = config.problems(written_steps.len());
    let mut loader = Loader { dir, root: &root, problems: &mut problems, defined: BTreeMap::new() };
    let (manifests, mut deployments) = loader.deployment_manifests(&config);
    let optional_manifests = loader.nodepool_manifests(&config);
    deployments.extend(manifests.iter().filter_map(deployment_name).map(str::to_string));
    let steps = resolve_steps(written_steps, &root, &deployments, &mut problems);

    if !problems.is_empty() {
        return Err(ScenarioError::Invalid(problems));
    }
    let warnings = config.warnings();
    Ok(ScenarioDir { dir: dir.to_path_buf(), config, steps, manifests, optional_manifests, warnings })
}

/// Reads a file the format requires; `root` is `dir` canonicalised.
fn read_required(dir: &Path, root: &Path, file: &str) -> Result<String, ScenarioError> {
    let path = match resolve_inside(root, Path::new(file)) {
        Ok(path) => path,
        Err(PathProblem::NotFound) => {
            return Err(ScenarioError::MissingFile { file: file.to_string(), dir: dir.to_path_buf() });
        }
        Err(PathProblem::Io(e)) => return Err(ScenarioError::Read { file: file.to_string(), source: e }),
        Err(outside) => {
            // A file-level failure like a missing file: nothing can be checked without it.
            let message = outside.message(&format!("file {file:?}"));
            return Err(ScenarioError::Invalid(vec![Problem::file(file, message)]));
        }
    };
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { file: file.to_string(), source })
}

/// Why a path a scenario names cannot be used.
#[derive(Debug)]
pub(crate) enum PathProblem {
    /// It leads outside the scenario directory: by `..` or an absolute path (`resolved` is None),
    /// or through a symlink (`resolved` is where it leads).
    Outside {
        /// The canonical path, when the written one only escapes once symlinks are followed.
        resolved: Option<PathBuf>,
    },
    /// Nothing is there.
    NotFound,
    /// It could not be resolved (permissions, a symlink loop, ...).
    Io(std::io::Error),
}

impl PathProblem {
    /// The message for `what` (e.g. `file "x.yaml"`), in the loader's wording.
    pub(crate) fn message(&self, what: &str) -> String {
        match self {
            PathProblem::Outside { resolved: None } => format!("{what} is outside the scenario directory"),
            PathProblem::Outside { resolved: Some(real) } => {
                format!("{what} is outside the scenario directory (it resolves to {})", real.display())
            }
            PathProblem::NotFound => format!("{what} not found"),
            PathProblem::Io(e) => format!("{what} cannot be read: {e}"),
        }
    }
}

/// Resolves `path` as a scenario names it (relative to the scenario directory, or absolute)
/// against `root`, the canonical scenario directory. Returns the canonical path, which is
/// inside `root`; reading that path rather than the written one means no symlink is followed
/// after the check.
pub(crate) fn resolve_inside(root: &Path, path: &Path) -> Result<PathBuf, PathProblem> {
    let joined = root.join(path);
    // Checked on the text first, so a `..` escape is refused whether or not its target exists
    // (the answer must not tell what exists outside).
    if !lexically_normal(&joined).starts_with(root) {
        return Err(PathProblem::Outside { resolved: None });
    }
    match joined.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(real) => Err(PathProblem::Outside { resolved: Some(real) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PathProblem::NotFound),
        Err(e) => Err(PathProblem::Io(e)),
    }
}

/// `path` with `.` dropped and each `..` removing the component before it, without looking at
/// the file system (so symlinks are not followed; [`resolve_inside`] checks those afterwards).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` as messages show it: relative to the scenario directory when inside it.
fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// How messages name the default node pool directory, which no file names.
fn default_nodepools() -> String {
    format!("the default node pool directory {DEFAULT_NODEPOOL_DIRECTORY:?}")
}

/// Reads manifest files, collecting problems and remembering where each object was defined.
struct Loader<'a> {
    /// The directory as given (messages show paths relative to it).
    dir: &'a Path,
    /// The directory canonicalised: every file read must be inside it.
    root: &'a Path,
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
        let not_found =
            || format!("deployments_directory {directory:?}: directory {} not found", deployments_dir.display());
        let message = match resolve_inside(self.root, Path::new(directory)) {
            Ok(real) if real.is_dir() => None,
            Ok(_) | Err(PathProblem::NotFound) => Some(not_found()),
            Err(problem) => Some(problem.message(&format!("deployments_directory {directory:?}"))),
        };
        if let Some(message) = message {
            self.problems.push(Problem::file(CONFIG_FILE, message));
            unreadable.extend(config.deployments.iter().cloned());
            return (manifests, unreadable);
        }
        let mut seen = BTreeSet::new();
        for name in &config.deployments {
            // An empty name is a problem of the config checks; a repeated one is read once (and
            // warned about by `SimulatorConfig::warnings`).
            if name.is_empty() || !seen.insert(name) {
                continue;
            }
            let written = Path::new(directory).join(format!("{name}.yaml"));
            let file = shown(self.dir, &self.dir.join(&written));
            let reported = self.problems.len();
            match resolve_inside(self.root, &written) {
                Err(PathProblem::NotFound) => {
                    self.problems
                        .push(Problem::file(&file, format!("not found ({CONFIG_FILE} lists deployment {name:?})")));
                }
                Err(PathProblem::Io(e)) => self.problems.push(Problem::file(&file, format!("cannot read: {e}"))),
                Err(outside) => self.problems.push(Problem::file(
                    CONFIG_FILE,
                    format!("deployment {name:?}: {}", outside.message(&format!("file {file:?}"))),
                )),
                Ok(real) => match std::fs::read_to_string(&real) {
                    Err(e) => self.problems.push(Problem::file(&file, format!("cannot read: {e}"))),
                    Ok(text) => manifests.extend(self.documents(&file, &text).unwrap_or_default()),
                },
            }
            if self.problems.len() > reported {
                unreadable.insert(name.clone());
            }
            // The PDB is optional: only a file that is there (and inside) is read.
            let written_pdb = Path::new(directory).join(format!("{name}-pdb.yaml"));
            let pdb_file = shown(self.dir, &self.dir.join(&written_pdb));
            match resolve_inside(self.root, &written_pdb) {
                Ok(real) if real.is_file() => manifests.extend(self.read_file(&pdb_file, &real).unwrap_or_default()),
                Ok(_) | Err(PathProblem::NotFound) => {}
                Err(PathProblem::Io(e)) => self.problems.push(Problem::file(&pdb_file, format!("cannot read: {e}"))),
                Err(outside) => self.problems.push(Problem::file(
                    CONFIG_FILE,
                    format!("deployment {name:?}: {}", outside.message(&format!("file {pdb_file:?}"))),
                )),
            }
        }
        (manifests, unreadable)
    }

    /// Every document of every `*.yaml`/`*.yml` file of the node pool directories.
    fn nodepool_manifests(&mut self, config: &SimulatorConfig) -> Vec<Value> {
        // (the directory as written, what names it in messages, whether the config names it)
        let mut directories: Vec<(String, String, bool)> = Vec::new();
        for (i, cluster) in config.clusters.iter().enumerate() {
            let super::config::Cluster::Kubernetes(k) = cluster else { continue };
            let entry = match &k.nodepool_directory {
                Some(d) => (d.clone(), format!("clusters[{i}].KubernetesCluster.nodepool_directory {d:?}"), true),
                None => (DEFAULT_NODEPOOL_DIRECTORY.to_string(), default_nodepools(), false),
            };
            if !directories.iter().any(|(d, _, _)| self.dir.join(d) == self.dir.join(&entry.0)) {
                directories.push(entry);
            }
        }
        if directories.is_empty() {
            directories.push((DEFAULT_NODEPOOL_DIRECTORY.to_string(), default_nodepools(), false));
        }
        let mut manifests = Vec::new();
        for (written, named, in_config) in directories {
            let path = self.dir.join(&written);
            let real = match resolve_inside(self.root, Path::new(&written)) {
                Ok(real) if real.is_dir() => real,
                // The default directory is optional; one the config names must exist.
                Ok(_) | Err(PathProblem::NotFound) => {
                    if in_config {
                        self.problems.push(Problem::file(
                            CONFIG_FILE,
                            format!("{named}: directory {} not found", path.display()),
                        ));
                    }
                    continue;
                }
                Err(problem) => {
                    let file = if in_config { CONFIG_FILE.to_string() } else { written.clone() };
                    self.problems.push(Problem::file(file, problem.message(&named)));
                    continue;
                }
            };
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&real) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| path.join(e.file_name()))
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect(),
                Err(e) => {
                    self.problems.push(Problem::file(shown(self.dir, &path), format!("cannot read directory: {e}")));
                    continue;
                }
            };
            files.sort();
            for file in files {
                let shown_file = shown(self.dir, &file);
                let written_file = Path::new(&written).join(file.file_name().unwrap_or_default());
                match resolve_inside(self.root, &written_file) {
                    Ok(real) => manifests.extend(self.read_file(&shown_file, &real).unwrap_or_default()),
                    Err(problem) => {
                        // Named by the config entry that names the directory, else by the
                        // default directory itself.
                        let message = problem.message(&format!("file {shown_file:?}"));
                        self.problems.push(if in_config {
                            Problem::file(CONFIG_FILE, format!("{named}: {message}"))
                        } else {
                            Problem::file(&written, message)
                        });
                    }
                }
            }
        }
        manifests
    }

    /// The documents of the file at `real` (canonical), shown in messages as `file`.
    fn read_file(&mut self, file: &str, real: &Path) -> Option<Vec<Value>> {
        match std::fs::read_to_string(real) {
            Ok(text) => self.documents(file, &text),
            Err(e) => {
                self.problems.push(Problem::file(file, format!("cannot read: {e}")));
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
