//! Story: applications written against three different Kafka clients (librdkafka through
//! confluent-kafka, pure-Python kafka-python, and the kcat command line) produce to Sluice and
//! read back exactly what they wrote, in order, whatever acks and compression they use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Duration;

use sluice_tests::{require_kcat, require_python, unique_topic, Broker};

#[test]
fn confluent_kafka_round_trips_every_acks_and_compression() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let messages_per_combination = 250;

    let stdout = broker.python_with_timeout(
        "produce_consume.py",
        &["--messages", &messages_per_combination.to_string()],
        Duration::from_secs(300),
    );

    // 3 acks settings x 5 codecs.
    assert!(
        stdout.contains(&format!("ok: 15 combinations x {messages_per_combination} messages")),
        "produce_consume.py did not report success: {stdout}"
    );
}

#[test]
fn kafka_python_round_trips_with_detected_api_versions() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let stdout = broker.python("kafka_python_roundtrip.py", &[]);

    assert!(
        stdout.contains("ok: kafka-python round trip, 2 codecs x 150 messages"),
        "kafka_python_roundtrip.py did not report success: {stdout}"
    );
}

#[test]
fn kcat_reads_back_exactly_the_keyed_lines_it_wrote() {
    require_python!();
    require_kcat!();
    let broker = Broker::builder().shards(2).start();
    let topic = unique_topic("kcat");
    broker.python("create_topic.py", &["--topic", &topic, "--partitions", "1"]);

    // Batch 1: a key per line (`key=value`), uncompressed.
    let mut keyed_lines = String::new();
    let mut expected = String::new();
    for index in 0..40 {
        writeln!(keyed_lines, "user-{index}=clicked item {}", index * 7).unwrap();
        writeln!(expected, "0:{index}:user-{index}=clicked item {}", index * 7).unwrap();
    }
    broker.kcat(&["-P", "-t", &topic, "-p", "0", "-K", "="], keyed_lines.as_bytes());
    // Batch 2: one fixed key for every line, snappy-compressed.
    let mut fixed_key_lines = String::new();
    for index in 0..10 {
        writeln!(fixed_key_lines, "heartbeat {index}").unwrap();
        writeln!(expected, "0:{}:sensor-9=heartbeat {index}", 40 + index).unwrap();
    }
    broker.kcat(&["-P", "-t", &topic, "-p", "0", "-k", "sensor-9", "-z", "snappy"], fixed_key_lines.as_bytes());

    let consumed = broker.kcat(&["-C", "-t", &topic, "-e", "-o", "beginning", "-f", "%p:%o:%k=%s\n"], b"");

    assert_eq!(consumed, expected, "kcat should read back every line, in order, at offsets 0..50");
}
