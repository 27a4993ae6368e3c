//! Live progress while the run goes on: indicatif bars on a TTY, one plain line per finished
//! flow otherwise. Consumes engine events only.

use crate::engine::{Event, FlowOutcome};
use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

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
    let mut overall: Option<ProgressBar> = None;
    let mut running: HashMap<usize, ProgressBar> = HashMap::new();
    while let Some(event) = events.recv().await {
        match (mode, event) {
            (Mode::Silent, _) => {}
            (_, Event::RunFinished) => break,
            (Mode::Bars, Event::RunStarted { flows }) => {
                let bar = multi.add(ProgressBar::new(flows as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} [{bar:30}] {pos}/{len} flows {elapsed}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix("preflight");
                overall = Some(bar);
            }
            (Mode::Bars, Event::FlowStarted { flow, name }) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix}: {msg}")
                        .expect("valid template"),
                );
                bar.set_prefix(name);
                bar.enable_steady_tick(Duration::from_millis(120));
                running.insert(flow, bar);
            }
            (
                Mode::Bars,
                Event::StepStarted {
                    flow: Some(flow),
                    step,
                },
            ) => {
                if let Some(bar) = running.get(&flow) {
                    bar.set_message(step);
                }
            }
            (Mode::Bars, Event::FlowFinished { flow, .. }) => {
                if let Some(bar) = running.remove(&flow) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                if let Some(bar) = &overall {
                    bar.inc(1);
                }
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
                eprintln!("{mark} {name} ({}ms)", duration.as_millis());
            }
            _ => {}
        }
    }
    for bar in running.values() {
        bar.finish_and_clear();
    }
    if let Some(bar) = overall {
        bar.finish_and_clear();
    }
}
