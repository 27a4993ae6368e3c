//! `preflight merge`: shard reports joined into one run and judged as one run would be.
//!
//! Fail closed: the shards must make up exactly one whole run (every shard once, one suite
//! digest, every selected flow in exactly one shard, no aborted shard), or the verdict fails
//! with the reason named. The whole is re-judged by [`crate::verdict::judge`] itself, over a
//! [`RunResult`] rebuilt from the records, so `[gate]` limits apply to the total.

use crate::engine::result::{Attempt, WaitResult};
use crate::engine::{self, FlowResult, FlowTally, RunResult, StepResult, Stop};
use crate::integrity::{IntegrityResult, VersionResult};
use crate::report::stream::{HiddenSpoolError, ReadAhead, Spool};
use crate::report::{
    FlowOutcome, FlowRecord, GateVerdict, Phase, Report, ReportFileError, StepOutcome, StepRecord,
    Warning, WarningKind,
};
use crate::report::{Masked, json};
use crate::suite::GatePolicy;
use crate::verdict::{Reason, Verdict, judge};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Input that cannot be merged at all: exit 2, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: crate::fs::read::ReadError,
    },
    #[error("{path} is not a preflight JSON report of schema 1: {why}")]
    NotAReport { path: PathBuf, why: String },
    #[error("{path} is not a shard report (it has no `shard`): run each part with --shard K/N")]
    NotAShard { path: PathBuf },
    #[error("cannot write the merged flows to a temporary file: {0}")]
    Spool(#[source] std::io::Error),
    /// It names the temporary folder.
    #[error(transparent)]
    HiddenSpool(#[from] HiddenSpoolError),
}

/// Why the shards do not make up one whole run: each one fails the merged verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("shard {index} of {count} missing")]
    MissingShard { index: usize, count: usize },
    #[error("{file} tested another deployment than {first} (the deployed versions differ)")]
    VersionDiffers { file: String, first: String },
    #[error("shard {index} of {count} given twice ({first} and {second})")]
    ShardTwice {
        index: usize,
        count: usize,
        first: String,
        second: String,
    },
    #[error("{file} is shard {index} of {count}, not of {expected}")]
    CountDiffers {
        file: String,
        index: usize,
        count: usize,
        expected: usize,
    },
    #[error(
        "{file} has suite digest {found}, not {expected}: shards of different suites, commits or selections"
    )]
    DigestDiffers {
        file: String,
        found: String,
        expected: String,
    },
    #[error("{file} was run with another selection or [gate] policy than {first}")]
    PlanDiffers { file: String, first: String },
    #[error("shard {index} of {count} was aborted")]
    Aborted { index: usize, count: usize },
    #[error("shard {index} of {count} failed on its own: {reasons}")]
    ShardFailed {
        index: usize,
        count: usize,
        reasons: String,
    },
    #[error("flow '{flow}' reported by shards {first} and {second}")]
    FlowTwice {
        flow: String,
        first: usize,
        second: usize,
    },
    #[error("flow '{flow}' reported by shard {found}, but shard {owner} owns it")]
    FlowMisplaced {
        flow: String,
        found: usize,
        owner: usize,
    },
    #[error("flow '{flow}' reported by no shard")]
    FlowMissing { flow: String },
    #[error("flow '{flow}' of shard {shard} is not in the selection")]
    FlowUnknown { flow: String, shard: usize },
    #[error("flow '{flow}' of shard {shard} {why}: no run writes such a record")]
    FlowInconsistent {
        flow: String,
        shard: usize,
        why: String,
    },
    #[error("setup step '{step}' of shard {shard} {why}: no run writes such a record")]
    SetupInconsistent {
        step: String,
        shard: usize,
        why: &'static str,
    },
}

/// One shard report, read and checked for shape: every field but its flows, which
/// `shard_flows` reads one at a time into a hidden spool (in the same pass over the file).
pub struct ShardReport {
    pub path: PathBuf,
    pub report: Report,
    /// Whether its selection is the first shard's (the selection itself, every flow's name,
    /// is kept of the first shard only).
    pub same_selection: bool,
}

/// The whole, judged.
pub struct Merged {
    /// The flows kept whole (every one that did not simply pass), and the tally of all.
    pub result: RunResult,
    /// Every flow of the whole, in the order of the selection.
    pub flows: Spool,
    pub verdict: Verdict,
    pub suite: String,
    pub base_url: Option<String>,
    pub suite_digest: Option<String>,
    /// The shards' suite files digest, when they all have the same one.
    pub suite_files_digest: Option<String>,
    /// The shards' `[openapi]` warnings, which no record of a step carries.
    pub contract_warnings: Vec<Warning>,
}

impl Merged {
    /// The report of the whole with `verdict`: the records are masked already.
    pub fn report(&self, verdict: &Verdict) -> Report {
        let mut report = Report::of_result(
            &self.suite,
            self.base_url.clone(),
            &self.result,
            verdict,
            &crate::redact::NoMask,
        );
        report.suite_digest = self.suite_digest.clone();
        report.suite_files_digest = self.suite_files_digest.clone();
        let warnings = self.contract_warnings.clone();
        report.add_warnings(warnings, &self.result, verdict, &crate::redact::NoMask);
        report
    }
}

/// The `[openapi]` warnings of every shard: a setup step's (run by each shard) said once, an
/// undocumented operation once whichever shards sent it.
fn contract_warnings(reports: &[&Report]) -> Vec<Warning> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for warning in reports.iter().flat_map(|r| &r.warnings) {
        let key = match warning.kind {
            WarningKind::ContractViolation => warning.message.clone(),
            // `operation not in the OpenAPI document: GET /x (flow 'f', step 's')`
            WarningKind::UndocumentedOperation => warning
                .message
                .rsplit_once(" (")
                .map_or(warning.message.clone(), |(operation, _)| {
                    operation.to_string()
                }),
            _ => continue,
        };
        if seen.insert(key) {
            out.push(warning.clone());
        }
    }
    out
}

/// Reads one JSON report file (a regular file, schema 1 of tool `preflight`); anything else
/// is an [`InputError`]. `preflight report` reads its input with this too.
pub fn read_report(path: &Path) -> Result<Report, InputError> {
    Report::read(path).map_err(|e| match e {
        ReportFileError::Unreadable(source) => InputError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        ReportFileError::NotAReport(why) => InputError::NotAReport {
            path: path.to_path_buf(),
            why,
        },
    })
}

/// Reads the frame of one report file (the report but its flows, as [`json::read_flows`]
/// returned it); anything that is not a schema-1 preflight shard report is an
/// [`InputError`]. `first`: the first shard read, whose selection this one's is compared with
/// (and then dropped: one copy of every flow's name is enough).
fn read(path: &Path, frame: &[u8], first: Option<&ShardReport>) -> Result<ShardReport, InputError> {
    let not_a_report = |why: String| InputError::NotAReport {
        path: path.to_path_buf(),
        why,
    };
    let mut report = json::parse_frame(frame).map_err(not_a_report)?;
    if report.schema != 1 || report.tool != "preflight" {
        return Err(not_a_report(format!(
            "schema {} of tool `{}`",
            report.schema, report.tool
        )));
    }
    let Some(shard) = &report.shard else {
        return Err(InputError::NotAShard {
            path: path.to_path_buf(),
        });
    };
    // A report names its shard among the selection's flows: a count of 0 or beyond the flows
    // (or an index outside it) is no shard a run writes, and must not drive the merge.
    if shard.count == 0
        || shard.count > shard.selected.len()
        || shard.index == 0
        || shard.index > shard.count
    {
        return Err(not_a_report(format!(
            "shard {} of {} over {} selected flows is no shard a run writes",
            shard.index,
            shard.count,
            shard.selected.len()
        )));
    }
    let first_selection = first
        .and_then(|f| f.report.shard.as_ref())
        .map(|s| &s.selected);
    let same_selection = first_selection.is_none_or(|selected| *selected == shard.selected);
    if first.is_some()
        && let Some(shard) = &mut report.shard
    {
        shard.selected = Vec::new();
    }
    Ok(ShardReport {
        path: path.to_path_buf(),
        report,
        same_selection,
    })
}

/// Reads the shard reports at `paths` (at least one) and joins them into one run, judged.
/// Each report is read once, on a thread of its own: its flows one at a time, the rest as
/// text checked here; what is kept of the flows is bounded as in a run (see
/// `report::stream`). The first file that is no shard report is the error.
pub fn merge_files(paths: &[PathBuf]) -> Result<Merged, InputError> {
    std::thread::scope(|scope| {
        let reading: Vec<_> = paths
            .iter()
            .map(|path| scope.spawn(move || shard_flows(path)))
            .collect();
        let mut shards: Vec<ShardReport> = Vec::new();
        let mut parts = Vec::new();
        for (path, thread) in paths.iter().zip(reading) {
            let (frame, flows) = thread.join().unwrap_or_else(|_| {
                Err(InputError::Spool(std::io::Error::other(
                    "reading a shard's flows failed (a thread panicked)",
                )))
            })?;
            let shard = read(path, &frame, shards.first())?;
            shards.push(shard);
            parts.push(flows);
        }
        merge(&shards, parts)
    })
}

/// Joins the shards (at least one) and their flows into one run and judges it.
fn merge(shards: &[ShardReport], parts: Vec<ShardFlows>) -> Result<Merged, InputError> {
    let mut problems = consistency(shards);
    let first = &shards[0].report;
    let info = first
        .shard
        .as_ref()
        .expect("read() keeps shard reports only");
    let joined = join_flows(shards, parts, &info.selected, info.count)?;
    problems.extend(joined.problems);
    let reports: Vec<&Report> = shards.iter().map(|s| &s.report).collect();
    let result = RunResult {
        started_at: reports
            .iter()
            .map(|r| r.started_at.clone())
            .min()
            .unwrap_or_default(),
        duration_ms: reports.iter().map(|r| r.duration_ms).max().unwrap_or(0),
        setup: worst_steps(reports.iter().map(|r| &r.setup)),
        flows: joined.kept,
        streamed: Some(joined.tally),
        stopped: reports
            .iter()
            .filter_map(|r| r.shard.as_ref()?.deadline_exceeded_ms)
            .max()
            .map(|deadline_ms| Stop::Deadline { deadline_ms }),
        internal_errors: reports
            .iter()
            .filter_map(|r| r.shard.as_ref())
            .flat_map(|s| s.internal_errors.iter().cloned())
            .collect(),
        wait: worst_wait(&reports),
        integrity: worst_integrity(&reports),
        deployed_version: worst_version(&reports),
        teardown: worst_steps(reports.iter().map(|r| &r.teardown)),
    };
    let gate: GatePolicy = info.gate.policy();
    let judged = judge(&result, &gate);
    // A shard that failed for a reason its records do not carry (a report it could not
    // write, say) must not vanish into a passing whole: its own verdict stands.
    if judged == Verdict::Passed {
        for shard in shards
            .iter()
            .filter(|s| s.report.verdict == GateVerdict::Fail)
        {
            let this = shard
                .report
                .shard
                .as_ref()
                .expect("read() keeps shard reports only");
            problems.push(Problem::ShardFailed {
                index: this.index,
                count: this.count,
                reasons: shard.report.reasons.join("; "),
            });
        }
    }
    let verdict = if problems.is_empty() {
        judged
    } else {
        let reasons = problems.iter().map(|p| Reason::Merge(p.to_string()));
        Verdict::Failed(reasons.chain(judged.reasons().iter().cloned()).collect())
    };
    Ok(Merged {
        contract_warnings: contract_warnings(&reports),
        flows: joined.flows,
        result,
        verdict,
        suite: first.suite.clone(),
        base_url: first.base_url.clone(),
        suite_digest: first.suite_digest.clone(),
        suite_files_digest: shards
            .iter()
            .all(|s| s.report.suite_files_digest == first.suite_files_digest)
            .then(|| first.suite_files_digest.clone())
            .flatten(),
    })
}

/// Every shard once, of one count, one digest, one selection and policy, none aborted.
fn consistency(shards: &[ShardReport]) -> Vec<Problem> {
    let first = &shards[0];
    let info = first.report.shard.as_ref().expect("a shard report");
    let count = info.count;
    let name = |s: &ShardReport| s.path.display().to_string();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<usize, &ShardReport> = BTreeMap::new();
    for shard in shards {
        let this = shard.report.shard.as_ref().expect("a shard report");
        if this.count != count {
            problems.push(Problem::CountDiffers {
                file: name(shard),
                index: this.index,
                count: this.count,
                expected: count,
            });
        }
        if shard.report.suite_digest != first.report.suite_digest {
            problems.push(Problem::DigestDiffers {
                file: name(shard),
                found: shown(&shard.report.suite_digest),
                expected: shown(&first.report.suite_digest),
            });
        } else if !shard.same_selection || this.gate != info.gate {
            problems.push(Problem::PlanDiffers {
                file: name(shard),
                first: name(first),
            });
        }
        if let Some(version) = differing_version(first, shard) {
            problems.push(version);
        }
        if shard.report.verdict == GateVerdict::Aborted {
            problems.push(Problem::Aborted {
                index: this.index,
                count: this.count,
            });
        }
        problems.extend(inconsistent_setup(&shard.report.setup, this.index));
        if let Some(earlier) = seen.insert(this.index, shard) {
            problems.push(Problem::ShardTwice {
                index: this.index,
                count: this.count,
                first: name(earlier),
                second: name(shard),
            });
        }
    }
    for index in (1..=count).filter(|i| !seen.contains_key(i)) {
        problems.push(Problem::MissingShard { index, count });
    }
    problems
}

/// Shards that saw different deployed versions tested different deployments: their parts do
/// not make up one run, whatever the suite says.
fn differing_version(first: &ShardReport, shard: &ShardReport) -> Option<Problem> {
    let seen = |s: &ShardReport| {
        s.report
            .deployed_version
            .as_ref()
            .map(|v| (v.expected.clone(), v.actual.clone()))
    };
    let (a, b) = (seen(first), seen(shard));
    (a != b).then(|| Problem::VersionDiffers {
        file: shard.path.display().to_string(),
        first: first.path.display().to_string(),
    })
}

/// The setup steps whose records no run writes: judged from its records, a setup step that
/// says it passed must have.
fn inconsistent_setup(setup: &[StepRecord], shard: usize) -> Vec<Problem> {
    setup
        .iter()
        .filter_map(|step| {
            Some(Problem::SetupInconsistent {
                step: step.name.clone(),
                shard,
                why: step_inconsistency(step)?,
            })
        })
        .collect()
}

/// What makes a flow record one no run writes (a hand-edited report): a run writes a failed
/// non-critical flow as warned, a passed flow only when each of its steps passed, and a
/// passed step only as below. The merge judges the records, so such a flow could turn a
/// failure into a pass.
fn flow_inconsistency(flow: &FlowRecord) -> Option<String> {
    match (flow.outcome, flow.critical) {
        (FlowOutcome::Failed, false) => {
            return Some("is failed but not critical (a run writes that as warned)".into());
        }
        (FlowOutcome::Warned, true) => {
            return Some("is warned but critical (a run writes that as failed)".into());
        }
        _ => {}
    }
    let unpassed = flow
        .steps
        .iter()
        .find(|s| s.phase == Phase::Step && s.outcome != StepOutcome::Passed);
    if flow.outcome == FlowOutcome::Passed
        && let Some(step) = unpassed
    {
        let outcome = match step.outcome {
            StepOutcome::Failed => "failed",
            _ => "skipped",
        };
        return Some(format!("passed with step '{}' {outcome}", step.name));
    }
    flow.steps
        .iter()
        .find_map(|s| Some(format!("has step '{}' {}", s.name, step_inconsistency(s)?)))
}

/// A run writes a passed step only when each of its assertions held and no error stopped it.
fn step_inconsistency(step: &StepRecord) -> Option<&'static str> {
    if step.outcome != StepOutcome::Passed {
        None
    } else if step.assertions.iter().any(|a| !a.passed) {
        Some("passed with a failed assertion")
    } else if step.error.is_some() {
        Some("passed with an error")
    } else {
        None
    }
}

fn shown(digest: &Option<String>) -> String {
    digest.clone().unwrap_or_else(|| "<none>".into())
}

/// The flows of the shards joined: every flow in the order of the selection, the ones kept
/// whole, the tally of all, and what is wrong with them.
struct Joined {
    flows: Spool,
    kept: Vec<FlowResult>,
    tally: FlowTally,
    problems: Vec<Problem>,
}

/// One shard's flows, read into a hidden spool: each one's name and where its text is, the
/// tally of all of them, and the ones that did not simply pass, whole (by their place in the
/// shard).
struct ShardFlows {
    spool: Spool,
    flows: Vec<(String, (u64, u64))>,
    tally: FlowTally,
    notable: Vec<(usize, FlowResult)>,
    /// The flows whose records no run writes, and why: (name, why).
    inconsistent: Vec<(String, String)>,
}

/// Reads the flows of one shard report, one at a time, and returns the rest of it as text
/// (see [`json::read_flows`]).
fn shard_flows(path: &Path) -> Result<(Vec<u8>, ShardFlows), InputError> {
    let mut spool = Spool::hidden()?;
    let (mut flows, mut tally, mut notable) = (Vec::new(), FlowTally::default(), Vec::new());
    let mut inconsistent = Vec::new();
    let mut take = |flow: FlowRecord| -> std::io::Result<()> {
        if let Some(why) = flow_inconsistency(&flow) {
            inconsistent.push((flow.name.clone(), why));
        }
        // Written as a run's report writes a flow: from the engine's form of it.
        let result = flow_result(&flow);
        let range = spool.add(&result.masked(&crate::redact::NoMask))?;
        tally.add(&result);
        if result.is_notable() {
            notable.push((flows.len(), result));
        }
        flows.push((flow.name, range));
        Ok(())
    };
    let file = crate::fs::read::open_regular(path).map_err(|source| InputError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let frame = json::read_flows(file, &mut take).map_err(|e| InputError::NotAReport {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    spool.flush();
    let flows = ShardFlows {
        spool,
        flows,
        tally,
        notable,
        inconsistent,
    };
    Ok((frame, flows))
}

/// The flows of every shard in the order of the selection, each once; a flow reported twice,
/// by a shard that does not own it, by none, or outside the selection is a problem. Each
/// shard's flows are read (in parallel) one at a time into a hidden file, then copied in the
/// selection's order.
fn join_flows(
    shards: &[ShardReport],
    mut parts: Vec<ShardFlows>,
    selected: &[String],
    count: usize,
) -> Result<Joined, InputError> {
    let position: HashMap<&str, usize> = selected
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let mut owner = vec![0; selected.len()];
    let sorted = crate::shard::sorted_names(selected.iter().map(String::as_str));
    for (i, name) in sorted.iter().enumerate() {
        owner[position[name]] = crate::shard::owner(i, count);
    }
    // Where each selected flow was found: (shard, where its text is in that shard's spool).
    let mut found: Vec<Option<(usize, (u64, u64))>> = vec![None; selected.len()];
    let mut problems = Vec::new();
    let mut kept: Vec<(usize, FlowResult)> = Vec::new();
    let mut tally = FlowTally::default();
    for (k, part) in parts.iter_mut().enumerate() {
        let index = shard_index(&shards[k]);
        let inconsistent = std::mem::take(&mut part.inconsistent);
        problems.extend(
            inconsistent
                .into_iter()
                .map(|(flow, why)| Problem::FlowInconsistent {
                    flow,
                    shard: index,
                    why,
                }),
        );
        // The shard's flows that are not part of the whole, by their place in the shard.
        let mut left_out = std::collections::BTreeSet::new();
        for (i, (name, range)) in part.flows.iter().enumerate() {
            let Some(&at) = position.get(name.as_str()) else {
                problems.push(Problem::FlowUnknown {
                    flow: name.clone(),
                    shard: index,
                });
                left_out.insert(i);
                continue;
            };
            if owner[at] != index {
                problems.push(Problem::FlowMisplaced {
                    flow: name.clone(),
                    found: index,
                    owner: owner[at],
                });
            }
            if let Some((first, _)) = found[at] {
                problems.push(Problem::FlowTwice {
                    flow: name.clone(),
                    first: shard_index(&shards[first]),
                    second: index,
                });
                left_out.insert(i);
                continue;
            }
            found[at] = Some((k, *range));
        }
        let place = |i: usize| position[part.flows[i].0.as_str()];
        let notable = std::mem::take(&mut part.notable);
        kept.extend(
            notable
                .into_iter()
                .filter(|(i, _)| !left_out.contains(i))
                .map(|(i, flow)| (place(i), flow)),
        );
        if left_out.is_empty() {
            tally.merge(std::mem::take(&mut part.tally));
        } else {
            // Counted again without the flows left out: rare, and only for broken inputs.
            for i in (0..part.flows.len()).filter(|i| !left_out.contains(i)) {
                let text = part
                    .spool
                    .text(part.flows[i].1)
                    .map_err(InputError::Spool)?;
                let flow: FlowRecord = serde_json::from_slice(&text)
                    .map_err(|e| InputError::Spool(std::io::Error::other(e)))?;
                tally.add(&flow_result(&flow));
            }
        }
    }
    let mut flows = Spool::hidden()?;
    let mut reading: Vec<ReadAhead> = parts.iter().map(|_| ReadAhead::default()).collect();
    for (at, name) in selected.iter().enumerate() {
        match found[at] {
            Some((k, range)) => {
                let text = reading[k]
                    .text(&mut parts[k].spool, range)
                    .map_err(InputError::Spool)?;
                flows.add_text(text).map_err(InputError::Spool)?;
            }
            None => problems.push(Problem::FlowMissing { flow: name.clone() }),
        }
    }
    flows.flush();
    flows.check().map_err(InputError::Spool)?;
    kept.sort_by_key(|(at, _)| *at);
    Ok(Joined {
        flows,
        kept: kept.into_iter().map(|(_, flow)| flow).collect(),
        tally,
        problems,
    })
}

fn shard_index(shard: &ShardReport) -> usize {
    shard.report.shard.as_ref().map_or(0, |s| s.index)
}

/// The steps of the shard whose run of them went worst: a failure seen by one shard, or a
/// flaky step, is kept; when all went well, the first shard's.
fn worst_steps<'a>(lists: impl Iterator<Item = &'a Vec<StepRecord>>) -> Vec<StepResult> {
    let badness = |steps: &Vec<StepRecord>| {
        (
            steps.iter().any(|s| s.outcome != StepOutcome::Passed),
            steps.iter().any(|s| s.flaky),
        )
    };
    let lists: Vec<&Vec<StepRecord>> = lists.collect();
    let worst = lists
        .iter()
        .enumerate()
        .max_by_key(|(i, steps)| (badness(steps), std::cmp::Reverse(*i)))
        .map(|(_, steps)| *steps);
    worst.map_or_else(Vec::new, |steps| steps.iter().map(step_result).collect())
}

/// A `[wait]` that was not ready in any shard fails the whole.
fn worst_wait(reports: &[&Report]) -> Option<WaitResult> {
    let waits: Vec<_> = reports.iter().filter_map(|r| r.wait.as_ref()).collect();
    let wait = waits.iter().find(|w| !w.ready).or(waits.first())?;
    Some(WaitResult {
        ready: wait.ready,
        polls: wait.polls,
        waited_ms: wait.waited_ms,
        last: wait.last.clone(),
    })
}

/// Per file, a mismatch seen by any shard.
fn worst_integrity(reports: &[&Report]) -> Vec<IntegrityResult> {
    let mut out: Vec<IntegrityResult> = Vec::new();
    for record in reports.iter().flat_map(|r| &r.integrity) {
        let result = IntegrityResult {
            file: record.file.clone(),
            expected: record.expected.clone(),
            actual: record.actual.clone(),
            served: record.served.clone(),
            passed: record.passed,
            message: record.message.clone(),
            hint: record.hint.clone(),
        };
        match out.iter_mut().find(|r| r.file == record.file) {
            Some(kept) if kept.passed && !record.passed => *kept = result,
            Some(_) => {}
            None => out.push(result),
        }
    }
    out
}

/// A wrong deployed version seen by any shard.
fn worst_version(reports: &[&Report]) -> Option<VersionResult> {
    let versions: Vec<_> = reports
        .iter()
        .filter_map(|r| r.deployed_version.as_ref())
        .collect();
    let v = versions.iter().find(|v| !v.passed).or(versions.first())?;
    Some(VersionResult {
        expected: v.expected.clone(),
        actual: v.actual.clone(),
        passed: v.passed,
        error: v.error.clone(),
    })
}

fn flow_result(flow: &FlowRecord) -> FlowResult {
    FlowResult {
        name: flow.name.clone(),
        file: flow.file.clone(),
        tags: flow.tags.clone(),
        critical: flow.critical,
        outcome: match flow.outcome {
            FlowOutcome::Passed => engine::FlowOutcome::Passed,
            FlowOutcome::Failed => engine::FlowOutcome::Failed,
            FlowOutcome::Warned => engine::FlowOutcome::Warned,
            FlowOutcome::Skipped => engine::FlowOutcome::Skipped,
        },
        duration_ms: flow.duration_ms,
        steps: flow.steps.iter().map(step_result).collect(),
    }
}

/// A step record back as the engine's result: the records are already masked, and the report
/// built from them again shows them as they are.
fn step_result(step: &StepRecord) -> StepResult {
    StepResult {
        // A shard's contract warnings are carried by its report's warnings, not its steps.
        contract_notes: Vec::new(),
        name: step.name.clone(),
        phase: match step.phase {
            Phase::Step => engine::Phase::Step,
            Phase::Cleanup => engine::Phase::Cleanup,
        },
        method: step.method.clone(),
        url: step.url.clone(),
        status: step.status,
        latency_ms: step.latency_ms,
        attempts: step.attempts,
        flaky: step.flaky,
        earlier_attempts: step
            .earlier_attempts
            .iter()
            .map(|a| Attempt {
                status: a.status,
                error: a.error.clone(),
                latency_ms: a.latency_ms,
                started_ms: a.started_ms,
            })
            .collect(),
        outcome: match step.outcome {
            StepOutcome::Passed => engine::StepOutcome::Passed,
            StepOutcome::Failed => engine::StepOutcome::Failed,
            StepOutcome::Skipped => engine::StepOutcome::Skipped,
        },
        started_ms: step.started_ms,
        last_attempt_started_ms: step.last_attempt_started_ms.or(step.started_ms),
        error: step.error.clone(),
        assertions: step
            .assertions
            .iter()
            .map(|a| crate::check::Assertion {
                subject: a.subject.clone(),
                op: a.op.clone(),
                expected: a.expected.clone(),
                actual: a.actual.clone(),
                passed: a.passed,
                message: a.message.clone(),
            })
            .collect(),
        skipped_because: step.skipped_because.clone(),
        body_excerpt: step.body_excerpt.clone(),
        request_headers: step.request_headers.clone(),
        polled: step.polled,
        exchange: step.exchange.as_ref().map(|e| {
            Box::new(engine::result::ExchangeDetail {
                request_headers: e.request_headers.clone(),
                request_body: e.request_body.clone(),
                response_headers: e.response_headers.clone(),
                response_body: e.response_body.clone(),
            })
        }),
    }
}
