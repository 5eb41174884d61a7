//! Faults injected into a segment appender's writes and syncs: how tests make the device fail
//! under a partition (EIO, ENOSPC, a torn write, a slow fdatasync) and check what the
//! partition then promises.
//!
//! Always compiled, so the code under test is the code that ships: an appender without faults
//! holds `None` and pays one branch per write and per sync (each a device round trip of tens
//! of microseconds or more). Nothing outside tests creates a `Faults`: there is no
//! configuration that reaches it.
//!
//! A torn write is real: the prefix of the buffer lands in the file (the rest of its last
//! block zeros, as fresh space reads), then the write reports EIO, as a device that failed
//! mid-write or a crash would leave it.
//!
//! One `Faults` is shared (`Rc`) between a test and one partition's appenders, on one shard;
//! never shared with another thread.
use std::cell::Cell;

use crate::sync::Notify;

#[derive(Default)]
pub struct Faults {
    /// Every write fails with this errno until `clear`.
    write_errno: Cell<Option<i32>>,
    /// The next write puts only this many of its new bytes in the file, then fails with EIO.
    torn_write_bytes: Cell<Option<usize>>,
    /// Every fdatasync fails with this errno until `clear`.
    sync_errno: Cell<Option<i32>>,
    /// fdatasync waits while this is set (a slow device), until `release_syncs`.
    syncs_held: Cell<bool>,
    syncs_waiting: Cell<usize>,
    released: Notify,
}

/// What the appender must do instead of its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// Write nothing; fail with this errno.
    Fail { errno: i32 },
    /// Write the carried bytes and the first `new_bytes` new ones; fail with EIO.
    Torn { new_bytes: usize },
}

impl Faults {
    /// Every write fails with `errno` (e.g. `libc::ENOSPC`, `libc::EIO`) until `clear`.
    pub fn fail_writes(&self, errno: i32) {
        self.write_errno.set(Some(errno));
    }

    /// The next write puts only its first `new_bytes` bytes in the file, then fails with EIO.
    pub fn tear_next_write(&self, new_bytes: usize) {
        self.torn_write_bytes.set(Some(new_bytes));
    }

    /// Every fdatasync fails with `errno` until `clear`; the writes before it did reach the file.
    pub fn fail_syncs(&self, errno: i32) {
        self.sync_errno.set(Some(errno));
    }

    /// Every fdatasync from now on waits until `release_syncs`.
    pub fn hold_syncs(&self) {
        self.syncs_held.set(true);
    }

    pub fn release_syncs(&self) {
        self.syncs_held.set(false);
        self.released.notify_all();
    }

    /// How many fdatasyncs are waiting on `hold_syncs` now.
    pub fn syncs_waiting(&self) -> usize {
        self.syncs_waiting.get()
    }

    /// Ends every fault: the device works again (held syncs are released).
    pub fn clear(&self) {
        self.write_errno.set(None);
        self.torn_write_bytes.set(None);
        self.sync_errno.set(None);
        self.release_syncs();
    }

    /// The fault for the write about to be issued, if any (a torn write is used up).
    pub fn take_write_fault(&self) -> Option<WriteFault> {
        if let Some(errno) = self.write_errno.get() {
            return Some(WriteFault::Fail { errno });
        }
        self.torn_write_bytes.take().map(|new_bytes| WriteFault::Torn { new_bytes })
    }

    /// Called before each fdatasync: waits while syncs are held, then fails if syncs fail.
    pub async fn before_sync(&self) -> std::io::Result<()> {
        while self.syncs_held.get() {
            let released = self.released.notified();
            let _waiting = Waiting::count(&self.syncs_waiting);
            released.await;
        }
        match self.sync_errno.get() {
            Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

/// Counts one held sync for as long as it lives (also if its task is dropped while waiting).
struct Waiting<'a>(&'a Cell<usize>);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a Cell<usize>) -> Self {
        waiting.set(waiting.get() + 1);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
