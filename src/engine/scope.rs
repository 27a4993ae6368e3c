//! Name resolution at run time, first match wins: captures of the flow, `[[setup]]`
//! captures, `--var`, flow `[vars]`, suite `[vars]`, then built-ins.

use crate::redact::Secret;
use crate::suite::Plan;
use crate::template::Scope;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The captures `step` uses that neither the flow nor `[[setup]]` made, and the message
/// `capture `a`, `b` never happened` (empty when none is missing): a cleanup or teardown that
/// needs one cannot run.
pub fn missing_captures<'s>(
    step: &'s crate::suite::Step,
    scope: &FlowScope<'_>,
) -> (Vec<&'s str>, String) {
    let missing: Vec<&str> = step
        .uses_captures
        .iter()
        .map(String::as_str)
        .filter(|c| !scope.captures.contains_key(*c) && !scope.setup.contains_key(*c))
        .collect();
    let names: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
    (
        missing,
        format!("capture {} never happened", names.join(", ")),
    )
}

pub struct FlowScope<'a> {
    pub plan: &'a Plan,
    pub flow_vars: &'a Map<String, Value>,
    pub setup: &'a HashMap<String, Value>,
    pub captures: HashMap<String, Value>,
    pub run_id: &'a str,
}

impl Scope for FlowScope<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.captures.get(name).or_else(|| self.setup.get(name)) {
            return Some(v.clone());
        }
        if let Some(var) = name
            .strip_prefix("env.")
            .or_else(|| name.strip_prefix("secret."))
        {
            let value = self.plan.env.get(var).map(String::as_str);
            let secret = self.plan.secrets.get(var).map(Secret::expose);
            return value.or(secret).map(|v| Value::String(v.to_string()));
        }
        let settings = &self.plan.settings;
        let mut path = name.split('.');
        let head = path.next()?;
        let var = [&settings.cli_vars, self.flow_vars, &settings.vars]
            .into_iter()
            .find_map(|vars| vars.get(head));
        if let Some(var) = var {
            // `{{ user.name }}` reads into a table variable.
            return path.try_fold(var, |v, key| v.get(key)).cloned();
        }
        match name {
            "run_id" => Some(Value::String(self.run_id.to_string())),
            "uuid" => Some(Value::String(uuid::Uuid::new_v4().to_string())),
            "now" => Some(Value::String(
                humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            )),
            "unix_ms" => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                Some(Value::from(ms))
            }
            _ => None,
        }
    }

    fn is_text_sourced(&self, name: &str) -> bool {
        if self.captures.contains_key(name) || self.setup.contains_key(name) {
            return false;
        }
        name.starts_with("env.")
            || name.starts_with("secret.")
            || self
                .plan
                .settings
                .cli_vars
                .contains_key(name.split('.').next().unwrap_or(name))
    }

    /// `secret.` names and secret captures; over-masking a same-named var is the safe side.
    fn is_sensitive(&self, name: &str) -> bool {
        name.starts_with("secret.")
            || self
                .plan
                .secret_captures
                .contains(name.split('.').next().unwrap_or(name))
    }
}
