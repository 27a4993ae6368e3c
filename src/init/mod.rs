//! `preflight init [DIR]`: a minimal, commented suite to start from, which passes
//! `preflight check` as written. It never overwrites anything: one existing file and nothing
//! is written.

pub mod from_openapi;

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The files `init` writes, relative to the suite directory, with their content.
pub const FILES: &[(&str, &str)] = &[
    ("preflight.toml", SUITE),
    ("health.toml", HEALTH),
    ("checkout.toml", CHECKOUT),
];

const SUITE: &str = r#"# Suite settings: every key has a default. Every other *.toml file in this folder is a flow.
name = "staging gate"

# Where staging answers; overridden by PREFLIGHT_BASE_URL, then by --base-url.
base_url = "http://127.0.0.1:8080"

timeout = "10s"     # per request, body included
deadline = "5m"     # the whole run

# Sent with every request (a step may override them).
[headers]
x-smoke-test = "preflight"

# Template variables: `{{ currency }}` in any request string. --vars-file FILE and
# --var name=value override them.
[vars]
currency = "EUR"
"#;

const HEALTH: &str = r#"# A single-request probe: staging is up and answers.
name = "health"
tags = ["health"]

[[step]]
name = "health endpoint"
path = "/health"            # appended to base_url; method defaults to GET

[step.expect]
status = 200                # or a list [200, 204], or a class "2xx"
max_latency = "2s"
"#;

const CHECKOUT: &str = r#"# A flow: its steps run in order and share cookies and captured values.
name = "checkout"
tags = ["checkout"]
critical = true             # a failure fails the gate (false: it only warns)

[[step]]
name = "create cart"
method = "POST"
path = "/api/carts"
json = { currency = "{{ currency }}", items = [] }

[step.expect]
status = 201

[step.expect.json]
"$.id" = { exists = true }

[step.capture]
cart_id = "$.id"            # a JSONPath on the response body, for later steps

[[step]]
name = "read cart"
path = "/api/carts/{{ cart_id }}"

[step.expect.json]
"$.currency" = "{{ currency }}"

# Cleanups always run after the steps, pass or fail: remove the test data.
[[cleanup]]
name = "delete cart"
method = "DELETE"
path = "/api/carts/{{ cart_id }}"
"#;

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists: init never overwrites a file, nothing was written")]
    Exists(PathBuf),
    #[error("{path} exists and is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the starter suite into `dir` (created if needed) and returns the paths written.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let files: Vec<(PathBuf, String)> = FILES
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.to_string()))
        .collect();
    write_files(dir, &files)
}

/// Writes `files` (paths relative to `dir`, which is created if needed) and returns the paths
/// written. Every target is checked first, and each file is created with `create_new`, so a
/// file that appears meanwhile is not overwritten either.
pub fn write_files(dir: &Path, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, InitError> {
    if dir.exists() && !dir.is_dir() {
        return Err(InitError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let targets: Vec<(PathBuf, &str)> = files
        .iter()
        .map(|(name, text)| (dir.join(name), text.as_str()))
        .collect();
    // symlink_metadata: a dangling symlink is an existing file too.
    if let Some((path, _)) = targets
        .iter()
        .find(|(p, _)| std::fs::symlink_metadata(p).is_ok())
    {
        return Err(InitError::Exists(path.clone()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (path, text) in targets {
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            // A folder of the suite's own (`schemas/`), never one a symlink leads elsewhere.
            match std::fs::symlink_metadata(parent) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(InitError::NotAFolder {
                        path: parent.to_path_buf(),
                    });
                }
                Err(_) => std::fs::create_dir(parent).map_err(io(parent))?,
            }
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(InitError::Exists(path));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The path of `file` as seen from the folder `dir` (which need not exist yet), for a suite
/// key that names it: `../api/openapi.yaml`.
pub fn relative_to(dir: &Path, file: &Path) -> std::io::Result<PathBuf> {
    let file = std::fs::canonicalize(file)?;
    let dir = absolute_dir(dir)?;
    let from: Vec<Component> = dir.components().collect();
    let to: Vec<Component> = file.components().collect();
    let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in shared..from.len() {
        relative.push("..");
    }
    for part in &to[shared..] {
        relative.push(part);
    }
    Ok(relative)
}

/// `dir` made absolute with its symlinks resolved, as far as it exists.
fn absolute_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    let mut existing = dir.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(existing)?;
    for name in rest.into_iter().rev() {
        if name == ".." {
            resolved.pop();
        } else if name != "." {
            resolved.push(name);
        }
    }
    Ok(resolved)
}
