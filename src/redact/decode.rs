//! A text with its escapes decoded, each character knowing the stretch of the text it came
//! from. A part of a secret may come back in a mix of escapes no one encoder writes (preflight's
//! own URL parser writes `"` as `%22` and keeps `:`; Go's `url.PathEscape` encodes `/` but not
//! `:`; PHP's `json_encode` writes `\/` and `\u00e4`; Go's `html.EscapeString` writes `"` as
//! `&#34;`): decoded, it reads as itself, and its parts are looked for there.

use std::ops::Range;

/// `text` decoded, and where its characters came from.
pub struct Decoded {
    pub text: String,
    /// Where the decoded text starts to come from one escape, or from a run of the original
    /// copied as it is, in order: as many as the text has escapes, not characters, so that a
    /// large body costs little more than itself.
    segments: Vec<Segment>,
}

struct Segment {
    /// Where it starts in the decoded text.
    decoded: usize,
    /// The stretch of the original it came from.
    original: Range<usize>,
    /// One escape (one character decoded), not a run copied as it is.
    escape: bool,
}

impl Decoded {
    /// The stretch of the original that the characters of `range` (of [`Decoded::text`])
    /// came from.
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        let at = |offset: usize| {
            &self.segments[self.segments.partition_point(|s| s.decoded <= offset) - 1]
        };
        let first = at(range.start);
        let start = match first.escape {
            true => first.original.start,
            false => first.original.start + (range.start - first.decoded),
        };
        let last = at(range.end - 1);
        let end = match last.escape {
            true => last.original.end,
            false => last.original.start + (range.end - last.decoded),
        };
        start..end
    }

    fn copy(&mut self, original: &str, from: Range<usize>) {
        match self.segments.last_mut() {
            Some(last) if !last.escape && last.original.end == from.start => {
                last.original.end = from.end;
            }
            _ => self.segments.push(Segment {
                decoded: self.text.len(),
                original: from.clone(),
                escape: false,
            }),
        }
        self.text.push_str(&original[from]);
    }

    fn escape(&mut self, c: char, from: Range<usize>) {
        self.segments.push(Segment {
            decoded: self.text.len(),
            original: from,
            escape: true,
        });
        self.text.push(c);
    }
}

/// `text` with one layer or more of percent-encoding (`%2F`, `%252F`, `%u20AC`, `%C3%A4`),
/// JSON escapes (`\/`, `\u00e4`, their backslash escaped again, an escaped backslash) and HTML
/// character references (`&#34;`, `&#x2F;`, the common named ones) decoded; `None` when it
/// holds none.
pub fn decode(text: &str) -> Option<Decoded> {
    if !text.contains(['%', '\\', '&']) {
        return None;
    }
    let mut decoded = Decoded {
        text: String::with_capacity(text.len()),
        segments: Vec::new(),
    };
    let mut decoded_any = false;
    let mut at = 0;
    while at < text.len() {
        let plain = text[at..]
            .find(['%', '\\', '&'])
            .map_or(text.len(), |i| at + i);
        if plain > at {
            decoded.copy(text, at..plain);
            at = plain;
            continue;
        }
        let escape = match text.as_bytes()[at] {
            b'%' => percent(text, at),
            b'\\' => Some(json(text, at)),
            _ => reference(text, at),
        };
        match escape {
            // A lone backslash before nothing it escapes stands for itself.
            Some((_, end)) if end == at + 1 => {
                decoded.copy(text, at..end);
                at = end;
            }
            Some((c, end)) => {
                decoded.escape(c, at..end);
                at = end;
                decoded_any = true;
            }
            None => {
                decoded.copy(text, at..at + 1);
                at += 1;
            }
        }
    }
    decoded_any.then_some(decoded)
}

fn hex_at(text: &str, at: usize, digits: usize) -> Option<u32> {
    let hex = text.get(at..at + digits)?;
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

/// `%XX`, encoded again any number of times (`%252F`), the bytes of one character in a row
/// (`%C3%A4`; a byte that begins none is U+FFFD), or JavaScript's `%uXXXX`.
fn percent(text: &str, at: usize) -> Option<(char, usize)> {
    if text[at + 1..].starts_with(['u', 'U']) {
        let unit = hex_at(text, at + 2, 4)?;
        return Some((char::from_u32(unit)?, at + 6));
    }
    let (first, mut end) = percent_byte(text, at)?;
    let len = match first {
        0x00..=0x7F => return Some((char::from(first), end)),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return Some((char::REPLACEMENT_CHARACTER, end)),
    };
    let mut bytes = vec![first];
    while bytes.len() < len {
        let Some((next, after)) = text
            .as_bytes()
            .get(end)
            .filter(|&&b| b == b'%')
            .and_then(|_| percent_byte(text, end))
        else {
            break;
        };
        bytes.push(next);
        end = after;
    }
    match std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Some((c, end)),
        None => Some((char::REPLACEMENT_CHARACTER, percent_byte(text, at)?.1)),
    }
}

/// The byte of the `%XX` at `at` (`%252F` too), and where it ends.
fn percent_byte(text: &str, at: usize) -> Option<(u8, usize)> {
    let mut next = at + 1;
    loop {
        let byte = hex_at(text, next, 2)? as u8;
        next += 2;
        if byte == b'%' && hex_at(text, next, 2).is_some() {
            continue;
        }
        return Some((byte, next));
    }
}

/// A JSON escape, its backslash escaped again any number of times: `\u00e4` (a surrogate
/// pair as one character), `\/`, `\"`, `\n`...; a run of backslashes before anything else is
/// one backslash, escaped once or more (`\\`, `\\\\`).
fn json(text: &str, at: usize) -> (char, usize) {
    let after = at + text[at..].bytes().take_while(|&b| b == b'\\').count();
    let unit = |start: usize| -> Option<(u32, usize)> {
        let backslashes = text[start..].bytes().take_while(|&b| b == b'\\').count();
        let u = start + backslashes;
        (backslashes > 0 && text[u..].starts_with('u'))
            .then(|| hex_at(text, u + 1, 4).map(|unit| (unit, u + 5)))
            .flatten()
    };
    let short = |c: char| (c, after + 1);
    match text.as_bytes().get(after) {
        Some(b'u') => match unit(at) {
            Some((high, end)) => {
                if (0xD800..0xDC00).contains(&high)
                    && let Some((low, end)) = unit(end)
                    && (0xDC00..0xE000).contains(&low)
                    && let Some(c) =
                        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                {
                    return (c, end);
                }
                (
                    char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER),
                    end,
                )
            }
            None => ('\\', after),
        },
        Some(b'/') => short('/'),
        Some(b'"') => short('"'),
        Some(b'\'') => short('\''),
        Some(b'n') => short('\n'),
        Some(b't') => short('\t'),
        Some(b'r') => short('\r'),
        _ => ('\\', after),
    }
}

/// The named references encoders write for ASCII punctuation (Python's `html.escape`, PHP's
/// `htmlspecialchars`, HTML5's own names for URL characters), and HTML's names for what a
/// reader does not see (a soft hyphen between letters is what hyphenation tools write).
const NAMED: [(&str, char); 25] = [
    ("shy", '\u{AD}'),
    ("ZeroWidthSpace", '\u{200B}'),
    ("zwnj", '\u{200C}'),
    ("zwj", '\u{200D}'),
    ("NoBreak", '\u{2060}'),
    ("Tab", '\t'),
    ("NewLine", '\n'),
    ("ensp", '\u{2002}'),
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("sol", '/'),
    ("colon", ':'),
    ("equals", '='),
    ("quest", '?'),
    ("num", '#'),
    ("percnt", '%'),
    ("plus", '+'),
    ("commat", '@'),
    ("excl", '!'),
    ("lpar", '('),
    ("rpar", ')'),
    ("nbsp", '\u{a0}'),
];

/// `&#34;`, `&#x2F;` (the `;` may be left out, and any number of zeros may lead) or a named
/// reference of [`NAMED`].
fn reference(text: &str, at: usize) -> Option<(char, usize)> {
    let rest = &text[at + 1..];
    if let Some(number) = rest.strip_prefix('#') {
        let (digits, radix, skip) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (number, 10, 1),
        };
        let zeros = digits.bytes().take_while(|&b| b == b'0').count();
        let significant = &digits[zeros..];
        let len = significant
            .bytes()
            .take(8)
            .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
            .count();
        if zeros + len == 0 {
            return None;
        }
        let value = match len {
            0 => 0,
            _ => u32::from_str_radix(&significant[..len], radix).ok()?,
        };
        let end = at + 1 + skip + zeros + len;
        let end = end + usize::from(text[end..].starts_with(';'));
        return Some((char::from_u32(value)?, end));
    }
    let name_len = rest
        .bytes()
        .take(16)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    if !rest[name_len..].starts_with(';') {
        return None;
    }
    let name = &rest[..name_len];
    let c = NAMED
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))?
        .1;
    Some((c, at + 1 + name_len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_mix_of_escapes_and_knows_where_each_character_came_from() {
        let text = r#"a%22b:%252Fc\/d\u00e4&#34;e&quot;f%C3%A4&#x2F\\\"g"#;
        let decoded = decode(text).expect("escapes");
        assert_eq!(decoded.text, "a\"b:/c/dä\"e\"fä/\"g");
        let at = decoded.text.find("/c").unwrap();
        assert_eq!(&text[decoded.original(at..at + 2)], "%252Fc");
        let at = decoded.text.find("fä").unwrap();
        assert_eq!(&text[decoded.original(at..at + 3)], "f%C3%A4");
        assert!(decode("plain text").is_none());
        assert!(decode("100% & a\\b").is_none());
        // An escaped backslash, escaped once or more, and a reference with many zeros.
        let text = r"b1\\Cd2\\\\Ef3&#x000000006B;%E4x";
        let decoded = decode(text).expect("escapes");
        assert_eq!(decoded.text, "b1\\Cd2\\Ef3k\u{FFFD}x");
        let at = decoded.text.find("Ef3k").unwrap();
        assert_eq!(&text[decoded.original(at..at + 4)], "Ef3&#x000000006B;");
    }
}
