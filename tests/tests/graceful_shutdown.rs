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
