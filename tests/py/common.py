"""Helpers shared by the end-to-end test scripts.

Every script is a CLI taking --bootstrap; it exits 0 only if every check passed, and otherwise
prints "FAIL: <what was expected and what was seen>" and exits 1. Every wait is bounded.
"""

import argparse
import os
import sys
import time
import traceback
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Bounds on every wait, in seconds.
REQUEST_TIMEOUT_S = 30
METADATA_WAIT_S = 30
CONSUME_TIMEOUT_S = 60
POLL_INTERVAL_S = 0.1


class CheckFailed(Exception):
    """A check on the broker's behaviour did not hold."""


def expect(condition, message):
    """Fail the script with `message` unless `condition` holds (unlike `assert`, never skipped)."""
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual, expected, what):
    expect(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def log(message):
    print(message, file=sys.stderr, flush=True)


def argument_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap address host:port")
    return parser


def run_main(main):
    """Run `main()` and turn a failed check or any error into a clear message and exit 1."""
    try:
        main()
    except CheckFailed as failure:
        print(f"FAIL: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - any error is a failed test; show everything
        traceback.print_exc()
        print("FAIL: unexpected error (traceback above)", file=sys.stderr, flush=True)
        sys.exit(1)


def unique_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def random_value(index, size_bytes):
    """A value of `size_bytes`: random bytes for even indexes, compressible text for odd ones."""
    if index % 2 == 0:
        return os.urandom(size_bytes)
    pattern = f"value-{index}-".encode()
    return (pattern * (size_bytes // len(pattern) + 1))[:size_bytes]


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, topic, partitions, config=None):
    """Create `topic` and wait until metadata shows every partition with a leader."""
    admin = admin_client(bootstrap)
    new_topic = NewTopic(topic, num_partitions=partitions, replication_factor=1,
                         config=config or {})
    futures = admin.create_topics([new_topic], operation_timeout=REQUEST_TIMEOUT_S,
                                  request_timeout=REQUEST_TIMEOUT_S)
    futures[topic].result(timeout=REQUEST_TIMEOUT_S)
    wait_for_topic(admin, topic, partitions)
    return admin


def ensure_topic(bootstrap, topic, partitions):
    """Create `topic` unless it exists already (with any partition count)."""
    admin = admin_client(bootstrap)
    metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return
    try:
        create_topic(bootstrap, topic, partitions)
    except Exception as error:  # noqa: BLE001 - tolerate only "already exists"
        kafka_error = error.args[0] if error.args else None
        if not (isinstance(kafka_error, KafkaError)
                and kafka_error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise


def wait_for_topic(admin, topic, partitions):
    deadline = time.monotonic() + METADATA_WAIT_S
    seen = None
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
        seen = metadata.topics.get(topic)
        if (seen is not None and seen.error is None and len(seen.partitions) == partitions
                and all(p.leader >= 0 for p in seen.partitions.values())):
            return seen
        time.sleep(POLL_INTERVAL_S)
    raise CheckFailed(f"topic {topic} did not appear with {partitions} partitions with leaders "
                      f"within {METADATA_WAIT_S}s; last metadata: {describe_topic(seen)}")


def describe_topic(topic_metadata):
    if topic_metadata is None:
        return "absent"
    partitions = {p.id: f"leader={p.leader} error={p.error}"
                  for p in topic_metadata.partitions.values()}
    return f"error={topic_metadata.error} partitions={partitions}"


def new_consumer(bootstrap, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("sluice-tests"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "check.crcs": True,
    }
    config.update(extra)
    return Consumer(config)


def watermarks(consumer, topic, partitions):
    """{partition: (low, high)} asked from the broker, not from a cache."""
    return {
        partition: consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                  timeout=REQUEST_TIMEOUT_S, cached=False)
        for partition in range(partitions)
    }


def consume_until(consumer, topic, start_offsets, end_offsets, timeout_s=CONSUME_TIMEOUT_S):
    """Consume each partition from start_offsets[p] (an offset or a logical OFFSET_*) until the
    next offset reaches end_offsets[p]. With start_offsets None, keep the current assignment
    and positions. Returns {partition: [Message, ...]} in consumed order.
    """
    if start_offsets is not None:
        consumer.assign([TopicPartition(topic, partition, offset)
                         for partition, offset in start_offsets.items()])
    consumed = {partition: [] for partition in end_offsets}
    next_offsets = {partition: -1 for partition in end_offsets}

    def done():
        return all(next_offsets[p] >= end for p, end in end_offsets.items())

    deadline = time.monotonic() + timeout_s
    while not done():
        expect(time.monotonic() < deadline,
               f"consuming {topic} timed out after {timeout_s}s: next offsets {next_offsets}, "
               f"wanted {end_offsets}; consumed counts "
               f"{ {p: len(m) for p, m in consumed.items()} }")
        message = consumer.poll(POLL_INTERVAL_S)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            expect(error.code() == KafkaError._PARTITION_EOF, f"consume error: {error}")
            continue
        expect_equal(message.topic(), topic, "topic of consumed message")
        partition = message.partition()
        expect(partition in consumed, f"message from unassigned partition {partition}")
        consumed[partition].append(message)
        next_offsets[partition] = message.offset() + 1
    return consumed


def expect_contiguous(messages, first_offset, what):
    """Offsets of `messages` are first_offset, first_offset+1, ... with no gap or repeat."""
    offsets = [message.offset() for message in messages]
    expected = list(range(first_offset, first_offset + len(offsets)))
    if offsets != expected:
        first_bad = next(i for i, (a, b) in enumerate(zip(offsets, expected)) if a != b)
        raise CheckFailed(f"{what}: offsets not contiguous from {first_offset}: at position "
                          f"{first_bad} got {offsets[first_bad]}, expected {expected[first_bad]} "
                          f"(offsets around it: {offsets[max(0, first_bad - 3):first_bad + 3]})")
