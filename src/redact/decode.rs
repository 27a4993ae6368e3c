//! A text with its escapes decoded, each character knowing the stretch of the text it came
//! from. A part of a secret may come back in a mix of escapes no one encoder writes (preflight's
//! own URL parser writes `"` as `%22` and keeps `:`; Go's `url.PathEscape` encodes `/` but not
//! `:`; PHP's `json_encode` writes `\/` and `\u00e4`; Go's `html.EscapeString` writes `"` as
//! `&#34;`): decoded, it reads as itself, and its parts are looked for there.

use std::ops::Range;

/// `text` decoded, and where each of its characters came from.
pub struct Decoded {
    pub text: String,
    /// For each character of `text`: where it starts in `text`, and the stretch of the
    /// original it came from.
    origins: Vec<(usize, Range<usize>)>,
}

impl Decoded {
    /// The stretch of the original that the characters of `range` (of [`Decoded::text`])
    /// came from.
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        let first = self.origins.partition_point(|(at, _)| *at < range.start);
        let last = self.origins.partition_point(|(at, _)| *at < range.end) - 1;
        self.origins[first].1.start..self.origins[last].1.end
    }
}

/// `text` with one layer or more of percent-encoding (`%2F`, `%252F`, `%u20AC`), JSON escapes
/// (`\/`, `\u00e4`, their backslash escaped again) and HTML character references (`&#34;`,
/// `&#x2F;`, the common named ones) decoded; `None` when it holds none.
pub fn decode(text: &str) -> Option<Decoded> {
    if !text.contains(['%', '\\', '&']) {
        return None;
    }
    // The bytes decoded, each with the stretch of `text` it came from.
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len());
    let mut from: Vec<Range<usize>> = Vec::with_capacity(text.len());
    let mut decoded_any = false;
    let mut at = 0;
    while at < text.len() {
        let escape = match text.as_bytes()[at] {
            b'%' => percent(text, at),
            b'\\' => json(text, at),
            b'&' => reference(text, at),
            _ => None,
        };
        match escape {
            Some((Unit::Byte(byte), end)) => {
                bytes.push(byte);
                from.push(at..end);
                at = end;
                decoded_any = true;
            }
            Some((Unit::Char(c), end)) => {
                for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                    bytes.push(byte);
                    from.push(at..end);
                }
                at = end;
                decoded_any = true;
            }
            None => {
                // A run of backslashes that escapes nothing is passed over whole: looking at
                // each of its backslashes again would take time in the square of its length.
                let run = match text.as_bytes()[at] {
                    b'\\' => text[at..].bytes().take_while(|&b| b == b'\\').count(),
                    _ => 1,
                };
                for i in at..at + run {
                    bytes.push(text.as_bytes()[i]);
                    from.push(i..i + 1);
                }
                at += run;
            }
        }
    }
    if !decoded_any {
        return None;
    }
    let mut decoded = Decoded {
        text: String::with_capacity(bytes.len()),
        origins: Vec::with_capacity(bytes.len()),
    };
    let mut at = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let end = at + c.len_utf8();
            decoded
                .origins
                .push((decoded.text.len(), from[at].start..from[end - 1].end));
            decoded.text.push(c);
            at = end;
        }
        if !chunk.invalid().is_empty() {
            let end = at + chunk.invalid().len();
            decoded
                .origins
                .push((decoded.text.len(), from[at].start..from[end - 1].end));
            decoded.text.push(char::REPLACEMENT_CHARACTER);
            at = end;
        }
    }
    Some(decoded)
}

enum Unit {
    Byte(u8),
    Char(char),
}

fn hex_at(text: &str, at: usize, digits: usize) -> Option<u32> {
    let hex = text.get(at..at + digits)?;
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

/// `%XX`, encoded again any number of times (`%252F`), or JavaScript's `%uXXXX`.
fn percent(text: &str, at: usize) -> Option<(Unit, usize)> {
    if text[at + 1..].starts_with(['u', 'U']) {
        let unit = hex_at(text, at + 2, 4)?;
        return Some((Unit::Char(char::from_u32(unit)?), at + 6));
    }
    let mut next = at + 1;
    loop {
        let byte = hex_at(text, next, 2)? as u8;
        next += 2;
        if byte == b'%' && hex_at(text, next, 2).is_some() {
            continue;
        }
        return Some((Unit::Byte(byte), next));
    }
}

/// A JSON escape, its backslash escaped again any number of times: `\u00e4` (a surrogate
/// pair as one character), `\/`, `\"`, `\n`...
fn json(text: &str, at: usize) -> Option<(Unit, usize)> {
    let after = at + text[at..].bytes().take_while(|&b| b == b'\\').count();
    let unit = |start: usize| -> Option<(u32, usize)> {
        let backslashes = text[start..].bytes().take_while(|&b| b == b'\\').count();
        let u = start + backslashes;
        (backslashes > 0 && text[u..].starts_with('u'))
            .then(|| hex_at(text, u + 1, 4).map(|unit| (unit, u + 5)))
            .flatten()
    };
    match text.as_bytes().get(after)? {
        b'u' => {
            let (high, end) = unit(at)?;
            if (0xD800..0xDC00).contains(&high)
                && let Some((low, end)) = unit(end)
                && (0xDC00..0xE000).contains(&low)
            {
                let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
                return Some((Unit::Char(c), end));
            }
            Some((Unit::Char(char::from_u32(high)?), end))
        }
        b'/' => Some((Unit::Char('/'), after + 1)),
        b'"' => Some((Unit::Char('"'), after + 1)),
        b'\'' => Some((Unit::Char('\''), after + 1)),
        b'n' => Some((Unit::Char('\n'), after + 1)),
        b't' => Some((Unit::Char('\t'), after + 1)),
        b'r' => Some((Unit::Char('\r'), after + 1)),
        _ => None,
    }
}

/// The named references encoders write for ASCII punctuation (Python's `html.escape`, PHP's
/// `htmlspecialchars`, HTML5's own names for URL characters).
const NAMED: [(&str, char); 17] = [
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

/// `&#34;`, `&#x2F;` (the `;` may be left out) or a named reference of [`NAMED`].
fn reference(text: &str, at: usize) -> Option<(Unit, usize)> {
    let rest = &text[at + 1..];
    if let Some(number) = rest.strip_prefix('#') {
        let (digits, radix, skip) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (number, 10, 1),
        };
        let len = digits
            .bytes()
            .take(8)
            .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
            .count();
        let value = u32::from_str_radix(digits.get(..len)?, radix).ok()?;
        let end = at + 1 + skip + len;
        let end = end + usize::from(text[end..].starts_with(';'));
        return Some((Unit::Char(char::from_u32(value)?), end));
    }
    let name_len = rest
        .bytes()
        .take(8)
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
    Some((Unit::Char(c), at + 1 + name_len + 1))
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
    }
}
