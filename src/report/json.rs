//! The JSON report's text, in three parts so that it can be written while the run goes on:
//! the head (what is known before any flow: schema, tool, version, suite), the flows one by
//! one as they finish, and the tail (everything known only at the end: the verdict, its
//! reasons, the summary...). A report rendered at the end is written by the same three parts,
//! so both are the same bytes.
//!
//! The flows part is the array `"flows": [...]`, each flow pretty-printed at its depth; it can
//! be read back one flow at a time ([`for_each_flow`]).

use super::scan::{self, Scanner};
use super::{FlowRecord, Report};
use serde::Serialize;
use std::io::{self, Read, Write};

/// What is known before the first flow.
#[derive(Serialize)]
pub struct Head<'a> {
    schema: u32,
    tool: &'a str,
    version: &'a str,
    suite: &'a str,
}

impl<'a> Head<'a> {
    /// The head of a report this build writes for `suite`.
    pub fn current(suite: &'a str) -> Head<'a> {
        Head {
            schema: 1,
            tool: "preflight",
            version: env!("CARGO_PKG_VERSION"),
            suite,
        }
    }

    /// The head of `report` (which may be of another version, read back).
    pub fn of(report: &'a Report) -> Head<'a> {
        Head {
            schema: report.schema,
            tool: &report.tool,
            version: &report.version,
            suite: &report.suite,
        }
    }
}

/// What is known only at the end: every field of [`Report`] but the head's and `flows`, with
/// the same names and the same rules for leaving one out.
#[derive(Serialize)]
struct Tail<'a> {
    base_url: &'a Option<String>,
    started_at: &'a str,
    duration_ms: u64,
    verdict: super::GateVerdict,
    reasons: &'a [String],
    gate_reasons: &'a [String],
    summary: &'a super::Summary,
    wait: &'a Option<super::WaitRecord>,
    integrity: &'a [super::IntegrityRecord],
    deployed_version: &'a Option<super::VersionRecord>,
    setup: &'a [super::StepRecord],
    teardown: &'a [super::StepRecord],
    warnings: &'a [super::Warning],
    headline: &'a str,
    #[serde(skip_serializing_if = "none")]
    suite_digest: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    suite_files_digest: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    shard: &'a Option<super::ShardRecord>,
    #[serde(skip_serializing_if = "none")]
    baseline: &'a Option<crate::baseline::BaselineRecord>,
    #[serde(skip_serializing_if = "none")]
    serve: &'a Option<super::ServeRecord>,
}

fn none<T>(value: &&Option<T>) -> bool {
    value.is_none()
}

/// The head and the opening of the flows array: `{ "schema": 1, ..., "flows": [`.
pub fn write_head(head: &Head, out: &mut impl Write) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(head)?;
    // `{ ... \n}`: the object stays open for the flows and the tail.
    let open = text.strip_suffix(b"\n}").unwrap_or(&text);
    out.write_all(open)?;
    out.write_all(b",\n  \"flows\": [")
}

/// One flow of the array; `first` for the first one (no comma before it).
pub fn write_flow(flow: &FlowRecord, first: bool, out: &mut impl Write) -> io::Result<()> {
    out.write_all(if first { b"\n    " } else { b",\n    " })?;
    // Pretty JSON two levels deep, straight into `out` (callgrind: rendering each flow into a
    // buffer of its own and copying it line by line was a tenth of a run's instructions).
    let nested = Nested {
        level: 2,
        has_value: false,
    };
    flow.serialize(&mut serde_json::Serializer::with_formatter(out, nested))?;
    Ok(())
}

/// serde_json's `PrettyFormatter` (two spaces a level), starting `level` levels deep.
struct Nested {
    level: usize,
    has_value: bool,
}

impl Nested {
    fn new_line<W: ?Sized + Write>(&self, out: &mut W, after: &[u8]) -> io::Result<()> {
        // The indentation in one write, not two bytes a write (callgrind of `merge`: 4% of
        // its instructions).
        const SPACES: &[u8; 64] = &[b' '; 64];
        out.write_all(after)?;
        out.write_all(b"\n")?;
        let mut left = 2 * self.level;
        while left > 0 {
            let n = left.min(SPACES.len());
            out.write_all(&SPACES[..n])?;
            left -= n;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(out, b"")?;
        }
        out.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.new_line(out, if first { b"" } else { b"," })
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.new_line(out, if first { b"" } else { b"," })
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The closing of the flows array (`any_flows`: whether one was written) and the tail.
pub fn write_tail(report: &Report, any_flows: bool, out: &mut impl Write) -> io::Result<()> {
    out.write_all(if any_flows { b"\n  ],\n" } else { b"],\n" })?;
    let tail = Tail {
        base_url: &report.base_url,
        started_at: &report.started_at,
        duration_ms: report.duration_ms,
        verdict: report.verdict,
        reasons: &report.reasons,
        gate_reasons: &report.gate_reasons,
        summary: &report.summary,
        wait: &report.wait,
        integrity: &report.integrity,
        deployed_version: &report.deployed_version,
        setup: &report.setup,
        teardown: &report.teardown,
        warnings: &report.warnings,
        headline: &report.headline,
        suite_digest: &report.suite_digest,
        suite_files_digest: &report.suite_files_digest,
        shard: &report.shard,
        baseline: &report.baseline,
        serve: &report.serve,
    };
    let text = serde_json::to_vec_pretty(&tail)?;
    // `{\n  "base_url": ...}`: its fields continue the report's object.
    let fields = text.strip_prefix(b"{\n").unwrap_or(&text);
    out.write_all(fields)?;
    out.write_all(b"\n")
}

/// The whole report, with every flow it holds.
pub fn write_report(report: &Report, out: &mut impl Write) -> io::Result<()> {
    write_head(&Head::of(report), out)?;
    for (i, flow) in report.flows.iter().enumerate() {
        write_flow(flow, i == 0, out)?;
    }
    write_tail(report, !report.flows.is_empty(), out)
}

/// Reads the flows written by [`write_flow`] back one at a time: `elements` is the text
/// between the array's `[` and `]`. Memory holds one flow at a time.
pub fn for_each_flow(
    elements: impl Read,
    each: &mut dyn FnMut(FlowRecord) -> io::Result<()>,
) -> io::Result<()> {
    let mut scan = Scanner::new(elements);
    // As if in the report's array (the limit on nesting counts it).
    each_flow(&mut scan, None, 1, each)
}

/// Reads a whole report, its flows and the rest, in one pass.
pub fn read_report(reader: impl Read) -> Result<Report, String> {
    let mut flows = Vec::new();
    let mut push = |flow| {
        flows.push(flow);
        Ok(())
    };
    let frame = read_flows(reader, &mut push).map_err(|e| e.to_string())?;
    let mut report = parse_frame(&frame)?;
    report.flows = flows;
    Ok(report)
}

/// The report of a frame [`read_flows`] returned: every field but its flows (empty).
pub fn parse_frame(frame: &[u8]) -> Result<Report, String> {
    serde_json::from_slice(frame).map_err(|e| e.to_string())
}

/// Reads a report's object in one pass: its flows go to `each`, one at a time, in the order
/// written, and the rest comes back as the report's text with the flows blanked out (their
/// array is `[]` on as many lines as it took), for [`parse_frame`]. serde_json then reads the
/// report from it as it would read the whole text, as strictly (a key given twice, a field it
/// does not know, nesting) and naming the same places, but for columns on the line where the
/// flows end.
pub fn read_flows(
    reader: impl Read,
    each: &mut dyn FnMut(FlowRecord) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut scan = Scanner::new(reader);
    let mut frame = Frame {
        text: Vec::new(),
        at: scan.position(),
    };
    let mut key = Vec::new();
    let mut flows_seen = false;
    frame.expect(&mut scan, b'{', "`{` (a report is a JSON object)")?;
    let mut first = true;
    while scan.peek()? != Some(b'}') {
        if !std::mem::take(&mut first) {
            frame.expect(&mut scan, b',', "`,` or `}`")?;
        }
        let key_at = value(&mut scan, &mut key, 1)?;
        frame.copy(key_at, &key, scan.position());
        frame.expect(&mut scan, b':', "`:`")?;
        if scan::parse::<String>(&key, key_at)? != "flows" {
            frame.value(&mut scan)?;
            continue;
        }
        if std::mem::replace(&mut flows_seen, true) {
            return Err(scan::error_at(key_at, "the field `flows` is given twice"));
        }
        scan.peek()?;
        let start = scan.position();
        scan.expect(b'[', "`[` (the flows are an array)")?;
        each_flow(&mut scan, Some(b']'), 2, each)?;
        frame.blank(start, scan.position());
    }
    frame.expect(&mut scan, b'}', "`}`")?;
    if !scan.at_end()? {
        return Err(scan.error("trailing characters"));
    }
    Ok(frame.text)
}

/// The text of a report but its flows, as [`read_flows`] writes it: the whitespace between
/// values is written again as line ends and spaces that keep each value at its line and
/// column.
struct Frame {
    text: Vec<u8>,
    /// The place in the report's text that the end of `text` stands for.
    at: scan::Position,
}

impl Frame {
    /// Whitespace up to `to`.
    fn pad(&mut self, to: scan::Position) {
        let spaces = if to.line > self.at.line {
            let lines = to.line - self.at.line;
            self.text.extend(std::iter::repeat_n(b'\n', lines as usize));
            to.column
        } else {
            to.column.saturating_sub(self.at.column)
        };
        self.text.extend(std::iter::repeat_n(b' ', spaces as usize));
        self.at = to;
    }

    /// `text`, read from `from` up to `to`.
    fn copy(&mut self, from: scan::Position, text: &[u8], to: scan::Position) {
        self.pad(from);
        self.text.extend_from_slice(text);
        self.at = to;
    }

    /// Consumes `byte`, the next but whitespace, and copies it.
    fn expect<R: Read>(&mut self, scan: &mut Scanner<R>, byte: u8, what: &str) -> io::Result<()> {
        scan.peek()?;
        let from = scan.position();
        scan.expect(byte, what)?;
        self.copy(from, &[byte], scan.position());
        Ok(())
    }

    /// Copies the next value, a field of the report.
    fn value<R: Read>(&mut self, scan: &mut Scanner<R>) -> io::Result<()> {
        scan.peek()?;
        self.pad(scan.position());
        scan.value(&mut self.text, 1)?;
        self.at = scan.position();
        Ok(())
    }

    /// An empty array for the flows' array read from `from` up to `to`, on as many lines.
    /// The columns that follow on its last line are not kept: the array may be one line of
    /// the whole report.
    fn blank(&mut self, from: scan::Position, to: scan::Position) {
        self.pad(from);
        self.text.push(b'[');
        let lines = to.line - from.line;
        self.text.extend(std::iter::repeat_n(b'\n', lines as usize));
        self.text.push(b']');
        self.at = to;
    }
}

/// Reads the next value's text into `text` (cleared first) and returns where it starts;
/// `outer` brackets are open around it.
fn value<R: Read>(
    scan: &mut Scanner<R>,
    text: &mut Vec<u8>,
    outer: usize,
) -> io::Result<scan::Position> {
    text.clear();
    scan.peek()?;
    let at = scan.position();
    scan.value(text, outer)?;
    Ok(at)
}

/// The flows of an array, each handed to `each`, up to `close` (the array's `]`, consumed)
/// or, with `None`, the end of the text; `outer` brackets are open around each.
fn each_flow<R: Read>(
    scan: &mut Scanner<R>,
    close: Option<u8>,
    outer: usize,
    each: &mut dyn FnMut(FlowRecord) -> io::Result<()>,
) -> io::Result<()> {
    let mut text = Vec::new();
    let mut next = scan.peek()?;
    let mut first = true;
    loop {
        if next == close {
            if close.is_some() {
                scan.bump();
            }
            return Ok(());
        }
        if !first {
            if next != Some(b',') {
                let closing = close.map_or("the end".to_string(), |c| format!("`{}`", c as char));
                return Err(scan.error(format!("expected `,` or {closing}")));
            }
            scan.bump();
        }
        first = false;
        let at = value(scan, &mut text, outer)?;
        each(scan::parse(&text, at)?)?;
        next = scan.peek()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::{flow, report};
    use crate::report::{FlowOutcome, GateVerdict};

    fn sample() -> Report {
        let mut report = report(
            vec![
                flow("a", true, FlowOutcome::Passed, vec![]),
                flow("b \"q\"\n", false, FlowOutcome::Warned, vec![]),
            ],
            GateVerdict::Fail,
        );
        report.suite_digest = Some("sha256:00".into());
        report.reasons = vec!["flow 'x' failed".into()];
        report
    }

    #[test]
    fn written_in_parts_it_is_the_report_with_every_field() {
        for report in [sample(), report(vec![], GateVerdict::Pass)] {
            let mut text = Vec::new();
            write_report(&report, &mut text).unwrap();
            let read: Report = serde_json::from_slice(&text).unwrap();
            assert_eq!(read, report);
            // Every key the derived form writes, in the same nesting: none forgotten.
            let parts: serde_json::Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(parts, serde_json::to_value(&report).unwrap());
            // Pretty-printed as serde_json prints the whole, but for the order of the keys.
            let pretty = serde_json::to_string_pretty(&report).unwrap();
            assert_eq!(text.len(), pretty.len() + 1);
        }
    }

    #[test]
    fn a_flow_is_written_as_serde_json_pretty_prints_it_two_levels_deeper() {
        use crate::report::junit::tests::step;
        use crate::report::{Phase, StepOutcome};
        let mut failed = step("pay", StepOutcome::Failed);
        failed.error = Some("connect \"refused\"\n".into());
        failed.phase = Phase::Cleanup;
        let steps = vec![step("one", StepOutcome::Passed), failed];
        let flows = [
            flow("a", true, FlowOutcome::Passed, vec![]),
            flow("b \"q\"\n", false, FlowOutcome::Failed, steps),
        ];
        for flow in &flows {
            let mut written = Vec::new();
            write_flow(flow, false, &mut written).unwrap();
            let pretty = serde_json::to_string_pretty(flow).unwrap();
            let expected = format!(",\n    {}", pretty.replace('\n', "\n    "));
            assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }

    #[test]
    fn flows_read_back_one_at_a_time() {
        let report = sample();
        let mut elements = Vec::new();
        for (i, flow) in report.flows.iter().enumerate() {
            write_flow(flow, i == 0, &mut elements).unwrap();
        }
        let mut read = Vec::new();
        for_each_flow(&elements[..], &mut |f| {
            read.push(f);
            Ok(())
        })
        .unwrap();
        assert_eq!(read, report.flows);
        let stop = for_each_flow(&elements[..], &mut |_| Err(io::Error::other("enough")));
        assert_eq!(stop.unwrap_err().to_string(), "enough");
        for_each_flow(&b""[..], &mut |_| panic!("no flow")).unwrap();
        // Within a whole report: the flows alone, or everything but them.
        let mut whole = Vec::new();
        write_report(&report, &mut whole).unwrap();
        let mut again = Vec::new();
        let frame = read_flows(&whole[..], &mut |f| {
            again.push(f);
            Ok(())
        })
        .unwrap();
        assert_eq!(again, report.flows);
        let frame = parse_frame(&frame).unwrap();
        assert_eq!(
            frame,
            Report {
                flows: vec![],
                ..report.clone()
            }
        );
        assert_eq!(read_report(&whole[..]).unwrap(), report);
        let one_line = serde_json::to_vec(&report).unwrap();
        assert_eq!(read_report(&one_line[..]).unwrap(), report);
        let twice = b"{\"flows\": [], \"flows\": []}";
        assert!(read_flows(&twice[..], &mut |_| Ok(())).is_err());
        assert!(for_each_flow(&b"{\"x\": 1}"[..], &mut |_| Ok(())).is_err());
    }

    #[test]
    fn a_report_is_read_as_serde_json_reads_it_whole() {
        let mut whole = Vec::new();
        write_report(&sample(), &mut whole).unwrap();
        let text = String::from_utf8(whole).unwrap();
        let read = |text: &str| read_report(text.as_bytes()).map(drop);
        let serde = |text: &str| {
            serde_json::from_str::<Report>(text)
                .unwrap_err()
                .to_string()
        };
        // The same error at the same place, whether in a flow (parsed on its own) or in the
        // rest (parsed from the frame), before the flows or after them.
        let broken_flow = text.replacen("\"name\": \"a\"", "\"name\": a", 1);
        let broken_field = text.replacen("\"verdict\": \"fail\"", "\"verdict\": fail", 1);
        let verdict_twice = text.replacen("{", "{\"verdict\": \"pass\",", 1);
        for broken in [&broken_flow, &broken_field, &verdict_twice] {
            assert_eq!(read(broken).unwrap_err(), serde(broken));
        }
        assert!(serde(&verdict_twice).starts_with("duplicate field `verdict` at line 3"));
        assert!(serde(&broken_flow).starts_with("expected value at line 8"));
        // Nor is text after the report taken, or flows or fields not separated.
        for broken in [
            format!("{text} {{}}"),
            text.replacen("},\n    {", "}\n    {", 1),
            text.replacen("\"schema\": 1,", "\"schema\": 1", 1),
            text.replacen("\"schema\":", "\"schema\"", 1),
            text[..text.len() - 3].to_string(),
        ] {
            assert!(read(&broken).is_err(), "{broken}");
            assert!(serde_json::from_str::<Report>(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn a_key_given_twice_within_a_field_is_refused_as_serde_json_refuses_it() {
        let mut whole = Vec::new();
        write_report(&sample(), &mut whole).unwrap();
        let text = String::from_utf8(whole).unwrap();
        // The second `failed` would win in a `serde_json::Value`.
        let twice = text.replacen("\"failed\": 0,", "\"failed\": 1, \"failed\": 0,", 1);
        assert_ne!(twice, text);
        let serde = serde_json::from_str::<Report>(&twice)
            .unwrap_err()
            .to_string();
        assert_eq!(read_report(twice.as_bytes()).unwrap_err(), serde);
        assert_eq!(read_report(twice.as_bytes()).unwrap_err(), serde);
        // Keys that only look alike are two keys, as before.
        let two = text.replacen("\"failed\": 0,", "\"failed\": 0, \"Failed\": 1,", 1);
        assert_eq!(
            read_report(two.as_bytes()).unwrap(),
            read_report(text.as_bytes()).unwrap()
        );
    }

    #[test]
    fn a_field_the_report_does_not_have_is_checked_not_kept() {
        let mut whole = Vec::new();
        write_report(&sample(), &mut whole).unwrap();
        let text = String::from_utf8(whole).unwrap();
        let with = |field: &str| text.replacen("{", &format!("{{\"x\": {field},"), 1);
        // Checked as serde_json checks it; given twice, or with a key twice, as serde_json
        // takes it.
        for field in ["[tru]", "{\"a\": }", "\"\\x\""] {
            assert!(
                serde_json::from_str::<Report>(&with(field)).is_err(),
                "{field}"
            );
            assert!(read_report(with(field).as_bytes()).is_err(), "{field}");
            assert!(read_report(with(field).as_bytes()).is_err(), "{field}");
        }
        for field in ["1, \"x\": 2", "{\"a\": 1, \"a\": 2}"] {
            serde_json::from_str::<Report>(&with(field)).unwrap();
            assert_eq!(read_report(with(field).as_bytes()).unwrap(), sample());
        }
    }

    #[test]
    fn nesting_is_limited_as_serde_json_limits_the_whole_report() {
        let mut whole = Vec::new();
        write_report(&sample(), &mut whole).unwrap();
        let text = String::from_utf8(whole).unwrap();
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for n in 120..130 {
            // An unknown field of the report, and of a flow: read by the frame, by the
            // flows' pass, or by both for the whole.
            let field = text.replacen("{", &format!("{{\"x\": {},", deep(n)), 1);
            let in_flow = text.replacen(
                "\"name\": \"a\"",
                &format!("\"x\": {}, \"name\": \"a\"", deep(n)),
                1,
            );
            // serde_json counts the brackets from the report's `{` (and skips a field the
            // report does not have to any depth, which is taken here only within the limit).
            for (broken, depth) in [(field, 1 + n), (in_flow, 3 + n)] {
                let serde = serde_json::from_str::<Report>(&broken).is_ok();
                assert_eq!(read_report(broken.as_bytes()).is_ok(), depth <= 127, "{n}");
                assert!(serde || depth > 127, "{n}");
            }
        }
        // Endless `[`: an error as soon as too deep, not a read to the end into memory.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += buf.len();
                assert!(self.0 < 1 << 20, "read on past any limit");
                buf.fill(b'[');
                Ok(buf.len())
            }
        }
        let flows = (&b"{\"flows\": ["[..]).chain(Endless(0));
        let e = read_flows(flows, &mut |_| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recursion limit exceeded at line 1 column 137"
        );
        let e = for_each_flow(Endless(0), &mut |_| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recursion limit exceeded at line 1 column 127"
        );
    }
}
