//! The plain TOML most suite files are written in, read in one pass.
//!
//! The full parser (the `toml` crate) lexes a file into events, builds a spanned document from
//! them and then deserializes that: about 150 K instructions for a 900-byte checkout flow, two
//! thirds of `check`. Most files use a small part of TOML: `key = value` lines, `[table]` and
//! `[[array]]` headers, single-line strings, decimal numbers, booleans, arrays and one-line
//! inline tables. This module reads exactly that part straight into a small tree and
//! deserializes it the way `toml` does (the same visitor calls, the same spans, `Spanned`
//! included).
//!
//! It never judges a file. Anything outside that part (a dotted key, a multi-line string, a
//! date, a table created implicitly, an escape it does not know) and anything wrong (a duplicate
//! key, a control character, a number out of range, any deserialization error) gives `None`,
//! and the full parser reads the file and reports on it. So a file is read here only when the
//! full parser reads it too, to the same value; debug builds check that on every file they
//! read (see `parse::parse`).

use serde::de::value::CowStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_spanned::de::SpannedDeserializer;
use std::borrow::Cow;
use std::ops::Range;

/// `text` read into `T`, when it is plain TOML and `T` takes it; `None` otherwise.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    let root = Reader::new(text).document()?;
    // The document's span is empty, as the full parser gives it.
    T::deserialize(ValueDe::new(0..0, Node::Table(root))).ok()
}

/// Nested arrays and inline tables deeper than this, and headers of more keys, are left to the
/// full parser.
const MAX_DEPTH: usize = 32;
/// Tables with more keys than this are left to the full parser: duplicates are found by a
/// linear search, which is the fastest way for the few keys of a real table.
const MAX_KEYS: usize = 64;

/// The bytes of a bare key: `A-Za-z0-9_-`.
const BARE_KEY: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-');
        b += 1;
    }
    table
};

/// The bytes a basic string's scan stops at: its end, an escape, a control character other
/// than tab.
const STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'"' | b'\\' | 0..=0x08 | 0x0a..=0x1f | 0x7f);
        b += 1;
    }
    table
};

struct Item<'t> {
    span: Range<usize>,
    node: Node<'t>,
}

enum Node<'t> {
    Str(Cow<'t, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The items, and whether it is an array of tables (made by `[[headers]]`).
    Array(Vec<Item<'t>>, bool),
    Table(Table<'t>),
}

#[derive(Default)]
struct Table<'t> {
    entries: Vec<Entry<'t>>,
    /// Written `{ ... }`: it cannot be extended by a header.
    inline: bool,
}

struct Entry<'t> {
    key: Key<'t>,
    value: Item<'t>,
}

#[derive(Clone)]
struct Key<'t> {
    name: Cow<'t, str>,
    span: Range<usize>,
}

impl<'t> Table<'t> {
    fn get_mut(&mut self, name: &str) -> Option<&mut Item<'t>> {
        self.entries
            .iter_mut()
            .find(|e| e.key.name == name)
            .map(|e| &mut e.value)
    }

    /// Adds a new key; `None` when it is there already (or the table is too big to search).
    fn insert(&mut self, key: Key<'t>, value: Item<'t>) -> Option<()> {
        if self.entries.len() >= MAX_KEYS || self.entries.iter().any(|e| e.key.name == key.name) {
            return None;
        }
        self.entries.push(Entry { key, value });
        Some(())
    }
}

/// A `[header]` or `[[header]]`: the keys before the last, the last, the brackets' span.
struct Header<'t> {
    path: Vec<Key<'t>>,
    key: Key<'t>,
    span: Range<usize>,
    array: bool,
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
}

impl<'t> Reader<'t> {
    fn new(text: &'t str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn spaces(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// A comment, if one starts here, up to (not including) its line end.
    fn comment(&mut self) -> Option<()> {
        if self.peek() != Some(b'#') {
            return Some(());
        }
        self.at += 1;
        while let Some(b) = self.peek() {
            match b {
                b'\n' | b'\r' => break,
                b'\t' => {}
                0..0x20 | 0x7f => return None,
                _ => {}
            }
            self.at += 1;
        }
        Some(())
    }

    /// A line end (`\n` or `\r\n`), or the end of the text.
    fn newline(&mut self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.at += 1;
                Some(())
            }
            Some(b'\r') => {
                self.at += 1;
                self.eat(b'\n')
            }
            _ => None,
        }
    }

    /// What may end a line after a key/value or a header: spaces, a comment, the line end.
    fn line_end(&mut self) -> Option<()> {
        self.spaces();
        self.comment()?;
        self.newline()
    }

    fn document(mut self) -> Option<Table<'t>> {
        let mut root = Table::default();
        let mut header: Option<Header<'t>> = None;
        let mut current = Table::default();
        loop {
            self.spaces();
            match self.peek() {
                None => break,
                Some(b'#' | b'\n' | b'\r') => self.line_end()?,
                Some(b'[') => {
                    finish(&mut root, header.take(), std::mem::take(&mut current))?;
                    let next = self.header()?;
                    self.line_end()?;
                    // A table is defined once: one defined twice, or created implicitly by an
                    // earlier header, is left to the full parser.
                    let parent = descend(&mut root, &next.path)?;
                    if !next.array && parent.get_mut(&next.key.name).is_some() {
                        return None;
                    }
                    header = Some(next);
                }
                Some(_) => {
                    let key = self.key()?;
                    self.spaces();
                    // A dotted key is left to the full parser.
                    self.eat(b'=')?;
                    self.spaces();
                    let value = self.value(0)?;
                    current.insert(key, value)?;
                    self.line_end()?;
                }
            }
        }
        finish(&mut root, header, current)?;
        Some(root)
    }

    fn header(&mut self) -> Option<Header<'t>> {
        let start = self.at;
        self.eat(b'[')?;
        let array = self.eat(b'[').is_some();
        let mut path = Vec::new();
        loop {
            self.spaces();
            let key = self.key()?;
            self.spaces();
            if self.eat(b'.').is_some() {
                // The full parser refuses paths of 80 keys and more; the tree's depth (what
                // deserializing and dropping it recurse on) stays bounded.
                if path.len() >= MAX_DEPTH {
                    return None;
                }
                path.push(key);
                continue;
            }
            self.eat(b']')?;
            if array {
                self.eat(b']')?;
            }
            return Some(Header {
                path,
                key,
                span: start..self.at,
                array,
            });
        }
    }

    fn key(&mut self) -> Option<Key<'t>> {
        let start = self.at;
        let name = match self.peek()? {
            b'"' => self.basic_string()?,
            b'\'' => self.literal_string()?,
            _ => {
                let len = self.bytes[start..]
                    .iter()
                    .position(|&b| !BARE_KEY[usize::from(b)])
                    .unwrap_or(self.bytes.len() - start);
                if len == 0 {
                    return None;
                }
                self.at += len;
                Cow::Borrowed(&self.text[start..self.at])
            }
        };
        Some(Key {
            name,
            span: start..self.at,
        })
    }

    fn value(&mut self, depth: usize) -> Option<Item<'t>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.at;
        let node = match self.peek()? {
            b'"' => Node::Str(self.basic_string()?),
            b'\'' => Node::Str(self.literal_string()?),
            b'[' => self.array(depth)?,
            b'{' => self.inline_table(depth)?,
            b't' if self.bytes[start..].starts_with(b"true") => {
                self.at += 4;
                Node::Bool(true)
            }
            b'f' if self.bytes[start..].starts_with(b"false") => {
                self.at += 5;
                Node::Bool(false)
            }
            b'0'..=b'9' | b'+' | b'-' => self.number()?,
            _ => return None,
        };
        Some(Item {
            span: start..self.at,
            node,
        })
    }

    /// Spaces, line ends and comments, as arrays allow between their items.
    fn blank(&mut self) -> Option<()> {
        loop {
            self.spaces();
            match self.peek() {
                Some(b'#' | b'\n' | b'\r') => self.line_end()?,
                _ => return Some(()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Node<'t>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        loop {
            self.blank()?;
            if self.eat(b']').is_some() {
                break;
            }
            items.push(self.value(depth + 1)?);
            self.blank()?;
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                break;
            }
        }
        Some(Node::Array(items, false))
    }

    /// `{ k = v, ... }` on one line, without a trailing comma (TOML 1.1 allows more; the full
    /// parser reads that).
    fn inline_table(&mut self, depth: usize) -> Option<Node<'t>> {
        self.eat(b'{')?;
        let mut table = Table {
            entries: Vec::new(),
            inline: true,
        };
        self.spaces();
        if self.eat(b'}').is_none() {
            loop {
                self.spaces();
                let key = self.key()?;
                self.spaces();
                self.eat(b'=')?;
                self.spaces();
                let value = self.value(depth + 1)?;
                table.insert(key, value)?;
                self.spaces();
                if self.eat(b',').is_none() {
                    self.eat(b'}')?;
                    break;
                }
            }
        }
        Some(Node::Table(table))
    }

    /// A decimal integer that fits in an i64, or a decimal float, without `_`; dates, times,
    /// other bases, `inf` and `nan` are left to the full parser.
    fn number(&mut self) -> Option<Node<'t>> {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E') = self.peek() {
            self.at += 1;
        }
        let token = &self.text[start..self.at];
        let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
        let int_end = unsigned
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(unsigned.len());
        let (int, rest) = unsigned.split_at(int_end);
        if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
            return None;
        }
        if rest.is_empty() {
            return token.parse().ok().map(Node::Int);
        }
        let (fraction, exponent) = match rest.find(['e', 'E']) {
            Some(e) => (&rest[..e], Some(&rest[e + 1..])),
            None => (rest, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !fraction.is_empty() && !fraction.strip_prefix('.').is_some_and(digits) {
            return None;
        }
        if let Some(exponent) = exponent
            && !digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent))
        {
            return None;
        }
        let float: f64 = token.parse().ok()?;
        float.is_finite().then_some(Node::Float(float))
    }

    /// `"..."` on one line: borrowed when it has no escape.
    fn basic_string(&mut self) -> Option<Cow<'t, str>> {
        self.eat(b'"')?;
        // `"""` opens a multi-line string.
        if self.bytes[self.at..].starts_with(b"\"\"") {
            return None;
        }
        let start = self.at;
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            // Up to the next byte that ends the string, escapes or may not be in it.
            self.at += self.bytes[self.at..]
                .iter()
                .position(|&b| STRING_STOP[usize::from(b)])
                .unwrap_or(self.bytes.len() - self.at);
            match self.peek()? {
                b'"' => {
                    let end = self.at;
                    self.at += 1;
                    return Some(match owned {
                        None => Cow::Borrowed(&self.text[start..end]),
                        Some(mut s) => {
                            s.push_str(&self.text[run..end]);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.text[run..self.at]);
                    self.at += 1;
                    s.push(self.escape()?);
                    run = self.at;
                }
                // A control character other than tab.
                _ => return None,
            }
        }
    }

    /// The escape after a `\`: the ones of TOML 1.0 (the full parser reads the others).
    fn escape(&mut self) -> Option<char> {
        let c = match self.peek()? {
            b'b' => '\u{8}',
            b't' => '\t',
            b'n' => '\n',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'"' => '"',
            b'\\' => '\\',
            b'u' | b'U' => {
                let len = if self.peek() == Some(b'u') { 4 } else { 8 };
                let hex = self.text.get(self.at + 1..self.at + 1 + len)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                self.at += len;
                char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
            }
            _ => return None,
        };
        self.at += 1;
        Some(c)
    }

    /// `'...'` on one line.
    fn literal_string(&mut self) -> Option<Cow<'t, str>> {
        self.eat(b'\'')?;
        // `'''` opens a multi-line string.
        if self.bytes[self.at..].starts_with(b"''") {
            return None;
        }
        let start = self.at;
        loop {
            match self.peek()? {
                b'\'' => {
                    self.at += 1;
                    return Some(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                b'\t' => self.at += 1,
                0..0x20 | 0x7f => return None,
                _ => self.at += 1,
            }
        }
    }
}

/// The table `path` names below `root`, through tables defined by headers and the last table
/// of arrays of tables; `None` when a key names anything else. A missing table is created
/// implicitly, as the full parser does (`[step.expect.json]` without `[step.expect]`), spanned
/// by its key; a header that names it later is left to the full parser.
fn descend<'a, 't>(root: &'a mut Table<'t>, path: &[Key<'t>]) -> Option<&'a mut Table<'t>> {
    let mut table = root;
    for key in path {
        let index = match table.entries.iter().position(|e| e.key.name == key.name) {
            Some(index) => index,
            None => {
                let implicit = Item {
                    span: key.span.clone(),
                    node: Node::Table(Table::default()),
                };
                table.insert(key.clone(), implicit)?;
                table.entries.len() - 1
            }
        };
        table = match &mut table.entries[index].value.node {
            Node::Table(t) if !t.inline => t,
            Node::Array(items, true) => match &mut items.last_mut()?.node {
                Node::Table(t) => t,
                _ => return None,
            },
            _ => return None,
        };
    }
    Some(table)
}

/// Puts the table of the header that ends into its place, as the full parser does when the
/// next header starts (an array of tables takes the span of its first header).
fn finish<'t>(root: &mut Table<'t>, header: Option<Header<'t>>, table: Table<'t>) -> Option<()> {
    let Some(header) = header else {
        // The key/values before the first header.
        root.entries = table.entries;
        return Some(());
    };
    let parent = descend(root, &header.path)?;
    let item = Item {
        span: header.span.clone(),
        node: Node::Table(table),
    };
    if !header.array {
        return parent.insert(header.key, item);
    }
    match parent.get_mut(&header.key.name) {
        Some(Item {
            node: Node::Array(items, true),
            ..
        }) => items.push(item),
        Some(_) => return None,
        None => parent.insert(
            header.key,
            Item {
                span: header.span,
                node: Node::Array(vec![item], true),
            },
        )?,
    }
    Some(())
}

/// Any error: the file is left to the full parser, which says what is wrong.
#[derive(Debug)]
struct NotPlain;

impl std::fmt::Display for NotPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not plain TOML")
    }
}

impl std::error::Error for NotPlain {}

impl de::Error for NotPlain {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotPlain
    }
}

/// A value, deserialized as `toml::de::ValueDeserializer` does.
struct ValueDe<'t> {
    span: Range<usize>,
    node: Node<'t>,
}

impl<'t> ValueDe<'t> {
    fn new(span: Range<usize>, node: Node<'t>) -> Self {
        ValueDe { span, node }
    }
}

impl<'de> IntoDeserializer<'de, NotPlain> for ValueDe<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = NotPlain;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        match self.node {
            Node::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Node::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Node::Int(i) => visitor.visit_i64(i),
            Node::Float(f) => visitor.visit_f64(f),
            Node::Bool(b) => visitor.visit_bool(b),
            Node::Array(items, _) => visitor.visit_seq(Items(items.into_iter())),
            Node::Table(table) => visitor.visit_map(Entries {
                entries: table.entries.into_iter(),
                value: None,
            }),
        }
    }

    // `None` is a missing key, so a present one is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        if serde_spanned::de::is_spanned(name) {
            let span = self.span.clone();
            return visitor.visit_map(SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    /// A unit variant named by a string; the full parser reads the rest.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        match self.node {
            Node::Str(s) => visitor.visit_enum(CowStrDeserializer::new(s)),
            _ => Err(NotPlain),
        }
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

struct Items<'t>(std::vec::IntoIter<Item<'t>>);

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = NotPlain;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NotPlain> {
        self.0
            .next()
            .map(|item| seed.deserialize(ValueDe::new(item.span, item.node)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'t> {
    entries: std::vec::IntoIter<Entry<'t>>,
    value: Option<Item<'t>>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = NotPlain;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NotPlain> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry.value);
        seed.deserialize(KeyDe(entry.key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NotPlain> {
        let item = self.value.take().ok_or(NotPlain)?;
        seed.deserialize(ValueDe::new(item.span, item.node))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A key, deserialized as `toml`'s key deserializer does: a string, or a `Spanned` string.
struct KeyDe<'t>(Key<'t>);

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = NotPlain;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        CowStrDeserializer::new(self.0.name).deserialize_any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        match self.0.name {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        if serde_spanned::de::is_spanned(name) {
            return visitor.visit_map(SpannedDeserializer::new(self.0.name, self.0.span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        visitor.visit_newtype_struct(self)
    }

    /// Keys read as numbers, booleans or enums are left to the full parser.
    fn deserialize_bool<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, NotPlain> {
        Err(NotPlain)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, NotPlain> {
        Err(NotPlain)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, NotPlain> {
        Err(NotPlain)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, NotPlain> {
        Err(NotPlain)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 char
        f32 f64 seq string bytes byte_buf map option unit ignored_any unit_struct tuple_struct
        tuple identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::raw::{RawFlow, RawSuite};
    use indexmap::IndexMap;
    use std::fmt::Debug;
    use toml::{Spanned, Value};

    /// Any TOML document, keys and values with their spans.
    type Document = IndexMap<Spanned<String>, Spanned<Value>>;

    /// When `text` is read as plain TOML, the full parser reads it to the same value.
    fn agrees<T: DeserializeOwned + Debug>(text: &str) -> bool {
        let Some(plain) = from_str::<T>(text) else {
            return false;
        };
        crate::suite::parse::same_as_full_parser(text, &plain);
        true
    }

    const CHECKOUT: &str = r#"name = "checkout 0"
tags = ["checkout"]

[[step]]
name = "create cart"
method = "POST"
path = "/api/carts"
json = { currency = "EUR", flow = 0 }
[step.expect]
status = 200
[step.expect.json]
"$.ok" = true
[step.capture]
cart = "$.id"

[[step]]
name = "add item"
path = "/api/carts/{{ cart }}/items"
json = { sku = "SKU-1", qty = 1, price = 9.5e0, tags = [] }
[step.expect]
status = [200, 201]
[step.expect.json]
"$.items" = { length = 1 }
'$.total' = { gt = -0.5 }
"#;

    #[test]
    fn the_usual_flow_and_the_bundled_suite_are_plain() {
        assert!(agrees::<RawFlow>(CHECKOUT));
        assert!(agrees::<Document>(CHECKOUT));
        let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("smoke-tests");
        let mut flows = 0;
        for entry in std::fs::read_dir(&suite).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match path.file_name().and_then(|n| n.to_str()) {
                Some("preflight.toml") => assert!(agrees::<RawSuite>(&text)),
                Some(name) if name.ends_with(".toml") => {
                    assert!(agrees::<RawFlow>(&text), "{name}");
                    flows += 1;
                }
                _ => {}
            }
        }
        assert!(flows >= 3, "the bundled flows were read");
    }

    #[test]
    fn plain_files_are_read_as_the_full_parser_reads_them() {
        let plain = [
            "",
            "# only a comment\r\n\r\n",
            "a = 1 # c\nb = -0\nc = +17\nd = 9223372036854775807\ne = -9223372036854775808\n",
            "f = 0.5\ng = -1e-3\nh = 6.02E+23\ni = 0e0\nj = true\nk = false",
            "\"quoted key\" = 'lit\\eral'\n'' = \"\"\n\"x y\" = 2\n",
            "s = \"tab\\there \\\"q\\\" \\\\ \\u00e9 \\U0001F600 \\b\\f\\r\\n é\"\n",
            "a = [\n  1, # one\n  [2, 'x'],\n  { k = \"v\" },\n]\nb = [ ]\n",
            "t = { a = { b = [ { c = 1 } ] }, \"d e\" = 'f' }\nu = {}\n",
            "[a]\nx = 1\n[a.b]\ny = 2\n[c]\n[[a.b.list]]\nz = 3\n[[a.b.list]]\n[a.b.list.deep]\n",
            "[ spaced . \"key\" ]\n[[ arr ]]\n  [ arr . sub ]  # c\n[x.y.z]\n[x.y.w]\n[[x.v]]\n",
            "a\t=\t'\ttab'\t\n",
        ];
        for text in plain {
            assert!(agrees::<Document>(text), "not read as plain: {text:?}");
        }
    }

    #[test]
    fn what_is_not_plain_or_not_valid_is_left_to_the_full_parser() {
        let left = [
            // Outside the plain part, valid TOML.
            "a.b = 1\n",
            "a = \"\"\"x\"\"\"\n",
            "a = '''x'''\n",
            "a = 1979-05-27\n",
            "a = 07:32:00\n",
            "a = 0x1f\n",
            "a = 1_000\n",
            "a = inf\n",
            "a = nan\n",
            "a = 9223372036854775808\n",
            "a = \"\\e\"\n",
            "a = { b = 1, }\n",
            "a = { b = 1,\n c = 2 }\n",
            "a = { b.c = 1 }\n",
            "[a.b]\n[a]\n",
            "[[a.b]]\n[a]\n",
            "\u{feff}a = 1\n",
            // Invalid TOML.
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "a = {}\n[a]\n",
            "a = [1]\n[[a]]\n",
            "[a]\n[[a]]\n",
            "[[a]]\n[a]\n",
            "a = \"x\u{1}\"\n",
            "a = 'x\u{7f}'\n",
            "# \u{0} comment\n",
            "a = 1\rb = 2\n",
            "a = 01\n",
            "a = 1.\n",
            "a = .5\n",
            "a = 1e\n",
            "a = 1x\n",
            "a = truex\n",
            "a = 1 b = 2\n",
            "a = [1 2]\n",
            "a = [,]\n",
            "a = \"\\ud800\"\n",
            "a = \"\\u12\"\n",
            "a = \"open\n",
            "[a\n",
            "[[a]\n",
            "a = 1e400\n",
            "= 1\n",
            "a =\n",
        ];
        for text in left {
            assert!(
                from_str::<Document>(text).is_none(),
                "read as plain: {text:?}"
            );
        }
        // Nesting past the limit is left to the full parser rather than recursed into, and so
        // is a header of many keys (the full parser refuses 81; attack finding: they were read,
        // and a long one overflowed the stack).
        let deep = format!(
            "a = {}{}\n",
            "[".repeat(MAX_DEPTH + 2),
            "]".repeat(MAX_DEPTH + 2)
        );
        assert!(from_str::<Document>(&deep).is_none());
        for keys in [MAX_DEPTH + 2, 81, 100_000] {
            let path = vec!["a"; keys].join(".");
            assert!(
                from_str::<Document>(&format!("[{path}]\n")).is_none(),
                "{keys}"
            );
            assert!(
                from_str::<Document>(&format!("[[{path}]]\n")).is_none(),
                "{keys}"
            );
            assert!(
                from_str::<RawFlow>(&format!("[vars.{path}]\n")).is_none(),
                "{keys}"
            );
        }
        let path = vec!["a"; MAX_DEPTH].join(".");
        assert!(agrees::<Document>(&format!("[{path}]\n")));
        // So is a shape the raw structs refuse: the full parser says what is wrong.
        assert!(from_str::<RawFlow>("nme = 1\n").is_none());
        assert!(from_str::<RawFlow>("[[step]]\nexpect = { status = 200, bdy = 1 }\n").is_none());
    }

    /// Random edits of plain files, with the bytes TOML gives meaning to: whatever is read as
    /// plain TOML is read by the full parser to the same value.
    #[test]
    fn edited_files_read_as_plain_agree_with_the_full_parser() {
        const ALPHABET: &[u8] = b" \t\n\r#=[]{},.'\"\\-+_0123456789eE.xabtrufl\x01\x7f";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            CHECKOUT,
            "a = [1, 2.5, 'x', { b = true }]\n[t.u]\nk = \"v\\n\"\n[[t.w]]\n[t.w.x]\n[[t.w]]\n",
        ];
        let (mut plain, mut cases) = (0, 0);
        for round in 0..20_000 {
            let mut text = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % (text.len() as u64 + 1)) as usize;
                let byte = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
                match next() % 3 {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ if at < text.len() => text[at] = byte,
                    _ => {}
                }
            }
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            cases += 1;
            plain += usize::from(agrees::<Document>(&text));
            agrees::<RawFlow>(&text);
        }
        // Both kinds of case were met: many edits stay plain, many do not.
        assert!(
            plain > cases / 10 && plain < cases * 9 / 10,
            "{plain} of {cases}"
        );
    }
}
