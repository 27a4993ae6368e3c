//! Reading the files a suite names (its TOML files, the lock, bodies, schemas, certificates,
//! pinned config): only regular files. A FIFO blocks until someone writes to it and a device
//! like `/dev/zero` never ends, so either would hang the gate or fill its memory; they are
//! refused before a single byte is read. Hashing reads in fixed-size chunks, so a large pinned
//! file costs 64 KiB of memory, not its size.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The chunk size for hashing.
const CHUNK: usize = 64 * 1024;

/// The largest file a suite may name for preflight to hold or hash when it loads
/// (`body_file`, `json_schema`, `sha256_of_file`, certificates, its own TOML files): loading
/// has no deadline, so a huge file must be refused rather than read.
pub const MAX_SUITE_FILE: u64 = 64 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A directory, FIFO, socket or device (after following symlinks).
    #[error("not a regular file")]
    NotRegular,
    #[error("{size} bytes, over the limit of {limit} bytes for a file a suite names")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// The file (or a folder on its path) does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Opens `path` for reading if it is a regular file. The type is checked before opening
/// (opening a FIFO blocks until a writer comes) and again on the open handle, in case the
/// path was swapped in between.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    open_regular_sized(path).map(|(file, _)| file)
}

/// [`open_regular`], and the file's size as the open handle saw it.
fn open_regular_sized(path: &Path) -> Result<(File, u64), ReadError> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(ReadError::NotRegular);
    }
    open_checked(path, 0)
}

/// Opens `path` without blocking (a FIFO swapped in after a check blocked the open until a
/// writer came: attack finding, a load hung) and checks its type on the open handle.
/// `flags` are added to the open's (`O_NOFOLLOW`).
fn open_checked(path: &Path, flags: libc::c_int) -> Result<(File, u64), ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | flags)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular);
    }
    Ok((file, metadata.len()))
}

/// A regular file of at most [`MAX_SUITE_FILE`] bytes, opened, and its size. The limit also
/// bounds what is read, should the file grow after the check.
fn open_suite_file(path: &Path) -> Result<(std::io::Take<File>, u64), ReadError> {
    let (file, size) = open_regular_sized(path)?;
    within_limit(file, size)
}

fn within_limit(file: File, size: u64) -> Result<(std::io::Take<File>, u64), ReadError> {
    if size > MAX_SUITE_FILE {
        return Err(ReadError::TooLarge {
            size,
            limit: MAX_SUITE_FILE,
        });
    }
    Ok((file.take(MAX_SUITE_FILE), size))
}

/// The whole content of a regular file a suite names.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_all(open_suite_file(path)?)
}

fn read_all((mut file, size): (std::io::Take<File>, u64)) -> Result<Vec<u8>, ReadError> {
    // Room for the whole file: without it a small file took 6 or 7 `read` calls as the
    // buffer grew, 3,500 for a suite of 500 files (strace).
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The whole content of a regular file a suite names, which must be UTF-8 text. Invalid
/// UTF-8 is an `InvalidData` error whose message gives the byte offset.
pub fn read_regular_text(path: &Path) -> Result<String, ReadError> {
    text(read_regular(path)?)
}

/// [`read_regular_text`] of a flow file the listing of the suite's folders reported as a
/// regular file, with one path lookup fewer (`perf` of `check` of 500 flows: a `stat` of the
/// path was 4% of its CPU): opened without following a symlink and without blocking, and its
/// type checked on the open handle. Should it have become a symlink since the listing, it is
/// read as `read_regular_text` reads it (the target's type checked before it is opened).
pub fn read_listed_text(path: &Path) -> Result<String, ReadError> {
    let (file, size) = match open_checked(path, libc::O_NOFOLLOW) {
        Err(ReadError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP) => {
            return read_regular_text(path);
        }
        opened => opened?,
    };
    text(read_all(within_limit(file, size)?)?)
}

fn text(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            InvalidUtf8 { at },
        ))
    })
}

/// Where a file stops being UTF-8 text.
#[derive(Debug, thiserror::Error)]
#[error("not UTF-8 text (from byte {at})")]
pub struct InvalidUtf8 {
    pub at: usize,
}

/// The SHA-256 of a regular file a suite names (`sha256_of_file`), within the size limit.
pub fn sha256_suite_file(path: &Path) -> Result<String, ReadError> {
    sha256_of(open_suite_file(path)?.0)
}

/// The SHA-256 of a regular file as lower-case hex, read in 64 KiB chunks.
pub fn sha256_regular(path: &Path) -> Result<String, ReadError> {
    sha256_of(open_regular(path)?)
}

/// Lower-case hex SHA-256 of everything `reader` yields, read in 64 KiB chunks.
fn sha256_of(mut file: impl Read) -> Result<String, ReadError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(read_regular(&path).unwrap(), b"abc");
        assert_eq!(read_regular_text(&path).unwrap(), "abc");
        assert_eq!(
            sha256_regular(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Larger than one chunk, not a multiple of it.
        let big = vec![7u8; CHUNK * 2 + 5];
        std::fs::write(&path, &big).unwrap();
        assert_eq!(
            sha256_regular(&path).unwrap(),
            hex::encode(Sha256::digest(&big))
        );
    }

    #[test]
    fn listed_files_are_read_in_one_lookup_and_fifos_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(read_listed_text(&file).unwrap(), "x = 1\n");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_listed_text(&link).unwrap(), "x = 1\n");
        let fifo = dir.path().join("pipe.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let fifo_link = dir.path().join("pipe-link.toml");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        for path in [&fifo, &fifo_link, &dir.path().to_path_buf()] {
            assert!(
                matches!(read_listed_text(path), Err(ReadError::NotRegular)),
                "{}",
                path.display()
            );
        }
        std::fs::write(&file, [0xff, b'\n']).unwrap();
        assert!(read_listed_text(&file).is_err_and(|e| e.to_string().contains("not UTF-8")));
        assert!(read_listed_text(&dir.path().join("nope")).is_err_and(|e| e.is_missing()));
    }

    /// The open itself never waits for a FIFO's writer, whatever a check before it saw.
    #[test]
    fn a_fifo_is_refused_on_the_open_handle_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        assert!(matches!(open_checked(&fifo, 0), Err(ReadError::NotRegular)));
    }

    #[test]
    fn devices_directories_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            sha256_regular(Path::new("/dev/zero")),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_regular(dir.path()),
            Err(ReadError::NotRegular)
        ));
        let missing = read_regular(&dir.path().join("nope")).unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        assert_eq!(ReadError::NotRegular.to_string(), "not a regular file");
    }
}
