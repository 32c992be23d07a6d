//! `steps.yml`: the step list, and the `action_data` mini-language of its actions.
//!
//! `action_data` is comma-separated `key=value` pairs, whitespace around keys and values trimmed,
//! no quoting. Unlike the original Go driver, parsing is strict: a pair without `=`, an empty
//! pair, a key the action type does not take, a key given twice, a missing required key and a
//! count that is not a non-negative integer are all errors.

use std::collections::BTreeMap;
use std::path::Path;

use rehearsal_crds::ActionType;
use serde::Deserialize;
use serde_json::Value;

use super::directory::resolve_inside;
use super::error::{ActionRef, Problem, ScenarioError, StepRef};
use super::objects::{object_problems, parse_documents, yaml_options};

/// File name of the step list inside a scenario directory.
pub const STEPS_FILE: &str = "steps.yml";

/// Seconds a `WAIT_AVAILABLE` action waits when `timeoutSeconds` is not given.
pub const DEFAULT_WAIT_TIMEOUT_SECONDS: i32 = 300;

/// One step of `steps.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioStep {
    /// The step's label (`name: 1` is kept as "1"); order comes from the list position.
    pub name: String,
    /// The step's actions; empty for an idle step.
    pub actions: Vec<StepAction>,
}

/// One action of a step, as written and as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAction {
    /// Free text kept with the action.
    pub comment: Option<String>,
    /// The action type.
    pub action_type: ActionType,
    /// The `action_data` text as written.
    pub action_data: String,
    /// The parsed arguments.
    pub args: ActionArgs,
}

/// Parsed `action_data` of an action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionArgs {
    /// `K8S_SCALE`: `name=<deployment>,replicas=<n>`.
    K8sScale {
        /// The Deployment.
        name: String,
        /// Replicas to scale to.
        replicas: i32,
    },
    /// Legacy `SCALE`: `name=<deployment>,desiredCount=<n>` (or `replicas=<n>`).
    Scale {
        /// The Deployment.
        name: String,
        /// Replicas to scale to.
        desired_count: i32,
    },
    /// `APPLY` (rehearsal extension): `file=<path relative to the scenario directory>`.
    Apply {
        /// The path as written.
        file: String,
        /// The object the file holds.
        manifest: Value,
    },
    /// `DELETE` (rehearsal extension): `apiVersion=<v>,kind=<k>,name=<n>`.
    Delete {
        /// API version of the object.
        api_version: String,
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
    },
    /// `WAIT_AVAILABLE` (rehearsal extension): `name=<deployment>[,timeoutSeconds=<n>]`.
    WaitAvailable {
        /// The Deployment.
        name: String,
        /// Seconds before the wait fails; None means [`DEFAULT_WAIT_TIMEOUT_SECONDS`].
        timeout_seconds: Option<i32>,
    },
}

impl ActionArgs {
    /// The Deployment the action needs the scenario to create (scale and wait actions).
    pub fn deployment(&self) -> Option<&str> {
        match self {
            ActionArgs::K8sScale { name, .. }
            | ActionArgs::Scale { name, .. }
            | ActionArgs::WaitAvailable { name, .. } => Some(name),
            ActionArgs::Apply { .. } | ActionArgs::Delete { .. } => None,
        }
    }
}

// The file's shape. Unknown keys are rejected here (unlike config.yml): a misspelt key in a step
// would otherwise silently drop an action or its data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepsFile {
    #[serde(default)]
    scenario: Option<Vec<StepItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepItem {
    step: RawStep,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    actions: Option<Vec<ActionItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionItem {
    action: RawAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(default)]
    comment: Option<String>,
    action_type: String,
    #[serde(default)]
    action_data: Option<String>,
}

/// An action of `steps.yml` as written, before its data is parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrittenAction {
    pub comment: Option<String>,
    pub action_type: String,
    pub action_data: String,
}

/// A step of `steps.yml` as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrittenStep {
    pub name: String,
    pub actions: Vec<WrittenAction>,
}

/// Parses the shape of `steps.yml`; the action data is checked by [`resolve_steps`].
pub(crate) fn parse_steps_file(text: &str) -> Result<Vec<WrittenStep>, ScenarioError> {
    let file: Option<StepsFile> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| ScenarioError::yaml(STEPS_FILE, &e))?;
    let steps = file.and_then(|f| f.scenario).unwrap_or_default();
    Ok(steps
        .into_iter()
        .map(|item| WrittenStep {
            name: item.step.name.unwrap_or_default(),
            actions: item
                .step
                .actions
                .unwrap_or_default()
                .into_iter()
                .map(|a| WrittenAction {
                    comment: a.action.comment,
                    action_type: a.action.action_type,
                    action_data: a.action.action_data.unwrap_or_default(),
                })
                .collect(),
        })
        .collect())
}

/// Parses every action's data; `deployments` are the Deployments the scenario creates, which
/// scale and wait actions must name. `dir` resolves `APPLY` files. Any number of steps and
/// actions is taken: a directory is bound only by memory.
pub(crate) fn resolve_steps(
    written: Vec<WrittenStep>,
    dir: &Path,
    deployments: &std::collections::BTreeSet<String>,
    all_problems: &mut Vec<Problem>,
) -> Vec<ScenarioStep> {
    let mut problems = Vec::new();
    if written.is_empty() {
        problems.push(Problem::file(STEPS_FILE, "the scenario has no steps (`scenario:` is missing or empty)"));
    }
    let mut steps = Vec::with_capacity(written.len());
    // Pending membership checks: run after every APPLY is read, since an applied Deployment
    // counts as one the scenario creates.
    let mut scale_targets = Vec::new();
    let mut applied = std::collections::BTreeSet::new();
    for (si, step) in written.into_iter().enumerate() {
        let step_ref = StepRef { position: si + 1, name: step.name.clone() };
        let mut actions = Vec::with_capacity(step.actions.len());
        for (ai, action) in step.actions.into_iter().enumerate() {
            let at = Problem {
                file: STEPS_FILE.to_string(),
                step: Some(step_ref.clone()),
                action: Some(ActionRef { position: ai + 1, action_type: action.action_type.clone() }),
                message: String::new(),
            };
            let Some(action_type) = ActionType::ALL.into_iter().find(|t| t.as_str() == action.action_type) else {
                let known: Vec<_> = ActionType::ALL.iter().map(|t| t.as_str()).collect();
                problems.push(Problem {
                    message: format!(
                        "unknown action_type {:?} (expected one of {})",
                        action.action_type,
                        known.join(", ")
                    ),
                    ..at
                });
                continue;
            };
            match parse_action_data(action_type, &action.action_data, dir) {
                Ok(args) => {
                    if let ActionArgs::Apply { manifest, .. } = &args
                        && let Some(name) = super::objects::deployment_name(manifest)
                    {
                        applied.insert(name.to_string());
                    }
                    if let Some(name) = args.deployment() {
                        scale_targets.push((at.clone(), action.action_data.clone(), name.to_string()));
                    }
                    actions.push(StepAction {
                        comment: action.comment,
                        action_type,
                        action_data: action.action_data,
                        args,
                    });
                }
                Err(messages) => {
                    for message in messages {
                        problems.push(Problem {
                            message: format!("action_data {:?}: {message}", action.action_data),
                            ..at.clone()
                        });
                    }
                }
            }
        }
        steps.push(ScenarioStep { name: step.name, actions });
    }
    for (at, data, name) in scale_targets {
        if !deployments.contains(&name) && !applied.contains(&name) {
            problems.push(Problem {
                message: format!("action_data {data:?}: {}", not_created(&name, deployments.iter().chain(&applied))),
                ..at
            });
        }
    }
    // Reported in file order: the membership checks above ran after the whole list was read.
    problems.sort_by_key(|p| (p.step.as_ref().map(|s| s.position), p.action.as_ref().map(|a| a.position)));
    all_problems.append(&mut problems);
    steps
}

/// Most Deployment names a "not created" message lists: an export creates hundreds, and the
/// message is repeated for every action naming a wrong one (and ends up in a condition).
const KNOWN_LISTED: usize = 10;

/// The message for a scale or wait action naming a Deployment the scenario does not create.
pub(crate) fn not_created<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let mut known: Vec<&str> = known.map(String::as_str).collect();
    known.sort_unstable();
    known.dedup();
    if known.is_empty() {
        return format!("deployment {name:?} is not created by this scenario (it creates no Deployment)");
    }
    let more = known.len().saturating_sub(KNOWN_LISTED);
    let listed = known[..known.len().min(KNOWN_LISTED)].join(", ");
    if more == 0 {
        format!("deployment {name:?} is not created by this scenario (its Deployments: {listed})")
    } else {
        format!(
            "deployment {name:?} is not created by this scenario (its {} Deployments: {listed} and {more} more)",
            known.len()
        )
    }
}

/// Parses `action_data` for `action_type`; every problem found is returned, without the
/// `action_data "..."` prefix. `dir` resolves `APPLY` files.
pub fn parse_action_data(action_type: ActionType, data: &str, dir: &Path) -> Result<ActionArgs, Vec<String>> {
    let allowed: &[&str] = match action_type {
        ActionType::K8sScale => &["name", "replicas"],
        ActionType::Scale => &["name", "desiredCount", "replicas"],
        ActionType::Apply => &["file"],
        ActionType::Delete => &["apiVersion", "kind", "name"],
        ActionType::WaitAvailable => &["name", "timeoutSeconds"],
    };
    let mut errors = Vec::new();
    let mut pairs: BTreeMap<&str, &str> = BTreeMap::new();
    // An empty action_data has no pairs at all (rather than one empty pair): only the missing
    // keys are reported.
    let pieces = if data.trim().is_empty() { Vec::new() } else { data.split(',').collect() };
    for pair in pieces {
        let pair = pair.trim();
        let Some((key, value)) = pair.split_once('=') else {
            if pair.is_empty() {
                errors.push("empty pair (two commas in a row, or a comma at either end)".to_string());
            } else {
                errors.push(format!("pair {pair:?} has no \"=\""));
            }
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if !allowed.contains(&key) {
            errors.push(format!("unknown key {key:?} for {} (expected {})", action_type.as_str(), allowed.join(", ")));
        } else if pairs.insert(key, value).is_some() {
            errors.push(format!("key {key:?} given twice"));
        }
    }
    let required = |key: &str, errors: &mut Vec<String>| -> Option<String> {
        match pairs.get(key).copied() {
            None => {
                errors.push(format!("{key} is missing"));
                None
            }
            Some("") => {
                errors.push(format!("{key} is empty"));
                None
            }
            Some(v) => Some(v.to_string()),
        }
    };
    let args = match action_type {
        ActionType::K8sScale => {
            let name = required("name", &mut errors);
            let replicas = required("replicas", &mut errors).and_then(|v| count("replicas", &v, 0, &mut errors));
            name.zip(replicas).map(|(name, replicas)| ActionArgs::K8sScale { name, replicas })
        }
        ActionType::Scale => {
            let name = required("name", &mut errors);
            let key = match (pairs.contains_key("desiredCount"), pairs.contains_key("replicas")) {
                (true, true) => {
                    errors.push("desiredCount and replicas are both given; give one".to_string());
                    None
                }
                (false, true) => Some("replicas"),
                _ => Some("desiredCount"),
            };
            let desired = key
                .and_then(|key| required(key, &mut errors).map(|v| (key, v)))
                .and_then(|(key, v)| count(key, &v, 0, &mut errors));
            name.zip(desired).map(|(name, desired_count)| ActionArgs::Scale { name, desired_count })
        }
        ActionType::Apply => required("file", &mut errors).and_then(|file| match read_apply_file(dir, &file) {
            Ok(manifest) => Some(ActionArgs::Apply { file, manifest }),
            Err(e) => {
                errors.push(e);
                None
            }
        }),
        ActionType::Delete => {
            let api_version = required("apiVersion", &mut errors);
            let kind = required("kind", &mut errors);
            let name = required("name", &mut errors);
            match (api_version, kind, name) {
                (Some(api_version), Some(kind), Some(name)) => Some(ActionArgs::Delete { api_version, kind, name }),
                _ => None,
            }
        }
        ActionType::WaitAvailable => {
            let name = required("name", &mut errors);
            let timeout = match pairs.get("timeoutSeconds") {
                None => Some(None),
                Some(v) => count("timeoutSeconds", v, 1, &mut errors).map(Some),
            };
            name.zip(timeout).map(|(name, timeout_seconds)| ActionArgs::WaitAvailable { name, timeout_seconds })
        }
    };
    match args {
        Some(args) if errors.is_empty() => Ok(args),
        _ => Err(errors),
    }
}

/// A count written in action data: decimal digits only, at least `min`, at most `i32::MAX`
/// (the API's type).
fn count(key: &str, value: &str, min: i32, errors: &mut Vec<String>) -> Option<i32> {
    let what = if min == 0 { "a non-negative integer" } else { "a positive integer" };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(format!("{key} {value:?} is not {what}"));
        return None;
    }
    match value.parse::<i32>() {
        Ok(n) if n >= min => Some(n),
        Ok(_) => {
            errors.push(format!("{key} {value:?} is not {what}"));
            None
        }
        Err(_) => {
            errors.push(format!("{key} {value:?} is too large (at most {})", i32::MAX));
            None
        }
    }
}

/// Reads the single object an `APPLY` file holds; the file must be inside `dir`, the scenario
/// directory (see [`resolve_inside`]).
fn read_apply_file(dir: &Path, file: &str) -> Result<Value, String> {
    let what = format!("file {file:?}");
    let root =
        dir.canonicalize().map_err(|e| format!("{what} cannot be read: scenario directory {}: {e}", dir.display()))?;
    let path = resolve_inside(&root, Path::new(file)).map_err(|problem| problem.message(&what))?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{what} cannot be read: {e}"))?;
    let mut docs = parse_documents(&text).map_err(|e| format!("file {file:?}: {e}"))?;
    if docs.len() != 1 {
        return Err(format!("file {file:?} holds {} documents; APPLY applies exactly one", docs.len()));
    }
    let doc = docs.remove(0);
    let problems = object_problems(&doc);
    if !problems.is_empty() {
        return Err(format!("file {file:?}: {}", problems.join(", ")));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(t: ActionType, data: &str) -> Result<ActionArgs, Vec<String>> {
        parse_action_data(t, data, Path::new("/nonexistent"))
    }

    #[test]
    fn k8s_scale() {
        assert_eq!(
            parse(ActionType::K8sScale, " name = deploy-if , replicas=12 "),
            Ok(ActionArgs::K8sScale { name: "deploy-if".into(), replicas: 12 })
        );
        assert_eq!(
            parse(ActionType::K8sScale, "name=a,replicas=0"),
            Ok(ActionArgs::K8sScale { name: "a".into(), replicas: 0 })
        );
        assert_eq!(
            parse(ActionType::K8sScale, "name=deploy-if,replicas=twelve"),
            Err(vec![r#"replicas "twelve" is not a non-negative integer"#.to_string()])
        );
        assert_eq!(
            parse(ActionType::K8sScale, "name=a,replicas=-1"),
            Err(vec![r#"replicas "-1" is not a non-negative integer"#.to_string()])
        );
        assert_eq!(
            parse(ActionType::K8sScale, "name=a,replicas=+1"),
            Err(vec![r#"replicas "+1" is not a non-negative integer"#.to_string()])
        );
        assert_eq!(
            parse(ActionType::K8sScale, "name=a,replicas=99999999999"),
            Err(vec![r#"replicas "99999999999" is too large (at most 2147483647)"#.to_string()])
        );
        assert_eq!(
            parse(ActionType::K8sScale, "replicas=3,oops,name=a,name=b,size=4,"),
            Err(vec![
                r#"pair "oops" has no "=""#.to_string(),
                r#"key "name" given twice"#.to_string(),
                r#"unknown key "size" for K8S_SCALE (expected name, replicas)"#.to_string(),
                "empty pair (two commas in a row, or a comma at either end)".to_string(),
            ])
        );
        assert_eq!(
            parse(ActionType::K8sScale, " "),
            Err(vec!["name is missing".to_string(), "replicas is missing".to_string()])
        );
        assert_eq!(parse(ActionType::K8sScale, "name=,replicas=1"), Err(vec!["name is empty".to_string()]));
        assert_eq!(
            parse(ActionType::K8sScale, "name=a,desiredCount=1").unwrap_err()[0],
            r#"unknown key "desiredCount" for K8S_SCALE (expected name, replicas)"#
        );
    }

    #[test]
    fn legacy_scale() {
        assert_eq!(
            parse(ActionType::Scale, "name=a,desiredCount=4"),
            Ok(ActionArgs::Scale { name: "a".into(), desired_count: 4 })
        );
        assert_eq!(
            parse(ActionType::Scale, "name=a,replicas=5"),
            Ok(ActionArgs::Scale { name: "a".into(), desired_count: 5 })
        );
        assert_eq!(parse(ActionType::Scale, "name=a"), Err(vec!["desiredCount is missing".to_string()]));
        assert_eq!(
            parse(ActionType::Scale, "name=a,replicas=1,desiredCount=2"),
            Err(vec!["desiredCount and replicas are both given; give one".to_string()])
        );
        assert_eq!(
            parse(ActionType::Scale, "desiredCount=x"),
            Err(vec!["name is missing".to_string(), r#"desiredCount "x" is not a non-negative integer"#.to_string()])
        );
    }

    #[test]
    fn delete_and_wait() {
        assert_eq!(
            parse(ActionType::Delete, "apiVersion=policy/v1,kind=PodDisruptionBudget,name=p"),
            Ok(ActionArgs::Delete {
                api_version: "policy/v1".into(),
                kind: "PodDisruptionBudget".into(),
                name: "p".into()
            })
        );
        assert_eq!(
            parse(ActionType::Delete, "name=p"),
            Err(vec!["apiVersion is missing".to_string(), "kind is missing".to_string()])
        );
        assert_eq!(
            parse(ActionType::WaitAvailable, "name=d"),
            Ok(ActionArgs::WaitAvailable { name: "d".into(), timeout_seconds: None })
        );
        assert_eq!(
            parse(ActionType::WaitAvailable, "name=d,timeoutSeconds=60"),
            Ok(ActionArgs::WaitAvailable { name: "d".into(), timeout_seconds: Some(60) })
        );
        assert_eq!(
            parse(ActionType::WaitAvailable, "name=d,timeoutSeconds=0"),
            Err(vec![r#"timeoutSeconds "0" is not a positive integer"#.to_string()])
        );
    }

    #[test]
    fn apply_reads_one_object_relative_to_the_scenario() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: no}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("two.yaml"), "a: 1\n---\nb: 2\n").unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: ConfigMap\n").unwrap();
        assert_eq!(
            parse_action_data(ActionType::Apply, "file=cm.yaml", dir.path()),
            Ok(ActionArgs::Apply {
                file: "cm.yaml".into(),
                manifest: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "no"}})
            })
        );
        assert_eq!(
            parse_action_data(ActionType::Apply, "file=missing.yaml", dir.path()),
            Err(vec![r#"file "missing.yaml" not found"#.to_string()])
        );
        assert_eq!(
            parse_action_data(ActionType::Apply, "file=two.yaml", dir.path()),
            Err(vec![r#"file "two.yaml" holds 2 documents; APPLY applies exactly one"#.to_string()])
        );
        assert_eq!(
            parse_action_data(ActionType::Apply, "file=bad.yaml", dir.path()),
            Err(vec![r#"file "bad.yaml": apiVersion is missing, metadata.name is missing"#.to_string()])
        );
    }

    #[test]
    fn not_created_lists_a_few_of_many_deployments() {
        let few: Vec<String> = ["b", "a", "b"].map(String::from).to_vec();
        assert_eq!(
            not_created("x", few.iter()),
            r#"deployment "x" is not created by this scenario (its Deployments: a, b)"#
        );
        assert_eq!(
            not_created("x", [].iter()),
            r#"deployment "x" is not created by this scenario (it creates no Deployment)"#
        );
        let many: Vec<String> = (0..600).map(|i| format!("d{i:03}")).collect();
        assert_eq!(
            not_created("x", many.iter()),
            r#"deployment "x" is not created by this scenario (its 600 Deployments: d000, d001, d002, d003, d004, d005, d006, d007, d008, d009 and 590 more)"#
        );
    }

    #[test]
    fn steps_file_shape() {
        let steps = parse_steps_file(
            "scenario:\n- step:\n    name: 1\n    actions: []\n- step:\n    name: two\n    actions:\n    - action:\n        action_type: K8S_SCALE\n        action_data: name=a,replicas=1\n- step: {name: 3}\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0], WrittenStep { name: "1".into(), actions: vec![] });
        assert_eq!(steps[1].actions[0].action_data, "name=a,replicas=1");
        assert_eq!(steps[1].actions[0].comment, None);
        assert!(steps[2].actions.is_empty());
        let err = parse_steps_file("scenario:\n- step:\n    name: 1\n    acions: []\n").unwrap_err();
        assert!(err.to_string().starts_with("steps.yml: unknown field `acions`"), "{err}");
        assert!(matches!(err, ScenarioError::Yaml { line: Some(4), .. }), "{err:?}");
    }
}
