//! Story: an operator stops the broker with SIGTERM (systemd stop, a rolling deploy). It exits
//! promptly and cleanly, and after it starts again every acknowledged record is there and
//! producers append right after them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_tests::ack_log::AckLog;
use sluice_tests::{require_python, Broker};

const PARTITIONS: u32 = 3;
const PRODUCE_DURATION: Duration = Duration::from_secs(2);
const APPENDED_AFTER_RESTART: u64 = 200;

#[test]
fn sigterm_stops_cleanly_and_keeps_every_acknowledged_record() {
    require_python!();
    let mut broker = Broker::builder().shards(2).start();
    let mut ack_log = AckLog::new("shutdown");
    let produced =
        ack_log.start_producing(&broker, "before-stop", PARTITIONS, PRODUCE_DURATION).finish(&broker, PRODUCE_DURATION);
    assert!(produced.acked > 0, "nothing was acknowledged: {produced:?}");
    assert_eq!(produced.failed, 0, "deliveries failed on a healthy broker");
    let before = ack_log.verify(&broker);

    let status = broker.terminate();
    assert!(status.success(), "SIGTERM should end the broker with exit status 0, got {status}");

    broker.start();
    let after = ack_log.verify(&broker);
    assert_eq!(after.high_watermarks, before.high_watermarks, "high watermarks after a clean restart");
    ack_log.append_and_check_offsets_follow(&broker, "after-restart", APPENDED_AFTER_RESTART);
    ack_log.verify(&broker);
}

/// Fresh two-shard brokers, each started, given an XADD and stopped. Before glommio's mesh
/// builder was patched (its shared peer list was an `Rc` that every shard thread dropped a
/// clone of as it joined the mesh), about one stop in 50 ended in a segfault after "sluice
/// stopped cleanly": the racing count updates had corrupted the heap. This test failed 2 of 3
/// runs then (at stops 41 and 57).
const STOP_CYCLES: u32 = 100;

#[test]
fn every_stop_soon_after_a_start_exits_zero() {
    for cycle in 1..=STOP_CYCLES {
        let mut broker = Broker::builder().shards(2).start();
        let mut resp = sluice_tests::resp::connect(&broker.resp_addr());
        let id = sluice_tests::resp::command(&mut resp, &["XADD", "cycles", "*", "cycle", &cycle.to_string()]);
        assert!(id.contains('-'), "XADD answered {id}");
        drop(resp);
        let status = broker.terminate();
        assert!(status.success(), "stop {cycle} of {STOP_CYCLES}: exit status {status}, expected 0");
    }
}
