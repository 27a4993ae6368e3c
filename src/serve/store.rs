//! The last `--keep` reports of `preflight serve`: in memory, and in `--state-dir` when given,
//! so that a restart does not lose them.

use crate::report::{GateVerdict, Report, Trigger};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One finished run: its report as served, and what `GET /runs` lists of it.
#[derive(Debug)]
pub struct StoredRun {
    pub id: u64,
    pub verdict: GateVerdict,
    /// The JSON report, as written to disk and answered.
    pub json: String,
    pub listed: ListedRun,
}

/// A line of `GET /runs`.
#[derive(Debug, Clone, Serialize)]
pub struct ListedRun {
    pub id: String,
    pub trigger: Option<Trigger>,
    pub verdict: GateVerdict,
    pub started_at: String,
    pub duration_ms: u64,
    pub headline: String,
}

impl StoredRun {
    pub fn of(id: u64, report: &Report) -> StoredRun {
        StoredRun {
            id,
            verdict: report.verdict,
            json: report.to_json(),
            listed: ListedRun {
                id: id.to_string(),
                trigger: report.serve.as_ref().map(|s| s.trigger),
                verdict: report.verdict,
                started_at: report.started_at.clone(),
                duration_ms: report.duration_ms,
                headline: report.headline.clone(),
            },
        }
    }
}

pub struct Store {
    keep: usize,
    dir: Option<PathBuf>,
    /// Oldest first.
    runs: Mutex<VecDeque<Arc<StoredRun>>>,
}

const PREFIX: &str = "run-";
const SUFFIX: &str = ".json";

fn file_name(id: u64) -> String {
    format!("{PREFIX}{id:08}{SUFFIX}")
}

/// The id of a file this store wrote: `run-` and at least 8 digits, written as it writes
/// them (so that no two names stand for one run).
fn id_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let id: u64 = digits.parse().ok()?;
    (file_name(id) == name).then_some(id)
}

/// Ids stop well before they could wrap.
const MAX_ID: u64 = 1_000_000_000_000;

impl Store {
    /// Opens the store, reading back the reports a previous server left in `dir` (the newest
    /// `keep`). A file there that looks like one of its reports and is not (a symlink, another
    /// name for an id) is refused, and so is one of the newest `keep` that does not parse
    /// (older ones are not read): whatever put it there, the store will not serve it,
    /// overwrite it or delete it.
    pub fn open(keep: usize, dir: Option<&Path>) -> Result<Store, String> {
        let mut files = Vec::new();
        let mut runs = VecDeque::new();
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with(PREFIX) || !name.ends_with(SUFFIX) {
                    continue;
                }
                let path = entry.path();
                let refuse = |why: String| not_ours(&path, &why);
                let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
                if is_link {
                    return Err(refuse("a symlink".into()));
                }
                let id = id_of(&name)
                    .filter(|id| *id < MAX_ID)
                    .ok_or_else(|| refuse(format!("names are {PREFIX}<8 digits>{SUFFIX}")))?;
                files.push((id, path));
            }
        }
        // Only the newest `keep` are read: older files cost no start-up time.
        files.sort();
        let skip = files.len().saturating_sub(keep);
        for (id, path) in files.into_iter().skip(skip) {
            let report = read_report(&path).map_err(|why| not_ours(&path, &why))?;
            runs.push_back(Arc::new(StoredRun::of(id, &report)));
        }
        Ok(Store {
            keep,
            dir: dir.map(Path::to_path_buf),
            runs: Mutex::new(runs),
        })
    }

    /// The highest run id kept, so that numbering goes on after a restart.
    pub fn last_id(&self) -> u64 {
        self.lock().back().map_or(0, |r| r.id)
    }

    /// Keeps a finished run, forgetting (and deleting) the oldest beyond `keep`. A report
    /// that cannot be written to disk is still served from memory; the error is returned to
    /// be told.
    pub fn keep(&self, run: Arc<StoredRun>) -> std::io::Result<()> {
        let written = match &self.dir {
            Some(dir) => write_new(dir, run.id, &run.json),
            None => Ok(()),
        };
        let mut runs = self.lock();
        runs.push_back(run);
        while runs.len() > self.keep {
            let Some(old) = runs.pop_front() else { break };
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_file(dir.join(file_name(old.id)));
            }
        }
        written
    }

    pub fn latest(&self) -> Option<Arc<StoredRun>> {
        self.lock().back().cloned()
    }

    pub fn get(&self, id: u64) -> Option<Arc<StoredRun>> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }

    /// Newest first.
    pub fn list(&self) -> Vec<ListedRun> {
        self.lock().iter().rev().map(|r| r.listed.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<StoredRun>>> {
        // A panic while holding the lock leaves the list itself intact.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes the report of `id` into `dir`: a temporary file, then a rename, which replaces
/// whatever has the name (a symlink too) and never writes through it.
fn write_new(dir: &Path, id: u64, json: &str) -> std::io::Result<()> {
    let target = dir.join(file_name(id));
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(id), std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn not_ours(path: &Path, why: &str) -> String {
    format!(
        "{} is not a report preflight serve wrote ({why}); move it away",
        path.display()
    )
}

fn read_report(path: &Path) -> Result<Report, String> {
    Report::read(path).map_err(|e| e.to_string())
}
