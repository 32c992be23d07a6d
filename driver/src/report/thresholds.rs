//! Checking `spec.collect.thresholds` on a run's pod latencies, as kube-burner checks its
//! own at the end of a job: a figure over its limit fails the run, and so does a figure that
//! cannot be measured (no pods, or more than 10 % of them never reached the condition), since
//! a limit nobody can check has not been met.

use rehearsal_crds::simulation::Threshold;

use super::summary::{PodFigures, ThresholdCheck};

/// Every threshold checked against the pod figures (absent without `pods.jsonl`).
pub fn check(thresholds: &[Threshold], pods: Option<&PodFigures>) -> Vec<ThresholdCheck> {
    thresholds
        .iter()
        .map(|t| {
            let condition = t.condition.as_str();
            let metric = t.metric.as_str();
            let latency = pods.and_then(|p| p.latency_ms.iter().find(|c| c.condition == condition));
            let value = latency.and_then(|c| c.quantiles).map(|q| q.metric(t.metric));
            let (breached, message) = match value {
                Some(v) if v > t.max_ms as f64 => {
                    (true, format!("{condition} {metric} {} ms > {} ms", ms(v), t.max_ms))
                }
                Some(v) => (false, format!("{condition} {metric} {} ms <= {} ms", ms(v), t.max_ms)),
                None => {
                    let why = match (pods, latency) {
                        (None, _) => "no pods.jsonl".to_string(),
                        (Some(_), Some(c)) => c.note.clone().unwrap_or_else(|| "no pods".to_string()),
                        (Some(_), None) => "no pods".to_string(),
                    };
                    (true, format!("{condition} {metric} not measured ({why}); limit {} ms", t.max_ms))
                }
            };
            ThresholdCheck {
                condition: condition.to_string(),
                metric: metric.to_string(),
                max_ms: t.max_ms,
                value_ms: value,
                breached,
                message,
            }
        })
        .collect()
}

/// Milliseconds as a user reads them: whole when whole, else up to three decimals.
pub fn ms(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
