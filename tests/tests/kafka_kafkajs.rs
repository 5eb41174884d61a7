//! Story: a Node.js service uses KafkaJS, a Kafka client written from the protocol guide in
//! JavaScript (neither librdkafka nor the Java client): its admin client makes and changes
//! topics, its idempotent producer's records come back whole to its group consumers, two of
//! which share a topic across rebalances without reading a record twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_js_clients, Broker};

#[test]
fn kafkajs_admin_producer_and_consumer_round_trip() {
    require_js_clients!();
    let broker = Broker::builder().shards(2).arg("--group-initial-rebalance-delay-ms=0").start();

    broker.node("kafkajs_roundtrip.js", &["--bootstrap", &broker.bootstrap()]);
}

#[test]
fn kafkajs_group_members_share_a_topic_across_rebalances() {
    require_js_clients!();
    let broker = Broker::builder().shards(2).arg("--group-initial-rebalance-delay-ms=0").start();

    broker.node("kafkajs_groups.js", &["--bootstrap", &broker.bootstrap()]);
}
