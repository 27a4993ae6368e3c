//! Raw files -> validated [`Plan`], collecting every problem with its location.
//!
//! Each `compile_*` function reads one raw struct, records problems in the [`Source`] it was
//! read from, and returns what it could build; the caller decides at the end whether the plan
//! may run (no problems at all) or not.

use super::plan::{
    Body, Flow, GatePolicy, IntegrityEntry, Plan, RetryKinds, RetryPolicy, Settings, Step, Target,
    TlsSettings, VersionCheck, VersionSource, WaitPolicy,
};
use super::problem::{Problem, did_you_mean};
use super::raw::{
    RawExpect, RawFlow, RawGate, RawIntegrity, RawRetry, RawStep, RawSuite, RawVersion, RawWait,
};
use super::template::{Template, TemplateValue};
use crate::check::{
    Capture, CaptureSource, Expectation, JsonQuery, JsonType, Op, SchemaFile, Subject, sha256_hex,
};
use indexmap::IndexMap;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// One file's text, where its problems are recorded.
pub struct Source<'a> {
    pub path: PathBuf,
    pub text: String,
    pub problems: &'a mut Vec<Problem>,
}

impl Source<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = Problem::at(&self.path, &self.text, span, message);
        self.problems.push(problem);
    }

    fn error_hint(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        let mut problem = Problem::at(&self.path, &self.text, span, message);
        problem.hint = hint;
        self.problems.push(problem);
    }

    /// The range of `needle` inside `span` (a key inside an inline table), else `span`.
    fn find_in(&self, span: &Range<usize>, needle: &str) -> Range<usize> {
        let end = span.end.min(self.text.len());
        self.text
            .get(span.start..end)
            .and_then(|s| s.find(needle))
            .map_or(span.clone(), |i| {
                span.start + i..span.start + i + needle.len()
            })
    }

    /// The range of the name inside its `{{ name }}` within `span` (which covers a quoted
    /// string or a whole inline table), else `span`.
    fn find_placeholder(&self, span: &Range<usize>, name: &str) -> Range<usize> {
        let end = span.end.min(self.text.len());
        let Some(text) = self.text.get(span.start..end) else {
            return span.clone();
        };
        let mut from = 0;
        while let Some(open) = text[from..].find("{{").map(|i| from + i) {
            let inner = &text[open + 2..];
            let skipped = inner.len() - inner.trim_start().len();
            if inner.trim_start().starts_with(name) {
                let start = span.start + open + 2 + skipped;
                return start..start + name.len();
            }
            from = open + 2;
        }
        span.clone()
    }

    /// Parses a template written at `span`; problems point inside the string.
    fn template(&mut self, text: &str, span: &Range<usize>) -> Template {
        match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                let at = self.find_in(span, text);
                let start = if at.len() == text.len() {
                    at.start
                } else {
                    span.start
                };
                self.error(start + e.span.start..start + e.span.end, e.message);
                Template::literal(text)
            }
        }
    }

    fn template_value(&mut self, value: &toml::Value, span: &Range<usize>) -> TemplateValue {
        match value {
            toml::Value::String(s) => TemplateValue::String(self.template(s, span)),
            toml::Value::Integer(i) => TemplateValue::Number((*i).into()),
            toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => TemplateValue::Number(n),
                None => {
                    self.error(span.clone(), "NaN and infinity cannot be sent as JSON");
                    TemplateValue::Null
                }
            },
            toml::Value::Boolean(b) => TemplateValue::Bool(*b),
            toml::Value::Datetime(d) => TemplateValue::String(Template::literal(d.to_string())),
            toml::Value::Array(items) => {
                TemplateValue::Array(items.iter().map(|v| self.template_value(v, span)).collect())
            }
            toml::Value::Table(table) => TemplateValue::Object(
                table
                    .iter()
                    .map(|(k, v)| (k.clone(), self.template_value(v, span)))
                    .collect(),
            ),
        }
    }

    fn duration(&mut self, value: &Spanned<String>) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(value.span(), e);
                None
            }
        }
    }

    /// Reads a file the suite names, relative to the suite directory.
    fn read_file(&mut self, dir: &Path, value: &Spanned<String>) -> Option<Vec<u8>> {
        let path = dir.join(value.get_ref());
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.error(
                    value.span(),
                    format!("cannot read `{}`: {e}", path.display()),
                );
                None
            }
        }
    }
}

/// `"250ms"`, `"10s"`, `"2m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}`: {e} (write e.g. \"250ms\", \"10s\", \"2m\")")
    })
}

/// `"512KiB"`, `"10MiB"`, `"1GB"`, `"2048"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size `{text}` (write e.g. \"512KiB\", \"10MiB\")"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid size `{text}` (write e.g. \"512KiB\", \"10MiB\")"))
}

/// What the command line adds to or overrides in the files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub base_url: Option<String>,
    /// Where `base_url` came from when not from the file, for messages.
    pub base_url_origin: &'static str,
    pub concurrency: Option<usize>,
    pub timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub vars: Vec<(String, String)>,
    /// Nothing will be sent or rendered (`list`, `lock`): a missing base_url, unknown names
    /// and unset env./secret. variables are not problems.
    pub offline: bool,
}

/// Names every template may use without declaring them.
const BUILTINS: [&str; 4] = ["run_id", "uuid", "now", "unix_ms"];

/// The names known at one point of the suite, for static resolution.
#[derive(Clone, Default)]
struct Known {
    vars: BTreeSet<String>,
    captures: BTreeSet<String>,
    /// Captures of later steps of the same list: using one is a distinct, common mistake.
    later: BTreeSet<String>,
}

/// Compiles the suite settings; the flows are compiled one by one with [`compile_flow`].
pub struct Compiler<'e> {
    pub dir: PathBuf,
    pub overrides: Overrides,
    pub env: &'e dyn Fn(&str) -> Option<String>,
    env_used: HashMap<String, String>,
    secrets: BTreeSet<String>,
    settings: Option<Settings>,
    setup_captures: BTreeSet<String>,
    base_url_missing: bool,
    default_retry: RetryPolicy,
}

impl<'e> Compiler<'e> {
    pub fn new(dir: &Path, overrides: Overrides, env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Compiler {
            dir: dir.to_path_buf(),
            overrides,
            env,
            env_used: HashMap::new(),
            secrets: BTreeSet::new(),
            settings: None,
            setup_captures: BTreeSet::new(),
            base_url_missing: false,
            default_retry: RetryPolicy::none(),
        }
    }

    pub fn suite(&mut self, src: &mut Source, raw: RawSuite) -> Vec<Step> {
        let name = raw.name.as_ref().map_or_else(
            || {
                std::fs::canonicalize(&self.dir)
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "suite".into())
            },
            |n| n.get_ref().clone(),
        );
        let base_url = self.base_url(src, raw.base_url.as_ref());
        self.base_url_missing = self.overrides.base_url.is_none() && raw.base_url.is_none();
        let concurrency = match (self.overrides.concurrency, &raw.concurrency) {
            (Some(0), _) => {
                src.problems.push(Problem::file(
                    Path::new("--concurrency"),
                    "--concurrency must be at least 1",
                ));
                1
            }
            (Some(n), _) => n,
            (None, Some(c)) if *c.get_ref() < 1 => {
                src.error(c.span(), "concurrency must be at least 1");
                1
            }
            (None, Some(c)) => *c.get_ref() as usize,
            (None, None) => 8,
        };
        let timeout = self
            .overrides
            .timeout
            .or_else(|| raw.timeout.as_ref().and_then(|t| src.duration(t)))
            .unwrap_or(Duration::from_secs(10));
        let deadline = self
            .overrides
            .deadline
            .or_else(|| raw.deadline.as_ref().and_then(|t| src.duration(t)))
            .unwrap_or(Duration::from_secs(300));
        let max_body = match &raw.max_body {
            Some(size) => parse_size(size.get_ref()).unwrap_or_else(|e| {
                src.error(size.span(), e);
                0
            }),
            None => 10 << 20,
        };
        let vars = self.vars(src, raw.vars.as_ref());
        let cli_vars: Map<String, Value> = self
            .overrides
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut known = Known::default();
        known.vars.extend(vars.keys().cloned());
        known.vars.extend(cli_vars.keys().cloned());
        let headers = self.headers(src, raw.headers.as_ref(), &known);
        let integrity = self.integrity(src, raw.integrity.as_deref().unwrap_or_default(), &known);
        let retry = match &raw.retry {
            Some(r) => retry_policy(src, r, &RetryPolicy::none(), false),
            None => RetryPolicy::none(),
        };
        self.default_retry = retry.clone();
        let wait = raw.wait.as_ref().and_then(|w| self.wait(src, w, &known));
        let gate = raw
            .gate
            .as_ref()
            .map(|g| gate_policy(src, g))
            .unwrap_or_default();
        let tls = self.tls(src, &raw);
        let version = raw
            .version
            .as_ref()
            .and_then(|v| self.version(src, v, &known));
        self.settings = Some(Settings {
            name,
            dir: self.dir.clone(),
            base_url,
            concurrency,
            timeout,
            deadline,
            follow_redirects: raw.follow_redirects.unwrap_or(false),
            max_body,
            headers,
            vars,
            cli_vars,
            integrity,
            version,
            retry,
            wait,
            gate,
            tls,
        });
        let steps = self.steps(src, raw.setup.as_deref().unwrap_or_default(), &known, false);
        self.setup_captures = steps
            .iter()
            .flat_map(|s| s.captures.iter().map(|c| c.name.clone()))
            .collect();
        steps
    }

    fn integrity(
        &mut self,
        src: &mut Source,
        raw: &[Spanned<RawIntegrity>],
        known: &Known,
    ) -> Vec<IntegrityEntry> {
        let mut out: Vec<IntegrityEntry> = Vec::new();
        for entry in raw {
            let entry = entry.get_ref();
            let file = entry.file.get_ref().replace('\\', "/");
            if file.trim().is_empty() {
                src.error(entry.file.span(), "`file` must name a file");
                continue;
            }
            if out.iter().any(|e| e.file == file) {
                src.error(entry.file.span(), format!("`{file}` is pinned twice"));
                continue;
            }
            let served_at = entry.served_at.as_ref().map(|path| {
                let t = src.template(path.get_ref(), &path.span());
                self.resolve(src, &t, &path.span(), known);
                self.need_base_url(src, path.span());
                t
            });
            out.push(IntegrityEntry { file, served_at });
        }
        out
    }

    fn version(
        &mut self,
        src: &mut Source,
        raw: &Spanned<RawVersion>,
        known: &Known,
    ) -> Option<VersionCheck> {
        let v = raw.get_ref();
        let path = src.template(v.path.get_ref(), &v.path.span());
        self.resolve(src, &path, &v.path.span(), known);
        self.need_base_url(src, v.path.span());
        let expect = src.template(v.expect.get_ref(), &v.expect.span());
        self.resolve(src, &expect, &v.expect.span(), known);
        let source = match (&v.json, &v.header) {
            (Some(json), None) => match JsonQuery::parse(json.get_ref()) {
                Ok(q) => VersionSource::Json(q),
                Err(e) => {
                    src.error(json.span(), e);
                    return None;
                }
            },
            (None, Some(header)) => VersionSource::Header(header.get_ref().to_ascii_lowercase()),
            (Some(_), Some(header)) => {
                src.error(
                    header.span(),
                    "`json` and `header` are mutually exclusive: use one",
                );
                return None;
            }
            (None, None) => {
                src.error(
                    raw.span(),
                    "[version] needs `json` (a JSONPath) or `header`",
                );
                return None;
            }
        };
        Some(VersionCheck {
            path,
            source,
            expect,
        })
    }

    fn wait(
        &mut self,
        src: &mut Source,
        raw: &Spanned<RawWait>,
        known: &Known,
    ) -> Option<WaitPolicy> {
        let w = raw.get_ref();
        let path = src.template(w.path.get_ref(), &w.path.span());
        self.resolve(src, &path, &w.path.span(), known);
        self.need_base_url(src, w.path.span());
        let status = w
            .status
            .as_ref()
            .map_or(Op::StatusClass(2), |s| status_op(src, s));
        let timeout = w
            .timeout
            .as_ref()
            .and_then(|t| src.duration(t))
            .unwrap_or(Duration::from_secs(60));
        let interval = w
            .interval
            .as_ref()
            .and_then(|t| src.duration(t))
            .unwrap_or(Duration::from_secs(1));
        if let Some(i) = &w.interval
            && interval.is_zero()
        {
            src.error(i.span(), "`interval` must be more than 0");
        }
        Some(WaitPolicy {
            path,
            status,
            timeout,
            interval,
        })
    }

    /// `insecure`, `ca_cert`, `client_cert` + `client_key`: files must exist and parse.
    fn tls(&mut self, src: &mut Source, raw: &RawSuite) -> TlsSettings {
        use crate::engine::http::Http;
        let mut tls = TlsSettings {
            insecure: raw.insecure.as_ref().is_some_and(|i| *i.get_ref()),
            ..TlsSettings::default()
        };
        // Each file is checked by building the real client with it alone: whatever rustls
        // would reject at run time is an invalid suite now.
        if let Some(ca) = &raw.ca_cert
            && let Some(pem) = src.read_file(&self.dir, ca)
        {
            let only_ca = TlsSettings {
                ca_cert: Some(pem),
                ..TlsSettings::default()
            };
            let holds_certs = only_ca
                .ca_cert
                .as_deref()
                .map(reqwest::Certificate::from_pem_bundle);
            match (holds_certs, Http::client(&only_ca)) {
                (Some(Ok(certs)), _) if certs.is_empty() => src.error(
                    ca.span(),
                    format!("`{}` holds no PEM certificate", ca.get_ref()),
                ),
                (_, Err(e)) => src.error(
                    ca.span(),
                    format!("`{}` is not a usable CA certificate: {e}", ca.get_ref()),
                ),
                (_, Ok(_)) => tls.ca_cert = only_ca.ca_cert,
            }
        }
        match (&raw.client_cert, &raw.client_key) {
            (Some(cert), Some(key)) => {
                let cert_pem = src.read_file(&self.dir, cert);
                let key_pem = src.read_file(&self.dir, key);
                if let (Some(mut pem), Some(key_pem)) = (cert_pem, key_pem) {
                    pem.push(b'\n');
                    pem.extend_from_slice(&key_pem);
                    let only_identity = TlsSettings {
                        identity: Some(pem),
                        ..TlsSettings::default()
                    };
                    match Http::client(&only_identity) {
                        Ok(_) => tls.identity = only_identity.identity,
                        Err(e) => src.error(
                            cert.span(),
                            format!(
                                "`{}` and `{}` do not make a usable client identity: {e}",
                                cert.get_ref(),
                                key.get_ref()
                            ),
                        ),
                    }
                }
            }
            (Some(only), None) | (None, Some(only)) => {
                src.error(
                    only.span(),
                    "mutual TLS needs both `client_cert` and `client_key`",
                );
            }
            (None, None) => {}
        }
        tls
    }

    fn need_base_url(&mut self, src: &mut Source, span: Range<usize>) {
        if self.base_url_missing && !self.overrides.offline {
            src.error_hint(
                span,
                "no base_url for this `path`",
                Some("set base_url in preflight.toml, PREFLIGHT_BASE_URL or --base-url".into()),
            );
        }
    }

    fn base_url(&mut self, src: &mut Source, raw: Option<&Spanned<String>>) -> Option<url::Url> {
        let (text, span) = match (&self.overrides.base_url, raw) {
            (Some(url), _) => (url.clone(), None),
            (None, Some(raw)) => (raw.get_ref().clone(), Some(raw.span())),
            (None, None) => return None,
        };
        let problem = match url::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                return Some(url);
            }
            Ok(url) => format!(
                "base_url `{text}` must be an http or https URL, not `{}:`",
                url.scheme()
            ),
            Err(e) => format!("invalid base_url `{text}`: {e}"),
        };
        match span {
            Some(span) => src.error(span, problem),
            None => src.problems.push(Problem::file(
                Path::new(self.overrides.base_url_origin),
                problem,
            )),
        }
        None
    }

    fn vars(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<toml::Value>>>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in raw.into_iter().flatten() {
            if !is_identifier(name) {
                src.error(
                    value.span(),
                    format!("variable name `{name}` must use letters, digits, `_` and `-`"),
                );
            }
            out.insert(name.clone(), toml_to_json(value.get_ref()));
        }
        out
    }

    fn headers(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<String>>>,
        known: &Known,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (name, value) in raw.into_iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                let at = src.find_in(&(0..src.text.len()), name);
                src.error(at, format!("invalid header name `{name}`"));
            }
            let template = src.template(value.get_ref(), &value.span());
            self.resolve(src, &template, &value.span(), known);
            out.push((lower, template));
        }
        out
    }

    /// Checks that every name of `template` resolves at this point; records env values.
    fn resolve(
        &mut self,
        src: &mut Source,
        template: &Template,
        span: &Range<usize>,
        known: &Known,
    ) {
        if self.overrides.offline {
            return;
        }
        for (name, _) in template.names() {
            let at = src.find_placeholder(span, name);
            if let Some(var) = name
                .strip_prefix("env.")
                .or_else(|| name.strip_prefix("secret."))
            {
                match (self.env)(var) {
                    // An empty secret is almost always a CI secret that was never defined.
                    Some(value) if value.is_empty() && name.starts_with("secret.") => src.error(
                        at,
                        format!("environment variable `{var}` is empty (used as `{name}`)"),
                    ),
                    Some(value) => {
                        if name.starts_with("secret.") {
                            self.secrets.insert(value.clone());
                        }
                        self.env_used.insert(var.to_string(), value);
                    }
                    None => src.error(
                        at,
                        format!("environment variable `{var}` is not set (used as `{name}`)"),
                    ),
                }
                continue;
            }
            let head = name.split('.').next().unwrap_or(name);
            if BUILTINS.contains(&name)
                || known.captures.contains(name)
                || known.vars.contains(head)
            {
                continue;
            }
            if known.later.contains(name) {
                src.error_hint(
                    at,
                    format!("`{name}` is used before the step that captures it"),
                    Some("a step may only use captures of the steps before it".into()),
                );
                continue;
            }
            let candidates: Vec<&str> = known
                .vars
                .iter()
                .chain(&known.captures)
                .map(String::as_str)
                .chain(BUILTINS)
                .collect();
            let hint = did_you_mean(name, candidates).or_else(|| {
                Some("names come from captures of earlier steps, [[setup]] captures, --var, [vars], env.NAME, secret.NAME, run_id, uuid, now, unix_ms".into())
            });
            src.error_hint(at, format!("unknown name `{name}`"), hint);
        }
    }

    /// Compiles a list of steps in order: each may use the captures of the ones before it.
    fn steps(
        &mut self,
        src: &mut Source,
        raw: &[RawStep],
        known: &Known,
        cleanup: bool,
    ) -> Vec<Step> {
        let mut known = known.clone();
        let mut out = Vec::new();
        for (i, step) in raw.iter().enumerate() {
            known.later = raw[i..]
                .iter()
                .flat_map(|s| s.capture.iter().flat_map(|c| c.keys().cloned()))
                .collect();
            let compiled = self.step(src, step, &known);
            if !cleanup {
                known
                    .captures
                    .extend(compiled.captures.iter().map(|c| c.name.clone()));
            }
            out.push(compiled);
        }
        out
    }

    fn step(&mut self, src: &mut Source, raw: &RawStep, known: &Known) -> Step {
        let retry = match &raw.retry {
            Some(r) => retry_policy(src, r, &self.default_retry, true),
            None => self.default_retry.clone(),
        };
        let method = match &raw.method {
            Some(m) => {
                match reqwest::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => method,
                    Err(_) => {
                        src.error(m.span(), format!("invalid method `{}`", m.get_ref()));
                        reqwest::Method::GET
                    }
                }
            }
            None => reqwest::Method::GET,
        };
        let mut uses = BTreeSet::new();
        let mut use_template =
            |this: &mut Self, src: &mut Source, t: &Template, span: &Range<usize>| {
                this.resolve(src, t, span, known);
                uses.extend(
                    t.names()
                        .map(|(n, _)| n.to_string())
                        .filter(|n| known.captures.contains(n)),
                );
            };
        let target = match (&raw.path, &raw.url) {
            (Some(path), Some(url)) => {
                src.error(
                    url.span(),
                    "`path` and `url` are mutually exclusive: use one",
                );
                Target::Path(src.template(path.get_ref(), &path.span()))
            }
            (Some(path), None) => {
                let t = src.template(path.get_ref(), &path.span());
                use_template(self, src, &t, &path.span());
                self.need_base_url(src, path.span());
                Target::Path(t)
            }
            (None, Some(url)) => {
                let t = src.template(url.get_ref(), &url.span());
                use_template(self, src, &t, &url.span());
                if let Some(literal) = t.as_literal()
                    && let Err(e) = url::Url::parse(literal)
                {
                    src.error(url.span(), format!("invalid url `{literal}`: {e}"));
                }
                Target::Url(t)
            }
            (None, None) => {
                let at = raw.name.as_ref().map_or(0..0, Spanned::span);
                src.error(at, "a step needs `path` or `url`");
                Target::Path(Template::literal("/"))
            }
        };
        let name = raw.name.as_ref().map_or_else(
            || {
                let shown = match &raw.path.as_ref().or(raw.url.as_ref()) {
                    Some(p) => p.get_ref().clone(),
                    None => "/".into(),
                };
                format!("{method} {shown}")
            },
            |n| n.get_ref().clone(),
        );
        let mut text_pairs =
            |this: &mut Self,
             src: &mut Source,
             raw: Option<&IndexMap<String, Spanned<toml::Value>>>| {
                let mut out = Vec::new();
                for (key, value) in raw.into_iter().flatten() {
                    let texts: Vec<String> = match value.get_ref() {
                        toml::Value::Array(items) => items.iter().map(toml_to_text).collect(),
                        toml::Value::Table(_) => {
                            src.error(
                                value.span(),
                                format!("`{key}` must be a string, number, boolean or array"),
                            );
                            continue;
                        }
                        other => vec![toml_to_text(other)],
                    };
                    for text in texts {
                        let t = src.template(&text, &value.span());
                        use_template(this, src, &t, &value.span());
                        out.push((key.clone(), t));
                    }
                }
                out
            };
        let query = text_pairs(self, src, raw.query.as_ref());
        let form = text_pairs(self, src, raw.form.as_ref());
        let mut headers = Vec::new();
        for (name, value) in raw.headers.iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                src.error(value.span(), format!("invalid header name `{name}`"));
            }
            let t = src.template(value.get_ref(), &value.span());
            use_template(self, src, &t, &value.span());
            headers.push((lower, t));
        }
        let bodies: Vec<(&str, Range<usize>)> = [
            ("json", raw.json.as_ref().map(Spanned::span)),
            ("body", raw.body.as_ref().map(Spanned::span)),
            ("body_file", raw.body_file.as_ref().map(Spanned::span)),
            (
                "form",
                raw.form
                    .as_ref()
                    .and_then(|f| f.values().next())
                    .map(Spanned::span),
            ),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        if bodies.len() > 1 {
            let names: Vec<&str> = bodies.iter().map(|(k, _)| *k).collect();
            src.error(
                bodies[1].1.clone(),
                format!(
                    "{} are mutually exclusive: a step sends one body",
                    names.join(" and ")
                ),
            );
        }
        let body = if let Some(json) = &raw.json {
            let value = src.template_value(json.get_ref(), &json.span());
            for t in value.templates() {
                use_template(self, src, t, &json.span());
            }
            Body::Json(value)
        } else if let Some(text) = &raw.body {
            let t = src.template(text.get_ref(), &text.span());
            use_template(self, src, &t, &text.span());
            Body::Text(t)
        } else if let Some(file) = &raw.body_file {
            let bytes = src.read_file(&self.dir, file).unwrap_or_default();
            Body::File {
                name: file.get_ref().clone(),
                bytes: Arc::new(bytes),
            }
        } else if !form.is_empty() {
            Body::Form(form)
        } else {
            Body::None
        };
        let timeout = raw.timeout.as_ref().and_then(|t| src.duration(t));
        let expectations = self.expect(src, raw.expect.as_ref(), known);
        let captures = self.captures(src, raw.capture.as_ref());
        Step {
            name,
            method,
            target,
            query,
            headers,
            body,
            timeout,
            expectations,
            captures,
            retry,
            uses_captures: uses.into_iter().collect(),
        }
    }

    fn expect(
        &mut self,
        src: &mut Source,
        raw: Option<&RawExpect>,
        known: &Known,
    ) -> Vec<Expectation> {
        let mut out = Vec::new();
        let status = raw.and_then(|e| e.status.as_ref());
        out.push(Expectation {
            subject: Subject::Status,
            op: match status {
                None => Op::StatusClass(2),
                Some(s) => status_op(src, s),
            },
        });
        let Some(raw) = raw else { return out };
        if let Some(latency) = &raw.max_latency
            && let Some(d) = src.duration(latency)
        {
            out.push(Expectation {
                subject: Subject::Latency,
                op: Op::Le(TemplateValue::Number((d.as_millis() as u64).into())),
            });
        }
        for (name, value) in raw.headers.iter().flatten() {
            let subject = Subject::Header(name.to_ascii_lowercase());
            self.ops(src, subject, value, known, false, &mut out);
        }
        if let Some(body) = &raw.body {
            self.ops(src, Subject::Body, body, known, true, &mut out);
        }
        for (path, value) in raw.json.iter().flatten() {
            match JsonQuery::parse(path.get_ref()) {
                Ok(query) => self.ops(src, Subject::Json(query), value, known, false, &mut out),
                Err(e) => src.error(path.span(), format!("{e} in `{}`", path.get_ref())),
            }
        }
        out
    }

    /// A plain value means `equals`; a table is always an operator table.
    fn ops(
        &mut self,
        src: &mut Source,
        subject: Subject,
        value: &Spanned<toml::Value>,
        known: &Known,
        on_body: bool,
        out: &mut Vec<Expectation>,
    ) {
        let span = value.span();
        let toml::Value::Table(table) = value.get_ref() else {
            let expected = self.expected_value(src, value.get_ref(), &span, known);
            out.push(Expectation {
                subject,
                op: Op::Equals(expected),
            });
            return;
        };
        if table.is_empty() {
            src.error(
                span.clone(),
                "empty operator table: name at least one operator",
            );
        }
        for (key, arg) in table {
            let at = src.find_in(&span, key);
            if let Some(op) = self.op(src, key, arg, &at, &span, known, on_body) {
                out.push(Expectation {
                    subject: subject.clone(),
                    op,
                });
            }
        }
    }

    fn expected_value(
        &mut self,
        src: &mut Source,
        value: &toml::Value,
        span: &Range<usize>,
        known: &Known,
    ) -> TemplateValue {
        let v = src.template_value(value, span);
        for t in v.templates() {
            self.resolve(src, t, span, known);
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        src: &mut Source,
        key: &str,
        arg: &toml::Value,
        at: &Range<usize>,
        span: &Range<usize>,
        known: &Known,
        on_body: bool,
    ) -> Option<Op> {
        let number_like = |v: &TemplateValue| {
            matches!(v, TemplateValue::Number(_))
                || matches!(v, TemplateValue::String(t) if t.as_literal().is_none())
        };
        Some(match key {
            "equals" | "not_equals" | "contains" | "not_contains" | "one_of" => {
                let v = self.expected_value(src, arg, span, known);
                match key {
                    "equals" => Op::Equals(v),
                    "not_equals" => Op::NotEquals(v),
                    "contains" => Op::Contains(v),
                    "not_contains" => Op::NotContains(v),
                    _ => {
                        if !matches!(v, TemplateValue::Array(_)) {
                            src.error(at.clone(), "`one_of` takes an array of values");
                        }
                        Op::OneOf(v)
                    }
                }
            }
            "lt" | "le" | "gt" | "ge" => {
                let v = self.expected_value(src, arg, span, known);
                if !number_like(&v) {
                    src.error(at.clone(), format!("`{key}` takes a number"));
                }
                match key {
                    "lt" => Op::Lt(v),
                    "le" => Op::Le(v),
                    "gt" => Op::Gt(v),
                    _ => Op::Ge(v),
                }
            }
            "matches" => {
                let Some(text) = arg.as_str() else {
                    src.error(at.clone(), "`matches` takes a regex string");
                    return None;
                };
                let t = src.template(text, span);
                self.resolve(src, &t, span, known);
                if let Some(literal) = t.as_literal()
                    && let Err(e) = Regex::new(literal)
                {
                    src.error(
                        at.clone(),
                        format!("invalid regex: {}", one_line(&e.to_string())),
                    );
                }
                Op::Matches(t)
            }
            "exists" => match arg.as_bool() {
                Some(b) => Op::Exists(b),
                None => {
                    src.error(at.clone(), "`exists` takes true or false");
                    return None;
                }
            },
            "length" => match arg {
                toml::Value::Integer(n) if *n >= 0 => {
                    Op::Length(vec![Op::Equals(TemplateValue::Number((*n).into()))])
                }
                toml::Value::Table(inner) if !inner.is_empty() => {
                    let mut ops = Vec::new();
                    for (k, v) in inner {
                        if !matches!(
                            k.as_str(),
                            "equals" | "not_equals" | "lt" | "le" | "gt" | "ge" | "one_of"
                        ) {
                            let at = src.find_in(span, k);
                            src.error(at, format!("`length` takes numeric operators (equals, lt, le, gt, ge, one_of), not `{k}`"));
                            continue;
                        }
                        ops.extend(self.op(src, k, v, at, span, known, on_body));
                    }
                    Op::Length(ops)
                }
                _ => {
                    src.error(
                        at.clone(),
                        "`length` takes a non-negative integer or a table like { ge = 1 }",
                    );
                    return None;
                }
            },
            "type" => match arg.as_str().and_then(JsonType::parse) {
                Some(t) => Op::Type(t),
                None => {
                    src.error_hint(
                        at.clone(),
                        format!("`type` must be one of {}", JsonType::NAMES.join(", ")),
                        arg.as_str().and_then(|s| did_you_mean(s, JsonType::NAMES)),
                    );
                    return None;
                }
            },
            "json_schema" => {
                let file = file_arg(src, key, arg, at)?;
                let bytes = src.read_file(&self.dir, &file)?;
                let schema: Value = match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        src.error(at.clone(), format!("`{}` is not JSON: {e}", file.get_ref()));
                        return None;
                    }
                };
                match jsonschema::validator_for(&schema) {
                    Ok(validator) => Op::JsonSchema(SchemaFile {
                        file: file.into_inner(),
                        validator: Arc::new(validator),
                    }),
                    Err(e) => {
                        src.error(
                            at.clone(),
                            format!("`{}` is not a valid JSON Schema: {e}", file.get_ref()),
                        );
                        return None;
                    }
                }
            }
            "sha256" | "sha256_of_file" if !on_body => {
                src.error(at.clone(), format!("`{key}` applies only to `body`"));
                return None;
            }
            "sha256" => match arg.as_str() {
                Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                    Op::Sha256(hex.to_ascii_lowercase())
                }
                _ => {
                    src.error(at.clone(), "`sha256` takes 64 hex digits");
                    return None;
                }
            },
            "sha256_of_file" => {
                let file = file_arg(src, key, arg, at)?;
                let bytes = src.read_file(&self.dir, &file)?;
                Op::Sha256OfFile {
                    file: file.into_inner(),
                    hex: sha256_hex(&bytes),
                }
            }
            unknown => {
                src.error_hint(
                    at.clone(),
                    format!("unknown operator `{unknown}`"),
                    did_you_mean(unknown, OPERATORS)
                        .or_else(|| Some(format!("operators: {}", OPERATORS.join(", ")))),
                );
                return None;
            }
        })
    }

    fn captures(
        &mut self,
        src: &mut Source,
        raw: Option<&IndexMap<String, Spanned<toml::Value>>>,
    ) -> Vec<Capture> {
        let mut out = Vec::new();
        for (name, value) in raw.into_iter().flatten() {
            let span = value.span();
            if !is_identifier(name)
                || BUILTINS.contains(&name.as_str())
                || name == "env"
                || name == "secret"
            {
                let at = src.find_in(
                    &(src.text[..span.start].rfind('\n').unwrap_or(0)..span.start),
                    name,
                );
                src.error(at, format!("`{name}` cannot be a capture name: use letters, digits, `_`, `-`, and not a built-in name"));
                continue;
            }
            let (source, secret) = match value.get_ref() {
                toml::Value::String(path) => (self.json_source(src, path, &span), false),
                toml::Value::Table(table) => {
                    let mut source = None;
                    let mut secret = false;
                    for (key, arg) in table {
                        let at = src.find_in(&span, key);
                        let text = arg.as_str();
                        let kind = match (key.as_str(), text) {
                            ("secret", _) => {
                                match arg.as_bool() {
                                    Some(b) => secret = b,
                                    None => src.error(at, "`secret` takes true or false"),
                                }
                                continue;
                            }
                            ("json", Some(path)) => self.json_source(src, path, &span),
                            ("header", Some(h)) => {
                                Some(CaptureSource::Header(h.to_ascii_lowercase()))
                            }
                            ("cookie", Some(c)) => Some(CaptureSource::Cookie(c.to_string())),
                            ("body_regex", Some(r)) => match Regex::new(r) {
                                Ok(re) => Some(CaptureSource::BodyRegex(re)),
                                Err(e) => {
                                    src.error(
                                        at,
                                        format!("invalid regex: {}", one_line(&e.to_string())),
                                    );
                                    None
                                }
                            },
                            ("json" | "header" | "cookie" | "body_regex", None) => {
                                src.error(at, format!("`{key}` takes a string"));
                                None
                            }
                            (unknown, _) => {
                                src.error_hint(
                                    at,
                                    format!("unknown capture key `{unknown}`"),
                                    did_you_mean(unknown, CAPTURE_KEYS).or_else(|| Some("a capture takes one of json, header, body_regex, cookie, and optionally secret".to_string())),
                                );
                                None
                            }
                        };
                        if kind.is_some() && source.is_some() {
                            let at = src.find_in(&span, key);
                            src.error(
                                at,
                                "a capture reads one source: json, header, body_regex or cookie",
                            );
                        } else if kind.is_some() {
                            source = kind;
                        }
                    }
                    if source.is_none()
                        && !table
                            .keys()
                            .any(|k| CAPTURE_KEYS[..4].contains(&k.as_str()))
                    {
                        src.error(
                            span.clone(),
                            "a capture needs one of json, header, body_regex or cookie",
                        );
                    }
                    (source, secret)
                }
                _ => {
                    src.error(
                        span.clone(),
                        "a capture is a JSONPath string or a table like { header = \"x-id\" }",
                    );
                    (None, false)
                }
            };
            if let Some(source) = source {
                out.push(Capture {
                    name: name.clone(),
                    source,
                    secret,
                });
            }
        }
        out
    }

    fn json_source(
        &mut self,
        src: &mut Source,
        path: &str,
        span: &Range<usize>,
    ) -> Option<CaptureSource> {
        match JsonQuery::parse(path) {
            Ok(q) => Some(CaptureSource::Json(q)),
            Err(e) => {
                let at = src.find_in(span, path);
                src.error(at, format!("{e} in `{path}`"));
                None
            }
        }
    }

    /// Compiles one flow file.
    pub fn flow(&mut self, src: &mut Source, file: &str, raw: RawFlow) -> Flow {
        let settings = self.settings.clone().expect("suite compiled before flows");
        let vars = self.vars(src, raw.vars.as_ref());
        let mut known = Known::default();
        known.vars.extend(settings.vars.keys().cloned());
        known.vars.extend(settings.cli_vars.keys().cloned());
        known.vars.extend(vars.keys().cloned());
        known.captures.extend(self.setup_captures.iter().cloned());
        let steps = self.steps(src, raw.step.as_deref().unwrap_or_default(), &known, false);
        if steps.is_empty() {
            src.problems.push(Problem::file(
                &src.path,
                "a flow needs at least one [[step]]",
            ));
        }
        // Cleanups may use any capture of the flow; one whose captures never happened is skipped.
        known.captures.extend(
            steps
                .iter()
                .flat_map(|s| s.captures.iter().map(|c| c.name.clone())),
        );
        let cleanup = self.steps(
            src,
            raw.cleanup.as_deref().unwrap_or_default(),
            &known,
            true,
        );
        let stem = Path::new(file)
            .file_stem()
            .map_or(file.to_string(), |s| s.to_string_lossy().into_owned());
        Flow {
            name: raw.name.map_or(stem, Spanned::into_inner),
            file: file.to_string(),
            tags: raw.tags.unwrap_or_default(),
            critical: raw.critical.unwrap_or(true),
            vars,
            steps,
            cleanup,
        }
    }

    pub fn finish(self, setup: Vec<Step>, flows: Vec<Flow>) -> Plan {
        Plan {
            settings: self.settings.expect("suite compiled"),
            setup,
            flows,
            env: self.env_used,
            secrets: self.secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            lock: None,
        }
    }
}

pub const OPERATORS: [&str; 16] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
    "exists",
    "lt",
    "le",
    "gt",
    "ge",
    "length",
    "one_of",
    "type",
    "json_schema",
    "sha256",
    "sha256_of_file",
];
const CAPTURE_KEYS: [&str; 5] = ["json", "header", "body_regex", "cookie", "secret"];

/// A `[retry]` table over `base` (the suite default, for a step's own table).
fn retry_policy(
    src: &mut Source,
    raw: &Spanned<RawRetry>,
    base: &RetryPolicy,
    is_step: bool,
) -> RetryPolicy {
    let r = raw.get_ref();
    let mut policy = RetryPolicy {
        named_by_step: RetryKinds::default(),
        ..base.clone()
    };
    if let Some(attempts) = &r.attempts {
        match u32::try_from(*attempts.get_ref()) {
            Ok(n @ 1..=100) => policy.attempts = n,
            _ => src.error(
                attempts.span(),
                "`attempts` is the total number of tries, 1 to 100",
            ),
        }
    }
    if let Some(backoff) = &r.backoff
        && let Some(d) = src.duration(backoff)
    {
        policy.backoff = d;
    }
    if let Some(on) = &r.on {
        let mut kinds = RetryKinds::default();
        for kind in on {
            match kind.get_ref().as_str() {
                "connect" => kinds.connect = true,
                "timeout" => kinds.timeout = true,
                "5xx" => kinds.server_error = true,
                other => src.error_hint(
                    kind.span(),
                    format!("`{other}` cannot be retried: `on` takes connect, timeout and 5xx"),
                    did_you_mean(other, RetryKinds::NAMES),
                ),
            }
        }
        policy.on = kinds;
        if is_step {
            policy.named_by_step = kinds;
        }
    }
    policy
}

fn gate_policy(src: &mut Source, raw: &Spanned<RawGate>) -> GatePolicy {
    let g = raw.get_ref();
    let max_noncritical_failures = match &g.max_noncritical_failures {
        None => None,
        Some(n) if *n.get_ref() == -1 => None,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                src.error(
                    n.span(),
                    "`max_noncritical_failures` is -1 (no limit) or a count",
                );
                None
            }
        },
    };
    let max_p95_latency = g.max_p95_latency.as_ref().and_then(|d| src.duration(d));
    GatePolicy {
        max_noncritical_failures,
        max_p95_latency,
        fail_on_flaky: g.fail_on_flaky.unwrap_or(false),
    }
}

fn status_op(src: &mut Source, status: &Spanned<toml::Value>) -> Op {
    let valid = |n: i64| (100..=599).contains(&n);
    match status.get_ref() {
        toml::Value::Integer(n) if valid(*n) => Op::Equals(TemplateValue::Number((*n).into())),
        toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(|i| i.as_integer().is_some_and(valid)) =>
        {
            Op::OneOf(TemplateValue::Array(
                items
                    .iter()
                    .map(|i| TemplateValue::Number(i.as_integer().unwrap_or(0).into()))
                    .collect(),
            ))
        }
        toml::Value::String(s)
            if s.len() == 3 && s.ends_with("xx") && matches!(s.as_bytes()[0], b'1'..=b'5') =>
        {
            Op::StatusClass(u16::from(s.as_bytes()[0] - b'0'))
        }
        _ => {
            src.error(
                status.span(),
                "`status` is an integer (201), a list ([200, 201]) or a class (\"2xx\")",
            );
            Op::StatusClass(2)
        }
    }
}

fn file_arg(
    src: &mut Source,
    key: &str,
    arg: &toml::Value,
    at: &Range<usize>,
) -> Option<Spanned<String>> {
    match arg.as_str() {
        Some(path) => Some(Spanned::new(at.clone(), path.to_string())),
        None => {
            src.error(at.clone(), format!("`{key}` takes a file path"));
            None
        }
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn toml_to_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => toml_to_json(other).to_string(),
    }
}

/// TOML values as JSON (datetimes as RFC 3339 strings).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
