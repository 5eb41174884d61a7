//! Story: a team runs job queues on Redis stream groups, pointed at sluice. Workers compete
//! and each job is delivered once; a crashed worker's jobs come back (XCLAIM, XAUTOCLAIM, or by
//! themselves with VISIBILITY); a poison job lands in a dead-letter stream after MAXDELIVERIES;
//! and after kill -9 every pending entry, owner, delivery count, the group's position and the
//! entries XDEL deleted are exactly as acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, Broker};

fn run(broker: &Broker, args: &[&str]) -> String {
    let resp = broker.resp_addr();
    let mut all = vec!["--resp", resp.as_str()];
    all.extend_from_slice(args);
    broker.python("resp_groups.py", &all)
}

#[test]
fn competing_workers_get_each_job_once() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    run(&broker, &["queue"]);
}

#[test]
fn pending_entries_are_redelivered_and_claimed_as_in_redis() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    run(&broker, &["redelivery"]);
}

#[test]
fn poison_jobs_go_to_the_dead_letter_stream_and_silent_workers_lose_their_jobs() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    run(&broker, &["dead-letter"]);
}

#[test]
fn groups_skip_deleted_entries_and_claims_drop_them() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    run(&broker, &["deletion"]);
}

#[test]
fn group_state_survives_kill_9() {
    require_python!();
    survives_kill_9(&mut Broker::builder().shards(2).start());
}

/// The same with group logs compacted every 4 KiB (the smallest threshold: a snapshot of the
/// groups, then the log before it deleted), so the state comes back from a snapshot.
#[test]
fn group_state_survives_kill_9_from_a_compacted_log() {
    require_python!();
    let mut broker = Broker::builder().shards(2).args(["--offsets-compaction-bytes", "4096"]).start();
    let group_log = broker.data_dir().join("topics").join("orders:queue").join("stream-groups");
    survives_kill_9(&mut broker);
    assert!(
        group_log.join("log-start-offset").exists(),
        "the group log was never compacted (no log-start-offset in {})",
        group_log.display()
    );
}

fn survives_kill_9(broker: &mut Broker) {
    let state = broker.data_dir().parent().unwrap().join("group-state.json");
    let state = state.to_str().unwrap().to_string();
    run(broker, &["prepare", "--stream", "orders:queue", "--state", &state]);
    broker.restart();
    run(broker, &["verify", "--stream", "orders:queue", "--state", &state]);
    // And once more, now that the state was replayed and appended to again.
    broker.restart();
    run(broker, &["verify", "--stream", "orders:queue", "--state", &state]);
}
