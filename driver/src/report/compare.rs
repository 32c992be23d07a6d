//! Two runs side by side (e.g. two autoscaler configurations on the same scenario): the same
//! plots with both runs overlaid (A solid, B dashed) and a table of every figure of
//! `summary.json` with its difference. Runs of different kinds, or summarised with different
//! major schema versions, do not compare: the refusal says which.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::html::{STYLE, esc, figure};
use super::plots::{self, Run};
use super::summary::Summary;
use super::thresholds::ms;
use super::{Analysis, ReportError, RunFacts, analyse, facts_of, major, schema_of, write_file};

/// Rows of the figure table, at most.
const MAX_ROWS: usize = 3000;

/// What [`compare`] wrote.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The page.
    pub out: PathBuf,
    /// Figures compared (rows of the table).
    pub figures: usize,
    /// Summary of A.
    pub a: Summary,
    /// Summary of B.
    pub b: Summary,
}

/// Compares run folders `a` and `b` into the page `out`; `names` are how the page calls
/// them (default: the paths).
pub fn compare(a: &Path, b: &Path, out: &Path, names: Option<(&str, &str)>) -> Result<Comparison, ReportError> {
    let (name_a, name_b) = match names {
        Some((x, y)) => (x.to_string(), y.to_string()),
        None => (a.display().to_string(), b.display().to_string()),
    };
    let fa = facts_of(a)?;
    let fb = facts_of(b)?;
    compatible((&name_a, &fa, schema_of(a).as_deref()), (&name_b, &fb, schema_of(b).as_deref()))?;
    let xa = analyse(a, &fa)?;
    let xb = analyse(b, &fb)?;
    let (page, figures) = page(&xa, &xb, &name_a, &name_b);
    write_file(out, page.as_bytes())?;
    Ok(Comparison { out: out.to_path_buf(), figures, a: xa.summary, b: xb.summary })
}

/// Whether two runs compare: same kind, same major schema version (a folder without a
/// summary.json counts as this version).
pub fn compatible(a: (&str, &RunFacts, Option<&str>), b: (&str, &RunFacts, Option<&str>)) -> Result<(), ReportError> {
    let refuse = |reason: String| ReportError::Incompatible { a: a.0.to_string(), b: b.0.to_string(), reason };
    if a.1.kind != b.1.kind {
        return Err(refuse(format!(
            "A is a {} run and B a {} run; only runs of the same kind compare",
            a.1.kind.as_str(),
            b.1.kind.as_str()
        )));
    }
    let ours = super::SCHEMA_VERSION;
    let (va, vb) = (a.2.unwrap_or(ours), b.2.unwrap_or(ours));
    if major(va) != major(vb) {
        return Err(refuse(format!(
            "A's summary.json has schema version {va} and B's {vb}; different major versions do not compare (rebuild the older one with `rehearsal-driver report`)"
        )));
    }
    Ok(())
}

/// Every number of a summary, by path (e.g. `pods.latency_ms[Ready].quantiles.p99`), in order.
pub fn figures(summary: &Summary) -> Vec<(String, f64)> {
    let mut out = vec![];
    if let Ok(v) = serde_json::to_value(summary) {
        walk("", &v, &mut out);
    }
    out
}

/// Keys that are not figures of the run (facts, text, times).
const SKIPPED: [&str; 10] = [
    "schema_version",
    "generated_at",
    "run",
    "verdict",
    "bad_lines",
    "notes",
    "breaches",
    "started",
    "peak_at",
    "files",
];

fn walk(path: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((path.to_string(), f));
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                if SKIPPED.contains(&k.as_str()) {
                    continue;
                }
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(&p, child, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let id = ["condition", "reason", "step", "file"].iter().find_map(|k| match item.get(*k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                });
                let p = format!("{path}[{}]", id.unwrap_or_else(|| i.to_string()));
                if item.is_object() {
                    walk(&p, item, out);
                }
            }
        }
        _ => {}
    }
}

/// The rows of the figure table: (figure, A, B), A's order first.
pub fn rows(a: &Summary, b: &Summary) -> Vec<(String, Option<f64>, Option<f64>)> {
    let fa = figures(a);
    let fb = figures(b);
    let index: HashMap<&str, f64> = fb.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let in_a: std::collections::HashSet<&str> = fa.iter().map(|(k, _)| k.as_str()).collect();
    let mut out: Vec<(String, Option<f64>, Option<f64>)> =
        fa.iter().map(|(k, v)| (k.clone(), Some(*v), index.get(k.as_str()).copied())).collect();
    out.extend(fb.iter().filter(|(k, _)| !in_a.contains(k.as_str())).map(|(k, v)| (k.clone(), None, Some(*v))));
    out
}

fn page(a: &Analysis, b: &Analysis, name_a: &str, name_b: &str) -> (String, usize) {
    let runs = [Run { label: "A", data: &a.plots }, Run { label: "B", data: &b.plots }];
    let (sa, sb) = (&a.summary, &b.summary);
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&format!("compare {} runs: {} and {}", sa.run.kind.as_str(), sa.run.name, sb.run.name))
    );
    let _ = write!(
        h,
        "<header class=\"unknown\"><h1>Two {} runs side by side</h1><p>A (solid): {} · B (dashed): {}</p></header>\n<main>\n",
        esc(sa.run.kind.as_str()),
        esc(name_a),
        esc(name_b)
    );
    h.push_str("<table><tr><th></th><th>A</th><th>B</th></tr>");
    let facts = |s: &Summary| -> Vec<String> {
        vec![
            s.run.name.clone(),
            s.run.run.clone(),
            s.run.start.clone().or_else(|| s.window.start.clone()).unwrap_or_default(),
            format!("{} s", ms(s.window.seconds)),
            s.run.result.as_str().to_string(),
            format!("{:?}", s.verdict.status).to_lowercase(),
            s.breaches.join("; "),
            s.run.artifact_uri.clone().unwrap_or_default(),
        ]
    };
    let labels = ["Name", "Run", "Start", "Evidence spans", "Result", "Verdict", "Breaches", "Artifacts"];
    for ((label, x), y) in labels.iter().zip(facts(sa)).zip(facts(sb)) {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", esc(label), esc(&x), esc(&y));
    }
    h.push_str("</table>\n");
    if sa.inputs.bad_lines_total > 0 || sb.inputs.bad_lines_total > 0 {
        let _ = write!(
            h,
            "<p class=\"bad\">Bad lines: {} in A, {} in B (each run's report.html lists them).</p>",
            sa.inputs.bad_lines_total, sb.inputs.bad_lines_total
        );
    }

    h.push_str("<h2>Pods</h2>\n");
    figure(&mut h, plots::pods_by_phase(&runs));
    figure(&mut h, plots::latency_cdf(&runs));
    figure(&mut h, plots::throughput(&runs));
    h.push_str("<h2>Nodes</h2>\n");
    figure(&mut h, plots::nodes(&runs));
    if !a.plots.node_readiness.is_empty() || !b.plots.node_readiness.is_empty() {
        figure(&mut h, plots::node_readiness(&runs));
    }
    h.push_str("<h2>Workloads</h2>\n");
    figure(&mut h, plots::workloads(&runs));
    if sa.scenario.is_some() || sb.scenario.is_some() {
        h.push_str("<h2>Steps</h2>\n");
        figure(&mut h, plots::timeline(&runs));
    }

    let rows = rows(sa, sb);
    h.push_str("<h2>Every figure</h2><table><tr><th>Figure</th><th>A</th><th>B</th><th>B − A</th><th>Change</th></tr>");
    for (path, x, y) in rows.iter().take(MAX_ROWS) {
        let cell = |v: &Option<f64>| v.map(ms).unwrap_or_else(|| "—".to_string());
        let (diff, change) = match (x, y) {
            (Some(x), Some(y)) => {
                let d = y - x;
                let pct = if *x != 0.0 { format!("{:+.1} %", d / x.abs() * 100.0) } else { String::new() };
                (format!("{}{}", if d > 0.0 { "+" } else { "" }, ms(d)), pct)
            }
            _ => (String::new(), String::new()),
        };
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(path),
            cell(x),
            cell(y),
            esc(&diff),
            esc(&change)
        );
    }
    h.push_str("</table>\n");
    if rows.len() > MAX_ROWS {
        let _ = write!(
            h,
            "<p class=\"more\">{} more figures in the two summary.json files.</p>",
            rows.len().saturating_sub(MAX_ROWS)
        );
    }
    h.push_str("</main></body></html>\n");
    (h, rows.len())
}
