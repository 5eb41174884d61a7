//! Story: a consumer far behind catches up. What the broker's memory cache no longer holds is
//! sent from the segment files with sendfile; confluent-kafka (checking CRCs) and kafka-python
//! read it back identical, from the start and from the middle, on a two-shard broker (so
//! through the mesh too), and `/metrics` shows bytes went out with sendfile. After a restart
//! the same reads are checked through the page cache first, then go out with sendfile too.
//! With `--catch-up-read-bytes-per-sec-max` set, a catch-up read while a producer writes takes
//! as long as the rate says, and `/metrics` counts the time it was held back; with nothing
//! being written, the same read is not held back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, unique_topic, Broker};

#[test]
fn catch_up_reads_from_segment_files_come_back_identical() {
    require_python!();

    let mut broker = Broker::builder().shards(2).args(["--catch-up-read-bytes-per-sec-max", "0"]).start();
    let topic = unique_topic("catch-up");

    let stdout = broker.python("catch_up.py", &["--topic", &topic]);
    assert!(stdout.contains("ok: catch-up reads identical"), "catch_up.py did not report success: {stdout}");
    // Each partition holds about 12 MiB, its newest 8 MiB in memory; four reads from offset 0
    // and four from the middle.
    let sent = sendfile_bytes(&broker);
    assert!(sent > (8 << 20) as f64, "sent with sendfile: {sent} bytes");
    assert_eq!(broker.metric("sluice_catch_up_read_throttled_seconds_total"), 0.0, "no limit, nothing held back");

    broker.restart();
    let stdout = broker.python("catch_up.py", &["--topic", &topic, "--skip-produce"]);
    assert!(stdout.contains("ok: catch-up reads identical"), "after the restart: {stdout}");
    // Nothing is in memory after a restart: everything read went by sendfile once checked.
    let sent = sendfile_bytes(&broker);
    assert!(sent > (24 << 20) as f64, "sent with sendfile after the restart: {sent} bytes");
}

/// 8 MiB/s for the broker: 4 MiB/s for each of its two shards.
const CATCH_UP_RATE_BYTES_PER_SEC: u64 = 8 << 20;

#[test]
fn catch_up_reads_are_held_to_the_configured_rate_while_producers_write() {
    require_python!();

    let broker = Broker::builder()
        .shards(2)
        .args(["--catch-up-read-bytes-per-sec-max", &CATCH_UP_RATE_BYTES_PER_SEC.to_string()])
        .start();
    let topic = unique_topic("catch-up-rate");
    let stdout = broker.python("catch_up.py", &["--topic", &topic]);
    assert!(stdout.contains("ok: catch-up reads identical"), "catch_up.py did not report success: {stdout}");
    // Reads that start right after the produce are held while its last flushes are recent.
    let after_produce = broker.metric("sluice_catch_up_read_throttled_seconds_total");
    std::thread::sleep(NOTHING_WRITTEN_FOR);

    // Nothing written for over a second: the same read from offset 0 is not held back.
    let sent_before = sendfile_bytes(&broker);
    let stdout = broker.python("catch_up.py", &["--topic", &topic, "--skip-produce", "--from-start-only"]);
    assert!(stdout.contains("ok: catch-up reads identical"), "alone: {stdout}");
    // Each partition's oldest 4 MiB or so are no longer in memory: at least 4 MiB from files
    // on a shard held to 4 MiB/s (less its 10 ms burst), whichever shards own the partitions.
    let sent = sendfile_bytes(&broker) - sent_before;
    assert!(sent > (6 << 20) as f64, "sent with sendfile: {sent} bytes");
    let throttled = broker.metric("sluice_catch_up_read_throttled_seconds_total") - after_produce;
    assert_eq!(throttled, 0.0, "held back {throttled} s with nothing being written");

    // The same read while a producer writes: held to the rate.
    let stdout =
        broker.python("catch_up.py", &["--topic", &topic, "--skip-produce", "--from-start-only", "--while-producing"]);
    assert!(stdout.contains("ok: catch-up reads identical"), "while producing: {stdout}");
    let read_s: f64 = stdout.split("read_s=").nth(1).and_then(|rest| rest.trim().parse().ok()).expect("read_s=");
    assert!(read_s > 0.9, "the catch-up read took {read_s} s, faster than the rate allows");
    let throttled = broker.metric("sluice_catch_up_read_throttled_seconds_total") - after_produce;
    assert!(throttled > 0.5, "held back {throttled} s");
    eprintln!("catch-up read of {sent} bytes from files at most {CATCH_UP_RATE_BYTES_PER_SEC} B/s while producing: {read_s} s, held back {throttled} s");
}

/// Longer than the broker holds the cap after the last flush (`CATCH_UP_READ_CAP_AFTER_FLUSH_MS`).
const NOTHING_WRITTEN_FOR: std::time::Duration =
    std::time::Duration::from_millis(sluice_server::catch_up_rate::CATCH_UP_READ_CAP_AFTER_FLUSH_MS + 500);

fn sendfile_bytes(broker: &Broker) -> f64 {
    broker.metric("sluice_fetch_sendfile_bytes_total")
}
