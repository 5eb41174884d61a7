"""Retention and DeleteRecords, seen from a client.

- `size`: a topic with 1 MiB segments and retention.bytes = 3 MiB receives ~8 MiB; the
  broker's retention task deletes whole old segments: the low watermark rises, the segment
  files in the data dir go, and everything from the low watermark on reads back intact.
- `delete-records --offset N`: DeleteRecords moves the low watermark to N; reading from the
  beginning starts at N.
- `check-low --offset N`: the low watermark is N (after a broker restart).
"""

import glob
import os
import time

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from common import (REQUEST_TIMEOUT_S, argument_parser, consume_until, create_topic, expect, expect_equal, log,
                    new_consumer, run_main, watermarks)

RETENTION_WAIT_S = 30
VALUE_BYTES = 1024


def produce(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for index in range(count):
        producer.produce(topic, value=f"{index:08d}".encode().ljust(VALUE_BYTES, b"."), partition=0)
        if index % 500 == 0:
            producer.poll(0)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "messages left after flush")


def segment_files(data_dir, topic):
    return sorted(glob.glob(os.path.join(data_dir, "topics", topic, "0", "*.log")))


def check_readable_from_low(bootstrap, topic):
    consumer = new_consumer(bootstrap)
    low, high = watermarks(consumer, topic, 1)[0]
    if low == high:
        consumer.close()
        return low, high
    messages = consume_until(consumer, topic, {0: low}, {0: high})[0]
    consumer.close()
    expect_equal([m.offset() for m in messages], list(range(low, high)), "offsets from the low watermark")
    for message in messages:
        expect_equal(message.value()[:8], f"{message.offset():08d}".encode(), f"value at offset {message.offset()}")
    return low, high


def size_retention(bootstrap, topic, data_dir):
    create_topic(bootstrap, topic, 1, {"segment.bytes": "1048576", "retention.bytes": "3145728"})
    produce(bootstrap, topic, 8000)
    deadline = time.monotonic() + RETENTION_WAIT_S
    consumer = new_consumer(bootstrap)
    while time.monotonic() < deadline:
        low, _ = watermarks(consumer, topic, 1)[0]
        if low > 0 and len(segment_files(data_dir, topic)) <= 5:
            break
        time.sleep(0.2)
    consumer.close()
    files = segment_files(data_dir, topic)
    expect(low > 0, f"the low watermark never rose (segments: {len(files)})")
    expect(len(files) <= 5, f"{len(files)} segment files kept for retention.bytes = 3 MiB in 1 MiB segments")
    expect_equal(os.path.basename(files[0]), f"{low:020d}.log", "the oldest segment file starts at the low watermark")
    low, high = check_readable_from_low(bootstrap, topic)
    log(f"size retention: kept [{low}, {high}) in {len(files)} segments")


def delete_records(bootstrap, topic, offset):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(topic, 0, offset)], request_timeout=REQUEST_TIMEOUT_S)
    result = list(futures.values())[0].result(timeout=REQUEST_TIMEOUT_S)
    expect_equal(result.low_watermark, offset, "low watermark reported by DeleteRecords")
    check_low(bootstrap, topic, offset)


def check_low(bootstrap, topic, offset):
    low, _ = check_readable_from_low(bootstrap, topic)
    expect_equal(low, offset, "low watermark")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("mode", choices=["size", "delete-records", "check-low"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "size":
        size_retention(args.bootstrap, args.topic, args.data_dir)
    elif args.mode == "delete-records":
        delete_records(args.bootstrap, args.topic, args.offset)
    else:
        check_low(args.bootstrap, args.topic, args.offset)
    log(f"ok: {args.mode}")


if __name__ == "__main__":
    run_main(main)
