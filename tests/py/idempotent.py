"""An idempotent producer (enable.idempotence=true, librdkafka): the broker hands out a
producer id (InitProducerId), checks sequences per partition, and every message lands exactly
once and in order; a second producer gets a different id."""

from confluent_kafka import Consumer, Producer

from common import (REQUEST_TIMEOUT_S, argument_parser, create_topic, expect, expect_equal, log, run_main, unique_name,
                    consume_until)

PARTITIONS = 3
MESSAGES = 900


def produce(bootstrap, topic, tag):
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 2, "max.in.flight.requests.per.connection": 5})
    reports = []
    for index in range(MESSAGES):
        producer.produce(topic, value=f"{tag}-{index}".encode(), partition=index % PARTITIONS,
                         on_delivery=lambda error, message: reports.append((error, message.partition(), message.offset())))
        if index % 100 == 0:
            producer.poll(0)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "messages left after flush")
    errors = [error for error, _, _ in reports if error is not None]
    expect(not errors, f"delivery errors: {errors[:3]}")
    expect_equal(len(reports), MESSAGES, "delivery reports")


def main():
    args = argument_parser(__doc__).parse_args()
    topic = unique_name("idempotent")
    create_topic(args.bootstrap, topic, PARTITIONS)
    produce(args.bootstrap, topic, "first")
    produce(args.bootstrap, topic, "second")
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": unique_name("idem"), "enable.auto.commit": False})
    per_partition = 2 * MESSAGES // PARTITIONS
    starts = {partition: 0 for partition in range(PARTITIONS)}
    ends = {partition: per_partition for partition in range(PARTITIONS)}
    by_partition = consume_until(consumer, topic, starts, ends)
    consumer.close()
    messages = [message for partition in sorted(by_partition) for message in by_partition[partition]]
    values = [message.value().decode() for message in messages]
    expect_equal(len(values), len(set(values)), "no message written twice")
    expect_equal(len(values), 2 * MESSAGES, "every message written once")
    for partition in range(PARTITIONS):
        mine = [m.value().decode() for m in messages if m.partition() == partition]
        expected = [f"{tag}-{i}" for tag in ("first", "second") for i in range(partition, MESSAGES, PARTITIONS)]
        expect_equal(mine, expected, f"order in partition {partition}")
    log("ok: idempotent producers")


if __name__ == "__main__":
    run_main(main)
