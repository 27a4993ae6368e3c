//! OpenAPI contracts (`[openapi]`): a document loaded, resolved and compiled once when the
//! suite loads, then every step's response checked against the operation its method and path
//! match: the status documented, the content type documented, the body valid against the
//! response schema. Pure: no I/O, no network.
//!
//! The document is read into a `serde_json::Value` (JSON, or YAML through `yaml-rust2`) and
//! worked on as data, so that OpenAPI 3.0 and 3.1 take one path: 3.0 schemas are rewritten to
//! JSON Schema 2020-12 (`nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`), 3.1
//! schemas already are, and the `jsonschema` crate validates both. A `$ref` must point inside
//! the document; every one is resolved at load, so a broken document never reaches a run.

use crate::check::{Assertion, MISSING, Observed, shown_pointer, shown_schema_error, shown_value};
use crate::redact::Mask;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The methods an OpenAPI path item may document.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Schema violations reported per response; the rest are counted in one more line.
const MAX_VIOLATIONS: usize = 20;
const SHOWN_CHARS: usize = 300;

/// A loaded document: its operations, each with its responses compiled.
pub struct Contract {
    /// The `spec` as the suite names it, for messages.
    pub file: String,
    operations: Vec<Operation>,
    /// Path prefixes of the document's `servers` (`/api/v3`, `/api/[^/]+` for
    /// `/api/{version}`), stripped from a sent path too.
    server_prefixes: Vec<Regex>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("file", &self.file)
            .field("operations", &self.operations.len())
            .finish()
    }
}

struct Operation {
    /// Upper case, as sent.
    method: String,
    template: String,
    pattern: Regex,
    /// Characters outside `{parameters}`: the most literal template wins (`/pet/findByStatus`
    /// over `/pet/{petId}`).
    literal: usize,
    responses: Vec<Response>,
}

struct Response {
    /// `200`, `2XX` or `default`, as written.
    key: String,
    /// `None`: the response documents no body.
    content: Option<Vec<Media>>,
}

struct Media {
    /// Lower case, without parameters.
    name: String,
    schema: Option<Arc<jsonschema::Validator>>,
}

/// Why a document cannot be used: the message and, when known, where in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub message: String,
    pub at: Option<Range<usize>>,
}

impl Broken {
    fn new(message: impl Into<String>) -> Broken {
        Broken {
            message: message.into(),
            at: None,
        }
    }
}

/// What the contract says about one exchange.
#[derive(Debug)]
pub enum Finding {
    /// The method and path match no operation of the document.
    Undocumented { method: String, path: String },
    /// The operation matched (`template`); every check, passed or failed.
    Checked {
        template: String,
        assertions: Vec<Assertion>,
    },
}

/// A document read and checked: a supported version, every `$ref` resolving inside it.
pub struct Document {
    pub value: Value,
    /// OpenAPI 3.0 (schemas rewritten to JSON Schema 2020-12 when used), else 3.1.
    pub v30: bool,
    /// The document's `components`, its 3.0 schemas already rewritten.
    components: Value,
}

/// Reads the document `text` (named `file`): parsed, its version supported, every `$ref`
/// resolving inside it.
pub fn read(file: &str, text: &str) -> Result<Document, Broken> {
    let value = parse(file, text)?;
    let version = match (value.get("openapi"), value.get("swagger")) {
        (Some(Value::String(v)), _) if v.starts_with("3.0") || v.starts_with("3.1") => v.clone(),
        (Some(v), _) => {
            return Err(Broken::new(format!(
                "`openapi: {v}` is not supported: OpenAPI 3.0.x and 3.1.x are"
            )));
        }
        (None, Some(_)) => {
            return Err(Broken::new(
                "Swagger 2.0 is not supported: convert the document to OpenAPI 3",
            ));
        }
        (None, None) => {
            return Err(Broken::new(
                "no `openapi` version field: this is not an OpenAPI document",
            ));
        }
    };
    check_refs(&value, text, "", &value)?;
    if expanded_nodes(&value) > MAX_EXPANDED_NODES {
        return Err(Broken::new(format!(
            "its `$ref`s expand to more than {MAX_EXPANDED_NODES} nodes (or nest deeper than \
             {MAX_REF_DEPTH}): refused, since checking a response against it could take hours"
        )));
    }
    let v30 = version.starts_with("3.0");
    let mut components = value
        .get("components")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if v30 && let Some(Value::Object(schemas)) = components.get_mut("schemas") {
        for schema in schemas.values_mut() {
            *schema = schema_30(schema.take());
        }
    }
    Ok(Document {
        value,
        v30,
        components,
    })
}

impl Document {
    /// A Reference Object followed to what it names; anything else as it is.
    pub fn follow<'a>(&'a self, value: &'a Value) -> &'a Value {
        follow(&self.value, value)
    }

    /// The operations of `paths`: (template, method in lower case, path item, operation).
    pub fn operations(&self) -> Result<Vec<(&str, &'static str, &Value, &Value)>, Broken> {
        let paths = match self.value.get("paths") {
            Some(Value::Object(paths)) => paths,
            None => return Ok(Vec::new()),
            Some(_) => return Err(Broken::new("`paths` must be an object")),
        };
        let mut out = Vec::new();
        for (template, item) in paths {
            let item = self.follow(item);
            if !item.is_object() {
                return Err(Broken::new(format!("path `{template}` is not an object")));
            }
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    out.push((template.as_str(), method, item, op));
                }
            }
        }
        Ok(out)
    }

    /// A response `schema` of the document as a JSON Schema 2020-12 document of its own:
    /// 3.0 rewritten, and with the entries of `components` it reaches (only those), so that
    /// its `#/components/...` references resolve as they do in the document.
    pub fn standalone_schema(&self, schema: &Value) -> Value {
        let schema = if self.v30 {
            schema_30(schema.clone())
        } else {
            schema.clone()
        };
        let components = reached(&schema, &self.components);
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": components,
        })
    }
}

/// Loads the document `text` (named `file`): read, every response schema compiled.
pub fn load(file: &str, text: &str) -> Result<Contract, Broken> {
    contract(file, &read(file, text)?)
}

/// The contract of a document read: every response schema compiled.
pub fn contract(file: &str, doc: &Document) -> Result<Contract, Broken> {
    let mut operations = Vec::new();
    for (template, method, _, op) in doc.operations()? {
        let at = format!("{method} {template}");
        let responses = responses(doc, op, &at)?;
        let (pattern, literal) = template_pattern(template)
            .map_err(|e| Broken::new(format!("path `{template}`: {e}")))?;
        operations.push(Operation {
            method: method.to_ascii_uppercase(),
            template: template.to_string(),
            pattern,
            literal,
            responses,
        });
    }
    Ok(Contract {
        file: file.to_string(),
        operations,
        server_prefixes: server_prefixes(&doc.value),
    })
}

/// JSON when it looks like JSON (or is named `.json`), else YAML; errors located in the text.
fn parse(file: &str, text: &str) -> Result<Value, Broken> {
    // A byte order mark is no part of the document (JSON and YAML both allow one); where a
    // problem is stays an offset into the file.
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    parse_text(file, &text[bom..]).map_err(|mut broken| {
        broken.at = broken.at.map(|at| at.start + bom..at.end + bom);
        broken
    })
}

fn parse_text(file: &str, text: &str) -> Result<Value, Broken> {
    let json = file.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('{');
    if json {
        return serde_json::from_str(text).map_err(|e| Broken {
            message: format!("not valid JSON: {e}"),
            at: Some(offset_of(text, e.line(), e.column())),
        });
    }
    expanded_size(text)?;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| Broken {
        message: format!("not valid YAML: {}", e.info()),
        at: Some(offset_of(text, e.marker().line(), e.marker().col())),
    })?;
    match docs.into_iter().next() {
        Some(doc) => yaml_to_json(doc).map_err(Broken::new),
        None => Err(Broken::new("the document is empty")),
    }
}

/// A document this many nodes large, aliases expanded, is refused: a few lines of anchors and
/// aliases can stand for billions of nodes ("billion laughs"), which the YAML loader copies.
const MAX_YAML_NODES: u64 = 2_000_000;

/// Counts the nodes of the YAML `text` with every alias expanded, from the parser's events
/// (nothing is built), and refuses a document over [`MAX_YAML_NODES`].
fn expanded_size(text: &str) -> Result<(), Broken> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    #[derive(Default)]
    struct Sizes {
        /// Open collections: their anchor and the nodes counted so far.
        open: Vec<(usize, u64)>,
        anchored: std::collections::HashMap<usize, u64>,
        total: u64,
    }
    impl Sizes {
        fn node(&mut self, anchor: usize, size: u64) {
            if anchor > 0 {
                self.anchored.insert(anchor, size);
            }
            match self.open.last_mut() {
                Some((_, count)) => *count = count.saturating_add(size),
                None => self.total = self.total.saturating_add(size),
            }
        }
    }
    impl MarkedEventReceiver for Sizes {
        fn on_event(&mut self, event: Event, _: yaml_rust2::scanner::Marker) {
            match event {
                Event::Scalar(_, _, anchor, _) => self.node(anchor, 1),
                Event::Alias(id) => {
                    let size = self.anchored.get(&id).copied().unwrap_or(1);
                    self.node(0, size);
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    self.open.push((anchor, 1));
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some((anchor, size)) = self.open.pop() {
                        self.node(anchor, size);
                    }
                }
                _ => {}
            }
        }
    }
    let mut sizes = Sizes::default();
    // A syntax error is reported by the loader afterwards, with its place.
    let _ = Parser::new_from_str(text).load(&mut sizes, true);
    let biggest = sizes
        .open
        .iter()
        .map(|(_, n)| *n)
        .fold(sizes.total, u64::max);
    if biggest > MAX_YAML_NODES {
        return Err(Broken::new(format!(
            "its aliases expand to more than {MAX_YAML_NODES} nodes: refused"
        )));
    }
    Ok(())
}

/// The byte range at 1-based `line` and `col` (characters), clamped to the text.
fn offset_of(text: &str, line: usize, col: usize) -> Range<usize> {
    let mut start = 0;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line.max(1) {
            let inside = l
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(l.trim_end().len(), |(i, _)| i);
            return start + inside..start + inside + 1;
        }
        start += l.len();
    }
    text.len()..text.len()
}

fn yaml_to_json(yaml: yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::String(s) => Value::String(s),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{text}` is not a JSON number"))?,
        Yaml::Array(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                // `200:` is an integer key in YAML, a status code in OpenAPI.
                let key = match key {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Null => "null".into(),
                    _ => return Err("a mapping key must be a scalar".into()),
                };
                map.insert(key, yaml_to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("an alias that resolves to nothing".into()),
    })
}

/// Every `$ref` of the document must point inside it, at something.
fn check_refs(value: &Value, text: &str, at: &str, doc: &Value) -> Result<(), Broken> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref")
                && let Err(why) = ref_chain(doc, target)
            {
                return Err(Broken {
                    message: format!("`$ref: {target}` at `#{at}` {why}"),
                    at: text.find(target.as_str()).map(|i| i..i + target.len()),
                });
            }
            if let Some(Value::String(target)) = map.get("$ref")
                && pointer(doc, target).is_none()
            {
                let why = if target.starts_with('#') {
                    "points nowhere in the document"
                } else {
                    "points outside the document (only `#/...` references are supported)"
                };
                return Err(Broken {
                    message: format!("`$ref: {target}` at `#{at}` {why}"),
                    at: text.find(target.as_str()).map(|i| i..i + target.len()),
                });
            }
            for (key, v) in map {
                check_refs(v, text, &format!("{at}/{}", escape(key)), doc)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_refs(v, text, &format!("{at}/{i}"), doc)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Follows a reference and the references it leads to: each must name something other than
/// the whole document, and the chain must end (a cycle would validate anything).
fn ref_chain(doc: &Value, first: &str) -> Result<(), &'static str> {
    let mut seen = std::collections::HashSet::new();
    let mut target = first;
    loop {
        if target == "#" || target == "#/" {
            return Err("names the whole document, not a part of it");
        }
        if !seen.insert(target) || seen.len() > MAX_REF_HOPS {
            return Err("is part of a cycle of references that never reaches a definition");
        }
        let Some(value) = pointer(doc, target) else {
            return Ok(()); // reported as pointing nowhere
        };
        match value.get("$ref").and_then(Value::as_str) {
            Some(next) => target = next,
            None => return Ok(()),
        }
    }
}

/// A document this many nodes large with every `$ref` expanded is refused: a few schemas
/// that each refer twice to the next (`allOf: [{$ref: S2}, {$ref: S2}]`) stand for 2^n
/// nodes, and validating a response walks them all, deaf to timeouts and signals.
const MAX_EXPANDED_NODES: u64 = 1_000_000;
/// References nested in references this deep are refused too (counted as too large).
const MAX_REF_DEPTH: usize = 256;

/// The nodes of `doc` with every `$ref` expanded (a reference to a schema being expanded,
/// a recursive schema, counts once: validation follows it only as deep as the response).
fn expanded_nodes(doc: &Value) -> u64 {
    fn size<'a>(
        value: &'a Value,
        doc: &'a Value,
        sizes: &mut std::collections::HashMap<&'a str, u64>,
        open: &mut Vec<&'a str>,
    ) -> u64 {
        let children = |items: &mut dyn Iterator<Item = &'a Value>,
                        sizes: &mut std::collections::HashMap<&'a str, u64>,
                        open: &mut Vec<&'a str>| {
            items.fold(1u64, |sum, v| sum.saturating_add(size(v, doc, sizes, open)))
        };
        match value {
            Value::Object(map) => match map.get("$ref") {
                Some(Value::String(target)) => {
                    let target = target.as_str();
                    if open.contains(&target) {
                        return 1;
                    }
                    if let Some(&known) = sizes.get(target) {
                        return known;
                    }
                    if open.len() >= MAX_REF_DEPTH {
                        return u64::MAX;
                    }
                    let Some(named) = pointer(doc, target) else {
                        return 1;
                    };
                    open.push(target);
                    let known = size(named, doc, sizes, open).saturating_add(1);
                    open.pop();
                    sizes.insert(target, known);
                    known
                }
                _ => children(&mut map.values(), sizes, open),
            },
            Value::Array(items) => children(&mut items.iter(), sizes, open),
            _ => 1,
        }
    }
    size(
        doc,
        doc,
        &mut std::collections::HashMap::new(),
        &mut Vec::new(),
    )
}

/// How many references in a row a chain may have ([`follow`] follows as many).
const MAX_REF_HOPS: usize = 16;

/// The value a `#/...` reference names.
fn pointer<'a>(doc: &'a Value, target: &str) -> Option<&'a Value> {
    let fragment = target.strip_prefix('#')?;
    let decoded = percent_encoding::percent_decode_str(fragment)
        .decode_utf8()
        .ok()?;
    doc.pointer(&decoded)
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A Reference Object followed to what it names (at most a few hops; `check_refs` already
/// proved each one resolves).
fn follow<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..MAX_REF_HOPS {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => match pointer(doc, target) {
                Some(next) => value = next,
                None => break,
            },
            None => break,
        }
    }
    value
}

fn responses(doc: &Document, op: &Value, at: &str) -> Result<Vec<Response>, Broken> {
    let Some(Value::Object(documented)) = op.get("responses") else {
        return Err(Broken::new(format!("`{at}` has no `responses` object")));
    };
    let mut out = Vec::new();
    for (key, response) in documented {
        let response = doc.follow(response);
        let content = match response.get("content") {
            None => None,
            Some(Value::Object(content)) => {
                let mut media = Vec::new();
                for (name, entry) in content {
                    let schema = match doc.follow(entry).get("schema") {
                        None => None,
                        Some(schema) => {
                            let where_ = format!("`{at}` response {key} `{name}`");
                            Some(Arc::new(compile(doc, schema, &where_)?))
                        }
                    };
                    media.push(Media {
                        name: media_type(name),
                        schema,
                    });
                }
                Some(media)
            }
            Some(_) => {
                return Err(Broken::new(format!(
                    "`{at}` response {key}: `content` must be an object"
                )));
            }
        };
        out.push(Response {
            key: key.clone(),
            content,
        });
    }
    Ok(out)
}

/// One response schema as a validator (see [`Document::standalone_schema`]).
fn compile(doc: &Document, schema: &Value, at: &str) -> Result<jsonschema::Validator, Broken> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(&doc.standalone_schema(schema))
        .map_err(|e| Broken::new(format!("{at}: the schema cannot be used: {e}")))
}

/// The entries of `components` (`schemas/Pet`, whole) that `schema` reaches through `$ref`s,
/// directly or through each other, in a tree of the same shape.
fn reached(schema: &Value, components: &Value) -> Value {
    let mut out = Map::new();
    let mut pending = Vec::new();
    refs(schema, &mut pending);
    while let Some(target) = pending.pop() {
        let Some(path) = target.strip_prefix("#/components/") else {
            continue;
        };
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let mut parts = decoded
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"));
        let (Some(section), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(entry) = components.get(&section).and_then(|s| s.get(&name)) else {
            continue;
        };
        let Value::Object(kept) = out.entry(section).or_insert_with(|| json!({})) else {
            continue;
        };
        if !kept.contains_key(&name) {
            kept.insert(name, entry.clone());
            refs(entry, &mut pending);
        }
    }
    Value::Object(out)
}

/// Every `$ref` string inside `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// An OpenAPI 3.0 Schema Object as JSON Schema 2020-12: `nullable: true` admits `null`, and
/// boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric form.
fn schema_30(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    // A Reference Object "cannot be extended": what stands beside `$ref` is ignored (a
    // `nullable: true` there admits no `null`).
    if let Some(target) = map.remove("$ref") {
        return json!({ "$ref": target });
    }
    // A property that is `writeOnly` and required is required "on the request only".
    let write_only: Vec<String> = match map.get("properties") {
        Some(Value::Object(props)) => props
            .iter()
            .filter(|(_, p)| p.get("writeOnly") == Some(&Value::Bool(true)))
            .map(|(name, _)| name.clone())
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|name| {
            !name
                .as_str()
                .is_some_and(|n| write_only.iter().any(|w| w == n))
        });
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            for v in props.values_mut() {
                *v = schema_30(v.take());
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(v) = map.get_mut(key)
            && v.is_object()
        {
            *v = schema_30(v.take());
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(items)) = map.get_mut(key) {
            for v in items.iter_mut() {
                *v = schema_30(v.take());
            }
        }
    }
    for (bound, exclusive) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        match map.remove(exclusive) {
            Some(Value::Bool(true)) => {
                if let Some(n) = map.remove(bound) {
                    map.insert(exclusive.into(), n);
                }
            }
            Some(Value::Bool(false)) | None => {}
            Some(other) => {
                map.insert(exclusive.into(), other);
            }
        }
    }
    if map.remove("nullable") != Some(Value::Bool(true)) {
        return Value::Object(map);
    }
    if let Some(Value::Array(choices)) = map.get_mut("enum")
        && !choices.contains(&Value::Null)
    {
        choices.push(Value::Null);
    }
    match map.get("type").cloned() {
        Some(Value::String(t)) => {
            map.insert("type".into(), json!([t, "null"]));
            Value::Object(map)
        }
        // No type to widen (a `$ref`, an `allOf`): null or the rest.
        _ => json!({ "anyOf": [{ "type": "null" }, Value::Object(map)] }),
    }
}

/// `/pet/{petId}` -> `^/pet/[^/]+$`, and how many literal characters it has.
fn template_pattern(template: &str) -> Result<(Regex, usize), String> {
    let mut pattern = String::from("^");
    let mut literal = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or("a `{` without its `}`")?;
        pattern.push_str(&regex::escape(&rest[..open]));
        literal += rest[..open].len();
        pattern.push_str("[^/]+");
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    literal += rest.len();
    pattern.push('$');
    Regex::new(&pattern)
        .map(|r| (r, literal))
        .map_err(|e| e.to_string())
}

/// The path prefixes of every `servers` list (the document's, a path item's, an operation's):
/// `https://x/api/v3` and `/api/v3` give `/api/v3`; a `{variable}` stands for any one segment
/// or part of one (`/api/{version}`).
fn server_prefixes(doc: &Value) -> Vec<Regex> {
    let mut lists = vec![doc.get("servers")];
    for item in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let item = follow(doc, item.1);
        lists.push(item.get("servers"));
        lists.extend(
            METHODS
                .iter()
                .map(|m| item.get(*m).and_then(|op| op.get("servers"))),
        );
    }
    let mut prefixes: Vec<String> = lists
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|s| s.get("url").and_then(Value::as_str))
        .filter_map(server_path_pattern)
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
        .iter()
        .filter_map(|p| Regex::new(&format!("^{p}")).ok())
        .collect()
}

/// The path of a server URL as a regex, each `{variable}` any characters but `/`.
fn server_path_pattern(url: &str) -> Option<String> {
    // Variables become a marker that survives URL parsing, then `[^/]+`.
    const MARK: &str = "preflightservervariable";
    let mut marked = String::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}')?;
        marked.push_str(&rest[..open]);
        marked.push_str(MARK);
        rest = &rest[close + 1..];
    }
    marked.push_str(rest);
    let path = match url::Url::parse(&marked) {
        Ok(parsed) if parsed.has_host() => parsed.path().to_string(),
        Ok(_) => return None,
        Err(_) => marked.starts_with('/').then(|| marked.clone())?,
    };
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    let pattern = regex::escape(path).replace(MARK, "[^/]+");
    Some(pattern)
}

/// `Application/JSON; charset=utf-8` -> `application/json`.
pub(crate) fn media_type(text: &str) -> String {
    text.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A JSON media type, as a response names it (`application/json`, `application/problem+json`).
pub(crate) fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

impl Contract {
    /// Checks the response of `method` on `path` (as sent, the base URL's path `base_path`
    /// included). Every value shown goes through `mask`.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        base_path: &str,
        observed: &Observed,
        mask: &dyn Mask,
    ) -> Finding {
        let Some(op) = self.operation(method, path, base_path) else {
            let candidate = self
                .relative(path, base_path)
                .next()
                .unwrap_or(path)
                .to_string();
            return Finding::Undocumented {
                method: method.to_string(),
                path: mask.mask_text(&candidate),
            };
        };
        Finding::Checked {
            template: op.template.clone(),
            assertions: op.check(observed, mask),
        }
    }

    /// The sent path without each prefix it may carry: the base URL's path first, then the
    /// servers', then as sent.
    fn relative<'a>(&'a self, path: &'a str, base_path: &'a str) -> impl Iterator<Item = &'a str> {
        let base = base_path.trim_end_matches('/');
        let under_base = (!base.is_empty())
            .then(|| path.strip_prefix(base))
            .flatten();
        let under_servers = self
            .server_prefixes
            .iter()
            .filter_map(move |prefix| prefix.find(path).map(|m| &path[m.end()..]));
        under_base
            .into_iter()
            .chain(under_servers)
            .filter(|rest| rest.starts_with('/'))
            .chain(std::iter::once(path))
    }

    fn operation(&self, method: &str, path: &str, base_path: &str) -> Option<&Operation> {
        self.relative(path, base_path)
            .flat_map(|candidate| {
                self.operations
                    .iter()
                    .filter(move |op| op.method == method && op.pattern.is_match(candidate))
            })
            .max_by_key(|op| op.literal)
    }
}

impl Operation {
    fn check(&self, observed: &Observed, mask: &dyn Mask) -> Vec<Assertion> {
        let status = observed.status;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let found = [exact.as_str(), range.as_str(), "default"]
            .iter()
            .find_map(|want| {
                self.responses
                    .iter()
                    .find(|r| r.key.eq_ignore_ascii_case(want))
            });
        let documented: Vec<&str> = self.responses.iter().map(|r| r.key.as_str()).collect();
        let mut out = vec![Assertion {
            subject: "openapi".into(),
            op: "status_documented".into(),
            expected: json!(documented),
            actual: json!(status),
            passed: found.is_some(),
            message: found.is_none().then(|| {
                format!(
                    "status {status} is not documented for {} {}",
                    self.method, self.template
                )
            }),
        }];
        if let Some(response) = found {
            // A response to HEAD has no body to check, whatever its headers say.
            let head = self.method == "HEAD";
            out.extend(content_checks(response, observed, mask, head));
        }
        out
    }
}

/// The content type, then the body against the schema of that content type.
fn content_checks(
    response: &Response,
    observed: &Observed,
    mask: &dyn Mask,
    head: bool,
) -> Vec<Assertion> {
    let raw_type = observed.header("content-type");
    let sent_type = raw_type.as_deref().map(media_type);
    // Shown as staging sent it, masked before anything is changed: a secret echoed in the
    // header must be recognised in its own case.
    let shown_type = raw_type.as_deref().map(|t| {
        let masked = mask.mask_text(t);
        masked.split(';').next().unwrap_or("").trim().to_string()
    });
    let documented: Vec<&str> = response
        .content
        .iter()
        .flatten()
        .map(|m| m.name.as_str())
        .collect();
    let media = sent_type.as_deref().and_then(|sent| {
        let family = format!("{}/*", sent.split('/').next().unwrap_or(""));
        [sent, family.as_str(), "*/*"]
            .iter()
            .find_map(|want| response.content.iter().flatten().find(|m| m.name == *want))
    });
    let body_empty = observed.body.is_empty() || head;
    let (passed, message) = match (&response.content, &sent_type, media) {
        // Nothing documented and nothing sent.
        (None, _, _) if body_empty => (true, None),
        (None, _, _) => (
            false,
            Some(format!(
                "response {} documents no body, but one came",
                response.key
            )),
        ),
        (Some(_), _, Some(_)) => (true, None),
        // HEAD may leave out the headers of the body it does not send.
        (Some(_), None, None) if head => (true, None),
        (Some(_), None, None) => (false, Some("the response has no Content-Type".to_string())),
        (Some(_), Some(_), None) => (
            false,
            Some(format!(
                "`{}` is not a documented content type of response {}",
                shown_type.as_deref().unwrap_or_default(),
                response.key
            )),
        ),
    };
    let mut out = vec![Assertion {
        subject: "openapi".into(),
        op: "content_type_documented".into(),
        expected: json!(documented),
        actual: shown_type.as_deref().map_or(json!(MISSING), |t| json!(t)),
        passed,
        message: message.map(|m| mask.mask_text(&m)),
    }];
    // The body is held to the schema whenever it says it is JSON, whichever entry (exact,
    // `application/*` or `*/*`) documents it.
    let sent_json = sent_type.as_deref().is_some_and(is_json);
    if let Some(Media {
        schema: Some(validator),
        ..
    }) = media
        && sent_json
        && !head
    {
        out.extend(schema_checks(validator, observed, mask));
    }
    out
}

fn schema_checks(
    validator: &jsonschema::Validator,
    observed: &Observed,
    mask: &dyn Mask,
) -> Vec<Assertion> {
    let failed = |expected: Value, actual: Value, message: String| Assertion {
        subject: "openapi".into(),
        op: "schema".into(),
        expected,
        actual,
        passed: false,
        message: Some(mask.mask_excerpt(&message, SHOWN_CHARS)),
    };
    let body = match observed.json() {
        Ok(body) => body,
        Err(why) => {
            return vec![failed(
                json!("a JSON body"),
                json!(MISSING),
                format!("(root): {why}"),
            )];
        }
    };
    let mut out = Vec::new();
    // A key given twice is read as its last value, and another reader may take the first:
    // such a body is valid against no schema for every reader.
    if let Some((object, key)) = duplicate_key(&observed.body) {
        let key = mask.mask_excerpt(&key, SHOWN_CHARS);
        let at = format!("{}/{}", shown_pointer(&object, mask), escape(&key));
        out.push(failed(
            json!("each key of an object once (RFC 8259)"),
            json!(format!("`{key}` twice")),
            format!("{at}: the key is given twice in one object"),
        ));
    }
    let mut more = 0;
    for error in validator.iter_errors(body) {
        if out.len() == MAX_VIOLATIONS {
            more += 1;
            continue;
        }
        let mut at = shown_pointer(&error.instance_path().to_string(), mask);
        let value = match error.kind() {
            // The offending value of a missing property is the property: point at it.
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                at = format!("{at}/{}", escape(&mask.mask_text(name)));
                json!(MISSING)
            }
            _ => shown_value(mask, error.instance(), SHOWN_CHARS),
        };
        let rule = shown_rule(&error.schema_path().to_string());
        let shown_at = if at.is_empty() { "(root)" } else { &at };
        let message = format!("{shown_at}: {}", shown_schema_error(&error, mask));
        out.push(failed(json!(rule), value, message));
    }
    if more > 0 {
        out.push(failed(
            json!("the response schema"),
            json!(format!("{more} more")),
            format!("{more} more violations of the schema not listed"),
        ));
    }
    if out.is_empty() {
        out.push(Assertion {
            subject: "openapi".into(),
            op: "schema".into(),
            expected: json!("the response schema"),
            actual: json!("valid"),
            passed: true,
            message: None,
        });
    }
    out
}

/// The first object of the JSON `body` that has a key twice: its pointer and the key.
fn duplicate_key(body: &[u8]) -> Option<(String, String)> {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    /// Walks a value at `at`, noting the first key seen twice in `found`.
    struct Walk<'a> {
        at: String,
        found: &'a RefCell<Option<(String, String)>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            loop {
                let at = format!("{}/{index}", self.at);
                if seq
                    .next_element_seed(Walk {
                        at,
                        found: self.found,
                    })?
                    .is_none()
                {
                    return Ok(());
                }
                index += 1;
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let at = format!("{}/{}", self.at, escape(&key));
                if !seen.insert(key.clone()) && self.found.borrow().is_none() {
                    *self.found.borrow_mut() = Some((self.at.clone(), key));
                }
                map.next_value_seed(Walk {
                    at,
                    found: self.found,
                })?;
            }
            Ok(())
        }
    }
    let found = RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        at: String::new(),
        found: &found,
    };
    walk.deserialize(&mut reader).ok()?;
    found.into_inner()
}

/// Where the failed rule is: in the document's `components` (`#/components/schemas/Pet/
/// required`), or inside the response's own schema (`(response schema)/items/type`).
fn shown_rule(schema_path: &str) -> String {
    match schema_path.strip_prefix("/allOf/0") {
        Some(inline) => format!("(response schema){inline}"),
        None => format!("#{schema_path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::NoMask;
    use std::time::Duration;

    const DOC: &str = r##"
openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api/v3}]
paths:
  /pet/{petId}:
    get:
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Pet"}
        4XX: {description: no}
  /pet/findByStatus:
    get:
      responses:
        default: {description: any}
components:
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        name: {type: string}
        tag: {type: string, nullable: true}
        weight: {type: number, minimum: 0, exclusiveMinimum: true}
"##;

    fn observed(status: u16, body: &str) -> Observed {
        Observed::new(
            status,
            Duration::ZERO,
            vec![("content-type".into(), "application/json".into())],
            body.as_bytes().to_vec(),
            Vec::new(),
        )
    }

    fn checked(contract: &Contract, path: &str, o: &Observed) -> Vec<Assertion> {
        match contract.check("GET", path, "", o, &NoMask) {
            Finding::Checked { assertions, .. } => assertions,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn matches_templates_with_server_prefix_and_prefers_literal_paths() {
        let c = load("a.yaml", DOC).unwrap();
        let found = c.check(
            "GET",
            "/api/v3/pet/findByStatus",
            "",
            &observed(200, ""),
            &NoMask,
        );
        assert!(
            matches!(found, Finding::Checked { template, .. } if template == "/pet/findByStatus")
        );
        let found = c.check("GET", "/x/pet/1", "/x", &observed(200, "{}"), &NoMask);
        assert!(matches!(found, Finding::Checked { template, .. } if template == "/pet/{petId}"));
        let found = c.check("POST", "/pet/1", "", &observed(200, ""), &NoMask);
        assert!(matches!(found, Finding::Undocumented { .. }));
    }

    #[test]
    fn nullable_required_and_exclusive_minimum_follow_openapi_30() {
        let c = load("a.yaml", DOC).unwrap();
        let ok = checked(&c, "/pet/1", &observed(200, r#"{"name":"a","tag":null}"#));
        assert!(ok.iter().all(|a| a.passed), "{ok:?}");
        let bad = checked(&c, "/pet/1", &observed(200, r#"{"tag":1,"weight":0}"#));
        let messages: Vec<_> = bad.iter().filter_map(|a| a.message.clone()).collect();
        assert!(
            messages.iter().any(|m| m.starts_with("/name: ")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("/tag: ")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("/weight: ")),
            "{messages:?}"
        );
    }

    #[test]
    fn statuses_exact_ranges_and_undocumented() {
        let c = load("a.yaml", DOC).unwrap();
        assert!(checked(&c, "/pet/1", &observed(404, ""))[0].passed);
        let failed = checked(&c, "/pet/1", &observed(500, ""));
        assert!(!failed[0].passed);
        assert_eq!(failed[0].expected, json!(["200", "4XX"]));
    }

    #[test]
    fn recursive_schemas_and_referenced_responses_resolve() {
        let doc = r##"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
          "paths": {"/tree": {"get": {"responses": {"200": {"$ref": "#/components/responses/Tree"}}}}},
          "components": {
            "responses": {"Tree": {"description": "a tree", "content": {"application/json":
              {"schema": {"$ref": "#/components/schemas/Node"}}}}},
            "schemas": {"Node": {"type": "object", "required": ["v"], "properties": {
              "v": {"type": "integer"},
              "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}}"##;
        let c = load("t.json", doc).unwrap();
        let ok = checked(
            &c,
            "/tree",
            &observed(200, r#"{"v":1,"kids":[{"v":2,"kids":[]}]}"#),
        );
        assert!(ok.iter().all(|a| a.passed), "{ok:?}");
        let bad = checked(
            &c,
            "/tree",
            &observed(200, r#"{"v":1,"kids":[{"kids":[{"v":"x"}]}]}"#),
        );
        let messages: Vec<_> = bad.iter().filter_map(|a| a.message.clone()).collect();
        assert!(
            messages.iter().any(|m| m.starts_with("/kids/0/v: ")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("/kids/0/kids/0/v: ")),
            "{messages:?}"
        );
    }

    #[test]
    fn broken_documents_are_located() {
        let bad = DOC.replace("#/components/schemas/Pet", "#/components/schemas/Nope");
        let e = load("a.yaml", &bad).unwrap_err();
        assert!(e.message.contains("points nowhere"), "{e:?}");
        assert!(e.at.is_some());
        let e = load("a.yaml", "openapi: 3.0.3\npaths: [\n").unwrap_err();
        assert!(e.message.starts_with("not valid YAML"), "{e:?}");
        let e = load("a.json", "{\"openapi\": ").unwrap_err();
        assert!(e.message.starts_with("not valid JSON"), "{e:?}");
    }
}
