//! Writing files so that a reader never sees half of one, and without replacing what a path
//! names when it is not a regular file.
//!
//! A destination is [`Prepared`] (resolved and opened) before anything is written to it, so a
//! caller can learn that a file cannot be written before it decides what to write. Only
//! regular files (or paths that do not exist yet) are written by a temporary file and a
//! rename; a symlink writes its target; a device, a FIFO, a `/dev/stdout`-like path and `-`
//! (standard output) are written through, never replaced.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Symlinks followed at most (Linux's own limit is 40).
const MAX_LINKS: usize = 40;
/// How long opening a FIFO (or a pipe) waits for a reader before it is an error: a report
/// nobody reads must not hang the gate forever.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// The files this process made through [`Prepared`]: each temporary file, and each target one
/// was renamed over. A signal's exit removes them all ([`abandon`]) and closes the list: from
/// then on no temporary file is made and none is renamed, so that no report can be put in
/// place after the sweep (attack finding: the main thread went on renaming reports that said
/// PASS while the signal's exit waited for standard error).
struct Made {
    abandoned: bool,
    /// Each path with the identity (device, inode) of the file made there: a file another
    /// process put at that path since is not ours to remove.
    paths: Vec<(PathBuf, (u64, u64))>,
}

static MADE: std::sync::Mutex<Made> = std::sync::Mutex::new(Made {
    abandoned: false,
    paths: Vec::new(),
});

fn made() -> std::sync::MutexGuard<'static, Made> {
    MADE.lock().unwrap_or_else(|e| e.into_inner())
}

fn abandoned() -> io::Error {
    io::Error::other("the run was interrupted: no report is kept")
}

/// Fails once [`abandon`] ran: nothing more is written through either (standard output, a
/// FIFO, a device), so that no report goes out after a signal's sweep.
fn refuse_if_abandoned() -> io::Result<()> {
    if made().abandoned {
        return Err(abandoned());
    }
    Ok(())
}

fn identity(file: &File) -> io::Result<(u64, u64)> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Removes every temporary file made and every report renamed into place so far, and refuses
/// to make or rename any after; then ends appending with `note` ([`seal_appends`]). For an
/// exit at once (a signal while reports are written): none of them may stand beside its exit
/// code, and an append already made (the step summary) cannot be removed, only followed.
pub fn abandon(note: &str) {
    {
        let mut made = made();
        made.abandoned = true;
        for (path, ours) in &made.paths {
            let there = std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()));
            if there.is_ok_and(|there| there == *ours) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    seal_appends(note);
}

/// Writes a file atomically: a temporary file beside it, then a rename, so that a reader never
/// sees half of it. A symlink writes its target; a device or FIFO is written through.
pub fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let mut prepared = Prepared::file(path)?;
    prepared.stage(|out| out.write_all(content.as_bytes()))?;
    prepared.commit()
}

/// How long a reader may take nothing before a write through to it fails: a pipe or FIFO
/// whose reader stopped reading must not hang the gate (its verdict then fails instead).
const STALL: Duration = Duration::from_secs(10);

/// Set once a thread of [`write_watched`] is left blocked: when its output is standard output,
/// it holds standard output's lock for good.
static WRITER_STUCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a write through to standard output, a FIFO or a device was given up with its thread
/// still blocked in it: whatever is still to be written there never will be, and locking
/// standard output would wait forever.
pub fn writer_stuck() -> bool {
    WRITER_STUCK.load(Ordering::SeqCst)
}

/// Writes `bytes` to `out` on a thread of its own, and fails when no chunk has been taken for
/// [`STALL`]. The thread is left blocked then; the process ends soon after anyway.
fn write_watched(mut out: impl Write + Send + 'static, bytes: Vec<u8>) -> io::Result<()> {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let taken = std::sync::Arc::new(AtomicUsize::new(0));
    let progress = taken.clone();
    let (done, finished) = channel();
    std::thread::spawn(move || {
        // Signals are the main thread's to take (see `cli::block_stopping_signals`).
        crate::cli::block_stopping_signals();
        let written = bytes.chunks(64 * 1024).try_for_each(|chunk| {
            refuse_if_abandoned()?;
            out.write_all(chunk)?;
            progress.fetch_add(chunk.len(), Ordering::SeqCst);
            Ok(())
        });
        let _ = done.send(written.and_then(|()| out.flush()));
    });
    let (mut seen, mut since) = (0, std::time::Instant::now());
    loop {
        match finished.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the writing thread ended without a word"));
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = taken.load(Ordering::SeqCst);
                if now != seen {
                    (seen, since) = (now, std::time::Instant::now());
                } else if since.elapsed() >= STALL {
                    WRITER_STUCK.store(true, Ordering::SeqCst);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the reader took nothing for {}s", STALL.as_secs()),
                    ));
                }
            }
        }
    }
}

/// A destination resolved and opened, not yet written.
#[derive(Debug)]
pub struct Prepared {
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    /// `-`.
    Stdout,
    /// A device, a FIFO or a `/dev/stdout`-like path, opened for appending: written through.
    Through(File),
    /// Appended to, created if missing (the GitHub step summary).
    Append(File),
    /// A regular file, or a path that does not exist yet: a temporary file beside the target,
    /// renamed over it by [`Prepared::commit`]; removed if never committed.
    Atomic {
        target: PathBuf,
        tmp: PathBuf,
        file: File,
        /// What the report gets when it is renamed into place; until then only its owner
        /// can read it (it may hold a secret learned later in the run, not yet masked).
        permissions: std::fs::Permissions,
        committed: bool,
    },
}

/// What a path turned out to be.
enum Kind {
    Regular(PathBuf),
    Special(PathBuf),
}

impl Prepared {
    /// A report destination: `-` is standard output, anything else as [`Prepared::file`].
    pub fn report(path: &Path) -> io::Result<Prepared> {
        if path == Path::new("-") {
            return Ok(Prepared { sink: Sink::Stdout });
        }
        Prepared::file(path)
    }

    /// A report destination that can be written while the run goes on: a regular file or a
    /// new path gets its temporary file now (`None` for anything written through, which is
    /// only opened when the report is final).
    pub fn early(path: &Path) -> io::Result<Option<Prepared>> {
        if path == Path::new("-") {
            return Ok(None);
        }
        match resolve(path)? {
            Kind::Regular(target) => Ok(Some(Prepared {
                sink: atomic(target)?,
            })),
            Kind::Special(_) => Ok(None),
        }
    }

    /// The temporary file, while it is one: to write into it while the run goes on.
    pub fn staged_file(&self) -> Option<&File> {
        match &self.sink {
            Sink::Atomic { file, .. } => Some(file),
            _ => None,
        }
    }

    /// A file destination: a regular file or a new path (through its symlinks) gets a
    /// temporary file beside it; anything else is opened to be written through.
    pub fn file(path: &Path) -> io::Result<Prepared> {
        let sink = match resolve(path)? {
            Kind::Regular(target) => atomic(target)?,
            Kind::Special(path) => Sink::Through(open_waiting(path)?),
        };
        Ok(Prepared { sink })
    }

    /// A file that content is appended to, created if missing; a FIFO or device is written
    /// through, waiting for a reader as long as [`Prepared::file`] does.
    pub fn append(path: &Path) -> io::Result<Prepared> {
        let sink = match resolve(path)? {
            Kind::Regular(target) => {
                Sink::Append(OpenOptions::new().append(true).create(true).open(target)?)
            }
            Kind::Special(path) => Sink::Through(open_waiting(path)?),
        };
        Ok(Prepared { sink })
    }

    /// The order in which outputs that cannot be taken back are written: the ones most likely
    /// to fail (a FIFO or device whose reader may go away) first, the step summary next,
    /// standard output last, so that a failure still changes the verdict the others show.
    pub fn write_through_rank(&self) -> u8 {
        match self.sink {
            Sink::Through(_) => 0,
            Sink::Append(_) => 1,
            Sink::Stdout => 2,
            Sink::Atomic { .. } => 3,
        }
    }

    /// Whether what [`Prepared::stage`] writes can still be replaced (by staging again) or
    /// dropped: true until the rename, for a temporary file only.
    pub fn is_reversible(&self) -> bool {
        matches!(self.sink, Sink::Atomic { .. })
    }

    /// Writes the content: into the temporary file (replacing what an earlier call wrote), or
    /// straight through to standard output, the device, FIFO or appended file.
    pub fn stage(&mut self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout => {
                let mut bytes = Vec::new();
                fill(&mut bytes)?;
                write_watched(io::stdout(), bytes)
            }
            Sink::Through(file) => {
                let mut bytes = Vec::new();
                fill(&mut bytes)?;
                write_watched(file.try_clone()?, bytes)
            }
            Sink::Append(file) => {
                let mut bytes = Vec::new();
                fill(&mut bytes)?;
                let mut appends = APPENDS.lock().unwrap_or_else(|e| e.into_inner());
                if appends.sealed {
                    return Err(io::Error::other("the run was interrupted"));
                }
                let before = file.metadata()?.len();
                append_or_take_back(file, &bytes)?;
                appends.made.push(Appended {
                    file: file.try_clone()?,
                    before,
                    written: bytes.len(),
                });
                Ok(())
            }
            Sink::Atomic { file, .. } => {
                file.set_len(0)?;
                file.rewind()?;
                let mut out = io::BufWriter::with_capacity(64 * 1024, &*file);
                fill(&mut out)?;
                out.flush()
            }
        }
    }

    /// Keeps the first `offset` bytes of the temporary file (written into it while the run
    /// went on) and writes the rest anew. Only for a temporary file.
    pub fn stage_after(
        &mut self,
        offset: u64,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let Sink::Atomic { file, .. } = &mut self.sink else {
            return Err(io::Error::other("not a temporary file"));
        };
        file.set_len(offset)?;
        file.seek(io::SeekFrom::Start(offset))?;
        let mut out = io::BufWriter::with_capacity(64 * 1024, &*file);
        fill(&mut out)?;
        out.flush()
    }

    /// Makes the staged content final: the temporary file is synced and renamed over its
    /// target. Nothing to do for the others: they were written through.
    pub fn commit(mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Atomic {
                target,
                tmp,
                file,
                permissions,
                committed,
            } => {
                // The file renamed must be the one written: the temporary file lies in the
                // report's folder for the whole run, where another process could swap it.
                let (ours, there) = (file.metadata()?, std::fs::symlink_metadata(&*tmp)?);
                if (ours.dev(), ours.ino()) != (there.dev(), there.ino()) {
                    return Err(io::Error::other(format!(
                        "its temporary file {} was replaced by another process",
                        tmp.display()
                    )));
                }
                file.set_permissions(permissions.clone())?;
                file.sync_all()?;
                // Listed before the rename, under the lock `abandon` takes: a signal's sweep
                // either finds the report in place or comes first and refuses the rename
                // (should the rename fail, what was at the path before is a stale report).
                let mut made = made();
                if made.abandoned {
                    return Err(abandoned());
                }
                made.paths.push((target.clone(), (ours.dev(), ours.ino())));
                std::fs::rename(&*tmp, &*target)?;
                *committed = true;
                Ok(())
            }
            Sink::Stdout | Sink::Through(_) | Sink::Append(_) => Ok(()),
        }
    }
}

/// Appends `bytes` to `file` (a regular file, opened to append). An append that fails part-way
/// is taken back: cut short, it could still say PASS above a gate that fails for it. Only when
/// the file grew by what this wrote and nothing else, so that what another process appended
/// meanwhile (two runs sharing a step summary) is never cut.
fn append_or_take_back(mut file: &File, bytes: &[u8]) -> io::Result<()> {
    let before = file.metadata()?.len();
    let mut written = 0;
    let appended = loop {
        if written == bytes.len() {
            break Ok(());
        }
        match file.write(&bytes[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if appended.is_err() {
        take_back(file, before, written);
    }
    appended
}

/// An append made whole (the step summary): where it starts and how long it is.
struct Appended {
    file: File,
    before: u64,
    written: usize,
}

/// The appends made so far, and whether appending is over.
struct Appends {
    made: Vec<Appended>,
    sealed: bool,
}

static APPENDS: std::sync::Mutex<Appends> = std::sync::Mutex::new(Appends {
    made: Vec::new(),
    sealed: false,
});

/// Ends appending, for [`abandon`]: `note` is appended after the last append made (a run
/// appends to one file, the step summary), and any later append fails. A whole append is not
/// cut back (another process may have appended after it), unless the note cannot be written
/// (a full disk): then every one is, the last first, when its file holds exactly what it held
/// and that append.
fn seal_appends(note: &str) {
    let mut appends = APPENDS.lock().unwrap_or_else(|e| e.into_inner());
    appends.sealed = true;
    let Some(last) = appends.made.last() else {
        return;
    };
    if append_or_take_back(&last.file, note.as_bytes()).is_err() {
        cut_back(&appends.made);
    }
}

/// Cuts back every append made so far, when its file holds exactly what it held and that
/// append: for an append that no longer holds and could not be followed by one that does (a
/// full disk).
pub fn take_back_appends() {
    cut_back(&APPENDS.lock().unwrap_or_else(|e| e.into_inner()).made);
}

/// Cuts back `made`, the last first (each cut leaves the one before last in its file).
fn cut_back(made: &[Appended]) {
    for made in made.iter().rev() {
        take_back(&made.file, made.before, made.written);
    }
}

/// Cuts `file` back to `before` when it holds exactly that and the `written` bytes appended
/// after it (nothing another process appended).
fn take_back(file: &File, before: u64, written: usize) {
    if written > 0
        && file
            .metadata()
            .is_ok_and(|m| m.len() == before + written as u64)
    {
        let _ = file.set_len(before);
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Sink::Atomic {
            tmp,
            committed: false,
            ..
        } = &self.sink
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Where a report to `path` goes: its symlinks followed as a write follows them, so a
/// dangling one names the file the write would create. `path` itself when it cannot be
/// resolved (the write fails then anyway).
pub fn destination(path: &Path) -> PathBuf {
    match resolve(path) {
        Ok(Kind::Regular(target) | Kind::Special(target)) => target,
        Err(_) => path.to_path_buf(),
    }
}

/// Follows the path's own symlinks to what it names. A symlink inside `/proc` (what
/// `/dev/stdout` and `/dev/fd/N` lead to) names an open file of a process, maybe a pipe or the
/// very file the shell redirected stdout to: it is written through, never resolved, since a
/// rename would put the report beside that file instead of into it.
fn resolve(path: &Path) -> io::Result<Kind> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Kind::Regular(current)),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            if in_proc(&current) {
                return Ok(Kind::Special(current));
            }
            let link = std::fs::read_link(&current)?;
            current = match current.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
        } else if kind.is_file() {
            return Ok(Kind::Regular(current));
        } else if kind.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            return Ok(Kind::Special(current));
        } else {
            return Err(io::Error::other("not a file, device or FIFO"));
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Whether the path's folder is (really) inside `/proc`.
fn in_proc(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).is_ok_and(|dir| dir.starts_with("/proc"))
}

/// A temporary file beside `target`, with the target's permissions when it exists.
fn atomic(target: PathBuf) -> io::Result<Sink> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or("report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // Made and listed under the lock `abandon` takes: none escapes a signal's sweep.
    let mut made = made();
    if made.abandoned {
        return Err(abandoned());
    }
    // Readable too: a report written while the run goes on is read back from it. Private
    // until it is renamed into place.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let ours = match identity(&file) {
        Ok(ours) => ours,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    made.paths.push((tmp.clone(), ours));
    drop(made);
    // A report someone made group-readable stays so; a new one gets what a new file gets.
    let permissions = match std::fs::metadata(&target) {
        Ok(meta) => meta.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o666 & !umask()),
    };
    Ok(Sink::Atomic {
        target,
        tmp,
        file,
        permissions,
        committed: false,
    })
}

/// The process's file mode creation mask, from `/proc/self/status` (Linux 4.7 and later);
/// the usual 022 where it cannot be read. (`umask(2)` cannot read it without setting it, and
/// another thread could create a file meanwhile.)
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            })
            .unwrap_or(0o022)
    })
}

/// Opens a device, FIFO or `/proc` file for appending. Opening a FIFO blocks until a reader
/// opens it, so the open runs on its own thread and gives up after [`OPEN_WAIT`] (the thread
/// is left blocked: the process is about to exit).
fn open_waiting(path: PathBuf) -> io::Result<File> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("open-report".into())
        .spawn(move || {
            let _ = sender.send(OpenOptions::new().append(true).open(path));
        })?;
    receiver.recv_timeout(OPEN_WAIT).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no reader opened it within {}",
                humantime::format_duration(OPEN_WAIT)
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_that_no_longer_hold_are_cut_back_the_last_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "foreign\n").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let mut made = Vec::new();
        for summary in ["PASS\n", "FAIL, replaces it\n"] {
            let before = file.metadata().unwrap().len();
            (&file).write_all(summary.as_bytes()).unwrap();
            made.push(Appended {
                file: file.try_clone().unwrap(),
                before,
                written: summary.len(),
            });
        }
        cut_back(&made);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "foreign\n");
    }

    #[test]
    fn a_failed_append_is_taken_back_unless_another_writer_appended_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "earlier\n").unwrap();
        let ours = OpenOptions::new().append(true).open(&path).unwrap();
        // Ours alone: the 4 bytes it wrote are cut.
        (&ours).write_all(b"PASS").unwrap();
        take_back(&ours, 8, 4);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "earlier\n");
        // Another process appended after ours: nothing is cut.
        (&ours).write_all(b"PASS").unwrap();
        let mut other = OpenOptions::new().append(true).open(&path).unwrap();
        other.write_all(b"theirs\n").unwrap();
        take_back(&ours, 8, 4);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "earlier\nPASStheirs\n"
        );
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(files_in(dir.path()), ["r.json"], "no temporary file left");
        assert!(write_atomic(&dir.path().join("missing/r.json"), "x").is_err());
        assert!(write_atomic(dir.path(), "x").is_err(), "a directory");
    }

    #[test]
    fn staging_again_replaces_and_dropping_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").unwrap();
        let mut prepared = Prepared::report(&path).unwrap();
        assert!(prepared.is_reversible());
        prepared
            .stage(|w| w.write_all(b"a longer first try"))
            .unwrap();
        prepared.stage(|w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old", "not yet");
        prepared.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");

        let dropped = Prepared::report(&path).unwrap();
        drop(dropped);
        assert_eq!(files_in(dir.path()), ["r.json"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
    }

    #[test]
    fn a_symlink_writes_its_target_and_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real/report.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real/report.json", &link).unwrap();
        // A dangling link: its target is created.
        write_atomic(&link, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "first");
        write_atomic(&link, "second").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "second");
        assert_eq!(files_in(&dir.path().join("real")), ["report.json"]);
    }

    #[test]
    fn a_fifo_is_written_through_not_replaced() {
        // A FIFO in a temp dir, never a device of the system: a broken build that renames
        // over its path must not take /dev/null with it.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let reader = fifo.clone();
        let read = std::thread::spawn(move || std::fs::read_to_string(reader).unwrap());
        let mut prepared = Prepared::report(&fifo).unwrap();
        assert!(!prepared.is_reversible());
        prepared.stage(|w| w.write_all(b"through")).unwrap();
        prepared.commit().unwrap();
        assert_eq!(read.join().unwrap(), "through");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }
}
