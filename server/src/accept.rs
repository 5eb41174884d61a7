//! Accepting connections on both front doors, and spreading them over the shards.
//!
//! Every shard listens on each front door's port with SO_REUSEPORT, and the kernel hands each
//! new connection to one of the listeners by a hash of its addresses: a pool of 50 connections
//! lands 20-30 either way on two shards. A connection stays on the shard that serves it, so
//! such a split stays for the connections' lives, and the shard with more of them runs out of
//! core first while the other idles. So the accepting shard counts the connection where it
//! will be served: on itself, unless another shard serves fewer on that door, in which case it
//! hands the socket to that shard over the mesh (`ShardRequest::Adopt`), as Seastar's
//! `connection_distribution` does. A handed-over connection costs one mesh message, once.
//!
//! `connections-max` caps the connections each shard serves on each door; a connection that
//! finds every shard full is answered (RESP: Redis's `max number of clients` error) and closed.
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};

use crate::metrics::{Dropped, Protocol};
use crate::net::Refusals;
use crate::runtime::mesh::ShardRequest;
use crate::runtime::ShardRef;

/// What the shards know of each other's connections: how many each serves on each door, the
/// next RESP client id, and how busy each shard is (`balance`). Shared by every shard; touched
/// when a connection opens, moves or closes, and once per balancing interval, never per request.
#[derive(Debug)]
pub struct Connections {
    /// By front door (`Protocol::ALL`), then shard.
    open: [Box<[AtomicUsize]>; Protocol::ALL.len()],
    next_client_id: AtomicU64,
    /// By shard: the share of the last balancing interval's CPU time its thread used, in
    /// thousandths.
    busy_permille: Box<[AtomicU32]>,
}

impl Connections {
    pub fn new(shards: usize) -> Self {
        Self {
            open: std::array::from_fn(|_| (0..shards).map(|_| AtomicUsize::new(0)).collect()),
            next_client_id: AtomicU64::new(1),
            busy_permille: (0..shards).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn shards(&self) -> usize {
        self.busy_permille.len()
    }

    pub fn set_busy_permille(&self, shard: usize, permille: u32) {
        self.busy_permille[shard].store(permille, Ordering::Relaxed);
    }

    pub fn busy_permille(&self, shard: usize) -> u32 {
        self.busy_permille[shard].load(Ordering::Relaxed)
    }

    /// Counts a connection moving to `shard` on `door` there, unless that shard serves
    /// `connections_max` already. The shard it leaves counts it out when it leaves (`closed`).
    pub fn count_in(&self, door: Protocol, shard: usize, connections_max: usize) -> bool {
        let open = &self.open[door as usize][shard];
        open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| (count < connections_max).then_some(count + 1))
            .is_ok()
    }

    /// Connections shard `shard` serves on `door`.
    pub fn open(&self, door: Protocol, shard: usize) -> usize {
        self.open[door as usize][shard].load(Ordering::Relaxed)
    }

    /// The shard to serve a connection shard `accepting` took on `door`, counted there: the
    /// accepting shard unless another serves fewer (the lowest such shard). `None` when every
    /// shard serves `connections_max`.
    pub fn place(&self, door: Protocol, accepting: usize, connections_max: usize) -> Option<usize> {
        let open = &self.open[door as usize];
        loop {
            let mut target = accepting;
            let mut fewest = open[accepting].load(Ordering::Relaxed);
            for (shard, count) in open.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count < fewest {
                    (target, fewest) = (shard, count);
                }
            }
            if fewest >= connections_max {
                return None;
            }
            // Another shard may have counted one there meanwhile: look again then, so the cap
            // holds exactly.
            let counted = open[target].compare_exchange(fewest, fewest + 1, Ordering::Relaxed, Ordering::Relaxed);
            if counted.is_ok() {
                return Some(target);
            }
        }
    }

    /// A connection `place` counted on `shard` ended.
    pub fn closed(&self, door: Protocol, shard: usize) {
        let previous = self.open[door as usize][shard].fetch_sub(1, Ordering::Relaxed);
        debug_assert!(previous > 0, "more connections closed than opened");
    }

    /// RESP connections served so far (each took a client id): INFO's
    /// `total_connections_received`, which as in Redis leaves out those refused.
    pub fn clients_received(&self) -> u64 {
        self.next_client_id.load(Ordering::Relaxed) - 1
    }

    /// A new RESP client id: unique in the broker and increasing, like Redis's `CLIENT ID`.
    pub fn client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Accepts `door`'s connections on this shard's `listener`, and has each served where
/// `Connections::place` says.
pub async fn accept_loop(shard: ShardRef, listener: TcpListener, door: Protocol) {
    let mut refusals = Refusals::default();
    loop {
        let accepted = match listener.shared_accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, door = door.label(), "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let connections_max = shard.config.connections_max;
        match shard.connections.place(door, shard.id, connections_max) {
            Some(target) if target == shard.id => serve(shard.clone(), door, accepted),
            Some(target) => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    shard.call(target, ShardRequest::Adopt { door, connection: accepted }).await;
                })
                .detach();
            }
            None => {
                shard.metrics.connection_dropped(door, Dropped::ConnectionsMax);
                refusals.refused(door.door_name(), connections_max);
                refuse(door, accepted.bind_to_executor()).await;
            }
        }
    }
}

/// Serves a connection on this shard until it ends; `Connections::place` counted it here.
pub fn serve(shard: ShardRef, door: Protocol, connection: AcceptedTcpStream) {
    let stream = connection.bind_to_executor();
    glommio::spawn_local(async move {
        match door {
            Protocol::Kafka => crate::kafka::serve(&shard, stream).await,
            Protocol::Resp => crate::resp::serve(&shard, stream).await,
        }
        shard.connections.closed(door, shard.id);
    })
    .detach();
}

/// Serves a RESP connection another shard moved here (`balance`), which `Connections::count_in`
/// counted here.
pub fn serve_moved(shard: ShardRef, moved: crate::resp::MovedConnection) {
    glommio::spawn_local(async move {
        crate::resp::serve_moved(&shard, moved).await;
        shard.connections.closed(Protocol::Resp, shard.id);
    })
    .detach();
}

/// Closes a connection over `connections-max`; RESP first says why, as Redis does (a fresh
/// socket's send buffer is empty: the write does not wait).
async fn refuse(door: Protocol, mut stream: TcpStream) {
    if door == Protocol::Resp {
        use futures_lite::AsyncWriteExt;
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connections_go_to_the_shard_serving_fewest_and_stay_with_the_accepting_one_on_a_tie() {
        let connections = Connections::new(3);
        assert_eq!(connections.place(Protocol::Resp, 1, 10), Some(1));
        // Shard 1 serves one more than 0 and 2 now: the lowest of those takes the next.
        assert_eq!(connections.place(Protocol::Resp, 1, 10), Some(0));
        assert_eq!(connections.place(Protocol::Resp, 1, 10), Some(2));
        assert_eq!(connections.place(Protocol::Resp, 2, 10), Some(2));
        assert_eq!((0..3).map(|shard| connections.open(Protocol::Resp, shard)).collect::<Vec<_>>(), [1, 1, 2]);
        // The doors are counted apart.
        assert_eq!(connections.place(Protocol::Kafka, 2, 10), Some(2));
        connections.closed(Protocol::Resp, 2);
        connections.closed(Protocol::Resp, 2);
        assert_eq!(connections.place(Protocol::Resp, 0, 10), Some(2));
    }

    /// Kernel's split of 50 connections as measured (30 on one shard, 20 on the other) becomes
    /// 25 and 25, whichever shard accepts them.
    #[test]
    fn an_uneven_accept_split_is_served_evenly() {
        let connections = Connections::new(2);
        let accepting = (0..50).map(|index| usize::from(index % 5 < 3));
        for shard in accepting {
            connections.place(Protocol::Kafka, shard, 4096).unwrap();
        }
        assert_eq!(connections.open(Protocol::Kafka, 0), 25);
        assert_eq!(connections.open(Protocol::Kafka, 1), 25);
    }

    #[test]
    fn the_cap_holds_per_shard_and_refuses_only_when_every_shard_is_full() {
        let connections = Connections::new(2);
        for _ in 0..4 {
            assert!(connections.place(Protocol::Resp, 0, 2).is_some());
        }
        assert_eq!(connections.place(Protocol::Resp, 0, 2), None);
        assert_eq!(connections.place(Protocol::Resp, 1, 2), None);
        connections.closed(Protocol::Resp, 1);
        assert_eq!(connections.place(Protocol::Resp, 0, 2), Some(1));
    }

    /// Shards placing at once from their threads never count past the cap.
    #[test]
    fn concurrent_placing_keeps_the_cap() {
        let connections = std::sync::Arc::new(Connections::new(2));
        let threads: Vec<_> = (0..2)
            .map(|accepting| {
                let connections = connections.clone();
                std::thread::spawn(move || {
                    (0..10_000).filter(|_| connections.place(Protocol::Kafka, accepting, 1_000).is_some()).count()
                })
            })
            .collect();
        let placed: usize = threads.into_iter().map(|thread| thread.join().unwrap()).sum();
        assert_eq!(placed, 2_000);
        assert_eq!(connections.open(Protocol::Kafka, 0), 1_000);
        assert_eq!(connections.open(Protocol::Kafka, 1), 1_000);
    }

    #[test]
    fn client_ids_are_unique_and_increase() {
        let connections = Connections::new(2);
        let ids: Vec<u64> = (0..3).map(|_| connections.client_id()).collect();
        assert_eq!(ids, [1, 2, 3]);
    }
}
