//! JSON values read from a stream as raw text, one at a time, each then parsed whole by
//! [`parse`] (serde_json, from a string checked as UTF-8 once).
//!
//! serde_json reading from an `io::Read` takes one byte per call: callgrind of `merge` found
//! 60% of its instructions there (`IoRead::next`, `parse_whitespace`). A scan that knows only
//! whitespace, strings, escapes and brackets finds where a value ends for a fraction of that,
//! and a slice parses several times faster. The scan checks the structure it walks (the
//! separators between values); what is inside a value it only delimits, so every value it
//! hands on must be parsed in full by its caller.

use std::io::{self, Read};

/// What is read from the stream at a time.
const CHUNK: usize = 64 * 1024;

/// The most brackets open at once, counted from the whole text's first: serde_json's limit
/// (its 128th is an error). Checked here, not left to each value's parse: that parse counts
/// from the value, not the whole, so would take deeper text than serde_json reading the whole
/// did; and a value is held whole before it is parsed, so text of `[[[[...` (which serde_json
/// gives up on after 128 bytes) would be read into memory to its end.
const MAX_DEPTH: usize = 127;

/// The bytes a scan outside strings stops at: quotes, brackets and the end of a line.
static STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = matches!(i as u8, b'"' | b'{' | b'}' | b'[' | b']' | b'\n');
        i += 1;
    }
    table
};

/// A point in the text, for messages: line from 1, column as bytes before it on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// Text that is no JSON of the expected shape, and where.
#[derive(Debug, thiserror::Error)]
#[error("{message} at line {line} column {column}")]
pub struct ScanError {
    message: String,
    line: u64,
    /// From 1, as serde_json counts.
    column: u64,
}

pub struct Scanner<R> {
    reader: R,
    buf: Box<[u8]>,
    /// `buf[pos..end]` is read and not yet consumed.
    pos: usize,
    end: usize,
    /// The offset in the text of `buf[0]`.
    base: u64,
    line: u64,
    /// The offset in the text of the first byte of the current line.
    line_start: u64,
}

impl<R: Read> Scanner<R> {
    pub fn new(reader: R) -> Scanner<R> {
        Scanner {
            reader,
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// Whether there is a byte to look at, reading the next chunk if need be.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn new_line_at(&mut self, i: usize) {
        self.line += 1;
        self.line_start = self.base + i as u64 + 1;
    }

    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.base + self.pos as u64 - self.line_start,
        }
    }

    /// An error at the current point.
    pub fn error(&self, message: impl Into<String>) -> io::Error {
        error_at(self.position(), message)
    }

    /// The next byte that is not whitespace, left unconsumed; `None` at the end of the text.
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        while self.fill()? {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b'\n' => {
                        self.new_line_at(self.pos);
                        self.pos += 1;
                    }
                    byte => return Ok(Some(byte)),
                }
            }
        }
        Ok(None)
    }

    /// Consumes the byte [`Scanner::peek`] returned.
    pub fn bump(&mut self) {
        debug_assert!(self.pos < self.end);
        self.pos += 1;
    }

    /// Consumes `byte`, the next one but whitespace, or fails naming `what` was expected.
    pub fn expect(&mut self, byte: u8, what: &str) -> io::Result<()> {
        if self.peek()? == Some(byte) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    /// Reads the value at the next byte that is not whitespace and appends its text to
    /// `out`. Only where it ends is found: the caller parses it. `outer`: how many brackets
    /// the caller has open around it (see [`MAX_DEPTH`]).
    pub fn value(&mut self, out: &mut Vec<u8>, outer: usize) -> io::Result<()> {
        let first = match self.peek()? {
            Some(b',' | b':' | b']' | b'}') | None => return Err(self.error("expected a value")),
            Some(byte) => byte,
        };
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            if !self.fill()? {
                return if scalar {
                    Ok(())
                } else {
                    Err(self.error("the text ends inside a value"))
                };
            }
            let (start, mut i) = (self.pos, self.pos);
            let mut done = false;
            let buf = &self.buf[..self.end];
            while i < buf.len() {
                if escaped {
                    escaped = false;
                    i += 1;
                } else if in_string {
                    i = string_end(buf, i);
                    match buf.get(i) {
                        None => {}
                        Some(b'\\') => {
                            escaped = true;
                            i += 1;
                        }
                        Some(_) => {
                            in_string = false;
                            i += 1;
                            if depth == 0 {
                                done = true;
                                break;
                            }
                        }
                    }
                } else if scalar {
                    if matches!(
                        buf[i],
                        b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b']' | b'}' | b'"'
                    ) {
                        done = true;
                        break;
                    }
                    i += 1;
                } else {
                    // Most of a pretty-printed report is indentation: skipped eight
                    // spaces at a time, then what is neither a string, a bracket nor a
                    // line's end with one lookup a byte.
                    while buf.get(i..i + 8) == Some(b"        ") {
                        i += 8;
                    }
                    while i < buf.len() && !STRUCTURAL[buf[i] as usize] {
                        i += 1;
                    }
                    let Some(&byte) = buf.get(i) else { break };
                    match byte {
                        b'"' => in_string = true,
                        b'{' | b'[' => {
                            depth += 1;
                            if outer + depth > MAX_DEPTH {
                                self.pos = i;
                                return Err(self.error("recursion limit exceeded"));
                            }
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                done = true;
                                break;
                            }
                        }
                        _ => {
                            self.line += 1;
                            self.line_start = self.base + i as u64 + 1;
                        }
                    }
                    i += 1;
                }
            }
            out.extend_from_slice(&self.buf[start..i]);
            self.pos = i;
            if done {
                return Ok(());
            }
        }
    }

    /// Whether the text ends here, but for whitespace.
    pub fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.peek()?.is_none())
    }
}

/// Where the string that `buf[from..]` is inside of ends or has an escape: the first `"` or
/// `\\` from `from` on (`buf.len()` if none), looked for eight bytes at a time.
fn string_end(buf: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // The high bit of each byte of `word` that is `byte`; exact for the lowest such byte,
    // which is all that is used.
    let marks = |word: u64, byte: u8| {
        let zero_where_byte = word ^ (ONES * byte as u64);
        zero_where_byte.wrapping_sub(ONES) & !zero_where_byte & (ONES << 7)
    };
    let mut i = from;
    while let Some(eight) = buf.get(i..i + 8) {
        let word = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        let found = marks(word, b'"') | marks(word, b'\\');
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && !matches!(buf[i], b'"' | b'\\') {
        i += 1;
    }
    i
}

/// An error at `at`.
pub fn error_at(at: Position, message: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        ScanError {
            message: message.into(),
            line: at.line,
            column: at.column + 1,
        },
    )
}

/// Parses `text`, a value read at `at`; an error names its place in the whole text.
pub fn parse<T: serde::de::DeserializeOwned>(text: &[u8], at: Position) -> io::Result<T> {
    // UTF-8 checked once for the whole value: from a slice, serde_json checks each string
    // on its own (callgrind of `merge`: `from_utf8` was 5% of its instructions).
    let parsed = match std::str::from_utf8(text) {
        Ok(text) => serde_json::from_str(text),
        // Reading the bytes, serde_json names the place of what is no UTF-8.
        Err(_) => serde_json::from_slice(text),
    };
    parsed.map_err(|e| {
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = message
            .strip_suffix(&suffix)
            .unwrap_or(&message)
            .to_string();
        let (line, column) = match e.line() {
            0 | 1 => (at.line, at.column + e.column() as u64),
            n => (at.line + n as u64 - 1, e.column() as u64),
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            ScanError {
                message,
                line,
                column,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of a top-level array, read through the scanner 1 byte at a time (so every
    /// value straddles reads), as text.
    fn values(text: &str) -> io::Result<Vec<String>> {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = first;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut scan = Scanner::new(Trickle(text.as_bytes()));
        scan.expect(b'[', "`[`")?;
        let mut out = Vec::new();
        if scan.peek()? == Some(b']') {
            scan.bump();
            return Ok(out);
        }
        loop {
            let mut value = Vec::new();
            scan.value(&mut value, 1)?;
            out.push(String::from_utf8(value).unwrap());
            match scan.peek()? {
                Some(b',') => scan.bump(),
                Some(b']') => {
                    scan.bump();
                    break;
                }
                _ => return Err(scan.error("expected `,` or `]`")),
            }
        }
        assert!(scan.at_end()?);
        Ok(out)
    }

    #[test]
    fn each_value_is_found_whole_across_reads() {
        let text = r#"[ {"a": [1, {"b": "}]\"\\"}], "c\"": "x"},
            "s\\\"]", -1.5e3 , true,null,[], {} ,"" ]"#;
        let found = values(text).unwrap();
        assert_eq!(
            found,
            [
                r#"{"a": [1, {"b": "}]\"\\"}], "c\"": "x"}"#,
                r#""s\\\"]""#,
                "-1.5e3",
                "true",
                "null",
                "[]",
                "{}",
                r#""""#,
            ]
        );
        // Each is the value serde_json reads there.
        let whole: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        let parsed: Vec<serde_json::Value> = found
            .iter()
            .map(|v| serde_json::from_str(v).unwrap())
            .collect();
        assert_eq!(parsed, whole);
    }

    #[test]
    fn a_string_ends_at_its_first_quote_or_escape() {
        // Every place of the quote or escape in and around a word, and every byte beside it.
        for len in 0..20 {
            for at in 0..=len {
                for other in [
                    b'a',
                    0,
                    0x80,
                    0xff,
                    b'"' - 1,
                    b'"' + 1,
                    b'\\' + 1,
                    b'\\' - 1,
                ] {
                    for stop in [b'"', b'\\'] {
                        let mut buf = vec![other; len];
                        if at < len {
                            buf[at] = stop;
                            // A second one after the first changes nothing.
                            if at + 3 < len {
                                buf[at + 3] = b'"';
                            }
                        }
                        for from in 0..=at.min(len) {
                            assert_eq!(string_end(&buf, from), at, "{buf:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn broken_structure_is_an_error_with_its_place() {
        for (text, message) in [
            ("[1,]", "expected a value at line 1 column 4"),
            ("[1 2]", "expected `,` or `]` at line 1 column 4"),
            (
                "[\n  {\"a\": [1}",
                "the text ends inside a value at line 2 column 12",
            ),
            ("[\"open", "the text ends inside a value at line 1 column 7"),
            ("{}", "expected `[` at line 1 column 1"),
        ] {
            let error = values(text).unwrap_err();
            assert_eq!(error.to_string(), message, "{text}");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn a_parse_error_names_its_place_in_the_whole_text() {
        let mut scan = Scanner::new(&b"[\n  1,\n    {\"a\":\n tru}]"[..]);
        scan.expect(b'[', "`[`").unwrap();
        let mut text = Vec::new();
        scan.value(&mut text, 1).unwrap();
        scan.expect(b',', "`,`").unwrap();
        text.clear();
        scan.peek().unwrap();
        let at = scan.position();
        assert_eq!(at, Position { line: 3, column: 4 });
        scan.value(&mut text, 1).unwrap();
        let error = parse::<serde_json::Value>(&text, at).unwrap_err();
        // As serde_json reading the whole text would place it.
        let whole = serde_json::from_slice::<serde_json::Value>(b"[\n  1,\n    {\"a\":\n tru}]")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "expected ident at line {} column {}",
                whole.line(),
                whole.column()
            )
        );
    }
}
