//! Story: a consumer far behind catches up. What the broker's memory cache no longer holds is
//! sent from the segment files with sendfile; confluent-kafka (checking CRCs) and kafka-python
//! read it back identical, from the start and from the middle, on a two-shard broker (so
//! through the mesh too), and `/metrics` shows bytes went out with sendfile. After a restart
//! the same reads are checked through the page cache first, then go out with sendfile too.
//! With `--catch-up-read-bytes-per-sec-max` set, the same catch-up read takes as long as the
//! rate says, and `/metrics` counts the time it was held back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_server::metrics::check;
use sluice_tests::{raw, require_python, unique_topic, Broker};

#[test]
fn catch_up_reads_from_segment_files_come_back_identical() {
    require_python!();

    let mut broker = Broker::builder().shards(2).start();
    let topic = unique_topic("catch-up");

    let stdout = broker.python("catch_up.py", &["--topic", &topic]);
    assert!(stdout.contains("ok: catch-up reads identical"), "catch_up.py did not report success: {stdout}");
    // Each partition holds about 12 MiB, its newest 8 MiB in memory; four reads from offset 0
    // and four from the middle.
    let sent = sendfile_bytes(&broker);
    assert!(sent > (8 << 20) as f64, "sent with sendfile: {sent} bytes");
    assert_eq!(metric(&broker, "sluice_catch_up_read_throttled_seconds_total"), 0.0, "no limit, nothing held back");

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
fn catch_up_reads_are_held_to_the_configured_rate() {
    require_python!();

    let broker = Broker::builder()
        .shards(2)
        .args(["--catch-up-read-bytes-per-sec-max", &CATCH_UP_RATE_BYTES_PER_SEC.to_string()])
        .start();
    let topic = unique_topic("catch-up-rate");
    let stdout = broker.python("catch_up.py", &["--topic", &topic, "--from-start-only"]);
    assert!(stdout.contains("ok: catch-up reads identical"), "catch_up.py did not report success: {stdout}");
    let read_s: f64 = stdout.split("read_s=").nth(1).and_then(|rest| rest.trim().parse().ok()).expect("read_s=");
    // Each partition's oldest 4 MiB or so are no longer in memory: at least 4 MiB from files
    // on a shard held to 4 MiB/s (less its 10 ms burst), whichever shards own the partitions.
    let sent = sendfile_bytes(&broker);
    assert!(sent > (6 << 20) as f64, "sent with sendfile: {sent} bytes");
    assert!(read_s > 0.9, "the catch-up read took {read_s} s, faster than the rate allows");
    let throttled = metric(&broker, "sluice_catch_up_read_throttled_seconds_total");
    assert!(throttled > 0.5, "held back {throttled} s");
    eprintln!("catch-up read of {sent} bytes from files at most {CATCH_UP_RATE_BYTES_PER_SEC} B/s: {read_s} s, held back {throttled} s");
}

fn sendfile_bytes(broker: &Broker) -> f64 {
    metric(broker, "sluice_fetch_sendfile_bytes_total")
}

fn metric(broker: &Broker, name: &str) -> f64 {
    let address = broker.http_addr().parse().unwrap();
    let response = sluice_tests::http_get(&address, "/metrics", raw::IO_TIMEOUT).expect("a /metrics response");
    let samples = check::parse(&response.body).unwrap();
    check::value_of(&samples, name, &[]).unwrap()
}
