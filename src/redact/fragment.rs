//! Parts of a secret sent back on their own: a token cut to its first 200 characters in a
//! header, the middle of one in a JSON value, the rest of one after a prefix staging dropped.
//! The whole-secret patterns cannot find those, so every stretch of [`WINDOW`] bytes of each
//! form a secret takes in transit is kept, and a text is searched for them: where one is
//! found, those bytes are masked, and the stretches of a longer part overlap, so the whole part
//! is masked.
//!
//! A stretch that also occurs in what the suite shows openly (its base URL, the `env.` values
//! it uses, its variables) is not a part of a secret but of that text: a secret that is a URL
//! on the staging host would otherwise mask the host in every URL shown.

use hashbrown::HashSet;
use std::ops::Range;

/// The length of a stretch, in bytes: 12 characters of ASCII. Shorter parts of a secret say
/// little of it, and shorter stretches of ordinary text would match by chance.
pub const WINDOW: usize = 12;

/// The most stretches kept, of secrets and of open text each (about 18 MB each at most): the
/// forms of at least 35,000 characters of secrets (about 5 stretches per character of one of
/// letters and digits, up to 15 for one of punctuation). A secret learned past it has no
/// stretches: its parts are not masked, the whole of it still is.
const MAX_WINDOWS: usize = 1 << 19;

/// The longest start of a secret looked for before a cut, in bytes (see [`Fragments::starts`]).
const MAX_START: usize = 15;

/// The fewest characters of a start of a secret masked before a cut: shorter starts say too
/// little to matter, and masking them would hide ordinary text.
const MIN_START_CHARS: usize = 3;

#[derive(Default)]
pub struct Fragments {
    secret: HashSet<u128>,
    open: HashSet<u128>,
    /// The starts of each secret's forms, from [`MIN_START_CHARS`] characters to
    /// [`MAX_START`] bytes: an excerpt masked before a secret was learned (a later flow's
    /// `secret = true` capture) may end inside it, where only its start shows. A longer start
    /// holds a stretch, and is masked as any part.
    starts: HashSet<u128>,
}

/// Up to 15 bytes as a number: the bytes, zero-padded, and their count in the last byte.
fn key(bytes: &[u8]) -> u128 {
    let mut padded = [0u8; 16];
    padded[..bytes.len()].copy_from_slice(bytes);
    padded[15] = bytes.len() as u8;
    u128::from_le_bytes(padded)
}

fn windows(text: &str) -> impl Iterator<Item = u128> + '_ {
    text.as_bytes().windows(WINDOW).map(key)
}

impl Fragments {
    /// Keeps the stretches of `forms` (one secret's forms in transit) that open text does
    /// not hold, as far as [`MAX_WINDOWS`] allows.
    pub fn add_secret(&mut self, forms: &[String]) {
        for form in forms {
            for window in windows(form) {
                if self.secret.len() >= MAX_WINDOWS {
                    return;
                }
                if !self.open.contains(&window) {
                    self.secret.insert(window);
                }
            }
        }
    }

    /// Keeps the starts of `forms` (one secret's forms in transit) that are looked for before
    /// a cut, as far as [`MAX_WINDOWS`] allows.
    pub fn add_starts(&mut self, forms: &[String]) {
        for form in forms {
            let ends = form.char_indices().map(|(i, _)| i).skip(MIN_START_CHARS);
            for end in ends.chain([form.len()]).take_while(|&end| end <= MAX_START) {
                if self.starts.len() >= MAX_WINDOWS {
                    return;
                }
                self.starts.insert(key(&form.as_bytes()[..end]));
            }
        }
    }

    /// The length in bytes of the longest start of a secret that `text` ends with.
    pub fn start_before(&self, text: &str) -> Option<usize> {
        let ends = text.char_indices().rev().map(|(i, _)| i);
        ends.take_while(|&i| text.len() - i <= MAX_START)
            .filter(|&i| text[i..].chars().nth(MIN_START_CHARS - 1).is_some())
            .filter(|&i| self.starts.contains(&key(&text.as_bytes()[i..])))
            .map(|i| text.len() - i)
            .max()
    }

    /// Takes the stretches of `forms` (of one text the suite shows openly) for ordinary text.
    pub fn add_open(&mut self, forms: &[String]) {
        for form in forms {
            for window in windows(form) {
                if self.open.len() >= MAX_WINDOWS {
                    return;
                }
                self.open.insert(window);
                self.secret.remove(&window);
            }
        }
    }

    /// No part of any secret is known.
    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }

    /// Where `text` holds parts of a secret: each range from a character's start to one's
    /// end, in order, none overlapping or touching another.
    pub fn find(&self, text: &str) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = Vec::new();
        if self.secret.is_empty() {
            return found;
        }
        for (at, window) in windows(text).enumerate() {
            if !self.secret.contains(&window) {
                continue;
            }
            let mut start = at;
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = at + WINDOW;
            while !text.is_char_boundary(end) {
                end += 1;
            }
            match found.last_mut() {
                Some(last) if last.end >= start => last.end = last.end.max(end),
                _ => found.push(start..end),
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments(secret: &str, open: &str) -> Fragments {
        let mut f = Fragments::default();
        f.add_secret(&[secret.to_string()]);
        f.add_open(&[open.to_string()]);
        f
    }

    #[test]
    fn finds_each_part_of_a_secret_as_long_as_a_stretch() {
        let f = fragments("tok_9Qz7Xw2Lm4Vb8Kp3Rt6Yh1", "");
        let text = "a: tok_9Qz7Xw2Lm4 b: Lm4Vb8Kp3Rt6Y c: tok_9Qz7Xw2";
        let parts: Vec<&str> = f.find(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(parts, ["tok_9Qz7Xw2Lm4", "Lm4Vb8Kp3Rt6Y"]);
    }

    #[test]
    fn a_stretch_of_open_text_is_no_part_of_a_secret() {
        let f = fragments(
            "http://127.0.0.1:8080/hook?key=Zq7Xk9Wm2Vb4",
            "http://127.0.0.1:8080/",
        );
        let text = "GET http://127.0.0.1:8080/cart, key=Zq7Xk9Wm2Vb4";
        let parts: Vec<&str> = f.find(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(parts, ["key=Zq7Xk9Wm2Vb4"]);
    }

    #[test]
    fn a_part_is_widened_to_whole_characters() {
        let f = fragments("äöü-Zq7Xk9Wm2Vb4", "");
        let text = "xöü-Zq7Xk9Wm2y";
        let found = f.find(text);
        assert_eq!(found.len(), 1);
        assert_eq!(&text[found[0].clone()], "öü-Zq7Xk9Wm2");
    }
}
