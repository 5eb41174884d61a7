"""Round trip with kafka-python (the pure-Python client, API versions auto-detected).

Create a 3-partition topic with kafka-python's admin client, produce keyed messages with
headers using acks='all' (uncompressed, then gzip), check every send's metadata, then assign
all partitions, seek to the beginning and check every message comes back identical, in order,
at contiguous offsets, and that end_offsets matches the counts.
"""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from common import (CONSUME_TIMEOUT_S, REQUEST_TIMEOUT_S, argument_parser, expect,
                    expect_equal, log, random_value, run_main, unique_name)

PARTITIONS = 3
COMPRESSIONS = [None, "gzip"]
VALUE_SIZES_BYTES = [0, 5, 300, 3000, 30_000]


def create_topic(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                             request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


def produce(bootstrap, topic, compression, count):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             compression_type=compression, linger_ms=5,
                             request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    messages = []
    futures = []
    try:
        for index in range(count):
            partition = index % PARTITIONS
            key = f"kp-{index:04d}".encode()
            value = random_value(index, VALUE_SIZES_BYTES[index % len(VALUE_SIZES_BYTES)])
            headers = [("seq", str(index).encode())]
            messages.append((partition, key, value, headers))
            futures.append(producer.send(topic, key=key, value=value, partition=partition,
                                         headers=headers))
        producer.flush(timeout=REQUEST_TIMEOUT_S)
        next_offsets = [0] * PARTITIONS
        for (partition, key, _, _), future in zip(messages, futures):
            metadata = future.get(timeout=REQUEST_TIMEOUT_S)
            expect_equal((metadata.partition, metadata.offset),
                         (partition, next_offsets[partition]), f"send metadata of {key!r}")
            next_offsets[partition] += 1
    finally:
        producer.close(timeout=REQUEST_TIMEOUT_S)
    return messages


def consume(bootstrap, topic, expected_counts):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, check_crcs=True,
                             request_timeout_ms=REQUEST_TIMEOUT_S * 1000 + 1000)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        end_offsets = consumer.end_offsets(partitions)
        for tp in partitions:
            expect_equal(end_offsets[tp], expected_counts[tp.partition],
                         f"end offset of partition {tp.partition}")
        consumed = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while any(len(consumed[p]) < expected_counts[p] for p in range(PARTITIONS)):
            expect(time.monotonic() < deadline,
                   f"consume timed out: got { {p: len(m) for p, m in consumed.items()} }, "
                   f"wanted {expected_counts}")
            for tp, records in consumer.poll(timeout_ms=100).items():
                consumed[tp.partition].extend(records)
        return consumed
    finally:
        consumer.close()


def compare(messages, consumed):
    for partition in range(PARTITIONS):
        want = [m for m in messages if m[0] == partition]
        got = consumed[partition]
        expect_equal([r.offset for r in got], list(range(len(want))),
                     f"offsets of partition {partition}")
        for record, (_, key, value, headers) in zip(got, want):
            where = f"partition {partition} offset {record.offset}"
            expect_equal(record.key, key, f"key at {where}")
            expect(record.value == value, f"value at {where} differs: expected {len(value)} "
                                          f"bytes, got {len(record.value or b'')}")
            expect_equal(list(record.headers), headers, f"headers at {where}")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--messages", type=int, default=150)
    args = parser.parse_args()
    for compression in COMPRESSIONS:
        topic = unique_name(f"kp-{compression or 'none'}")
        create_topic(args.bootstrap, topic)
        messages = produce(args.bootstrap, topic, compression, args.messages)
        counts = {p: sum(1 for m in messages if m[0] == p) for p in range(PARTITIONS)}
        consumed = consume(args.bootstrap, topic, counts)
        compare(messages, consumed)
        log(f"kafka-python compression={compression}: {len(messages)} messages round-tripped")
    print(f"ok: kafka-python round trip, {len(COMPRESSIONS)} codecs x {args.messages} messages")


if __name__ == "__main__":
    run_main(main)
