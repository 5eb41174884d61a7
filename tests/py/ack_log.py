"""Durability helper for crash tests: what the broker acknowledged must survive a crash.

produce: send messages with acks=all for a bounded time (or count) at a bounded rate, and
    append every acknowledged record to --acked FILE as a JSON line {"partition", "offset",
    "value"}, flushed as soon as the acknowledgement arrives. Messages whose delivery failed
    (the broker was killed under them) are simply not recorded. Prints a JSON summary.
    With --check-offsets-follow, every message must be acknowledged and each partition's new
    offsets must start exactly at its high watermark from before and be contiguous.
verify: read every partition from the beginning to its high watermark and check that each
    record acknowledged in any --acked FILE is present at exactly its offset with an identical
    value, that no two acknowledged records claim the same offset, that offsets are contiguous,
    and that every stored value is an intact ack_log value. Prints a JSON summary.
"""

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Producer

from common import (REQUEST_TIMEOUT_S, CheckFailed, argument_parser, consume_until,
                    ensure_topic, expect, expect_contiguous, expect_equal, log, new_consumer,
                    run_main, watermarks)

MESSAGE_TIMEOUT_MS = 10_000
FLUSH_TIMEOUT_S = MESSAGE_TIMEOUT_MS / 1000 + 10
QUEUE_MESSAGES_MAX = 20_000
VERIFY_TIMEOUT_S = 120


def make_value(run, index, size_bytes):
    """`{run}-{index}|` repeated to size_bytes: any damaged byte is detectable."""
    unit = f"{run}-{index}|"
    expect(len(unit) <= size_bytes, f"--value-bytes {size_bytes} shorter than {unit!r}")
    return (unit * (size_bytes // len(unit) + 1))[:size_bytes]


def parse_value(value):
    """Check a stored value is an intact make_value() output; return (run, index)."""
    try:
        text = value.decode("ascii")
        run, index = text.split("|", 1)[0].rsplit("-", 1)
        intact = text == make_value(run, int(index), len(text))
    except (AttributeError, UnicodeDecodeError, ValueError, CheckFailed):
        intact = False
    expect(intact, f"stored value is not an intact ack_log value: {value[:60]!r}")
    return run, int(index)


def partition_count(bootstrap, topic):
    consumer = new_consumer(bootstrap)
    try:
        metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
        expect(topic in metadata.topics and metadata.topics[topic].error is None,
               f"topic {topic} not in metadata")
        return len(metadata.topics[topic].partitions)
    finally:
        consumer.close()


def current_high_watermarks(bootstrap, topic, partitions):
    consumer = new_consumer(bootstrap)
    try:
        return {p: high for p, (_, high) in watermarks(consumer, topic, partitions).items()}
    finally:
        consumer.close()


def produce(args):
    ensure_topic(args.bootstrap, args.topic, args.partitions)
    partitions = partition_count(args.bootstrap, args.topic)
    highs_before = (current_high_watermarks(args.bootstrap, args.topic, partitions)
                    if args.check_offsets_follow else None)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 2,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "queue.buffering.max.messages": QUEUE_MESSAGES_MAX,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "retry.backoff.ms": 100,
    })
    acked = []
    failures = []
    with open(args.acked, "a", encoding="utf-8") as acked_file:

        def on_delivery(error, message):
            if error is not None:
                failures.append(str(error))
                return
            record = {"partition": message.partition(), "offset": message.offset(),
                      "value": message.value().decode("ascii")}
            acked_file.write(json.dumps(record) + "\n")
            acked_file.flush()
            acked.append(record)

        produced = 0
        started = time.monotonic()
        deadline = started + args.duration_s
        while produced < args.count and time.monotonic() < deadline:
            if produced >= (time.monotonic() - started) * args.rate_per_s:
                producer.poll(0.005)  # ahead of the rate limit: serve acknowledgements instead
                continue
            value = make_value(args.run, produced, args.value_bytes)
            try:
                producer.produce(args.topic, value=value.encode("ascii"),
                                 partition=produced % partitions, on_delivery=on_delivery)
                produced += 1
            except BufferError:
                producer.poll(0.05)  # the local queue is full: wait for acknowledgements
            producer.poll(0)
        unflushed = producer.flush(FLUSH_TIMEOUT_S)

    summary = {"produced": produced, "acked": len(acked), "failed": len(failures),
               "unflushed": unflushed, "first_failures": failures[:3]}
    log(f"ack_log produce run={args.run}: {summary}")
    if args.check_offsets_follow:
        check_offsets_follow(acked, produced, summary, highs_before, partitions)
    print(json.dumps(summary))


def check_offsets_follow(acked, produced, summary, highs_before, partitions):
    expect(len(acked) == produced and produced > 0,
           f"every message should be acknowledged on a healthy broker: {summary}")
    for partition in range(partitions):
        offsets = sorted(r["offset"] for r in acked if r["partition"] == partition)
        start = highs_before[partition]
        expect_equal(offsets, list(range(start, start + len(offsets))),
                     f"new offsets of partition {partition} (high watermark before: {start})")


def load_acked(paths):
    """{(partition, offset): value} from every acked file; two values at one offset fail."""
    acked = {}
    for path in paths:
        with open(path, encoding="utf-8") as acked_file:
            for line_number, line in enumerate(acked_file, 1):
                if not line.endswith("\n"):
                    continue  # a line torn by killing the producer mid-write
                record = json.loads(line)
                position = (record["partition"], record["offset"])
                previous = acked.setdefault(position, record["value"])
                expect(previous == record["value"],
                       f"two acknowledged records at partition {position[0]} offset "
                       f"{position[1]}: {previous[:40]!r} and {record['value'][:40]!r} "
                       f"({path}:{line_number}); one of them was lost")
    return acked


def verify(args):
    acked = load_acked(args.acked)
    partitions = partition_count(args.bootstrap, args.topic)
    consumer = new_consumer(args.bootstrap)
    try:
        marks = watermarks(consumer, args.topic, partitions)
        consumed = consume_until(consumer, args.topic,
                                 {p: OFFSET_BEGINNING for p in range(partitions)},
                                 {p: high for p, (_, high) in marks.items()},
                                 timeout_s=VERIFY_TIMEOUT_S)
    finally:
        consumer.close()
    stored = {}
    for partition, messages in consumed.items():
        low = marks[partition][0]
        expect_equal(low, 0, f"low watermark of partition {partition} (nothing was deleted)")
        expect_contiguous(messages, low, f"partition {partition}")
        for message in messages:
            parse_value(message.value())
            stored[(partition, message.offset())] = message.value().decode("ascii")
    for (partition, offset), value in sorted(acked.items()):
        expect((partition, offset) in stored,
               f"acknowledged record lost: partition {partition} offset {offset} "
               f"(value {value[:40]!r}); high watermark is {marks[partition][1]}")
        if stored[(partition, offset)] != value:
            raise CheckFailed(f"acknowledged record changed at partition {partition} offset "
                              f"{offset}: acked {value[:40]!r}, stored "
                              f"{stored[(partition, offset)][:40]!r}")
    summary = {"records": len(stored), "acked_checked": len(acked),
               "high_watermarks": {str(p): high for p, (_, high) in marks.items()}}
    log(f"ack_log verify: {summary}")
    print(json.dumps(summary))


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("mode", choices=["produce", "verify"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--acked", required=True, action="append",
                        help="JSON-lines file of acknowledged records (repeatable for verify)")
    parser.add_argument("--run", default="run", help="run id written into every value")
    parser.add_argument("--partitions", type=int, default=3, help="if the topic is created")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--value-bytes", type=int, default=200)
    parser.add_argument("--rate-per-s", type=float, default=5000,
                        help="produce at most this many messages per second (bounds the volume "
                             "to verify)")
    parser.add_argument("--check-offsets-follow", action="store_true")
    args = parser.parse_args()
    if args.mode == "produce":
        expect_equal(len(args.acked), 1, "number of --acked files for produce")
        args.acked = args.acked[0]
        produce(args)
    else:
        verify(args)


if __name__ == "__main__":
    run_main(main)
