//! Story: a consumer replays history: from a remembered offset, from "now on" (the end of the
//! log), and from a point in time ("everything since 10:42"), using confluent-kafka's assign,
//! OFFSET_END and offsets_for_times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, Broker};

#[test]
fn consumer_replays_from_offset_end_and_timestamp() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let stdout = broker.python("replay.py", &[]);

    assert!(stdout.contains("ok: replay from offset, time and end"), "replay.py did not report success: {stdout}");
}
