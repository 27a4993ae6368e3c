//! Bytes from staging as text.
//!
//! A body or header value is UTF-8 where it is UTF-8, and each byte that is not is read as the
//! windows-1252 character it stands for (`0xE4` as `ä`, `0x80` as `€`), as a browser reads a
//! page that names no charset. A server that still speaks Latin-1 sends `Müller` as
//! `M\xFCller`: read so, checks see the `ü` it meant, and a secret it echoes in Latin-1 is
//! text the masking finds, where U+FFFD in place of each letter beyond ASCII would leave the
//! rest of the secret shown.

use std::borrow::Cow;

/// `bytes` as text: borrowed when they are UTF-8, each other byte as [`windows_1252`].
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().copied().map(windows_1252));
    }
    Cow::Owned(out)
}

/// The character windows-1252 writes as `byte`. Its five unassigned bytes (0x81, 0x8D, 0x8F,
/// 0x90, 0x9D) stand for the control characters of the same number, as in Latin-1 and in
/// browsers.
pub fn windows_1252(byte: u8) -> char {
    const FROM_0X80: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9f => FROM_0X80[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_borrowed_as_it_is() {
        assert!(matches!(
            text("Müller €".as_bytes()),
            Cow::Borrowed("Müller €")
        ));
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_windows_1252() {
        assert_eq!(text(b"M\xfcller \x80 5\xb0"), "Müller € 5°");
        // A lead byte followed by a continuation byte and then ASCII: both bytes are kept,
        // each as its own character.
        assert_eq!(text(b"\xe4\xb6s"), "ä¶s");
        // UTF-8 and Latin-1 in one body: each part as it was written.
        assert_eq!(
            text(
                "é="
                    .as_bytes()
                    .iter()
                    .chain(b"\xe9")
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice()
            ),
            "é=é"
        );
    }

    #[test]
    fn every_byte_has_a_character() {
        for byte in 0x80..=0xffu8 {
            let c = windows_1252(byte);
            assert!(byte >= 0xa0 || c as u32 >= 0x80, "{byte:#x}");
        }
        assert_eq!(windows_1252(0x9f), 'Ÿ');
        assert_eq!(windows_1252(0xa0), '\u{a0}');
    }
}
