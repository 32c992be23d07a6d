//! `report.html`: one self-contained page (inline CSS and SVG, no script, nothing loaded from
//! anywhere) that opens the same from S3 or a disk. Every string that comes from the run
//! (names, messages, reasons) goes through [`esc`].

use std::fmt::Write as _;

use super::PlotData;
use super::plots::{self, Plot, Run};
use super::summary::{ConditionLatency, Quantiles, Summary, VerdictStatus};
use super::thresholds::ms;

/// Rows of the step table, at most (summary.json has them all).
const MAX_STEP_ROWS: usize = 500;

/// `s` with the characters HTML gives a meaning to replaced by entities.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style.
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#222;background:#fafafa}\
main{max-width:1000px;margin:0 auto;padding:16px 20px 40px}\
header{padding:18px 20px;color:#fff}\
header h1{margin:0 0 6px;font-size:22px}header p{margin:0}\
.passed{background:#2e7d32}.failed{background:#c62828}.unknown{background:#546e7a}\
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}\
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px;background:#fff}\
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
figure{margin:12px 0;background:#fff;border:1px solid #e5e5e5}figure svg{display:block;max-width:100%;height:auto}\
.note{color:#8a4b00}.bad{color:#c62828;font-weight:bold}.ok{color:#2e7d32}\
.more{color:#666;font-style:italic}code{font-size:13px}";

fn status_class(status: VerdictStatus) -> &'static str {
    match status {
        VerdictStatus::Passed => "passed",
        VerdictStatus::Failed => "failed",
        VerdictStatus::Unknown => "unknown",
    }
}

/// The page of one run.
pub fn report(s: &Summary, data: &PlotData) -> String {
    let run = Run { label: "", data };
    let runs = [run];
    let class = status_class(s.verdict.status);
    let title = format!("{} {} run {}: {}", s.run.kind.as_str(), s.run.name, s.run.run, class);
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = write!(
        h,
        "<header class=\"{class}\"><h1>{} <code>{}</code>, run {}</h1><p>Verdict: <strong>{}</strong> (the run {})</p></header>\n<main>\n",
        esc(s.run.kind.as_str()),
        esc(&s.run.name),
        esc(&s.run.run),
        class.to_uppercase(),
        esc(s.run.result.as_str())
    );
    header_table(&mut h, s);
    if !s.verdict.reasons.is_empty() {
        h.push_str("<h2>Why it failed</h2><ul>");
        for r in &s.verdict.reasons {
            let _ = write!(h, "<li class=\"bad\">{}</li>", esc(r));
        }
        h.push_str("</ul>\n");
    }
    if !s.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul>");
        for n in &s.notes {
            let _ = write!(h, "<li class=\"note\">{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    if s.inputs.bad_lines_total > 0 {
        bad_lines(&mut h, s);
    }

    h.push_str("<h2>Pods</h2>\n");
    if let Some(p) = &s.pods {
        figure(&mut h, plots::pods_by_phase(&runs));
        h.push_str("<h3>Latency from creation (ms)</h3>");
        h.push_str("<p>API server times (creationTimestamp, lastTransitionTime), whole seconds, as kube-burner measures them.</p>");
        latency_table(&mut h, &p.latency_ms);
        if !p.observed_latency_ms.is_empty() {
            h.push_str("<h3>Latency from creation as the collectors saw it (ms)</h3>");
            h.push_str(
                "<p>Watch times, microseconds: when the pod's creation and each condition reached the collectors \
                 (what a list found after a lost watch is left out).</p>",
            );
            latency_table(&mut h, &p.observed_latency_ms);
        }
        figure(&mut h, plots::latency_cdf(&runs));
        h.push_str("<p>Pods per latency bin, per condition, as the collectors saw it (watch times).</p>");
        figure(&mut h, plots::latency_histograms(&run));
        let t = &p.scheduling_throughput;
        let _ = write!(
            h,
            "<table><tr><th>Pods seen</th><td class=\"n\">{}</td></tr><tr><th>Pending, peak</th><td class=\"n\">{}{}</td></tr><tr><th>Pending, time-weighted mean</th><td class=\"n\">{}</td></tr>\
             <tr><th>Scheduled</th><td class=\"n\">{} in {} windows of {} s</td></tr><tr><th>Scheduling throughput, pods/s</th><td class=\"n\">p50 {} · p90 {} · p99 {} · max {}</td></tr>",
            p.total,
            p.pending.peak,
            p.pending.peak_at.as_deref().map(|t| format!(" at {}", esc(t))).unwrap_or_default(),
            ms(p.pending.mean),
            t.scheduled,
            t.windows,
            t.window_seconds,
            ms(t.p50),
            ms(t.p90),
            ms(t.p99),
            ms(t.max)
        );
        for (phase, n) in &p.phases_at_end {
            let _ = write!(h, "<tr><th>{} at the end</th><td class=\"n\">{n}</td></tr>", esc(phase));
        }
        h.push_str("</table>\n");
        figure(&mut h, plots::throughput(&runs));
    } else {
        h.push_str("<p class=\"note\">No pods.jsonl.</p>\n");
    }

    h.push_str("<h2>Nodes</h2>\n");
    if let Some(n) = &s.nodes {
        figure(&mut h, plots::nodes(&runs));
        let _ = write!(
            h,
            "<table><tr><th>At the start</th><td class=\"n\">{}</td></tr><tr><th>At the end</th><td class=\"n\">{}</td></tr><tr><th>Min / max</th><td class=\"n\">{} / {}</td></tr><tr><th>Added / removed</th><td class=\"n\">{} / {}</td></tr><tr><th>NodePool and NodeClaim changes</th><td class=\"n\">{}</td></tr>",
            n.at_start, n.at_end, n.min, n.max, n.added, n.removed, n.karpenter_changes
        );
        for (t, max) in &n.max_by_instance_type {
            let _ = write!(h, "<tr><th>Most <code>{}</code> at once</th><td class=\"n\">{max}</td></tr>", esc(t));
        }
        h.push_str("</table><h3>Readiness of added nodes (ms)</h3>");
        latency_table(&mut h, std::slice::from_ref(&n.readiness_latency_ms));
        if !data.node_readiness.is_empty() {
            figure(&mut h, plots::node_readiness(&runs));
        }
    } else {
        h.push_str("<p class=\"note\">No nodes.jsonl.</p>\n");
    }

    h.push_str("<h2>Workloads</h2>\n");
    if let Some(w) = &s.workloads {
        figure(&mut h, plots::workloads(&runs));
        if data.workloads_left_out > 0 {
            let _ = write!(
                h,
                "<p class=\"more\">{} of {} workloads plotted; {} left out (summary.json counts them all).</p>",
                w.plotted, w.total, data.workloads_left_out
            );
        }
        h.push_str("<table><tr><th>Kind</th><th>Workloads</th></tr>");
        for (kind, n) in &w.by_kind {
            let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(kind));
        }
        h.push_str("</table>\n");
    } else {
        h.push_str("<p class=\"note\">No workloads.jsonl.</p>\n");
    }

    if let Some(sc) = &s.scenario {
        h.push_str("<h2>Steps</h2>\n");
        figure(&mut h, plots::timeline(&runs));
        let _ = write!(
            h,
            "<p>{} steps played, {} actions, {} failed. Scale to all available: {}</p>",
            sc.steps_played,
            sc.actions,
            sc.failed_actions,
            sc.scale_to_available_ms.map(|q| quantiles_inline(&q)).unwrap_or_else(|| "not measured".to_string())
        );
        h.push_str("<table><tr><th>Step</th><th>Name</th><th>Started</th><th>Late (ms)</th><th>Actions</th><th>Failed</th><th>Scale actions</th><th>All available (ms)</th><th>Note</th></tr>");
        for st in sc.steps.iter().take(MAX_STEP_ROWS) {
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"note\">{}</td></tr>",
                st.step,
                esc(&st.step_name),
                esc(st.started.as_deref().unwrap_or("")),
                st.lateness_ms.map(ms).unwrap_or_default(),
                st.actions,
                st.failed_actions,
                st.scale_actions,
                st.all_available_ms.map(ms).unwrap_or_default(),
                esc(st.note.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
        if sc.steps.len() > MAX_STEP_ROWS {
            let _ = write!(
                h,
                "<p class=\"more\">{} more steps in summary.json.</p>",
                sc.steps.len().saturating_sub(MAX_STEP_ROWS)
            );
        }
    }

    h.push_str("<h2>Lateness (ms)</h2><table><tr><th></th><th>Count</th><th>p50</th><th>p90</th><th>p99</th><th>Max</th><th>Avg</th></tr>");
    let run_label = if s.run.kind == super::RunKind::Replay {
        "Requests (start minus deadline)"
    } else {
        "Steps (start minus due)"
    };
    quantiles_row(&mut h, run_label, s.lateness_ms.run.as_ref());
    if s.run.kind == super::RunKind::Scenario {
        quantiles_row(&mut h, "Actions (start minus the step's due)", s.lateness_ms.actions.as_ref());
    }
    h.push_str("</table>\n");

    failures(&mut h, s);

    h.push_str("<h2>Audit</h2>\n");
    match &s.audit {
        Some(a) => {
            let _ = write!(
                h,
                "<table><tr><th>Audit events</th><td class=\"n\">{}</td></tr><tr><th>Answered 400 or more</th><td class=\"n\">{}</td></tr>",
                a.events, a.errors
            );
            for (verb, n) in &a.by_verb {
                let _ = write!(h, "<tr><th>{}</th><td class=\"n\">{n}</td></tr>", esc(verb));
            }
            h.push_str("</table>\n");
        }
        None => h.push_str("<p class=\"note\">No audit.jsonl: the run's audit events were not collected.</p>\n"),
    }

    if !s.thresholds.is_empty() {
        h.push_str("<h2>Thresholds</h2><table><tr><th>Condition</th><th>Metric</th><th>Limit (ms)</th><th>Value (ms)</th><th></th></tr>");
        for t in &s.thresholds {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>",
                esc(&t.condition),
                esc(&t.metric),
                t.max_ms,
                t.value_ms.map(ms).unwrap_or_else(|| "—".to_string()),
                if t.breached { "bad" } else { "ok" },
                esc(&t.message)
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str(
        "<h2>Inputs</h2><table><tr><th>File</th><th>Present</th><th>Lines</th><th>Records</th><th>Bad lines</th></tr>",
    );
    for f in &s.inputs.files {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&f.file),
            if f.present { "yes" } else { "no" },
            f.lines,
            f.records,
            f.bad_lines
        );
    }
    let _ = write!(
        h,
        "</table>\n</main><footer><p class=\"more\" style=\"text-align:center\">summary.json schema {}, generated {}</p></footer></body></html>\n",
        esc(&s.schema_version),
        esc(&s.generated_at)
    );
    h
}

fn header_table(h: &mut String, s: &Summary) {
    h.push_str("<table>");
    let mut row = |k: &str, v: &str| {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    };
    row("Kind", s.run.kind.as_str());
    row("Name", &s.run.name);
    if let Some(sim) = &s.run.simulation {
        row("Simulation", sim);
    }
    row("Run", &s.run.run);
    row("Start", s.run.start.as_deref().or(s.window.start.as_deref()).unwrap_or("—"));
    row("End", s.run.end.as_deref().or(s.window.end.as_deref()).unwrap_or("—"));
    row("Evidence spans", &format!("{} s", ms(s.window.seconds)));
    row("Result", s.run.result.as_str());
    if let Some(c) = &s.run.cleanup {
        row("Cleanup", c);
    }
    if let Some(uri) = &s.run.artifact_uri {
        row("Artifacts", uri);
    }
    for (k, v) in &s.run.details {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        row(k, &text);
    }
    h.push_str("</table>\n");
}

fn bad_lines(h: &mut String, s: &Summary) {
    let _ = write!(
        h,
        "<h2>Bad lines</h2><p class=\"bad\">{} lines could not be read; everything else is shown.</p><table><tr><th>File</th><th>Line</th><th>Error</th></tr>",
        s.inputs.bad_lines_total
    );
    for b in &s.inputs.bad_lines {
        let _ =
            write!(h, "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>", esc(&b.file), b.line, esc(&b.error));
    }
    h.push_str("</table>\n");
    let shown = u64::try_from(s.inputs.bad_lines.len()).unwrap_or(u64::MAX);
    if s.inputs.bad_lines_total > shown {
        let _ = write!(h, "<p class=\"more\">{} more not listed.</p>", s.inputs.bad_lines_total.saturating_sub(shown));
    }
}

fn failures(h: &mut String, s: &Summary) {
    let f = &s.failures;
    h.push_str("<h2>Failures</h2>\n");
    let nothing = f.run.is_empty()
        && f.actions.is_empty()
        && f.failed_scheduling.is_empty()
        && f.evictions.pods == 0
        && f.evictions.events == 0
        && f.pods_failed.is_empty()
        && f.warnings.is_empty();
    if nothing {
        h.push_str("<p class=\"ok\">None recorded.</p>\n");
        return;
    }
    let list = |h: &mut String, title: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        let _ = write!(h, "<h3>{}</h3><ul>", esc(title));
        for i in items {
            let _ = write!(h, "<li>{}</li>", esc(i));
        }
        h.push_str("</ul>\n");
    };
    list(h, "The run", &f.run);
    list(h, "Failed actions", &f.actions);
    let reasons = |h: &mut String, title: &str, rows: &[super::summary::ReasonCount], objects: &str| {
        if rows.is_empty() {
            return;
        }
        let _ =
            write!(h, "<h3>{}</h3><table><tr><th>Reason</th><th>Events</th><th>{}</th></tr>", esc(title), esc(objects));
        for r in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&r.reason),
                r.events,
                r.objects
            );
        }
        h.push_str("</table>\n");
    };
    reasons(h, "FailedScheduling by reason", &f.failed_scheduling, "Pods");
    if f.evictions.pods > 0 || f.evictions.events > 0 {
        let _ =
            write!(h, "<p>Evictions: {} pods evicted, {} eviction events.</p>", f.evictions.pods, f.evictions.events);
    }
    if !f.pods_failed.is_empty() {
        h.push_str("<h3>Pods that failed, by reason</h3><table><tr><th>Reason</th><th>Pods</th></tr>");
        for (r, n) in &f.pods_failed {
            let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(r));
        }
        h.push_str("</table>\n");
    }
    reasons(h, "Warning events by reason", &f.warnings, "Objects");
}

/// An SVG figure, or why it is missing.
pub fn figure(h: &mut String, plot: Plot) {
    match plot {
        Ok(svg) => {
            // The SVG goes in as plotters wrote it (its text escaped), from its <svg> tag.
            let start = svg.find("<svg").unwrap_or(0);
            let _ = writeln!(h, "<figure>{}</figure>", svg.get(start..).unwrap_or(""));
        }
        Err(why) => {
            let _ = writeln!(h, "<p class=\"more\">(plot left out: {})</p>", esc(&why));
        }
    }
}

fn latency_table(h: &mut String, rows: &[ConditionLatency]) {
    h.push_str("<table><tr><th>Condition</th><th>Total</th><th>Measured</th><th>p50</th><th>p90</th><th>p99</th><th>Max</th><th>Avg</th></tr>");
    for c in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            esc(&c.condition),
            c.total,
            c.measured
        );
        match (&c.quantiles, &c.note) {
            (Some(q), _) => {
                let _ = write!(
                    h,
                    "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    ms(q.p50),
                    ms(q.p90),
                    ms(q.p99),
                    ms(q.max),
                    ms(q.avg)
                );
            }
            (None, note) => {
                let _ = write!(
                    h,
                    "<td colspan=\"5\" class=\"note\">{}</td></tr>",
                    esc(note.as_deref().unwrap_or("not measured"))
                );
            }
        }
    }
    h.push_str("</table>\n");
}

fn quantiles_row(h: &mut String, label: &str, q: Option<&Quantiles>) {
    match q {
        Some(q) => {
            let _ = write!(
                h,
                "<tr><th>{}</th><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(label),
                q.count,
                ms(q.p50),
                ms(q.p90),
                ms(q.p99),
                ms(q.max),
                ms(q.avg)
            );
        }
        None => {
            let _ = write!(h, "<tr><th>{}</th><td colspan=\"6\" class=\"note\">not known</td></tr>", esc(label));
        }
    }
}

fn quantiles_inline(q: &Quantiles) -> String {
    format!(
        "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms over {} steps",
        ms(q.p50),
        ms(q.p90),
        ms(q.p99),
        ms(q.max),
        q.count
    )
}
