//! Sequential read-ahead for cold reads: after a fetch is served from a segment file, the
//! partition starts reading the bytes that follow, so that a consumer catching up finds its next
//! fetch already read (or in flight) while the previous response travels to it. Without it, one
//! consumer's disk reads and network sends take turns and the disk idles half the time.
//!
//! A partition holds at most one read-ahead (at most [`READ_AHEAD_BYTES_MAX`]), and a shard at
//! most [`READ_AHEAD_BYTES_PER_SHARD_MAX`] in all; past that, reads go without. A read-ahead
//! nobody claimed for [`READ_AHEAD_UNCLAIMED_MAX`] gives way to the next reader that wants one.
//! Durable bytes never change, so read-ahead bytes stay right for the offsets they hold.
//!
//! One `ReadAhead` belongs to one partition on one shard and is never shared with another thread.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::limits::{READ_AHEAD_BYTES_MAX, READ_AHEAD_BYTES_PER_SHARD_MAX, READ_AHEAD_UNCLAIMED_MAX};

thread_local! {
    /// Bytes the read-aheads of this shard (this executor thread) hold or are reading.
    static SHARD_READ_AHEAD_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Where in a segment a read-ahead starts: at the batch with `offset`, at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStart {
    pub segment_base_offset: i64,
    pub position: u64,
    pub offset: i64,
}

/// Bytes of the shard's read-ahead budget, given back on drop.
#[derive(Debug)]
struct Reservation {
    bytes: usize,
}

impl Reservation {
    fn take(bytes: usize) -> Option<Self> {
        SHARD_READ_AHEAD_BYTES.with(|held| {
            let total = held.get() + bytes;
            (total <= READ_AHEAD_BYTES_PER_SHARD_MAX).then(|| {
                held.set(total);
                Self { bytes }
            })
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        SHARD_READ_AHEAD_BYTES.with(|held| held.set(held.get() - self.bytes));
    }
}

/// A read started ahead of the fetch that will want it.
struct Pending {
    start: ReadStart,
    started: Instant,
    read: glommio::Task<std::io::Result<Bytes>>,
    reservation: Reservation,
}

/// A claimed read-ahead: the bytes from `start` on once `read` completes.
pub struct Claimed {
    pub start: ReadStart,
    read: glommio::Task<std::io::Result<Bytes>>,
    _reservation: Reservation,
}

impl Claimed {
    /// Waits for the read (if still in flight) and returns its bytes.
    pub async fn bytes(self) -> std::io::Result<Bytes> {
        self.read.await
    }
}

/// The read-ahead slot of one partition.
#[derive(Default)]
pub struct ReadAhead {
    slot: RefCell<Option<Pending>>,
}

impl ReadAhead {
    /// The read-ahead starting at the batch with `offset` in the segment with
    /// `segment_base_offset`, if there is one; it leaves the slot.
    pub fn claim_at(&self, segment_base_offset: i64, offset: i64) -> Option<Claimed> {
        let mut slot = self.slot.borrow_mut();
        let wanted = |pending: &Pending| {
            pending.start.segment_base_offset == segment_base_offset && pending.start.offset == offset
        };
        if !slot.as_ref().is_some_and(wanted) {
            return None;
        }
        slot.take().map(|pending| Claimed {
            start: pending.start,
            read: pending.read,
            _reservation: pending.reservation,
        })
    }

    /// Starts reading `length_bytes` (at most [`READ_AHEAD_BYTES_MAX`]) of `file` from `start`,
    /// unless the slot holds one started less than [`READ_AHEAD_UNCLAIMED_MAX`] ago or the
    /// shard's budget is spent.
    pub fn start(&self, file: Rc<DmaFile>, start: ReadStart, length_bytes: usize) {
        let length_bytes = length_bytes.min(READ_AHEAD_BYTES_MAX);
        if length_bytes == 0 {
            return;
        }
        let mut slot = self.slot.borrow_mut();
        if slot.as_ref().is_some_and(|pending| pending.started.elapsed() < READ_AHEAD_UNCLAIMED_MAX) {
            return;
        }
        // Give back what an unclaimed read-ahead holds before asking for more.
        *slot = None;
        let Some(reservation) = Reservation::take(length_bytes) else {
            return;
        };
        let read = glommio::spawn_local(async move {
            let chunk = file.read_at(start.position, length_bytes).await?;
            Ok(Bytes::copy_from_slice(&chunk))
        });
        *slot = Some(Pending { start, started: Instant::now(), read, reservation });
    }

    /// Drops any read-ahead (the partition closes).
    pub fn clear(&self) {
        self.slot.borrow_mut().take();
    }
}

/// Bytes the read-aheads of the current shard hold (for tests and metrics).
pub fn shard_bytes() -> usize {
    SHARD_READ_AHEAD_BYTES.with(Cell::get)
}
