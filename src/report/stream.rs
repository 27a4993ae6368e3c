//! The reports' side of a run whose flows are streamed: each finished flow is masked and
//! written to a [`Spool`] (the staged JSON report itself, after its head, or a hidden
//! temporary file) at once, and only a bounded digest is kept for the reports rendered at the
//! end: the engine keeps every flow that did not simply pass, and [`ReportStream`] adds the
//! slowest passed flows the HTML waterfall draws.

use super::json;
use super::{FlowRecord, Masked};
use crate::engine::{FlowResult, FlowSink};
use crate::redact::Redactor;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Above this many flows, the HTML waterfall and the Markdown table leave out flows that
/// simply passed (all but the slowest [`SLOWEST_PASSED`] for the waterfall).
pub const FULL_LISTING: usize = 200;
/// The passed flows the waterfall of a large run still draws, slowest first.
pub const SLOWEST_PASSED: usize = 50;

/// Written flows are flushed to the file once this much is pending, or once a second.
const FLUSH_BYTES: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A hidden spool that could not be made. It names the temporary folder (TMPDIR's): where
/// it surfaces, as why a report could not be written, the error alone would seem to be the
/// report's own.
#[derive(Debug, thiserror::Error)]
#[error("cannot create a temporary file in {}{}: {source}", .folder.display(), tmpdir_said())]
pub struct HiddenSpoolError {
    folder: PathBuf,
    #[source]
    source: io::Error,
}

/// ` (TMPDIR)` when that variable chose the folder.
fn tmpdir_said() -> &'static str {
    if std::env::var_os("TMPDIR").is_some() {
        " (TMPDIR)"
    } else {
        ""
    }
}

impl From<HiddenSpoolError> for io::Error {
    fn from(e: HiddenSpoolError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// The flows of a run as the JSON report writes them (the elements of its `flows` array), in
/// a file: the staged JSON report, or a temporary one that is unlinked at once.
pub struct Spool {
    file: File,
    /// Where the elements begin (just after the `[`).
    start: u64,
    /// The end of the elements written to the file so far.
    end: u64,
    pending: Vec<u8>,
    flows: usize,
    flushed_at: Instant,
    /// The first write that failed: every report made from the spool fails with it.
    failed: Option<(io::ErrorKind, String)>,
}

impl Spool {
    /// A spool inside `file` (opened for reading and writing), from `start` on.
    pub fn at(file: File, start: u64) -> Spool {
        Spool {
            file,
            start,
            end: start,
            pending: Vec::new(),
            flows: 0,
            flushed_at: Instant::now(),
            failed: None,
        }
    }

    /// A spool in a temporary file no other process can see: it is removed from its folder
    /// as soon as it is open, so nothing is left behind whatever ends the process.
    pub fn hidden() -> Result<Spool, HiddenSpoolError> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let folder = std::env::temp_dir();
        let path = folder.join(format!(
            ".preflight-flows.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|file| std::fs::remove_file(&path).map(|()| file))
            .map_err(|source| HiddenSpoolError { folder, source })?;
        Ok(Spool::at(file, 0))
    }

    /// How many flows it holds.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// The end of its elements in its file: what follows (the tail) is written from there.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn push(&mut self, flow: &FlowRecord) {
        if self.failed.is_none()
            && let Err(e) = self.add(flow)
        {
            self.fail(&e);
        }
    }

    /// Writes one more flow; returns where its text (after the comma and line break that
    /// separate it from the one before) lies among the elements, for [`Spool::text`].
    pub fn add(&mut self, flow: &FlowRecord) -> io::Result<(u64, u64)> {
        self.check()?;
        let before = self.pending.len();
        json::write_flow(flow, self.flows == 0, &mut self.pending)?;
        let separator = if self.flows == 0 { 5 } else { 6 };
        let start = self.end + (before + separator) as u64;
        let end = self.end + self.pending.len() as u64;
        self.written();
        Ok((start, end))
    }

    /// Writes one more flow as the text [`Spool::add`] wrote for it (in this or another
    /// spool).
    pub fn add_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.check()?;
        let separator: &[u8] = if self.flows == 0 {
            b"\n    "
        } else {
            b",\n    "
        };
        self.pending.extend_from_slice(separator);
        self.pending.extend_from_slice(text);
        self.written();
        self.check()
    }

    /// The text of one flow, as [`Spool::add`] placed it.
    pub fn text(&mut self, (start, end): (u64, u64)) -> io::Result<Vec<u8>> {
        self.flush();
        self.check()?;
        let mut text = vec![0; (end - start) as usize];
        self.file.read_exact_at(&mut text, start)?;
        Ok(text)
    }

    fn written(&mut self) {
        self.flows += 1;
        if self.pending.len() >= FLUSH_BYTES || self.flushed_at.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Writes what is pending to the file.
    pub fn flush(&mut self) {
        if self.failed.is_some() || self.pending.is_empty() {
            return;
        }
        match self.file.write_all_at(&self.pending, self.end) {
            Ok(()) => self.end += self.pending.len() as u64,
            Err(e) => self.fail(&e),
        }
        self.pending.clear();
        self.flushed_at = Instant::now();
    }

    fn fail(&mut self, e: &io::Error) {
        self.failed.get_or_insert((e.kind(), e.to_string()));
    }

    /// The first failure, again, for every report that needed the flows.
    pub fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    fn elements(&self) -> impl Read + '_ {
        Region {
            file: &self.file,
            at: self.start,
            end: self.end,
        }
    }

    /// Copies the elements, as written, to `out`.
    pub fn copy_to(&self, out: &mut dyn Write) -> io::Result<()> {
        self.check()?;
        io::copy(&mut self.elements(), out)?;
        Ok(())
    }

    /// Reads the flows back one at a time.
    pub fn for_each(&self, each: &mut dyn FnMut(FlowRecord) -> io::Result<()>) -> io::Result<()> {
        self.check()?;
        json::for_each_flow(self.elements(), each)
    }

    /// Forgets every flow.
    fn clear(&mut self) {
        self.pending.clear();
        self.end = self.start;
        self.flows = 0;
    }

    /// Masks every flow once more with what `mask` knows now, in place: read back one at a
    /// time into a hidden spool, then copied over the elements.
    fn mask_again(&mut self, mask: &Redactor) -> io::Result<()> {
        self.flush();
        let mut again = Spool::hidden()?;
        self.for_each(&mut |flow| {
            again.push(&flow.masked_again(mask));
            again.check()
        })?;
        again.flush();
        again.check()?;
        let mut at = self.start;
        let mut buffer = vec![0; FLUSH_BYTES];
        let mut from = again.elements();
        loop {
            let n = from.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            self.file.write_all_at(&buffer[..n], at)?;
            at += n as u64;
        }
        self.end = at;
        Ok(())
    }
}

/// Reads ranges of a spool that mostly come in increasing order, [`READ_AHEAD`] bytes at a
/// time: `merge` copies each shard's flows in the selection's order, and a read per flow was
/// most of its system calls (strace: 111,635 `pread64` for 100,000 flows). Only for a spool
/// whose flows are all written: what it holds is not read again.
#[derive(Default)]
pub struct ReadAhead {
    /// The spool's text from `start` on.
    start: u64,
    text: Vec<u8>,
}

const READ_AHEAD: u64 = 256 * 1024;

impl ReadAhead {
    /// The text of `spool` in `(start, end)`.
    pub fn text<'a>(
        &'a mut self,
        spool: &mut Spool,
        (start, end): (u64, u64),
    ) -> io::Result<&'a [u8]> {
        let held = self.start..=self.start + self.text.len() as u64;
        if !(held.contains(&start) && held.contains(&end)) {
            spool.flush();
            spool.check()?;
            let stop = end.max((start + READ_AHEAD).min(spool.end));
            self.text.resize((stop - start) as usize, 0);
            spool.file.read_exact_at(&mut self.text, start)?;
            self.start = start;
        }
        Ok(&self.text[(start - self.start) as usize..(end - self.start) as usize])
    }
}

/// A byte range of a file, read without moving the file's own offset.
struct Region<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.at).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// Takes the flows of a run as they finish: writes each, masked, to the spool (when a report
/// lists every flow), and keeps the passed flows the reports rendered at the end still draw.
pub struct ReportStream {
    redactor: Arc<Redactor>,
    spool: Option<Spool>,
    /// Keep every flow whole (`--verbose` lists them all, `--baseline` compares every step,
    /// a small run shows them all).
    keep_all: bool,
    kept: BTreeMap<usize, FlowResult>,
    /// The slowest plainly passed flows, the fastest of them on top: (duration, later first).
    slowest: BinaryHeap<Reverse<(u64, Reverse<usize>)>>,
    /// How many secrets the redactor knew when the first flow was written.
    known_at_first: Option<usize>,
}

impl ReportStream {
    pub fn new(redactor: Arc<Redactor>, spool: Option<Spool>, keep_all: bool) -> ReportStream {
        ReportStream {
            redactor,
            spool,
            keep_all,
            kept: BTreeMap::new(),
            slowest: BinaryHeap::new(),
            known_at_first: None,
        }
    }

    /// Ends the stream: what is pending is written, and, if the run learned a secret after
    /// the first flow was written, every flow is masked again with it. Returns the spool.
    pub fn finish(&mut self) -> Option<Spool> {
        let mut spool = self.spool.take()?;
        spool.flush();
        let learned = self
            .known_at_first
            .is_some_and(|known| self.redactor.known() > known);
        if learned && let Err(e) = spool.mask_again(&self.redactor) {
            spool.fail(&e);
        }
        Some(spool)
    }

    fn keep_if_slowest(&mut self, index: usize, flow: &FlowResult) {
        self.slowest
            .push(Reverse((flow.duration_ms, Reverse(index))));
        self.kept.insert(index, flow.clone());
        if self.slowest.len() > SLOWEST_PASSED
            && let Some(Reverse((_, Reverse(dropped)))) = self.slowest.pop()
        {
            self.kept.remove(&dropped);
        }
    }
}

impl FlowSink for ReportStream {
    fn flow(&mut self, index: usize, flow: &FlowResult) {
        // Counted before masking: a secret learned from now on is seen to be new at the end.
        self.known_at_first
            .get_or_insert_with(|| self.redactor.known());
        if let Some(spool) = &mut self.spool {
            spool.push(&flow.masked(&*self.redactor));
        }
        // A notable flow the engine keeps; the others simply passed.
        if flow.is_notable() {
            return;
        }
        if self.keep_all {
            self.kept.insert(index, flow.clone());
        } else {
            self.keep_if_slowest(index, flow);
        }
    }

    fn kept(&mut self) -> Vec<(usize, FlowResult)> {
        std::mem::take(&mut self.kept).into_iter().collect()
    }

    fn restart(&mut self) {
        if let Some(spool) = &mut self.spool {
            spool.clear();
        }
        self.kept.clear();
        self.slowest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::FlowOutcome;
    use crate::report::junit::tests::flow;

    #[test]
    fn read_ahead_gives_each_flows_text_in_any_order() {
        let mut spool = Spool::hidden().unwrap();
        let mut ranges = Vec::new();
        // Enough flows for several read-aheads, with text still pending at the end.
        for i in 0..3_000 {
            let name = format!("flow {i} {}", "x".repeat(i % 200));
            ranges.push(
                spool
                    .add(&flow(&name, true, FlowOutcome::Passed, vec![]))
                    .unwrap(),
            );
        }
        assert!(spool.end + (spool.pending.len() as u64) > 2 * READ_AHEAD);
        let mut ahead = ReadAhead::default();
        let order = (0..ranges.len())
            .chain((0..ranges.len()).rev())
            .chain([7, 2_999, 0, 1_500]);
        for i in order {
            let expected = spool.text(ranges[i]).unwrap();
            assert_eq!(ahead.text(&mut spool, ranges[i]).unwrap(), expected, "{i}");
        }
    }
}
