//! The player's model of a scenario's actions, built from the Scenario API object.
//!
//! The player always goes through a `ScenarioSpec` (a directory is converted first), so a
//! directory and its converted Scenario play identically. `actions_of` is also the Scenario's
//! validation: it checks what the CRD's schema cannot (fields that do not belong to an action's
//! type, scale targets the scenario does not create) and collects every problem.

use std::collections::BTreeSet;
use std::time::Duration;

use rehearsal_crds::{Action, ActionType, ScenarioSpec};
use serde_json::Value;

use super::error::{ActionRef, Problem, ScenarioError, StepRef};
use super::objects::{deployment_name, object_problems};
use super::steps::{DEFAULT_WAIT_TIMEOUT_SECONDS, not_created};
use crate::limits::{MAX_TIMEOUT_SECONDS, MAX_TIMESTEP_SECONDS, MIN_TIMESTEP_SECONDS, max_limit};

/// What problems in a Scenario object are reported against.
pub const SPEC: &str = "spec";

/// One action, ready to play.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    /// 0-based position of the step in the step list.
    pub step_index: usize,
    /// The step's label.
    pub step_name: String,
    /// 0-based position of the action in its step.
    pub action_index: usize,
    /// The action type as written (`K8S_SCALE` and `SCALE` both play as [`ActionKind::Scale`]).
    pub action_type: ActionType,
    /// What to do.
    pub kind: ActionKind,
    /// Free text kept with the action in the logs.
    pub comment: Option<String>,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Set the replicas of a Deployment of the scenario's namespace.
    Scale {
        /// The Deployment.
        name: String,
        /// Replicas to scale to.
        replicas: i32,
    },
    /// Apply an object server-side.
    Apply {
        /// The object.
        manifest: Value,
    },
    /// Delete an object.
    Delete {
        /// API version of the object.
        api_version: String,
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
    },
    /// Wait until a Deployment is available.
    WaitAvailable {
        /// The Deployment.
        name: String,
        /// How long before the wait fails.
        timeout: Duration,
    },
}

/// The actions of every step of `spec` (indexed like `spec.steps`), or every problem of the
/// spec: timing fields, namespace, manifests, and each action's data.
pub fn actions_of(spec: &ScenarioSpec) -> Result<Vec<Vec<PlannedAction>>, ScenarioError> {
    let mut problems = Vec::new();
    let mut problem = |message: String| problems.push(Problem::file(SPEC, message));
    if !spec.timestep.is_finite() || spec.timestep <= 0.0 {
        problem(format!("timestep must be greater than 0 (got {})", spec.timestep));
    } else if !(MIN_TIMESTEP_SECONDS..=MAX_TIMESTEP_SECONDS).contains(&spec.timestep) {
        problem(format!("timestep must be from 0.001 to 86400 seconds (got {})", spec.timestep));
    }
    // startStep only picks where the play starts in the (wrapping) list: any i32 from 1 is safe.
    if spec.start_step < 1 {
        problem(format!("startStep must be at least 1 (got {})", spec.start_step));
    }
    // Bounded so a play's step sequence and deadlines stay small and exact (see `limits`).
    if let Some(limit) = spec.limit {
        let max = max_limit(spec.steps.len());
        if limit < 1 {
            problem(format!("limit must be at least 1 (got {limit})"));
        } else if i64::from(limit) > max {
            problem(format!("limit must be at most {max} (got {limit})"));
        }
    }
    if !is_dns_label(&spec.namespace) {
        problem(format!(
            "namespace {:?} must be a DNS label (lowercase letters, digits and '-', at most 63 characters)",
            spec.namespace
        ));
    }
    if spec.steps.is_empty() {
        problem("steps must hold at least one step".to_string());
    }
    for (list, objects) in [("manifests", &spec.manifests), ("optionalManifests", &spec.optional_manifests)] {
        for (i, object) in objects.iter().enumerate() {
            let missing = object_problems(&object.0);
            if !missing.is_empty() {
                problem(format!("{list}[{i}]: {}", missing.join(", ")));
            }
        }
    }

    // Deployments the scenario creates: from its manifests and from any APPLY action.
    let applied = spec.steps.iter().flat_map(|s| &s.actions).filter_map(|a| a.data.as_ref()?.manifest.as_ref());
    let deployments: BTreeSet<String> =
        spec.manifests.iter().chain(applied).filter_map(|o| deployment_name(&o.0)).map(str::to_string).collect();

    let mut planned = Vec::with_capacity(spec.steps.len());
    for (si, step) in spec.steps.iter().enumerate() {
        let step_ref = StepRef { position: si + 1, name: step.name.clone() };
        let mut actions = Vec::with_capacity(step.actions.len());
        for (ai, action) in step.actions.iter().enumerate() {
            match plan_action(action, &deployments) {
                Ok(kind) => actions.push(PlannedAction {
                    step_index: si,
                    step_name: step.name.clone(),
                    action_index: ai,
                    action_type: action.type_,
                    kind,
                    comment: action.comment.clone(),
                }),
                Err(messages) => problems.extend(messages.into_iter().map(|message| Problem {
                    file: SPEC.to_string(),
                    step: Some(step_ref.clone()),
                    action: Some(ActionRef { position: ai + 1, action_type: action.type_.as_str().to_string() }),
                    message,
                })),
            }
        }
        planned.push(actions);
    }
    if problems.is_empty() { Ok(planned) } else { Err(ScenarioError::Invalid(problems)) }
}

/// The kind of one action, or what is wrong with its data.
fn plan_action(action: &Action, deployments: &BTreeSet<String>) -> Result<ActionKind, Vec<String>> {
    let Some(data) = &action.data else {
        return Err(vec!["data is missing".to_string()]);
    };
    let present = [
        ("name", data.name.is_some()),
        ("replicas", data.replicas.is_some()),
        ("desiredCount", data.desired_count.is_some()),
        ("apiVersion", data.api_version.is_some()),
        ("kind", data.kind.is_some()),
        ("manifest", data.manifest.is_some()),
        ("timeoutSeconds", data.timeout_seconds.is_some()),
    ];
    let allowed: &[&str] = match action.type_ {
        ActionType::K8sScale => &["name", "replicas"],
        ActionType::Scale => &["name", "desiredCount", "replicas"],
        ActionType::Apply => &["manifest"],
        ActionType::Delete => &["apiVersion", "kind", "name"],
        ActionType::WaitAvailable => &["name", "timeoutSeconds"],
    };
    let mut errors: Vec<String> = present
        .iter()
        .filter(|(field, is_set)| *is_set && !allowed.contains(field))
        .map(|(field, _)| format!("data.{field} does not apply to {}", action.type_.as_str()))
        .collect();
    let text = |field: &str, value: &Option<String>, errors: &mut Vec<String>| match value.as_deref() {
        None => {
            errors.push(format!("data.{field} is missing"));
            None
        }
        Some("") => {
            errors.push(format!("data.{field} is empty"));
            None
        }
        Some(v) => Some(v.to_string()),
    };
    let count = |field: &str, value: Option<i32>, min: i32, errors: &mut Vec<String>| match value {
        None => {
            errors.push(format!("data.{field} is missing"));
            None
        }
        Some(v) if v < min => {
            errors.push(format!("data.{field} must be at least {min} (got {v})"));
            None
        }
        // Only a wait has an upper bound: a day, so its deadline always fits (see `limits`).
        Some(v) if field == "timeoutSeconds" && i64::from(v) > MAX_TIMEOUT_SECONDS => {
            errors.push(format!("data.{field} must be at most {MAX_TIMEOUT_SECONDS} (got {v})"));
            None
        }
        Some(v) => Some(v),
    };
    let target = |name: Option<String>, errors: &mut Vec<String>| {
        name.filter(|name| {
            let known = deployments.contains(name);
            if !known {
                errors.push(not_created(name, deployments.iter()));
            }
            known
        })
    };
    let kind = match action.type_ {
        ActionType::K8sScale => {
            let name = target(text("name", &data.name, &mut errors), &mut errors);
            let replicas = count("replicas", data.replicas, 0, &mut errors);
            name.zip(replicas).map(|(name, replicas)| ActionKind::Scale { name, replicas })
        }
        ActionType::Scale => {
            let name = target(text("name", &data.name, &mut errors), &mut errors);
            let replicas = match (data.desired_count, data.replicas) {
                (Some(_), Some(_)) => {
                    errors.push("data.desiredCount and data.replicas are both given; give one".to_string());
                    None
                }
                (None, Some(r)) => count("replicas", Some(r), 0, &mut errors),
                (d, None) => count("desiredCount", d, 0, &mut errors),
            };
            name.zip(replicas).map(|(name, replicas)| ActionKind::Scale { name, replicas })
        }
        ActionType::Apply => match &data.manifest {
            None => {
                errors.push("data.manifest is missing".to_string());
                None
            }
            Some(object) => {
                let missing = object_problems(&object.0);
                if missing.is_empty() {
                    Some(ActionKind::Apply { manifest: object.0.clone() })
                } else {
                    errors.push(format!("data.manifest: {}", missing.join(", ")));
                    None
                }
            }
        },
        ActionType::Delete => {
            let api_version = text("apiVersion", &data.api_version, &mut errors);
            let kind = text("kind", &data.kind, &mut errors);
            let name = text("name", &data.name, &mut errors);
            match (api_version, kind, name) {
                (Some(api_version), Some(kind), Some(name)) => Some(ActionKind::Delete { api_version, kind, name }),
                _ => None,
            }
        }
        ActionType::WaitAvailable => {
            let name = target(text("name", &data.name, &mut errors), &mut errors);
            let seconds = count(
                "timeoutSeconds",
                Some(data.timeout_seconds.unwrap_or(DEFAULT_WAIT_TIMEOUT_SECONDS)),
                1,
                &mut errors,
            );
            name.zip(seconds).map(|(name, seconds)| ActionKind::WaitAvailable {
                name,
                timeout: Duration::from_secs(seconds.unsigned_abs().into()),
            })
        }
    };
    match kind {
        Some(kind) if errors.is_empty() => Ok(kind),
        _ => Err(errors),
    }
}

/// The Scenario API's rule for `namespace`.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehearsal_crds::{ActionData, EmbeddedObject, Step};
    use serde_json::json;

    fn spec(actions: Vec<Action>) -> ScenarioSpec {
        ScenarioSpec {
            run_id: None,
            description: None,
            timestep: 1.0,
            start_step: 1,
            limit: None,
            namespace: "ns".into(),
            manifests: vec![EmbeddedObject(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            )],
            optional_manifests: vec![],
            steps: vec![Step { name: "1".into(), actions }],
            karpenter_config: None,
        }
    }

    #[test]
    fn numbers_past_their_bounds_are_problems() {
        let wait = |seconds| {
            action(
                ActionType::WaitAvailable,
                ActionData { name: Some("web".into()), timeout_seconds: Some(seconds), ..Default::default() },
            )
        };
        let mut big = spec(vec![wait(86_401)]);
        big.timestep = 86_400.5;
        // startStep only picks where the wrapping list starts: any i32 from 1 is fine.
        big.start_step = i32::MAX;
        big.limit = Some(2_000_000_000);
        assert_eq!(
            actions_of(&big).unwrap_err().to_string(),
            [
                "spec: timestep must be from 0.001 to 86400 seconds (got 86400.5)",
                "spec: limit must be at most 100000 (got 2000000000)",
                r#"spec.steps[0].actions[0] (step "1", WAIT_AVAILABLE): data.timeoutSeconds must be at most 86400 (got 86401)"#,
            ]
            .join("\n")
        );
        let mut small = spec(vec![wait(86_400)]);
        small.timestep = 1e-6;
        assert_eq!(
            actions_of(&small).unwrap_err().to_string(),
            "spec: timestep must be from 0.001 to 86400 seconds (got 0.000001)"
        );
        let mut edge = spec(vec![wait(86_400)]);
        (edge.timestep, edge.start_step, edge.limit) = (86_400.0, 1, Some(100_000));
        assert!(actions_of(&edge).is_ok());
    }

    fn action(type_: ActionType, data: ActionData) -> Action {
        Action { type_, comment: Some("c".into()), data: Some(data) }
    }

    #[test]
    fn plans_every_action_type() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let spec = spec(vec![
            action(
                ActionType::K8sScale,
                ActionData { name: Some("web".into()), replicas: Some(3), ..Default::default() },
            ),
            action(ActionType::Scale, ActionData { name: Some("web".into()), replicas: Some(4), ..Default::default() }),
            action(
                ActionType::Scale,
                ActionData { name: Some("web".into()), desired_count: Some(5), ..Default::default() },
            ),
            action(ActionType::Apply, ActionData { manifest: Some(EmbeddedObject(cm.clone())), ..Default::default() }),
            action(
                ActionType::Delete,
                ActionData {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                    name: Some("c".into()),
                    ..Default::default()
                },
            ),
            action(ActionType::WaitAvailable, ActionData { name: Some("web".into()), ..Default::default() }),
            action(
                ActionType::WaitAvailable,
                ActionData { name: Some("web".into()), timeout_seconds: Some(7), ..Default::default() },
            ),
        ]);
        let planned = actions_of(&spec).unwrap();
        let kinds: Vec<_> = planned[0].iter().map(|a| a.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                ActionKind::Scale { name: "web".into(), replicas: 3 },
                ActionKind::Scale { name: "web".into(), replicas: 4 },
                ActionKind::Scale { name: "web".into(), replicas: 5 },
                ActionKind::Apply { manifest: cm },
                ActionKind::Delete { api_version: "v1".into(), kind: "ConfigMap".into(), name: "c".into() },
                ActionKind::WaitAvailable { name: "web".into(), timeout: Duration::from_secs(300) },
                ActionKind::WaitAvailable { name: "web".into(), timeout: Duration::from_secs(7) },
            ]
        );
        assert_eq!(
            (planned[0][6].step_index, planned[0][6].action_index, planned[0][6].step_name.as_str()),
            (0, 6, "1")
        );
        assert_eq!(planned[0][1].action_type, ActionType::Scale);
        assert_eq!(planned[0][0].comment.as_deref(), Some("c"));
    }

    #[test]
    fn reports_every_problem_of_the_spec() {
        let mut bad = spec(vec![
            action(
                ActionType::K8sScale,
                ActionData {
                    name: Some("api".into()),
                    replicas: Some(-1),
                    kind: Some("x".into()),
                    ..Default::default()
                },
            ),
            Action { type_: ActionType::Delete, comment: None, data: None },
            action(
                ActionType::Scale,
                ActionData {
                    name: Some("web".into()),
                    replicas: Some(1),
                    desired_count: Some(2),
                    ..Default::default()
                },
            ),
            action(
                ActionType::Apply,
                ActionData { manifest: Some(EmbeddedObject(json!({"kind": "X"}))), ..Default::default() },
            ),
            action(
                ActionType::WaitAvailable,
                ActionData { name: Some(String::new()), timeout_seconds: Some(0), ..Default::default() },
            ),
        ]);
        bad.timestep = 0.0;
        bad.start_step = 0;
        bad.limit = Some(0);
        bad.namespace = "Bad_NS".into();
        bad.optional_manifests = vec![EmbeddedObject(json!({"apiVersion": "v1"}))];
        let err = actions_of(&bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            [
                "spec: timestep must be greater than 0 (got 0)",
                "spec: startStep must be at least 1 (got 0)",
                "spec: limit must be at least 1 (got 0)",
                r#"spec: namespace "Bad_NS" must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"#,
                "spec: optionalManifests[0]: kind is missing, metadata.name is missing",
                r#"spec.steps[0].actions[0] (step "1", K8S_SCALE): data.kind does not apply to K8S_SCALE"#,
                r#"spec.steps[0].actions[0] (step "1", K8S_SCALE): deployment "api" is not created by this scenario (its Deployments: web)"#,
                r#"spec.steps[0].actions[0] (step "1", K8S_SCALE): data.replicas must be at least 0 (got -1)"#,
                r#"spec.steps[0].actions[1] (step "1", DELETE): data is missing"#,
                r#"spec.steps[0].actions[2] (step "1", SCALE): data.desiredCount and data.replicas are both given; give one"#,
                r#"spec.steps[0].actions[3] (step "1", APPLY): data.manifest: apiVersion is missing, metadata.name is missing"#,
                r#"spec.steps[0].actions[4] (step "1", WAIT_AVAILABLE): data.name is empty"#,
                r#"spec.steps[0].actions[4] (step "1", WAIT_AVAILABLE): data.timeoutSeconds must be at least 1 (got 0)"#,
            ]
            .join("\n")
        );
        let mut empty = spec(vec![]);
        empty.steps.clear();
        assert_eq!(actions_of(&empty).unwrap_err().to_string(), "spec: steps must hold at least one step");
    }

    #[test]
    fn every_rule_moved_out_of_the_schema_is_a_problem_naming_its_field() {
        let cases = rehearsal_crds::testdata::invalid_actions();
        assert!(cases.len() >= 7, "the shared cases went missing");
        for case in cases {
            let scenario: rehearsal_crds::Scenario = serde_json::from_value(case.object).unwrap();
            let err = actions_of(&scenario.spec).expect_err(&case.name);
            assert_eq!(err.to_string(), case.valid, "{}", case.name);
        }
    }

    fn big() -> serde_json::Value {
        rehearsal_crds::testdata::big_scenario("big")
    }

    fn spec_of(object: serde_json::Value) -> ScenarioSpec {
        serde_json::from_value::<rehearsal_crds::Scenario>(object).unwrap().spec
    }

    #[test]
    fn a_scenario_the_size_of_an_export_plans() {
        use rehearsal_crds::testdata::{BIG_ACTIONS, BIG_FIRST_STEP_ACTIONS, BIG_STEPS};
        let planned = actions_of(&spec_of(big())).unwrap();
        assert_eq!(planned.len(), BIG_STEPS);
        const { assert!(BIG_STEPS > 5000, "more steps than the API once took") };
        assert_eq!(planned[0].len(), BIG_FIRST_STEP_ACTIONS);
        assert_eq!(planned.iter().map(Vec::len).sum::<usize>(), BIG_ACTIONS);
        let last = &planned[BIG_STEPS - 1][0];
        assert_eq!((last.step_index, last.step_name.as_str(), last.action_index), (BIG_STEPS - 1, "9001", 0));
    }

    #[test]
    fn a_bad_action_in_a_big_scenario_is_named_by_step_action_and_field() {
        let mut object = big();
        let data = object.pointer_mut("/spec/steps/0/actions/517/data").unwrap().as_object_mut().unwrap();
        data.remove("replicas");
        object.pointer_mut("/spec/steps/6000/actions/0/data/name").map(|n| *n = json!("nope")).unwrap();
        let err = actions_of(&spec_of(object)).unwrap_err();
        assert_eq!(
            err.to_string(),
            [
                r#"spec.steps[0].actions[517] (step "1", K8S_SCALE): data.replicas is missing"#,
                r#"spec.steps[6000].actions[0] (step "6001", K8S_SCALE): deployment "nope" is not created by this scenario (its 300 Deployments: d000, d001, d002, d003, d004, d005, d006, d007, d008, d009 and 290 more)"#,
            ]
            .join("\n")
        );
    }

    #[test]
    fn limit_may_reach_the_number_of_steps() {
        let mut long = spec(vec![]);
        long.steps = vec![Step::default(); 100_001];
        long.limit = Some(100_001);
        assert!(actions_of(&long).is_ok());
        long.limit = Some(100_002);
        assert_eq!(actions_of(&long).unwrap_err().to_string(), "spec: limit must be at most 100001 (got 100002)");
    }

    #[test]
    fn an_applied_deployment_may_be_scaled() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "late"}});
        let mut s = spec(vec![action(
            ActionType::K8sScale,
            ActionData { name: Some("late".into()), replicas: Some(1), ..Default::default() },
        )]);
        s.steps.push(Step {
            name: "2".into(),
            actions: vec![action(
                ActionType::Apply,
                ActionData { manifest: Some(EmbeddedObject(deploy)), ..Default::default() },
            )],
        });
        assert!(actions_of(&s).is_ok());
    }
}
