//! Story: a consumer far behind catches up. What the broker's memory cache no longer holds is
//! sent from the segment files with sendfile; confluent-kafka (checking CRCs) and kafka-python
//! read it back identical, from the start and from the middle, on a two-shard broker (so
//! through the mesh too), and `/metrics` shows bytes went out with sendfile. After a restart
//! the same reads are checked through the page cache first, then go out with sendfile too.

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

    broker.restart();
    let stdout = broker.python("catch_up.py", &["--topic", &topic, "--skip-produce"]);
    assert!(stdout.contains("ok: catch-up reads identical"), "after the restart: {stdout}");
    // Nothing is in memory after a restart: everything read went by sendfile once checked.
    let sent = sendfile_bytes(&broker);
    assert!(sent > (24 << 20) as f64, "sent with sendfile after the restart: {sent} bytes");
}

fn sendfile_bytes(broker: &Broker) -> f64 {
    let address = broker.http_addr().parse().unwrap();
    let response = sluice_tests::http_get(&address, "/metrics", raw::IO_TIMEOUT).expect("a /metrics response");
    let samples = check::parse(&response.body).unwrap();
    check::value_of(&samples, "sluice_fetch_sendfile_bytes_total", &[]).unwrap()
}
