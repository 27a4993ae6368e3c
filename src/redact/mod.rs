//! Secrets: values that must never be shown, and the masking of what came back from staging.
//!
//! Masking happens in two places, both at the source:
//! - what preflight *renders* (URLs, headers, expected values) is rendered from the templates
//!   a second time with every sensitive placeholder written as `***` (see
//!   `template::Template::render_shown`), so no encoding of a secret can reach it;
//! - what *staging sends back* (actual values, body excerpts, redirect URLs, error texts) is
//!   masked by value here, by the [`Redactor`], before it is cut to an excerpt: decoded JSON
//!   values of every type, and the text forms a secret can take in transit.
//!
//! This module sits below every other one: it knows nothing of suites, runs or reports.

mod decode;
mod fragment;
mod pattern;

pub use pattern::learning_cost;

use base64::Engine as _;
use serde_json::Value;
use std::sync::RwLock;

pub const MASK: &str = "***";

/// Secrets shorter than this cannot be masked inside text without wrecking every output
/// (a secret `e` would mask every `e`): `secret.` variables must be at least this long.
pub const MIN_SECRET_CHARS: usize = 8;

/// Header names whose values are shown as `***` unless `--show-sensitive-headers`.
pub const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// A value that must never be shown. It has no `Display`, and its `Debug` prints `***`, so
/// that no `{:?}` of a plan or a scope can print it by accident; [`Secret::expose`] is the
/// one door to the value, for the code that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Masks values that came back from staging. Implemented by [`Redactor`]; [`NoMask`] is for
/// judgements that are never shown (retry decisions, readiness polls).
pub trait Mask {
    /// `text` with every form of every secret replaced by `***`; a text longer than any
    /// output shows is cut first (marked `…`: see [`Redactor::shown_head`]).
    fn mask_text(&self, text: &str) -> String;
    /// A JSON value with every secret replaced, whatever its type: a number, boolean or
    /// string equal to a secret becomes `"***"`; strings and object keys are masked as text.
    fn mask_value(&self, value: &Value) -> Value;
    /// The first `max` characters of `text` masked (see [`excerpt`]): only as much of `text`
    /// is masked as they may show, where [`Mask::mask_text`] masks as much as any output shows.
    fn mask_excerpt(&self, text: &str, max: usize) -> String {
        excerpt(&self.mask_text(text), max)
    }
    /// A header name that came from staging (a server may echo a value into one), masked
    /// like text.
    fn mask_header_name(&self, name: &str) -> String {
        self.mask_text(name)
    }
}

/// Masks nothing.
pub struct NoMask;

impl Mask for NoMask {
    fn mask_text(&self, text: &str) -> String {
        text.to_string()
    }
    fn mask_value(&self, value: &Value) -> Value {
        value.clone()
    }
}

/// Knows every secret value of the run: `secret.` variables, secret captures, and the values
/// the HTTP layer derives from them (a Basic-auth header). Its `Debug` shows only counts.
#[derive(Default)]
pub struct Redactor {
    state: RwLock<Forms>,
}

#[derive(Default)]
struct Forms {
    /// Whole values: a JSON number, boolean or string equal to one of these is masked.
    values: Vec<String>,
    /// One pattern per secret of [`MIN_SECRET_CHARS`] or more (see [`pattern`]), longest
    /// secret first so that a secret holding another is replaced whole.
    patterns: Vec<(usize, pattern::Finder)>,
    /// The patterns of the secrets that hold characters a reader does not see (whitespace
    /// above all: a passphrase), without them: what [`Redactor::mask_unseen`] looks for.
    visible_patterns: Vec<pattern::Finder>,
    /// The patterns of the secrets that hold capital letters, lower-cased: header names
    /// arrive lower-cased, so that is how a secret echoed into one comes back. For header
    /// names only: anywhere else a lower-cased copy is other text.
    lower_patterns: Vec<(usize, pattern::Finder)>,
    /// Lower-cased secrets whose pattern is not built yet: only `-vv` shows header names, so
    /// a run without it never pays for compiling them.
    lower_pending: Vec<String>,
    /// The [`learning_cost`] of the secrets learned during the run (see [`Redactor::learn`]).
    learned_cost: usize,
    /// The parts of every secret: what is masked of one that staging sent back cut short.
    fragments: fragment::Fragments,
    /// The same, lower-cased: for header names, as [`Forms::lower_patterns`].
    lower_fragments: fragment::Fragments,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        write!(
            f,
            "Redactor({} values, {} patterns)",
            state.values.len(),
            state.patterns.len()
        )
    }
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Redactor {
        let redactor = Redactor::default();
        for secret in secrets {
            redactor.insert(secret.expose());
        }
        redactor
    }

    /// Tells it the texts the suite shows openly (its base URL, the `env.` values it uses, its
    /// variables' strings), so that a part of a secret that is also a part of one of them (the
    /// staging host of a secret URL) is not masked as a part of the secret. A text that holds a
    /// secret is not taken.
    pub fn with_open_texts<'a>(self, texts: impl IntoIterator<Item = &'a str>) -> Redactor {
        let forms: Vec<String> = texts
            .into_iter()
            .filter(|text| !self.holds_whole_secret(text))
            .flat_map(cut_forms)
            .collect();
        // All of them: a lower-cased secret's run is open when the open text holds it as it is.
        let lower: Vec<String> = forms.iter().map(|f| f.to_ascii_lowercase()).collect();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.fragments.add_open(&forms);
        state.lower_fragments.add_open(&lower);
        drop(state);
        self
    }

    /// Adds a secret learned during the run (a `secret = true` capture, a derived value). The
    /// report is masked again when it is built, so output made before it learned one is
    /// covered too.
    pub fn learn(&self, secret: &str) {
        if self.insert(secret) {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.learned_cost += learning_cost(secret);
        }
    }

    /// The [`learning_cost`] of every secret it learned during the run.
    pub fn learned_cost(&self) -> usize {
        self.read().learned_cost
    }

    /// How many secret values it knows: a number that grows when it learns one, so that what
    /// was masked before can be told to need masking again.
    pub fn known(&self) -> usize {
        self.read().values.len()
    }

    /// How many of `secrets` it does not know yet: what learning them would add to
    /// [`Redactor::known`] (leaving out the trimmed copies of those with whitespace around them).
    pub fn unknown<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) -> usize {
        let state = self.read();
        let new: std::collections::HashSet<&str> = secrets
            .into_iter()
            .filter(|s| !s.trim().is_empty() && !state.values.iter().any(|v| v == s))
            .collect();
        new.len()
    }

    /// Whether `text` holds a secret in any form masking finds: all of it, however long
    /// (what is sent, not what is shown).
    pub fn holds_secret(&self, text: &str) -> bool {
        !self.is_empty()
            && (self.read().values.iter().any(|v| v == text) || self.mask_all(text) != text)
    }

    /// Whether `text` holds a whole secret, as it is or in a form its pattern finds.
    fn holds_whole_secret(&self, text: &str) -> bool {
        let state = self.read();
        state.values.iter().any(|v| v == text)
            || state.patterns.iter().any(|(_, p)| p.is_match(text))
    }

    /// No secret known: nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.read().values.is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Forms> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `secret` was new to it.
    fn insert(&self, secret: &str) -> bool {
        let trimmed = secret.trim();
        if trimmed.is_empty() || self.read().values.iter().any(|v| v == secret) {
            return false;
        }
        // Patterns are built outside the lock: compiling one takes a moment.
        let long_enough = trimmed.chars().count() >= MIN_SECRET_CHARS;
        let mut texts = vec![secret];
        if trimmed != secret {
            texts.push(trimmed);
        }
        let patterns: Vec<(usize, pattern::Finder)> = texts
            .iter()
            .filter(|_| long_enough)
            .filter_map(|s| pattern::secret_finder(s).map(|r| (s.len(), r)))
            .collect();
        let visible: String = secret.chars().filter(|&c| !shows_nothing(c)).collect();
        let visible_pattern =
            (long_enough && visible != secret && visible.chars().count() >= MIN_SECRET_CHARS)
                .then(|| pattern::secret_finder(&visible))
                .flatten();
        let wide = if long_enough {
            wide_misreadings(trimmed)
        } else {
            Vec::new()
        };
        let wide_pattern = (!wide.is_empty())
            .then(|| pattern::literal_finder(wide.clone()))
            .flatten();
        // The forms of each text: all of them for the starts at a cut, the trimmed one's (the
        // last) and those of the secret without what a reader does not see for its parts.
        let forms: Vec<Vec<String>> = texts.iter().map(|t| cut_forms(t)).collect();
        let start_forms = forms.concat();
        let mut fragment_forms = Vec::new();
        if long_enough {
            fragment_forms = forms.last().cloned().unwrap_or_default();
            if visible != trimmed {
                fragment_forms.extend(cut_forms(&visible));
            }
            fragment_forms.extend(wide);
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.values.iter().any(|v| v == secret) {
            return false;
        }
        state.fragments.add_secret(&fragment_forms);
        state
            .lower_fragments
            .add_secret(&lower_cased(&fragment_forms));
        state.fragments.add_starts(&start_forms);
        state.values.extend(texts.iter().map(|t| t.to_string()));
        state.patterns.extend(patterns);
        state.visible_patterns.extend(visible_pattern);
        state.visible_patterns.extend(wide_pattern);
        state
            .patterns
            .sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        let lower = texts
            .iter()
            .filter(|_| long_enough)
            .map(|s| s.to_ascii_lowercase())
            .filter(|lower| !texts.contains(&lower.as_str()));
        state.lower_pending.extend(lower);
        true
    }

    /// Builds the patterns of the lower-cased secrets not built yet, outside the lock like
    /// [`Redactor::insert`]; one that another thread built meanwhile is not added twice.
    fn build_lower_patterns(&self) {
        let pending = {
            let state = self.read();
            if state.lower_pending.is_empty() {
                return;
            }
            state.lower_pending.clone()
        };
        let built: Vec<(String, pattern::Finder)> = pending
            .into_iter()
            .filter_map(|lower| pattern::secret_finder(&lower).map(|r| (lower, r)))
            .collect();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for (lower, regex) in built {
            if let Some(i) = state.lower_pending.iter().position(|p| *p == lower) {
                state.lower_pending.swap_remove(i);
                state.lower_patterns.push((lower.len(), regex));
            }
        }
        state
            .lower_patterns
            .sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    }

    /// Whether a number's text is a secret, or equals one by value (`12345678.0`).
    fn is_secret_number(&self, number: &serde_json::Number) -> bool {
        let text = number.to_string();
        let value = number.as_f64();
        let state = self.read();
        state
            .values
            .iter()
            .any(|v| *v == text || (value.is_some() && v.trim().parse::<f64>().ok() == value))
            || state.patterns.iter().any(|(_, p)| p.is_match(&text))
            || !state.fragments.find(&text).is_empty()
    }
}

/// How much of a text is masked and may be shown, at least (see [`Redactor::shown_head`]):
/// 32 times the longest excerpt any output shows, in characters of up to four bytes.
const SHOWN_HEAD_BYTES: usize = 64 * 1024;

/// The longest excerpt of a text any output shows, in characters (`-vv`'s body).
const LONGEST_EXCERPT_CHARS: usize = 2_000;

/// What ends an excerpt cut short ([`excerpt`]).
pub const CUT: char = '…';

/// The first `max` characters of `text`, marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}{CUT}", &text[..cut]),
        None => text.to_string(),
    }
}

/// The forms of a secret whose start is looked for before a cut: its whole forms in transit
/// ([`pattern::literal_forms`]), and more encoders' ways: every character but letters
/// and digits percent-encoded (upper or lower case hex) and that encoded once more, and Go's
/// JSON, which writes `&`, `<` and `>` as `\u0026`, `\u003c` and `\u003e`.
fn cut_forms(secret: &str) -> Vec<String> {
    let percent = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let lower_hex = percent
        .split('%')
        .enumerate()
        .map(|(i, part)| match part.get(..2) {
            Some(hex) if i > 0 => format!("%{}{}", hex.to_ascii_lowercase(), &part[2..]),
            _ => part.to_string(),
        })
        .collect();
    let go_json = json_escaped(secret)
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let twice = percent.replace('%', "%25");
    let mut forms = pattern::literal_forms(secret);
    forms.extend([
        // JavaScript's encodeURIComponent, WHATWG form encoding, Python's html.escape.
        percent_encoding::utf8_percent_encode(secret, URI_COMPONENT).to_string(),
        percent_encoding::utf8_percent_encode(secret, FORM_URLENCODED)
            .to_string()
            .replace("%20", "+"),
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;"),
        percent,
        lower_hex,
        go_json,
        twice,
    ]);
    forms
}

/// What JavaScript's `encodeURIComponent` encodes.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// What the WHATWG form encoding (`URLSearchParams`) encodes; it writes a space as `+`.
const FORM_URLENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The forms of `forms` that lower-casing changes, lower-cased.
fn lower_cased(forms: &[String]) -> Vec<String> {
    forms
        .iter()
        .map(|form| form.to_ascii_lowercase())
        .filter(|lower| !forms.contains(lower))
        .collect()
}

/// Where `text` holds parts of a secret of any of `sets` (see [`fragment`]): as it is, and in
/// a mix of escapes no one encoder writes (see [`decode`]). Each view of `text` is built once,
/// for every set.
fn parts_in(sets: &[&fragment::Fragments], text: &str) -> Vec<std::ops::Range<usize>> {
    let sets: Vec<&fragment::Fragments> = sets.iter().copied().filter(|s| !s.is_empty()).collect();
    if sets.is_empty() {
        return Vec::new();
    }
    let find = |view: &str| -> Vec<std::ops::Range<usize>> {
        sets.iter().flat_map(|set| set.find(view)).collect()
    };
    let mut parts = find(text);
    // Split by what a reader does not see, as it is (`\u{200B}`, a line break, `\x1b[0m`).
    let visible = Visible::of(text, Sequences::Dropped);
    if visible.left_out {
        parts.extend(find(&visible.text).into_iter().map(|r| visible.original(r)));
    }
    if let Some(decoded) = decode::decode(text) {
        parts.extend(find(&decoded.text).into_iter().map(|r| decoded.original(r)));
        // Split by what a reader does not see, written as escapes (`%00`, `&shy;`, `\u001b[0m`).
        let visible = Visible::of(&decoded.text, Sequences::Dropped);
        if visible.left_out {
            let found = find(&visible.text).into_iter().map(|r| visible.original(r));
            parts.extend(found.map(|r| decoded.original(r)));
        }
    }
    parts
}

/// A text without what a reader does not see (see [`visible_chars`]), and where each stretch
/// of it starts in the text: one entry per stretch left out, not per character.
struct Visible {
    text: String,
    /// Where the view and the text go on together after something was left out, in order.
    jumps: Vec<(usize, usize)>,
    /// Something was left out: the view is not the text.
    left_out: bool,
}

impl Visible {
    fn of(text: &str, sequences: Sequences) -> Visible {
        let mut visible = Visible {
            text: String::with_capacity(text.len()),
            jumps: Vec::new(),
            left_out: false,
        };
        let mut expected = 0;
        for (at, c) in visible_chars(text, sequences) {
            if at != expected || visible.jumps.is_empty() {
                visible.jumps.push((visible.text.len(), at));
            }
            visible.text.push(c);
            expected = at + c.len_utf8();
        }
        visible.left_out = visible.text.len() != text.len();
        visible
    }

    /// The stretch of the text that the characters of `range` (of the view, not empty) span.
    fn original(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let at = |offset: usize| self.jumps[self.jumps.partition_point(|j| j.0 <= offset) - 1];
        let (view, text) = at(range.start);
        let start = text + (range.start - view);
        let (view, text) = at(range.end - 1);
        start..text + (range.end - view)
    }
}

/// `text` with each of `ranges` (in any order, overlapping or not) written as one `***`.
fn masked_ranges(text: &str, mut ranges: Vec<std::ops::Range<usize>>) -> String {
    if ranges.is_empty() {
        return text.to_string();
    }
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for range in ranges {
        if range.end <= copied {
            continue;
        }
        if range.start >= copied {
            out.push_str(&text[copied..range.start]);
            out.push_str(MASK);
        }
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `text` with every start of a secret (in any of its [`cut_forms`], see
/// [`fragment::Fragments::start_before`]) that ends right before a cut mark replaced by `***`.
fn mask_cut_secrets(text: &str, fragments: &fragment::Fragments) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(CUT) {
        let before = &rest[..at];
        let kept = &before[..start_at_cut(fragments, before)];
        out.push_str(kept);
        if kept.len() < before.len() {
            out.push_str(MASK);
        }
        out.push(CUT);
        rest = &rest[at + CUT.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// How far back before a cut a start of a secret written in escapes is looked for: 15 bytes
/// of a secret, each in an escape of up to 16 bytes.
const ESCAPED_START_BYTES: usize = 256;

/// Where the start of a secret that `before` (the text before a cut) ends with begins, or its
/// end: the start as one of its forms, or written in a mix of escapes no one encoder writes
/// (`Zq%37Xk…`, `&#x5A;q7Xk…`), found in the text decoded (see [`decode`]).
fn start_at_cut(fragments: &fragment::Fragments, before: &str) -> usize {
    let as_written = fragments.start_before(before).map(|len| before.len() - len);
    let mut from = before.len().saturating_sub(ESCAPED_START_BYTES);
    while !before.is_char_boundary(from) {
        from += 1;
    }
    let decoded = decode::decode(&before[from..]).and_then(|decoded| {
        let len = fragments.start_before(&decoded.text)?;
        let end = decoded.text.len();
        Some(from + decoded.original(end - len..end).start)
    });
    as_written
        .into_iter()
        .chain(decoded)
        .min()
        .unwrap_or(before.len())
}

fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap_or_else(|_| "\"\"".into());
    quoted[1..quoted.len() - 1].to_string()
}

/// Whether a reader sees nothing of `c` between a secret's letters: a control character (the
/// JUnit report's writer drops all but the line feed, and the others are written as `\u{0}`
/// escapes to read past), whitespace (the terminal joins a body's lines with one space, and a
/// passphrase echoed over two lines reads as itself), or a character that shows nothing: a
/// format character (U+200B, U+00AD, U+202E...), the combining grapheme joiner, a variation
/// selector, a Hangul filler, a Unicode tag.
fn shows_nothing(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// How `secret` reads when staging sent it back in UTF-16 or UTF-32 (either byte order) and
/// those bytes were read as UTF-8, once what a reader does not see is left out: `Hasło` in
/// UTF-16LE is `H\0a\0s\0B\x01o\0` and reads `HasBo`. Only the forms with 4 ASCII letters or
/// digits or more: a secret of letters beyond ASCII alone reads as a run of U+FFFD. An ASCII
/// secret reads as itself, which its own patterns find.
fn wide_misreadings(secret: &str) -> Vec<String> {
    if secret.is_ascii() {
        return Vec::new();
    }
    let units: Vec<u16> = secret.encode_utf16().collect();
    let scalars: Vec<u32> = secret.chars().map(u32::from).collect();
    let encodings: [Vec<u8>; 4] = [
        units.iter().flat_map(|u| u.to_le_bytes()).collect(),
        units.iter().flat_map(|u| u.to_be_bytes()).collect(),
        scalars.iter().flat_map(|u| u.to_le_bytes()).collect(),
        scalars.iter().flat_map(|u| u.to_be_bytes()).collect(),
    ];
    let mut forms: Vec<String> = encodings
        .iter()
        .map(|bytes| {
            let read = String::from_utf8_lossy(bytes);
            visible_chars(&read, Sequences::Shown)
                .map(|(_, c)| c)
                .collect()
        })
        .filter(|form: &String| form.chars().filter(char::is_ascii_alphanumeric).count() >= 4)
        .collect();
    forms.sort();
    forms.dedup();
    forms
}

/// How [`visible_chars`] reads ANSI escape sequences. Which letters a reader takes for part
/// of one is a guess (`\x1b[31m` is a colour, but `W` ends `\x1b[W` as well as `m` does), so
/// the text is searched in each reading.
#[derive(Clone, Copy, PartialEq)]
enum Sequences {
    /// Only the introducer is left out: every output shows a control character as an escape
    /// (`\u{1b}`), followed by what comes after it.
    Shown,
    /// Left out whole, as a terminal would take them away.
    Dropped,
    /// Left out but for the final character of a CSI or another escape (`\x1b[2W` reads
    /// `W`, `\x1b7` reads `7`).
    FinalShown,
}

/// The characters of `text` that a reader sees, with where each starts in `text`: without
/// those that show nothing, and without ANSI escape sequences as `sequences` reads them
/// (`\x1b[31m`, `\x1b]0;title\x07`).
fn visible_chars(text: &str, sequences: Sequences) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some((at, c)) = chars.next() {
            // `[`: a CSI; `]`: a string (OSC, DCS, SOS, PM, APC); `F`: any other escape
            // (`\x1b7`, `\x1b(B`).
            let sequence = match c {
                _ if sequences == Sequences::Shown => None,
                '\u{1b}' => match chars.peek().map(|&(_, next)| next) {
                    Some('[') => chars.next().map(|_| '['),
                    Some(']' | 'P' | 'X' | '^' | '_') => chars.next().map(|_| ']'),
                    Some(' '..='~') => Some('F'),
                    _ => None,
                },
                '\u{9b}' => Some('['),
                '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => Some(']'),
                _ => None,
            };
            match sequence {
                // CSI: parameters and intermediates, up to one final character.
                Some('[') => while chars.next_if(|(_, c)| matches!(c, ' '..='?')).is_some() {},
                // Another escape: intermediates, up to one final character.
                Some('F') => while chars.next_if(|(_, c)| matches!(c, ' '..='/')).is_some() {},
                // A string: up to a BEL or a string terminator.
                Some(_) => {
                    while let Some((_, c)) = chars.next() {
                        if matches!(c, '\u{7}' | '\u{9c}') {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if(|(_, c)| *c == '\\');
                            break;
                        }
                    }
                }
                None if shows_nothing(c) => {}
                None => return Some((at, c)),
            }
            if sequences == Sequences::Dropped {
                match sequence {
                    Some('[') => chars.next_if(|(_, c)| matches!(c, '@'..='~')),
                    Some('F') => chars.next_if(|(_, c)| matches!(c, '0'..='~')),
                    _ => None,
                };
            }
        }
        None
    })
}

impl Redactor {
    /// `text` with every secret that shows once what a reader does not see is left out (see
    /// [`visible_chars`], in each reading of escape sequences) masked, over the whole stretch of `text` it spans: a secret split by
    /// controls (echoed in UTF-16, `T\0o\0p`), zero-width characters or ANSI escapes, or whose
    /// words staging wrapped onto other lines. The rest of `text` stays as it is.
    fn mask_unseen(&self, text: String) -> String {
        if self.read().patterns.is_empty() {
            return text;
        }
        let mut text = self.mask_in_view(text, Sequences::Shown);
        if text.contains([
            '\u{1b}', '\u{90}', '\u{98}', '\u{9b}', '\u{9d}', '\u{9e}', '\u{9f}',
        ]) {
            for sequences in [Sequences::Dropped, Sequences::FinalShown] {
                text = self.mask_in_view(text, sequences);
            }
        }
        self.mask_split_by_escapes(text)
    }

    /// `text` with every secret masked that shows once its escapes are decoded and what a
    /// reader does not see is left out (`Zq7X%0Ak9`, `Zq7&shy;Xk9`, `%00` after each letter
    /// as from UTF-16). Parts of 12 bytes or more are found so by [`parts_in`]; a shorter
    /// secret only here.
    fn mask_split_by_escapes(&self, text: String) -> String {
        let Some(decoded) = decode::decode(&text) else {
            return text;
        };
        let visible = Visible::of(&decoded.text, Sequences::Dropped);
        if !visible.left_out {
            return text;
        }
        let found: Vec<std::ops::Range<usize>> = {
            let state = self.read();
            let patterns = state.patterns.iter().map(|(_, p)| p);
            patterns
                .chain(&state.visible_patterns)
                .flat_map(|p| p.find_ranges(&visible.text))
                .filter(|r| !r.is_empty())
                .map(|r| decoded.original(visible.original(r)))
                .collect()
        };
        if found.is_empty() {
            return text;
        }
        masked_ranges(&text, found)
    }

    /// [`Redactor::mask_unseen`] in one view of `text` (see [`visible_chars`]).
    fn mask_in_view(&self, text: String, sequences: Sequences) -> String {
        let visible = Visible::of(&text, sequences);
        let found: Vec<std::ops::Range<usize>> = {
            let state = self.read();
            // Where nothing was left out, `text` itself was searched for every pattern
            // already; not for a secret without its whitespace (`correcthorse...`).
            let patterns = state.patterns.iter().map(|(_, p)| p);
            let patterns = patterns.filter(|_| visible.left_out);
            let parts = match visible.left_out {
                true => state.fragments.find(&visible.text),
                false => Vec::new(),
            };
            patterns
                .chain(&state.visible_patterns)
                .flat_map(|p| p.find_ranges(&visible.text))
                .chain(parts)
                .filter(|r| !r.is_empty())
                .map(|r| visible.original(r))
                .collect()
        };
        if found.is_empty() {
            return text;
        }
        masked_ranges(&text, found)
    }

    /// What of `text` is masked: all of it, or, past [`SHOWN_HEAD_BYTES`] and as far again as
    /// the longest secret's forms may reach, its start marked cut (`…`), so that the start of
    /// a secret at the end is masked as at any cut. No output shows more than 2,000
    /// characters of a text, and masking all of a 10 MiB body against hundreds of secrets
    /// took minutes, past the deadline.
    fn shown_head<'t>(&self, text: &'t str, head_bytes: usize) -> std::borrow::Cow<'t, str> {
        let longest = self.read().values.iter().map(String::len).max();
        let reach = head_bytes + 16 * longest.unwrap_or(0);
        if text.len() <= reach {
            return text.into();
        }
        let end = (0..=reach).rev().find(|&i| text.is_char_boundary(i));
        format!("{}{CUT}", &text[..end.unwrap_or(0)]).into()
    }

    /// A masked head (see [`Redactor::shown_head`]) that copies of a long secret early in
    /// the text shrank to less than an output may show, so that its cut would be shown:
    /// without its end, as far back as the longest secret's forms reach, so that no start
    /// of a secret the cut split shows in a form the cut does not know (attack finding).
    /// Masking never lengthens text, so that end holds all that was past the reach. Masking
    /// all of the text instead took minutes with many secrets (attack finding).
    fn short_of_the_cut(&self, masked: String) -> String {
        let longest = self.read().values.iter().map(String::len).max();
        let body = masked.strip_suffix(CUT).unwrap_or(&masked);
        let mut end = body.len().saturating_sub(16 * longest.unwrap_or(0));
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{CUT}", &body[..end])
    }

    /// `text` with every secret masked: whole ones in every form and view, then the starts
    /// of secrets at a cut, then parts (see [`fragment`]). Parts come last: a part masked
    /// first would leave a whole secret split over lines in pieces no pattern finds.
    fn mask_all(&self, text: &str) -> String {
        let out = self.mask_unseen(self.mask_whole(text));
        let state = self.read();
        // Lower-cased too: a URL's host comes back lower-cased.
        let parts = parts_in(&[&state.fragments, &state.lower_fragments], &out);
        masked_ranges(&out, parts)
    }

    /// `text` with every secret pattern's matches, and the starts of secrets at a cut, masked.
    fn mask_whole(&self, text: &str) -> String {
        let state = self.read();
        let mut out = std::borrow::Cow::Borrowed(text);
        for (_, pattern) in &state.patterns {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, MASK).into_owned().into();
            }
        }
        if out.contains(CUT) {
            out = mask_cut_secrets(&out, &state.fragments).into();
        }
        out.into_owned()
    }
}

impl Mask for Redactor {
    fn mask_text(&self, text: &str) -> String {
        if self.is_empty() {
            return self.shown_head(text, SHOWN_HEAD_BYTES).into_owned();
        }
        if self.read().values.iter().any(|v| v == text) {
            return MASK.to_string();
        }
        let head = self.shown_head(text, SHOWN_HEAD_BYTES);
        let masked = self.mask_all(&head);
        if head.len() < text.len() && masked.chars().nth(2 * LONGEST_EXCERPT_CHARS).is_none() {
            return self.short_of_the_cut(masked);
        }
        masked
    }

    fn mask_excerpt(&self, text: &str, max: usize) -> String {
        if self.is_empty() {
            return excerpt(text, max);
        }
        if self.read().values.iter().any(|v| v == text) {
            return MASK.to_string();
        }
        // `max` characters of up to four bytes, 4 KiB more, and as far again as the longest
        // secret's forms reach (see `shown_head`): a secret that starts in the excerpt ends
        // in the head.
        let head = self.shown_head(text, 4 * max + 4096);
        if head.len() == text.len() {
            return excerpt(&self.mask_all(text), max);
        }
        let masked = self.mask_all(&head);
        // Masking shrank the head to no more than the excerpt (copies of a long secret): as
        // much is masked as any output shows.
        match masked.chars().nth(max) {
            Some(_) => excerpt(&masked, max),
            None => excerpt(&self.mask_text(text), max),
        }
    }

    fn mask_value(&self, value: &Value) -> Value {
        if self.is_empty() {
            return value.clone();
        }
        match value {
            Value::Null => Value::Null,
            Value::Number(n) if self.is_secret_number(n) => Value::String(MASK.into()),
            Value::Bool(b) if self.read().values.iter().any(|v| *v == b.to_string()) => {
                Value::String(MASK.into())
            }
            Value::Bool(_) | Value::Number(_) => value.clone(),
            Value::String(s) => Value::String(self.mask_text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.mask_value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.mask_text(k), self.mask_value(v)))
                    .collect(),
            ),
        }
    }

    fn mask_header_name(&self, name: &str) -> String {
        self.build_lower_patterns();
        if self
            .read()
            .values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(name))
        {
            return MASK.to_string();
        }
        let mut out = self.mask_text(name);
        let state = self.read();
        for (_, pattern) in &state.lower_patterns {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, MASK).into_owned();
            }
        }
        masked_ranges(&out, parts_in(&[&state.lower_fragments], &out))
    }
}

/// A header value as it may be shown.
pub fn shown_header(name: &str, value: &str, show_sensitive: bool) -> String {
    if !show_sensitive && is_sensitive_header(name) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// A URL as it may be shown: the password of a userinfo part is always `***`, whatever its
/// origin (a template, the suite file, `--base-url`).
pub fn shown_url(url: &url::Url) -> String {
    if url.password().is_some() {
        let mut shown = url.clone();
        if shown.set_password(Some(MASK)).is_ok() {
            return shown.to_string();
        }
    }
    url.to_string()
}

/// A URL given as text (it may not even parse) as it may be shown: a password between
/// `scheme://user:` and `@` is `***`.
pub fn shown_url_text(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let authority = &text[start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{MASK}{}",
            &text[..start + colon + 1],
            &text[start + at..]
        ),
        _ => text.to_string(),
    }
}

/// The Basic-auth credentials the HTTP client builds from a URL's userinfo, as it sends them.
pub fn basic_auth_forms(url: &url::Url) -> Vec<String> {
    if url.username().is_empty() && url.password().is_none() {
        return Vec::new();
    }
    let password = url.password().unwrap_or_default();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    [
        format!("{}:{}", decode(url.username()), decode(password)),
        format!("{}:{}", url.username(), password),
    ]
    .into_iter()
    .map(|pair| base64::engine::general_purpose::STANDARD.encode(pair))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(secrets: &[&str]) -> Redactor {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Redactor::new(&secrets)
    }

    #[test]
    fn a_long_text_is_masked_only_as_far_as_it_may_be_shown() {
        let secret = "Zq7Xk9Wm2Vb4";
        let r = redactor(&[secret]);
        let reach = SHOWN_HEAD_BYTES + 16 * secret.len();
        // A secret early, and one that the end of what is masked cuts after 5 characters.
        let text = format!(
            "{secret}{}{secret}{}",
            "a".repeat(reach - 5 - secret.len()),
            "b".repeat(1 << 20)
        );
        let masked = r.mask_text(&text);
        assert!(masked.starts_with("***a"), "{}", &masked[..20]);
        assert!(
            masked.ends_with("a***…"),
            "{}",
            &masked[masked.len() - 20..]
        );
        assert!(masked.len() < reach);
        // What is sent is searched whole.
        assert!(r.holds_secret(&format!("{}{secret}", "b".repeat(1 << 20))));
        assert!(!r.holds_secret(&"b".repeat(1 << 20)));
        // Copies of a long secret that shrink the head to less than an output shows: the
        // head is shown short of its cut, as far back as the secret's forms reach, so that
        // the copy the cut split does not show, in no form.
        let long = format!("Pr0d&{}", "k7".repeat(150));
        let r = redactor(&[&long]);
        let copies = format!("{long} ").repeat(SHOWN_HEAD_BYTES / long.len() + 16);
        let masked = r.mask_text(&format!("{copies}{}", "b".repeat(1 << 20)));
        assert!(masked.ends_with(CUT) && masked.len() < 4 * SHOWN_HEAD_BYTES / long.len());
        assert!(
            !masked.contains("Pr0d") && !masked.contains("k7k7"),
            "{masked}"
        );
    }

    #[test]
    fn the_start_of_a_secret_before_a_cut_is_masked() {
        let r = redactor(&["tok-SECRET\"9"]);
        // As itself or JSON-escaped, at the end or inside a longer text; whole ones too.
        assert_eq!(r.mask_text("body xxtok-SEC…"), "body xx***…");
        assert_eq!(r.mask_text(r#"{"t":"tok-SECRET\"…"#), r#"{"t":"***…"#);
        assert_eq!(
            r.mask_text("actual tok-S… and tok-SECRET\"9"),
            "actual ***… and ***"
        );
        // Two characters say too little; text with no cut is left alone.
        assert_eq!(r.mask_text("to…"), "to…");
        assert_eq!(r.mask_text("tok-SEC"), "tok-SEC");
        assert_eq!(r.mask_text("……"), "……");
    }

    #[test]
    fn masks_raw_encoded_and_escaped_forms() {
        let r = redactor(&["s3cr3t pass/\"x\""]);
        assert_eq!(r.mask_text("token=s3cr3t pass/\"x\"!"), "token=***!");
        assert_eq!(r.mask_text("q=s3cr3t+pass%2F%22x%22"), "q=***");
        assert_eq!(r.mask_text("q=s3cr3t+pass%2f%22x%22"), "q=***");
        assert_eq!(
            r.mask_text(r#"{"p":"s3cr3t pass/\"x\""}"#),
            r#"{"p":"***"}"#
        );
        assert_eq!(
            r.mask_text("<p>s3cr3t pass/&quot;x&quot;</p>"),
            "<p>***</p>"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t pass/\"x\"");
        assert_eq!(r.mask_text(&format!("b={b64}")), "b=***");
    }

    #[test]
    fn masks_values_of_every_json_type() {
        let r = redactor(&["95837104", "true-secret-value"]);
        let doc = json!({"pin": 95837104, "list": [1, 95837104], "s": "x 95837104 y",
                         "true-secret-value": {"n": null}});
        assert_eq!(
            r.mask_value(&doc),
            json!({"pin": "***", "list": [1, "***"], "s": "x *** y", "***": {"n": null}})
        );
    }

    #[test]
    fn header_names_are_masked_lower_cased_too() {
        let r = redactor(&["MixedCaseKey123"]);
        assert_eq!(r.mask_header_name("x-key-mixedcasekey123"), "x-key-***");
        assert_eq!(r.mask_header_name("x-key-MixedCaseKey123"), "x-key-***");
        // One learned after the patterns were built is found too.
        r.learn("LaterSecret99");
        assert_eq!(r.mask_header_name("x-latersecret99"), "x-***");
        // Escaped as in any text: a header name cannot hold a `/`, but may hold `%2f`.
        let r = redactor(&["Mixed/CaseKey123"]);
        assert_eq!(r.mask_header_name("x-key-mixed%2fcasekey123"), "x-key-***");
        // Elsewhere too, a lower-cased copy of 12 bytes or more is a part (a URL's host
        // comes back lower-cased); a shorter one is other text.
        assert_eq!(r.mask_text("mixed/casekey123"), "***");
        assert_eq!(r.mask_text("mixed/casek"), "mixed/casek");
        r.learn("Ab1");
        assert_eq!(r.mask_header_name("ab1"), MASK);
        assert_eq!(r.mask_header_name("x-ab1"), "x-ab1");
    }

    #[test]
    fn trimmed_and_short_learned_values() {
        let r = redactor(&["padded-secret  "]);
        assert_eq!(r.mask_text("got padded-secret."), "got ***.");
        // A short captured secret is masked only where it is the whole value.
        r.learn("abc");
        assert_eq!(r.mask_text("abc"), MASK);
        assert_eq!(r.mask_text("abcdef"), "abcdef");
        assert_eq!(r.mask_value(&json!(["abc"])), json!(["***"]));
    }

    #[test]
    fn secrets_and_redactors_never_debug_print_values() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let r = Redactor::new([&secret]);
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn urls_never_show_passwords_and_headers_mask_by_name() {
        let url = url::Url::parse("http://admin:pw@127.0.0.1:8/x").unwrap();
        assert_eq!(shown_url(&url), "http://admin:***@127.0.0.1:8/x");
        assert_eq!(
            shown_url_text("ftp://admin:p@ss@host:x/y"),
            "ftp://admin:***@host:x/y"
        );
        assert_eq!(shown_url_text("http://host/a:b@c"), "http://host/a:b@c");
        assert_eq!(
            basic_auth_forms(&url)[0],
            base64::engine::general_purpose::STANDARD.encode("admin:pw")
        );
        assert_eq!(shown_header("Authorization", "Bearer x", false), "***");
        assert_eq!(shown_header("authorization", "Bearer x", true), "Bearer x");
        assert_eq!(shown_header("accept", "x", false), "x");
    }
}
