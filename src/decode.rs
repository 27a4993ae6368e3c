//! Bytes from staging as text.
//!
//! A body is read in the charset its `content-type` names (any label of the WHATWG Encoding
//! standard: `iso-8859-1`, `windows-1251`, `shift_jis`, `utf-16le`...; a byte order mark wins),
//! and as UTF-8 when it names none. So a server that still speaks Latin-1 and says so sends
//! `Müller` as `M\xFCller`, checks see the `ü` it meant, and a secret it echoes is text the
//! masking finds. Bytes that do not decode become U+FFFD: guessing a charset instead would
//! turn a secret in an unnamed one into letters of another script that spell it byte by byte.

use std::borrow::Cow;

/// A response body as text.
pub fn body<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Cow<'a, str> {
    let encoding = content_type
        .and_then(charset)
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0
}

/// The `charset` parameter of a `content-type` value, without quotes.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The character windows-1252 writes as `byte` (its five unassigned bytes stand for the
/// control characters of the same number, as browsers read them).
pub fn windows_1252(byte: u8) -> char {
    let bytes = [byte];
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&bytes);
    text.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_read_in_the_charset_it_names() {
        let latin1 = b"M\xfcller \x80";
        assert_eq!(
            body(latin1, Some("text/plain; charset=ISO-8859-1")),
            "Müller €"
        );
        assert_eq!(
            body(latin1, Some("text/plain;charset=\"latin1\"")),
            "Müller €"
        );
        let cyrillic = b"\xcf\xe0\xf0\xee\xeb\xfc";
        assert_eq!(
            body(cyrillic, Some("text/html; charset=windows-1251")),
            "Пароль"
        );
        assert_eq!(body("ok ä".as_bytes(), Some("application/json")), "ok ä");
    }

    #[test]
    fn a_body_that_names_no_charset_is_utf8() {
        assert_eq!(body(b"M\xfcller", None), "M\u{fffd}ller");
        assert_eq!(
            body(b"M\xfcller", Some("text/plain; charset=nonsense")),
            "M\u{fffd}ller"
        );
        // A byte order mark wins over what the header says.
        assert_eq!(body(b"\xff\xfeo\x00k\x00", Some("text/plain")), "ok");
    }

    #[test]
    fn windows_1252_has_a_character_for_every_byte() {
        assert_eq!(windows_1252(0x80), '€');
        assert_eq!(windows_1252(0x81), '\u{81}');
        assert_eq!(windows_1252(0xe4), 'ä');
        assert_eq!(windows_1252(b'a'), 'a');
    }
}
