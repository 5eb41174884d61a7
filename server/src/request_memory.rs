//! The bytes of requests a shard holds at once: one budget for both front doors.
//!
//! A connection holds at most one request being read (a Kafka frame, a RESP command in its
//! buffer) and, on Kafka, up to `IN_FLIGHT_REQUESTS_MAX` being handled. Without a budget the
//! broker's memory would grow with connections times request size. With one, a request's
//! bytes are charged to its shard's share of `request-memory-bytes-max` as they arrive and
//! given back once the request is handled. A request whose next bytes do not fit waits (its
//! connection reads nothing meanwhile, so the client's bytes wait in the kernel's socket
//! buffers), until its request-read deadline; past it the connection is dropped. Like Kafka's
//! `queued.max.request.bytes`, but charged on arrival, so an announced length costs nothing
//! until its bytes come.
//!
//! Each connection has `CONNECTION_FREE_REQUEST_BYTES` its requests use before they are
//! charged (an `Allowance`, shared by its requests in flight): metadata, heartbeats, commits,
//! fetches, small produces and a read of pipelined XADDs never wait behind large or slow
//! requests of other connections. So the bytes of requests are at most the budget plus that
//! allowance times the connections (`connections-max` per shard): both configured.
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::Semaphore;

/// Request bytes a connection holds before its requests are charged to the budget.
pub const CONNECTION_FREE_REQUEST_BYTES: usize = 16 << 10;
/// A Kafka frame is read, and charged, this much at a time.
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

/// The next bytes of a request did not fit in its shard's share before the request's deadline.
#[derive(Debug)]
pub struct NoRoom;

/// What is left of one connection's `CONNECTION_FREE_REQUEST_BYTES`, shared by its requests.
#[derive(Clone)]
pub struct Allowance(Rc<Cell<usize>>);

impl Default for Allowance {
    fn default() -> Self {
        Self(Rc::new(Cell::new(CONNECTION_FREE_REQUEST_BYTES)))
    }
}

impl RequestMemory {
    pub fn new(share_bytes: usize) -> Self {
        let share_bytes = share_bytes as u64;
        Self { available: Rc::new(Semaphore::new(share_bytes)), share_bytes, waits: Cell::new(0) }
    }

    /// A charge of nothing, for one request of the connection with `allowance`.
    pub fn charge(&self, allowance: &Allowance) -> Charge {
        Charge { available: self.available.clone(), allowance: allowance.clone(), free: 0, charged: 0 }
    }

    /// Bytes charged now, by all requests of the shard (free ones not counted).
    pub fn held_bytes(&self) -> u64 {
        self.share_bytes - self.available.available()
    }

    pub fn waits(&self) -> u64 {
        self.waits.get()
    }
}

/// The bytes of one request: from its connection's allowance while it lasts, then charged.
/// Given back when dropped.
pub struct Charge {
    available: Rc<Semaphore>,
    allowance: Allowance,
    free: usize,
    charged: u64,
}

impl Charge {
    /// Makes the charge cover a request of `request_bytes` so far, waiting for room until
    /// `deadline`. A request larger than the share is charged the whole share: it goes once no
    /// other request of the shard is charged. A charge never shrinks here.
    pub async fn cover(
        &mut self,
        memory: &RequestMemory,
        request_bytes: usize,
        deadline: Instant,
    ) -> Result<(), NoRoom> {
        let free = (request_bytes.saturating_sub(self.free)).min(self.allowance.0.get());
        self.allowance.0.set(self.allowance.0.get() - free);
        self.free += free;
        let wanted = (request_bytes.saturating_sub(self.free) as u64).min(memory.share_bytes);
        if wanted <= self.charged {
            return Ok(());
        }
        let more = wanted - self.charged;
        // Try first without queueing: most charges fit at once.
        if !self.available.try_acquire(more).unwrap_or(false) {
            memory.waits.set(memory.waits.get() + 1);
            let limit = deadline.saturating_duration_since(Instant::now());
            if glommio::timer::timeout(limit, self.available.acquire(more)).await.is_err() {
                return Err(NoRoom);
            }
        }
        self.charged = wanted;
        Ok(())
    }

    /// Gives back what a request of `request_bytes` does not need (a connection's buffer after
    /// the commands in it ran): charged bytes first, then free ones.
    pub fn keep(&mut self, request_bytes: usize) {
        let mut excess = (self.free + self.charged as usize).saturating_sub(request_bytes);
        let uncharged = (excess as u64).min(self.charged);
        self.available.signal(uncharged);
        self.charged -= uncharged;
        excess -= uncharged as usize;
        let freed = excess.min(self.free);
        self.free -= freed;
        self.allowance.0.set(self.allowance.0.get() + freed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.keep(0);
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

    const FREE: usize = CONNECTION_FREE_REQUEST_BYTES;
    const STEP: usize = REQUEST_MEMORY_STEP_BYTES;

    #[test]
    fn a_connections_allowance_is_free_and_the_rest_is_charged() {
        run(async {
            let memory = RequestMemory::new(8 * STEP);
            let deadline = Instant::now() + Duration::from_secs(1);
            let connection = Allowance::default();
            let mut small = memory.charge(&connection);
            small.cover(&memory, 300, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 0, "within the allowance");
            // A second request of the same connection shares what is left of it.
            let mut large = memory.charge(&connection);
            large.cover(&memory, FREE, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 300);
            large.cover(&memory, 3 * STEP, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), (3 * STEP - FREE + 300) as u64);
            large.cover(&memory, 2 * STEP, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), (3 * STEP - FREE + 300) as u64, "a charge never shrinks by cover");
            large.keep(FREE);
            assert_eq!(memory.held_bytes(), 300, "kept: the bytes of what is left, charged ones given back first");
            drop(small);
            large.keep(FREE);
            assert_eq!(memory.held_bytes(), 300, "keep gives back, never takes");
            drop(large);
            assert_eq!((memory.held_bytes(), connection.0.get()), (0, FREE));
            // Another connection has its own allowance.
            let mut other = memory.charge(&Allowance::default());
            other.cover(&memory, FREE, deadline).await.unwrap();
            assert_eq!((memory.held_bytes(), memory.waits()), (0, 0));
        });
    }

    #[test]
    fn a_request_waits_for_room_until_its_deadline() {
        run(async {
            let memory = Rc::new(RequestMemory::new(4 * STEP));
            let far = Instant::now() + Duration::from_secs(10);
            let mut first = memory.charge(&Allowance::default());
            first.cover(&memory, 3 * STEP + FREE, far).await.unwrap();
            let mut second = memory.charge(&Allowance::default());
            let soon = Instant::now() + Duration::from_millis(20);
            assert!(second.cover(&memory, 3 * STEP + FREE, soon).await.is_err());
            assert_eq!(memory.waits(), 1);
            assert_eq!(memory.held_bytes(), 3 * STEP as u64, "a timed-out wait holds nothing charged");
            let waiter = glommio::spawn_local({
                let memory = memory.clone();
                async move {
                    let mut charge = memory.charge(&Allowance::default());
                    charge.cover(&memory, 3 * STEP + FREE, far).await.map(|()| charge)
                }
            });
            glommio::timer::sleep(Duration::from_millis(10)).await;
            drop(first);
            let third = waiter.await.unwrap();
            assert_eq!(memory.held_bytes(), 3 * STEP as u64);
            drop(third);
            assert_eq!((memory.held_bytes(), memory.waits()), (0, 2));
        });
    }

    #[test]
    fn many_connections_are_held_to_the_budget_plus_their_allowances() {
        run(async {
            let memory = RequestMemory::new(STEP);
            let soon = Instant::now() + Duration::from_millis(20);
            let request_bytes = 60 << 10;
            let charged_each = request_bytes - FREE;
            let fitting = STEP / charged_each;
            let mut held = Vec::new();
            for _ in 0..fitting {
                let mut charge = memory.charge(&Allowance::default());
                charge.cover(&memory, request_bytes, soon).await.unwrap();
                held.push(charge);
            }
            let mut one_more = memory.charge(&Allowance::default());
            assert!(one_more.cover(&memory, request_bytes, soon).await.is_err(), "past the budget");
            assert!(memory.held_bytes() <= STEP as u64);
            // A small request of yet another connection is not held up.
            let mut small = memory.charge(&Allowance::default());
            small.cover(&memory, 1_000, soon).await.unwrap();
        });
    }

    #[test]
    fn a_request_larger_than_the_share_goes_alone() {
        run(async {
            let memory = Rc::new(RequestMemory::new(2 * STEP));
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut huge = memory.charge(&Allowance::default());
            huge.cover(&memory, 10 * STEP, deadline).await.unwrap();
            assert_eq!(memory.held_bytes(), 2 * STEP as u64);
            let mut small = memory.charge(&Allowance::default());
            small.cover(&memory, 1024, deadline).await.unwrap();
        });
    }
}
