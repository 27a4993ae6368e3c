//! preflight.toml: base URL, limits, headers, vars, retry, wait, gate, TLS, integrity, version.

use super::expect::status_op;
use super::names::Known;
use super::source::{Source, has_non_finite, is_identifier, parse_size, toml_to_json};
use super::{Compiler, Lost};
use crate::check::{JsonQuery, Op};
use crate::problem::{Problem, did_you_mean};
use crate::suite::plan::OpenApiCheck;
use crate::suite::plan::{
    GatePolicy, IntegrityEntry, RegressionPolicy, RetryKinds, RetryPolicy, Settings, Step,
    TlsSettings, VersionCheck, VersionSource, WaitPolicy,
};
use crate::suite::raw::{
    RawGate, RawIntegrity, RawOpenApi, RawRetry, RawSuite, RawVersion, RawWait,
};
use crate::template::Template;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use sha2::Digest;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// More flows in flight than this is a load test, not a gate; far more would not even fit the
/// scheduler's semaphore.
pub const MAX_CONCURRENCY: usize = 10_000;

/// What preflight.toml compiles to.
pub struct SuiteParts {
    pub settings: Settings,
    pub setup: Vec<Step>,
    pub teardown: Vec<Step>,
}

impl Compiler<'_> {
    /// Compiles preflight.toml (its entries with problems already dropped, see `lost`), then
    /// the `[[setup]]` and `[[teardown]]` steps.
    pub fn suite(&mut self, src: &mut Source, raw: RawSuite, lost: Lost) -> SuiteParts {
        let name = self.suite_name(raw.name.as_ref());
        let base_url = self.base_url(src, raw.base_url.as_ref());
        self.base_url_missing =
            self.overrides.base_url.is_none() && raw.base_url.is_none() && !lost.base_url;
        let concurrency = self.concurrency(src, raw.concurrency.as_ref());
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
        let max_body = raw.max_body.as_ref().map_or(10 << 20, |size| {
            parse_size(size.get_ref()).unwrap_or_else(|e| {
                src.error(size.span(), e);
                0
            })
        });
        self.read_vars_files(src.problems);
        let vars = self.vars(src, raw.vars.as_ref());
        let vars = self.over_file_vars(vars);
        let mut known = Known {
            vars: vars.clone(),
            open: lost.names,
            ..Known::default()
        };
        known.vars.extend(self.cli_vars.clone());
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
        let openapi = raw.openapi.as_ref().and_then(|o| self.openapi(src, o));
        let settings = Settings {
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
            cli_vars: self.cli_vars.clone(),
            integrity,
            version,
            openapi,
            retry,
            wait,
            gate,
            tls,
        };
        let steps = self.steps(src, raw.setup.as_deref().unwrap_or_default(), &known, false);
        known.captures.extend(
            steps
                .iter()
                .flat_map(|s| s.captures.iter().map(|c| c.name.clone())),
        );
        // Teardown steps see the setup captures, and each other's in order.
        let teardown = self.steps(
            src,
            raw.teardown.as_deref().unwrap_or_default(),
            &known,
            false,
        );
        self.suite_known = known;
        SuiteParts {
            settings,
            setup: steps,
            teardown,
        }
    }

    /// `name`, by default the suite directory's name.
    fn suite_name(&self, raw: Option<&Spanned<String>>) -> String {
        match raw {
            Some(name) => name.get_ref().clone(),
            None => std::fs::canonicalize(&self.dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "suite".into()),
        }
    }

    /// Flows in flight at once: `--concurrency` over the file's, 1 to [`MAX_CONCURRENCY`].
    fn concurrency(&mut self, src: &mut Source, raw: Option<&Spanned<i64>>) -> usize {
        let limits = format!("1 to {MAX_CONCURRENCY}");
        match (self.overrides.concurrency, raw) {
            (Some(n), _) if (1..=MAX_CONCURRENCY).contains(&n) => n,
            (Some(n), _) => {
                let message = format!("--concurrency is {limits}, not {n}");
                src.problems
                    .push(Problem::file(Path::new("--concurrency"), message));
                1
            }
            (None, Some(c)) => match usize::try_from(*c.get_ref()) {
                Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
                _ => {
                    src.error(c.span(), format!("`concurrency` is {limits}"));
                    1
                }
            },
            (None, None) => 8,
        }
    }

    pub(super) fn integrity(
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

    pub(super) fn version(
        &mut self,
        src: &mut Source,
        raw: &Spanned<RawVersion>,
        known: &Known,
    ) -> Option<VersionCheck> {
        let v = raw.get_ref();
        let path = src.template(v.path.get_ref(), &v.path.span());
        self.resolve(src, &path, &v.path.span(), known);
        self.need_base_url(src, v.path.span());
        if v.expect.get_ref().trim().is_empty() {
            // An empty expected version would pass against a staging that reports none.
            src.error(
                v.expect.span(),
                "`expect` is empty: it must name the version staging runs",
            );
        }
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
            (None, Some(header)) => {
                let name = header.get_ref().to_ascii_lowercase();
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    src.error(header.span(), format!("invalid header name `{name}`"));
                }
                VersionSource::Header(name)
            }
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

    pub(super) fn wait(
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
        Some(WaitPolicy {
            path,
            status,
            timeout,
            interval,
        })
    }

    /// `insecure`, `ca_cert`, `client_cert` + `client_key`: files must exist and parse.
    pub(super) fn tls(&mut self, src: &mut Source, raw: &RawSuite) -> TlsSettings {
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
            match (holds_certs, crate::tls::client(&only_ca)) {
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
                    match crate::tls::client(&only_identity) {
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

    /// `[openapi]`: the document read, parsed, resolved and compiled now; a broken one is a
    /// problem located in it (or at `spec` when it cannot be read at all).
    fn openapi(&mut self, src: &mut Source, raw: &Spanned<RawOpenApi>) -> Option<OpenApiCheck> {
        let o = raw.get_ref();
        let warn_only = match o
            .validate
            .as_ref()
            .map(|v| (v.get_ref().as_str(), v.span()))
        {
            None | Some(("strict", _)) => false,
            Some(("warn", _)) => true,
            Some((other, span)) => {
                src.error_hint(
                    span,
                    format!("`validate` is \"strict\" or \"warn\", not `{other}`"),
                    did_you_mean(other, ["strict", "warn"]),
                );
                false
            }
        };
        let bytes = src.read_file(&self.dir, &o.spec)?;
        let sha256 = sha2::Sha256::digest(&bytes).into();
        let path = self.dir.join(o.spec.get_ref());
        let Ok(text) = String::from_utf8(bytes) else {
            src.error(
                o.spec.span(),
                format!("`{}` is not UTF-8 text", o.spec.get_ref()),
            );
            return None;
        };
        match crate::openapi::load(o.spec.get_ref(), &text) {
            Ok(contract) => Some(OpenApiCheck {
                contract: Arc::new(contract),
                warn_only,
                file: o.spec.get_ref().clone(),
                sha256,
            }),
            Err(broken) => {
                let message = format!("OpenAPI document: {}", broken.message);
                let problem = match broken.at {
                    Some(at) => Problem::at(&path, &text, at, message),
                    None => Problem::file(&path, message),
                };
                src.problems.push(problem);
                None
            }
        }
    }

    pub(super) fn need_base_url(&mut self, src: &mut Source, span: Range<usize>) {
        if self.base_url_missing && !self.overrides.offline {
            src.error_hint(
                span,
                "no base_url for this `path`",
                Some("set base_url in preflight.toml, PREFLIGHT_BASE_URL or --base-url".into()),
            );
        }
    }

    pub(super) fn base_url(
        &mut self,
        src: &mut Source,
        raw: Option<&Spanned<String>>,
    ) -> Option<url::Url> {
        let (text, span) = match (&self.overrides.base_url, raw) {
            (Some(url), _) => (url.clone(), None),
            (None, Some(raw)) => (raw.get_ref().clone(), Some(raw.span())),
            (None, None) => return None,
        };
        let problem = match url::Url::parse(&text) {
            // Paths are appended to the base URL's text: after a query or a fragment they
            // would never reach the server, and every step would probe the same page.
            Ok(url) if url.query().is_some() || url.fragment().is_some() => format!(
                "base_url `{}` must not have a query (`?`) or a fragment (`#`)",
                crate::redact::shown_url_text(&text)
            ),
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                return Some(url);
            }
            Ok(url) => format!(
                "base_url `{}` must be an http or https URL, not `{}:`",
                crate::redact::shown_url_text(&text),
                url.scheme()
            ),
            Err(e) => format!(
                "invalid base_url `{}`: {e}",
                crate::redact::shown_url_text(&text)
            ),
        };
        let hint = scheme_hint(&text);
        match span {
            Some(span) => src.error_hint(span, problem, hint),
            None => {
                let mut problem = Problem::file(Path::new(self.overrides.base_url_origin), problem);
                problem.hint = hint;
                src.problems.push(problem);
            }
        }
        None
    }

    pub(super) fn vars(
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
            if has_non_finite(value.get_ref()) {
                src.error(
                    value.span(),
                    "NaN and infinity are not JSON values: preflight can neither send nor compare them",
                );
            }
            out.insert(name.clone(), toml_to_json(value.get_ref()));
        }
        out
    }

    /// Reads every `--vars-file` (a TOML table of variables, later files winning) into
    /// `file_vars`; a file that cannot be read or holds a bad entry is a located problem.
    fn read_vars_files(&mut self, problems: &mut Vec<Problem>) {
        for path in self.overrides.vars_files.clone() {
            let Some(text) = crate::suite::read(&path, problems, false) else {
                continue;
            };
            let mut src = Source {
                path,
                text,
                problems,
                read_outside: false,
            };
            let parsed =
                crate::suite::parse::parse::<IndexMap<String, Spanned<toml::Value>>>(&mut src);
            if let Some(table) = parsed.raw {
                let vars = self.vars(&mut src, Some(&table));
                self.file_vars.extend(vars);
            }
        }
    }

    /// `[vars]` (suite or flow) with the `--vars-file` values over them: the files win over
    /// every `[vars]` table, and `--var` (looked up first at run time) wins over the files.
    pub(super) fn over_file_vars(&self, mut vars: Map<String, Value>) -> Map<String, Value> {
        vars.extend(self.file_vars.clone());
        vars
    }

    pub(super) fn headers(
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
            // Rendered in each flow's scope, where its [vars] may give a name another shape.
            self.suite_header_names.extend(
                template
                    .names()
                    .filter(|(n, _)| n.contains('.'))
                    .map(|(n, _)| (lower.clone(), n.to_string())),
            );
            out.push((lower, template));
        }
        out
    }
}

/// `127.0.0.1:8080` or `staging.example.com` parse as no URL (or as one with the scheme
/// `127.0.0.1`): the usual mistake is a missing `http://`.
fn scheme_hint(text: &str) -> Option<String> {
    if text.contains("://") || text.trim().is_empty() {
        return None;
    }
    let shown = crate::redact::shown_url_text(&format!("http://{text}"));
    Some(format!("add the scheme: `{shown}` (or https://)"))
}

/// A `[retry]` table over `base` (the suite default, for a step's own table).
pub(super) fn retry_policy(
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

pub(super) fn gate_policy(src: &mut Source, raw: &Spanned<RawGate>) -> GatePolicy {
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
    let defaults = RegressionPolicy::default();
    let max_relative_pct = match &g.max_latency_regression {
        None => defaults.max_relative_pct,
        Some(text) => match parse_percent(text.get_ref()) {
            Some(pct) => pct,
            None => {
                src.error(
                    text.span(),
                    "`max_latency_regression` is a whole percentage, e.g. \"50%\"",
                );
                defaults.max_relative_pct
            }
        },
    };
    let min_absolute = g
        .min_latency_regression
        .as_ref()
        .and_then(|d| src.duration(d))
        .unwrap_or(defaults.min_absolute);
    GatePolicy {
        max_noncritical_failures,
        max_p95_latency,
        fail_on_flaky: g.fail_on_flaky.unwrap_or(false),
        latency_regression: RegressionPolicy {
            max_relative_pct,
            min_absolute,
            fail: g.fail_on_latency_regression.unwrap_or(false),
        },
    }
}

/// `"50%"` -> 50.
fn parse_percent(text: &str) -> Option<u32> {
    text.trim().strip_suffix('%')?.trim().parse().ok()
}
