//! The operator's Prometheus metrics, encoded as OpenMetrics text for `/metrics`.
//!
//! One [`Metrics`] owns its registry and is shared by `Arc` between the controllers (which count
//! and time reconciles), the queue (phase counts, queue length), leader election and the web
//! server (which only encodes).

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The Simulation phases `rehearsal_simulations` always reports, zero when none is in them.
pub const PHASES: [&str; 6] = ["Pending", "Queued", "Initializing", "Running", "Succeeded", "Failed"];

/// Upper bounds (seconds) of the reconcile duration buckets: 1 ms to 10 s, about ×2.5 apart.
const DURATION_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// A histogram family needs a constructor for its buckets; a plain `fn` keeps `Family` nameable.
type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The operator's metrics and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    runs: Family<OutcomeLabels, Counter>,
    simulations: Family<PhaseLabels, Gauge>,
    queue_length: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric family, with the fixed label values (phases, outcomes) at zero.
    pub fn new() -> Metrics {
        // Counter names carry no `_total` and the histogram no `_seconds`: the encoder adds the
        // suffixes from the type and unit (and prometheus-client 0.26 panics on `_total`).
        let mut registry = Registry::with_prefix("rehearsal");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register("reconciles", "Reconciles finished, by controller", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that returned an error, by controller and error kind",
            reconcile_errors.clone(),
        );
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile, by controller",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let runs = Family::<OutcomeLabels, Counter>::default();
        registry.register("runs", "Simulation runs finished, by outcome (succeeded, failed)", runs.clone());
        let simulations = Family::<PhaseLabels, Gauge>::default();
        registry.register("simulations", "Simulations in each phase", simulations.clone());
        let queue_length = Gauge::default();
        registry.register("queue_length", "Simulations waiting for their turn", queue_length.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader lease, else 0", leader.clone());

        // Series that exist from the start, so dashboards see zeros rather than gaps (creating
        // them is the point: the read guards are released at once).
        for outcome in ["succeeded", "failed"] {
            drop(runs.get_or_create(&OutcomeLabels { outcome }));
        }
        for phase in PHASES {
            drop(simulations.get_or_create(&PhaseLabels { phase }));
        }
        Metrics { registry, reconciles, reconcile_errors, reconcile_duration, runs, simulations, queue_length, leader }
    }

    /// Creates `controller`'s reconcile count and duration series at zero, so they are scraped
    /// before its first reconcile (families without series are not encoded at all).
    pub fn init_controller(&self, controller: &'static str) {
        let labels = ControllerLabels { controller };
        // Creating the series is the point; the read guards are released at once.
        drop(self.reconciles.get_or_create(&labels));
        drop(self.reconcile_duration.get_or_create(&labels));
    }

    /// Starts timing one reconcile of `controller`; it is counted and observed when the timer ends.
    pub fn reconcile_timer(&self, controller: &'static str) -> ReconcileTimer {
        let labels = ControllerLabels { controller };
        ReconcileTimer {
            recorded: false,
            start: Instant::now(),
            count: self.reconciles.get_or_create_owned(&labels),
            duration: self.reconcile_duration.get_or_create_owned(&labels),
        }
    }

    /// Counts a failed reconcile of `controller`; `error` is a short kind such as "transient".
    pub fn reconcile_error(&self, controller: &'static str, error: &'static str) {
        self.reconcile_errors.get_or_create(&ErrorLabels { controller, error }).inc();
    }

    /// Counts a finished simulation run.
    pub fn run_finished(&self, succeeded: bool) {
        let outcome = if succeeded { "succeeded" } else { "failed" };
        self.runs.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Sets the number of Simulations per phase; phases not listed are set to zero.
    pub fn set_phases(&self, counts: &[(&'static str, i64)]) {
        for phase in PHASES {
            let count = counts.iter().filter(|(p, _)| *p == phase).map(|(_, n)| n).sum();
            self.simulations.get_or_create(&PhaseLabels { phase }).set(count);
        }
        // A name outside PHASES would add a series never reset to zero: a caller's bug, said once per call.
        for (phase, _) in counts.iter().filter(|(p, _)| !PHASES.contains(p)) {
            tracing::warn!(%phase, "set_phases: not a Simulation phase, ignored");
        }
    }

    /// Sets the number of Simulations waiting in the queue.
    pub fn set_queue_length(&self, n: i64) {
        self.queue_length.set(n);
    }

    /// Sets `rehearsal_leader` to 1 while this replica leads, else 0.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Encodes every metric as OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Times one reconcile: counts it and records its duration once, on [`finish`](Self::finish) or drop.
#[derive(Debug)]
#[must_use = "a timer dropped at once records a reconcile of about zero seconds"]
pub struct ReconcileTimer {
    recorded: bool,
    start: Instant,
    count: Counter,
    duration: Histogram,
}

impl ReconcileTimer {
    /// Records the reconcile now and returns how long it took.
    pub fn finish(mut self) -> Duration {
        self.record()
    }

    fn record(&mut self) -> Duration {
        let elapsed = self.start.elapsed();
        if !self.recorded {
            self.recorded = true;
            self.count.inc();
            self.duration.observe(elapsed.as_secs_f64());
        }
        elapsed
    }
}

impl Drop for ReconcileTimer {
    // A reconcile that returns early (`?`) or panics is still counted and timed.
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of `text` (no `#` comments) that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Metrics>();
        check::<ReconcileTimer>();
    }

    #[test]
    fn fresh_registry_has_the_fixed_series_at_zero() {
        let text = Metrics::new().encode().expect("encodes");
        for family in [
            "# TYPE rehearsal_runs counter",
            "# TYPE rehearsal_simulations gauge",
            "# TYPE rehearsal_queue_length gauge",
            "# TYPE rehearsal_leader gauge",
        ] {
            assert!(text.contains(family), "missing {family:?} in\n{text}");
        }
        for phase in PHASES {
            assert!(text.contains(&format!("rehearsal_simulations{{phase=\"{phase}\"}} 0\n")), "{phase}:\n{text}");
        }
        assert!(text.contains("rehearsal_runs_total{outcome=\"succeeded\"} 0\n"), "{text}");
        assert!(text.contains("rehearsal_runs_total{outcome=\"failed\"} 0\n"), "{text}");
        assert!(text.contains("rehearsal_queue_length 0\n"), "{text}");
        assert!(text.contains("rehearsal_leader 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Label-keyed families have no series yet, and an empty family is not encoded.
        assert!(!text.contains("rehearsal_reconcile"), "{text}");
    }

    #[test]
    fn init_controller_shows_its_series_at_zero() {
        let m = Metrics::new();
        m.init_controller("simulation");
        let text = m.encode().expect("encodes");
        for line in [
            "# TYPE rehearsal_reconciles counter\n",
            "rehearsal_reconciles_total{controller=\"simulation\"} 0\n",
            "# TYPE rehearsal_reconcile_duration_seconds histogram\n",
            "# UNIT rehearsal_reconcile_duration_seconds seconds\n",
            "rehearsal_reconcile_duration_seconds_count{controller=\"simulation\"} 0\n",
            "rehearsal_reconcile_duration_seconds_bucket{le=\"+Inf\",controller=\"simulation\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn reconcile_timer_counts_and_times_once() {
        let m = Metrics::new();
        // Backdated starts rather than sleeps: the durations land mid-bucket whatever the load.
        let backdated = |ago_ms: u64| {
            let mut timer = m.reconcile_timer("simulation");
            timer.start = Instant::now().checked_sub(Duration::from_millis(ago_ms)).expect("a past instant");
            timer
        };
        let took = backdated(30).finish();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        drop(backdated(300));
        let mut twice = m.reconcile_timer("scenario");
        twice.record();
        drop(twice);

        let text = m.encode().expect("encodes");
        assert!(text.contains("rehearsal_reconciles_total{controller=\"simulation\"} 2\n"), "{text}");
        assert!(text.contains("rehearsal_reconciles_total{controller=\"scenario\"} 1\n"), "{text}");
        assert!(text.contains("rehearsal_reconcile_duration_seconds_count{controller=\"simulation\"} 2\n"), "{text}");
        assert!(text.contains("rehearsal_reconcile_duration_seconds_count{controller=\"scenario\"} 1\n"), "{text}");
        let sim_buckets: Vec<&str> = lines(&text, "rehearsal_reconcile_duration_seconds_bucket{")
            .into_iter()
            .filter(|l| l.contains("controller=\"simulation\""))
            .collect();
        assert_eq!(sim_buckets.len(), DURATION_BUCKETS.len() + 1, "{text}");
        let bucket = |le: &str, n: u64| {
            format!("rehearsal_reconcile_duration_seconds_bucket{{le=\"{le}\",controller=\"simulation\"}} {n}")
        };
        // Buckets are cumulative: 30 ms is first counted at 0.05, 300 ms at 0.5.
        assert_eq!(sim_buckets[0], bucket("0.001", 0));
        assert_eq!(sim_buckets[4], bucket("0.025", 0));
        assert_eq!(sim_buckets[5], bucket("0.05", 1));
        assert_eq!(sim_buckets[7], bucket("0.25", 1));
        assert_eq!(sim_buckets[8], bucket("0.5", 2));
        assert_eq!(sim_buckets[12], bucket("10.0", 2));
        assert_eq!(sim_buckets[13], bucket("+Inf", 2));
    }

    #[test]
    fn errors_runs_queue_and_leader() {
        let m = Metrics::new();
        m.reconcile_error("simulation", "transient");
        m.reconcile_error("simulation", "transient");
        m.reconcile_error("scenario", "permanent");
        m.run_finished(true);
        m.run_finished(false);
        m.run_finished(true);
        m.set_queue_length(4);
        m.set_leader(true);

        let text = m.encode().expect("encodes");
        for line in [
            "rehearsal_reconcile_errors_total{controller=\"simulation\",error=\"transient\"} 2\n",
            "rehearsal_reconcile_errors_total{controller=\"scenario\",error=\"permanent\"} 1\n",
            "rehearsal_runs_total{outcome=\"succeeded\"} 2\n",
            "rehearsal_runs_total{outcome=\"failed\"} 1\n",
            "rehearsal_queue_length 4\n",
            "rehearsal_leader 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        m.set_leader(false);
        assert!(m.encode().expect("encodes").contains("rehearsal_leader 0\n"));
    }

    #[test]
    fn phases_are_a_snapshot_and_unknown_names_are_ignored() {
        let m = Metrics::new();
        m.set_phases(&[("Running", 2), ("Queued", 3), ("Succeeded", 7)]);
        m.set_phases(&[("Running", 1), ("Queued", 2), ("Bogus", 9)]);
        let text = m.encode().expect("encodes");
        let phases = lines(&text, "rehearsal_simulations{");
        assert_eq!(phases.len(), PHASES.len(), "{phases:#?}");
        for (phase, n) in
            [("Pending", 0), ("Queued", 2), ("Initializing", 0), ("Running", 1), ("Succeeded", 0), ("Failed", 0)]
        {
            let line = format!("rehearsal_simulations{{phase=\"{phase}\"}} {n}");
            assert!(phases.contains(&line.as_str()), "missing {line:?} in {phases:#?}");
        }
    }
}
