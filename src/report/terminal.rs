//! The end-of-run summary: failures in detail, warnings, counts, latency, and the last line.

use super::Report;
use super::document::ExchangeRecord;
use super::{FlowOutcome, GateVerdict, Phase, StepOutcome, StepRecord, WarningKind};
use console::style;
use std::fmt::Write;

/// `text` with every control character (C0, DEL, C1) written as `\u{1b}`: values that came
/// from staging (or from anywhere) can never move the cursor, erase a line or paint a verdict.
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    escape_hidden(text, |_| false)
}

/// [`clean`], keeping line breaks and tabs: for a body shown over several lines.
pub fn clean_keeping_breaks(text: &str) -> std::borrow::Cow<'_, str> {
    escape_hidden(text, |c| c == '\n' || c == '\t')
}

fn escape_hidden(text: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let shown = |c: char| !hidden(c) || keep(c);
    if text.chars().all(shown) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if shown(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A character that is not shown as itself, or changes how the text around it is shown:
/// control characters, and the invisible and bidirectional formatting ones (U+202E can make a
/// name read backwards). Reports write these as `\u{202e}`.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// How much the summary says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Only the last line.
    Quiet,
    Normal,
    /// Every flow and step, passed ones too.
    Verbose,
}

/// Renders the summary. Pure: the caller prints it.
pub fn summary(report: &Report, detail: Detail) -> String {
    let mut out = String::new();
    if detail == Detail::Verbose {
        every_step(&mut out, report);
    }
    if detail != Detail::Quiet {
        failures(&mut out, report);
        integrity_lines(&mut out, report);
        baseline_lines(&mut out, report);
        if report.verdict == GateVerdict::Aborted {
            interrupted(&mut out, report);
        }
        counts(&mut out, report);
    }
    let headline = clean(&report.headline);
    let headline = if report.verdict == GateVerdict::Pass {
        style(headline).green().bold()
    } else {
        style(headline).red().bold()
    };
    let _ = writeln!(out, "{headline}");
    out
}

/// `--verbose`: every flow and step, passed ones too.
fn every_step(out: &mut String, report: &Report) {
    for flow in &report.flows {
        let _ = writeln!(
            out,
            "{} {} ({}ms)",
            outcome_mark(flow.outcome),
            clean(&flow.name),
            flow.duration_ms
        );
        for step in &flow.steps {
            let _ = writeln!(out, "    {}", step_line(step));
            if let Some(exchange) = &step.exchange {
                exchange_lines(out, step, exchange);
            }
        }
    }
}

/// `-vv`: the request and the response of a step. Every value is already in its shown form;
/// control characters are escaped here, since staging wrote much of it.
fn exchange_lines(out: &mut String, step: &StepRecord, exchange: &ExchangeRecord) {
    let url = step.url.as_deref().unwrap_or("");
    let _ = writeln!(out, "      > {} {}", clean(&step.method), clean(url));
    for (name, value) in &exchange.request_headers {
        let _ = writeln!(out, "      > {}: {}", clean(name), clean(value));
    }
    body_lines(out, "      > ", exchange.request_body.as_deref());
    if let Some(status) = step.status {
        let _ = writeln!(out, "      < {status}");
    }
    for (name, value) in &exchange.response_headers {
        let _ = writeln!(out, "      < {}: {}", clean(name), clean(value));
    }
    body_lines(out, "      < ", exchange.response_body.as_deref());
}

/// A body excerpt, one line of it per line, after a blank marker line.
fn body_lines(out: &mut String, prefix: &str, body: Option<&str>) {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "{}", prefix.trim_end());
    for line in body.lines() {
        let _ = writeln!(out, "{prefix}{}", clean(line));
    }
}

/// Failed setup steps, failed flows (warned ones as warnings) and cleanup warnings.
fn failures(out: &mut String, report: &Report) {
    for step in report
        .setup
        .iter()
        .filter(|s| s.outcome == StepOutcome::Failed)
    {
        let _ = writeln!(
            out,
            "{} setup failed at step '{}'",
            style("✗").red().bold(),
            clean(&step.name)
        );
        failure_detail(out, step);
    }
    for flow in &report.flows {
        let Some(step) = flow.failed_step() else {
            continue;
        };
        let label = match flow.outcome {
            FlowOutcome::Warned => style("! warning:").yellow().bold(),
            _ => style("✗").red().bold(),
        };
        let _ = writeln!(
            out,
            "{label} {} ({}) failed at step '{}'",
            clean(&flow.name),
            clean(&flow.file),
            clean(&step.name)
        );
        failure_detail(out, step);
    }
    // Warned flows are shown above with their failure; cleanups are listed here.
    for warning in report.warnings.iter().filter(|w| {
        matches!(
            w.kind,
            WarningKind::CleanupFailed
                | WarningKind::TeardownFailed
                | WarningKind::ContractViolation
                | WarningKind::UndocumentedOperation
        )
    }) {
        let _ = writeln!(
            out,
            "{} {}",
            style("! warning:").yellow().bold(),
            clean(&warning.message)
        );
    }
}

/// What was still running when a signal came.
fn interrupted(out: &mut String, report: &Report) {
    for flow in &report.flows {
        let cut = flow
            .steps
            .iter()
            .find(|s| s.error.as_deref() == Some(crate::engine::INTERRUPTED));
        if let Some(step) = cut {
            let _ = writeln!(
                out,
                "{} interrupted while running '{}' at step '{}'",
                style("!").yellow().bold(),
                clean(&flow.name),
                clean(&step.name)
            );
        }
    }
}

fn counts(out: &mut String, report: &Report) {
    let s = &report.summary;
    let _ = writeln!(
        out,
        "flows: {} total, {} passed, {} failed, {} warned, {} skipped",
        s.flows, s.passed, s.failed, s.warned, s.skipped
    );
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}ms"));
    let _ = writeln!(
        out,
        "latency: p50 {}, p95 {}, max {}",
        ms(s.latency_ms.p50),
        ms(s.latency_ms.p95),
        ms(s.latency_ms.max)
    );
}

fn outcome_mark(outcome: FlowOutcome) -> console::StyledObject<&'static str> {
    match outcome {
        FlowOutcome::Passed => style("✓").green(),
        FlowOutcome::Failed => style("✗").red(),
        FlowOutcome::Warned => style("!").yellow(),
        FlowOutcome::Skipped => style("-").dim(),
    }
}

fn step_line(step: &StepRecord) -> String {
    let mark = match step.outcome {
        StepOutcome::Passed => style("✓").green(),
        StepOutcome::Failed => style("✗").red(),
        StepOutcome::Skipped => style("-").dim(),
    };
    let status = step.status.map_or(String::new(), |s| format!(" {s}"));
    let latency = step.latency_ms.map_or(String::new(), |l| format!(" {l}ms"));
    let phase = if step.phase == Phase::Cleanup {
        "cleanup: "
    } else {
        ""
    };
    format!("{mark} {phase}{}{status}{latency}", clean(&step.name))
}

/// The request, each failed assertion with expected and actual, the status and a body excerpt.
fn failure_detail(out: &mut String, step: &StepRecord) {
    let url = step
        .url
        .as_deref()
        .unwrap_or("(no URL: the request could not be built)");
    let _ = writeln!(out, "    request: {} {}", clean(&step.method), clean(url));
    if let Some(error) = &step.error {
        let _ = writeln!(out, "    error:   {}{}", clean(error), attempts_note(step));
    }
    if let Some(status) = step.status {
        let latency = step
            .latency_ms
            .map_or(String::new(), |l| format!(" in {l}ms"));
        let _ = writeln!(out, "    status:  {status}{latency}");
    }
    for a in step.failed_assertions() {
        let _ = writeln!(
            out,
            "    {} {} {}: expected {}, actual {}",
            style("✗").red(),
            clean(&a.subject),
            clean(&a.op),
            clean(&a.expected.to_string()),
            clean(&a.actual.to_string())
        );
        if let Some(message) = &a.message {
            let _ = writeln!(out, "        {}", clean(message));
        }
    }
    if let Some(body) = step.body_excerpt.as_deref().filter(|b| !b.is_empty()) {
        let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            out,
            "    body:    {}",
            clean(&crate::check::excerpt(&one_line, 200))
        );
    }
}

/// ` (3 attempts)` after the error of a step that was retried, so `timed out after 1s` does
/// not read as one try.
fn attempts_note(step: &StepRecord) -> String {
    if step.attempts > 1 {
        format!(" ({} attempts)", step.attempts)
    } else {
        String::new()
    }
}

/// Readiness, config integrity and deployed version, beside the flows.
/// `--baseline`: what was compared, each regression, the flows and steps new or gone.
fn baseline_lines(out: &mut String, report: &Report) {
    let Some(baseline) = &report.baseline else {
        return;
    };
    let regressions: Vec<_> = baseline.regressions().collect();
    let mark = if regressions.is_empty() {
        style("✓").green()
    } else if baseline.fail_on_latency_regression {
        style("✗").red().bold()
    } else {
        style("!").yellow().bold()
    };
    let _ = writeln!(
        out,
        "{mark} baseline {} ({}, {}): {} compared, {} slower by more than {}% and {}ms",
        clean(&baseline.file),
        clean(&baseline.started_at),
        baseline.verdict.as_str(),
        crate::verdict::counted(baseline.steps.len(), "step"),
        regressions.len(),
        baseline.max_latency_regression_pct,
        baseline.min_latency_regression_ms
    );
    for step in regressions {
        let _ = writeln!(out, "    slower: {}", clean(&step.describe()));
    }
    let lists = [
        ("new flows", baseline.new_flows.clone()),
        ("gone flows", baseline.gone_flows.clone()),
        ("new steps", keys(&baseline.new_steps)),
        ("gone steps", keys(&baseline.gone_steps)),
    ];
    for (what, names) in lists {
        if !names.is_empty() {
            let _ = writeln!(
                out,
                "    {what} since the baseline: {}",
                clean(&names.join(", "))
            );
        }
    }
}

/// `'flow' / 'step'` for each key.
pub fn keys(keys: &[crate::baseline::StepKey]) -> Vec<String> {
    keys.iter()
        .map(|k| format!("'{}' / '{}'", k.flow, k.step))
        .collect()
}

fn integrity_lines(out: &mut String, report: &Report) {
    if let Some(wait) = &report.wait {
        let polls = crate::verdict::counted(wait.polls as usize, "poll");
        if wait.ready {
            let _ = writeln!(
                out,
                "{} staging ready after {polls} ({}ms)",
                style("✓").green(),
                wait.waited_ms
            );
        } else {
            let last = clean(wait.last.as_deref().unwrap_or("no answer"));
            let _ = writeln!(
                out,
                "{} staging not ready after {polls} (last: {last})",
                style("✗").red().bold()
            );
        }
    }
    for r in &report.integrity {
        if r.passed {
            let served = if r.served.is_some() {
                ", served by staging"
            } else {
                ""
            };
            let short: String = r.actual.chars().take(19).collect();
            let _ = writeln!(
                out,
                "{} config {} {}…{served}",
                style("✓").green(),
                clean(&r.file),
                clean(&short)
            );
        } else {
            let message = clean(r.message.as_deref().unwrap_or("config mismatch"));
            let _ = writeln!(out, "{} {message}", style("✗").red().bold());
            if let Some(hint) = &r.hint {
                let _ = writeln!(out, "    fix: {}", clean(hint));
            }
        }
    }
    if let Some(v) = &report.deployed_version {
        match v.message() {
            None => {
                let _ = writeln!(
                    out,
                    "{} staging runs {}",
                    style("✓").green(),
                    clean(&v.expected)
                );
            }
            Some(message) => {
                let _ = writeln!(out, "{} {}", style("✗").red().bold(), clean(&message));
            }
        }
    }
}
