//! Story: a topic keeps only what its retention allows. Old whole segments are deleted in the
//! background when the partition grows past retention.bytes; DeleteRecords moves the start of
//! the log on demand, and that survives a kill -9. What is kept reads back intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, unique_topic, Broker};

#[test]
fn retention_deletes_old_segments_and_delete_records_moves_the_start() {
    require_python!();
    let mut broker = Broker::builder().shards(2).arg("--retention-check-interval-ms").arg("200").start();
    let topic = unique_topic("retained");
    let data_dir = broker.data_dir().display().to_string();
    broker.python("retention.py", &["size", "--topic", &topic, "--data-dir", &data_dir]);

    let deleted = unique_topic("deleted");
    broker.python("retention.py", &["size", "--topic", &deleted, "--data-dir", &data_dir]);
    // Past the retention cut (about 5000 of 8000 records are gone), then move further.
    broker.python("retention.py", &["delete-records", "--topic", &deleted, "--offset", "7000"]);
    broker.restart();
    broker.python("retention.py", &["check-low", "--topic", &deleted, "--offset", "7000"]);
}
