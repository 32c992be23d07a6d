//! `config.yml`: the `simulator:` mapping of a Karpenter scenario, every field kept.
//!
//! Fields the player does not use (`associated_scenario`, `instance_pool_size`, `logging`, the
//! cluster descriptions, legacy `workloads`) and keys the format does not know are kept anyway:
//! they travel to the Scenario's `karpenterConfig`, so converting a directory loses nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::{Problem, ScenarioError};
use super::objects::yaml_options;
use crate::limits::{MAX_TIMESTEP_SECONDS, MIN_TIMESTEP_SECONDS, max_limit};

/// File name of the configuration inside a scenario directory.
pub const CONFIG_FILE: &str = "config.yml";

/// The `simulator:` mapping of `config.yml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulatorConfig {
    /// Identifier of the scenario's runs; logs are stored under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// What the scenario exercises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_description: Option<String>,
    /// Name of the scenario in the generator's library (unused by the player).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub associated_scenario: Option<String>,
    /// Seconds between the starts of two steps; an integer or a decimal number.
    pub timestep: f64,
    /// 1-based step the play starts at; absent means 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_step: Option<i64>,
    /// Number of steps played, wrapping around; absent means the number of steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// How many instances of a type can be provisioned (unused by the player).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_pool_size: Option<i64>,
    /// Log level of the original simulator (unused by the player).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<i64>,
    /// Cluster descriptions, each a one-key map naming its kind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<Cluster>,
    /// Legacy ECS-style workloads, kept as written (not played).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Value>,
    /// Directory of the deployment manifests, relative to the scenario directory unless absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments_directory: Option<String>,
    /// Deployment names; each `N` is read from `<deployments_directory>/N.yaml`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<String>,
    /// Keys the format does not define, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of `clusters:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Cluster {
    /// `KubernetesCluster: {...}`.
    #[serde(rename = "KubernetesCluster")]
    Kubernetes(KubernetesCluster),
    /// `EcsCluster: {...}` (legacy ECS scenarios).
    #[serde(rename = "EcsCluster")]
    Ecs(EcsCluster),
    /// Any other entry, kept as written.
    #[serde(untagged)]
    Other(Value),
}

/// The `KubernetesCluster` description.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KubernetesCluster {
    /// Always "KubernetesCluster" in generated files.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub type_: Option<String>,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// Initial node count (unused by the player).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<i64>,
    /// Instance type, e.g. `c5.large` (unused by the player).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub node_type: Option<String>,
    /// Whether the cluster autoscales (unused by the player).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<bool>,
    /// Directory of the node pool manifests, relative to the scenario directory unless absolute;
    /// `nodepools` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub nodepool_directory: Option<String>,
    /// Keys the format does not define, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The legacy `EcsCluster` description.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EcsCluster {
    /// Always "EcsCluster" in generated files.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub type_: Option<String>,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// Number of availability zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub az_count: Option<i64>,
    /// Capacity providers (`- Omakase: {...}`), kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_providers: Vec<Value>,
    /// Keys the format does not define, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl SimulatorConfig {
    /// Parses the text of `config.yml`; a YAML or shape error names the file and its location.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ConfigFile {
            simulator: SimulatorConfig,
        }
        let file: Option<ConfigFile> = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| ScenarioError::yaml(CONFIG_FILE, &e))?;
        match file {
            Some(file) => Ok(file.simulator),
            None => Err(ScenarioError::Yaml {
                file: CONFIG_FILE.to_string(),
                message: "the file is empty; expected a `simulator:` mapping".to_string(),
                line: None,
                column: None,
            }),
        }
    }

    /// The `KubernetesCluster` entries.
    pub fn kubernetes_clusters(&self) -> impl Iterator<Item = &KubernetesCluster> {
        self.clusters.iter().filter_map(|c| match c {
            Cluster::Kubernetes(k) => Some(k),
            _ => None,
        })
    }

    /// Problems of the values (the shape was checked by `parse`): timing fields, run_id, the
    /// deployment list. `n_steps` is the length of `steps.yml`, which bounds `limit`.
    pub(crate) fn problems(&self, n_steps: usize) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |message: String| problems.push(Problem::file(CONFIG_FILE, message));
        if !self.timestep.is_finite() {
            problem(format!("timestep must be a finite number of seconds (got {})", self.timestep));
        } else if self.timestep <= 0.0 {
            problem(format!("timestep must be greater than 0 (got {})", self.timestep));
        } else if !(MIN_TIMESTEP_SECONDS..=MAX_TIMESTEP_SECONDS).contains(&self.timestep) {
            problem(format!("timestep must be from 0.001 to 86400 seconds (got {})", self.timestep));
        }
        // limit is bounded so a play's step sequence and deadlines stay small and exact (see
        // `limits`); start_step only by the API's type (it wraps around the step list).
        for (field, value, max) in
            [("start_step", self.start_step, i64::from(i32::MAX)), ("limit", self.limit, max_limit(n_steps))]
        {
            match value {
                Some(v) if v < 1 => problem(format!("{field} must be at least 1 (got {v})")),
                Some(v) if v > max => problem(format!("{field} must be at most {max} (got {v})")),
                _ => {}
            }
        }
        if let Some(run_id) = &self.run_id
            && !valid_run_id(run_id)
        {
            problem(format!(
                "run_id {run_id:?} may hold only letters, digits, '-', '_' and '.', starting and ending with a \
                 letter or digit, at most 128 characters"
            ));
        }
        if self.deployments.iter().any(String::is_empty) {
            problem("deployments holds an empty name".to_string());
        }
        if !self.deployments.is_empty() && self.deployments_directory.is_none() {
            problem(format!(
                "deployments lists {} deployment(s) but deployments_directory is not set",
                self.deployments.len()
            ));
        }
        if self.deployments.is_empty() && self.workloads.is_some() {
            problem(
                "workloads (legacy ECS scenarios) are not played; list Kubernetes manifests under deployments"
                    .to_string(),
            );
        }
        problems
    }

    /// What is odd but playable in `config.yml`: each deployment listed more than once (real
    /// exports do that), one warning per name; the loader applies it once.
    pub(crate) fn warnings(&self) -> Vec<Problem> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self.deployments.iter().filter(|n| !n.is_empty()) {
            *counts.entry(name).or_default() += 1;
        }
        // In the order of first mention, so the warnings read like the file.
        let mut warned = std::collections::BTreeSet::new();
        self.deployments
            .iter()
            .filter_map(|name| {
                let n = counts.get(name.as_str()).copied().unwrap_or(0);
                (n > 1 && warned.insert(name.as_str())).then(|| {
                    Problem::file(CONFIG_FILE, format!("deployment {name:?} is listed {n} times; it is applied once"))
                })
            })
            .collect()
    }
}

/// The rule of the Scenario API's `runId`, so a converted scenario is accepted.
fn valid_run_id(s: &str) -> bool {
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(ok_inner)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

// Hand-written so that known keys are read straight from the YAML (their type errors keep a
// line and column, and numbers written where strings belong keep their spelling), while unknown
// keys still land in `extra`; `#[serde(flatten)]` would buffer everything and lose both.
impl<'de> Deserialize<'de> for SimulatorConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = SimulatorConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `simulator:` mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SimulatorConfig, A::Error> {
        let mut timestep = None;
        let mut cfg = SimulatorConfig {
            run_id: None,
            run_description: None,
            associated_scenario: None,
            timestep: 0.0,
            start_step: None,
            limit: None,
            instance_pool_size: None,
            logging: None,
            clusters: Vec::new(),
            workloads: None,
            deployments_directory: None,
            deployments: Vec::new(),
            extra: BTreeMap::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "run_id" => cfg.run_id = map.next_value()?,
                "run_description" => cfg.run_description = map.next_value()?,
                "associated_scenario" => cfg.associated_scenario = map.next_value()?,
                "timestep" => timestep = Some(map.next_value::<f64>()?),
                "start_step" => cfg.start_step = map.next_value()?,
                "limit" => cfg.limit = map.next_value()?,
                "instance_pool_size" => cfg.instance_pool_size = map.next_value()?,
                "logging" => cfg.logging = map.next_value()?,
                "clusters" => {
                    let entries: Option<Vec<Value>> = map.next_value()?;
                    cfg.clusters = entries
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                        .map(|(i, entry)| {
                            Cluster::from_value(entry).map_err(|e| de::Error::custom(format!("clusters[{i}]: {e}")))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "workloads" => cfg.workloads = map.next_value()?,
                "deployments_directory" => cfg.deployments_directory = map.next_value()?,
                "deployments" => cfg.deployments = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default(),
                _ => {
                    let value: Value = map.next_value()?;
                    cfg.extra.insert(key, value);
                }
            }
        }
        cfg.timestep = timestep.ok_or_else(|| de::Error::missing_field("timestep"))?;
        Ok(cfg)
    }
}

impl Cluster {
    /// Types a `clusters:` entry by its single key; anything else is kept as `Other`.
    fn from_value(entry: Value) -> Result<Self, String> {
        let Some((key, body)) = entry.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) else {
            return Ok(Cluster::Other(entry));
        };
        match key.as_str() {
            "KubernetesCluster" => serde_json::from_value(body.clone())
                .map(Cluster::Kubernetes)
                .map_err(|e| format!("KubernetesCluster: {e}")),
            "EcsCluster" => {
                serde_json::from_value(body.clone()).map(Cluster::Ecs).map_err(|e| format!("EcsCluster: {e}"))
            }
            _ => Ok(Cluster::Other(entry)),
        }
    }
}

/// Reads an optional string that YAML may have typed as a number or boolean (`name: 1`).
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Lenient;
    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Lenient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_every_field_and_unknown_keys() {
        let text = r#"
simulator:
  run_id: 1753908801
  run_description: d
  associated_scenario: a
  timestep: 0.5
  start_step: 2
  limit: 3
  instance_pool_size: 10
  logging: 100
  clusters:
  - KubernetesCluster: {type: KubernetesCluster, name: 7, node_count: 3, node_type: c5.large, autoscaling: true, nodepool_directory: np, zone: x}
  - EcsCluster:
      type: EcsCluster
      name: ecs
      az_count: 3
      capacity_providers:
      - Omakase: {type: Omakase, name: o, starting_instance_count: 2, rebalancer: {name: r}}
  - Mystery: {anything: [1, 2]}
  workloads:
  - ServiceOwnedWorkload: {name: w, starting_workloads: 2}
  deployments_directory: deps
  deployments: [a, b]
  future_field: {on: yes}
"#;
        let cfg = SimulatorConfig::parse(text).unwrap();
        assert_eq!(cfg.run_id.as_deref(), Some("1753908801"));
        assert_eq!(cfg.timestep, 0.5);
        assert_eq!(
            (cfg.start_step, cfg.limit, cfg.instance_pool_size, cfg.logging),
            (Some(2), Some(3), Some(10), Some(100))
        );
        let k = cfg.kubernetes_clusters().next().unwrap();
        assert_eq!(k.name.as_deref(), Some("7"));
        assert_eq!(k.nodepool_directory.as_deref(), Some("np"));
        assert_eq!(k.extra.get("zone"), Some(&json!("x")));
        let Cluster::Ecs(ecs) = &cfg.clusters[1] else { panic!("{:?}", cfg.clusters[1]) };
        assert_eq!(ecs.az_count, Some(3));
        assert_eq!(ecs.capacity_providers[0]["Omakase"]["rebalancer"]["name"], json!("r"));
        assert_eq!(cfg.clusters[2], Cluster::Other(json!({"Mystery": {"anything": [1, 2]}})));
        assert_eq!(cfg.workloads, Some(json!([{"ServiceOwnedWorkload": {"name": "w", "starting_workloads": 2}}])));
        assert_eq!(cfg.extra.get("future_field"), Some(&json!({"on": "yes"})));
        assert_eq!(cfg.deployments, vec!["a", "b"]);
        // Serializing gives back the file's mapping (with the lenient strings as strings).
        let back = serde_json::to_value(&cfg).unwrap();
        assert_eq!(back["clusters"][0]["KubernetesCluster"]["zone"], json!("x"));
        assert_eq!(back["clusters"][2], json!({"Mystery": {"anything": [1, 2]}}));
        assert_eq!(back["future_field"], json!({"on": "yes"}));
        assert!(cfg.problems(1).is_empty(), "{:?}", cfg.problems(1));
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    }

    #[test]
    fn a_deployment_listed_again_is_one_warning_not_a_problem() {
        let cfg = SimulatorConfig::parse(
            "simulator:\n  timestep: 1\n  deployments_directory: d\n  deployments: [b, a, b, c, a, b, '']\n",
        )
        .unwrap();
        assert_eq!(
            cfg.warnings().iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                r#"config.yml: deployment "b" is listed 3 times; it is applied once"#,
                r#"config.yml: deployment "a" is listed 2 times; it is applied once"#,
            ]
        );
        // Only the empty name is a problem.
        assert_eq!(
            cfg.problems(1).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["config.yml: deployments holds an empty name"]
        );
    }

    #[test]
    fn limit_and_start_step_bounds_follow_the_step_count() {
        let cfg = |limit: i64, start: i64| {
            SimulatorConfig::parse(&format!("simulator:\n  timestep: 1\n  limit: {limit}\n  start_step: {start}\n"))
                .unwrap()
        };
        let shown = |c: SimulatorConfig, n| c.problems(n).iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(shown(cfg(100_000, 2_147_483_647), 60).is_empty());
        assert!(shown(cfg(250_000, 7), 250_000).is_empty());
        assert_eq!(
            shown(cfg(250_001, 2_147_483_648), 250_000),
            [
                "config.yml: start_step must be at most 2147483647 (got 2147483648)",
                "config.yml: limit must be at most 250000 (got 250001)",
            ]
        );
        assert_eq!(shown(cfg(100_001, 1), 60), ["config.yml: limit must be at most 100000 (got 100001)"]);
    }

    #[test]
    fn integer_timestep_and_type_errors_with_location() {
        assert_eq!(SimulatorConfig::parse("simulator:\n  timestep: 15\n").unwrap().timestep, 15.0);
        let err = SimulatorConfig::parse("simulator:\n  timestep: fast\n").unwrap_err();
        let ScenarioError::Yaml { line, column, .. } = &err else { panic!("{err}") };
        assert_eq!((*line, *column), (Some(2), Some(13)));
        assert!(err.to_string().starts_with("config.yml: "), "{err}");
        let err = SimulatorConfig::parse("simulator:\n  limit: 3\n").unwrap_err();
        assert_eq!(err.to_string(), "config.yml: missing field `timestep` at line 2, column 3");
        let err = SimulatorConfig::parse("").unwrap_err();
        assert_eq!(err.to_string(), "config.yml: the file is empty; expected a `simulator:` mapping");
    }
}
