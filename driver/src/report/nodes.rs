//! Node figures from `nodes.jsonl`: how many nodes over time (by instance type), how many came
//! and went during the run, and how long new nodes took to be Ready. The collector lists the
//! nodes that already exist first; a node created before the run's start counts as being there
//! at the start, not as added.

use std::collections::{BTreeMap, HashMap};

use crate::collect::records::{NodeChange, NodeRecord};

use super::pods::condition_latency;
use super::read::{micros, micros_opt, ms_between};
use super::series::Series;
use super::summary::NodeFigures;

/// Instance types plotted on their own; the rest are summed as `other`.
pub const MAX_INSTANCE_TYPES: usize = 8;

/// Name of the total in the node series.
pub const TOTAL: &str = "all nodes";

#[derive(Debug)]
struct NodeState {
    created_us: Option<i64>,
    ready: bool,
    in_run: bool,
    dim: usize,
    type_name: String,
}

/// Node figures being read.
#[derive(Debug)]
pub struct NodeAnalysis {
    run_start_us: Option<i64>,
    live: HashMap<String, NodeState>,
    /// Nodes over time: the total, then per instance type.
    pub series: Series,
    count: i64,
    at_start: i64,
    min_max: Option<(i64, i64)>,
    added: u64,
    removed: u64,
    readiness: Vec<f64>,
    added_with_creation: u64,
    by_type_now: BTreeMap<String, i64>,
    max_by_type: BTreeMap<String, i64>,
    karpenter: u64,
    first_us: Option<i64>,
    last_us: Option<i64>,
}

impl NodeAnalysis {
    /// Nodes created before `run_start_us` (the run's start; default: the first record) were
    /// there before the run.
    pub fn new(run_start_us: Option<i64>) -> Self {
        NodeAnalysis {
            run_start_us,
            live: HashMap::new(),
            series: Series::new([TOTAL]),
            count: 0,
            at_start: 0,
            min_max: None,
            added: 0,
            removed: 0,
            readiness: vec![],
            added_with_creation: 0,
            by_type_now: BTreeMap::new(),
            max_by_type: BTreeMap::new(),
            karpenter: 0,
            first_us: None,
            last_us: None,
        }
    }

    /// Times of the first and last record (µs).
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_us.zip(self.last_us)
    }

    fn dim_for(&mut self, instance_type: &str) -> usize {
        // The total is dimension 0; MAX_INSTANCE_TYPES types, then `other`.
        if self.series.names().iter().any(|n| n == instance_type) || self.series.names().len() <= MAX_INSTANCE_TYPES {
            self.series.dimension(instance_type)
        } else {
            self.series.dimension("other")
        }
    }

    /// Takes one record.
    pub fn record(&mut self, r: NodeRecord) {
        let Some(t) = micros(&r.t) else { return };
        self.first_us = Some(self.first_us.map_or(t, |f| f.min(t)));
        self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
        if r.object.is_some() {
            self.karpenter = self.karpenter.saturating_add(1);
            return;
        }
        let run_start = *self.run_start_us.get_or_insert(t);
        let at = micros_opt(r.at.as_deref());
        match r.change {
            NodeChange::Added => {
                if self.live.contains_key(&r.name) {
                    return;
                }
                let type_name = r.instance_type.clone().unwrap_or_else(|| "unknown".to_string());
                let dim = self.dim_for(&type_name);
                let in_run = at.unwrap_or(t) >= run_start;
                self.live.insert(
                    r.name,
                    NodeState { created_us: at, ready: false, in_run, dim, type_name: type_name.clone() },
                );
                self.count = self.count.saturating_add(1);
                self.series.add(t, 0, 1);
                self.series.add(t, dim, 1);
                let now = self.by_type_now.entry(type_name.clone()).or_default();
                *now = now.saturating_add(1);
                let now = *now;
                let max = self.max_by_type.entry(type_name).or_default();
                *max = (*max).max(now);
                if in_run {
                    self.added = self.added.saturating_add(1);
                    if at.is_some() {
                        self.added_with_creation = self.added_with_creation.saturating_add(1);
                    }
                    self.changed();
                } else {
                    self.at_start = self.at_start.saturating_add(1);
                }
            }
            NodeChange::Ready => {
                if let Some(state) = self.live.get_mut(&r.name)
                    && !state.ready
                {
                    state.ready = true;
                    if state.in_run
                        && let (Some(created), Some(ready)) = (state.created_us, at)
                    {
                        self.readiness.push(ms_between(created, ready));
                    }
                }
            }
            NodeChange::Deleted => {
                if let Some(state) = self.live.remove(&r.name) {
                    self.count = self.count.saturating_sub(1);
                    self.series.add(t, 0, -1);
                    self.series.add(t, state.dim, -1);
                    if let Some(now) = self.by_type_now.get_mut(&state.type_name) {
                        *now = now.saturating_sub(1);
                    }
                    if t >= run_start {
                        self.removed = self.removed.saturating_add(1);
                    }
                    self.changed();
                }
            }
            NodeChange::NotReady | NodeChange::Cordoned | NodeChange::Uncordoned | NodeChange::Changed => {}
        }
    }

    /// Min and max follow every change after the nodes of the start were listed.
    fn changed(&mut self) {
        let (min, max) = self.min_max.unwrap_or((self.at_start, self.at_start));
        self.min_max = Some((min.min(self.count), max.max(self.count)));
    }

    /// The figures.
    pub fn finish(self) -> (NodeFigures, Vec<f64>, Series) {
        let (min, max) = self.min_max.unwrap_or((self.count, self.count));
        let mut readiness = self.readiness;
        readiness.sort_by(f64::total_cmp);
        let latency = condition_latency("Ready", self.added_with_creation, &readiness, "nodes");
        let figures = NodeFigures {
            at_start: self.at_start,
            at_end: self.count,
            min: min.min(self.count),
            max: max.max(self.count),
            added: self.added,
            removed: self.removed,
            max_by_instance_type: self.max_by_type,
            readiness_latency_ms: latency,
            karpenter_changes: self.karpenter,
        };
        (figures, readiness, self.series)
    }
}
