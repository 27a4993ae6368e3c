//! The pattern that finds a secret in text, however the text encodes it.
//!
//! Guessing which encoder a server used (Python's `quote`, Go's `QueryEscape`, PHP's
//! `json_encode`...) keeps missing cases, so the pattern decodes instead: each character of
//! the secret may stand as itself or in any escape of it (percent-encoding in either case,
//! applied once or more, `+` for a space, a JSON `\uXXXX` or short escape, an HTML or XML
//! character reference), in any mix. Base64 cannot be matched a character at a time; it is matched by the part of the
//! encoding that the secret alone decides, at each of the three offsets it may start at.

use base64::Engine as _;
use regex::Regex;

/// The regex for `secret` and its base64 cores.
pub fn secret_regex(secret: &str) -> Option<Regex> {
    let mut alternatives = vec![escaped_chars(secret)];
    alternatives.extend(
        base64_cores(secret.as_bytes())
            .iter()
            .map(|c| regex::escape(c)),
    );
    Regex::new(&alternatives.join("|")).ok()
}

/// One alternation per character of `secret`.
fn escaped_chars(secret: &str) -> String {
    secret.chars().map(char_pattern).collect()
}

/// Every way one character may be written in text that passed through URLs, JSON or HTML.
fn char_pattern(c: char) -> String {
    let mut ways = escapes(c);
    if !c.is_ascii() {
        // A server that reads bytes as Latin-1 (Python's http.server reads headers so)
        // echoes each byte of the UTF-8 as a character of its own: `é` comes back as `Ã©`.
        let misread: String = c
            .encode_utf8(&mut [0; 4])
            .bytes()
            .map(|b| format!("(?:{})", escapes(char::from(b)).join("|")))
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
    if let Some(named) = html_entity(c) {
        // `&AMP;` and `&LT;` are read as `&amp;` and `&lt;`: the markup ones in any case.
        let case = if c.is_ascii() { "(?i)" } else { "" };
        ways.push(format!("(?:{case}{})", regex::escape(&named)));
    }
    ways
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

/// The named HTML entity of `c`: the five of markup, those of Latin-1 (U+00A0 to U+00FF),
/// which PHP's `htmlentities` and many templates write for `ä`, `ö`, `é`, ..., and those of
/// the other letters and punctuation of Western text (`€`, `–`, `’`, `…`, `™`, `Œ`, `Š`).
fn html_entity(c: char) -> Option<String> {
    let name = match c {
        '&' => "amp",
        '<' => "lt",
        '>' => "gt",
        '"' => "quot",
        '\'' => "apos",
        '\u{a0}'..='\u{ff}' => LATIN_1_ENTITIES[c as usize - 0xa0],
        '€' => "euro",
        '–' => "ndash",
        '—' => "mdash",
        '‘' => "lsquo",
        '’' => "rsquo",
        '‚' => "sbquo",
        '“' => "ldquo",
        '”' => "rdquo",
        '„' => "bdquo",
        '…' => "hellip",
        '™' => "trade",
        '•' => "bull",
        '†' => "dagger",
        '‡' => "Dagger",
        '‰' => "permil",
        '‹' => "lsaquo",
        '›' => "rsaquo",
        'Œ' => "OElig",
        'œ' => "oelig",
        'Š' => "Scaron",
        'š' => "scaron",
        'Ÿ' => "Yuml",
        'ƒ' => "fnof",
        'ˆ' => "circ",
        '˜' => "tilde",
        _ => return None,
    };
    Some(format!("&{name};"))
}

/// The HTML 4 names of U+00A0 to U+00FF, in order.
const LATIN_1_ENTITIES: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf",
    "laquo", "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro",
    "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest",
    "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute",
    "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute",
    "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute",
    "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
    "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde",
    "ograve", "oacute", "ocirc", "otilde", "ouml", "divide", "oslash", "ugrave", "uacute", "ucirc",
    "uuml", "yacute", "thorn", "yuml",
];

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
    fn finds_base64_at_any_offset() {
        let secret = "hunter2hunter2";
        for prefix in ["", "x", "xy", "xyz"] {
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{{\"pw\":\"{prefix}{secret}\"}}"));
            assert!(found(secret, &text), "offset of {prefix:?}: {text}");
        }
    }
}
