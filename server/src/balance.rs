//! Moving RESP connections off a shard whose core is saturated, to one with time to spare.
//!
//! Accepting spreads connections evenly over the shards (`accept`), but connections are not
//! equal, and nothing known when one is accepted says which will be busy. A shard that owns a
//! hot stream appends every connection's entries to it and serves its own share of the
//! connections besides: under load it runs out of core while its peers idle (benches/
//! HISTORY.md, "Connections off the stream's owner, again"). So every `BALANCE_INTERVAL_MS`
//! each shard notes the share of the interval its thread used its core (CPU time, not time
//! awake: a shard sharing its core with other processes is awake while they run); a shard
//! busier than `--connection-balance-busy-permille` asks one of its recently active RESP
//! connections to move to the least busy shard, when that one is at least
//! `--connection-balance-gap-permille` less busy. The connection moves itself at its next
//! quiet point (every command read so far ran and is answered, no transaction open): its
//! socket, its session (client id, name, library, protocol) and the bytes of a command read in
//! part go over the mesh, and the client sees nothing but replies. A connection that moved
//! stays put for `MOVED_STAY_MS`, so none flaps between shards. Kafka connections stay where
//! they were accepted.
use std::time::{Duration, Instant};

use crate::runtime::ShardRef;

/// How often each shard measures how busy it is, and may ask one connection to move.
pub const BALANCE_INTERVAL_MS: u64 = 100;
/// A shard whose thread used more than this share of an interval's CPU time, in thousandths,
/// sheds connections (`--connection-balance-busy-permille`; 1000 never).
pub const BUSY_SHED_PERMILLE_DEFAULT: u32 = 700;
/// ... to a shard at least this much less busy (`--connection-balance-gap-permille`).
pub const BUSY_GAP_PERMILLE_DEFAULT: u32 = 200;
/// A connection that moved stays on its new shard at least this long.
pub const MOVED_STAY_MS: u64 = 1_000;
/// A request to move that the connection has not acted on within this is dropped (loads
/// change).
pub const MOVE_REQUEST_FRESH: Duration = Duration::from_millis(2 * BALANCE_INTERVAL_MS);

/// Runs on every shard while the broker serves.
pub async fn run(shard: ShardRef) {
    let connections = &shard.connections;
    let thresholds = (shard.config.connection_balance_busy_permille, shard.config.connection_balance_gap_permille);
    if connections.shards() < 2 || thresholds.0 >= 1000 {
        return;
    }
    let interval = Duration::from_millis(BALANCE_INTERVAL_MS);
    let mut last = (Instant::now(), thread_cpu());
    loop {
        glommio::timer::sleep(interval).await;
        let now = (Instant::now(), thread_cpu());
        let busy = busy_permille(now.1.saturating_sub(last.1), now.0.duration_since(last.0));
        last = now;
        connections.set_busy_permille(shard.id, busy);
        let peers = (0..connections.shards()).map(|peer| connections.busy_permille(peer));
        let Some(target) = shed_to(busy, peers, shard.id, thresholds) else {
            continue;
        };
        if let Some(session) = crate::resp::clients::movable(interval, Duration::from_millis(MOVED_STAY_MS)) {
            session.want_move(target);
        }
    }
}

/// The CPU time this thread used so far.
fn thread_cpu() -> Duration {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// The share of `wall` that `ran` is, in thousandths (at most 1000).
fn busy_permille(ran: Duration, wall: Duration) -> u32 {
    if wall.is_zero() {
        return 0;
    }
    ((ran.as_nanos() * 1000 / wall.as_nanos()).min(1000)) as u32
}

/// The shard a shard `busy` permille busy should move a connection to: the least busy of
/// `peers` (indexed by shard, this one `me` among them), if this one sheds and that one is
/// far enough below.
fn shed_to(busy: u32, peers: impl Iterator<Item = u32>, me: usize, (shed_above, gap): (u32, u32)) -> Option<usize> {
    if busy <= shed_above {
        return None;
    }
    let (target, least) = peers.enumerate().filter(|(peer, _)| *peer != me).min_by_key(|(_, busy)| *busy)?;
    (least + gap <= busy).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_shard_sheds_to_the_least_busy_peer_far_enough_below() {
        let defaults = (BUSY_SHED_PERMILLE_DEFAULT, BUSY_GAP_PERMILLE_DEFAULT);
        assert_eq!(shed_to(950, [950, 400, 700].into_iter(), 0, defaults), Some(1));
        assert_eq!(shed_to(1000, [100, 1000].into_iter(), 1, defaults), Some(0));
        // Not busy enough, or no peer far enough below: stays.
        assert_eq!(shed_to(700, [700, 100].into_iter(), 0, defaults), None);
        assert_eq!(shed_to(950, [950, 800].into_iter(), 0, defaults), None);
        assert_eq!(shed_to(950, [950].into_iter(), 0, defaults), None);
        // With no thresholds, any shard that did anything sheds to one that did no more.
        assert_eq!(shed_to(1, [1, 1].into_iter(), 0, (0, 0)), Some(1));
    }

    #[test]
    fn busy_is_the_share_of_wall_time_run() {
        assert_eq!(busy_permille(Duration::from_millis(25), Duration::from_millis(100)), 250);
        assert_eq!(busy_permille(Duration::from_millis(120), Duration::from_millis(100)), 1000);
        assert_eq!(busy_permille(Duration::ZERO, Duration::ZERO), 0);
    }
}
