"""Consumer groups with kafka-python: two KafkaConsumers with one group_id split a topic's
partitions, consume every message exactly once with synchronous commits, and a consumer
started later in the same group resumes after the committed offsets."""

import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from common import argument_parser, expect, expect_equal, log, run_main, unique_name

PARTITIONS = 4
MESSAGES = 400
WAIT_S = 60


def consumer(bootstrap, group):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=1000,
                         consumer_timeout_ms=200)


def main():
    args = argument_parser(__doc__).parse_args()
    topic, group = unique_name("kp-groups"), unique_name("kp-group")
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    for index in range(MESSAGES):
        producer.send(topic, value=f"m-{index}".encode(), partition=index % PARTITIONS)
    producer.flush(30)
    producer.close()

    first, second = consumer(args.bootstrap, group), consumer(args.bootstrap, group)
    first.subscribe([topic])
    second.subscribe([topic])
    seen = {}
    deadline = time.monotonic() + WAIT_S
    def both_assigned():
        return all(member.assignment() for member in (first, second))

    # Poll until every message is consumed and the group has settled with both members.
    while (len(seen) < MESSAGES or not both_assigned()) and time.monotonic() < deadline:
        for member in (first, second):
            for partition, records in member.poll(timeout_ms=100).items():
                for record in records:
                    key = (record.partition, record.offset)
                    expect(key not in seen, f"consumed twice: {key}")
                    seen[key] = record.value
                member.commit()
    held = [{tp.partition for tp in member.assignment()} for member in (first, second)]
    expect(held[0].isdisjoint(held[1]), f"a partition held twice: {held}")
    expect_equal(held[0] | held[1], set(range(PARTITIONS)), "partitions covered")
    expect(held[0] and held[1], f"both members got partitions: {held}")
    expect_equal(len(seen), MESSAGES, "messages consumed by the group")
    first.close()
    second.close()

    later = consumer(args.bootstrap, group)
    later.subscribe([topic])
    leftovers = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for records in later.poll(timeout_ms=200).values():
            leftovers.extend(records)
    later.close()
    expect_equal(leftovers, [], "a later member of the group resumes after the commits (nothing left)")
    log(f"ok: kafka-python group split {sorted(held[0])} / {sorted(held[1])}, {len(seen)} messages")


if __name__ == "__main__":
    run_main(main)
