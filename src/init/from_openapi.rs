//! `preflight init --from-openapi FILE [DIR]`: a suite drafted from an OpenAPI document. One
//! flow per tag (an operation without tags goes by the first segment of its path), one step
//! per `GET` operation that can be sent as documented, each expecting its documented success
//! status and, for a JSON body, the documented response schema (written to `schemas/`). Every
//! other operation is listed as skipped, with the reason, so the author knows what is left to
//! write by hand. Pure: it builds the files' text; [`super::write_files`] writes them.

use crate::openapi::{Broken, Document};
use crate::urlencode::encode_segment;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The suite drafted from a document.
#[derive(Debug)]
pub struct Draft {
    /// Relative to the suite folder, with their text.
    pub files: Vec<(PathBuf, String)>,
    pub steps: usize,
    pub skipped: Vec<Skipped>,
    /// `servers[0]`, when it is absolute (its variables at their defaults).
    pub base_url: Option<String>,
}

/// An operation no step was written for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `GET /pet/{petId} (getPetById)`, comment- and terminal-safe.
    pub operation: String,
    pub why: String,
}

/// Why a suite cannot be drafted at all.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error("{0}")]
    Broken(String),
    #[error("no operation of the document can be a step (every one is listed above as skipped)")]
    NothingToProbe { skipped: Vec<Skipped> },
}

impl From<Broken> for DraftError {
    fn from(broken: Broken) -> Self {
        DraftError::Broken(broken.message)
    }
}

/// One flow being drafted: its steps' TOML and the operations it skipped.
#[derive(Default)]
struct Group {
    steps: Vec<String>,
    skipped: Vec<Skipped>,
}

/// Drafts the suite for `doc`; `spec` is the document's path as `preflight.toml` names it
/// (relative to the suite folder), `source` how the user named it.
pub fn draft(doc: &Document, spec: &str, source: &str) -> Result<Draft, DraftError> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut schemas = Names::default();
    let mut files = Vec::new();
    let mut step_count = 0;
    for (template, method, item, op) in doc.operations()? {
        let group = groups.entry(group_of(template, op)).or_default();
        let operation = described(method, template, op);
        match step(doc, template, method, item, op, &mut schemas) {
            Ok((toml, schema)) => {
                group.steps.push(toml);
                if let Some((name, text)) = schema {
                    files.push((PathBuf::from(name), text));
                }
                step_count += 1;
            }
            Err(why) => group.skipped.push(Skipped { operation, why }),
        }
    }
    let skipped: Vec<Skipped> = groups.values().flat_map(|g| g.skipped.clone()).collect();
    if step_count == 0 {
        return Err(DraftError::NothingToProbe { skipped });
    }
    let base_url = base_url(&doc.value);
    let mut flow_files = Names::default();
    let mut unflowed = Vec::new();
    for (name, group) in &groups {
        if group.steps.is_empty() {
            unflowed.extend(group.skipped.iter().cloned());
            continue;
        }
        let file = flow_files.unique(&file_stem(name), ".toml");
        files.push((PathBuf::from(file), flow(name, group, source)));
    }
    files.insert(
        0,
        (
            PathBuf::from(crate::suite::SUITE_FILE),
            suite(doc, spec, source, base_url.as_deref(), &unflowed),
        ),
    );
    Ok(Draft {
        files,
        steps: step_count,
        skipped,
        base_url,
    })
}

/// The flow an operation belongs to: its first tag, else the first segment of its path.
fn group_of(template: &str, op: &Value) -> String {
    let tag = op
        .get("tags")
        .and_then(Value::as_array)
        .and_then(|tags| tags.first())
        .and_then(Value::as_str)
        .map(one_line)
        .filter(|t| !t.trim().is_empty());
    tag.unwrap_or_else(|| {
        let segment = template.trim_start_matches('/').split('/').next();
        match segment {
            Some(s) if !s.is_empty() && !s.contains('{') => one_line(s),
            _ => "root".to_string(),
        }
    })
}

/// `GET /pet/{petId} (getPetById)`.
fn described(method: &str, template: &str, op: &Value) -> String {
    let mut text = format!("{} {}", method.to_ascii_uppercase(), one_line(template));
    if let Some(id) = op.get("operationId").and_then(Value::as_str) {
        let _ = write!(text, " ({})", one_line(id));
    }
    text
}

/// A step's TOML for one operation, and the schema file it names; or why there is none.
fn step(
    doc: &Document,
    template: &str,
    method: &str,
    item: &Value,
    op: &Value,
    schemas: &mut Names,
) -> Result<(String, Option<(String, String)>), String> {
    match method {
        "get" => {}
        "post" | "put" | "patch" | "delete" => {
            return Err(format!(
                "a {} changes data: write it by hand, with a cleanup",
                method.to_ascii_uppercase()
            ));
        }
        _ => return Err("only GET operations are drafted".into()),
    }
    let request = Request::of(doc, template, item, op)?;
    let (status, response) = success(doc, op)?;
    let content = response
        .get("content")
        .map(|c| doc.follow(c))
        .and_then(Value::as_object);
    let json = content.and_then(|c| {
        c.iter()
            .map(|(media, entry)| (media.as_str(), doc.follow(entry)))
            .find(|(media, _)| is_json(media))
    });
    let mut headers = request.headers;
    if json.is_some() && content.is_some_and(|c| c.len() > 1) {
        headers.insert("accept".into(), "application/json".into());
    }
    let name = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(one_line)
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(|| format!("GET {}", one_line(template)));

    let mut toml = String::from("[[step]]\n");
    if let Some(summary) = op.get("summary").and_then(Value::as_str) {
        let _ = writeln!(toml, "# {}", one_line(summary));
    }
    if op.get("deprecated") == Some(&Value::Bool(true)) {
        toml.push_str("# deprecated in the document\n");
    }
    if let Some(schemes) = security(doc, op) {
        let _ = writeln!(
            toml,
            "# the document asks for credentials ({schemes}): if staging does, add them, e.g.\n\
             # headers = {{ authorization = \"Bearer {{{{ secret.STAGING_TOKEN }}}}\" }}"
        );
    }
    let _ = writeln!(toml, "name = {}", quoted(&name));
    let _ = writeln!(toml, "path = {}", quoted(&request.path));
    if !request.query.is_empty() {
        let _ = writeln!(toml, "query = {}", inline_table(&request.query));
    }
    if !headers.is_empty() {
        let _ = writeln!(toml, "headers = {}", inline_table(&headers));
    }
    toml.push_str("\n[step.expect]\n");
    let _ = writeln!(toml, "status = {status}");
    let mut schema_file = None;
    if let Some((_, entry)) = json
        && let Some(schema) = entry.get("schema")
    {
        let stem = file_stem(
            op.get("operationId")
                .and_then(Value::as_str)
                .unwrap_or(&format!("get {template}")),
        );
        let file = format!("schemas/{}", schemas.unique(&stem, ".schema.json"));
        let mut text = serde_json::to_string_pretty(&doc.standalone_schema(schema))
            .expect("a JSON value serializes");
        text.push('\n');
        let _ = writeln!(toml, "body = {{ json_schema = {} }}", quoted(&file));
        schema_file = Some((file, text));
    }
    Ok((toml, schema_file))
}

/// The request an operation documents: its path with the examples of its path parameters,
/// the examples of its required query and header parameters.
struct Request {
    path: String,
    query: Map<String, Value>,
    headers: Map<String, Value>,
}

impl Request {
    fn of(doc: &Document, template: &str, item: &Value, op: &Value) -> Result<Request, String> {
        // Operation parameters override the path item's of the same name and location.
        let mut parameters: Vec<&Value> = Vec::new();
        for list in [item.get("parameters"), op.get("parameters")] {
            for p in list.and_then(Value::as_array).into_iter().flatten() {
                let p = doc.follow(p);
                let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
                parameters.retain(|q| key(q) != key(p));
                parameters.push(p);
            }
        }
        let mut path = template.to_string();
        let mut query = Map::new();
        let mut headers = Map::new();
        for p in parameters {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let place = p.get("in").and_then(Value::as_str).unwrap_or("");
            let required = place == "path" || p.get("required") == Some(&Value::Bool(true));
            if !required {
                continue;
            }
            let shown = one_line(name);
            let Some(value) = example(doc, p) else {
                return Err(format!(
                    "{place} parameter `{shown}` is required and has no example"
                ));
            };
            if value.to_string().contains("{{") {
                return Err(format!(
                    "the example of {place} parameter `{shown}` holds `{{{{`, which preflight would read as a placeholder"
                ));
            }
            match place {
                "path" => {
                    let Some(text) = scalar_text(&value) else {
                        return Err(format!(
                            "path parameter `{shown}`: its example is not a single value preflight can send as written"
                        ));
                    };
                    if text.is_empty() || text == "." || text == ".." {
                        return Err(format!(
                            "path parameter `{shown}`: its example `{text}` is no path segment"
                        ));
                    }
                    let placeholder = format!("{{{name}}}");
                    if !path.contains(&placeholder) {
                        return Err(format!("path parameter `{shown}` is not in the path"));
                    }
                    path = path.replace(&placeholder, &encode_segment(&text));
                }
                "query" => {
                    let sendable = match &value {
                        Value::Array(items) => items.iter().all(|v| scalar_text(v).is_some()),
                        other => scalar_text(other).is_some(),
                    };
                    if !sendable {
                        return Err(format!(
                            "query parameter `{shown}`: its example is an object (write the query by hand)"
                        ));
                    }
                    query.insert(name.to_string(), value);
                }
                "header" => {
                    let header = name.to_ascii_lowercase();
                    // OpenAPI: a header parameter named so "SHALL be ignored".
                    if ["accept", "content-type", "authorization"].contains(&header.as_str()) {
                        continue;
                    }
                    if ROUTING_HEADERS.contains(&header.as_str()) {
                        return Err(format!(
                            "header parameter `{shown}` decides where or how the request is sent: write it by hand"
                        ));
                    }
                    let Some(text) = scalar_text(&value) else {
                        return Err(format!(
                            "header parameter `{shown}`: its example is not a single value preflight can send as written"
                        ));
                    };
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return Err(format!(
                            "header parameter `{shown}` is not a valid header name"
                        ));
                    }
                    if reqwest::header::HeaderValue::from_str(&text).is_err() {
                        return Err(format!(
                            "the example of header parameter `{shown}` is not a valid header value"
                        ));
                    }
                    headers.insert(header, Value::String(text));
                }
                other => {
                    return Err(format!(
                        "{} parameter `{shown}` is required: write it by hand",
                        one_line(other)
                    ));
                }
            }
        }
        if path.contains('{') || path.contains('}') {
            return Err("the path has a parameter the operation does not describe".into());
        }
        if !path.starts_with('/') || path.contains("{{") {
            return Err("the path is not one preflight can send as written".into());
        }
        let dot_segment = path.split('/').any(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            decoded == "." || decoded == ".."
        });
        if dot_segment {
            return Err(
                "the path has a `.` or `..` segment, which would leave the base URL's path".into(),
            );
        }
        Ok(Request {
            path,
            query,
            headers,
        })
    }
}

/// Headers that say where a request goes or how its body is framed: an example of one (a
/// `Host` of another site, a `Content-Length` with no body) is no request to send unread.
const ROUTING_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    "cookie",
];

/// A parameter's example: `example`, the first of `examples`, its schema's `example`, first
/// of `examples` or `default`.
fn example(doc: &Document, parameter: &Value) -> Option<Value> {
    let first_of = |examples: Option<&Value>| -> Option<Value> {
        match examples.map(|e| doc.follow(e))? {
            Value::Object(named) => named
                .values()
                .find_map(|e| doc.follow(e).get("value").cloned()),
            Value::Array(values) => values.first().cloned(),
            _ => None,
        }
    };
    let schema = parameter.get("schema").map(|s| doc.follow(s));
    parameter
        .get("example")
        .cloned()
        .or_else(|| first_of(parameter.get("examples")))
        .or_else(|| schema.and_then(|s| s.get("example")).cloned())
        .or_else(|| first_of(schema.and_then(|s| s.get("examples"))))
        .or_else(|| schema.and_then(|s| s.get("default")).cloned())
        .filter(|v| !v.is_null())
}

/// The text of a string, number or boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        // A number past 2^53 was read as a float (`1.2345678901234568e+29`): not the example.
        Value::Number(n) if n.is_f64() && n.as_f64().is_none_or(|f| f.abs() >= 2f64.powi(53)) => {
            None
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The documented success: the lowest explicit 2xx status, else `2XX`; and its response.
fn success<'a>(doc: &'a Document, op: &'a Value) -> Result<(String, &'a Value), String> {
    let responses = op.get("responses").and_then(Value::as_object);
    let responses = responses.ok_or("it documents no responses")?;
    let explicit = responses
        .iter()
        .filter_map(|(key, r)| Some((key.parse::<u16>().ok()?, r)))
        .filter(|(code, _)| (200..300).contains(code))
        .min_by_key(|(code, _)| *code);
    if let Some((code, response)) = explicit {
        return Ok((code.to_string(), doc.follow(response)));
    }
    responses
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("2XX"))
        .map(|(_, r)| ("\"2xx\"".to_string(), doc.follow(r)))
        .ok_or_else(|| "it documents no success (2xx) response".to_string())
}

/// The security schemes an operation requires, when it cannot be called without one.
fn security(doc: &Document, op: &Value) -> Option<String> {
    let requirements = op
        .get("security")
        .or_else(|| doc.value.get("security"))?
        .as_array()?;
    if requirements.is_empty()
        || requirements
            .iter()
            .any(|r| r.as_object().is_some_and(Map::is_empty))
    {
        return None;
    }
    let names: Vec<String> = requirements
        .iter()
        .filter_map(Value::as_object)
        .map(|r| {
            r.keys()
                .map(|k| one_line(k))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect();
    Some(names.join(" or "))
}

/// `servers[0].url` when it is an absolute http(s) URL, its `{variables}` at their defaults.
fn base_url(doc: &Value) -> Option<String> {
    let server = doc.get("servers")?.as_array()?.first()?;
    let mut url = server.get("url")?.as_str()?.to_string();
    if let Some(Value::Object(variables)) = server.get("variables") {
        for (name, variable) in variables {
            let default = variable.get("default").and_then(Value::as_str)?;
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    let parsed = url::Url::parse(&url).ok()?;
    let usable = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && !url.contains(['{', '}'])
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    usable.then(|| url.trim_end_matches('/').to_string())
}

/// The path of a relative `servers[0]` (`/api/v3`), else nothing.
fn relative_server(doc: &Value) -> String {
    let url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or("");
    let usable = url.starts_with('/')
        && !url.starts_with("//")
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if usable {
        url.trim_end_matches('/').to_string()
    } else {
        String::new()
    }
}

fn suite(
    doc: &Document,
    spec: &str,
    source: &str,
    base_url: Option<&str>,
    unflowed: &[Skipped],
) -> String {
    let title = doc
        .value
        .pointer("/info/title")
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_else(|| "staging".into());
    let mut text = format!(
        "# Drafted by `preflight init --from-openapi {}`: review it, then\n\
         # `preflight check` and `preflight run`. Every other *.toml file in this folder is a flow.\n",
        one_line(source)
    );
    let _ = writeln!(text, "name = {}\n", quoted(&format!("{title} gate")));
    match base_url {
        Some(url) => {
            let _ = writeln!(
                text,
                "# From the document's servers[0]: make sure it is staging. Overridden by\n\
                 # PREFLIGHT_BASE_URL, then by --base-url.\nbase_url = {}",
                quoted(url)
            );
        }
        None => {
            let _ = writeln!(
                text,
                "# The document names no absolute server: put staging's address here, in\n\
                 # PREFLIGHT_BASE_URL or --base-url. Until then a `.invalid` name, which no\n\
                 # resolver answers: a run fails, it never reaches a host.\nbase_url = {}",
                quoted(&format!(
                    "http://staging.invalid{}",
                    relative_server(&doc.value)
                ))
            );
        }
    }
    text.push_str("\ntimeout = \"10s\"\ndeadline = \"5m\"\n");
    let _ = write!(
        text,
        "\n# Every response is also checked against the document: status, content type, body.\n\
         [openapi]\nspec = {}\nvalidate = \"strict\"   # or \"warn\": violations are warnings\n",
        quoted(spec)
    );
    skipped_comment(&mut text, unflowed);
    text
}

fn flow(name: &str, group: &Group, source: &str) -> String {
    let mut text = format!(
        "# The GET operations of `{}` in {}, drafted by `preflight init --from-openapi`.\n",
        one_line(name),
        one_line(source)
    );
    skipped_comment(&mut text, &group.skipped);
    let _ = writeln!(text, "name = {}\n", quoted(name));
    text.push_str(&group.steps.join("\n"));
    text
}

fn skipped_comment(text: &mut String, skipped: &[Skipped]) {
    if skipped.is_empty() {
        return;
    }
    text.push_str("\n# Not drafted (write these by hand):\n");
    for s in skipped {
        let _ = writeln!(text, "# - {}: {}", s.operation, one_line(&s.why));
    }
    text.push('\n');
}

/// A JSON media type (`application/json`, `application/problem+json`), parameters ignored.
fn is_json(media: &str) -> bool {
    crate::openapi::is_json(&crate::openapi::media_type(media))
}

/// Text from the document on one line, without control characters: it goes into comments,
/// names and the terminal, where a line break would end a comment and start TOML.
fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if crate::report::terminal::hidden(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut short: String = cleaned.chars().take(200).collect();
    if cleaned.chars().count() > 200 {
        short.push('…');
    }
    short
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `{ "name" = "value", ... }`
fn inline_table(entries: &Map<String, Value>) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{} = {}", quoted(k), toml_value(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

fn toml_value(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.is_finite() => toml::Value::Float(f).to_string(),
            _ => quoted(&n.to_string()),
        },
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Null | Value::Object(_) => quoted(&value.to_string()),
    }
}

/// A file name from a tag or an operation id: lower-case letters, digits and `-`.
fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            stem.push(c);
        } else if !stem.ends_with('-') {
            stem.push('-');
        }
    }
    let stem: String = stem.trim_matches('-').chars().take(60).collect();
    let stem = stem.trim_matches('-').to_string();
    match stem.as_str() {
        "" => "flow".into(),
        // preflight.toml is the suite's own file.
        "preflight" => "preflight-flow".into(),
        _ => stem,
    }
}

/// File names handed out so far, so that two never collide (`pet`, `pet-2`).
#[derive(Default)]
struct Names(std::collections::HashSet<String>);

impl Names {
    fn unique(&mut self, stem: &str, extension: &str) -> String {
        let mut n = 1;
        loop {
            let name = if n == 1 {
                format!("{stem}{extension}")
            } else {
                format!("{stem}-{n}{extension}")
            };
            if self.0.insert(name.to_ascii_lowercase()) {
                return name;
            }
            n += 1;
        }
    }
}
