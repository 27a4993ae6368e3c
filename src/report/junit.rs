//! The JUnit XML report (`--junit FILE`), for GitLab, Jenkins and GitHub test reporters.
//!
//! Layout: `<testsuites name="<suite>">` holding, in run order, a `wait` suite (one
//! `staging ready` testcase, with `[wait]`), an `integrity` suite (one
//! testcase per pinned file and one for the deployed version), a `setup` suite, one suite per
//! flow (one testcase per step, cleanups named `cleanup: <step>`), and a last `gate` suite whose
//! one `verdict` testcase carries the verdict, so that a failed gate is never a green test
//! report (a deadline or a readiness failure leaves every step merely skipped).
//!
//! Mapping of a step: failed assertions -> `<failure type="assertion">`; a step that could not
//! complete (connect, TLS, timeout, body too large, template) -> `<error>`; skipped ->
//! `<skipped>`; passed after retries -> success with one `<flakyFailure>` per failed try; failed
//! after retries -> also one `<rerunFailure>`/`<rerunError>` per earlier try. Non-critical flows
//! carry `(non-critical)` in their suite name (always, so that test history keeps one name; the
//! classname is the flow's name). A failure that only warns (a step of a warned non-critical
//! flow, a failed cleanup) is a passed testcase with the failure in its `<system-out>`: a PASS
//! verdict's JUnit has no `<failure>` and no `<error>`. The `gate` testcase carries only the
//! reasons no other testcase shows (see `Report::gate_reasons`).

use super::{AllFlows, Report};
use super::{
    AssertionRecord, FlowOutcome, FlowRecord, GateVerdict, IntegrityRecord, Phase, StepOutcome,
    StepRecord, VersionRecord, WaitRecord,
};
use crate::verdict::counted;
use quick_junit::{
    NonSuccessKind, Property, Report as JUnit, TestCase, TestCaseStatus, TestRerun, TestSuite,
};
use std::io::Write;
use std::time::Duration;

/// The suite name of non-critical flows gets this suffix.
pub const NON_CRITICAL: &str = "(non-critical)";

/// Renders the report as JUnit XML, with the flows `report.flows` holds.
pub fn render(report: &Report) -> String {
    let mut xml = Vec::new();
    match write(report, AllFlows::InReport, &mut xml) {
        Ok(()) => String::from_utf8_lossy(&xml).into_owned(),
        // Writing to memory cannot fail; should it ever, the report still fails the gate.
        Err(e) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"preflight\" tests=\"1\" failures=\"1\"><testsuite name=\"gate\" tests=\"1\" failures=\"1\"><testcase name=\"verdict\" classname=\"gate\"><failure message=\"the JUnit report could not be rendered\">{}</failure></testcase></testsuite></testsuites>\n",
            xml_1_0(&e.to_string()).replace('<', "&lt;")
        ),
    }
}

/// Where the flows' suites go in the frame: the frame has no flow, so no other suite has
/// this name.
const FLOWS_HERE: &str = "flows";

/// Writes the JUnit XML of `report` with every flow of `flows`, one flow's suite at a time:
/// a first pass over the flows counts what the root element says, then the frame (every
/// suite that is not a flow's) is written around the flows' suites.
pub fn write(report: &Report, flows: AllFlows, out: &mut dyn Write) -> std::io::Result<()> {
    // Only the counts are kept of the first pass: one flow's suite at a time.
    let mut counted = JUnit::new("flows");
    flows.for_each(report, &mut |flow| {
        let suite = flow_suite(&flow, report);
        counted.tests += suite.tests;
        counted.failures += suite.failures;
        counted.errors += suite.errors;
        counted.skipped += suite.skipped;
        Ok(())
    })?;
    let frame = frame(report, &counted)
        .to_string()
        .map_err(std::io::Error::other)?;
    let (before, _, after) = split_at_suite(&frame, FLOWS_HERE)
        .ok_or_else(|| std::io::Error::other("the JUnit frame has no place for the flows"))?;
    out.write_all(xml_1_0(before).as_bytes())?;
    flows.for_each(report, &mut |flow| {
        let mut one = JUnit::new("flow");
        one.add_test_suite(flow_suite(&flow, report));
        let xml = one.to_string().map_err(std::io::Error::other)?;
        let suite = one_suite(&xml)
            .ok_or_else(|| std::io::Error::other("a flow's JUnit suite could not be rendered"))?;
        out.write_all(xml_1_0(suite).as_bytes())
    })?;
    out.write_all(xml_1_0(after).as_bytes())
}

/// Every suite but the flows', with the flows' counts in the root element and an empty suite
/// [`FLOWS_HERE`] where the flows go.
fn frame(report: &Report, flows: &JUnit) -> JUnit {
    let mut junit = JUnit::new(report.suite.as_str());
    junit.set_time(Duration::from_millis(report.duration_ms));
    if let Some(wait) = &report.wait {
        junit.add_test_suite(wait_suite(wait, report));
    }
    if !report.integrity.is_empty() || report.deployed_version.is_some() {
        junit.add_test_suite(integrity_suite(report));
    }
    if !report.setup.is_empty() {
        let mut suite = TestSuite::new("setup");
        stamp(&mut suite, report);
        let total: u64 = report.setup.iter().filter_map(|s| s.latency_ms).sum();
        suite.set_time(Duration::from_millis(total));
        suite.add_test_cases(report.setup.iter().map(|s| step_case(s, "setup", false)));
        junit.add_test_suite(suite);
    }
    junit.add_test_suite(TestSuite::new(FLOWS_HERE));
    junit.tests += flows.tests;
    junit.failures += flows.failures;
    junit.errors += flows.errors;
    junit.skipped += flows.skipped;
    // Teardown steps run as cleanups: a failure is a passed testcase with a warning.
    if !report.teardown.is_empty() {
        let mut suite = TestSuite::new("teardown");
        stamp(&mut suite, report);
        let total: u64 = report.teardown.iter().filter_map(|s| s.latency_ms).sum();
        suite.set_time(Duration::from_millis(total));
        suite.add_test_cases(
            report
                .teardown
                .iter()
                .map(|s| step_case(s, "teardown", false)),
        );
        junit.add_test_suite(suite);
    }
    let shown_elsewhere = flows.failures > 0
        || flows.errors > 0
        || junit
            .test_suites
            .iter()
            .any(|suite| suite.failures > 0 || suite.errors > 0);
    junit.add_test_suite(gate_suite(report, shown_elsewhere));
    junit
}

/// Where a suite begins in rendered XML: each is on a line of its own, indented once.
const SUITE_START: &str = "\n    <testsuite";
const ROOT_END: &str = "\n</testsuites>";

/// The text before the suite named `name`, the suite, and the text after it.
fn split_at_suite<'x>(xml: &'x str, name: &str) -> Option<(&'x str, &'x str, &'x str)> {
    let start = xml.find(&format!("{SUITE_START} name=\"{name}\""))?;
    let rest = &xml[start + 1..];
    let len = rest.find(SUITE_START).or_else(|| rest.find(ROOT_END))? + 1;
    Some((&xml[..start], &xml[start..start + len], &xml[start + len..]))
}

/// The one suite of a rendered report of one suite.
fn one_suite(xml: &str) -> Option<&str> {
    let start = xml.find(SUITE_START)?;
    let end = xml.rfind(ROOT_END)?;
    xml.get(start..end)
}

/// Text from a record as the JUnit report writes it: every control character but the line
/// feed as a `\u{1b}` escape. quick-junit drops them and the ANSI escape sequences they start,
/// so a secret split by them (masked in the text a reader sees, but the stretch of letters
/// between two escape sequences would vary with the parser) came out whole; and a report that
/// loses a carriage return or a tab says less than what staging sent.
fn kept(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    let dropped = |c: char| c.is_control() && c != '\n';
    if !text.contains(dropped) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if dropped(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// XML 1.0 has no way to write most control characters, even escaped: a body excerpt from
/// staging holding a NUL would make the whole report unreadable. They are written as `\u{0}`.
fn xml_1_0(xml: &str) -> String {
    let allowed = |c: char| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if xml.chars().all(allowed) {
        return xml.to_string();
    }
    xml.chars()
        .map(|c| {
            if allowed(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

/// The suite name of a flow: its name, marked when the flow is non-critical.
pub fn flow_suite_name(flow: &FlowRecord) -> String {
    if flow.critical {
        flow.name.clone()
    } else {
        format!("{} {NON_CRITICAL}", flow.name)
    }
}

fn stamp(suite: &mut TestSuite, report: &Report) {
    // quick-junit wants a chrono value for `timestamp`; the report already has RFC 3339 text.
    suite
        .extra
        .insert("timestamp".into(), report.started_at.as_str().into());
}

fn flow_suite(flow: &FlowRecord, report: &Report) -> TestSuite {
    let name = flow_suite_name(flow);
    let mut suite = TestSuite::new(name.as_str());
    stamp(&mut suite, report);
    suite.set_time(Duration::from_millis(flow.duration_ms));
    suite.add_property(Property::new("file", flow.file.as_str()));
    suite.add_property(Property::new("critical", flow.critical.to_string()));
    suite.add_property(Property::new("outcome", flow_outcome_name(flow.outcome)));
    if !flow.tags.is_empty() {
        suite.add_property(Property::new("tags", flow.tags.join(",")));
    }
    let warned = flow.outcome == FlowOutcome::Warned;
    suite.add_test_cases(flow.steps.iter().map(|s| step_case(s, &flow.name, warned)));
    suite
}

fn flow_outcome_name(outcome: FlowOutcome) -> &'static str {
    match outcome {
        FlowOutcome::Passed => "passed",
        FlowOutcome::Failed => "failed",
        FlowOutcome::Warned => "warned",
        FlowOutcome::Skipped => "skipped",
    }
}

/// One testcase for one step (or cleanup). A failure that does not fail the gate (a step of
/// a warned non-critical flow, a cleanup) is a passed testcase that says what went wrong in
/// its `<system-out>`, so that a green pipeline never has a red test tab.
fn step_case(step: &StepRecord, classname: &str, in_warned_flow: bool) -> TestCase {
    let name = match step.phase {
        Phase::Step => step.name.clone(),
        Phase::Cleanup => format!("cleanup: {}", step.name),
    };
    let only_warns =
        step.outcome == StepOutcome::Failed && (in_warned_flow || step.phase == Phase::Cleanup);
    let status = if only_warns {
        TestCaseStatus::success()
    } else {
        step_status(step)
    };
    let mut case = TestCase::new(name, status);
    if only_warns {
        case.set_system_out(kept(format!("warning: {}", failure_text(step))));
    }
    case.set_classname(classname);
    if let Some(ms) = step.latency_ms {
        case.set_time(Duration::from_millis(ms));
    }
    if !step.assertions.is_empty() {
        case.set_assertions(step.assertions.len());
    }
    case
}

fn step_status(step: &StepRecord) -> TestCaseStatus {
    match step.outcome {
        StepOutcome::Skipped => {
            let mut status = TestCaseStatus::skipped();
            if let Some(why) = step.skipped_because.as_deref().filter(|w| !w.is_empty()) {
                status.set_message(kept(why));
            }
            status
        }
        StepOutcome::Passed => {
            let mut status = TestCaseStatus::success();
            // A polled step that passed after polls is not flaky: no rerun marks it so.
            if step.flaky || (step.attempts > 1 && !step.polled) {
                let n = attempt_count(step);
                status.add_reruns(reruns(step).into_iter().map(|mut rerun| {
                    let message = rerun.message.take().map_or(String::new(), String::from);
                    rerun.set_message(format!("{message}; the step passed after {n} attempts"));
                    rerun
                }));
            }
            status
        }
        StepOutcome::Failed => {
            let (kind, ty, message) = match (&step.error, step.failed_assertions().next()) {
                (Some(error), _) => (NonSuccessKind::Error, "error", error.clone()),
                (None, Some(first)) => {
                    (NonSuccessKind::Failure, "assertion", assertion_line(first))
                }
                (None, None) => (NonSuccessKind::Failure, "assertion", "step failed".into()),
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(ty);
            status.set_message(kept(&message));
            status.set_description(kept(failure_text(step)));
            status.add_reruns(reruns(step));
            status
        }
    }
}

/// How many tries the step took, as far as the result tells.
fn attempt_count(step: &StepRecord) -> u32 {
    let floor = if step.flaky { 2 } else { 1 };
    step.attempts
        .max(step.earlier_attempts.len() as u32 + 1)
        .max(floor)
}

/// One entry per failed try before the last one: what each try saw when the engine recorded it
/// (`earlier_attempts`), otherwise only `attempt k of N failed`.
fn reruns(step: &StepRecord) -> Vec<TestRerun> {
    let n = attempt_count(step);
    if !step.earlier_attempts.is_empty() {
        return step
            .earlier_attempts
            .iter()
            .enumerate()
            .map(|(i, attempt)| {
                let (kind, what) = match (&attempt.error, attempt.status) {
                    (Some(error), _) => (NonSuccessKind::Error, error.clone()),
                    (None, Some(status)) => (NonSuccessKind::Failure, format!("status {status}")),
                    (None, None) => (NonSuccessKind::Failure, "no response".into()),
                };
                let mut rerun = TestRerun::new(kind);
                rerun.set_message(kept(format!("attempt {} of {n} failed: {what}", i + 1)));
                if let Some(ms) = attempt.latency_ms {
                    rerun.set_time(Duration::from_millis(ms));
                }
                rerun
            })
            .collect();
    }
    let kind = if step.error.is_some() && step.outcome == StepOutcome::Failed {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    (1..n)
        .map(|k| {
            let mut rerun = TestRerun::new(kind);
            rerun.set_message(format!("attempt {k} of {n} failed"));
            rerun
        })
        .collect()
}

/// `subject op: expected X, actual Y` (values as JSON, like the terminal shows them).
pub fn assertion_line(a: &AssertionRecord) -> String {
    format!(
        "{} {}: expected {}, actual {}",
        a.subject, a.op, a.expected, a.actual
    )
}

/// The text of a `<failure>`/`<error>`: request, error, status, every failed assertion, body.
fn failure_text(step: &StepRecord) -> String {
    let mut lines = Vec::new();
    if step.phase == Phase::Cleanup {
        lines.push(
            "cleanup failed: this does not change the verdict, but test data may be left behind"
                .to_string(),
        );
    }
    let url = step
        .url
        .as_deref()
        .unwrap_or("(no URL: the request could not be built)");
    lines.push(format!("request: {} {url}", step.method));
    if let Some(error) = &step.error {
        lines.push(format!("error: {error}"));
    }
    if step.attempts > 1 {
        lines.push(format!("attempts: {}", step.attempts));
    }
    if let Some(status) = step.status {
        let latency = step
            .latency_ms
            .map_or(String::new(), |l| format!(" in {l}ms"));
        lines.push(format!("status: {status}{latency}"));
    }
    for a in step.failed_assertions() {
        lines.push(assertion_line(a));
        if let Some(message) = &a.message {
            lines.push(format!("    {message}"));
        }
    }
    if let Some(body) = step.body_excerpt.as_deref().filter(|b| !b.is_empty()) {
        lines.push(format!("body: {body}"));
    }
    lines.join("\n")
}

/// `[wait]`: one testcase, failed when staging never became ready.
fn wait_suite(wait: &WaitRecord, report: &Report) -> TestSuite {
    let status = if wait.ready {
        TestCaseStatus::success()
    } else {
        let mut message = format!(
            "staging not ready after {}",
            counted(wait.polls as usize, "poll")
        );
        if let Some(last) = &wait.last {
            message.push_str(&format!(" (last: {last})"));
        }
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_type("wait").set_message(kept(message));
        status
    };
    let mut case = TestCase::new("staging ready", status);
    case.set_classname("wait");
    case.set_time(Duration::from_millis(wait.waited_ms));
    let mut suite = TestSuite::new("wait");
    stamp(&mut suite, report);
    suite.set_time(Duration::from_millis(wait.waited_ms));
    suite.add_test_case(case);
    suite
}

fn integrity_suite(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new("integrity");
    stamp(&mut suite, report);
    suite.add_test_cases(report.integrity.iter().map(integrity_case));
    if let Some(version) = &report.deployed_version {
        suite.add_test_case(version_case(version));
    }
    suite
}

fn integrity_case(r: &IntegrityRecord) -> TestCase {
    let status = if r.passed {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let message = r
            .message
            .clone()
            .unwrap_or_else(|| format!("config mismatch: {}", r.file));
        let mut text = vec![
            message.clone(),
            format!("expected (lock): {}", r.expected),
            format!("local file:      {}", r.actual),
        ];
        if let Some(served) = &r.served {
            text.push(format!("served:          {served}"));
        }
        if let Some(hint) = &r.hint {
            text.push(format!("fix: {hint}"));
        }
        status
            .set_type("integrity")
            .set_message(kept(&message))
            .set_description(kept(text.join("\n")));
        status
    };
    let mut case = TestCase::new(r.file.as_str(), status);
    case.set_classname("integrity");
    case
}

fn version_case(v: &VersionRecord) -> TestCase {
    let status = match v.message() {
        None => TestCaseStatus::success(),
        Some(message) => {
            let kind = if v.error.is_some() {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type("version").set_message(kept(message));
            status
        }
    };
    let mut case = TestCase::new("deployed version", status);
    case.set_classname("integrity");
    case
}

/// The verdict as one testcase. It fails with the reasons no other testcase shows (a
/// deadline, flows not run, `[gate]` limits), so that a failing step is not counted twice; and
/// with every reason when nothing else failed, so that a failed gate is never a green report.
fn gate_suite(report: &Report, shown_elsewhere: bool) -> TestSuite {
    let reasons = match report.verdict {
        GateVerdict::Pass => &[][..],
        GateVerdict::Fail if shown_elsewhere => &report.gate_reasons[..],
        GateVerdict::Fail | GateVerdict::Aborted => &report.reasons[..],
    };
    let status = match report.verdict {
        GateVerdict::Pass => TestCaseStatus::success(),
        // Every failure is its own testcase already; with nothing failed elsewhere, a failed
        // verdict fails here, reasons or not.
        GateVerdict::Fail if reasons.is_empty() && shown_elsewhere => TestCaseStatus::success(),
        verdict => {
            let kind = if verdict == GateVerdict::Aborted {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type("gate").set_message(kept(&report.headline));
            if !reasons.is_empty() {
                status.set_description(kept(reasons.join("\n")));
            }
            status
        }
    };
    let mut case = TestCase::new("verdict", status);
    case.set_classname("gate");
    case.set_time(Duration::from_millis(report.duration_ms));
    if !report.warnings.is_empty() {
        let messages: Vec<&str> = report.warnings.iter().map(|w| w.message.as_str()).collect();
        case.set_system_out(kept(messages.join("\n")));
    }
    let mut suite = TestSuite::new("gate");
    stamp(&mut suite, report);
    suite.set_time(Duration::from_millis(report.duration_ms));
    suite.add_test_case(case);
    suite
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Latency, Summary};
    use serde_json::json;

    pub(crate) fn step(name: &str, outcome: StepOutcome) -> StepRecord {
        StepRecord {
            url: Some("http://staging/x".into()),
            status: Some(200),
            latency_ms: Some(12),
            attempts: 1,
            outcome,
            skipped_because: None,
            ..StepRecord::skipped(name, Phase::Step, "GET", "")
        }
    }

    /// A report with these flows and verdict and nothing else, for the reporters' unit tests.
    pub(crate) fn report(flows: Vec<FlowRecord>, verdict: GateVerdict) -> Report {
        Report {
            schema: 1,
            tool: "preflight".into(),
            version: "0.1.0".into(),
            suite: "s <&> \"q\"".into(),
            base_url: None,
            started_at: "2026-11-27T08:00:00Z".into(),
            duration_ms: 1500,
            verdict,
            reasons: vec![],
            gate_reasons: vec![],
            summary: Summary {
                flows: flows.len(),
                passed: 0,
                failed: 0,
                warned: 0,
                skipped: 0,
                flaky: 0,
                latency_ms: Latency {
                    p50: None,
                    p95: None,
                    max: None,
                },
            },
            wait: None,
            integrity: vec![],
            deployed_version: None,
            setup: vec![],
            teardown: vec![],
            flows,
            warnings: vec![],
            headline: format!("GATE {}", verdict.as_str()),
            suite_digest: None,
            suite_files_digest: None,
            shard: None,
            baseline: None,
            serve: None,
            streamed: None,
        }
    }

    pub(crate) fn flow(
        name: &str,
        critical: bool,
        outcome: FlowOutcome,
        steps: Vec<StepRecord>,
    ) -> FlowRecord {
        FlowRecord {
            name: name.into(),
            file: format!("{name}.toml"),
            tags: vec!["t".into()],
            critical,
            outcome,
            duration_ms: 40,
            steps,
        }
    }

    /// The JUnit document of `report` built whole, as one `quick_junit` report.
    fn whole(report: &Report) -> String {
        let suites: Vec<TestSuite> = report.flows.iter().map(|f| flow_suite(f, report)).collect();
        let mut counted = JUnit::new("flows");
        counted.add_test_suites(suites.clone());
        let mut junit = frame(report, &counted);
        let at = junit
            .test_suites
            .iter()
            .position(|s| s.name.as_str() == FLOWS_HERE)
            .unwrap();
        junit.test_suites.splice(at..=at, suites);
        xml_1_0(&junit.to_string().unwrap())
    }

    #[test]
    fn flows_written_one_suite_at_a_time_make_the_whole_document() {
        let failed = StepRecord {
            error: Some("connect refused".into()),
            ..step("pay", StepOutcome::Failed)
        };
        let mut cleanup = step("drop", StepOutcome::Failed);
        cleanup.phase = Phase::Cleanup;
        let flows = vec![
            flow(
                "a",
                true,
                FlowOutcome::Passed,
                vec![step("one", StepOutcome::Passed)],
            ),
            flow("b <x>", true, FlowOutcome::Failed, vec![failed, cleanup]),
            flow("flows", false, FlowOutcome::Skipped, vec![]),
        ];
        for verdict in [GateVerdict::Pass, GateVerdict::Fail] {
            let mut report = report(flows.clone(), verdict);
            report.teardown = vec![step("wipe", StepOutcome::Passed)];
            report.setup = vec![step("login", StepOutcome::Passed)];
            assert_eq!(render(&report), whole(&report));
            report.teardown.clear();
            report.flows.clear();
            assert_eq!(render(&report), whole(&report));
        }
    }

    #[test]
    fn flaky_pass_is_success_with_flaky_failures() {
        let mut s = step("pay", StepOutcome::Passed);
        s.attempts = 3;
        s.flaky = true;
        let xml = render(&report(
            vec![flow("f", true, FlowOutcome::Passed, vec![s])],
            GateVerdict::Pass,
        ));
        assert_eq!(xml.matches("<flakyFailure").count(), 2, "{xml}");
        assert!(xml.contains("attempt 2 of 3 failed; the step passed after 3 attempts"));
        assert!(!xml.contains("<failure"), "{xml}");
        assert!(
            xml.contains("testsuites name=\"s &lt;&amp;&gt; &quot;q&quot;\""),
            "{xml}"
        );
    }

    #[test]
    fn failed_after_retries_has_rerun_entries() {
        let mut s = step("pay", StepOutcome::Failed);
        s.attempts = 3;
        s.status = Some(503);
        s.assertions = vec![AssertionRecord {
            subject: "status".into(),
            op: "class".into(),
            expected: json!("2xx"),
            actual: json!(503),
            passed: false,
            message: None,
        }];
        s.body_excerpt = Some("busy".into());
        let mut e = step("connect", StepOutcome::Failed);
        e.attempts = 2;
        e.status = None;
        e.error = Some("connect: refused".into());
        let xml = render(&report(
            vec![flow("f", true, FlowOutcome::Failed, vec![s, e])],
            GateVerdict::Fail,
        ));
        assert_eq!(xml.matches("<rerunFailure").count(), 2, "{xml}");
        assert_eq!(xml.matches("<rerunError").count(), 1, "{xml}");
        assert!(xml.contains("message=\"attempt 2 of 3 failed\""), "{xml}");
        assert!(
            xml.contains(
                "<failure message=\"status class: expected &quot;2xx&quot;, actual 503\" type=\"assertion\">"
            ),
            "{xml}"
        );
        assert!(xml.contains("body: busy"), "{xml}");
        assert!(
            xml.contains("<error message=\"connect: refused\" type=\"error\">"),
            "{xml}"
        );
        // The step shows the failure: the gate's own testcase does not count it again.
        assert!(!xml.contains("type=\"gate\""), "{xml}");
        assert!(xml.contains("failures=\"1\" errors=\"1\""), "{xml}");
    }

    #[test]
    fn the_gate_testcase_carries_what_no_step_shows() {
        let mut r = report(
            vec![flow(
                "f",
                true,
                FlowOutcome::Failed,
                vec![step("pay", StepOutcome::Failed)],
            )],
            GateVerdict::Fail,
        );
        r.reasons = vec![
            "flow 'f' failed at step 'pay'".into(),
            "p95 latency 2s over 1s".into(),
        ];
        r.gate_reasons = vec!["p95 latency 2s over 1s".into()];
        let xml = render(&r);
        assert!(
            xml.contains("type=\"gate\">p95 latency 2s over 1s</failure>"),
            "{xml}"
        );
        // A failed gate with nothing else failing carries every reason: never a green report.
        let mut alone = report(vec![], GateVerdict::Fail);
        alone.reasons = vec!["flow 'f' failed at step 'pay'".into()];
        let xml = render(&alone);
        assert!(
            xml.contains(
                "type=\"gate\">flow &apos;f&apos; failed at step &apos;pay&apos;</failure>"
            ) || xml.contains("type=\"gate\">flow 'f' failed at step 'pay'</failure>"),
            "{xml}"
        );
    }

    #[test]
    fn non_critical_suites_are_marked_and_cleanups_prefixed() {
        let mut c = step("delete", StepOutcome::Failed);
        c.phase = Phase::Cleanup;
        let skipped = StepRecord::skipped("later", Phase::Step, "GET", "an earlier step failed");
        let xml = render(&report(
            vec![flow(
                "recs",
                false,
                FlowOutcome::Warned,
                vec![step("a", StepOutcome::Failed), skipped, c],
            )],
            GateVerdict::Pass,
        ));
        // A PASS has no failure and no error: the warned step and the failed cleanup say what
        // went wrong in <system-out>.
        assert!(
            !xml.contains("<failure") && !xml.contains("<error"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>warning: request: GET http://staging/x"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>warning: cleanup failed: this does not change the verdict"),
            "{xml}"
        );
        assert!(
            xml.contains("<testsuite name=\"recs (non-critical)\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"cleanup: delete\""), "{xml}");
        assert!(
            xml.contains("<skipped message=\"an earlier step failed\"/>"),
            "{xml}"
        );
        assert!(xml.contains("timestamp=\"2026-11-27T08:00:00Z\""), "{xml}");
        assert!(
            xml.contains("<property name=\"file\" value=\"recs.toml\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<testcase name=\"a\" classname=\"recs\" time=\"0.012\">"),
            "{xml}"
        );
    }

    #[test]
    fn wait_not_ready_is_a_failure() {
        let mut r = report(vec![], GateVerdict::Fail);
        r.wait = Some(WaitRecord {
            ready: false,
            polls: 3,
            waited_ms: 3000,
            last: Some("status 503".into()),
        });
        let xml = render(&r);
        assert!(
            xml.contains(
                "<failure message=\"staging not ready after 3 polls (last: status 503)\" type=\"wait\"/>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<testcase name=\"staging ready\" classname=\"wait\" time=\"3.000\">")
        );
    }

    #[test]
    fn integrity_and_version_cases() {
        let mut r = report(vec![], GateVerdict::Fail);
        r.integrity = vec![IntegrityRecord {
            file: "c.json".into(),
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
            served: None,
            passed: false,
            message: Some("config mismatch: c.json: expected sha256:aa, found sha256:bb".into()),
            hint: Some("run `preflight lock`".into()),
        }];
        r.deployed_version = Some(VersionRecord {
            expected: "abc".into(),
            actual: Some("old".into()),
            passed: false,
            error: None,
        });
        let xml = render(&r);
        assert!(
            xml.contains("<failure message=\"config mismatch: c.json: expected sha256:aa, found sha256:bb\" type=\"integrity\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"staging runs old, expected abc\" type=\"version\"/>"),
            "{xml}"
        );
        assert!(xml.contains("<testsuite name=\"integrity\" tests=\"2\" skipped=\"0\" errors=\"0\" failures=\"2\""), "{xml}");
    }
}
