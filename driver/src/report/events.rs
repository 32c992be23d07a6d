//! Failures from `events.jsonl` (FailedScheduling by reason, evictions, Warning events by
//! reason) and counts from `audit.jsonl`. The scheduler's message lists its reasons with
//! counts ("0/10 nodes are available: 3 Insufficient cpu, 7 node(s) had untolerated taint");
//! they are split and the counts dropped, so the same reason groups across pods and times.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::collect::records::{AuditRecord, EventRecord};

use super::summary::{AuditFigures, ReasonCount};

/// Distinct reasons kept per table; the rest are summed as `other`.
const MAX_REASONS: usize = 200;

/// Rows of the Warning table.
const MAX_WARNINGS: usize = 20;

/// Reasons of eviction events.
const EVICTION_REASONS: [&str; 3] = ["Evicted", "Preempted", "TaintManagerEviction"];

#[derive(Debug, Default)]
struct Reasons {
    counts: HashMap<String, (u64, HashSet<String>)>,
}

impl Reasons {
    fn add(&mut self, reason: String, object: &str) {
        let key = if self.counts.len() >= MAX_REASONS && !self.counts.contains_key(&reason) {
            "other".to_string()
        } else {
            reason
        };
        let entry = self.counts.entry(key).or_default();
        entry.0 = entry.0.saturating_add(1);
        if !entry.1.contains(object) {
            entry.1.insert(object.to_string());
        }
    }

    /// Most frequent first, then by name.
    fn into_sorted(self, limit: usize) -> Vec<ReasonCount> {
        let mut out: Vec<ReasonCount> = self
            .counts
            .into_iter()
            .map(|(reason, (events, objects))| ReasonCount {
                reason,
                events,
                objects: u64::try_from(objects.len()).unwrap_or(u64::MAX),
            })
            .collect();
        out.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.reason.cmp(&b.reason)));
        out.truncate(limit);
        out
    }
}

/// Event figures being read.
#[derive(Debug, Default)]
pub struct EventAnalysis {
    failed_scheduling: Reasons,
    warnings: Reasons,
    evictions: u64,
}

impl EventAnalysis {
    /// Takes one event.
    pub fn record(&mut self, e: EventRecord) {
        if e.reason == "FailedScheduling" {
            for reason in scheduling_reasons(&e.message) {
                self.failed_scheduling.add(reason, &e.object);
            }
        }
        if EVICTION_REASONS.contains(&e.reason.as_str()) {
            self.evictions = self.evictions.saturating_add(1);
        }
        if e.type_ == "Warning" {
            self.warnings.add(e.reason.clone(), &e.object);
        }
    }

    /// FailedScheduling reasons, Warning reasons, and eviction events.
    pub fn finish(self) -> (Vec<ReasonCount>, Vec<ReasonCount>, u64) {
        (self.failed_scheduling.into_sorted(MAX_REASONS), self.warnings.into_sorted(MAX_WARNINGS), self.evictions)
    }
}

/// The reasons of a FailedScheduling message, counts dropped: "0/10 nodes are available:
/// 3 Insufficient cpu, 7 node(s) had untolerated taint {a: b}. preemption: ..." gives
/// "Insufficient cpu" and "node(s) had untolerated taint {a: b}". A message of another shape
/// is one reason, its numbers replaced by N.
pub fn scheduling_reasons(message: &str) -> Vec<String> {
    let body = message.split_once("preemption:").map_or(message, |(before, _)| before).trim();
    let listed = body.split_once(" are available: ").or_else(|| body.split_once(" is available: "));
    match listed {
        Some((_, reasons)) => {
            let reasons = reasons.trim().trim_end_matches('.');
            let out: Vec<String> = split_top_level(reasons)
                .into_iter()
                .map(|r| {
                    let r = r.trim();
                    let without_count = match r.split_once(' ') {
                        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
                        _ => r,
                    };
                    short(without_count.trim())
                })
                .filter(|r| !r.is_empty())
                .collect();
            if out.is_empty() { vec![numbers_out(body)] } else { out }
        }
        None => vec![numbers_out(body)],
    }
}

/// Splits on ", " outside braces and brackets (taints are printed as `{key: value}`).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' | '(' => depth = depth.saturating_add(1),
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            ',' if depth <= 0 && bytes.get(i.saturating_add(1)) == Some(&b' ') => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i.saturating_add(2);
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

fn numbers_out(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_number = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    short(&out)
}

/// At most 160 characters.
fn short(s: &str) -> String {
    if s.chars().count() <= 160 { s.to_string() } else { s.chars().take(159).chain(['…']).collect() }
}

/// Audit counts being read.
#[derive(Debug, Default)]
pub struct AuditAnalysis {
    events: u64,
    by_verb: BTreeMap<String, u64>,
    errors: u64,
}

impl AuditAnalysis {
    /// Takes one audit event.
    pub fn record(&mut self, a: AuditRecord) {
        self.events = self.events.saturating_add(1);
        let verb =
            if self.by_verb.len() >= 32 && !self.by_verb.contains_key(&a.verb) { "other".to_string() } else { a.verb };
        let n = self.by_verb.entry(verb).or_default();
        *n = n.saturating_add(1);
        if a.code.is_some_and(|c| c >= 400) {
            self.errors = self.errors.saturating_add(1);
        }
    }

    /// The figures.
    pub fn finish(self) -> AuditFigures {
        AuditFigures { events: self.events, by_verb: self.by_verb, errors: self.errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_messages_split_into_reasons() {
        assert_eq!(
            scheduling_reasons(
                "0/10 nodes are available: 3 Insufficient cpu, 7 node(s) had untolerated taint {node.kubernetes.io/a: b, c: d}. preemption: 0/10 nodes are available: 10 Preemption is not helpful for scheduling."
            ),
            ["Insufficient cpu", "node(s) had untolerated taint {node.kubernetes.io/a: b, c: d}"]
        );
        assert_eq!(scheduling_reasons("0/1 nodes are available: 1 Too many pods."), ["Too many pods"]);
        assert_eq!(
            scheduling_reasons("no nodes available to schedule 12 pods"),
            ["no nodes available to schedule N pods"]
        );
    }
}
