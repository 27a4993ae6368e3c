//! The suite on disk -> a validated [`Plan`]. Reads files, never the network.
//!
//! Loading is two-phase: serde reads each file into the raw structs of [`raw`], then
//! [`compile`] checks everything (durations, URLs, regexes, JSONPaths, template names, files)
//! and collects every problem of the whole suite, each located at file:line:col.

pub mod compile;
pub mod plan;
pub mod problem;
pub mod raw;
/// Templates live below both `suite` and `check`; re-exported for the engine's imports.
pub use crate::template;

pub use compile::{Overrides, parse_duration, parse_size};
pub use plan::{
    Body, Flow, GatePolicy, IntegrityEntry, Plan, RetryKinds, RetryPolicy, Settings, Step, Target,
    TlsSettings, VersionCheck, VersionSource, WaitPolicy,
};
pub use problem::Problem;

use compile::{Compiler, Source};
use problem::did_you_mean;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The suite settings file inside a suite directory.
pub const SUITE_FILE: &str = "preflight.toml";

/// Loads and validates the suite in `dir`. `env` reads environment variables (injected so
/// that tests need not touch the process environment).
pub fn load(
    dir: &Path,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Vec<Problem>> {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        return Err(vec![Problem::file(dir, "suite directory not found")]);
    }
    let files = discover(dir, &mut problems);
    let mut compiler = Compiler::new(dir, overrides, env);

    let suite_path = dir.join(SUITE_FILE);
    let suite_parsed;
    let setup = {
        let text = if suite_path.exists() {
            read(&suite_path, &mut problems)
        } else {
            Some(String::new())
        };
        let mut src = Source {
            path: suite_path,
            text: text.unwrap_or_default(),
            problems: &mut problems,
        };
        let raw = parse(&mut src);
        suite_parsed = raw.is_some();
        compiler.suite(&mut src, raw.unwrap_or_default())
    };

    let mut flows = Vec::new();
    for relative in files {
        let path = dir.join(&relative);
        let Some(text) = read(&path, &mut problems) else {
            continue;
        };
        let mut src = Source {
            path,
            text,
            problems: &mut problems,
        };
        // Without valid settings, names and base_url cannot be judged: only the shape is.
        if let Some(raw) = parse::<raw::RawFlow>(&mut src).filter(|_| suite_parsed) {
            let file = relative.to_string_lossy().replace('\\', "/");
            flows.push(compiler.flow(&mut src, &file, raw));
        }
    }
    let lock = if compiler.overrides.skip_lock {
        None
    } else {
        crate::integrity::read_lock(dir).unwrap_or_else(|found| {
            problems.extend(found);
            None
        })
    };
    // Files in the order they were read; within a file, top to bottom.
    let order: Vec<PathBuf> = problems.iter().fold(Vec::new(), |mut seen, p| {
        if !seen.contains(&p.file) {
            seen.push(p.file.clone());
        }
        seen
    });
    problems.sort_by_key(|p| (order.iter().position(|f| *f == p.file), p.line, p.col));
    if problems.is_empty() {
        Ok(Plan {
            lock,
            ..compiler.finish(setup, flows)
        })
    } else {
        Err(problems)
    }
}

/// Every `*.toml` below `dir` but the suite file, ordered by path. Hidden folders are skipped.
/// A folder reached again through a symlink is listed once, so that symlinks cannot make the
/// walk grow exponentially; a symlink back to a folder that contains it (a cycle) is a problem.
pub fn discover(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut walk = Walk {
        root: dir,
        files: Vec::new(),
        visited: HashSet::new(),
        open: Vec::new(),
        problems,
    };
    walk.folder(dir);
    let mut files = walk.files;
    // The order of `sort()` (component by component), with the components split once.
    files.sort_by_cached_key(|p| {
        p.components()
            .map(|c| c.as_os_str().to_os_string())
            .collect::<Vec<_>>()
    });
    files
}

struct Walk<'a> {
    root: &'a Path,
    files: Vec<PathBuf>,
    /// Canonical paths of the folders listed so far.
    visited: HashSet<PathBuf>,
    /// The folders being listed, outermost first: (canonical path, path as reached).
    open: Vec<(PathBuf, PathBuf)>,
    problems: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    fn folder(&mut self, here: &Path) {
        let listed = std::fs::canonicalize(here).and_then(|c| Ok((c, std::fs::read_dir(here)?)));
        let (canonical, entries) = match listed {
            Ok(listed) => listed,
            Err(e) => {
                let problem = Problem::file(here, format!("cannot list the suite: {e}"));
                return self.problems.push(problem);
            }
        };
        if let Some((_, outer)) = self.open.iter().find(|(c, _)| *c == canonical) {
            let message = format!(
                "symlink cycle: this folder leads back to `{}`",
                outer.display()
            );
            return self.problems.push(Problem::file(here, message));
        }
        if !self.visited.insert(canonical.clone()) {
            return;
        }
        self.open.push((canonical, here.to_path_buf()));
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(e) => {
                    let problem = Problem::file(here, format!("cannot list the suite: {e}"));
                    self.problems.push(problem);
                }
            }
        }
        // In name order, so that which of two symlinked names is listed is not up to chance.
        paths.sort();
        for path in paths {
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                self.folder(&path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let relative = path.strip_prefix(self.root).unwrap_or(&path).to_path_buf();
                if relative != Path::new(SUITE_FILE) {
                    self.files.push(relative);
                }
            }
        }
        self.open.pop();
    }
}

fn read(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match crate::fs::read::read_regular_text(path) {
        Ok(text) => Some(text),
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            None
        }
    }
}

/// Deserializes one file; a syntax or shape error is recorded at its location.
fn parse<T: serde::de::DeserializeOwned>(src: &mut Source) -> Option<T> {
    match toml::from_str::<T>(&src.text) {
        Ok(raw) => Some(raw),
        Err(e) => {
            let message = e.message().trim().to_string();
            let hint = unknown_field_hint(&message);
            let problem = match e.span() {
                Some(span) => Problem::at(&src.path, &src.text, span, message),
                None => Problem::file(&src.path, message),
            };
            src.problems.push(Problem { hint, ..problem });
            None
        }
    }
}

/// serde says "unknown field `steps`, expected one of `name`, `step`, ..."; suggest the closest.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(field, candidates.iter().copied())
        .or_else(|| Some(format!("valid keys here: {}", candidates.join(", "))))
}

#[cfg(test)]
mod tests;
