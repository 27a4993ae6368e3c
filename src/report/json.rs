//! The JSON report's text, in three parts so that it can be written while the run goes on:
//! the head (what is known before any flow: schema, tool, version, suite), the flows one by
//! one as they finish, and the tail (everything known only at the end: the verdict, its
//! reasons, the summary...). A report rendered at the end is written by the same three parts,
//! so both are the same bytes.
//!
//! The flows part is the array `"flows": [...]`, each flow pretty-printed at its depth; it can
//! be read back one flow at a time ([`for_each_flow`]).

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
        out.write_all(after)?;
        out.write_all(b"\n")?;
        (0..self.level).try_for_each(|_| out.write_all(b"  "))
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
    let text = (&b"["[..]).chain(elements).chain(&b"]"[..]);
    let reader = io::BufReader::with_capacity(64 * 1024, text);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut failed = None;
    serde::Deserializer::deserialize_seq(
        &mut de,
        EachFlow {
            each,
            failed: &mut failed,
        },
    )
    .map_err(|e| failed.take().unwrap_or_else(|| io::Error::other(e)))?;
    de.end().map_err(io::Error::other)
}

/// Visits a sequence of flows, handing each to `each`; an error of `each` stops it.
struct EachFlow<'a, 'f> {
    each: &'a mut dyn FnMut(FlowRecord) -> io::Result<()>,
    failed: &'f mut Option<io::Error>,
}

impl<'de> serde::de::Visitor<'de> for EachFlow<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of flows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(flow) = seq.next_element::<FlowRecord>()? {
            if let Err(e) = (self.each)(flow) {
                let message = e.to_string();
                *self.failed = Some(e);
                return Err(serde::de::Error::custom(message));
            }
        }
        Ok(())
    }
}

/// Reads a report's fields but its flows, which are skipped unread (`flows` comes back
/// empty): what `merge` checks before it reads any flow.
pub fn read_frame(reader: impl Read) -> Result<Report, String> {
    let mut failed = None;
    let parts = read_parts(reader, None, &mut failed).map_err(|e| e.to_string())?;
    serde_json::from_value(serde_json::Value::Object(parts)).map_err(|e| e.to_string())
}

/// Reads only the flows of a report, one at a time, in the order written.
pub fn read_flows(
    reader: impl Read,
    each: &mut dyn FnMut(FlowRecord) -> io::Result<()>,
) -> io::Result<()> {
    let mut failed = None;
    match read_parts(reader, Some(each), &mut failed) {
        Ok(_) => Ok(()),
        Err(e) => Err(failed.take().unwrap_or_else(|| io::Error::other(e))),
    }
}

/// One pass over a report's object: with `each`, its flows go there and the rest is skipped;
/// without, the flows are skipped and the rest is returned (`flows` as `[]`).
fn read_parts(
    reader: impl Read,
    each: Option<&mut dyn FnMut(FlowRecord) -> io::Result<()>>,
    failed: &mut Option<io::Error>,
) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
    let reader = io::BufReader::with_capacity(64 * 1024, reader);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parts = serde::Deserializer::deserialize_map(&mut de, Parts { each, failed })?;
    de.end()?;
    Ok(parts)
}

struct Parts<'a, 'f> {
    each: Option<&'a mut dyn FnMut(FlowRecord) -> io::Result<()>>,
    failed: &'f mut Option<io::Error>,
}

impl<'de> serde::de::Visitor<'de> for Parts<'_, '_> {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a preflight report")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        mut self,
        mut map: A,
    ) -> Result<Self::Value, A::Error> {
        use serde::de::{Error, IgnoredAny};
        let mut parts = serde_json::Map::new();
        let mut flows_seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "flows" {
                if std::mem::replace(&mut flows_seen, true) {
                    return Err(A::Error::duplicate_field("flows"));
                }
                match self.each.as_deref_mut() {
                    Some(each) => map.next_value_seed(FlowsSeed {
                        each,
                        failed: &mut *self.failed,
                    })?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        parts.insert(key, serde_json::Value::Array(Vec::new()));
                    }
                }
            } else if self.each.is_some() {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value = map.next_value()?;
                parts.insert(key, value);
            }
        }
        Ok(parts)
    }
}

struct FlowsSeed<'a, 'f> {
    each: &'a mut dyn FnMut(FlowRecord) -> io::Result<()>,
    failed: &'f mut Option<io::Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for FlowsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(EachFlow {
            each: self.each,
            failed: self.failed,
        })
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
        read_flows(&whole[..], &mut |f| {
            again.push(f);
            Ok(())
        })
        .unwrap();
        assert_eq!(again, report.flows);
        let frame = read_frame(&whole[..]).unwrap();
        assert_eq!(
            frame,
            Report {
                flows: vec![],
                ..report.clone()
            }
        );
        let twice = b"{\"flows\": [], \"flows\": []}";
        assert!(read_flows(&twice[..], &mut |_| Ok(())).is_err());
        assert!(for_each_flow(&b"{\"x\": 1}"[..], &mut |_| Ok(())).is_err());
    }
}
