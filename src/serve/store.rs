//! The last `--keep` reports of `preflight serve`: in memory, and in `--state-dir` when given,
//! so that a restart does not lose them.

use crate::fs::write::write_atomic;
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

fn id_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

impl Store {
    /// Opens the store, reading back the reports a previous server left in `dir` (the newest
    /// `keep`); files that are not reports are left alone, with a warning.
    pub fn open(keep: usize, dir: Option<&Path>) -> std::io::Result<Store> {
        let mut runs = Vec::new();
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = id_of(&name) else { continue };
                let path = entry.path();
                match read_report(&path) {
                    Ok(report) => runs.push(StoredRun::of(id, &report)),
                    Err(why) => eprintln!(
                        "warning: {} is not a preflight report, left out: {why}",
                        path.display()
                    ),
                }
            }
        }
        runs.sort_by_key(|r| r.id);
        let skip = runs.len().saturating_sub(keep);
        let runs = runs.into_iter().skip(skip).map(Arc::new).collect();
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
            Some(dir) => write_atomic(&dir.join(file_name(run.id)), &run.json),
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

fn read_report(path: &Path) -> Result<Report, String> {
    let text = crate::fs::read::read_regular_text(path).map_err(|e| e.to_string())?;
    let report: Report = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if report.schema != 1 || report.tool != "preflight" {
        return Err(format!(
            "schema {} of tool `{}`",
            report.schema, report.tool
        ));
    }
    Ok(report)
}
