//! Events the engine emits while it runs; live reporters (progress bars) consume them.

use super::result::{FlowOutcome, StepOutcome};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Which flow an event is about: `None` is the suite's `[[setup]]`.
pub type FlowIndex = Option<usize>;

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        flows: usize,
    },
    FlowStarted {
        flow: usize,
        name: String,
    },
    StepStarted {
        flow: FlowIndex,
        step: String,
    },
    StepFinished {
        flow: FlowIndex,
        step: String,
        outcome: StepOutcome,
        latency: Option<Duration>,
    },
    FlowFinished {
        flow: usize,
        name: String,
        outcome: FlowOutcome,
        duration: Duration,
    },
    RunFinished,
}

/// Where events go; a run without a live reporter drops them.
#[derive(Debug, Clone, Default)]
pub struct EventSink(Option<UnboundedSender<Event>>);

impl EventSink {
    pub fn new(sender: UnboundedSender<Event>) -> Self {
        EventSink(Some(sender))
    }

    pub fn emit(&self, event: Event) {
        if let Some(sender) = &self.0 {
            // A reporter that went away must not stop the run.
            let _ = sender.send(event);
        }
    }
}
