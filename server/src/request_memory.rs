//! The bytes of requests a shard holds at once: one budget for both front doors.
//!
//! A connection holds at most one request being read (a Kafka frame, a RESP command in its
//! buffer) and, on Kafka, up to `IN_FLIGHT_REQUESTS_MAX` being handled. Without a budget the
//! broker's memory would grow with connections times request size. With one, a request's
//! bytes are charged to its shard's share of `request-memory-bytes-max` as they arrive, in
//! steps of `REQUEST_MEMORY_STEP_BYTES`, and given back once the request is handled. A request
//! whose next step does not fit waits (its connection reads nothing meanwhile, so the client's
//! bytes wait in the kernel's socket buffers), until its request-read deadline; past it the
//! connection is dropped. Like Kafka's `queued.max.request.bytes`, but charged on arrival, so
//! an announced length costs nothing until its bytes come.
//!
//! The first `REQUEST_UNCHARGED_BYTES` of each request are free: metadata, heartbeats, commits
//! and small produces are never held up behind large or slow requests.
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::Semaphore;

/// The bytes of each request that are not charged to the budget.
pub const REQUEST_UNCHARGED_BYTES: usize = 64 << 10;
/// A request's charge grows by this much at a time (and a Kafka frame is read in such steps).
pub const REQUEST_MEMORY_STEP_BYTES: usize = 1 << 20;
/// Least share of `request-memory-bytes-max` a shard may get.
pub const REQUEST_MEMORY_SHARE_BYTES_MIN: usize = REQUEST_MEMORY_STEP_BYTES;

/// A shard's share of the request memory budget.
pub struct RequestMemory {
    available: Rc<Semaphore>,
    share_bytes: u64,
    /// Charges that had to wait for other requests to give bytes back.
    waits: Cell<u64>,
}

/// The next step of a request did not fit in its shard's share before the request's deadline.
#[derive(Debug)]
pub struct NoRoom;

impl RequestMemory {
    pub fn new(share_bytes: usize) -> Self {
        let share_bytes = share_bytes as u64;
        Self { available: Rc::new(Semaphore::new(share_bytes)), share_bytes, waits: Cell::new(0) }
    }

    /// A charge of nothing, for one request.
    pub fn charge(&self) -> Charge {
        Charge { available: self.available.clone(), bytes: 0 }
    }

    /// Bytes charged now, by all requests of the shard.
    pub fn held_bytes(&self) -> u64 {
        self.share_bytes - self.available.available()
    }

    pub fn waits(&self) -> u64 {
        self.waits.get()
    }
}

/// The bytes charged for one request, given back when dropped.
pub struct Charge {
    available: Rc<Semaphore>,
    bytes: u64,
}

impl Charge {
    /// Makes the charge cover a request of `request_bytes` so far: the bytes past the uncharged
    /// ones, rounded up to a step, and never more than the whole share (a request larger than
    /// the share goes once the shard holds no other charged request). Waits for room until
    /// `deadline`.
    pub async fn cover(
        &mut self,
        memory: &RequestMemory,
        request_bytes: usize,
        deadline: Instant,
    ) -> Result<(), NoRoom> {
        let wanted = request_bytes.saturating_sub(REQUEST_UNCHARGED_BYTES).next_multiple_of(REQUEST_MEMORY_STEP_BYTES);
        let wanted = (wanted as u64).min(memory.share_bytes);
        if wanted <= self.bytes {
            return Ok(());
        }
        let more = wanted - self.bytes;
        // Try first without queueing: most charges fit at once.
        if !self.available.try_acquire(more).unwrap_or(false) {
            memory.waits.set(memory.waits.get() + 1);
            let limit = deadline.saturating_duration_since(Instant::now());
            if glommio::timer::timeout(limit, self.available.acquire(more)).await.is_err() {
                return Err(NoRoom);
            }
        }
        self.bytes = wanted;
        Ok(())
    }

    /// Gives back everything charged (the request was handled; the connection goes on).
    pub fn release(&mut self) {
        self.available.signal(std::mem::take(&mut self.bytes));
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        glommio::LocalExecutorBuilder::default().make().unwrap().run(future)
    }

    #[test]
    fn small_requests_are_free_and_large_ones_are_charged_in_steps() {
        run(async {
            let memory = RequestMemory::new(8 * REQUEST_MEMORY_STEP_BYTES);
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut small = memory.charge();
            small.cover(&memory, REQUEST_UNCHARGED_BYTES, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 0);
            let mut large = memory.charge();
            large.cover(&memory, REQUEST_UNCHARGED_BYTES + 1, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), REQUEST_MEMORY_STEP_BYTES as u64);
            large.cover(&memory, 3 * REQUEST_MEMORY_STEP_BYTES, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 3 * REQUEST_MEMORY_STEP_BYTES as u64);
            large.cover(&memory, 2 * REQUEST_MEMORY_STEP_BYTES, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 3 * REQUEST_MEMORY_STEP_BYTES as u64, "a charge never shrinks by cover");
            drop(large);
            assert_eq!(memory.held_bytes(), 0);
            assert_eq!(memory.waits(), 0);
        });
    }

    #[test]
    fn a_request_waits_for_room_until_its_deadline() {
        run(async {
            let memory = Rc::new(RequestMemory::new(4 * REQUEST_MEMORY_STEP_BYTES));
            let far = Instant::now() + Duration::from_secs(10);
            let mut first = memory.charge();
            first.cover(&memory, 3 * REQUEST_MEMORY_STEP_BYTES, far).await.unwrap();
            let mut second = memory.charge();
            let soon = Instant::now() + Duration::from_millis(20);
            assert!(second.cover(&memory, 3 * REQUEST_MEMORY_STEP_BYTES, soon).await.is_err());
            assert_eq!(memory.waits(), 1);
            assert_eq!(memory.held_bytes(), 3 * REQUEST_MEMORY_STEP_BYTES as u64, "a timed-out wait holds nothing");
            let waiter = glommio::spawn_local({
                let memory = memory.clone();
                async move {
                    let mut charge = memory.charge();
                    charge.cover(&memory, 3 * REQUEST_MEMORY_STEP_BYTES, far).await.map(|()| charge)
                }
            });
            glommio::timer::sleep(Duration::from_millis(10)).await;
            first.release();
            let third = waiter.await.unwrap();
            assert_eq!(memory.held_bytes(), 3 * REQUEST_MEMORY_STEP_BYTES as u64);
            drop(third);
            assert_eq!((memory.held_bytes(), memory.waits()), (0, 2));
        });
    }

    #[test]
    fn a_request_larger_than_the_share_goes_alone() {
        run(async {
            let memory = Rc::new(RequestMemory::new(2 * REQUEST_MEMORY_STEP_BYTES));
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut huge = memory.charge();
            huge.cover(&memory, 10 * REQUEST_MEMORY_STEP_BYTES, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 2 * REQUEST_MEMORY_STEP_BYTES as u64);
            let mut small = memory.charge();
            small.cover(&memory, 1024, deadline).await.unwrap();
        });
    }
}
