//! Errors of reading, validating and converting a scenario.
//!
//! File-level failures (a missing directory or file, YAML that does not parse into the expected
//! shape) stop the load at once: nothing after them can be checked. Everything else is collected
//! as [`Problem`]s, so one run of `load` reports every mistake of a scenario, not just the first.

use std::fmt;
use std::path::PathBuf;

use super::actions::SPEC;

/// Why a scenario could not be read, validated or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario directory does not exist or is not a directory.
    #[error("scenario directory {}: {reason}", path.display())]
    Directory {
        /// The directory asked for.
        path: PathBuf,
        /// "not found" or "not a directory".
        reason: &'static str,
    },
    /// A file every scenario needs (`config.yml`, `steps.yml`) is absent.
    #[error("{file}: not found in scenario directory {}", dir.display())]
    MissingFile {
        /// The file, relative to the scenario directory.
        file: String,
        /// The scenario directory.
        dir: PathBuf,
    },
    /// A file exists but could not be read (permissions, not UTF-8, ...).
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file, relative to the scenario directory when it is inside it.
        file: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `config.yml` or `steps.yml` is not YAML of the expected shape.
    #[error("{file}: {message}")]
    Yaml {
        /// The file, relative to the scenario directory.
        file: String,
        /// serde-saphyr's message, which ends with the line and column when known.
        message: String,
        /// 1-based line of the error, when known.
        line: Option<u64>,
        /// 1-based column of the error, when known.
        column: Option<u64>,
    },
    /// The files parse but break rules of the format: every problem found, one per line.
    #[error("{}", ProblemLines(.0))]
    Invalid(Vec<Problem>),
    /// The Scenario could not be written as YAML.
    #[error("cannot render the Scenario as YAML: {0}")]
    Render(String),
}

impl ScenarioError {
    /// The problems of an `Invalid` error; empty for the file-level variants.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Invalid(problems) => problems,
            _ => &[],
        }
    }

    /// A YAML error of `file`, keeping the location serde-saphyr found.
    pub(crate) fn yaml(file: impl Into<String>, err: &serde_saphyr::Error) -> Self {
        let location = err.location();
        ScenarioError::Yaml {
            file: file.into(),
            message: err.to_string(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
        }
    }
}

/// Which step of `steps.yml` (or of a Scenario's `spec.steps`) a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// 1-based position in the step list.
    pub position: usize,
    /// The step's `name` label (may be empty).
    pub name: String,
}

/// Which action of a step a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRef {
    /// 1-based position in the step's action list.
    pub position: usize,
    /// The action type as written.
    pub action_type: String,
}

/// One rule a scenario breaks, with where: file, step and action when they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (relative to the scenario directory when inside it), or `spec` for a Scenario.
    pub file: String,
    /// The step, for problems inside a step.
    pub step: Option<StepRef>,
    /// The action, for problems inside an action.
    pub action: Option<ActionRef>,
    /// What is wrong, quoting the offending text.
    pub message: String,
}

impl Problem {
    /// A problem of a whole file (or of the spec).
    pub(crate) fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { file: file.into(), step: None, action: None, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A Scenario's problems name the field the way the API server and kubectl do
        // (`spec.steps[6].actions[517]`, 0-based), with the step's label and the action type.
        if self.file == SPEC
            && let Some(step) = &self.step
        {
            write!(f, "{SPEC}.steps[{}]", step.position.saturating_sub(1))?;
            let mut labels = Vec::new();
            if !step.name.is_empty() {
                labels.push(format!("step {:?}", step.name));
            }
            if let Some(action) = &self.action {
                write!(f, ".actions[{}]", action.position.saturating_sub(1))?;
                labels.push(action.action_type.clone());
            }
            if !labels.is_empty() {
                write!(f, " ({})", labels.join(", "))?;
            }
            return write!(f, ": {}", self.message);
        }
        write!(f, "{}: ", self.file)?;
        if let Some(step) = &self.step {
            write!(f, "step {}", step.position)?;
            if !step.name.is_empty() {
                write!(f, " ({:?})", step.name)?;
            }
            match &self.action {
                Some(action) => write!(f, ", action {} ({}): ", action.position, action.action_type)?,
                None => f.write_str(": ")?,
            }
        }
        f.write_str(&self.message)
    }
}

/// Displays problems one per line.
struct ProblemLines<'a>(&'a [Problem]);

impl fmt::Display for ProblemLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_names_file_step_and_action() {
        let p = Problem {
            file: "steps.yml".into(),
            step: Some(StepRef { position: 3, name: "3".into() }),
            action: Some(ActionRef { position: 1, action_type: "K8S_SCALE".into() }),
            message: "boom".into(),
        };
        assert_eq!(p.to_string(), r#"steps.yml: step 3 ("3"), action 1 (K8S_SCALE): boom"#);
        let unnamed = Problem { step: Some(StepRef { position: 2, name: String::new() }), action: None, ..p.clone() };
        assert_eq!(unnamed.to_string(), "steps.yml: step 2: boom");
        let all = ScenarioError::Invalid(vec![p, Problem::file("config.yml", "bad")]);
        assert_eq!(all.to_string(), "steps.yml: step 3 (\"3\"), action 1 (K8S_SCALE): boom\nconfig.yml: bad");
    }

    #[test]
    fn a_scenario_problem_names_the_field_path() {
        let at = |step: &str, action: Option<&str>| Problem {
            file: SPEC.into(),
            step: Some(StepRef { position: 7, name: step.into() }),
            action: action.map(|t| ActionRef { position: 518, action_type: t.into() }),
            message: "data.replicas is missing".into(),
        };
        assert_eq!(
            at("7", Some("K8S_SCALE")).to_string(),
            r#"spec.steps[6].actions[517] (step "7", K8S_SCALE): data.replicas is missing"#
        );
        assert_eq!(
            at("", Some("K8S_SCALE")).to_string(),
            "spec.steps[6].actions[517] (K8S_SCALE): data.replicas is missing"
        );
        assert_eq!(at("7", None).to_string(), r#"spec.steps[6] (step "7"): data.replicas is missing"#);
        assert_eq!(at("", None).to_string(), "spec.steps[6]: data.replicas is missing");
        assert_eq!(
            Problem::file(SPEC, "steps must hold at least one step").to_string(),
            "spec: steps must hold at least one step"
        );
    }
}
