//! Story: a producer with enable.idempotence=true (librdkafka) gets a producer id from the
//! broker; everything it sends lands exactly once and in order per partition, and a second
//! producer gets its own id. (Retries of the same batch and sequence gaps are covered at the
//! partition level in engine/tests/partition_log.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, Broker};

#[test]
fn idempotent_producers_write_every_message_once_in_order() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    broker.python("idempotent.py", &[]);
}
