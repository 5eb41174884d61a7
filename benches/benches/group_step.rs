//! The two group state machines, without I/O: what a coordinator or a stream's owner shard
//! spends per request once the request is decoded.
//!
//! Kafka consumer groups (`sluice_engine::group::Group`), throughput in members:
//! - `kafka_group/join_sync_heartbeat/<N>`: a new group of N members forms: N JoinGroups
//!   parked until the initial rebalance delay ends, the followers' SyncGroups parked, the
//!   leader's SyncGroup with every assignment, then one Heartbeat each.
//! - `kafka_group/heartbeat`: one Heartbeat of a member of a stable 100-member group.
//!
//! Redis stream groups (`sluice_engine::queue::group`), throughput in entries:
//! - `stream_group/deliver_ack_100`: XREADGROUP `>` hands 100 new entries to a consumer, XACK
//!   acknowledges them.
//! - `stream_group/claim_100`: XAUTOCLAIM finds 100 idle entries among 1000 pending and moves
//!   them to another consumer.
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::group::{Group, GroupLimits, GroupState, JoinRequest, Reply};
use sluice_engine::queue::group::{apply, Deliveries, Event, GroupConfig, StreamGroup};
use sluice_engine::stream::id::StreamId;

const GROUP_SIZES: [usize; 2] = [10, 100];
const STABLE_GROUP_MEMBERS: usize = 100;
const SESSION_TIMEOUT_MS: u64 = 45_000;
const REBALANCE_TIMEOUT_MS: u64 = 300_000;
/// Entries per XREADGROUP, XACK and XAUTOCLAIM.
const ENTRIES_PER_STEP: usize = 100;
const PENDING_BEFORE_CLAIMS: usize = 1000;
const CLAIM_MIN_IDLE_MS: u64 = 30_000;

fn join_request(subscription: &Bytes) -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        group_instance_id: None,
        client_id: "consumer".to_string(),
        client_host: "/10.0.0.1".to_string(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        protocol_type: "consumer".to_string(),
        protocols: vec![
            ("range".to_string(), subscription.clone()),
            ("cooperative-sticky".to_string(), subscription.clone()),
        ],
        require_known_member_id: false,
    }
}

/// A group of `members` formed and stable; returns it with the member ids (leader first).
fn form_group(members: usize, subscription: &Bytes) -> (Group, Vec<String>) {
    let limits = GroupLimits::default();
    let mut group = Group::new("bench-group", limits.clone());
    for ticket in 0..members as u64 {
        assert!(group.join(join_request(subscription), ticket, 0).is_none(), "parked until the delay ends");
    }
    let now_ms = limits.initial_rebalance_delay_ms;
    group.tick(now_ms);
    let mut member_ids = Vec::with_capacity(members);
    let mut assignments = Vec::with_capacity(members);
    for reply in group.take_replies() {
        let Reply::Join(_, response) = reply else { panic!("only joins are answered") };
        if response.leader == response.member_id {
            member_ids.insert(0, response.member_id.clone());
        } else {
            member_ids.push(response.member_id.clone());
        }
        assignments.push((response.member_id, Bytes::from_static(b"assignment")));
    }
    let generation = group.generation_id();
    let ticket = members as u64;
    for follower in &member_ids[1..] {
        assert!(group.sync(follower, None, generation, None, None, Vec::new(), ticket, now_ms).is_none());
    }
    assert!(group.sync(&member_ids[0], None, generation, None, None, assignments, ticket, now_ms).is_none());
    assert_eq!(group.take_replies().len(), members, "every sync answered");
    for member_id in &member_ids {
        group.heartbeat(member_id, None, generation, now_ms).expect("heartbeat of a stable member");
    }
    (group, member_ids)
}

fn kafka_group(c: &mut Criterion) {
    let subscription = Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders\xff\xff\xff\xff");
    let mut group = c.benchmark_group("kafka_group");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for members in GROUP_SIZES {
        group.throughput(Throughput::Elements(members as u64));
        group.bench_with_input(BenchmarkId::new("join_sync_heartbeat", members), &members, |bencher, &members| {
            bencher.iter(|| {
                let (formed, _) = form_group(members, &subscription);
                assert_eq!(formed.state(), GroupState::Stable);
                formed
            })
        });
    }

    let (mut stable, member_ids) = form_group(STABLE_GROUP_MEMBERS, &subscription);
    let generation = stable.generation_id();
    let mut next = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("heartbeat", |bencher| {
        bencher.iter(|| {
            next = (next + 1) % member_ids.len();
            stable.heartbeat(black_box(&member_ids[next]), None, generation, 10_000).expect("heartbeat")
        })
    });
    group.finish();
}

fn group_name() -> Bytes {
    Bytes::from_static(b"workers")
}

fn stream_groups() -> BTreeMap<Bytes, StreamGroup> {
    let group = StreamGroup::new(StreamId::MIN, 0, GroupConfig::default());
    BTreeMap::from([(group_name(), group)])
}

/// Entry ids `first..first + count` at offsets of the same numbers.
fn delivered(consumer: &Bytes, first: u64, count: usize, at_ms: u64) -> Event {
    let entries: Vec<(StreamId, i64)> =
        (first..first + count as u64).map(|offset| (StreamId::new(1_700_000_000_000, offset), offset as i64)).collect();
    let advance = entries.last().map(|(id, offset)| (*id, offset + 1));
    Event::Delivered { name: group_name(), consumer: consumer.clone(), at_ms, entries, advance, noack: false }
}

fn stream_group(c: &mut Criterion) {
    let worker = Bytes::from_static(b"worker-1");
    let mut group = c.benchmark_group("stream_group");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    group.throughput(Throughput::Elements(ENTRIES_PER_STEP as u64));

    let mut groups = stream_groups();
    let mut next_offset = 0;
    group.bench_function("deliver_ack_100", |bencher| {
        bencher.iter(|| {
            let delivery = delivered(&worker, next_offset, ENTRIES_PER_STEP, next_offset);
            let Event::Delivered { entries, .. } = &delivery else { unreachable!("built as a delivery") };
            let ids = entries.iter().map(|(id, _)| *id).collect();
            apply(&mut groups, &delivery);
            apply(&mut groups, &Event::Acked { name: group_name(), ids });
            next_offset += ENTRIES_PER_STEP as u64;
        })
    });
    assert!(groups[&group_name()].pending.is_empty(), "every delivery acknowledged");

    let mut groups = stream_groups();
    apply(&mut groups, &delivered(&worker, 0, PENDING_BEFORE_CLAIMS, 0));
    let consumers = [worker, Bytes::from_static(b"worker-2")];
    let mut now_ms = 0;
    group.bench_function("claim_100", |bencher| {
        bencher.iter(|| {
            now_ms += CLAIM_MIN_IDLE_MS;
            let state = &groups[&group_name()];
            let ids = state.idle_pending(StreamId::MIN, CLAIM_MIN_IDLE_MS, now_ms, ENTRIES_PER_STEP);
            assert_eq!(ids.len(), ENTRIES_PER_STEP);
            let consumer = consumers[(now_ms / CLAIM_MIN_IDLE_MS % 2) as usize].clone();
            let claim = Event::Claimed {
                name: group_name(),
                consumer,
                at_ms: now_ms,
                delivered_ms: now_ms,
                ids,
                deliveries: Deliveries::Increment,
            };
            apply(&mut groups, &claim);
        })
    });
    assert_eq!(groups[&group_name()].pending.len(), PENDING_BEFORE_CLAIMS, "claims move entries, never drop them");
    group.finish();
}

criterion_group!(benches, kafka_group, stream_group);
criterion_main!(benches);
