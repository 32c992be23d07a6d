//! Benchmark results as data: the files `make bench` writes (`bench-results/<part>.json`, by
//! `e2e/bench_results.py` as each bench script computes its figures) and
//! `rehearsal-driver bench compare OLD.json NEW.json`, which puts two of them side by side.
//! A comparison reports; it is not a test, so a worse figure is printed, never an error.
//!
//! # The file (schema [`SCHEMA`])
//!
//! ```json
//! {"schema": "rehearsal.bench/v1", "name": "replay", "commit": "<git sha>[-dirty]",
//!  "started": "2026-12-02T03:47:07Z",
//!  "machine": {"cores": 2, "memory_bytes": 8336166912, "kernel": "6.1.0", "cpu_model": "..."},
//!  "settings": {"concurrency": "128"},
//!  "figures": {"configmaps.speed1.lateness_p99_ms": {"value": 1.2, "unit": "ms",
//!      "better": "lower", "goal": {"op": "<", "value": 10}, "note": "..."}}}
//! ```
//!
//! `better` is `lower`, `higher` or `none` (a figure for context, such as a count); `goal` and
//! `note` are optional; `settings` holds the knobs a part ran with. Figure ids carry the
//! parameters that change their meaning (`speed1`, `rate1000`), so a figure is compared only
//! with the same measurement. A file of another `rehearsal.bench/` version is read with a
//! warning; anything else is refused with the file and what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::trace::kind_of;

/// The schema this reader is written for.
pub const SCHEMA: &str = "rehearsal.bench/v1";

/// What every version of the schema starts with.
const SCHEMA_FAMILY: &str = "rehearsal.bench/";

/// Why a results file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}: not JSON: {source}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where the JSON breaks.
        #[source]
        source: serde_json::Error,
    },
    /// The file is JSON but not a results file, or has a figure that cannot be used.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field (and figure).
        problem: String,
    },
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (latency, memory, CPU).
    Lower,
    /// Larger is better (throughput).
    Higher,
    /// Neither: a figure for context (a count of objects, lines written).
    Neither,
}

/// A goal's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoalOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// What a figure should be, e.g. `< 10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    /// The comparison.
    pub op: GoalOp,
    /// The bound.
    pub value: f64,
}

impl Goal {
    /// Whether `value` meets the goal.
    pub fn met(&self, value: f64) -> bool {
        match self.op {
            GoalOp::Lt => value < self.value,
            GoalOp::Le => value <= self.value,
            GoalOp::Gt => value > self.value,
            GoalOp::Ge => value >= self.value,
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            GoalOp::Lt => "<",
            GoalOp::Le => "<=",
            GoalOp::Gt => ">",
            GoalOp::Ge => ">=",
        };
        write!(f, "{op} {}", number(self.value))
    }
}

/// One figure of a results file.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The measurement.
    pub value: f64,
    /// Its unit: ms, s, MB, MiB, ratio, %, objects/s, ...
    pub unit: String,
    /// Which way it improves.
    pub better: Better,
    /// What it should be, when there is a goal.
    pub goal: Option<Goal>,
    /// How it was measured, when the script said.
    pub note: Option<String>,
}

/// The machine a file was measured on; what the writer could not find is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: Option<u64>,
    /// Total memory.
    pub memory_bytes: Option<u64>,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// CPU model name.
    pub cpu_model: Option<String>,
}

/// One results file.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// `rehearsal.bench/v1`, or another version of it.
    pub schema: String,
    /// The part: webhook, replay, scale, scenario, operator.
    pub name: String,
    /// The git commit measured, `-dirty` when the tree had changes.
    pub commit: String,
    /// When the part started (RFC 3339).
    pub started: String,
    /// Where it ran.
    pub machine: Machine,
    /// The knobs the part ran with.
    pub settings: BTreeMap<String, String>,
    /// The figures by id.
    pub figures: BTreeMap<String, Figure>,
}

/// Reads a results file.
pub fn load(path: &Path) -> Result<Results, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read { path: path.into(), source })?;
    parse(&text, path)
}

/// Parses a results file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Results, BenchError> {
    let doc: Value = serde_json::from_str(text).map_err(|source| BenchError::NotJson { path: path.into(), source })?;
    from_value(&doc).map_err(|problem| BenchError::Invalid { path: path.into(), problem })
}

fn from_value(doc: &Value) -> Result<Results, String> {
    let Some(top) = doc.as_object() else {
        return Err(format!("not a benchmark results file: expected a JSON object, found {}", kind_of(doc)));
    };
    let schema = match top.get("schema") {
        None => return Err(format!("no \"schema\": not a benchmark results file (expected \"{SCHEMA}\")")),
        Some(Value::String(s)) if s.starts_with(SCHEMA_FAMILY) => s.clone(),
        Some(other) => {
            return Err(format!("\"schema\" is {other}, not a benchmark results schema (expected \"{SCHEMA}\")"));
        }
    };
    let figures = match top.get("figures") {
        Some(Value::Object(figures)) => figures,
        Some(other) => return Err(format!("\"figures\" is {}, not an object", kind_of(other))),
        None => return Err("no \"figures\"".into()),
    };
    let machine = match top.get("machine") {
        None | Some(Value::Null) => Machine::default(),
        Some(Value::Object(m)) => Machine {
            cores: optional_u64(m, "machine.cores")?,
            memory_bytes: optional_u64(m, "machine.memory_bytes")?,
            kernel: optional_string(m, "machine.kernel")?,
            cpu_model: optional_string(m, "machine.cpu_model")?,
        },
        Some(other) => return Err(format!("\"machine\" is {}, not an object", kind_of(other))),
    };
    let settings = match top.get("settings") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(s)) => {
            s.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
        }
        Some(other) => return Err(format!("\"settings\" is {}, not an object", kind_of(other))),
    };
    Ok(Results {
        schema,
        name: optional_string(top, "name")?.unwrap_or_default(),
        commit: optional_string(top, "commit")?.unwrap_or_default(),
        started: optional_string(top, "started")?.unwrap_or_default(),
        machine,
        settings,
        figures: figures.iter().map(|(id, f)| Ok((id.clone(), figure(id, f)?))).collect::<Result<_, String>>()?,
    })
}

fn figure(id: &str, v: &Value) -> Result<Figure, String> {
    let Some(f) = v.as_object() else {
        return Err(format!("figure {id:?} is {}, not an object", kind_of(v)));
    };
    let value = match f.get("value") {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("figure {id:?}: \"value\" {n} is out of range"))?,
        Some(other) => return Err(format!("figure {id:?}: \"value\" is {other}, not a number")),
        None => return Err(format!("figure {id:?} has no \"value\"")),
    };
    let unit = match f.get("unit") {
        Some(Value::String(u)) => u.clone(),
        Some(other) => return Err(format!("figure {id:?}: \"unit\" is {other}, not a string")),
        None => return Err(format!("figure {id:?} has no \"unit\"")),
    };
    let better = match f.get("better").and_then(Value::as_str) {
        Some("lower") => Better::Lower,
        Some("higher") => Better::Higher,
        Some("none") => Better::Neither,
        _ => {
            let found = f.get("better").map_or_else(|| "missing".to_string(), Value::to_string);
            return Err(format!("figure {id:?}: \"better\" is {found}, expected \"lower\", \"higher\" or \"none\""));
        }
    };
    let goal = match f.get("goal") {
        None | Some(Value::Null) => None,
        Some(g) => Some(goal(id, g)?),
    };
    let note = match f.get("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(other) => return Err(format!("figure {id:?}: \"note\" is {}, not a string", kind_of(other))),
    };
    Ok(Figure { value, unit, better, goal, note })
}

fn goal(id: &str, g: &Value) -> Result<Goal, String> {
    let op = match g.get("op").and_then(Value::as_str) {
        Some("<") => GoalOp::Lt,
        Some("<=") => GoalOp::Le,
        Some(">") => GoalOp::Gt,
        Some(">=") => GoalOp::Ge,
        _ => return Err(format!("figure {id:?}: goal {g} needs \"op\" <, <=, > or >=")),
    };
    let value = g
        .get("value")
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("figure {id:?}: goal {g} needs a numeric \"value\""))?;
    Ok(Goal { op, value })
}

fn optional_string(m: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    let key = field.rsplit('.').next().unwrap_or(field);
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("\"{field}\" is {}, not a string", kind_of(other))),
    }
}

fn optional_u64(m: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    let key = field.rsplit('.').next().unwrap_or(field);
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("\"{field}\" is {v}, not a whole number")),
    }
}

/// NEW / OLD, when it means something: 1 when both are 0; none when OLD is 0 and NEW is not,
/// or when the two have opposite signs (a drift that changed direction).
pub fn ratio(old: f64, new: f64) -> Option<f64> {
    if old == 0.0 {
        return (new == 0.0).then_some(1.0);
    }
    let r = new / old;
    (r >= 0.0).then_some(r)
}

/// How NEW stands against OLD for one figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Moved the way the figure improves.
    Better,
    /// Moved the other way.
    Worse,
    /// Did not move.
    Same,
    /// Moved, for a figure with no better direction.
    Differs,
    /// The unit changed: the values are not compared.
    UnitChanged {
        /// OLD's unit.
        old: String,
        /// NEW's unit.
        new: String,
    },
    /// Only OLD has the figure.
    OnlyOld,
    /// Only NEW has the figure.
    OnlyNew,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Better => f.write_str("better"),
            Verdict::Worse => f.write_str("worse"),
            Verdict::Same => f.write_str("same"),
            Verdict::Differs => f.write_str("differs"),
            Verdict::UnitChanged { old, new } => write!(f, "unit {old} -> {new}"),
            Verdict::OnlyOld => f.write_str("only in OLD"),
            Verdict::OnlyNew => f.write_str("only in NEW"),
        }
    }
}

/// One figure, side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The figure id.
    pub id: String,
    /// Its unit (NEW's when both have it).
    pub unit: String,
    /// OLD's value.
    pub old: Option<f64>,
    /// NEW's value.
    pub new: Option<f64>,
    /// NEW / OLD (see [`ratio`]).
    pub ratio: Option<f64>,
    /// Better, worse, ...
    pub verdict: Verdict,
    /// NEW's goal and whether NEW meets it.
    pub goal: Option<(Goal, bool)>,
}

/// Two results files side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What makes the figures less comparable: other machines, schemas, parts or settings.
    pub warnings: Vec<String>,
    /// Every figure present in either file, by id.
    pub rows: Vec<Row>,
}

/// Compares NEW with OLD figure by figure.
pub fn compare(old: &Results, new: &Results) -> Comparison {
    let mut warnings = Vec::new();
    if old.schema != new.schema {
        warnings.push(format!(
            "the schemas differ: OLD is {}, NEW is {}; figures may not mean the same",
            old.schema, new.schema
        ));
    }
    for (which, r) in [("OLD", old), ("NEW", new)] {
        if r.schema != SCHEMA {
            warnings.push(format!("{which} is {}, this rehearsal-driver reads {SCHEMA}", r.schema));
        }
    }
    if old.name != new.name {
        warnings.push(format!("the parts differ: OLD is {:?}, NEW is {:?}", old.name, new.name));
    }
    let machine = machine_differences(&old.machine, &new.machine);
    if !machine.is_empty() {
        warnings.push(format!(
            "the machines differ ({}): the ratios mix the code's change with the machine's",
            machine.join("; ")
        ));
    }
    let settings = differences(&old.settings, &new.settings);
    if !settings.is_empty() {
        warnings.push(format!("the settings differ: {}", settings.join("; ")));
    }

    let ids: BTreeSet<&String> = old.figures.keys().chain(new.figures.keys()).collect();
    let rows = ids
        .into_iter()
        .map(|id| {
            let (o, n) = (old.figures.get(id), new.figures.get(id));
            let goal = n.and_then(|n| n.goal.map(|g| (g, g.met(n.value))));
            let (verdict, ratio) = match (o, n) {
                (Some(o), Some(n)) if o.unit != n.unit => {
                    (Verdict::UnitChanged { old: o.unit.clone(), new: n.unit.clone() }, None)
                }
                (Some(o), Some(n)) => (verdict(o.value, n.value, n.better), ratio(o.value, n.value)),
                (Some(_), None) => (Verdict::OnlyOld, None),
                (None, _) => (Verdict::OnlyNew, None),
            };
            Row {
                id: id.clone(),
                unit: n.or(o).map(|f| f.unit.clone()).unwrap_or_default(),
                old: o.map(|f| f.value),
                new: n.map(|f| f.value),
                ratio,
                verdict,
                goal,
            }
        })
        .collect();
    Comparison { warnings, rows }
}

fn verdict(old: f64, new: f64, better: Better) -> Verdict {
    // Equal to the last bits a JSON round trip keeps: the same figure, not an improvement.
    if (new - old).abs() <= 1e-12 * old.abs().max(new.abs()) {
        return Verdict::Same;
    }
    match better {
        Better::Lower if new < old => Verdict::Better,
        Better::Higher if new > old => Verdict::Better,
        Better::Lower | Better::Higher => Verdict::Worse,
        Better::Neither => Verdict::Differs,
    }
}

fn machine_differences(old: &Machine, new: &Machine) -> Vec<String> {
    let show = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let mut out = Vec::new();
    let mut field = |name: &str, o: Option<String>, n: Option<String>| {
        if o != n {
            out.push(format!("{name} {} -> {}", show(o), show(n)));
        }
    };
    field("cores", old.cores.map(|c| c.to_string()), new.cores.map(|c| c.to_string()));
    field("memory", old.memory_bytes.map(gib), new.memory_bytes.map(gib));
    field("kernel", old.kernel.clone(), new.kernel.clone());
    field("CPU", old.cpu_model.clone(), new.cpu_model.clone());
    out
}

fn differences(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.map_or_else(|| "unset".to_string(), |v| format!("{v:?}"));
            format!("{k} {} -> {}", show(old.get(k)), show(new.get(k)))
        })
        .collect()
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// A figure for reading: four significant digits or so, no exponent, no trailing zeros.
fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The comparison as text: where each file comes from, the warnings, one line per figure, and
/// the tally. `old_label` and `new_label` name the files.
pub fn render(old: &Results, old_label: &str, new: &Results, new_label: &str, cmp: &Comparison) -> String {
    let mut out = String::new();
    for (which, label, r) in [("OLD", old_label, old), ("NEW", new_label, new)] {
        out.push_str(&format!("{which} {label}: {}\n", describe(r)));
    }
    for w in &cmp.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push('\n');
    let dash = || "-".to_string();
    let cells: Vec<[String; 7]> = cmp
        .rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.unit.clone(),
                r.old.map_or_else(dash, number),
                r.new.map_or_else(dash, number),
                r.ratio.map_or_else(dash, |x| format!("{x:.2}x")),
                r.verdict.to_string(),
                r.goal.map(|(g, met)| format!("{g}: {}", if met { "met" } else { "NOT met" })).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["figure", "unit", "OLD", "NEW", "NEW/OLD", "verdict", "goal (NEW)"].map(str::to_string);
    let mut widths = [0usize; 7];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        // Names left, numbers right; the last column unpadded so lines end without blanks.
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:<w5$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&tally(cmp));
    out.push('\n');
    out
}

fn describe(r: &Results) -> String {
    let m = &r.machine;
    let mut machine = Vec::new();
    if let Some(c) = m.cores {
        machine.push(format!("{c} cores"));
    }
    if let Some(b) = m.memory_bytes {
        machine.push(gib(b));
    }
    if let Some(k) = &m.kernel {
        machine.push(format!("kernel {k}"));
    }
    if let Some(c) = &m.cpu_model {
        machine.push(c.clone());
    }
    let or_unknown = |s: &str| if s.is_empty() { "unknown".to_string() } else { s.to_string() };
    format!(
        "part {}, commit {}, started {}, {} figures; {}",
        or_unknown(&r.name),
        or_unknown(&r.commit),
        or_unknown(&r.started),
        r.figures.len(),
        if machine.is_empty() { "machine unknown".into() } else { machine.join(", ") }
    )
}

fn tally(cmp: &Comparison) -> String {
    let count = |f: &dyn Fn(&Verdict) -> bool| cmp.rows.iter().filter(|r| f(&r.verdict)).count();
    let mut parts = vec![
        format!("{} better", count(&|v| *v == Verdict::Better)),
        format!("{} worse", count(&|v| *v == Verdict::Worse)),
        format!("{} same", count(&|v| *v == Verdict::Same)),
    ];
    for (n, what) in [
        (count(&|v| *v == Verdict::Differs), "differ (no better direction)"),
        (count(&|v| matches!(v, Verdict::UnitChanged { .. })), "with another unit"),
        (count(&|v| *v == Verdict::OnlyOld), "only in OLD"),
        (count(&|v| *v == Verdict::OnlyNew), "only in NEW"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut line = format!("{} figures: {}", cmp.rows.len(), parts.join(", "));
    let goals: Vec<bool> = cmp.rows.iter().filter_map(|r| r.goal.map(|(_, met)| met)).collect();
    if !goals.is_empty() {
        let met = goals.iter().filter(|m| **m).count();
        line.push_str(&format!("; goals of NEW: {met} met, {} not met", goals.len() - met));
    }
    line
}

/// Loads both files and renders their comparison (what `bench compare OLD NEW` prints).
pub fn compare_files(old: &Path, new: &Path) -> Result<String, BenchError> {
    let (o, n) = (load(old)?, load(new)?);
    let cmp = compare(&o, &n);
    Ok(render(&o, &old.display().to_string(), &n, &new.display().to_string(), &cmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results file as e2e/bench_results.py writes it; `figures` is the figures' JSON.
    fn file(name: &str, cores: u64, figures: &str) -> String {
        format!(
            r#"{{"schema": "rehearsal.bench/v1", "name": "{name}", "commit": "abc123", "started": "2026-12-02T03:47:07Z",
               "machine": {{"cores": {cores}, "memory_bytes": 8589934592, "kernel": "6.1.0", "cpu_model": "Xeon"}},
               "settings": {{"concurrency": "128"}}, "figures": {{{figures}}}}}"#
        )
    }

    fn parsed(text: &str) -> Results {
        parse(text, Path::new("r.json")).expect("a valid file")
    }

    fn error(text: &str) -> String {
        parse(text, Path::new("bench-results/replay.json")).expect_err("refused").to_string()
    }

    #[test]
    fn parses_every_field() {
        let r = parsed(&file(
            "replay",
            2,
            r#""a.p99_ms": {"value": 1.5, "unit": "ms", "better": "lower", "goal": {"op": "<", "value": 10}, "note": "n"},
               "a.count": {"value": 3, "unit": "objects", "better": "none"}"#,
        ));
        assert_eq!((r.schema.as_str(), r.name.as_str(), r.commit.as_str()), (SCHEMA, "replay", "abc123"));
        assert_eq!(r.started, "2026-12-02T03:47:07Z");
        assert_eq!(
            r.machine,
            Machine {
                cores: Some(2),
                memory_bytes: Some(8 << 30),
                kernel: Some("6.1.0".into()),
                cpu_model: Some("Xeon".into())
            }
        );
        assert_eq!(r.settings.get("concurrency").map(String::as_str), Some("128"));
        let f = &r.figures["a.p99_ms"];
        assert_eq!((f.value, f.unit.as_str(), f.better, f.note.as_deref()), (1.5, "ms", Better::Lower, Some("n")));
        assert_eq!(f.goal, Some(Goal { op: GoalOp::Lt, value: 10.0 }));
        assert_eq!(r.figures["a.count"].better, Better::Neither);
        assert_eq!(r.figures["a.count"].goal, None);
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let fig = |f: &str| file("replay", 2, &format!(r#""a.b": {f}"#));
        for (text, needle) in [
            ("{not json".to_string(), "bench-results/replay.json: not JSON: key must be a string at line 1 column 2"),
            (
                "[1]".into(),
                "bench-results/replay.json: not a benchmark results file: expected a JSON object, found an array",
            ),
            (r#"{"figures": {}}"#.into(), "no \"schema\": not a benchmark results file"),
            (
                r#"{"schema": "kube-burner/v1", "figures": {}}"#.into(),
                "\"schema\" is \"kube-burner/v1\", not a benchmark results schema",
            ),
            (r#"{"schema": 1, "figures": {}}"#.into(), "\"schema\" is 1, not"),
            (r#"{"schema": "rehearsal.bench/v1"}"#.into(), "no \"figures\""),
            (r#"{"schema": "rehearsal.bench/v1", "figures": []}"#.into(), "\"figures\" is an array, not an object"),
            (fig(r#"{"unit": "ms", "better": "lower"}"#), "figure \"a.b\" has no \"value\""),
            (
                fig(r#"{"value": "1.5", "unit": "ms", "better": "lower"}"#),
                "figure \"a.b\": \"value\" is \"1.5\", not a number",
            ),
            (fig(r#"{"value": null, "unit": "ms", "better": "lower"}"#), "\"value\" is null, not a number"),
            (fig(r#"{"value": 1, "better": "lower"}"#), "figure \"a.b\" has no \"unit\""),
            (fig(r#"{"value": 1, "unit": "ms", "better": "up"}"#), "\"better\" is \"up\", expected"),
            (fig(r#"{"value": 1, "unit": "ms"}"#), "\"better\" is missing"),
            (fig(r#"{"value": 1, "unit": "ms", "better": "lower", "goal": {"op": "~", "value": 1}}"#), "needs \"op\""),
            (fig(r#"{"value": 1, "unit": "ms", "better": "lower", "goal": {"op": "<"}}"#), "needs a numeric \"value\""),
            (fig("3"), "figure \"a.b\" is a number, not an object"),
            (
                r#"{"schema": "rehearsal.bench/v1", "machine": {"cores": "two"}, "figures": {}}"#.into(),
                "\"machine.cores\" is \"two\", not a whole number",
            ),
            (
                r#"{"schema": "rehearsal.bench/v1", "name": 3, "figures": {}}"#.into(),
                "\"name\" is a number, not a string",
            ),
        ] {
            let err = error(&text);
            assert!(err.contains(needle), "{needle}\n  got: {err}");
            assert!(err.starts_with("bench-results/replay.json: "), "{err}");
        }
        let missing = load(Path::new("/nonexistent/old.json")).expect_err("no file").to_string();
        assert!(missing.starts_with("/nonexistent/old.json: cannot read: "), "{missing}");
    }

    #[test]
    fn ratios_with_zero_and_sign_changes() {
        assert_eq!(ratio(2.0, 3.0), Some(1.5));
        assert_eq!(ratio(2.0, 0.0), Some(0.0));
        assert_eq!(ratio(0.0, 0.0), Some(1.0));
        assert_eq!(ratio(0.0, 5.0), None);
        assert_eq!(ratio(-2.0, -4.0), Some(2.0));
        assert_eq!(ratio(-2.0, 1.0), None);
    }

    #[test]
    fn verdicts_follow_the_better_direction() {
        assert_eq!(verdict(10.0, 8.0, Better::Lower), Verdict::Better);
        assert_eq!(verdict(10.0, 12.0, Better::Lower), Verdict::Worse);
        assert_eq!(verdict(10.0, 12.0, Better::Higher), Verdict::Better);
        assert_eq!(verdict(10.0, 8.0, Better::Higher), Verdict::Worse);
        assert_eq!(verdict(10.0, 10.0, Better::Higher), Verdict::Same);
        assert_eq!(verdict(0.0, 0.0, Better::Lower), Verdict::Same);
        assert_eq!(verdict(0.1 + 0.2, 0.3, Better::Lower), Verdict::Same);
        // From zero: no ratio, but still a direction.
        assert_eq!(verdict(0.0, 5.0, Better::Lower), Verdict::Worse);
        assert_eq!(verdict(3.0, 4.0, Better::Neither), Verdict::Differs);
    }

    #[test]
    fn comparison_rows_and_warnings() {
        let old = parsed(&file(
            "replay",
            2,
            r#""lat": {"value": 10, "unit": "ms", "better": "lower"},
               "gone": {"value": 1, "unit": "s", "better": "lower"},
               "zero": {"value": 0, "unit": "objects", "better": "lower"},
               "mem": {"value": 100, "unit": "MB", "better": "lower"}"#,
        ));
        let mut new = parsed(&file(
            "replay",
            4,
            r#""lat": {"value": 5, "unit": "ms", "better": "lower", "goal": {"op": "<", "value": 4}},
               "added": {"value": 2, "unit": "s", "better": "higher", "goal": {"op": ">=", "value": 2}},
               "zero": {"value": 3, "unit": "objects", "better": "lower"},
               "mem": {"value": 100, "unit": "MiB", "better": "lower"}"#,
        ));
        new.settings.insert("concurrency".into(), "64".into());
        let cmp = compare(&old, &new);
        let row = |id: &str| cmp.rows.iter().find(|r| r.id == id).expect("a row").clone();
        assert_eq!(cmp.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["added", "gone", "lat", "mem", "zero"]);
        let lat = row("lat");
        assert_eq!((lat.old, lat.new, lat.ratio, lat.verdict), (Some(10.0), Some(5.0), Some(0.5), Verdict::Better));
        assert_eq!(lat.goal, Some((Goal { op: GoalOp::Lt, value: 4.0 }, false)));
        let added = row("added");
        assert_eq!((added.old, added.new, added.ratio, added.verdict), (None, Some(2.0), None, Verdict::OnlyNew));
        assert_eq!(added.goal.map(|(_, met)| met), Some(true));
        let gone = row("gone");
        assert_eq!((gone.old, gone.new, gone.verdict, gone.goal), (Some(1.0), None, Verdict::OnlyOld, None));
        assert_eq!((row("zero").ratio, row("zero").verdict), (None, Verdict::Worse));
        assert_eq!(row("mem").verdict, Verdict::UnitChanged { old: "MB".into(), new: "MiB".into() });
        assert_eq!(row("mem").ratio, None);
        assert_eq!(
            cmp.warnings,
            [
                "the machines differ (cores 2 -> 4): the ratios mix the code's change with the machine's",
                "the settings differ: concurrency \"128\" -> \"64\"",
            ]
        );

        let mut other = new.clone();
        other.schema = "rehearsal.bench/v2".into();
        other.name = "scenario".into();
        let warnings = compare(&new, &other).warnings;
        assert_eq!(
            warnings,
            [
                "the schemas differ: OLD is rehearsal.bench/v1, NEW is rehearsal.bench/v2; figures may not mean the same",
                "NEW is rehearsal.bench/v2, this rehearsal-driver reads rehearsal.bench/v1",
                "the parts differ: OLD is \"replay\", NEW is \"scenario\"",
            ]
        );
        assert!(compare(&new, &new).warnings.is_empty());
    }

    #[test]
    fn the_printed_table() {
        let old = parsed(&file(
            "replay",
            2,
            r#""configmaps.speed1.lateness_p99_ms": {"value": 1.234, "unit": "ms", "better": "lower"},
               "configmaps.speed1.objects_per_second": {"value": 100, "unit": "objects/s", "better": "higher"},
               "rss.rss_to_file_ratio": {"value": 2.1, "unit": "ratio", "better": "lower", "goal": {"op": "<", "value": 3}},
               "rss.objects": {"value": 200000, "unit": "objects", "better": "none"},
               "memory.read_seconds": {"value": 3.5, "unit": "s", "better": "lower"}"#,
        ));
        let new = parsed(&file(
            "replay",
            4,
            r#""configmaps.speed1.lateness_p99_ms": {"value": 0.617, "unit": "ms", "better": "lower"},
               "configmaps.speed1.objects_per_second": {"value": 100, "unit": "objects/s", "better": "higher"},
               "rss.rss_to_file_ratio": {"value": 3.15, "unit": "ratio", "better": "lower", "goal": {"op": "<", "value": 3}},
               "rss.objects": {"value": 200000, "unit": "objects", "better": "none"},
               "collectors.cpu_added_pct": {"value": 0, "unit": "%", "better": "lower", "goal": {"op": "<", "value": 10}}"#,
        ));
        let text = render(&old, "old/replay.json", &new, "new/replay.json", &compare(&old, &new));
        let expected = "\
OLD old/replay.json: part replay, commit abc123, started 2026-12-02T03:47:07Z, 5 figures; 2 cores, 8.0 GiB, kernel 6.1.0, Xeon
NEW new/replay.json: part replay, commit abc123, started 2026-12-02T03:47:07Z, 5 figures; 4 cores, 8.0 GiB, kernel 6.1.0, Xeon
warning: the machines differ (cores 2 -> 4): the ratios mix the code's change with the machine's

figure                                unit          OLD     NEW  NEW/OLD  verdict      goal (NEW)
collectors.cpu_added_pct              %               -       0        -  only in NEW  < 10: met
configmaps.speed1.lateness_p99_ms     ms          1.234   0.617    0.50x  better
configmaps.speed1.objects_per_second  objects/s     100     100    1.00x  same
memory.read_seconds                   s             3.5       -        -  only in OLD
rss.objects                           objects    200000  200000    1.00x  same
rss.rss_to_file_ratio                 ratio         2.1    3.15    1.50x  worse        < 3: NOT met

6 figures: 1 better, 1 worse, 2 same, 1 only in OLD, 1 only in NEW; goals of NEW: 1 met, 1 not met
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn numbers_read_well() {
        for (v, s) in [
            (0.0, "0"),
            (1.0, "1"),
            (1.2344, "1.234"),
            (12.346, "12.35"),
            (123.456, "123.5"),
            (123456.7, "123457"),
            (0.012346, "0.01235"),
            (0.0000001, "0"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(number(v), s, "{v}");
        }
    }

    /// A file written by the helper the bench scripts use is read here: the fixture (checked in,
    /// made by `python3 e2e/bench_results.py begin replay ...` and `record replay ...` with
    /// REHEARSAL_BENCH_RESULTS=driver/testdata/bench; its figures are made up) and one written now.
    #[test]
    fn reads_what_the_python_helper_writes() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bench/replay.json");
        let r = load(&fixture).expect("the fixture reads");
        assert_eq!((r.schema.as_str(), r.name.as_str()), (SCHEMA, "replay"));
        assert!(r.machine.cores.is_some() && r.machine.kernel.is_some(), "{:?}", r.machine);
        let f = &r.figures["rss.rss_to_file_ratio"];
        assert_eq!((f.value, f.better, f.goal), (2.41, Better::Lower, Some(Goal { op: GoalOp::Lt, value: 3.0 })));

        let dir = tempfile::tempdir().expect("tempdir");
        let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/bench_results.py");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("python3")
                .arg(&helper)
                .args(args)
                .env("REHEARSAL_BENCH_RESULTS", dir.path())
                .output()
                .expect("python3 runs (make bench needs it too)");
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["begin", "replay", "concurrency=128"]);
        run(&["record", "replay", "configmaps.speed1.lateness_p99_ms", "1.25", "ms", "lower", "--goal", "<10"]);
        run(&["record", "replay", "rss.objects", "200000", "objects", "none", "--note", "a count"]);
        let r = load(&dir.path().join("replay.json")).expect("the helper's file reads");
        assert_eq!(r.settings.get("concurrency").map(String::as_str), Some("128"));
        let f = &r.figures["configmaps.speed1.lateness_p99_ms"];
        assert_eq!((f.value, f.unit.as_str(), f.goal), (1.25, "ms", Some(Goal { op: GoalOp::Lt, value: 10.0 })));
        assert_eq!(r.figures["rss.objects"].note.as_deref(), Some("a count"));
        assert!(!r.commit.is_empty() && !r.started.is_empty());
        let text = compare_files(&fixture, &dir.path().join("replay.json")).expect("compares");
        assert!(text.contains("configmaps.speed1.lateness_p99_ms"), "{text}");
    }
}
