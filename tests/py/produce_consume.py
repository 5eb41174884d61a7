"""Produce and consume with confluent-kafka across every acks setting and compression codec.

For each (acks, compression): produce keyed messages with headers and values of varied sizes
(random and compressible, plus an empty and a null value) to a 3-partition topic, then read
everything back from the beginning and check each message is byte-identical, per-partition
order equals produce order, offsets are contiguous from 0, and the watermarks match the counts.
"""

import itertools
import time

from confluent_kafka import OFFSET_BEGINNING, Producer

from common import (REQUEST_TIMEOUT_S, argument_parser, consume_until, create_topic, expect,
                    expect_contiguous, expect_equal, log, new_consumer, random_value, run_main,
                    unique_name, watermarks)

PARTITIONS = 3
ACKS = ["0", "1", "all"]
COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]
VALUE_SIZES_BYTES = [1, 17, 256, 1000, 4096, 20_000, 100_000]
FLUSH_TIMEOUT_S = 60


def make_messages(count):
    """[(partition, key, value, headers)], each key distinct."""
    messages = []
    for index in range(count):
        if index == 0:
            value = None  # a null value (tombstone) must stay null
        elif index == 1:
            value = b""  # and an empty value must stay empty, not null
        else:
            value = random_value(index, VALUE_SIZES_BYTES[index % len(VALUE_SIZES_BYTES)])
        key = f"key-{index:05d}".encode()
        headers = [("index", str(index).encode()), ("kind", b"test")]
        messages.append((index % PARTITIONS, key, value, headers))
    return messages


def produce(bootstrap, topic, acks, compression, messages):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "compression.type": compression,
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
    })
    reports = []

    def on_delivery(error, message):
        reports.append((error, message.partition(), message.offset(), message.key()))

    for partition, key, value, headers in messages:
        producer.produce(topic, key=key, value=value, partition=partition, headers=headers,
                         on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    expect_equal(remaining, 0, f"messages still queued after {FLUSH_TIMEOUT_S}s flush")
    expect_equal(len(reports), len(messages), "delivery reports")
    errors = [(key, error) for error, _, _, key in reports if error is not None]
    expect(not errors, f"delivery errors (acks={acks}, {compression}): {errors[:5]}")
    if acks != "0":
        check_reported_offsets(reports, messages)


def check_reported_offsets(reports, messages):
    """With acks, each partition's reports carry offsets 0..n-1 in produce order."""
    for partition in range(PARTITIONS):
        produced_keys = [key for p, key, _, _ in messages if p == partition]
        reported = sorted((offset, key) for _, p, offset, key in reports if p == partition)
        expect_equal([offset for offset, _ in reported], list(range(len(produced_keys))),
                     f"acknowledged offsets of partition {partition}")
        expect_equal([key for _, key in reported], produced_keys,
                     f"keys by acknowledged offset, partition {partition}")


def consume_and_compare(bootstrap, topic, messages):
    expected = {p: [m for m in messages if m[0] == p] for p in range(PARTITIONS)}
    consumer = new_consumer(bootstrap)
    try:
        # With acks=0 the flush returns before the broker has appended; wait for the high
        # watermarks to reach the produced counts first.
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            marks = watermarks(consumer, topic, PARTITIONS)
            if all(marks[p][1] >= len(expected[p]) for p in range(PARTITIONS)):
                break
            expect(time.monotonic() < deadline,
                   f"high watermarks {marks} never reached produced counts "
                   f"{ {p: len(m) for p, m in expected.items()} }")
            time.sleep(0.1)
        for partition in range(PARTITIONS):
            expect_equal(marks[partition], (0, len(expected[partition])),
                         f"(low, high) watermarks of partition {partition}")
        consumed = consume_until(consumer, topic,
                                 {p: OFFSET_BEGINNING for p in range(PARTITIONS)},
                                 {p: len(expected[p]) for p in range(PARTITIONS)})
    finally:
        consumer.close()
    for partition in range(PARTITIONS):
        got = consumed[partition]
        want = expected[partition]
        expect_contiguous(got, 0, f"partition {partition}")
        expect_equal(len(got), len(want), f"message count of partition {partition}")
        for message, (_, key, value, headers) in zip(got, want):
            where = f"partition {partition} offset {message.offset()}"
            expect_equal(message.key(), key, f"key at {where}")
            expect(message.value() == value,
                   f"value at {where} differs: expected {describe(value)}, "
                   f"got {describe(message.value())}")
            expect_equal(message.headers(), headers, f"headers at {where}")


def describe(value):
    if value is None:
        return "null"
    return f"{len(value)} bytes starting {value[:16]!r}"


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--messages", type=int, default=120, help="messages per combination")
    args = parser.parse_args()
    for acks, compression in itertools.product(ACKS, COMPRESSIONS):
        topic = unique_name(f"pc-acks{acks}-{compression}")
        create_topic(args.bootstrap, topic, PARTITIONS)
        messages = make_messages(args.messages)
        produce(args.bootstrap, topic, acks, compression, messages)
        consume_and_compare(args.bootstrap, topic, messages)
        log(f"acks={acks} compression={compression}: {len(messages)} messages round-tripped")
    print(f"ok: {len(ACKS) * len(COMPRESSIONS)} combinations x {args.messages} messages")


if __name__ == "__main__":
    run_main(main)
