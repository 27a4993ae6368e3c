//! `--baseline PREVIOUS.json`: each step's latency against the same step of an earlier run
//! (typically the last one that passed), so that a checkout three times slower than on the
//! last good deploy is said before users notice, even while it meets its budget.
//!
//! Pure: two reports and a policy in, a [`BaselineRecord`] out.

use crate::redact::Mask;
use crate::report::{Phase, Report, ReportFileError, Warning, WarningKind};
use crate::suite::RegressionPolicy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A baseline that cannot be used: exit 2, nothing run.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: crate::fs::read::ReadError,
    },
    #[error("the baseline {path} is not a preflight JSON report: {why}")]
    NotAReport { path: PathBuf, why: String },
    #[error(
        "the baseline {path} is a run of another suite ({theirs}, this run is {ours}): its steps are not these; use a report of this suite, or --baseline-any to compare anyway"
    )]
    OtherSuite {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
}

/// Reads a baseline report; `digest` is this run's suite files digest, which the baseline's
/// must equal unless `any`.
pub fn read(path: &Path, digest: &str, any: bool) -> Result<Report, BaselineError> {
    let report = Report::read(path).map_err(|e| match e {
        ReportFileError::Unreadable(source) => BaselineError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        ReportFileError::NotAReport(why) => BaselineError::NotAReport {
            path: path.to_path_buf(),
            why,
        },
    })?;
    if !any && report.suite_files_digest.as_deref() != Some(digest) {
        return Err(BaselineError::OtherSuite {
            path: path.to_path_buf(),
            theirs: report
                .suite_files_digest
                .clone()
                .unwrap_or_else(|| "no suite digest".into()),
            ours: digest.to_string(),
        });
    }
    Ok(report)
}

/// The report's `baseline` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaselineRecord {
    /// The baseline report, as given on the command line.
    pub file: String,
    /// When the baseline run started.
    pub started_at: String,
    pub verdict: crate::report::GateVerdict,
    pub max_latency_regression_pct: u32,
    pub min_latency_regression_ms: u64,
    pub fail_on_latency_regression: bool,
    /// Every step that has a latency in both runs, in the order of this run.
    pub steps: Vec<StepComparison>,
    /// Steps of flows in both runs that only this run has, or only the baseline.
    pub new_steps: Vec<StepKey>,
    pub gone_steps: Vec<StepKey>,
    pub new_flows: Vec<String>,
    pub gone_flows: Vec<String>,
}

impl BaselineRecord {
    pub fn regressions(&self) -> impl Iterator<Item = &StepComparison> {
        self.steps.iter().filter(|s| s.regressed)
    }

    /// Every text in it masked: the baseline is a file from elsewhere (another suite, a run
    /// before a value became a secret) and its names reach every report.
    pub fn masked(mut self, mask: &dyn Mask) -> BaselineRecord {
        let text = |t: &mut String| *t = mask.mask_text(t);
        text(&mut self.file);
        text(&mut self.started_at);
        self.new_flows.iter_mut().for_each(text);
        self.gone_flows.iter_mut().for_each(text);
        for key in self.new_steps.iter_mut().chain(&mut self.gone_steps) {
            text(&mut key.flow);
            text(&mut key.step);
        }
        for step in &mut self.steps {
            text(&mut step.flow);
            text(&mut step.step);
        }
        self
    }
}

/// One step in both runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepComparison {
    pub flow: String,
    pub step: String,
    /// Which step of that name in the flow, from 0, when the flow has several.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub occurrence: usize,
    pub baseline_ms: u64,
    pub now_ms: u64,
    /// `(now - baseline) / baseline`, in whole percent; absent when the baseline took 0 ms.
    pub change_pct: Option<i64>,
    /// Slower by more than both thresholds.
    pub regressed: bool,
}

impl StepComparison {
    /// `'checkout' / 'pay': 40ms -> 124ms (+210%)`.
    pub fn describe(&self) -> String {
        let change = match self.change_pct {
            Some(pct) => format!(" ({pct:+}%)"),
            None => String::new(),
        };
        format!(
            "'{}' / '{}': {}ms -> {}ms{change}",
            self.flow, self.step, self.baseline_ms, self.now_ms
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepKey {
    pub flow: String,
    pub step: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The steps of a report's flows by (flow, step name, occurrence of that name in the flow),
/// with their latencies (only of steps that got an answer: a step cut off or timed out has
/// no latency to compare), in order.
fn steps_of(report: &Report) -> Vec<((String, String, usize), Option<u64>)> {
    let mut steps = Vec::new();
    for flow in &report.flows {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for step in flow.steps.iter().filter(|s| s.phase == Phase::Step) {
            let nth = seen.entry(step.name.as_str()).or_default();
            let answered = step.status.is_some() && step.error.is_none();
            steps.push((
                (flow.name.clone(), step.name.clone(), *nth),
                step.latency_ms.filter(|_| answered),
            ));
            *nth += 1;
        }
    }
    steps
}

/// Compares every step of `now` with the same step of `baseline`.
pub fn compare(
    file: &str,
    baseline: &Report,
    now: &Report,
    policy: &RegressionPolicy,
) -> BaselineRecord {
    let before: HashMap<_, _> = steps_of(baseline).into_iter().collect();
    let after = steps_of(now);
    let flows_before: BTreeSet<&str> = baseline.flows.iter().map(|f| f.name.as_str()).collect();
    let flows_now: BTreeSet<&str> = now.flows.iter().map(|f| f.name.as_str()).collect();
    let min_ms = policy.min_absolute.as_millis() as u64;
    let mut steps = Vec::new();
    let mut new_steps = Vec::new();
    for (key, now_ms) in &after {
        let key_of = || StepKey {
            flow: key.0.clone(),
            step: key.1.clone(),
        };
        match before.get(key) {
            None if flows_before.contains(key.0.as_str()) => new_steps.push(key_of()),
            None => {}
            Some(baseline_ms) => {
                let (Some(baseline_ms), Some(now_ms)) = (*baseline_ms, *now_ms) else {
                    continue;
                };
                let mut judged = judge(key_of(), baseline_ms, now_ms, policy, min_ms);
                judged.occurrence = key.2;
                steps.push(judged);
            }
        }
    }
    let after_keys: BTreeSet<_> = after.iter().map(|(k, _)| k).collect();
    let gone_steps = steps_of(baseline)
        .into_iter()
        .filter(|(k, _)| flows_now.contains(k.0.as_str()) && !after_keys.contains(k))
        .map(|((flow, step, _), _)| StepKey { flow, step })
        .collect();
    let names = |a: &BTreeSet<&str>, b: &BTreeSet<&str>| {
        a.difference(b).map(|s| s.to_string()).collect::<Vec<_>>()
    };
    BaselineRecord {
        file: file.to_string(),
        started_at: baseline.started_at.clone(),
        verdict: baseline.verdict,
        max_latency_regression_pct: policy.max_relative_pct,
        min_latency_regression_ms: min_ms,
        fail_on_latency_regression: policy.fail,
        steps,
        new_steps,
        gone_steps,
        new_flows: names(&flows_now, &flows_before),
        gone_flows: names(&flows_before, &flows_now),
    }
}

/// A step has regressed when it is slower than `max_relative_pct` percent over the baseline
/// and slower than `min_ms` in absolute terms.
fn judge(
    key: StepKey,
    baseline_ms: u64,
    now_ms: u64,
    policy: &RegressionPolicy,
    min_ms: u64,
) -> StepComparison {
    let slower_by = now_ms.saturating_sub(baseline_ms);
    let relative = slower_by as u128 * 100 > baseline_ms as u128 * policy.max_relative_pct as u128;
    let change_pct = (baseline_ms > 0).then(|| {
        ((now_ms as f64 - baseline_ms as f64) / baseline_ms as f64 * 100.0).round() as i64
    });
    StepComparison {
        flow: key.flow,
        step: key.step,
        occurrence: 0,
        baseline_ms,
        now_ms,
        change_pct,
        regressed: relative && slower_by > min_ms,
    }
}

/// The regressions as warnings (when they do not fail the gate).
pub fn warnings(record: &BaselineRecord) -> Vec<Warning> {
    record
        .regressions()
        .map(|s| Warning {
            kind: WarningKind::LatencyRegression,
            flow: s.flow.clone(),
            step: Some(s.step.clone()),
            message: format!("slower than the baseline: {}", s.describe()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(pct: u32, ms: u64) -> RegressionPolicy {
        RegressionPolicy {
            max_relative_pct: pct,
            min_absolute: Duration::from_millis(ms),
            fail: false,
        }
    }

    fn judged(before: u64, now: u64, p: RegressionPolicy) -> bool {
        let key = StepKey {
            flow: "f".into(),
            step: "s".into(),
        };
        let min = p.min_absolute.as_millis() as u64;
        judge(key, before, now, &p, min).regressed
    }

    #[test]
    fn both_thresholds_must_be_crossed() {
        let p = policy(50, 50);
        assert!(!judged(2, 4, p), "+100% but only 2 ms");
        assert!(!judged(200, 290, p), "+90 ms but only 45%");
        assert!(judged(200, 310, p), "+110 ms and 55%");
        assert!(!judged(200, 300, p), "exactly 50% is not over it");
        assert!(!judged(300, 100, p), "faster is never a regression");
        assert!(
            judged(0, 51, p),
            "from nothing, over the absolute threshold"
        );
    }

    #[test]
    fn change_is_rounded_percent() {
        let key = StepKey {
            flow: "f".into(),
            step: "s".into(),
        };
        let c = judge(key.clone(), 40, 124, &policy(50, 50), 50);
        assert_eq!(c.change_pct, Some(210));
        assert_eq!(c.describe(), "'f' / 's': 40ms -> 124ms (+210%)");
        assert_eq!(judge(key, 0, 10, &policy(50, 50), 50).change_pct, None);
    }
}
