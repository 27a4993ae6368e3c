//! The Markdown report (`--markdown FILE`, and `GITHUB_STEP_SUMMARY`): the verdict, a table of
//! flows, the failures in detail, warnings, config integrity, counts and latency. Written for
//! GitHub job summaries and PR comments (GitHub-flavoured Markdown).
//!
//! Everything that comes from the suite or from staging is escaped: plain text gets backslash
//! escapes, code spans get a fence longer than any backtick run inside, and `|` is escaped in
//! table cells so that a value can never break the table.

use super::Report;
use super::{
    FlowOutcome, FlowRecord, GateVerdict, IntegrityRecord, StepOutcome, StepRecord, Warning,
    WarningKind,
};
use crate::report::stream::FULL_LISTING;
use crate::report::terminal::clean;
use crate::verdict::counted;
use std::fmt::Write;

/// Hashes are shown with this many hex digits.
const HASH_DIGITS: usize = 12;

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let heading = match report.verdict {
        GateVerdict::Pass => "✅ preflight: GATE PASSED",
        GateVerdict::Aborted => "⛔ preflight: GATE ABORTED",
        GateVerdict::Fail => "❌ preflight: GATE FAILED",
    };
    let _ = writeln!(out, "## {heading}\n");
    let _ = writeln!(out, "**{}**\n", text(&report.headline));
    let mut about = format!("Suite {}", code(&report.suite));
    if let Some(base) = &report.base_url {
        let _ = write!(about, " against {}", code(base));
    }
    let _ = write!(
        out,
        "{about}, started {}, took {}.",
        text(&report.started_at),
        duration(report.duration_ms)
    );
    match &report.wait {
        Some(wait) if wait.ready => {
            let _ = write!(
                out,
                " Staging was ready after {} ({}).",
                counted(wait.polls as usize, "poll"),
                duration(wait.waited_ms)
            );
        }
        Some(wait) => {
            let last = wait
                .last
                .as_deref()
                .map_or(String::new(), |l| format!(", last: {}", code(l)));
            let _ = write!(
                out,
                " ❌ Staging was **not ready** after {} ({}{last}).",
                counted(wait.polls as usize, "poll"),
                duration(wait.waited_ms)
            );
        }
        None => {}
    }
    out.push_str("\n\n");
    if !report.reasons.is_empty() {
        let _ = writeln!(out, "### Why the gate failed\n");
        for reason in &report.reasons {
            let _ = writeln!(out, "- {}", text(reason));
        }
        out.push('\n');
    }
    flows_table(&mut out, report);
    failures(&mut out, report);
    warnings(&mut out, report);
    integrity(&mut out, report);
    baseline(&mut out, report);
    summary(&mut out, report);
    out
}

/// `--baseline`: the regressions in a table, the flows and steps new or gone.
fn baseline(out: &mut String, report: &Report) {
    let Some(baseline) = &report.baseline else {
        return;
    };
    let _ = writeln!(
        out,
        "### Against the baseline
"
    );
    let regressions: Vec<_> = baseline.regressions().collect();
    let _ = writeln!(
        out,
        "Baseline {} ({}, {}): {} compared, {} slower by more than {}% and {} ms.\n",
        code(&baseline.file),
        text(&baseline.started_at),
        baseline.verdict.as_str(),
        crate::verdict::counted(baseline.steps.len(), "step"),
        regressions.len(),
        baseline.max_latency_regression_pct,
        baseline.min_latency_regression_ms
    );
    if !regressions.is_empty() {
        let _ = writeln!(
            out,
            "| Flow | Step | Baseline | Now | Change |\n|---|---|---|---|---|"
        );
        for s in regressions {
            let change = s
                .change_pct
                .map_or("new".to_string(), |p| format!("{p:+}%"));
            let _ = writeln!(
                out,
                "| {} | {} | {} ms | {} ms | {change} |",
                cell(&s.flow),
                cell(&s.step),
                s.baseline_ms,
                s.now_ms
            );
        }
        out.push('\n');
    }
    let lists = [
        ("New flows", baseline.new_flows.clone()),
        ("Gone flows", baseline.gone_flows.clone()),
        (
            "New steps",
            crate::report::terminal::keys(&baseline.new_steps),
        ),
        (
            "Gone steps",
            crate::report::terminal::keys(&baseline.gone_steps),
        ),
    ];
    for (what, names) in lists {
        if !names.is_empty() {
            let _ = writeln!(
                out,
                "- {what} since the baseline: {}",
                text(&names.join(", "))
            );
        }
    }
    out.push('\n');
}

/// Every flow, up to [`FULL_LISTING`]; above, the flows that did not simply pass, and how
/// many did (a table of thousands of rows helps no one, and a job summary has a size limit).
fn flows_table(out: &mut String, report: &Report) {
    let large = report.summary.flows > FULL_LISTING;
    let listed: Vec<&FlowRecord> = report
        .flows
        .iter()
        .filter(|f| !large || !f.is_plain_pass())
        .collect();
    let left_out = report.summary.flows.saturating_sub(listed.len());
    if listed.is_empty() && (!large || left_out == 0) {
        return;
    }
    let _ = writeln!(out, "### Flows\n");
    if large && left_out > 0 {
        let _ = writeln!(
            out,
            "{} that passed not listed: the JSON report has every flow.\n",
            counted(left_out, "flow")
        );
    }
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(out, "| Outcome | Flow | File | Duration | Failing step |");
    let _ = writeln!(out, "|---|---|---|---:|---|");
    for flow in listed {
        let name = if flow.critical {
            cell(&flow.name)
        } else {
            format!("{} (non-critical)", cell(&flow.name))
        };
        let duration = if flow.outcome == FlowOutcome::Skipped {
            "–".to_string()
        } else {
            duration(flow.duration_ms)
        };
        let _ = writeln!(
            out,
            "| {} | {name} | {} | {duration} | {} |",
            outcome(flow.outcome),
            cell_code(&flow.file),
            failing(flow)
        );
    }
    out.push('\n');
}

fn outcome(outcome: FlowOutcome) -> &'static str {
    match outcome {
        FlowOutcome::Passed => "✅ passed",
        FlowOutcome::Failed => "❌ failed",
        FlowOutcome::Warned => "⚠️ warned",
        FlowOutcome::Skipped => "⏭️ skipped",
    }
}

/// The failing step's cell: its name, or why the flow never started.
fn failing(flow: &FlowRecord) -> String {
    if let Some(step) = flow.failed_step() {
        return cell_code(&step.name);
    }
    if flow.outcome == FlowOutcome::Passed {
        return String::new();
    }
    let label = if flow.outcome == FlowOutcome::Skipped {
        "not started"
    } else {
        "no step failed"
    };
    match not_run_reason(flow) {
        Some(why) => format!("{label}: {}", cell(why)),
        None => label.to_string(),
    }
}

/// Why the steps of a flow did not run (a flow that never started, or whose task died).
fn not_run_reason(flow: &FlowRecord) -> Option<&str> {
    flow.steps
        .iter()
        .find_map(|s| s.skipped_because.as_deref())
        .filter(|w| !w.is_empty())
}

fn failures(out: &mut String, report: &Report) {
    let setup: Vec<&StepRecord> = report
        .setup
        .iter()
        .filter(|s| s.outcome == StepOutcome::Failed)
        .collect();
    let flows: Vec<(&FlowRecord, Option<&StepRecord>)> = report
        .flows
        .iter()
        .filter(|f| matches!(f.outcome, FlowOutcome::Failed | FlowOutcome::Warned))
        .map(|f| (f, f.failed_step()))
        .collect();
    if setup.is_empty() && flows.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Failures\n");
    for step in setup {
        let _ = writeln!(out, "#### ❌ setup: step {}\n", code(&step.name));
        step_detail(out, step, "");
        out.push('\n');
    }
    for (flow, step) in flows {
        let mark = if flow.outcome == FlowOutcome::Warned {
            "⚠️"
        } else {
            "❌"
        };
        let critical = if flow.critical { "" } else { " (non-critical)" };
        let Some(step) = step else {
            let _ = writeln!(out, "#### {mark} {}{critical}\n", text(&flow.name));
            let _ = writeln!(out, "- flow file: {}", code(&flow.file));
            let why = not_run_reason(flow).unwrap_or("no step failed");
            let _ = writeln!(out, "- {}\n", text(why));
            continue;
        };
        let _ = writeln!(
            out,
            "#### {mark} {}{critical}: step {}\n",
            text(&flow.name),
            code(&step.name)
        );
        let _ = writeln!(out, "- flow file: {}", code(&flow.file));
        step_detail(out, step, "");
        out.push('\n');
    }
}

/// The request, error, status, each failed assertion (expected vs actual), the body excerpt;
/// as list items indented by `indent`.
fn step_detail(out: &mut String, step: &StepRecord, indent: &str) {
    let request = match &step.url {
        Some(url) => code(&format!("{} {url}", step.method)),
        None => format!(
            "{} (no URL: the request could not be built)",
            code(&step.method)
        ),
    };
    let _ = writeln!(out, "{indent}- request: {request}");
    if let Some(error) = &step.error {
        let _ = writeln!(out, "{indent}- error: {}", code(error));
    }
    if step.attempts > 1 {
        let _ = writeln!(out, "{indent}- attempts: {}", step.attempts);
    }
    if let Some(status) = step.status {
        let latency = step
            .latency_ms
            .map_or(String::new(), |l| format!(" in {}", duration(l)));
        let _ = writeln!(
            out,
            "{indent}- status: {}{latency}",
            code(&status.to_string())
        );
    }
    let failed: Vec<_> = step.failed_assertions().collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "{indent}- failed assertions:");
        for a in failed {
            let _ = writeln!(
                out,
                "{indent}  - {} {}: expected {}, actual {}",
                code(&a.subject),
                text(&a.op),
                code(&a.expected.to_string()),
                code(&a.actual.to_string())
            );
            if let Some(message) = &a.message {
                let _ = writeln!(out, "{indent}    - {}", text(message));
            }
        }
    }
    if let Some(body) = step.body_excerpt.as_deref().filter(|b| !b.is_empty()) {
        let _ = writeln!(out, "{indent}- body excerpt:\n");
        fenced(out, body, &format!("{indent}  "));
    }
}

fn warnings(out: &mut String, report: &Report) {
    let cleanups: Vec<(&FlowRecord, &StepRecord)> = report
        .flows
        .iter()
        .flat_map(|f| f.failed_cleanups().map(move |s| (f, s)))
        .collect();
    // Warned flows are under Failures and failed cleanups get their details below.
    let flaky: Vec<(&FlowRecord, &StepRecord)> = report
        .flows
        .iter()
        .flat_map(|f| f.steps.iter().filter(|s| s.flaky).map(move |s| (f, s)))
        .collect();
    let teardown: Vec<&StepRecord> = report
        .teardown
        .iter()
        .filter(|s| s.outcome == StepOutcome::Failed)
        .collect();
    // The warnings no record of a step shows: each by its message. (Latency regressions have
    // their own section; warned flows, cleanups and teardown are told above and below.)
    let other: Vec<&Warning> = report
        .warnings
        .iter()
        .filter(|w| match w.kind {
            WarningKind::ContractViolation | WarningKind::UndocumentedOperation => true,
            WarningKind::NonCriticalFlowFailed
            | WarningKind::CleanupFailed
            | WarningKind::TeardownFailed
            | WarningKind::LatencyRegression => false,
        })
        .collect();
    if cleanups.is_empty() && flaky.is_empty() && teardown.is_empty() && other.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Warnings\n");
    for warning in other {
        let _ = writeln!(out, "- ⚠️ {}", text(&warning.message));
    }
    for (flow, step) in cleanups {
        let _ = writeln!(
            out,
            "- ⚠️ cleanup failed: flow {}, step {} (test data may be left behind)",
            code(&flow.name),
            code(&step.name)
        );
        step_detail(out, step, "  ");
    }
    for step in teardown {
        let _ = writeln!(
            out,
            "- ⚠️ teardown failed: step {} (test data may be left behind)",
            code(&step.name)
        );
        step_detail(out, step, "  ");
    }
    for (flow, step) in flaky {
        let _ = writeln!(
            out,
            "- ♻️ flaky: flow {}, step {} passed after {} attempts",
            code(&flow.name),
            code(&step.name),
            step.attempts
        );
    }
    out.push('\n');
}

fn integrity(out: &mut String, report: &Report) {
    if report.integrity.is_empty() && report.deployed_version.is_none() {
        return;
    }
    let _ = writeln!(out, "### Config integrity\n");
    if !report.integrity.is_empty() {
        let _ = writeln!(
            out,
            "| File | Expected (lock) | Local | Served | Result |\n|---|---|---|---|---|"
        );
        for r in &report.integrity {
            let served = r.served.as_deref().map_or("–".to_string(), hash_cell);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {served} | {} |",
                cell_code(&r.file),
                hash_cell(&r.expected),
                hash_cell(&r.actual),
                if r.passed {
                    "✅ match"
                } else {
                    "❌ mismatch"
                }
            );
        }
        out.push('\n');
        let failed: Vec<&IntegrityRecord> = report.integrity.iter().filter(|r| !r.passed).collect();
        for r in &failed {
            let message = r.message.as_deref().unwrap_or("config mismatch");
            let _ = writeln!(out, "- ❌ {}", text(message));
            if let Some(hint) = &r.hint {
                let _ = writeln!(out, "  - fix: {}", text(hint));
            }
        }
        if !failed.is_empty() {
            out.push('\n');
        }
    }
    if let Some(v) = &report.deployed_version {
        let line = match v.message() {
            None => format!("✅ staging runs {}", code(&v.expected)),
            Some(message) => format!("❌ {}", text(&message)),
        };
        let _ = writeln!(out, "Deployed version: {line}\n");
    }
}

fn summary(out: &mut String, report: &Report) {
    let s = &report.summary;
    let ms = |v: Option<u64>| v.map_or("–".to_string(), duration);
    let _ = writeln!(out, "### Summary\n");
    let _ = writeln!(
        out,
        "- flows: {} total, {} passed, {} failed, {} warned, {} skipped, {} flaky",
        s.flows, s.passed, s.failed, s.warned, s.skipped, s.flaky
    );
    let _ = writeln!(
        out,
        "- latency: p50 {}, p95 {}, max {}",
        ms(s.latency_ms.p50),
        ms(s.latency_ms.p95),
        ms(s.latency_ms.max)
    );
    let _ = writeln!(
        out,
        "- duration: {}\n\n<sub>preflight {}, report schema {}</sub>",
        duration(report.duration_ms),
        text(&report.version),
        report.schema
    );
}

/// `812ms` below a second, `3.4s` above.
fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A hash cell: `sha256:<hex>` shortened to 12 hex digits; anything else (`<missing>`) as is.
fn hash_cell(value: &str) -> String {
    match value.strip_prefix("sha256:") {
        Some(hex) if hex.len() > HASH_DIGITS && hex.is_ascii() => {
            cell_code(&format!("{}…", &hex[..HASH_DIGITS]))
        }
        Some(hex) => cell_code(hex),
        None => cell_code(value),
    }
}

/// Plain text, with every Markdown-significant character escaped and on one line.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if crate::report::terminal::hidden(c) => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    out
}

/// Plain text for a table cell (`|` is escaped by [`text`] already).
fn cell(value: &str) -> String {
    text(value)
}

/// An inline code span that holds any text: the fence is longer than any backtick run in it.
fn code(value: &str) -> String {
    let value = one_line(value);
    let fence = "`".repeat(longest_run(&value, '`') + 1);
    let pad = if value.starts_with('`') || value.ends_with('`') || value.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{value}{pad}{fence}")
}

/// A code span inside a table cell: GitHub splits cells on `|` even in code spans, so it is
/// escaped there (and GitHub removes the backslash).
fn cell_code(value: &str) -> String {
    code(&value.replace('|', "\\|"))
}

/// Control characters written as `\u{1b}`: a report read in a terminal or a job summary
/// cannot be rewritten by what staging (or a name) holds.
fn one_line(value: &str) -> String {
    clean(&value.replace(['\r', '\n'], " ")).into_owned()
}

fn longest_run(value: &str, ch: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in value.chars() {
        if c == ch {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// A fenced block (indented under a list item) that no content can close early.
fn fenced(out: &mut String, body: &str, indent: &str) {
    let body = &crate::report::terminal::clean_keeping_breaks(body);
    let fence = "`".repeat((longest_run(body, '`') + 1).max(3));
    let _ = writeln!(out, "{indent}{fence}text");
    for line in body.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
    let _ = writeln!(out, "{indent}{fence}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Phase, WaitRecord};

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(cell_code("a|b"), "`a\\|b`");
        assert_eq!(code("two\nlines"), "`two lines`");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            text("a|b `c` <missing> *d*"),
            "a\\|b \\`c\\` \\<missing\\> \\*d\\*"
        );
    }

    #[test]
    fn fences_are_longer_than_the_content_runs() {
        let mut out = String::new();
        fenced(&mut out, "x ```` y", "");
        assert_eq!(out, "`````text\nx ```` y\n`````\n");
    }

    #[test]
    fn hashes_are_shortened() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(hash_cell(&format!("sha256:{hex}")), "`0123456789ab…`");
        assert_eq!(hash_cell("<missing>"), "`<missing>`");
        assert_eq!(hash_cell("<no lock entry>"), "`<no lock entry>`");
    }

    fn report(verdict: GateVerdict, flows: Vec<FlowRecord>) -> Report {
        let mut r = crate::report::junit::tests::report(flows, verdict);
        r.suite = "gate | `x`".into();
        r.base_url = Some("http://staging".into());
        r.duration_ms = 3412;
        r.summary.latency_ms.p50 = Some(41);
        r.headline = "GATE ABORTED: interrupted".into();
        r
    }

    fn flow(name: &str, outcome: FlowOutcome, steps: Vec<StepRecord>) -> FlowRecord {
        crate::report::junit::tests::flow(name, true, outcome, steps)
    }

    #[test]
    fn wait_line() {
        let mut r = report(GateVerdict::Pass, vec![]);
        r.wait = Some(WaitRecord {
            ready: true,
            polls: 1,
            waited_ms: 5,
            last: None,
        });
        assert!(render(&r).contains("took 3.4s. Staging was ready after 1 poll (5ms).\n"));
        r.wait = Some(WaitRecord {
            ready: false,
            polls: 4,
            waited_ms: 4000,
            last: Some("status 503".into()),
        });
        assert!(
            render(&r).contains(
                " ❌ Staging was **not ready** after 4 polls (4.0s, last: `status 503`).\n"
            ),
            "{}",
            render(&r)
        );
    }

    #[test]
    fn aborted_skipped_and_flaky_runs() {
        let skipped = StepRecord::skipped("a", Phase::Step, "GET", "interrupted");
        let mut flaky = StepRecord {
            outcome: StepOutcome::Passed,
            attempts: 3,
            flaky: true,
            ..StepRecord::skipped("pay | now", Phase::Step, "POST", "")
        };
        flaky.skipped_because = None;
        let md = render(&report(
            GateVerdict::Aborted,
            vec![
                flow("a|b", FlowOutcome::Skipped, vec![skipped]),
                flow("f", FlowOutcome::Passed, vec![flaky]),
            ],
        ));
        assert!(md.starts_with("## ⛔ preflight: GATE ABORTED\n"), "{md}");
        assert!(md.contains("Suite `` gate | `x` ``"), "{md}");
        assert!(
            md.contains("| ⏭️ skipped | a\\|b | `a\\|b.toml` | – | not started: interrupted |"),
            "{md}"
        );
        assert!(
            md.contains("- ♻️ flaky: flow `f`, step `pay | now` passed after 3 attempts"),
            "{md}"
        );
        assert!(md.contains("- latency: p50 41ms, p95 –, max –"), "{md}");
        assert!(md.contains("took 3.4s"), "{md}");
    }

    #[test]
    fn failed_setup_and_failed_cleanup_details() {
        let mut r = report(GateVerdict::Fail, vec![]);
        r.setup = vec![StepRecord {
            outcome: StepOutcome::Failed,
            attempts: 1,
            error: Some("template: unknown name `x`".into()),
            skipped_because: None,
            ..StepRecord::skipped("log in", Phase::Step, "POST", "")
        }];
        let cleanup = StepRecord {
            outcome: StepOutcome::Failed,
            url: Some("http://staging/carts/1".into()),
            status: Some(500),
            latency_ms: Some(3),
            attempts: 1,
            skipped_because: None,
            body_excerpt: Some("boom ``` fence".into()),
            ..StepRecord::skipped("delete", Phase::Cleanup, "DELETE", "")
        };
        r.flows = vec![flow("c", FlowOutcome::Passed, vec![cleanup])];
        let md = render(&r);
        assert!(md.contains("#### ❌ setup: step `log in`"), "{md}");
        assert!(
            md.contains("- request: `POST` (no URL: the request could not be built)"),
            "{md}"
        );
        assert!(
            md.contains("- error: `` template: unknown name `x` ``"),
            "{md}"
        );
        assert!(
            md.contains(
                "- ⚠️ cleanup failed: flow `c`, step `delete` (test data may be left behind)\n  - request: `DELETE http://staging/carts/1`\n  - status: `500` in 3ms\n  - body excerpt:\n\n    ````text\n    boom ``` fence\n    ````\n"
            ),
            "{md}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(812), "812ms");
        assert_eq!(duration(3412), "3.4s");
    }
}
