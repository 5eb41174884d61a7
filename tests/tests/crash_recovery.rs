//! Story: the broker process is killed with SIGKILL (an OOM kill, a `kill -9`, a crashed
//! container) while a producer is writing with acks=all. After each restart, every record the
//! broker had acknowledged is still there at its offset with its value, across three crashes,
//! and producers carry on appending right after the recovered end of each partition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::Duration;

use sluice_tests::ack_log::AckLog;
use sluice_tests::{require_python, wait_until, Broker};

const CRASH_ROUNDS: usize = 3;
const PARTITIONS: u32 = 3;
/// How long each round's producer writes; the crash happens early in it, so the producer also
/// writes through the restart.
const PRODUCE_DURATION: Duration = Duration::from_secs(6);
/// Acknowledged records to wait for before the crash, so it lands mid-stream.
const ACKED_BEFORE_CRASH_MIN: u64 = 300;
const ACKED_WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Extra delay before each round's crash, so the crashes hit different points of the stream.
const CRASH_DELAYS: [Duration; CRASH_ROUNDS] =
    [Duration::from_millis(0), Duration::from_millis(170), Duration::from_millis(430)];
const APPENDED_AFTER_RECOVERY: u64 = 300;

#[test]
fn acknowledged_records_survive_kill_9_while_producing() {
    require_python!();
    let mut broker = Broker::builder().shards(2).start();
    let mut ack_log = AckLog::new("crash");

    for (round, crash_delay) in CRASH_DELAYS.iter().enumerate() {
        let run = format!("round{}", round + 1);
        let mut producer = ack_log.start_producing(&broker, &run, PARTITIONS, PRODUCE_DURATION);
        let acked_enough = wait_until(ACKED_WAIT_TIMEOUT, || producer.acked_so_far() >= ACKED_BEFORE_CRASH_MIN);
        assert!(
            acked_enough,
            "{run}: only {} records acknowledged within {ACKED_WAIT_TIMEOUT:?}",
            producer.acked_so_far()
        );
        thread::sleep(*crash_delay);
        assert!(producer.is_running(), "{run}: the producer finished before the crash; the crash must hit mid-stream");
        let acked_before_crash = producer.acked_so_far();

        broker.restart();
        let produced = producer.finish(&broker, PRODUCE_DURATION);
        eprintln!("{run}: {acked_before_crash} acked before the crash; {produced:?}");
        assert!(produced.acked >= acked_before_crash);

        let verified = ack_log.verify(&broker);
        eprintln!("{run}: verified {verified:?}");
    }

    // The recovered log takes new appends right at its end, on every partition.
    let before = ack_log.verify(&broker);
    ack_log.append_and_check_offsets_follow(&broker, "after-recovery", APPENDED_AFTER_RECOVERY);
    let after = ack_log.verify(&broker);
    assert_eq!(after.records, before.records + APPENDED_AFTER_RECOVERY, "records after appending to the recovered log");
    assert_eq!(after.high_watermarks.len(), PARTITIONS as usize);

    // A crash of an idle broker loses nothing either.
    broker.restart();
    let after_idle_crash = ack_log.verify(&broker);
    assert_eq!(
        after_idle_crash.high_watermarks, after.high_watermarks,
        "high watermarks after crashing an idle broker"
    );
}
