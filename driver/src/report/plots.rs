//! The report's plots, drawn with `plotters` into SVG strings. No font is loaded: text stays
//! SVG `<text>` for the browser to draw, so the report needs nothing from the machine or the
//! network. Every plot takes one run or two (compare): the second is drawn dashed over the
//! first, both counted in seconds from their own start. A plot that cannot be drawn returns
//! why, and the page shows that instead.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotData;
use super::nodes::TOTAL;
use super::pods::PHASES;

/// Width of a plot, in pixels.
pub const WIDTH: u32 = 960;
/// Height of a plot.
pub const HEIGHT: u32 = 340;

const FONT: &str = "sans-serif";

/// One run's data with the name the legends give it.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// "A", "B", or empty for a single run.
    pub label: &'a str,
    /// The data.
    pub data: &'a PlotData,
}

/// An SVG document, or why there is none.
pub type Plot = Result<String, String>;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE.get(i % PALETTE.len()).copied().unwrap_or(BLACK)
}

fn phase_color(phase: &str) -> RGBColor {
    match phase {
        "Pending" => RGBColor(255, 127, 14),
        "Running" => RGBColor(44, 160, 44),
        "Succeeded" => RGBColor(31, 119, 180),
        "Failed" => RGBColor(214, 39, 40),
        _ => RGBColor(127, 127, 127),
    }
}

/// An axis label: whole numbers without decimals, others with what they need.
fn axis(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One line of a chart.
struct Line {
    name: String,
    color: RGBColor,
    dashed: bool,
    width: u32,
    points: Vec<(f64, f64)>,
}

fn suffix(run: &Run<'_>) -> String {
    if run.label.is_empty() { String::new() } else { format!(" ({})", run.label) }
}

fn seconds(run: &Run<'_>, t_us: i64) -> f64 {
    t_us.saturating_sub(run.data.start_us) as f64 / 1e6
}

/// A step function through (x, y) points.
fn steps(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((x, prev));
        }
        out.push((x, y));
    }
    out
}

/// A count over time as a step function held to the run's end: a count that stopped changing
/// (11 nodes from the start) still holds until the last second of the window.
fn held_steps(run: &Run<'_>, points: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out = steps(points);
    let end = seconds(run, run.data.end_us);
    if let Some(&(x, y)) = out.last()
        && x < end
    {
        out.push((end, y));
    }
    out
}

fn span_seconds(runs: &[Run<'_>]) -> f64 {
    runs.iter().map(|r| r.data.end_us.saturating_sub(r.data.start_us) as f64 / 1e6).fold(1.0, f64::max)
}

/// A line chart of `lines`, x from 0 to `x_max`, y from 0.
fn line_chart(title: &str, x_desc: &str, y_desc: &str, x_max: f64, lines: &[Line]) -> Plot {
    if lines.iter().all(|l| l.points.is_empty()) {
        return Err("nothing to plot".to_string());
    }
    let y_max = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.1 };
    let x_max = if x_max.is_finite() && x_max > 0.0 { x_max } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_lines(&root, title, x_desc, y_desc, (x_max, y_max), lines).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (x_max, y_max): (f64, f64),
    lines: &[Line],
) -> DrawResult {
    root.fill(&WHITE)?;
    let named: Vec<&Line> = lines.iter().filter(|l| !l.name.is_empty() && !l.points.is_empty()).collect();
    // The legend has a column of its own, so it never hides the lines.
    let (plot, legend) = if named.is_empty() {
        (root.clone(), None)
    } else {
        let (p, l) = root.split_horizontally(WIDTH.saturating_sub(LEGEND_WIDTH));
        (p, Some(l))
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT, 12))
        .x_label_formatter(&|v| axis(*v))
        .y_label_formatter(&|v| axis(*v))
        .draw()?;
    for line in lines {
        if line.points.is_empty() {
            continue;
        }
        let style = line.color.stroke_width(line.width);
        if line.dashed {
            chart.draw_series(DashedLineSeries::new(line.points.iter().copied(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
        }
    }
    if let Some(area) = legend {
        let entries: Vec<(&str, RGBColor, bool)> = named.iter().map(|l| (l.name.as_str(), l.color, l.dashed)).collect();
        draw_legend(&area, &entries)?;
    }
    Ok(())
}

/// Width of the legend column.
const LEGEND_WIDTH: u32 = 250;

/// Longest legend text, in characters.
const LEGEND_CHARS: usize = 34;

/// A column of entries: a line sample (dashed for a second run) and the name.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(&str, RGBColor, bool)]) -> DrawResult {
    let step = 18i32;
    let max_rows = usize::try_from((i32::try_from(HEIGHT).unwrap_or(340) - 50) / step).unwrap_or(10);
    for (i, (name, c, dashed)) in entries.iter().take(max_rows).enumerate() {
        let y = 44i32.saturating_add(i32::try_from(i).unwrap_or(0).saturating_mul(step));
        let style = c.stroke_width(3);
        if *dashed {
            area.draw(&PathElement::new(vec![(4, y), (10, y)], style))?;
            area.draw(&PathElement::new(vec![(14, y), (20, y)], style))?;
        } else {
            area.draw(&PathElement::new(vec![(4, y), (20, y)], style))?;
        }
        let text = if name.chars().count() > LEGEND_CHARS {
            let tail: String =
                name.chars().rev().take(LEGEND_CHARS.saturating_sub(1)).collect::<Vec<_>>().into_iter().rev().collect();
            format!("…{tail}")
        } else {
            (*name).to_string()
        };
        area.draw(&Text::new(text, (26, y.saturating_sub(7)), (FONT, 12).into_font().color(&BLACK)))?;
    }
    if entries.len() > max_rows {
        let y = 44i32.saturating_add(i32::try_from(max_rows).unwrap_or(0).saturating_mul(step));
        let more = format!("and {} more", entries.len().saturating_sub(max_rows));
        area.draw(&Text::new(more, (26, y.saturating_sub(7)), (FONT, 12).into_font().color(&RGBColor(110, 110, 110))))?;
    }
    Ok(())
}

/// Pods per phase over time.
pub fn pods_by_phase(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    for (r, run) in runs.iter().enumerate() {
        let points = run.data.phases.points();
        for (i, phase) in PHASES.iter().enumerate() {
            if points.iter().all(|(_, v)| v.get(i).copied().unwrap_or(0) == 0) {
                continue;
            }
            lines.push(Line {
                name: format!("{phase}{}", suffix(run)),
                color: phase_color(phase),
                dashed: r > 0,
                width: 2,
                points: held_steps(
                    run,
                    points.iter().map(|(t, v)| (seconds(run, *t), v.get(i).copied().unwrap_or(0) as f64)),
                ),
            });
        }
    }
    line_chart("Pods by phase", "seconds since the start", "pods", span_seconds(runs), &lines)
}

/// Nodes over time: the total and each instance type.
pub fn nodes(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    for (r, run) in runs.iter().enumerate() {
        let points = run.data.nodes.points();
        let names = run.data.nodes.names();
        // With one instance type its line is the total's.
        let show_types = names.len() > 2;
        for (i, name) in names.iter().enumerate() {
            if i > 0 && !show_types {
                continue;
            }
            lines.push(Line {
                name: format!("{name}{}", suffix(run)),
                color: if name == TOTAL { BLACK } else { color(i) },
                dashed: r > 0,
                width: if i == 0 { 3 } else { 2 },
                points: held_steps(
                    run,
                    points.iter().map(|(t, v)| (seconds(run, *t), v.get(i).copied().unwrap_or(0) as f64)),
                ),
            });
        }
    }
    line_chart("Nodes by instance type", "seconds since the start", "nodes", span_seconds(runs), &lines)
}

/// Desired (thin) and ready (thick) replicas per plotted workload.
pub fn workloads(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    let mut names: Vec<&str> = vec![];
    for (r, run) in runs.iter().enumerate() {
        for (label, series) in &run.data.workloads {
            let i = match names.iter().position(|n| *n == label.as_str()) {
                Some(i) => i,
                None => {
                    names.push(label);
                    names.len().saturating_sub(1)
                }
            };
            let points = series.points();
            let pick = |d: usize| -> Vec<(f64, f64)> {
                held_steps(run, points.iter().map(|(t, v)| (seconds(run, *t), v.get(d).copied().unwrap_or(0) as f64)))
            };
            lines.push(Line {
                name: format!("{label} ready{}", suffix(run)),
                color: color(i),
                dashed: r > 0,
                width: 3,
                points: pick(1),
            });
            lines.push(Line { name: String::new(), color: color(i), dashed: true, width: 1, points: pick(0) });
        }
    }
    line_chart(
        "Replicas: ready (thick) and desired (thin, dashed)",
        "seconds since the start",
        "replicas",
        span_seconds(runs),
        &lines,
    )
}

/// Share of pods (y, %) that reached each condition within x ms.
pub fn latency_cdf(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    let mut x_max: f64 = 1.0;
    for (r, run) in runs.iter().enumerate() {
        for (i, (condition, values)) in run.data.latencies.iter().enumerate() {
            if values.is_empty() {
                continue;
            }
            x_max = x_max.max(values.last().copied().unwrap_or(0.0));
            lines.push(Line {
                name: format!("{condition}{}", suffix(run)),
                color: color(i),
                dashed: r > 0,
                width: 2,
                points: cdf(values),
            });
        }
    }
    line_chart(
        "Pod latency (as the collectors saw it): share of pods within",
        "milliseconds since creation",
        "% of pods",
        x_max * 1.02,
        &lines,
    )
}

/// At most 400 steps of the empirical distribution of sorted values, as (value, percent).
fn cdf(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return vec![];
    }
    let step = n.div_ceil(400).max(1);
    let mut out = vec![(sorted.first().copied().unwrap_or(0.0), 0.0)];
    let mut i = step.saturating_sub(1);
    while i < n {
        let v = sorted.get(i).copied().unwrap_or(0.0);
        out.push((v, (i.saturating_add(1)) as f64 * 100.0 / n as f64));
        i = i.saturating_add(step);
    }
    out.push((sorted.last().copied().unwrap_or(0.0), 100.0));
    steps(out)
}

/// One small histogram per condition (pods per latency bin).
pub fn latency_histograms(run: &Run<'_>) -> Plot {
    let conditions: Vec<&(String, Vec<f64>)> = run.data.latencies.iter().filter(|(_, v)| !v.is_empty()).collect();
    if conditions.is_empty() {
        return Err("no pod latencies".to_string());
    }
    let cols = 3usize;
    let rows = conditions.len().div_ceil(cols);
    let height = u32::try_from(rows).unwrap_or(1).saturating_mul(240);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((rows, cols));
        for (i, ((condition, values), area)) in conditions.iter().map(|c| (&c.0, &c.1)).zip(areas.iter()).enumerate() {
            histogram(area, condition, values, color(i)).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

const BINS: usize = 20;

fn histogram(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, sorted: &[f64], c: RGBColor) -> DrawResult {
    let max = sorted.last().copied().unwrap_or(0.0).max(1.0);
    let width = max / BINS as f64;
    let mut counts = [0u64; BINS];
    for v in sorted {
        let b = ((v / width) as usize).min(BINS.saturating_sub(1));
        if let Some(n) = counts.get_mut(b) {
            *n = n.saturating_add(1);
        }
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title} (ms)"), (FONT, 14))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..max, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT, 10))
        .x_label_formatter(&|v| axis(*v))
        .y_label_formatter(&|v| axis(*v))
        .draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, n)| {
        let x0 = i as f64 * width;
        Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *n as f64)], c.filled())
    }))?;
    Ok(())
}

/// Pods scheduled per second, per 5 s window.
pub fn throughput(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    for (r, run) in runs.iter().enumerate() {
        let windows = &run.data.throughput;
        if windows.is_empty() {
            continue;
        }
        // Empty windows between busy ones are zeros; at most 1000 points.
        let every = windows.len().div_ceil(1000).max(1);
        let mut points = vec![];
        let mut prev: Option<i64> = None;
        for chunk in windows.chunks(every) {
            let Some(&(t, _)) = chunk.first() else { continue };
            if let Some(p) = prev
                && t.saturating_sub(p) > 5_000_000
            {
                points.push((seconds(run, p.saturating_add(5_000_000)), 0.0));
                points.push((seconds(run, t.saturating_sub(5_000_000).max(p)), 0.0));
            }
            let pods: u64 = chunk.iter().map(|c| c.1).sum();
            points.push((seconds(run, t), pods as f64 / (5.0 * chunk.len() as f64)));
            prev = chunk.last().map(|c| c.0);
        }
        lines.push(Line { name: format!("pods/s{}", suffix(run)), color: color(0), dashed: r > 0, width: 2, points });
    }
    line_chart("Scheduling throughput (5 s windows)", "seconds since the start", "pods/s", span_seconds(runs), &lines)
}

/// The steps of a scenario: a bar per step from its first action to every scaled Deployment
/// available (red when that never came), a dot per action (red when it failed).
pub fn timeline(runs: &[Run<'_>]) -> Plot {
    let steps_max = runs.iter().map(|r| r.data.timeline.len()).max().unwrap_or(0);
    if steps_max == 0 {
        return Err("no steps".to_string());
    }
    let x_max = runs
        .iter()
        .flat_map(|r| r.data.timeline.iter().map(move |s| seconds(r, s.end_us.unwrap_or(s.start_us))))
        .fold(span_seconds(runs), f64::max);
    let height = (HEIGHT).max(u32::try_from(steps_max.min(200)).unwrap_or(200).saturating_mul(14).saturating_add(100));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw_timeline(&root, runs, x_max, steps_max).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw_timeline(root: &DrawingArea<SVGBackend<'_>, Shift>, runs: &[Run<'_>], x_max: f64, steps: usize) -> DrawResult {
    root.fill(&WHITE)?;
    let y_max = steps as f64 + 1.0;
    let mut chart = ChartBuilder::on(root)
        .caption("Steps: first action to all replicas available", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max.max(1.0), y_max..0f64)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc("step")
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT, 12))
        .x_label_formatter(&|v| axis(*v))
        .y_label_formatter(&|v| axis(*v))
        .draw()?;
    let ok = RGBColor(44, 160, 44);
    let bad = RGBColor(214, 39, 40);
    for (r, run) in runs.iter().enumerate() {
        let offset = if r == 0 { 0.0 } else { 0.35 };
        for (i, step) in run.data.timeline.iter().enumerate() {
            let y = i as f64 + 1.0 + offset;
            let x0 = seconds(run, step.start_us);
            let x1 = seconds(run, step.end_us.unwrap_or(step.start_us)).max(x0);
            let c = if step.reached { color(r) } else { RGBColor(255, 152, 150) };
            let bar = [(x0, y - 0.15), (x1.max(x0 + x_max / 2000.0), y + 0.15)];
            if r == 0 {
                chart.draw_series(std::iter::once(Rectangle::new(bar, c.filled())))?;
            } else {
                chart.draw_series(std::iter::once(Rectangle::new(bar, c.stroke_width(1))))?;
            }
            chart.draw_series(step.actions.iter().map(|(t, good)| {
                Circle::new((seconds(run, *t), y), 3, if *good { ok.filled() } else { bad.filled() })
            }))?;
        }
    }
    for (r, run) in runs.iter().enumerate().filter(|(_, run)| !run.label.is_empty()) {
        let c = color(r);
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (0.0, 0.0)], c.filled())))?
            .label(format!("run {}", run.label))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y.saturating_sub(4)), (x.saturating_add(16), y.saturating_add(4))], c.filled())
            });
    }
    if runs.iter().any(|r| !r.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FONT, 12))
            .draw()?;
    }
    Ok(())
}

/// Node readiness latencies (creation to Ready) of nodes added during the run.
pub fn node_readiness(runs: &[Run<'_>]) -> Plot {
    let mut lines = vec![];
    let mut x_max: f64 = 1.0;
    for (r, run) in runs.iter().enumerate() {
        if run.data.node_readiness.is_empty() {
            continue;
        }
        x_max = x_max.max(run.data.node_readiness.last().copied().unwrap_or(0.0));
        lines.push(Line {
            name: format!("nodes Ready{}", suffix(run)),
            color: color(4),
            dashed: r > 0,
            width: 2,
            points: cdf(&run.data.node_readiness),
        });
    }
    line_chart(
        "Node readiness: share of new nodes Ready within",
        "milliseconds since creation",
        "% of nodes",
        x_max * 1.02,
        &lines,
    )
}
