"""Catch-up consumers read what the memory cache no longer holds.

Produce about 12 MiB to each of two partitions with acks=all (more than the broker's memory
cache of recent batches per partition: the start of each partition is read from its segment
file, with sendfile), then read both from the beginning with confluent-kafka (CRC checks on)
and with kafka-python, from offset 0 and from an offset in the middle of a batch run, and
check every message comes back identical, in order, at contiguous offsets; and once more with
kafka-python fetching less than one message per partition. With
--skip-produce it only reads an existing --topic (values are derived from the topic name and
index, so a run after a broker restart knows what to expect). With --from-start-only it reads
once, with confluent-kafka from offset 0, and prints how long that took (read_s=...); with
--while-producing, a producer writes small acks=all messages to another topic all through
that read (the broker caps catch-up reads only while producers write).
"""

import hashlib
import threading
import time

from confluent_kafka import Producer
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonPartition

from common import (CONSUME_TIMEOUT_S, REQUEST_TIMEOUT_S, argument_parser, consume_until,
                    create_topic, expect, expect_contiguous, expect_equal, log, new_consumer,
                    run_main, unique_name)

PARTITIONS = 2
MESSAGES_PER_PARTITION = 3_000
VALUE_BYTES = 4_000
MIDDLE_OFFSET = 1_234
WRITER_INTERVAL_S = 0.01
SMALL_FETCH_BYTES = 1_024


def value_of(topic, index):
    digest = hashlib.sha256(f"{topic}-{index}".encode()).digest()
    return (digest * (VALUE_BYTES // len(digest) + 1))[:VALUE_BYTES]


def expected_values(topic):
    expected = {partition: [] for partition in range(PARTITIONS)}
    for index in range(MESSAGES_PER_PARTITION * PARTITIONS):
        expected[index % PARTITIONS].append(value_of(topic, index))
    return expected


def produce(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "compression.type": "none"})
    failures = []
    for index in range(MESSAGES_PER_PARTITION * PARTITIONS):
        partition = index % PARTITIONS
        value = value_of(topic, index)
        while True:
            try:
                producer.produce(topic, value=value, key=str(index).encode(), partition=partition,
                                 on_delivery=lambda error, _: error and failures.append(error))
                break
            except BufferError:
                producer.poll(0.05)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "messages left unflushed")
    expect(not failures, f"produce failures: {failures[:3]}")


def produce_until(bootstrap, topic, stop):
    """Small acks=all messages to `topic`, one every WRITER_INTERVAL_S, until `stop` is set."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    failures = []
    while not stop.is_set():
        producer.produce(topic, value=b"writer", on_delivery=lambda error, _: error and failures.append(error))
        producer.poll(WRITER_INTERVAL_S)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "writer messages left unflushed")
    expect(not failures, f"writer failures: {failures[:3]}")


def check_confluent(bootstrap, topic, expected, start):
    consumer = new_consumer(bootstrap)
    try:
        ends = {partition: len(values) for partition, values in expected.items()}
        consumed = consume_until(consumer, topic, {p: start for p in expected}, ends)
    finally:
        consumer.close()
    for partition, messages in consumed.items():
        expect_contiguous(messages, start, f"confluent-kafka partition {partition} from {start}")
        expect([m.value() for m in messages] == expected[partition][start:],
               f"confluent-kafka partition {partition} from {start}: values differ")


def check_kafka_python(bootstrap, topic, expected, start, partition_fetch_bytes=1 << 20):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, check_crcs=True,
                             max_partition_fetch_bytes=partition_fetch_bytes,
                             request_timeout_ms=REQUEST_TIMEOUT_S * 1000 + 1000,
                             consumer_timeout_ms=CONSUME_TIMEOUT_S * 1000)
    try:
        partitions = [KafkaPythonPartition(topic, p) for p in expected]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, start)
        got = {p: [] for p in expected}
        wanted = sum(len(values) - start for values in expected.values())
        for message in consumer:
            got[message.partition].append((message.offset, message.value))
            wanted -= 1
            if wanted == 0:
                break
        expect_equal(wanted, 0, "kafka-python messages still missing")
    finally:
        consumer.close()
    for partition, messages in got.items():
        offsets = [offset for offset, _ in messages]
        expect_equal(offsets, list(range(start, len(expected[partition]))),
                     f"kafka-python partition {partition} offsets from {start}")
        expect([value for _, value in messages] == expected[partition][start:],
               f"kafka-python partition {partition} from {start}: values differ")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--topic", help="topic to use (default: a new one)")
    parser.add_argument("--skip-produce", action="store_true", help="only read an existing --topic")
    parser.add_argument("--from-start-only", action="store_true",
                        help="one read, confluent-kafka from offset 0, timed")
    parser.add_argument("--while-producing", action="store_true",
                        help="with --from-start-only: produce to another topic during the read")
    args = parser.parse_args()
    topic = args.topic or unique_name("catch-up")
    if not args.skip_produce:
        create_topic(args.bootstrap, topic, PARTITIONS)
        produce(args.bootstrap, topic)
        log(f"produced {MESSAGES_PER_PARTITION} x {VALUE_BYTES} B to each of {PARTITIONS} partitions")
    expected = expected_values(topic)
    if args.from_start_only:
        stop = threading.Event()
        writer = None
        if args.while_producing:
            writer_topic = unique_name("catch-up-writer")
            create_topic(args.bootstrap, writer_topic, 1)
            errors = []

            def write():
                try:
                    produce_until(args.bootstrap, writer_topic, stop)
                except Exception as error:  # reported below, in the main thread
                    errors.append(error)
            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(0.5)  # the writer's first flushes
        started = time.monotonic()
        try:
            check_confluent(args.bootstrap, topic, expected, 0)
        finally:
            stop.set()
            if writer is not None:
                writer.join()
        read_s = time.monotonic() - started
        if writer is not None:
            expect(not errors, f"writer: {errors}")
        print(f"ok: catch-up reads identical read_s={read_s:.3f}")
        return
    for start in (0, MIDDLE_OFFSET):
        check_confluent(args.bootstrap, topic, expected, start)
        check_kafka_python(args.bootstrap, topic, expected, start)
    # Fetches smaller than one message: each brings its first batch whole (KIP-74), so the
    # consumer still moves on.
    check_kafka_python(args.bootstrap, topic, expected, MIDDLE_OFFSET, partition_fetch_bytes=SMALL_FETCH_BYTES)
    print("ok: catch-up reads identical")


if __name__ == "__main__":
    run_main(main)
