//! Story: an operator manages topics with a stock Kafka admin client (confluent-kafka's
//! AdminClient): creates topics with partition counts and retention settings, sees them in the
//! cluster metadata, reads their configs back, changes them (IncrementalAlterConfigs and
//! AlterConfigs, applied to the partitions at once), is refused a duplicate, and deletes one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, Broker};

#[test]
fn operator_creates_describes_and_deletes_topics() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let stdout = broker.python("admin_topics.py", &[]);

    assert!(
        stdout.contains("ok: created 3 topics, checked metadata and configs, altered configs, deleted 1"),
        "admin_topics.py did not report success: {stdout}"
    );
}
