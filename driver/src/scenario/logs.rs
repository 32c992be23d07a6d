//! The log folder of a play and what goes in it.
//!
//! ```text
//! LOG_DIR/<run id>/<start time, e.g. 20261122T004512Z>/
//!   scenario.yaml              the Scenario as played (namespace resolved, manifests embedded)
//!   actions.jsonl              one line per action: ActionRecord
//!   steps/<NNN>-<step>.json    after each step: deployments, pods, nodes, PDBs (StepSnapshot)
//!   summary.json               Summary
//! ```
//!
//! NNN is the position in the play (001 for the first step played, wider past 999), so a
//! wrapping play that runs a step twice writes two files. A second run started in the same
//! second gets `<start time>-2`: runs never overwrite each other.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// `scenario.yaml`.
pub const SCENARIO_FILE: &str = "scenario.yaml";
/// `actions.jsonl`.
pub const ACTIONS_FILE: &str = "actions.jsonl";
/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";
/// `steps/`.
pub const STEPS_DIR: &str = "steps";

/// Where one run's logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLayout {
    /// `LOG_DIR/<run id>/<start time>`.
    pub dir: PathBuf,
    /// `<run id>/<start time>`: the same relative path in S3.
    pub relative: String,
}

impl LogLayout {
    /// The layout for a run of `run_id` that started at `started` (no files touched).
    pub fn new(log_dir: &Path, run_id: &str, started: Timestamp) -> Self {
        Self::with_leaf(log_dir, run_id, &start_stamp(started))
    }

    fn with_leaf(log_dir: &Path, run_id: &str, leaf: &str) -> Self {
        LogLayout { dir: log_dir.join(run_id).join(leaf), relative: format!("{run_id}/{leaf}") }
    }

    /// The folder of run `index` of Simulation `simulation` (`LOG_DIR/<simulation>/<index>/`,
    /// key `[prefix/]<simulation>/<index>`), emptied of an earlier attempt's files, with `steps/`.
    pub fn for_simulation(log_dir: &Path, prefix: Option<&str>, simulation: &str, index: u32) -> std::io::Result<Self> {
        let folder = crate::artifacts::layout::simulation_run(log_dir, prefix, simulation, index);
        if folder.dir.exists() {
            std::fs::remove_dir_all(&folder.dir)?;
        }
        let layout = LogLayout { dir: folder.dir, relative: folder.key_prefix };
        std::fs::create_dir_all(layout.steps_dir())?;
        Ok(layout)
    }

    /// Creates the folder (and `steps/`); if a run of the same start second already has it,
    /// uses `<start time>-2`, `-3`, ... instead.
    pub fn create(log_dir: &Path, run_id: &str, started: Timestamp) -> std::io::Result<Self> {
        let stamp = start_stamp(started);
        std::fs::create_dir_all(log_dir.join(run_id))?;
        for n in 1u32.. {
            let leaf = if n == 1 { stamp.clone() } else { format!("{stamp}-{n}") };
            let layout = Self::with_leaf(log_dir, run_id, &leaf);
            // create_dir (not _all) fails if it exists, so two runs cannot pick the same folder.
            match std::fs::create_dir(&layout.dir) {
                Ok(()) => {
                    std::fs::create_dir(layout.steps_dir())?;
                    return Ok(layout);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free log folder name"))
    }

    /// `scenario.yaml`.
    pub fn scenario_file(&self) -> PathBuf {
        self.dir.join(SCENARIO_FILE)
    }

    /// `actions.jsonl`.
    pub fn actions_file(&self) -> PathBuf {
        self.dir.join(ACTIONS_FILE)
    }

    /// `summary.json`.
    pub fn summary_file(&self) -> PathBuf {
        self.dir.join(SUMMARY_FILE)
    }

    /// `steps/`.
    pub fn steps_dir(&self) -> PathBuf {
        self.dir.join(STEPS_DIR)
    }

    /// `steps/<NNN>-<step name>.json` of the `position`-th step played (from 1) of `total`.
    pub fn step_file(&self, position: usize, total: usize, step_name: &str) -> PathBuf {
        self.steps_dir().join(step_file_name(position, total, step_name))
    }
}

/// The start-time folder name: UTC, to the second, e.g. `20261122T004512Z`.
pub fn start_stamp(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// A time as the logs write it: RFC 3339, UTC, milliseconds.
pub fn rfc3339(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// `<NNN>-<step name>.json`: the position zero-padded to the width of `total` (at least 3), the
/// step name kept to letters, digits, '-', '_' and '.' (others become '_'); unnamed steps are
/// `<NNN>.json`.
pub fn step_file_name(position: usize, total: usize, step_name: &str) -> String {
    let width = total.max(1).to_string().len().max(3);
    let name: String = step_name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    // A name of dots alone would look like a relative path.
    if name.is_empty() || name.chars().all(|c| c == '.') {
        format!("{position:0width$}.json")
    } else {
        format!("{position:0width$}-{name}.json")
    }
}

/// The run id as a folder name and label value: letters, digits, '-', '_' and '.' (others
/// become '-'), at most 63 characters, starting and ending with a letter or digit.
pub fn run_id_value(run_id: &str) -> String {
    let cleaned: String = run_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() { "scenario".to_string() } else { trimmed.to_string() }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what it says.
    Ok,
    /// It failed; the message says why.
    Error,
}

/// One line of `actions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// Position of the step in the play, from 1.
    pub step: usize,
    /// Position of the step in the scenario's step list, from 1.
    pub step_index: usize,
    /// The step's name.
    pub step_name: String,
    /// Position of the action in its step, from 1.
    pub action: usize,
    /// The action type as written (K8S_SCALE, SCALE, APPLY, DELETE, WAIT_AVAILABLE).
    #[serde(rename = "type")]
    pub type_: String,
    /// The action's data as in the Scenario.
    pub data: Value,
    /// The action's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When the step was due (RFC 3339).
    pub due: String,
    /// When the action started (RFC 3339).
    pub started: String,
    /// Started minus due, in milliseconds (never negative).
    pub lateness_ms: f64,
    /// How long the action took, in milliseconds.
    pub duration_ms: f64,
    /// ok or error.
    pub result: Outcome,
    /// What happened (the error, or a note such as "already gone").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `actions.jsonl`, written line by line as the play goes (flushed after each line, so a run
/// that dies keeps what it did).
pub struct ActionLog {
    out: BufWriter<File>,
}

impl ActionLog {
    /// Creates the file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(ActionLog { out: BufWriter::new(File::create(path)?) })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &ActionRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Milliseconds of a duration, as the logs write them.
pub fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes a value as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut body = serde_json::to_vec_pretty(value)?;
    body.push(b'\n');
    std::fs::write(path, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn layout_paths() {
        let l = LogLayout::new(Path::new("./scenario-logs"), "k8s_scenario_1", t("2026-11-22T00:45:12.987Z"));
        assert_eq!(l.dir, PathBuf::from("./scenario-logs/k8s_scenario_1/20261122T004512Z"));
        assert_eq!(l.relative, "k8s_scenario_1/20261122T004512Z");
        assert_eq!(l.scenario_file(), l.dir.join("scenario.yaml"));
        assert_eq!(l.actions_file(), l.dir.join("actions.jsonl"));
        assert_eq!(l.summary_file(), l.dir.join("summary.json"));
        assert_eq!(l.step_file(7, 60, "7"), l.dir.join("steps/007-7.json"));
    }

    #[test]
    fn step_file_names() {
        assert_eq!(step_file_name(1, 60, "1"), "001-1.json");
        assert_eq!(step_file_name(12, 5000, "scale up"), "0012-scale_up.json");
        assert_eq!(step_file_name(3, 3, ""), "003.json");
        assert_eq!(step_file_name(3, 3, ".."), "003.json");
        assert_eq!(step_file_name(4, 3, "a/../b"), "004-a_.._b.json");
        assert_eq!(step_file_name(1000, 1000, "x"), "1000-x.json");
    }

    #[test]
    fn run_ids_become_names_and_label_values() {
        assert_eq!(run_id_value("k8s_scenario_1753908801"), "k8s_scenario_1753908801");
        assert_eq!(run_id_value("my run/1"), "my-run-1");
        assert_eq!(run_id_value("_x_"), "x");
        assert_eq!(run_id_value("--"), "scenario");
        assert_eq!(run_id_value(&"a".repeat(100)).len(), 63);
    }

    #[test]
    fn times() {
        assert_eq!(start_stamp(t("2026-01-02T03:04:05.6Z")), "20260102T030405Z");
        assert_eq!(rfc3339(t("2026-01-02T03:04:05.6789Z")), "2026-01-02T03:04:05.678Z");
        assert_eq!(millis(std::time::Duration::from_micros(1500)), 1.5);
    }

    #[test]
    fn runs_in_the_same_second_get_their_own_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let at = t("2026-11-22T00:45:12Z");
        let first = LogLayout::create(tmp.path(), "run", at).unwrap();
        let second = LogLayout::create(tmp.path(), "run", at).unwrap();
        assert_eq!(first.dir, tmp.path().join("run/20261122T004512Z"));
        assert_eq!(second.dir, tmp.path().join("run/20261122T004512Z-2"));
        assert_eq!(second.relative, "run/20261122T004512Z-2");
        assert!(first.steps_dir().is_dir() && second.steps_dir().is_dir());
    }

    #[test]
    fn action_record_line() {
        let record = ActionRecord {
            step: 3,
            step_index: 3,
            step_name: "3".into(),
            action: 1,
            type_: "K8S_SCALE".into(),
            data: json!({"name": "deploy-h0", "replicas": 17}),
            comment: Some("Scales deployment deploy-h0 to 17 replicas".into()),
            due: "2026-11-22T00:45:14.000Z".into(),
            started: "2026-11-22T00:45:14.001Z".into(),
            lateness_ms: 1.25,
            duration_ms: 8.5,
            result: Outcome::Ok,
            message: None,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({
                "step": 3, "step_index": 3, "step_name": "3", "action": 1, "type": "K8S_SCALE",
                "data": {"name": "deploy-h0", "replicas": 17},
                "comment": "Scales deployment deploy-h0 to 17 replicas",
                "due": "2026-11-22T00:45:14.000Z", "started": "2026-11-22T00:45:14.001Z",
                "lateness_ms": 1.25, "duration_ms": 8.5, "result": "ok"
            })
        );
        let failed = ActionRecord {
            result: Outcome::Error,
            message: Some("deployment \"x\" not found".into()),
            comment: None,
            ..record
        };
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(ACTIONS_FILE);
        let mut log = ActionLog::create(&path).unwrap();
        log.write(&failed).unwrap();
        log.write(&failed).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            (line["result"].as_str(), line["message"].as_str()),
            (Some("error"), Some("deployment \"x\" not found"))
        );
        assert!(line.get("comment").is_none());
    }
}
