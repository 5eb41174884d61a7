//! The data directory's lock: one sluice process at a time per data directory.
//!
//! Two brokers on one directory would append to the same segments and truncate each other's
//! tails at recovery, and `sluice verify` reading a live broker's tail would report damage
//! that is only a write in progress. The listen-address probe does not catch a second broker:
//! SO_REUSEPORT lets it bind, and a broker that is shutting down no longer accepts.
//!
//! So `sluice serve` and `sluice verify` take an exclusive `flock` on `<data-dir>/.lock` before
//! they read or write anything else there, and hold it until the process ends. The kernel
//! drops the lock when the process ends however it ends, kill -9 included, so a crash never
//! leaves a stale lock behind. The holder writes `<pid> <command>` into the file, only so a
//! refused process can say who holds it.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// The command taking the lock: written into the lock file, and it decides the remedy a refused
/// process is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockingCommand {
    Serve,
    Verify,
}

impl LockingCommand {
    fn name(self) -> &'static str {
        match self {
            LockingCommand::Serve => "serve",
            LockingCommand::Verify => "verify",
        }
    }
}

const VERIFY_REMEDY: &str =
    "verify checks a stopped broker's files (a live broker's log changes under it): stop it first";

/// Holds the data directory's lock while alive; the lock goes with the file descriptor.
#[derive(Debug)]
pub struct DataDirLock {
    /// `None` only for a directory this process may not write that holds no lock file: no
    /// process can have locked it, and a broker could not create it there either.
    _file: Option<File>,
}

/// Why the lock was not taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock. `holder` is what it wrote into the lock file (pid and
    /// command), `None` if unreadable (it may be between taking the lock and writing).
    Held {
        data_dir: PathBuf,
        holder: Option<String>,
        wanted_by: LockingCommand,
    },
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { data_dir, holder, wanted_by } => {
                let holder = holder.as_deref().map_or_else(|| "pid unknown".to_string(), describe_holder);
                let remedy = match wanted_by {
                    LockingCommand::Serve => "stop it first or choose another --data-dir",
                    LockingCommand::Verify => VERIFY_REMEDY,
                };
                write!(
                    formatter,
                    "data dir {} is in use by another sluice process ({holder}); {remedy}",
                    data_dir.display()
                )
            }
            LockError::Io { action, path, error } => write!(formatter, "cannot {action} {}: {error}", path.display()),
        }
    }
}

/// `"1234 serve"` becomes `"pid 1234, sluice serve"`.
fn describe_holder(contents: &str) -> String {
    match contents.split_once(' ') {
        Some((pid, command)) => format!("pid {pid}, sluice {command}"),
        None => format!("pid {contents}"),
    }
}

/// Takes the exclusive lock on `data_dir` without waiting, and records this process in the lock
/// file. Fails with [`LockError::Held`] at once if another process holds it. `serve` creates the
/// directory if missing (a first start); `verify` expects it to exist.
pub fn lock(data_dir: &Path, command: LockingCommand) -> Result<DataDirLock, LockError> {
    if command == LockingCommand::Serve {
        std::fs::create_dir_all(data_dir).map_err(|error| LockError::Io {
            action: "create data dir",
            path: data_dir.to_path_buf(),
            error,
        })?;
    }
    let path = data_dir.join(LOCK_FILE);
    let io_error = |error| LockError::Io { action: "lock", path: path.clone(), error };
    let Some((mut file, writable)) = open_lock_file(&path).map_err(io_error)? else {
        return Ok(DataDirLock { _file: None });
    };
    // SAFETY: flock on a descriptor this function owns; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_error(error));
        }
        let mut contents = String::new();
        let holder = file.read_to_string(&mut contents).ok().map(|_| contents.trim().to_string());
        let holder = holder.filter(|holder| !holder.is_empty());
        return Err(LockError::Held { data_dir: data_dir.to_path_buf(), holder, wanted_by: command });
    }
    if writable {
        file.set_len(0).map_err(io_error)?;
        file.write_all(format!("{} {}\n", std::process::id(), command.name()).as_bytes()).map_err(io_error)?;
    }
    Ok(DataDirLock { _file: Some(file) })
}

/// Opens (creating if missing) the lock file read-write, or read-only where this process may
/// not write (`verify` on a read-only copy: flock works on any descriptor). `None`: the file is
/// missing and cannot be created. Never truncates: a refused process must not erase the holder.
fn open_lock_file(path: &Path) -> std::io::Result<Option<(File, bool)>> {
    match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path) {
        Ok(file) => Ok(Some((file, true))),
        Err(error)
            if error.kind() == std::io::ErrorKind::PermissionDenied || error.raw_os_error() == Some(libc::EROFS) =>
        {
            match File::open(path) {
                Ok(file) => Ok(Some((file, false))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // flock locks belong to the open file description, so a second open in this process
    // conflicts like a second process would.
    #[test]
    fn a_held_lock_refuses_a_second_taker_naming_the_holder_until_dropped() {
        let data_dir = tempfile::tempdir().unwrap();
        let held = lock(data_dir.path(), LockingCommand::Serve).unwrap();
        let contents = std::fs::read_to_string(data_dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(contents, format!("{} serve\n", std::process::id()));
        let error = lock(data_dir.path(), LockingCommand::Verify).unwrap_err().to_string();
        let expected = format!(
            "data dir {} is in use by another sluice process (pid {}, sluice serve); verify checks",
            data_dir.path().display(),
            std::process::id()
        );
        assert!(error.starts_with(&expected), "{error}");
        assert!(error.ends_with("stop it first"), "{error}");
        let error = lock(data_dir.path(), LockingCommand::Serve).unwrap_err().to_string();
        assert!(error.ends_with("; stop it first or choose another --data-dir"), "{error}");
        assert_eq!(std::fs::read_to_string(data_dir.path().join(LOCK_FILE)).unwrap(), contents, "holder kept");
        drop(held);
        let _verify = lock(data_dir.path(), LockingCommand::Verify).unwrap();
        let contents = std::fs::read_to_string(data_dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(contents, format!("{} verify\n", std::process::id()), "the old holder's line replaced");
    }

    #[test]
    fn serve_creates_a_missing_data_dir_and_verify_names_the_lock_file_it_cannot_open() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        let error = lock(&missing, LockingCommand::Verify).unwrap_err().to_string();
        assert!(error.starts_with(&format!("cannot lock {}: ", missing.join(LOCK_FILE).display())), "{error}");
        let _serve = lock(&missing.join("nested"), LockingCommand::Serve).unwrap();
        assert!(missing.join("nested").join(LOCK_FILE).is_file());
    }
}
