//! `GET /metrics`: what `preflight serve` has run, in the Prometheus text format.
//!
//! Every value comes from the masked [`Report`] of a run, never from the engine's results,
//! and labels are the suite's own names (flows, steps) and fixed words: no URL, status text
//! or value from staging can become a label, so series stay bounded and secrets stay out.

use crate::report::{FlowOutcome, GateVerdict, Phase, Report, Trigger};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets, in seconds: 5 ms to about 20 s.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    ])
}

/// Run-duration buckets, in seconds: 100 ms to 10 min.
fn run_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ])
}

const VERDICTS: [GateVerdict; 3] = [GateVerdict::Pass, GateVerdict::Fail, GateVerdict::Aborted];
const OUTCOMES: [FlowOutcome; 4] = [
    FlowOutcome::Passed,
    FlowOutcome::Failed,
    FlowOutcome::Warned,
    FlowOutcome::Skipped,
];

fn outcome_label(outcome: FlowOutcome) -> &'static str {
    match outcome {
        FlowOutcome::Passed => "passed",
        FlowOutcome::Failed => "failed",
        FlowOutcome::Warned => "warned",
        FlowOutcome::Skipped => "skipped",
    }
}

/// Every metric the server exposes, registered once.
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    in_progress: Gauge,
    last_verdict: Family<Labels, Gauge>,
    last_timestamp: FloatGauge,
    last_duration: FloatGauge,
    run_duration: Histogram,
    last_flows: Arc<LastRunFlows>,
    step_latency: HistogramFamily,
    integrity_mismatches: Gauge,
    version_mismatch: Gauge,
    queue_rejections: Counter,
    reloads: Family<Labels, Counter>,
    suite_flows: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("preflight");
        let metrics = Metrics {
            runs: Family::default(),
            in_progress: Gauge::default(),
            last_verdict: Family::default(),
            last_timestamp: FloatGauge::default(),
            last_duration: FloatGauge::default(),
            run_duration: run_histogram(),
            last_flows: Arc::default(),
            step_latency: Family::new_with_constructor(latency_histogram),
            integrity_mismatches: Gauge::default(),
            version_mismatch: Gauge::default(),
            queue_rejections: Counter::default(),
            reloads: Family::default(),
            suite_flows: Gauge::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "runs",
            "Runs finished, by verdict and trigger",
            m.runs.clone(),
        );
        registry.register(
            "run_in_progress",
            "1 while a run is in progress",
            m.in_progress.clone(),
        );
        registry.register(
            "last_run_verdict",
            "1 for the verdict of the last finished run, 0 for the others",
            m.last_verdict.clone(),
        );
        registry.register(
            "last_run_timestamp_seconds",
            "When the last run ended (Unix time)",
            m.last_timestamp.clone(),
        );
        registry.register(
            "last_run_duration_seconds",
            "How long the last run took",
            m.last_duration.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long runs take",
            m.run_duration.clone(),
        );
        registry.register_collector(Box::new(m.last_flows.clone()));
        registry.register(
            "step_latency_seconds",
            "Latency of each step's last attempt, over every run",
            m.step_latency.clone(),
        );
        registry.register(
            "integrity_mismatches",
            "Pinned config files that did not match in the last run",
            m.integrity_mismatches.clone(),
        );
        registry.register(
            "version_mismatch",
            "1 when the last run's [version] check failed",
            m.version_mismatch.clone(),
        );
        registry.register(
            "queue_rejections",
            "Requests answered 429 after waiting --queue-timeout",
            m.queue_rejections.clone(),
        );
        registry.register(
            "suite_reloads",
            "Suite reloads on SIGHUP, by result",
            m.reloads.clone(),
        );
        registry.register(
            "suite_flows",
            "Flows the loaded suite runs",
            m.suite_flows.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a metric that could not encode would be a bug.
        if let Err(e) = encode(&mut text, &self.registry) {
            text = format!("# error encoding metrics: {e}\n# EOF\n");
        }
        text
    }

    pub fn run_started(&self) {
        self.in_progress.set(1);
    }

    /// Records a finished run from its (masked) report.
    pub fn run_finished(&self, report: &Report, trigger: Trigger) {
        self.in_progress.set(0);
        let verdict = report.verdict.as_str().to_string();
        self.runs
            .get_or_create(&vec![
                ("verdict", verdict),
                ("trigger", trigger.as_str().to_string()),
            ])
            .inc();
        for v in VERDICTS {
            let value = i64::from(v == report.verdict);
            self.last_verdict
                .get_or_create(&vec![("verdict", v.as_str().to_string())])
                .set(value);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_timestamp.set(now);
        let seconds = report.duration_ms as f64 / 1000.0;
        self.last_duration.set(seconds);
        self.run_duration.observe(seconds);
        // The last run's flows only: a flow gone from the suite must not linger. Each is one
        // series: a suite's flow names are unique (a duplicate is refused when it loads), a
        // report holds each flow of the run once, and names are never masked.
        let mut flows = Vec::with_capacity(report.flows.len());
        for flow in &report.flows {
            flows.push(LastFlow {
                name: flow.name.clone(),
                outcome: flow.outcome,
                seconds: flow.duration_ms as f64 / 1000.0,
            });
            let steps = flow.steps.iter().filter(|s| s.phase == Phase::Step);
            for step in steps {
                if let Some(ms) = step.latency_ms {
                    self.step_latency
                        .get_or_create(&vec![
                            ("flow", flow.name.clone()),
                            ("step", step.name.clone()),
                        ])
                        .observe(ms as f64 / 1000.0);
                }
            }
        }
        *self.last_flows.lock() = flows;
        let mismatches = report.integrity.iter().filter(|r| !r.passed).count();
        self.integrity_mismatches.set(mismatches as i64);
        let version_failed = report.deployed_version.as_ref().is_some_and(|v| !v.passed);
        self.version_mismatch.set(i64::from(version_failed));
    }

    /// A run that ended without a report (an internal error).
    pub fn run_failed(&self) {
        self.in_progress.set(0);
    }

    pub fn queue_rejected(&self) {
        self.queue_rejections.inc();
    }

    pub fn suite_loaded(&self, flows: usize) {
        self.suite_flows.set(flows as i64);
    }

    /// A SIGHUP reload; a new suite also forgets the latency series of the old one.
    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
        if ok {
            self.step_latency.clear();
        }
    }
}

/// The flows of the last run, for `flow_outcome` and `flow_duration_seconds`: kept as a list
/// and written out when scraped. Families of gauges cleared and set again at the end of each
/// run took 2-4 ms of a served 1,000-flow run's answer (each series made anew).
#[derive(Debug, Default)]
struct LastRunFlows(Mutex<Vec<LastFlow>>);

/// One flow of the last run, as its two metrics show it.
#[derive(Debug)]
struct LastFlow {
    name: String,
    outcome: FlowOutcome,
    seconds: f64,
}

impl LastRunFlows {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LastFlow>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Collector for LastRunFlows {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let flows = self.lock();
        let mut outcomes = encoder.encode_descriptor(
            "flow_outcome",
            "1 for each flow's outcome in the last run, 0 for its other outcomes.",
            None,
            MetricType::Gauge,
        )?;
        for flow in flows.iter() {
            for each in OUTCOMES {
                let labels = [
                    ("flow", flow.name.as_str()),
                    ("outcome", outcome_label(each)),
                ];
                ConstGauge::new(i64::from(each == flow.outcome))
                    .encode(outcomes.encode_family(&labels)?)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "flow_duration_seconds",
            "Each flow's duration in the last run.",
            None,
            MetricType::Gauge,
        )?;
        for flow in flows.iter() {
            let labels = [("flow", flow.name.as_str())];
            ConstGauge::new(flow.seconds).encode(durations.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
