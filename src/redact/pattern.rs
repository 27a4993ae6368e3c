//! The pattern that finds a secret in text, however the text encodes it.
//!
//! Guessing which encoder a server used (Python's `quote`, Go's `QueryEscape`, PHP's
//! `json_encode`...) keeps missing cases, so the pattern decodes instead: each character of
//! the secret may stand as itself or in any escape of it (percent-encoding in either case,
//! applied once or more, `+` for a space, a JSON `\uXXXX` or short escape, an HTML or XML
//! character reference), in any mix. Base64 cannot be matched a character at a time; it is matched by the part of the
//! encoding that the secret alone decides, at each of the three offsets it may start at.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use regex::Regex;
use std::borrow::Cow;

/// The largest secret (in [`decoding_cost`]) whose pattern decodes every character: the
/// pattern grows with the secret, and past this its compile fails (the regex crate's size
/// limit, measured: at about 800 characters of `€`, 1,300 of `ä`, 16,000 of `a`) after up to
/// seconds. A larger secret is found by its [`literal_forms`].
const MAX_DECODING_COST: usize = 12_000;

/// About how much of the pattern each character of `secret` makes: a letter beyond ASCII has
/// more escapes, and a misreading of each of its bytes.
fn decoding_cost(secret: &str) -> usize {
    secret
        .chars()
        .map(|c| match c.len_utf8() {
            1 => 1,
            2 => 9,
            _ => 15,
        })
        .sum()
}

/// About what learning `secret` costs, in time and memory, in the units of [`decoding_cost`]:
/// that cost where its pattern decodes each character; a secret too long for that is found by
/// its literal forms, which cost about a thirty-second of that per byte (measured in a debug
/// build: about 11 KB kept and 120 µs per ASCII character of a decoding pattern, 1.3 ms per
/// `ä`; about 250 B at the peak and 5 µs per byte of literal forms).
pub fn learning_cost(secret: &str) -> usize {
    let cost = decoding_cost(secret);
    if cost <= MAX_DECODING_COST {
        cost
    } else {
        secret.len().div_ceil(32)
    }
}

/// What finds one secret in text.
pub enum Finder {
    /// The pattern that decodes each character (see the module's comment).
    Decoding(Regex),
    /// The whole forms a long secret takes in transit, one by one.
    Literal(AhoCorasick),
}

impl Finder {
    /// Where in `text` the secret is, leftmost first.
    pub fn find_ranges(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        match self {
            Finder::Decoding(regex) => regex.find_iter(text).map(|m| m.range()).collect(),
            Finder::Literal(forms) => forms.find_iter(text).map(|m| m.range()).collect(),
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Finder::Decoding(regex) => regex.is_match(text),
            Finder::Literal(forms) => forms.is_match(text),
        }
    }

    /// `text` with every match replaced by `with`.
    pub fn replace_all<'t>(&self, text: &'t str, with: &str) -> Cow<'t, str> {
        match self {
            Finder::Decoding(regex) => regex.replace_all(text, with),
            Finder::Literal(forms) if forms.is_match(text) => {
                Cow::Owned(forms.replace_all(text, &vec![with; forms.patterns_len()]))
            }
            Finder::Literal(_) => Cow::Borrowed(text),
        }
    }
}

/// What finds `secret` in text: the decoding pattern and its base64 cores, or, for a secret
/// too long for that, its literal forms. `None` only if neither can be built.
pub fn secret_finder(secret: &str) -> Option<Finder> {
    if decoding_cost(secret) <= MAX_DECODING_COST
        && let Some(regex) = secret_regex(secret)
    {
        return Some(Finder::Decoding(regex));
    }
    literal_finder(literal_forms(secret))
}

/// What finds any of `forms`, as they are.
pub fn literal_finder(forms: Vec<String>) -> Option<Finder> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        // Not a DFA: for forms this long its build takes minutes.
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(forms)
        .ok()
        .map(Finder::Literal)
}

/// The regex for `secret` and its base64 cores.
pub fn secret_regex(secret: &str) -> Option<Regex> {
    let mut alternatives = vec![escaped_chars(secret)];
    // A core's `+` and `/` in any escape too: base64 in a URL is often percent-encoded, and
    // in JSON `/` may be `\/`.
    alternatives.extend(base64_cores(secret.as_bytes()).iter().map(|core| {
        core.chars()
            .map(|c| match c {
                '+' | '/' => char_pattern(c),
                c => regex::escape(c.encode_utf8(&mut [0; 4])),
            })
            .collect::<String>()
    }));
    Regex::new(&alternatives.join("|")).ok()
}

/// The forms a secret takes whole in transit: itself; JSON-escaped, with letters beyond ASCII
/// as themselves or as `\uXXXX`; percent-encoded (upper or lower case hex, a space as `%20` or
/// `+`); HTML-escaped; its UTF-8 bytes misread as Latin-1 or windows-1252; its base64 cores.
pub fn literal_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .get(1..json.len().saturating_sub(1))
        .unwrap_or_default();
    let ascii_json = |upper: bool| -> String {
        json.chars()
            .map(|c| {
                if c.is_ascii() {
                    return c.to_string();
                }
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| match upper {
                        true => format!("\\u{u:04X}"),
                        false => format!("\\u{u:04x}"),
                    })
                    .collect()
            })
            .collect()
    };
    // Upper or lower case hex, a space as `+` or `%20`, `/` kept (Python's `quote`) or not.
    let percent = |upper: bool, plus: bool, slash: bool| -> String {
        secret
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' if plus => "+".into(),
                b'/' if slash => "/".into(),
                _ if upper => format!("%{b:02X}"),
                _ => format!("%{b:02x}"),
            })
            .collect()
    };
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let misread = |byte: fn(u8) -> char| -> String { secret.bytes().map(byte).collect() };
    // Sent back in windows-1252 (`?` for what it cannot write) and read as UTF-8.
    let in_windows_1252: Vec<u8> = secret.chars().map(to_windows_1252).collect();
    let mut forms = vec![
        secret.to_string(),
        json.to_string(),
        // PHP's `json_encode` writes `/` as `\/`.
        json.replace('/', r"\/"),
        ascii_json(false),
        ascii_json(true),
        html,
        misread(char::from),
        misread(windows_1252),
        String::from_utf8_lossy(&in_windows_1252).into_owned(),
    ];
    for bits in 0..8 {
        forms.push(percent(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0));
    }
    forms.extend(base64_cores(secret.as_bytes()));
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

/// One alternation per character of `secret`, and one more for each run of characters beyond
/// ASCII: sent back in another charset than UTF-8, their bytes do not decode and become U+FFFD
/// (one to four per letter, fewer where a run's bytes merge), or the server wrote `?` for what
/// its charset has no letter for; either way the ASCII around them would show the rest of the
/// secret.
fn escaped_chars(secret: &str) -> String {
    let mut out = String::new();
    let mut rest = secret;
    while let Some(c) = rest.chars().next() {
        let run = rest
            .find(|next: char| next.is_ascii() != c.is_ascii())
            .unwrap_or(rest.len());
        let chars: String = rest[..run].chars().map(char_pattern).collect();
        if c.is_ascii() {
            out.push_str(&chars);
        } else {
            out.push_str(&format!(r"(?:{chars}|\x{{FFFD}}+|\?+)"));
        }
        rest = &rest[run..];
    }
    out
}

/// Every way one character may be written in text that passed through URLs, JSON or HTML.
fn char_pattern(c: char) -> String {
    let mut ways = escapes(c);
    if !c.is_ascii() {
        // A server that reads bytes as Latin-1 (Python's http.server reads headers so)
        // echoes each byte of the UTF-8 as a character of its own: `é` comes back as `Ã©`.
        // One that reads them as windows-1252 writes the bytes 0x80-0x9F as `€`, `‚`...:
        // `€` comes back as `â‚¬`.
        let misread: String = c
            .encode_utf8(&mut [0; 4])
            .bytes()
            .map(|b| {
                let mut ways = escapes(char::from(b));
                let windows = windows_1252(b);
                if windows != char::from(b) {
                    ways.extend(escapes(windows));
                }
                format!("(?:{})", ways.join("|"))
            })
            .collect();
        ways.push(misread);
    }
    format!("(?:{})", ways.join("|"))
}

/// `c` as itself and in each escape of it.
fn escapes(c: char) -> Vec<String> {
    let mut ways = vec![regex::escape(c.encode_utf8(&mut [0; 4]))];
    let mut utf8 = [0; 4];
    let percent: String = c
        .encode_utf8(&mut utf8)
        .bytes()
        .map(|b| percent_escape(&format!("{b:02x}")))
        .collect();
    ways.push(percent);
    if !c.is_ascii() {
        // Percent-encoded from Latin-1 (`ä` as `%E4`: Java's URLEncoder with ISO-8859-1,
        // Python's quote with encoding='latin-1') or by JavaScript's `escape` (`€` as `%u20AC`).
        if (c as u32) <= 0xff {
            ways.push(percent_escape(&format!("{:02x}", c as u32)));
        }
        let mut units = [0u16; 2];
        let escaped: String = c
            .encode_utf16(&mut units)
            .iter()
            .map(|u| percent_escape(&format!("u{u:04x}")))
            .collect();
        ways.push(escaped);
    }
    if c == ' ' {
        // A space form-encoded as `+`, then percent-encoded once or more.
        ways.push(format!(r"\+|{}", percent_escape("2b")));
    }
    let mut units = [0u16; 2];
    // A JSON escape's backslash may itself be escaped, any number of times: a request body
    // echoed inside a JSON string of an error message is escaped twice.
    let json: String = c
        .encode_utf16(&mut units)
        .iter()
        .map(|u| format!(r"\\+u{}", any_case_hex(&format!("{u:04x}"))))
        .collect();
    ways.push(json);
    if let Some(short) = json_short_escape(c) {
        ways.push(format!(r"\\+{}", regex::escape(&short[1..])));
    }
    // The `;` of a character reference may be left out (browsers read `&#228` too).
    ways.push(format!("&#0*{};?", c as u32));
    ways.push(format!(
        "&#[xX]0*{};?",
        any_case_hex(&format!("{:x}", c as u32))
    ));
    if !c.is_ascii_alphanumeric() {
        // A named character reference: HTML has more than 2,000 names (`&auml;`, `&alpha;`,
        // `&euro;`, `&sol;`, `&AMP;`), and encoders differ in which they write, so any name
        // stands for any character that is not an ASCII letter or digit. Text that differs
        // from a secret only in such a reference is masked too, which hides nothing else.
        ways.push("&[A-Za-z][A-Za-z0-9]*;".into());
    }
    ways
}

/// What windows-1252 writes with the bytes 0x80 to 0x9F. Its five unassigned bytes stand for
/// the control characters of the same number, as in Latin-1 and in browsers.
const WINDOWS_1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// The character windows-1252 writes as `byte`.
fn windows_1252(byte: u8) -> char {
    match byte {
        0x80..=0x9f => WINDOWS_1252_HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// The byte windows-1252 writes `c` as, or `?` (as Java's `getBytes` and Python's
/// `errors='replace'` do) when it has none.
fn to_windows_1252(c: char) -> u8 {
    match u8::try_from(c) {
        Ok(byte) if !(0x80..=0x9f).contains(&byte) => byte,
        _ => WINDOWS_1252_HIGH
            .iter()
            .position(|&high| high == c)
            .map_or(b'?', |i| 0x80 + i as u8),
    }
}

/// `%` and `code` (hex digits, `u20ac` for JavaScript's `escape`) in either case, percent-
/// encoded any number of times more. A URL that holds the secret encoded, put into a query
/// itself (a redirect's `next=`), has its `%` encoded as `%25`: `(?:25)*` keeps the pattern
/// linear in size and the match linear in time.
fn percent_escape(code: &str) -> String {
    format!("%(?:25)*{}", any_case_hex(code))
}

/// `2f` -> `2[fF]`.
fn any_case_hex(hex: &str) -> String {
    hex.chars()
        .map(|h| {
            if h.is_ascii_alphabetic() {
                format!("[{}{}]", h.to_ascii_lowercase(), h.to_ascii_uppercase())
            } else {
                h.to_string()
            }
        })
        .collect()
}

fn json_short_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '"' => r#"\""#,
        '\\' => r"\\",
        '/' => r"\/",
        '\n' => r"\n",
        '\r' => r"\r",
        '\t' => r"\t",
        '\u{8}' => r"\b",
        '\u{c}' => r"\f",
        _ => return None,
    })
}

/// The base64 characters that `bytes` alone decide, when they start 0, 1 or 2 bytes into
/// the encoded data, in the standard and the URL-safe alphabet.
pub fn base64_cores(bytes: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(bytes);
        data.extend_from_slice(&[0, 0]);
        // Character i holds bits [6i, 6i + 6): keep those inside the secret's bits.
        let first = (8 * offset).div_ceil(6);
        let end = 8 * (offset + bytes.len()) / 6;
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            let encoded = engine.encode(&data);
            if let Some(core) = encoded.get(first..end)
                && core.len() >= 8
                && !cores.iter().any(|c| c == core)
            {
                cores.push(core.to_string());
            }
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(secret: &str, text: &str) -> bool {
        secret_regex(secret).unwrap().is_match(text)
    }

    #[test]
    fn finds_a_secret_in_any_mix_of_escapes() {
        let s = "it's a secret/x~1";
        assert!(found(s, "it%27s+a+secret%2Fx~1"));
        assert!(found(s, "it%27s%20a%20secret/x%7E1"));
        assert!(found(s, r"it\u0027s a secret\/x~1"));
        assert!(found(s, "it&#39;s a secret&#x2F;x~1"));
        assert!(found("p<ss&w>rd123", r"p\u003css\u0026w\u003Erd123"));
        assert!(found("pässwörd<&>", r"p\u00e4ssw\u00f6rd&lt;&amp;&gt;"));
        assert!(found("🙂-smile-🙂", r"\ud83d\ude42-smile-%F0%9F%99%82"));
        // Escaped twice: a JSON body echoed inside a JSON string.
        assert!(found(r#"pa"ss\word12"#, r#"pa\\\"ss\\\\word12"#));
        assert!(!found(s, "its a secret/x~1"));
        // UTF-8 bytes read back as Latin-1, raw or escaped after the misreading.
        assert!(found("pässwörd<&>", "pÃ¤sswÃ¶rd<&>"));
        assert!(found("pässwörd<&>", r"p\u00c3\u00a4ssw%C3%83%C2%B6rd<&>"));
    }

    #[test]
    fn a_secret_too_long_to_decode_is_found_in_its_whole_forms() {
        let secret = format!("{}ä€ /x", "k".repeat(20_000));
        let finder = secret_finder(&secret).expect("a finder");
        assert!(matches!(finder, Finder::Literal(_)));
        let percent: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let json = serde_json::to_string(&secret).unwrap();
        for form in [secret.as_str(), &percent, &json[1..json.len() - 1]] {
            let text = format!("before {form} after");
            assert_eq!(finder.replace_all(&text, "***"), "before *** after");
        }
        let php_json = format!("{}ä€ \\/x", "k".repeat(20_000));
        let quoted = format!("{}%C3%A4%E2%82%AC%20/x", "k".repeat(20_000));
        // Sent back in windows-1252 and read as UTF-8.
        let bytes = [&"k".repeat(20_000).into_bytes()[..], b"\xe4\x80 /x"].concat();
        let latin1 = String::from_utf8_lossy(&bytes).into_owned();
        for form in [php_json, quoted, latin1] {
            assert!(finder.is_match(&form), "{}", &form[20_000..]);
        }
        let escaped = format!("{}\\u00E4\\u20AC /x", "k".repeat(20_000));
        assert!(finder.is_match(&escaped));
        assert!(!finder.is_match(&secret[1..]));
    }

    #[test]
    fn finds_a_secret_whose_letters_did_not_decode() {
        assert!(found(
            "Pä€sswörd-Secret-1",
            "P\u{fffd}ssw\u{fffd}rd-Secret-1"
        ));
        assert!(found("Пароль-Secret-2", "\u{fffd}\u{fffd}-Secret-2"));
        assert!(!found("Pä€sswörd-Secret-1", "Pssw\u{fffd}rd-Secret-1"));
    }

    #[test]
    fn finds_a_secret_written_with_any_named_entity() {
        assert!(found("αβγ/Secret-9", "&alpha;&beta;&gamma;&sol;Secret-9"));
        assert!(found("pässwörd&<x>", "p&auml;ssw&ouml;rd&AMP;&LT;x&gt;"));
        assert!(found("€-Secret-Value", "&euro;-Secret-Value"));
        // Letters and digits have no named reference: `&a;` is not an `a`.
        assert!(!found("abc-Secret-Value", "&a;bc-Secret-Value"));
    }

    #[test]
    fn finds_a_secret_percent_encoded_more_than_once() {
        let s = "s3cr3t/Key+Value=9";
        // Twice (a URL holding it put in a redirect's `next=`), three times, in a mix.
        assert!(found(
            s,
            "next=%2Fapi%3Fkey%3Ds3cr3t%252FKey%252BValue%253D9"
        ));
        assert!(found(s, "s3cr3t%25252fKey%25252BValue%2525253D9"));
        assert!(found(s, "s3cr3t/Key%2BValue%25253d9"));
        // A space form-encoded as `+`, then percent-encoded.
        assert!(found("a secret value", "a%2Bsecret%25252Bvalue"));
        // `%25` alone is a `%`, not the start of an escape of what follows it.
        assert!(!found(s, "s3cr3t%25%2FKey%2BValue%3D9"));
        assert!(!found(s, "s3cr3t%2525Key%2BValue%3D9"));
    }

    #[test]
    fn finds_base64_with_its_plus_and_slash_escaped() {
        // base64 of `Sk?Live>Q9zR7wXy~~` is `U2s/TGl2ZT5ROXpSN3dYeX5+`.
        let secret = "Sk?Live>Q9zR7wXy~~";
        for text in [
            "state=U2s%2FTGl2ZT5ROXpSN3dYeX5%2B",
            r#"{"s":"U2s\/TGl2ZT5ROXpSN3dYeX5+"}"#,
            "U2s&#x2F;TGl2ZT5ROXpSN3dYeX5&#43;",
        ] {
            assert!(found(secret, text), "{text}");
        }
    }

    #[test]
    fn finds_base64_at_any_offset() {
        let secret = "hunter2hunter2";
        for prefix in ["", "x", "xy", "xyz"] {
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{{\"pw\":\"{prefix}{secret}\"}}"));
            assert!(found(secret, &text), "offset of {prefix:?}: {text}");
        }
    }
}
