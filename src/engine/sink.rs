//! Finished flows handed on in path order, so that a run's memory does not grow with its
//! size: a [`FlowSink`] (the reports) takes each flow as soon as it and every flow before it
//! are done, and the run result keeps only what the verdict and the reports need afterwards.

use super::result::{FlowResult, FlowTally};
use crate::suite::Flow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Takes every flow of a run once, in path order, as soon as it and every flow before it are
/// done: what it writes of a flow it writes then.
pub trait FlowSink: Send {
    /// One flow, with its index in the plan.
    fn flow(&mut self, index: usize, flow: &FlowResult);
    /// The flows, beyond the notable ones the run keeps anyway, that the sink wants kept
    /// whole in the run result, with their index.
    fn kept(&mut self) -> Vec<(usize, FlowResult)>;
    /// Forgets every flow taken so far: the engine died, and the run's account starts over.
    fn restart(&mut self);
}

/// A sink shared between the caller, which reads what it wrote, and the engine.
#[derive(Clone)]
pub struct SinkHandle(Arc<Mutex<dyn FlowSink>>);

impl SinkHandle {
    pub fn new(sink: Arc<Mutex<dyn FlowSink>>) -> SinkHandle {
        SinkHandle(sink)
    }

    pub fn lock(&self) -> MutexGuard<'_, dyn FlowSink + 'static> {
        // A panic inside the sink leaves what it wrote; its account is restarted by
        // `failed_run` anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkHandle")
    }
}

/// Puts finished flows back in path order and hands them to the sink; keeps every flow when
/// there is none.
pub(super) struct Delivery {
    sink: Option<SinkHandle>,
    /// The index of the next flow to hand on.
    next: usize,
    /// Flows done before an earlier one: normally fewer than the concurrency.
    waiting: BTreeMap<usize, FlowResult>,
    kept: Vec<(usize, FlowResult)>,
    tally: FlowTally,
}

impl Delivery {
    pub(super) fn new(sink: Option<SinkHandle>) -> Delivery {
        Delivery {
            sink,
            next: 0,
            waiting: BTreeMap::new(),
            kept: Vec::new(),
            tally: FlowTally::default(),
        }
    }

    /// Flow `index` is done.
    pub(super) fn finished(&mut self, index: usize, flow: FlowResult) {
        self.waiting.insert(index, flow);
        while let Some(flow) = self.waiting.remove(&self.next) {
            self.hand_on(self.next, flow);
            self.next += 1;
        }
    }

    /// Hands on every flow not yet handed on, in order: the ones done, and `skipped` for the
    /// ones never started.
    pub(super) fn fill(&mut self, flows: &[Flow], skipped: impl Fn(&Flow) -> FlowResult) {
        for (index, plan) in flows.iter().enumerate().skip(self.next) {
            let flow = self.waiting.remove(&index).unwrap_or_else(|| skipped(plan));
            self.hand_on(index, flow);
        }
        self.next = flows.len();
    }

    fn hand_on(&mut self, index: usize, flow: FlowResult) {
        let Some(sink) = &self.sink else {
            self.kept.push((index, flow));
            return;
        };
        self.tally.add(&flow);
        sink.lock().flow(index, &flow);
        if flow.is_notable() {
            self.kept.push((index, flow));
        }
    }

    /// The flows kept, in path order, and the tally of every flow when a sink took them.
    pub(super) fn finish(self) -> (Vec<FlowResult>, Option<FlowTally>) {
        let Some(sink) = self.sink else {
            return (self.kept.into_iter().map(|(_, f)| f).collect(), None);
        };
        let mut kept = self.kept;
        kept.extend(sink.lock().kept());
        kept.sort_by_key(|(index, _)| *index);
        kept.dedup_by_key(|(index, _)| *index);
        (kept.into_iter().map(|(_, f)| f).collect(), Some(self.tally))
    }
}
