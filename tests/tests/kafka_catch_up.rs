//! Story: a consumer far behind catches up. What the broker's memory cache no longer holds is
//! sent from the segment files with sendfile; confluent-kafka (checking CRCs) and kafka-python
//! read it back identical, from the start and from the middle, on a two-shard broker (so
//! through the mesh too), and `/metrics` shows bytes went out with sendfile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_server::metrics::check;
use sluice_tests::{raw, require_python, Broker};

#[test]
fn catch_up_reads_from_segment_files_come_back_identical() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let stdout = broker.python("catch_up.py", &[]);
    assert!(stdout.contains("ok: catch-up reads identical"), "catch_up.py did not report success: {stdout}");

    let address = broker.http_addr().parse().unwrap();
    let response = sluice_tests::http_get(&address, "/metrics", raw::IO_TIMEOUT).expect("a /metrics response");
    let samples = check::parse(&response.body).unwrap();
    let sendfile_bytes = check::value_of(&samples, "sluice_fetch_sendfile_bytes_total", &[]).unwrap();
    // Each partition holds about 12 MiB, its newest 8 MiB in memory; four reads from offset 0
    // and four from the middle.
    assert!(sendfile_bytes > (8 << 20) as f64, "sent with sendfile: {sendfile_bytes} bytes");
}
