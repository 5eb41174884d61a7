"""Replay a partition from an offset, from the end, and from a point in time.

Produce messages with explicit timestamps t0 + i*1000 ms to a 1-partition topic, then:
- consume from an explicit offset: exactly the messages from there on, with their timestamps;
- look up offsets by timestamp (offsets_for_times): the first message with timestamp >= T,
  and -1 (no such message) for a time after the last one; exact to the message also when
  the messages went in one compressed batch (each codec);
- consume from OFFSET_END: nothing old, only messages produced after the assignment.
"""

import time

from confluent_kafka import OFFSET_END, TIMESTAMP_CREATE_TIME, Producer, TopicPartition

from common import (REQUEST_TIMEOUT_S, argument_parser, consume_until, create_topic, expect,
                    expect_contiguous, expect_equal, log, new_consumer, run_main, unique_name,
                    watermarks)

MESSAGES = 30
STEP_MS = 1000
REPLAY_FROM_OFFSET = 11
END_SETTLE_S = 2.0
LATE_MESSAGES = 5


COMPRESSIONS = ["gzip", "snappy", "lz4", "zstd"]
# Long enough for all MESSAGES to go in one batch, which the codec then compresses whole.
COMPRESSED_LINGER_MS = 200


def produce(bootstrap, topic, items, compression="none"):
    """items: [(value, timestamp_ms or None)]; returns acknowledged offsets in order."""
    linger_ms = 5 if compression == "none" else COMPRESSED_LINGER_MS
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                         "compression.type": compression})
    offsets = []

    def on_delivery(error, message):
        expect(error is None, f"delivery failed: {error}")
        offsets.append(message.offset())

    for value, timestamp_ms in items:
        extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        producer.produce(topic, value=value, partition=0, on_delivery=on_delivery, **extra)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "messages left after flush")
    return offsets


def replay_from_offset(bootstrap, topic, timestamps):
    consumer = new_consumer(bootstrap)
    try:
        consumed = consume_until(consumer, topic, {0: REPLAY_FROM_OFFSET}, {0: MESSAGES})[0]
    finally:
        consumer.close()
    expect_contiguous(consumed, REPLAY_FROM_OFFSET, f"replay from offset {REPLAY_FROM_OFFSET}")
    for message in consumed:
        offset = message.offset()
        expect_equal(message.value(), f"event-{offset}".encode(), f"value at offset {offset}")
        expect_equal(message.timestamp(), (TIMESTAMP_CREATE_TIME, timestamps[offset]),
                     f"timestamp at offset {offset}")


def offset_for_time(consumer, topic, timestamp_ms):
    [found] = consumer.offsets_for_times([TopicPartition(topic, 0, timestamp_ms)],
                                         timeout=REQUEST_TIMEOUT_S)
    expect(found.error is None, f"offsets_for_times({timestamp_ms}) error: {found.error}")
    return found.offset


def replay_from_time(bootstrap, topic, timestamps):
    consumer = new_consumer(bootstrap)
    try:
        cases = {
            "before the first message": (timestamps[0] - 60_000, 0),
            "exactly the first message": (timestamps[0], 0),
            "exactly message 7": (timestamps[7], 7),
            "between messages 19 and 20": (timestamps[19] + STEP_MS // 2, 20),
            "exactly the last message": (timestamps[-1], MESSAGES - 1),
            "after the last message": (timestamps[-1] + 1, -1),
        }
        for case, (timestamp_ms, expected_offset) in cases.items():
            expect_equal(offset_for_time(consumer, topic, timestamp_ms), expected_offset,
                         f"offset for timestamp {timestamp_ms} ({case})")
        # Consuming from the looked-up offset starts at the first message at or after T.
        target_ms = timestamps[19] + STEP_MS // 2
        start = offset_for_time(consumer, topic, target_ms)
        first = consume_until(consumer, topic, {0: start}, {0: start + 1})[0][0]
        expect(first.timestamp()[1] >= target_ms > timestamps[start - 1],
               f"message at looked-up offset {start} has timestamp {first.timestamp()[1]}, "
               f"previous {timestamps[start - 1]}, target {target_ms}")
    finally:
        consumer.close()


def replay_from_end(bootstrap, topic):
    consumer = new_consumer(bootstrap)
    try:
        high_before = watermarks(consumer, topic, 1)[0][1]
        expect_equal(high_before, MESSAGES, "high watermark before tailing")
        consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
        # Let the OFFSET_END lookup settle: nothing old may arrive meanwhile.
        settle_until = time.monotonic() + END_SETTLE_S
        while time.monotonic() < settle_until:
            message = consumer.poll(0.1)
            expect(message is None or message.error() is not None,
                   f"consumer at OFFSET_END received old message at offset "
                   f"{message.offset() if message else None}")
        late = [(f"late-{i}".encode(), None) for i in range(LATE_MESSAGES)]
        offsets = produce(bootstrap, topic, late)
        expect_equal(offsets, list(range(MESSAGES, MESSAGES + LATE_MESSAGES)),
                     "offsets of messages produced after the old ones")
        # Keep the assignment: assigning OFFSET_END again would skip the late messages.
        consumed = consume_until(consumer, topic, None, {0: MESSAGES + LATE_MESSAGES})[0]
    finally:
        consumer.close()
    expect_contiguous(consumed, MESSAGES, "tail from OFFSET_END")
    expect_equal([m.value() for m in consumed], [value for value, _ in late],
                 "values read from OFFSET_END")


def main():
    args = argument_parser(__doc__).parse_args()
    topic = unique_name("replay")
    create_topic(args.bootstrap, topic, 1)
    # An hour ago, whole seconds: clearly in the past, clear of any retention by time default.
    t0_ms = (int(time.time()) - 3600) * 1000
    timestamps = [t0_ms + i * STEP_MS for i in range(MESSAGES)]
    offsets = produce(args.bootstrap, topic,
                      [(f"event-{i}".encode(), ts) for i, ts in enumerate(timestamps)])
    expect_equal(offsets, list(range(MESSAGES)), "acknowledged offsets")

    replay_from_offset(args.bootstrap, topic, timestamps)
    log("replay from explicit offset ok")
    replay_from_time(args.bootstrap, topic, timestamps)
    log("offsets_for_times ok")
    for compression in COMPRESSIONS:
        compressed_topic = unique_name(f"replay-{compression}")
        create_topic(args.bootstrap, compressed_topic, 1)
        items = [(f"event-{i}".encode(), ts) for i, ts in enumerate(timestamps)]
        offsets = produce(args.bootstrap, compressed_topic, items, compression)
        expect_equal(offsets, list(range(MESSAGES)), f"acknowledged offsets ({compression})")
        replay_from_time(args.bootstrap, compressed_topic, timestamps)
        log(f"offsets_for_times in {compression} batches ok")
    replay_from_end(args.bootstrap, topic)
    log("replay from end ok")
    print("ok: replay from offset, time and end")


if __name__ == "__main__":
    run_main(main)
