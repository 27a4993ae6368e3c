//! The HTML report (`--html FILE`, and `preflight report REPORT.json --html FILE`): one
//! self-contained page for a person: the verdict, a waterfall of every flow on the run's time
//! axis, a latency histogram, the failures in detail, and the wait, integrity, version and
//! warnings panels.
//!
//! Self-contained means inline CSS and inline SVG only: no script, no font, no link, no URL
//! that a browser would fetch; the outcome filter of the waterfall is CSS (radio buttons), so
//! the page reads the same with JavaScript off. Everything from the suite or from staging
//! goes through [`Esc`] (`&<>"'` and control characters), in text and in attributes alike.
//! The markup is XHTML-compatible (every element closed, every attribute quoted), so an XML
//! parser reads it too. A pure function of the [`Report`]: rendering a saved JSON report
//! again gives the same bytes.

use super::{AttemptRecord, FlowOutcome, FlowRecord, GateVerdict, Phase, Report};
use super::{StepOutcome, StepRecord};
use crate::verdict::counted;
use std::fmt::{self, Write};

/// Up to this many flows, the waterfall draws every flow.
const FULL_WATERFALL: usize = super::stream::FULL_LISTING;
/// Above [`FULL_WATERFALL`] flows, how many passed flows are still drawn: the slowest.
const SLOWEST_PASSED: usize = super::stream::SLOWEST_PASSED;
/// How many failures get their details; the others are named.
const DETAILED_FAILURES: usize = 100;
/// How many steps that never began are named under the waterfall.
const LISTED_UNSTARTED: usize = 100;
/// The waterfall's time axis, in SVG units (each row is stretched to the page's width).
const AXIS: f64 = 1000.0;
/// The histogram's bins.
const BINS: u64 = 20;

const CSS: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#1d1d1f}
h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#f5f5f5;padding:8px;margin:4px 0;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse}
.grid td,.grid th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
.grid code{word-break:break-all}
.banner{padding:16px 20px;border-radius:0 0 8px 8px;color:#fff}
.banner.pass{background:#1f7a3a}.banner.fail{background:#b3261e}.banner.aborted{background:#a35f00}
.banner h1{margin:0 0 4px;font-size:28px}.banner .headline{font-weight:bold;margin:0}
.banner dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:12px 0 0}
.banner dd{margin:0}.banner code{color:#fff}
.note{color:#555}
.wf{width:100%;table-layout:fixed}
.wf th{width:260px;text-align:left;font-weight:normal;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding:1px 8px 1px 0}
.wf td{padding:1px 0}
.wf svg{display:block;width:100%;height:16px;background:#f7f7f7}
.wf .special th{font-style:italic}
.axis{position:relative;height:18px;font-size:11px;color:#666}
.axis span{position:absolute;top:0;border-left:1px solid #aaa;padding-left:2px;white-space:nowrap}
.passed{fill:#2e9e4f;background:#2e9e4f}.failed{fill:#d33c30;background:#d33c30}
.skipped{fill:#999;background:#999}.retry{fill:#f0a39c;background:#f0a39c}.poll{fill:#9db4c9;background:#9db4c9}
rect.cleanup{fill-opacity:.3;stroke:#222;stroke-width:1;stroke-dasharray:3 2;vector-effect:non-scaling-stroke}
.sw{display:inline-block;width:12px;height:10px;margin:0 4px 0 10px}.sw.cleanup{background:#fff;border:1px dashed #222}
.o-failed th::before{content:'\\2717  ';color:#d33c30}.o-warned th::before{content:'\\26a0  ';color:#a35f00}
.filter~label{margin-right:10px}
#show-failed:checked~table tr.o-passed,#show-failed:checked~table tr.o-skipped{display:none}
#show-passed:checked~table tr.o-failed,#show-passed:checked~table tr.o-warned,#show-passed:checked~table tr.o-skipped{display:none}
.hist{width:100%;max-width:760px;height:auto}.hist rect{fill:#6b8fb5}.hist rect.base{fill:none;stroke:#222;stroke-dasharray:4 2}
rect.base{fill:#222}.hist line{stroke:#b3261e;stroke-width:1.5}
.hist text{font-size:11px;fill:#333}
.failure{border-left:4px solid #d33c30;padding:2px 12px;margin:12px 0}.failure.warn{border-color:#a35f00}
.failure h3{margin:6px 0}
.failure dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:4px 0}.failure dd{margin:0}
";

/// Renders the report as one self-contained HTML page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>preflight: {} – {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        heading(report.verdict),
        Esc(&report.suite)
    );
    banner(&mut out, report);
    waterfall(&mut out, report);
    histogram(&mut out, report);
    baseline(&mut out, report);
    failures(&mut out, report);
    panels(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

/// Text from the report, escaped for HTML text and quoted attributes alike: `&<>"'`, and
/// control characters written as `\u{1b}` (they are no XML, and a page is no place for them).
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\n' | '\t' => f.write_char(c)?,
                c if crate::report::terminal::hidden(c) => write!(f, "{}", c.escape_unicode())?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn heading(verdict: GateVerdict) -> &'static str {
    match verdict {
        GateVerdict::Pass => "GATE PASSED",
        GateVerdict::Fail => "GATE FAILED",
        GateVerdict::Aborted => "GATE ABORTED",
    }
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn banner(out: &mut String, report: &Report) {
    let _ = write!(
        out,
        "<header class=\"banner {}\">\n<h1>{}</h1>\n<p class=\"headline\">{}</p>\n",
        report.verdict.as_str(),
        heading(report.verdict),
        Esc(&report.headline)
    );
    if !report.reasons.is_empty() {
        out.push_str("<ul class=\"reasons\">\n");
        for reason in &report.reasons {
            let _ = writeln!(out, "<li>{}</li>", Esc(reason));
        }
        out.push_str("</ul>\n");
    }
    let s = &report.summary;
    let ms = |v: Option<u64>| v.map_or("–".to_string(), duration);
    let base = report.base_url.as_deref().unwrap_or("–");
    let _ = write!(
        out,
        "<dl>\n<dt>Suite</dt><dd>{}</dd>\n<dt>Base URL</dt><dd><code>{}</code></dd>\n\
         <dt>preflight</dt><dd>{}</dd>\n<dt>Started</dt><dd>{}</dd>\n<dt>Duration</dt><dd>{}</dd>\n\
         <dt>Flows</dt><dd>{} total: {} passed, {} failed, {} warned, {} skipped, {} flaky</dd>\n\
         <dt>Latency</dt><dd>p50 {}, p95 {}, max {}</dd>\n</dl>\n</header>\n",
        Esc(&report.suite),
        Esc(base),
        Esc(&report.version),
        Esc(&report.started_at),
        duration(report.duration_ms),
        s.flows,
        s.passed,
        s.failed,
        s.warned,
        s.skipped,
        s.flaky,
        ms(s.latency_ms.p50),
        ms(s.latency_ms.p95),
        ms(s.latency_ms.max),
    );
}

/// Which flows the waterfall draws. Up to [`FULL_WATERFALL`] flows: all of them. Above: every
/// flow that failed, warned, has a failed cleanup or a flaky step, plus the
/// [`SLOWEST_PASSED`] slowest passed flows (by duration); skipped flows (nothing to draw) are
/// named in the list of steps that never began. Rows keep the report's order. The second
/// value counts the passed flows left out. A report whose flows were streamed holds exactly
/// these (and the skipped ones), and draws the same.
fn drawn(report: &Report) -> (Vec<&FlowRecord>, usize) {
    let flows = &report.flows;
    if report.summary.flows <= FULL_WATERFALL {
        return (flows.iter().collect(), 0);
    }
    // Skipped flows never began: nothing to draw.
    let notable = |f: &FlowRecord| !f.is_plain_pass() && f.outcome != FlowOutcome::Skipped;
    let mut passed: Vec<usize> = (0..flows.len())
        .filter(|&i| flows[i].is_plain_pass())
        .collect();
    passed.sort_by_key(|&i| std::cmp::Reverse(flows[i].duration_ms));
    // Counted from the summary: a streamed report holds only the slowest passed flows.
    let not_plain = flows
        .iter()
        .filter(|f| f.outcome == FlowOutcome::Passed && !f.is_plain_pass())
        .count();
    let plain = report.summary.passed.saturating_sub(not_plain);
    let left_out = plain.saturating_sub(SLOWEST_PASSED);
    passed.truncate(SLOWEST_PASSED);
    let mut slowest = vec![false; flows.len()];
    passed.iter().for_each(|&i| slowest[i] = true);
    let rows = (0..flows.len())
        .filter(|&i| notable(&flows[i]) || slowest[i])
        .map(|i| &flows[i])
        .collect();
    (rows, left_out)
}

fn waterfall(out: &mut String, report: &Report) {
    let (rows, left_out) = drawn(report);
    let span = time_span(report);
    out.push_str("<section id=\"waterfall\">\n<h2>Waterfall</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">Every flow on one time axis, 0 to {}: each step a bar from when it \
         began for as long as it took.\
         <span class=\"sw passed\"></span>passed<span class=\"sw failed\"></span>failed\
         <span class=\"sw retry\"></span>earlier attempt<span class=\"sw poll\"></span>poll\
         <span class=\"sw cleanup\"></span>cleanup (outlined)</p>",
        duration(span)
    );
    // The outcome filter is CSS: the radio buttons must be the table's preceding siblings.
    out.push_str(
        "<span class=\"filter\">Show: </span>\
         <input type=\"radio\" name=\"show\" id=\"show-all\" checked=\"checked\"/><label for=\"show-all\">all</label>\
         <input type=\"radio\" name=\"show\" id=\"show-failed\"/><label for=\"show-failed\">failed and warned</label>\
         <input type=\"radio\" name=\"show\" id=\"show-passed\"/><label for=\"show-passed\">passed</label>\n",
    );
    out.push_str("<table class=\"wf\">\n<thead><tr><th>flow</th><td class=\"axis\">");
    for tick in ticks(span) {
        let _ = write!(
            out,
            "<span style=\"left:{:.1}%\">{}</span>",
            tick as f64 * 100.0 / span as f64,
            duration(tick)
        );
    }
    out.push_str("</td></tr></thead>\n<tbody>\n");
    if !report.setup.is_empty() {
        special_row(out, "setup", &report.setup, span);
    }
    for flow in &rows {
        let mut name = Esc(&flow.name).to_string();
        if !flow.critical {
            name.push_str(" (non-critical)");
        }
        let _ = write!(
            out,
            "<tr class=\"o-{}\"><th title=\"{name}\">{name}</th><td>",
            flow_outcome(flow.outcome)
        );
        let before = |step: &str, nth: usize| baseline_ms(report, &flow.name, step, nth);
        bars(out, &flow.steps, span, &before);
        out.push_str("</td></tr>\n");
    }
    if !report.teardown.is_empty() {
        special_row(out, "teardown", &report.teardown, span);
    }
    out.push_str("</tbody>\n</table>\n");
    if left_out > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more passed flows not drawn: see the JSON report.</p>",
            left_out
        );
    }
    unstarted(out, report, &rows);
    out.push_str("</section>\n");
}

/// The axis runs to the run's duration, or further if a step ended later (a merged report's
/// duration is its longest shard's).
fn time_span(report: &Report) -> u64 {
    let ends = all_steps(report).filter_map(|s| {
        let start = s.last_attempt_started_ms.or(s.started_ms)?;
        Some(start.saturating_add(s.latency_ms.unwrap_or(0)))
    });
    let streamed = report.streamed.as_ref().map_or(0, |s| s.last_step_end_ms);
    ends.fold(report.duration_ms.max(streamed), u64::max).max(1)
}

fn all_steps(report: &Report) -> impl Iterator<Item = &StepRecord> {
    report
        .setup
        .iter()
        .chain(report.flows.iter().flat_map(|f| &f.steps))
        .chain(&report.teardown)
}

/// Round ticks (1, 2 or 5 times a power of ten ms), about five of them.
fn ticks(span: u64) -> Vec<u64> {
    let raw = (span / 5).max(1);
    let mut magnitude = 1;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    let step = [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10);
    (0..=span / step).map(|i| i * step).collect()
}

fn flow_outcome(outcome: FlowOutcome) -> &'static str {
    match outcome {
        FlowOutcome::Passed => "passed",
        FlowOutcome::Failed => "failed",
        FlowOutcome::Warned => "warned",
        FlowOutcome::Skipped => "skipped",
    }
}

fn step_outcome(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Passed => "passed",
        StepOutcome::Failed => "failed",
        StepOutcome::Skipped => "skipped",
    }
}

/// The row of `[[setup]]` or `[[teardown]]`.
fn special_row(out: &mut String, name: &str, steps: &[StepRecord], span: u64) {
    let failed = steps.iter().any(|s| s.outcome == StepOutcome::Failed);
    let class = if failed { "o-failed" } else { "o-passed" };
    let _ = write!(out, "<tr class=\"special {class}\"><th>{name}</th><td>");
    bars(out, steps, span, &|_, _| None);
    out.push_str("</td></tr>\n");
}

/// How long `step` of `flow` took in the `--baseline` run, when it was compared.
fn baseline_ms(report: &Report, flow: &str, step: &str, nth: usize) -> Option<u64> {
    let compared = &report.baseline.as_ref()?.steps;
    compared
        .iter()
        .find(|c| c.flow == flow && c.step == step && c.occurrence == nth)
        .map(|c| c.baseline_ms)
}

/// One SVG row: each step that began is a bar for its last attempt, and each earlier attempt
/// (a retry, or a poll of a `poll` step) a thinner segment at its own start. The last
/// attempt's length is the step's `latency_ms` less its earlier attempts' (a step's latency
/// adds up all its attempts). Cleanups are outlined. Each bar has a `<title>` (on hover).
/// With a baseline, a thin dark line under a step's bar is as long as the step took then.
fn bars(
    out: &mut String,
    steps: &[StepRecord],
    span: u64,
    baseline: &dyn Fn(&str, usize) -> Option<u64>,
) {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {AXIS} 16\" preserveAspectRatio=\"none\" role=\"img\">"
    );
    let x = |ms: u64| ms as f64 * AXIS / span as f64;
    let width = |ms: u64| (ms as f64 * AXIS / span as f64).max(1.5);
    for step in steps {
        // Counted for every step, drawn or not: the baseline matches steps by occurrence.
        let nth = match step.phase {
            Phase::Step => {
                let nth = seen.entry(step.name.as_str()).or_default();
                *nth += 1;
                Some(*nth - 1)
            }
            Phase::Cleanup => None,
        };
        let Some(started) = step.started_ms else {
            continue;
        };
        let cleanup = if step.phase == Phase::Cleanup {
            " cleanup"
        } else {
            ""
        };
        let kind = if step.phase == Phase::Cleanup {
            "cleanup "
        } else {
            ""
        };
        for (i, attempt) in step.earlier_attempts.iter().enumerate() {
            let Some(at) = attempt.started_ms else {
                continue;
            };
            let latency = attempt.latency_ms.unwrap_or(0);
            let (class, what) = if step.polled {
                ("poll", "poll")
            } else {
                ("retry", "attempt")
            };
            let _ = write!(
                out,
                "<rect class=\"{class}{cleanup}\" x=\"{:.1}\" y=\"4\" width=\"{:.1}\" height=\"8\">\
                 <title>{kind}{}: {what} {} of {}, {}, {}</title></rect>",
                x(at),
                width(latency),
                Esc(&step.name),
                i + 1,
                step.attempts,
                Esc(&attempt_result(attempt)),
                duration(latency)
            );
        }
        let earlier: u64 = step
            .earlier_attempts
            .iter()
            .filter_map(|a| a.latency_ms)
            .sum();
        let latency = step.latency_ms.unwrap_or(0).saturating_sub(earlier);
        let result = match (step.status, &step.error) {
            (_, Some(error)) => error.clone(),
            (Some(status), None) => format!("status {status}"),
            (None, None) => "no response".to_string(),
        };
        let _ = write!(
            out,
            "<rect class=\"{}{cleanup}\" x=\"{:.1}\" y=\"1\" width=\"{:.1}\" height=\"14\">\
             <title>{kind}{}: {}, {}, {} (attempt {} of {})</title></rect>",
            step_outcome(step.outcome),
            x(step.last_attempt_started_ms.unwrap_or(started)),
            width(latency),
            Esc(&step.name),
            step_outcome(step.outcome),
            Esc(&result),
            duration(step.latency_ms.unwrap_or(0)),
            step.attempts.max(1),
            step.attempts.max(1)
        );
        if let Some(before) = nth.and_then(|nth| baseline(&step.name, nth)) {
            let _ = write!(
                out,
                "<rect class=\"base\" x=\"{:.1}\" y=\"13\" width=\"{:.1}\" height=\"3\">\
                 <title>{}: {} in the baseline run, {} now</title></rect>",
                x(started),
                width(before),
                Esc(&step.name),
                duration(before),
                duration(step.latency_ms.unwrap_or(0))
            );
        }
    }
    out.push_str("</svg>");
}

fn attempt_result(attempt: &AttemptRecord) -> String {
    match (&attempt.error, attempt.status) {
        (Some(error), _) => error.clone(),
        (None, Some(status)) => format!("status {status}"),
        (None, None) => "no response".to_string(),
    }
}

/// The steps that never began (not drawn), and the flows not drawn that never started.
fn unstarted(out: &mut String, report: &Report, rows: &[&FlowRecord]) {
    let mut items: Vec<String> = Vec::new();
    let mut note = |place: &str, step: &StepRecord| {
        if step.started_ms.is_none() {
            let why = step.skipped_because.as_deref().unwrap_or("never began");
            items.push(format!(
                "{place} › {}: {}",
                Esc(&step.name),
                Esc(if why.is_empty() { "never began" } else { why })
            ));
        }
    };
    report.setup.iter().for_each(|s| note("setup", s));
    for flow in rows {
        let place = Esc(&flow.name).to_string();
        flow.steps.iter().for_each(|s| note(&place, s));
    }
    report.teardown.iter().for_each(|s| note("teardown", s));
    let drawn: std::collections::HashSet<*const FlowRecord> =
        rows.iter().map(|r| *r as *const FlowRecord).collect();
    let hidden_skipped = report
        .flows
        .iter()
        .filter(|f| f.outcome == FlowOutcome::Skipped)
        .filter(|f| !drawn.contains(&(*f as *const FlowRecord)));
    for flow in hidden_skipped {
        items.push(format!("{}: not started", Esc(&flow.name)));
    }
    if items.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<details><summary>Not drawn: {} that never began</summary>\n<ul>",
        counted(items.len(), "step or flow")
    );
    for item in items.iter().take(LISTED_UNSTARTED) {
        let _ = writeln!(out, "<li>{item}</li>");
    }
    if items.len() > LISTED_UNSTARTED {
        let _ = writeln!(
            out,
            "<li>{} more: see the JSON report</li>",
            items.len() - LISTED_UNSTARTED
        );
    }
    out.push_str("</ul>\n</details>\n");
}

/// A histogram of every step's latency (setup, flow steps and cleanups: the latencies the
/// summary's p50 and p95 are of), with p50 and p95 marked.
fn histogram(out: &mut String, report: &Report) {
    out.push_str("<section id=\"latency\">\n<h2>Latency</h2>\n");
    // Each distinct latency with how many steps took it.
    let latencies: Vec<(u64, u64)> = match &report.streamed {
        Some(streamed) => {
            let mut all = streamed.latencies.clone();
            report
                .setup
                .iter()
                .filter_map(|s| s.latency_ms)
                .for_each(|ms| all.add(ms));
            all.values().collect()
        }
        None => report
            .setup
            .iter()
            .chain(report.flows.iter().flat_map(|f| &f.steps))
            .filter_map(|s| s.latency_ms)
            .map(|ms| (ms, 1))
            .collect(),
    };
    // The baseline's latencies of the steps compared, drawn outlined over this run's.
    let before: Vec<u64> = report
        .baseline
        .iter()
        .flat_map(|b| b.steps.iter().map(|c| c.baseline_ms))
        .collect();
    let highest_latency = latencies.iter().map(|(ms, _)| *ms).max();
    let Some(max) = highest_latency
        .into_iter()
        .chain(before.iter().copied())
        .max()
    else {
        out.push_str("<p class=\"note\">No step got as far as a response.</p>\n</section>\n");
        return;
    };
    let bin = max.saturating_add(1).div_ceil(BINS).max(1);
    let mut counts = [0usize; BINS as usize];
    for (l, n) in &latencies {
        counts[((l / bin) as usize).min(BINS as usize - 1)] += *n as usize;
    }
    let mut before_counts = [0usize; BINS as usize];
    for l in &before {
        before_counts[((l / bin) as usize).min(BINS as usize - 1)] += 1;
    }
    let highest = counts
        .iter()
        .chain(&before_counts)
        .max()
        .copied()
        .unwrap_or(1)
        .max(1);
    let (left, top, w, h) = (40.0, 20.0, 700.0, 150.0);
    // Saturating: a latency read back from a report (`report`, `merge`, `--baseline`) can be
    // any u64, up to u64::MAX.
    let span = bin.saturating_mul(BINS);
    let x = |ms: f64| left + ms * w / span as f64;
    let _ = write!(
        out,
        "<svg class=\"hist\" viewBox=\"0 0 760 200\" role=\"img\">\
         <title>Step latency: {} steps</title>",
        latencies.iter().map(|(_, n)| n).sum::<u64>()
    );
    for (i, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let bar = *count as f64 * h / highest as f64;
        let from = (i as u64).saturating_mul(bin);
        let range = if bin == 1 {
            duration(from)
        } else {
            format!(
                "{}–{}",
                duration(from),
                duration(from.saturating_add(bin - 1))
            )
        };
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\">\
             <title>{range}: {}</title></rect>",
            x(from as f64) + 1.0,
            top + h - bar,
            w / BINS as f64 - 2.0,
            counted(*count, "step")
        );
    }
    for (i, count) in before_counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let bar = *count as f64 * h / highest as f64;
        let _ = write!(
            out,
            "<rect class=\"base\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\">\
             <title>baseline run: {}</title></rect>",
            x((i as u64).saturating_mul(bin) as f64) + 1.0,
            top + h - bar,
            w / BINS as f64 - 2.0,
            counted(*count, "step")
        );
    }
    let _ = write!(
        out,
        "<text x=\"{left}\" y=\"190\">0ms</text>\
         <text x=\"{}\" y=\"190\" text-anchor=\"end\">{}</text>\
         <text x=\"4\" y=\"{}\">{highest}</text>",
        left + w,
        duration(span),
        top + 10.0
    );
    let p = &report.summary.latency_ms;
    for (label, value, dy) in [("p50", p.p50, 12.0), ("p95", p.p95, 24.0)] {
        let Some(value) = value else { continue };
        let at = x(value as f64 + 0.5);
        let _ = write!(
            out,
            "<line x1=\"{at:.1}\" y1=\"{top}\" x2=\"{at:.1}\" y2=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{dy}\">{label} {}</text>",
            top + h,
            at + 3.0,
            duration(value)
        );
    }
    out.push_str("</svg>\n</section>\n");
}

/// `--baseline`: what was compared, each regression beside its baseline, the flows and
/// steps new or gone.
fn baseline(out: &mut String, report: &Report) {
    let Some(baseline) = &report.baseline else {
        return;
    };
    let regressions: Vec<_> = baseline.regressions().collect();
    let _ = writeln!(
        out,
        "<section id=\"baseline\">\n<h2>Against the baseline</h2>\n<p>Baseline <code>{}</code> \
         ({}, {}): {} compared, {} slower by more than {}% and {}{}.</p>",
        Esc(&baseline.file),
        Esc(&baseline.started_at),
        baseline.verdict.as_str(),
        counted(baseline.steps.len(), "step"),
        regressions.len(),
        baseline.max_latency_regression_pct,
        duration(baseline.min_latency_regression_ms),
        if baseline.fail_on_latency_regression {
            " (each fails the gate)"
        } else {
            " (warnings)"
        }
    );
    if !regressions.is_empty() {
        out.push_str(
            "<table class=\"grid\"><thead><tr><th>flow</th><th>step</th><th>baseline</th>\
             <th>now</th><th>change</th></tr></thead><tbody>\n",
        );
        for c in regressions {
            let change = c.change_pct.map_or("–".to_string(), |p| format!("{p:+}%"));
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{change}</td></tr>",
                Esc(&c.flow),
                Esc(&c.step),
                duration(c.baseline_ms),
                duration(c.now_ms)
            );
        }
        out.push_str("</tbody></table>\n");
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
    for (what, names) in lists.iter().filter(|(_, n)| !n.is_empty()) {
        let _ = writeln!(
            out,
            "<p>{what} since the baseline: {}</p>",
            Esc(&names.join(", "))
        );
    }
    out.push_str("</section>\n");
}

/// What failed, with the details to act on: failed setup steps, the failing step of each
/// failed or warned flow, failed cleanups and teardown steps. The first
/// [`DETAILED_FAILURES`] get their details, the others are named.
fn failures(out: &mut String, report: &Report) {
    let mut found: Vec<(String, bool, Option<&StepRecord>)> = Vec::new();
    for step in report
        .setup
        .iter()
        .filter(|s| s.outcome == StepOutcome::Failed)
    {
        found.push((
            format!("setup: step {}", Esc(&step.name)),
            false,
            Some(step),
        ));
    }
    for flow in &report.flows {
        let warn = flow.outcome == FlowOutcome::Warned;
        let critical = if flow.critical { "" } else { " (non-critical)" };
        let name = format!("{}{critical}", Esc(&flow.name));
        if matches!(flow.outcome, FlowOutcome::Failed | FlowOutcome::Warned) {
            let step = flow.failed_step();
            let title = match step {
                Some(step) => format!("{name}: step {}", Esc(&step.name)),
                None => name.clone(),
            };
            found.push((title, warn, step));
        }
        for step in flow.failed_cleanups() {
            let title = format!("{name}: cleanup {}", Esc(&step.name));
            found.push((title, true, Some(step)));
        }
    }
    for step in report
        .teardown
        .iter()
        .filter(|s| s.outcome == StepOutcome::Failed)
    {
        found.push((
            format!("teardown: step {}", Esc(&step.name)),
            true,
            Some(step),
        ));
    }
    if found.is_empty() {
        return;
    }
    out.push_str("<section id=\"failures\">\n<h2>Failures</h2>\n");
    for (title, warn, step) in found.iter().take(DETAILED_FAILURES) {
        let class = if *warn { "failure warn" } else { "failure" };
        let mark = if *warn { "⚠" } else { "✗" };
        let _ = writeln!(out, "<article class=\"{class}\">\n<h3>{mark} {title}</h3>");
        match step {
            Some(step) => step_detail(out, step),
            None => out.push_str("<p>No step failed: the flow did not finish.</p>\n"),
        }
        out.push_str("</article>\n");
    }
    if found.len() > DETAILED_FAILURES {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more failures, not detailed here: see the JSON report.</p>\n<ul>",
            found.len() - DETAILED_FAILURES
        );
        for (title, _, _) in &found[DETAILED_FAILURES..] {
            let _ = writeln!(out, "<li>{title}</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// The request (method, URL, headers), status, error, each failed assertion with expected and
/// actual as JSON, and the body excerpt.
fn step_detail(out: &mut String, step: &StepRecord) {
    let url = step
        .url
        .as_deref()
        .unwrap_or("(no URL: the request could not be built)");
    let _ = write!(
        out,
        "<dl>\n<dt>request</dt><dd><code>{} {}</code></dd>\n",
        Esc(&step.method),
        Esc(url)
    );
    if let Some(status) = step.status {
        let latency = step
            .latency_ms
            .map_or(String::new(), |l| format!(" in {}", duration(l)));
        let _ = writeln!(out, "<dt>status</dt><dd>{status}{latency}</dd>");
    }
    if step.attempts > 1 {
        let _ = writeln!(out, "<dt>attempts</dt><dd>{}</dd>", step.attempts);
    }
    if let Some(error) = &step.error {
        let _ = writeln!(out, "<dt>error</dt><dd><code>{}</code></dd>", Esc(error));
    }
    out.push_str("</dl>\n");
    if !step.request_headers.is_empty() {
        out.push_str("<table class=\"grid\"><thead><tr><th>request header</th><th>value</th></tr></thead><tbody>\n");
        for (name, value) in &step.request_headers {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
                Esc(name),
                Esc(value)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let failed: Vec<_> = step.failed_assertions().collect();
    if !failed.is_empty() {
        out.push_str("<table class=\"grid\"><thead><tr><th>assertion</th><th>expected</th><th>actual</th></tr></thead><tbody>\n");
        for a in failed {
            let json = |v: &serde_json::Value| {
                serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
            };
            let message = a
                .message
                .as_deref()
                .map_or(String::new(), |m| format!("<br/>{}", Esc(m)));
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code> {}{message}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                Esc(&a.subject),
                Esc(&a.op),
                Esc(&json(&a.expected)),
                Esc(&json(&a.actual))
            );
        }
        out.push_str("</tbody></table>\n");
    }
    if let Some(body) = step.body_excerpt.as_deref().filter(|b| !b.is_empty()) {
        let _ = writeln!(out, "<p>body excerpt:</p>\n<pre>{}</pre>", Esc(body));
    }
}

/// `[wait]`, integrity, the deployed version and the warnings.
fn panels(out: &mut String, report: &Report) {
    if let Some(wait) = &report.wait {
        let polls = counted(wait.polls as usize, "poll");
        let line = if wait.ready {
            format!("✓ ready after {polls} ({})", duration(wait.waited_ms))
        } else {
            let last = wait
                .last
                .as_deref()
                .map_or(String::new(), |l| format!(", last: {}", Esc(l)));
            format!(
                "✗ not ready after {polls} ({}{last})",
                duration(wait.waited_ms)
            )
        };
        let _ = writeln!(
            out,
            "<section id=\"wait\">\n<h2>Readiness ([wait])</h2>\n<p>{line}</p>\n</section>"
        );
    }
    if !report.integrity.is_empty() {
        out.push_str(
            "<section id=\"integrity\">\n<h2>Config integrity</h2>\n<table class=\"grid\"><thead><tr>\
             <th>file</th><th>expected (lock)</th><th>local</th><th>served</th><th>result</th>\
             </tr></thead><tbody>\n",
        );
        for r in &report.integrity {
            let mut result = if r.passed {
                "✓ match"
            } else {
                "✗ mismatch"
            }
            .to_string();
            for extra in [&r.message, &r.hint].into_iter().flatten() {
                let _ = write!(result, "<br/>{}", Esc(extra));
            }
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td>\
                 <td><code>{}</code></td><td>{result}</td></tr>",
                Esc(&r.file),
                Esc(&r.expected),
                Esc(&r.actual),
                Esc(r.served.as_deref().unwrap_or("–")),
            );
        }
        out.push_str("</tbody></table>\n</section>\n");
    }
    if let Some(v) = &report.deployed_version {
        let line = match v.message() {
            None => format!("✓ staging runs <code>{}</code>", Esc(&v.expected)),
            Some(message) => format!("✗ {}", Esc(&message)),
        };
        let _ = writeln!(
            out,
            "<section id=\"version\">\n<h2>Deployed version</h2>\n<p>{line}</p>\n</section>"
        );
    }
    if !report.warnings.is_empty() {
        out.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
        for w in &report.warnings {
            let _ = writeln!(out, "<li>⚠ {}</li>", Esc(&w.message));
        }
        out.push_str("</ul>\n</section>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::{Esc, ticks};

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            Esc("<a href='x'>\"&\u{1b}[2J</a>").to_string(),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;\\u{1b}[2J&lt;/a&gt;"
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(1000), vec![0, 200, 400, 600, 800, 1000]);
        assert_eq!(ticks(3040), vec![0, 1000, 2000, 3000]);
        assert_eq!(ticks(1), vec![0, 1]);
    }
}
