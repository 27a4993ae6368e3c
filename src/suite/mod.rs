//! The suite on disk -> a validated [`Plan`]. Reads files, never the network.
//!
//! Loading is two-phase: serde reads each file into the raw structs of [`raw`], then
//! [`compile`] checks everything (durations, URLs, regexes, JSONPaths, template names, files)
//! and collects every problem of the whole suite, each located at file:line:col.

pub mod compile;
pub mod parse;
pub mod plain_toml;
pub mod plan;
pub mod raw;
/// Templates live below both `suite` and `check`; re-exported for the engine's imports.
pub use crate::template;

/// Located problems live below `suite` and `integrity` (the lock is read by both).
pub use crate::problem::{self, Problem};
pub use compile::{Overrides, parse_duration, parse_size};
pub use plan::{
    Body, Flow, FlowBody, FlowSteps, GatePolicy, IntegrityEntry, OpenApiCheck, Plan, PollPolicy,
    RegressionPolicy, RetryKinds, RetryPolicy, Settings, Step, Target, TlsSettings, VersionCheck,
    VersionSource, WaitPolicy,
};

use compile::{Compiler, Lost, Source, SuiteParts};
use parse::{Parsed, parse};
use sha2::Digest as _;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

/// The suite settings file inside a suite directory.
pub const SUITE_FILE: &str = "preflight.toml";

/// Loads and validates the suite in `dir`. `env` reads environment variables (injected so
/// that tests need not touch the process environment).
///
/// Every file is compiled whatever the others hold: a problem in one (even a syntax error in
/// preflight.toml) hides none in another.
pub fn load(
    dir: &Path,
    overrides: Overrides,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Plan, Vec<Problem>> {
    load_rehearsed(dir, overrides, env, None).map(|(plan, _)| plan)
}

/// Rehearses one compiled flow against a plan: the problems of its requests (see
/// `engine::rehearse`).
pub type Rehearse<'r> = dyn Fn(&Plan, &Flow, &FlowSteps) -> Vec<Problem> + 'r;

/// [`load`], and each flow to be stored ([`FlowBody::Stored`]) rehearsed with `rehearse` while
/// its steps are still compiled (so that rehearsing the plan need not compile it again): the
/// plan, with the problems those rehearsals found, in flow order.
pub fn load_rehearsed(
    dir: &Path,
    overrides: Overrides,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    rehearse: Option<&Rehearse>,
) -> Result<(Plan, Vec<Problem>), Vec<Problem>> {
    if !dir.is_dir() {
        return Err(vec![Problem::file(dir, "suite directory not found")]);
    }
    let mut problems = Vec::new();
    let listing = match &overrides.flow_file {
        // A folder of the suite: its flows only.
        Some(folder) if dir.join(folder).is_dir() => {
            let mut listing = list(dir, &mut problems);
            listing.files.retain(|file| file.starts_with(folder));
            listing
        }
        // A file the user named is read with every check (it may be anything).
        Some(file) => Listing {
            files: vec![file.clone()],
            not_regular: HashSet::from([file.clone()]),
        },
        None => list(dir, &mut problems),
    };
    let files = &listing.files;
    let keep_compiled = overrides.keep_compiled.unwrap_or(KEEP_COMPILED);
    let mut compiler = Compiler::new(dir, overrides, env);
    let (suite, suite_text) = suite_file(&mut compiler, &mut problems);
    // The lock is read before the flow files, so that the digest of the suite's files (which
    // begins with it) names the lock the run checks; it is parsed after them, so that its
    // problems come after theirs.
    let lock_text = (!compiler.overrides.skip_lock).then(|| crate::integrity::read_lock_text(dir));
    // One flow per file unless a file has rows: grown by doubling, the vector of a large
    // suite held up to twice the room it needed for the whole run (massif: 7 MB at 20,000).
    let mut flows = Vec::with_capacity(files.len());
    let mut rehearsed = Vec::new();
    // What a flow to be stored is rehearsed against (it reads no variable of its own).
    let mut draft = None;
    let mut loaded_files = match &lock_text {
        Some(Ok(lock)) if compiler.overrides.digest_files => {
            Some(crate::shard::LoadedFiles::start(
                suite_text.as_deref().map(str::as_bytes),
                lock.as_deref().map(str::as_bytes),
            ))
        }
        _ => None,
    };
    read_and_parse_each(dir, &listing, |file| {
        // The file's own problems first, as if it had been read here.
        problems.extend(file.problems);
        let Some(text) = file.text else {
            return;
        };
        let mut src = Source {
            path: file.path,
            text,
            problems: &mut problems,
            read_outside: false,
        };
        let lost = Lost::of(&file.parsed);
        let name = exact_name(&file.relative).unwrap_or_else(|why| {
            src.problems.push(
                Problem::file(
                    &src.path,
                    format!("this file cannot be named exactly: {why}"),
                )
                .with_hint("rename it"),
            );
            file.relative.to_string_lossy().replace('\\', "/")
        });
        if let Some(raw) = file.parsed.raw {
            let mut compiled = compiler.flow(&mut src, &name, raw, lost);
            if flows.len() >= keep_compiled
                && src.text.len() <= STORED_TEXT_MAX
                && !src.read_outside
                && let [flow] = compiled.as_mut_slice()
                && let Some(steps) = storable(flow)
            {
                if let Some(rehearse) = rehearse {
                    let draft = draft.get_or_insert_with(|| compiler.draft_plan(&suite.settings));
                    rehearsed.extend(rehearse(draft, flow, steps));
                }
                flow.body = FlowBody::Stored {
                    sha256: sha2::Sha256::digest(&src.text).into(),
                    rehearsed: rehearse.is_some(),
                };
            }
            if let (Some(loaded), Some(flow)) = (&mut loaded_files, compiled.first()) {
                loaded.add(&flow.file, src.text.as_bytes());
            }
            flows.extend(compiled);
        }
    });
    let lock = match lock_text {
        None | Some(Ok(None)) => None,
        Some(Err(problem)) => {
            problems.push(problem);
            None
        }
        Some(Ok(Some(text))) => crate::integrity::parse_lock(dir, &text)
            .map_err(|found| problems.extend(found))
            .ok(),
    };
    // Files in the order they were read; within a file, top to bottom.
    let mut order: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for p in &problems {
        let next = order.len();
        order.entry(p.file.clone()).or_insert(next);
    }
    problems.sort_by_key(|p| (order[&p.file], p.line, p.col));
    if problems.is_empty() {
        let stored = flows
            .iter()
            .any(|f| matches!(f.body, FlowBody::Stored { .. }));
        let replay = stored.then(|| compiler.replay());
        let plan = Plan {
            lock,
            loaded_files,
            ..compiler.finish(suite, flows, replay)
        };
        Ok((plan, rehearsed))
    } else {
        Err(problems)
    }
}

/// How many flows a plan keeps compiled; the others keep the SHA-256 of their file, which is
/// read and compiled again when they are needed (see [`storable`]). A compiled one-step flow
/// takes about 1.1 KB; this keeps a large suite's compiled flows near 18 MB, and costs a second
/// read and compile (about 10 microseconds) only to flows past it.
pub const KEEP_COMPILED: usize = 16_384;

/// The largest flow file whose flow is stored. Compiling it again happens inside the run,
/// where nothing interrupts it (neither the deadline nor a signal): a 5 MB flow of 40,000 steps
/// took seconds. A file this size compiles in well under a millisecond.
const STORED_TEXT_MAX: usize = 8 * 1024;

/// The steps of `flow` when it may be stored (kept by the hash of the text it was just
/// compiled from): compiling that text again gives the same steps and the same digest. It is
/// one flow of its file (no `each` rows) that read nothing else (the caller checked
/// `Source::read_outside`) and whose steps need nothing but the text for the suite's digest.
fn storable(flow: &Flow) -> Option<&FlowSteps> {
    match &flow.body {
        FlowBody::Compiled(steps)
            if flow.row_of.is_none() && !steps.all().any(Step::digests_more_than_its_text) =>
        {
            Some(steps)
        }
        _ => None,
    }
}

/// A flow file's path as its flows, reports and digests name it: relative to the suite,
/// `/`-separated. A name that would not be exactly this file is refused: reports could not
/// tell it from another, and a stored flow or a digest reads the file again by that name.
fn exact_name(relative: &Path) -> Result<String, &'static str> {
    let text = relative.to_str().ok_or("its path is not UTF-8 text")?;
    if cfg!(windows) {
        Ok(text.replace('\\', "/"))
    } else if text.contains('\\') {
        Err("its path has a `\\` in a name, which reports would read as a folder separator")
    } else {
        Ok(text.to_string())
    }
}

/// A flow file read and parsed, not compiled yet.
struct ParsedFile {
    /// Relative to the suite directory.
    relative: PathBuf,
    path: PathBuf,
    /// `None` when the file could not be read.
    text: Option<String>,
    parsed: Parsed<raw::RawFlow>,
    /// The problems found reading and parsing it, in the order found.
    problems: Vec<Problem>,
}

fn read_and_parse(dir: &Path, relative: &Path, listing: &Listing) -> ParsedFile {
    let path = dir.join(relative);
    let mut problems = Vec::new();
    let listed_regular = !listing.not_regular.contains(relative);
    let Some(text) = read(&path, &mut problems, listed_regular) else {
        return ParsedFile {
            relative: relative.to_path_buf(),
            path,
            text: None,
            parsed: Parsed::unreadable(),
            problems,
        };
    };
    let mut src = Source {
        path,
        text,
        problems: &mut problems,
        read_outside: false,
    };
    let parsed = parse::<raw::RawFlow>(&mut src);
    let Source { path, text, .. } = src;
    ParsedFile {
        relative: relative.to_path_buf(),
        path,
        text: Some(text),
        parsed,
        problems,
    }
}

/// Fewer flow files than this per thread are read on the calling thread: starting a thread
/// costs more than parsing them.
const FILES_PER_THREAD: usize = 16;
/// At most this many parsing threads, whatever the number of cores.
const MAX_THREADS: usize = 8;
/// Files are handed from a parsing thread to the compiler this many at a time: one hand-off
/// per file woke the compiler for each (hundreds of futex calls for 500 files).
const BLOCK: usize = 32;
/// How many blocks each thread may have ready ahead of the compiler: bounds what a large suite
/// holds in memory at once.
const READ_AHEAD: usize = 4;

/// Calls `each` with every file of `files`, read and parsed, in their order. Reading and TOML
/// parsing are most of a large suite's load time and each file is parsed on its own, so they
/// run on up to one thread per core while `each` (the compiler, which takes the files in
/// order) runs on this one.
fn read_and_parse_each(dir: &Path, listing: &Listing, mut each: impl FnMut(ParsedFile)) {
    let files = &listing.files;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(MAX_THREADS).min(files.len() / FILES_PER_THREAD);
    if threads < 2 {
        files
            .iter()
            .for_each(|f| each(read_and_parse(dir, f, listing)));
        return;
    }
    let read_block = |block: &[PathBuf]| -> Vec<ParsedFile> {
        block
            .iter()
            .map(|f| read_and_parse(dir, f, listing))
            .collect()
    };
    std::thread::scope(|scope| {
        // Thread t parses blocks t, t + threads, t + 2 x threads...: each channel is in order.
        let channels: Vec<Option<Receiver<Vec<ParsedFile>>>> = (0..threads)
            .map(|t| {
                let (sender, receiver) = std::sync::mpsc::sync_channel(READ_AHEAD);
                let parse_share = move || {
                    for block in files.chunks(BLOCK).skip(t).step_by(threads) {
                        if sender.send(read_block(block)).is_err() {
                            return;
                        }
                    }
                };
                let thread = std::thread::Builder::new().name("preflight-load".into());
                thread
                    .spawn_scoped(scope, parse_share)
                    .ok()
                    .map(|_| receiver)
            })
            .collect();
        for (i, block) in files.chunks(BLOCK).enumerate() {
            let parsed = match &channels[i % threads] {
                Some(receiver) => match receiver.recv() {
                    Ok(parsed) => parsed,
                    // Its thread panicked: the scope re-raises that panic once the other
                    // threads see their channel closed and stop.
                    Err(_) => return,
                },
                // That thread could not be started: its share is parsed here.
                None => read_block(block),
            };
            parsed.into_iter().for_each(&mut each);
        }
    });
}

/// What a command's SUITE argument names: a suite directory, or one flow file of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The suite directory.
    pub dir: PathBuf,
    /// The flow file, or the folder of flows, relative to `dir`, when one was named.
    pub flow_file: Option<PathBuf>,
}

/// Finds the suite of `path`: a directory with a preflight.toml (or with none above it) is
/// the suite itself; a flow file, or a folder of flows without a preflight.toml of its own,
/// belongs to the nearest folder above it holding one (up to the filesystem root), whose
/// settings it runs with: run apart from them, its flows would lose the suite's integrity
/// pins, contract and gate. A file with no such folder above it is a problem: a flow alone
/// has no base_url, headers or gate to run with.
pub fn locate(path: &Path) -> Result<Located, Problem> {
    let whole = || {
        Ok(Located {
            dir: path.to_path_buf(),
            flow_file: None,
        })
    };
    if !path.exists() || path.join(SUITE_FILE).is_file() {
        // A missing path is reported by `load`, as any missing suite is.
        return whole();
    }
    if path.is_dir() {
        return match suite_above(path) {
            Some(located) => Ok(located),
            None => whole(),
        };
    }
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if !is_toml {
        return Err(Problem::file(
            path,
            "not a suite directory or a flow file (*.toml)",
        ));
    }
    suite_above(path).ok_or_else(|| {
        Problem::file(
            path,
            format!(
                "no {SUITE_FILE} in this file's folder or any folder above it: a flow file runs with the settings of its suite"
            ),
        )
    })
}

/// The suite `path` (a flow file or a folder) is part of: the nearest folder above it that
/// holds a preflight.toml.
fn suite_above(path: &Path) -> Option<Located> {
    let absolute = std::path::absolute(path).ok()?;
    let dir = absolute
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(SUITE_FILE).is_file())?;
    let relative = absolute
        .strip_prefix(dir)
        .unwrap_or(&absolute)
        .to_path_buf();
    // Shown as the user would write it: relative to the working directory when below it.
    let cwd = std::env::current_dir().unwrap_or_default();
    let dir = match dir.strip_prefix(&cwd) {
        Ok(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Ok(p) => p.to_path_buf(),
        Err(_) => dir.to_path_buf(),
    };
    Some(Located {
        dir,
        // preflight.toml itself names the whole suite.
        flow_file: (relative != Path::new(SUITE_FILE)).then_some(relative),
    })
}

/// Compiles preflight.toml. Without one every key has its default; an unreadable or broken
/// one is compiled as far as it can be read.
/// Also its text, `None` when there is no such file.
fn suite_file(
    compiler: &mut Compiler,
    problems: &mut Vec<Problem>,
) -> (SuiteParts, Option<String>) {
    let path = compiler.dir.join(SUITE_FILE);
    // A dangling symlink is not "no file": it is read, and fails.
    let absent =
        std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let text = if absent {
        Some(String::new())
    } else {
        read(&path, problems, false)
    };
    let readable = text.is_some();
    let mut src = Source {
        path,
        text: text.unwrap_or_default(),
        problems,
        read_outside: false,
    };
    let parsed = if readable {
        parse::<raw::RawSuite>(&mut src)
    } else {
        Parsed::unreadable()
    };
    let lost = Lost::of(&parsed);
    let suite = compiler.suite(&mut src, parsed.raw.unwrap_or_default(), lost);
    (suite, (!absent).then_some(src.text))
}

/// Every `*.toml` below `dir` but the suite file, ordered by path. Hidden folders are skipped.
/// A folder reached again through a symlink is listed once, so that symlinks cannot make the
/// walk grow exponentially; a symlink back to a folder that contains it (a cycle) is a problem.
pub fn discover(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    list(dir, problems).files
}

/// The flow files of a suite, and those of them its listing did not report as regular files
/// (symlinks, FIFOs, devices, sockets, unknown): only a file listed as regular is opened before
/// its type is checked (`fs::read::read_listed_text`); the others are checked first, so that
/// a device is never opened.
struct Listing {
    files: Vec<PathBuf>,
    not_regular: HashSet<PathBuf>,
}

/// [`discover`], with what the listing said of each file's type.
fn list(dir: &Path, problems: &mut Vec<Problem>) -> Listing {
    let mut walk = Walk {
        root: dir,
        files: Vec::new(),
        not_regular: HashSet::new(),
        visited: HashSet::new(),
        open: Vec::new(),
        problems,
    };
    walk.folder(dir);
    let not_regular = walk.not_regular;
    let mut files = walk.files;
    // The order of `sort()` (component by component), with the components split once.
    files.sort_by_cached_key(|p| {
        p.components()
            .map(|c| c.as_os_str().to_os_string())
            .collect::<Vec<_>>()
    });
    Listing { files, not_regular }
}

struct Walk<'a> {
    root: &'a Path,
    files: Vec<PathBuf>,
    /// The files whose entry in the listing was not a regular file.
    not_regular: HashSet<PathBuf>,
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
        let mut listed = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => listed.push(entry),
                Err(e) => {
                    let problem = Problem::file(here, format!("cannot list the suite: {e}"));
                    self.problems.push(problem);
                }
            }
        }
        // In name order, so that which of two symlinked names is listed is not up to chance.
        // (All share this folder: their names order them as their paths would.)
        listed.sort_by_cached_key(|entry| entry.file_name());
        for entry in listed {
            let path = entry.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            // The entry's type comes with the listing on most file systems; only a symlink
            // needs a `stat` to know whether it leads to a folder.
            let kind = entry.file_type().ok();
            let is_dir = match kind {
                Some(kind) if !kind.is_symlink() => kind.is_dir(),
                _ => path.is_dir(),
            };
            if is_dir {
                self.folder(&path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
            {
                let relative = path.strip_prefix(self.root).unwrap_or(&path).to_path_buf();
                if relative != Path::new(SUITE_FILE) {
                    if !kind.is_some_and(|kind| kind.is_file()) {
                        self.not_regular.insert(relative.clone());
                    }
                    self.files.push(relative);
                }
            }
        }
        self.open.pop();
    }
}

/// `listed_regular`: the listing of the suite's folders reported it as a regular file (see
/// `fs::read::read_listed_text`).
fn read(path: &Path, problems: &mut Vec<Problem>, listed_regular: bool) -> Option<String> {
    use crate::fs::read::{InvalidUtf8, ReadError, read_listed_text, read_regular_text};
    let text = if listed_regular {
        read_listed_text(path)
    } else {
        read_regular_text(path)
    };
    match text {
        Ok(text) => Some(text),
        Err(ReadError::Io(e)) if e.get_ref().is_some_and(|inner| inner.is::<InvalidUtf8>()) => {
            // Point at the first byte that is not UTF-8, in the line it spoils.
            let at = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<InvalidUtf8>())
                .map_or(0, |invalid| invalid.at);
            let bytes = crate::fs::read::read_regular(path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let shown_at = String::from_utf8_lossy(&bytes[..at.min(bytes.len())]).len();
            let problem = Problem::at(path, &text, shown_at..shown_at + 1, "not UTF-8 text");
            problems.push(problem);
            None
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            None
        }
    }
}

#[cfg(test)]
mod tests;
