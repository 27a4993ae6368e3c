//! Live progress while the run goes on: indicatif bars on a TTY, one plain line per finished
//! flow otherwise. Consumes engine events only.
//!
//! Drawing must never slow the run: the bars redraw at most 10 times a second, one ticker
//! animates the overall bar, and only the first few running flows get a line of their own.

use super::terminal::clean;
use crate::engine::{Event, FlowOutcome};
use crate::say::err;
use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Running flows shown with their current step; the others are counted on the overall bar.
const FLOW_LINES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on stderr (a TTY).
    Bars,
    /// One line per finished flow on stderr.
    Lines,
    /// Nothing.
    Silent,
}

/// Consumes events until the run ends.
pub async fn show(mut events: UnboundedReceiver<Event>, mode: Mode) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let overall = ProgressBar::hidden();
    let mut lines: HashMap<usize, ProgressBar> = HashMap::new();
    let mut running = 0usize;
    while let Some(event) = events.recv().await {
        match (mode, event) {
            (Mode::Silent, _) => {}
            (_, Event::RunFinished) => break,
            (Mode::Bars, Event::RunStarted { flows }) => {
                overall.set_length(flows as u64);
                overall.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} flows {elapsed} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                overall.set_prefix("preflight");
                multi.add(overall.clone());
                overall.enable_steady_tick(Duration::from_millis(100));
            }
            (Mode::Bars, Event::FlowStarted { flow, name }) => {
                running += 1;
                if lines.len() < FLOW_LINES {
                    let line = multi.add(ProgressBar::new_spinner());
                    line.set_style(
                        ProgressStyle::with_template("  {prefix}: {msg}").expect("valid template"),
                    );
                    line.set_prefix(clean(&name).into_owned());
                    lines.insert(flow, line);
                }
                show_hidden(&overall, running, lines.len());
            }
            (
                Mode::Bars,
                Event::StepStarted {
                    flow: Some(flow),
                    step,
                },
            ) => {
                if let Some(line) = lines.get(&flow) {
                    line.set_message(clean(&step).into_owned());
                }
            }
            (Mode::Bars, Event::FlowFinished { flow, .. }) => {
                running = running.saturating_sub(1);
                if let Some(line) = lines.remove(&flow) {
                    line.finish_and_clear();
                    multi.remove(&line);
                }
                overall.inc(1);
                show_hidden(&overall, running, lines.len());
            }
            (
                Mode::Lines,
                Event::FlowFinished {
                    name,
                    outcome,
                    duration,
                    ..
                },
            ) => {
                let mark = match outcome {
                    FlowOutcome::Passed => style("PASS").green(),
                    FlowOutcome::Failed => style("FAIL").red(),
                    FlowOutcome::Warned => style("WARN").yellow(),
                    FlowOutcome::Skipped => style("SKIP").dim(),
                };
                err!("{mark} {} ({}ms)", clean(&name), duration.as_millis());
            }
            _ => {}
        }
    }
    for line in lines.values() {
        line.finish_and_clear();
    }
    overall.finish_and_clear();
}

/// `+12 more running` on the overall bar for the flows without a line.
fn show_hidden(overall: &ProgressBar, running: usize, shown: usize) {
    let hidden = running.saturating_sub(shown);
    overall.set_message(if hidden > 0 {
        format!("+{hidden} more running")
    } else {
        String::new()
    });
}
