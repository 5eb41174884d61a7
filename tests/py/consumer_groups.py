"""Consumer groups with confluent-kafka (librdkafka): the user stories of Kafka's groups.

Modes (the Rust test orchestrates broker restarts between them):
- `share`: two consumers subscribe with one group.id: the topic's partitions are split with
  none held twice, every message is consumed exactly once between them; when one closes, the
  other takes all partitions. Offsets are committed synchronously as they go.
- `fanout`: a second group reads everything from the earliest offset on its own.
- `commit --group G`: consume half the topic in group G, commit, close.
- `resume --group G`: a new consumer in group G starts exactly after the last commit.
- `admin --group G`: list, describe and fetch offsets of G with AdminClient, then delete it.
- `emptied --group G`: G has no members (after a restart, say) and is still listed and
  described as an Empty consumer group, not a simple one (its protocol type was kept).
- `crash`: a second member is killed (os._exit: no LeaveGroup); after its session timeout the
  survivor holds every partition.
"""

import os
import subprocess
import sys

import time

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer,
                             TopicPartition)

from common import (CONSUME_TIMEOUT_S, REQUEST_TIMEOUT_S, admin_client, argument_parser, ensure_topic, expect,
                    expect_equal, log, new_consumer, run_main)

PARTITIONS = 6
MESSAGES = 600
REBALANCE_WAIT_S = 30


def produce_all(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
    for index in range(MESSAGES):
        producer.produce(topic, key=f"key-{index}".encode(), value=f"message-{index}".encode(),
                         partition=index % PARTITIONS)
    expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "messages left unsent")


def group_consumer(bootstrap, group, assignor="range", **extra):
    return new_consumer(bootstrap, **{"group.id": group, "partition.assignment.strategy": assignor,
                                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **extra})


# A synchronous commit racing a rebalance fails with one of these, in Kafka too (a member
# still on the old generation): the message was read but not committed, so the partition's
# next owner may read it again. Only such messages may be seen twice.
REBALANCE_COMMIT_ERRORS = {KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                           KafkaError.UNKNOWN_MEMBER_ID}
uncommitted = set()


def poll_round(consumer, seen, timeout_s=0.2):
    """Poll once; record (partition, offset) -> value; commit what was read."""
    message = consumer.poll(timeout_s)
    if message is None or message.error():
        return
    key = (message.partition(), message.offset())
    expect(key not in seen or key in uncommitted, f"message at partition {key[0]} offset {key[1]} consumed twice")
    seen[key] = message.value()
    try:
        consumer.commit(message=message, asynchronous=False)
    except KafkaException as error:
        if error.args[0].code() not in REBALANCE_COMMIT_ERRORS:
            raise
        log(f"commit of partition {key[0]} offset {key[1]} lost to a rebalance: {error.args[0].name()}")
        uncommitted.add(key)


def wait_for_assignment(consumers, expected_total, seen):
    deadline = time.monotonic() + REBALANCE_WAIT_S
    while time.monotonic() < deadline:
        for consumer in consumers:
            poll_round(consumer, seen, 0.05)
        assignments = [{tp.partition for tp in consumer.assignment()} for consumer in consumers]
        if sum(len(assignment) for assignment in assignments) == expected_total and all(assignments):
            return assignments
    raise AssertionError(f"assignments never covered {expected_total} partitions: "
                         f"{[consumer.assignment() for consumer in consumers]}")


def share(bootstrap, topic, group, assignor):
    first = group_consumer(bootstrap, group, assignor)
    second = group_consumer(bootstrap, group, assignor)
    first.subscribe([topic])
    second.subscribe([topic])
    seen = {}
    assignments = wait_for_assignment([first, second], PARTITIONS, seen)
    expect(assignments[0].isdisjoint(assignments[1]), f"a partition held twice: {assignments}")
    expect_equal(assignments[0] | assignments[1], set(range(PARTITIONS)), "partitions covered")
    log(f"{assignor}: split {sorted(assignments[0])} / {sorted(assignments[1])}")
    admin = admin_client(bootstrap)  # held: a collected client cancels its futures
    described = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group].result()
    expect_equal(len(described.members), 2, "members described")
    for member in described.members:
        expect(member.client_id and member.host.endswith("127.0.0.1"), f"member client id and host: {member}")
        expect(member.assignment is not None and member.assignment.topic_partitions, f"member assignment: {member}")
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(seen) < MESSAGES // 2 and time.monotonic() < deadline:
        poll_round(first, seen)
        poll_round(second, seen)
    first.close()  # leaves the group: its partitions move to `second`
    deadline = time.monotonic() + REBALANCE_WAIT_S
    while time.monotonic() < deadline and len({tp.partition for tp in second.assignment()}) < PARTITIONS:
        poll_round(second, seen)
    expect_equal({tp.partition for tp in second.assignment()}, set(range(PARTITIONS)),
                 "after the first consumer left, the second holds every partition")
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(seen) < MESSAGES and time.monotonic() < deadline:
        poll_round(second, seen)
    second.close()
    expect_equal(len(seen), MESSAGES, "messages consumed by the group, each once")
    for (partition, offset), value in seen.items():
        expect_equal(value, f"message-{offset * PARTITIONS + partition}".encode(),
                     f"value at partition {partition} offset {offset}")


def consume_count(consumer, count):
    got = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            got.append(message)
    expect_equal(len(got), count, "messages consumed")
    return got


def fanout(bootstrap, topic, group):
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    got = consume_count(consumer, MESSAGES)
    consumer.close()
    expect_equal(len({(m.partition(), m.offset()) for m in got}), MESSAGES, "distinct messages in the fan-out group")


def commit(bootstrap, topic, group):
    consumer = group_consumer(bootstrap, group, **{"enable.auto.commit": False})
    consumer.subscribe([topic])
    got = consume_count(consumer, MESSAGES // 2)
    last = {}
    for message in got:
        last[message.partition()] = max(last.get(message.partition(), -1), message.offset())
    # Commit a point inside each partition read (25 before its end), so resuming must start
    # exactly there and not at the end of what was read or at the log's end.
    offsets = [TopicPartition(topic, partition, max(offset + 1 - 25, 0)) for partition, offset in last.items()]
    committed = consumer.commit(offsets=offsets, asynchronous=False)
    expect(all(tp.error is None for tp in committed), f"commit errors: {committed}")
    consumer.close()
    print(" ".join(f"{tp.partition}:{tp.offset}" for tp in offsets))


def resume(bootstrap, topic, group, expected):
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    wanted = {int(p): int(o) for p, o in (item.split(":") for item in expected.split())}
    remaining = sum(MESSAGES // PARTITIONS - wanted.get(p, 0) for p in range(PARTITIONS))
    got = consume_count(consumer, remaining)
    first = {}
    for message in got:
        first.setdefault(message.partition(), message.offset())
    per_partition = MESSAGES // PARTITIONS
    for partition in range(PARTITIONS):
        start = wanted.get(partition, 0)
        expected_first = start if start < per_partition else None  # None: nothing left to read
        expect_equal(first.get(partition), expected_first, f"first offset after resuming on partition {partition}")
    consumer.close()


def admin(bootstrap, topic, group):
    client = admin_client(bootstrap)
    listed = client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result()
    expect(group in {g.group_id for g in listed.valid}, f"group {group} listed: {[g.group_id for g in listed.valid]}")
    described = client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group].result()
    expect_equal(described.group_id, group, "described group id")
    request = [ConsumerGroupTopicPartitions(group)]
    offsets = client.list_consumer_group_offsets(request)[group].result()
    committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == topic}
    expect(committed and all(offset > 0 for offset in committed.values()), f"committed offsets listed: {committed}")
    client.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group].result()
    listed = client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result()
    expect(group not in {g.group_id for g in listed.valid}, "deleted group still listed")


def emptied(bootstrap, group):
    client = admin_client(bootstrap)
    listed = client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result()
    listing = next((g for g in listed.valid if g.group_id == group), None)
    expect(listing is not None, f"group {group} listed: {[g.group_id for g in listed.valid]}")
    expect_equal(listing.state, ConsumerGroupState.EMPTY, "listed state")
    expect_equal(listing.is_simple_consumer_group, False, "listed as a simple group (protocol type lost)")
    described = client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group].result()
    expect_equal(described.state, ConsumerGroupState.EMPTY, "described state")
    expect_equal(described.is_simple_consumer_group, False, "described as a simple group (protocol type lost)")
    expect_equal(len(described.members), 0, "members")


def member_then_die(bootstrap, topic, group):
    """Join the group, hold some partitions, then die without leaving."""
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    deadline = time.monotonic() + REBALANCE_WAIT_S
    while time.monotonic() < deadline and not consumer.assignment():
        consumer.poll(0.1)
    print(f"held {sorted(tp.partition for tp in consumer.assignment())}", flush=True)
    os._exit(0)


def crash(bootstrap, topic, group):
    survivor = group_consumer(bootstrap, group)
    survivor.subscribe([topic])
    seen = {}
    wait_for_assignment([survivor], PARTITIONS, seen)
    doomed = subprocess.Popen([sys.executable, "-u", __file__, "--bootstrap", bootstrap, "member-then-die", "--topic",
                               topic, "--group", group], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The survivor keeps polling through the rebalance the newcomer causes, so it can rejoin.
    deadline = time.monotonic() + REBALANCE_WAIT_S + 10
    while doomed.poll() is None and time.monotonic() < deadline:
        poll_round(survivor, seen, 0.1)
    if doomed.poll() is None:
        doomed.kill()
    stdout, stderr = doomed.communicate(timeout=10)
    log(f"the doomed member said: {stdout.strip()} {stderr.strip()[-200:]}")
    expect("held [" in stdout and "held []" not in stdout, "the second member got partitions before dying")
    died_at = time.monotonic()
    deadline = died_at + REBALANCE_WAIT_S
    while time.monotonic() < deadline:
        poll_round(survivor, seen, 0.1)
        if len(survivor.assignment()) == PARTITIONS:
            break
    expect_equal(len(survivor.assignment()), PARTITIONS, "partitions held by the survivor after the session timeout")
    log(f"survivor took every partition back {time.monotonic() - died_at:.1f}s after the crash")
    survivor.close()


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("mode", choices=["share", "fanout", "commit", "resume", "admin", "emptied", "crash",
                                                 "member-then-die"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--expected", default="", help="resume: partition:offset pairs printed by commit")
    args = parser.parse_args()
    ensure_topic(args.bootstrap, args.topic, PARTITIONS)
    if args.mode == "share":
        produce_all(args.bootstrap, args.topic)
        share(args.bootstrap, args.topic, args.group, args.assignor)
    elif args.mode == "fanout":
        fanout(args.bootstrap, args.topic, args.group)
    elif args.mode == "commit":
        commit(args.bootstrap, args.topic, args.group)
    elif args.mode == "resume":
        resume(args.bootstrap, args.topic, args.group, args.expected)
    elif args.mode == "crash":
        crash(args.bootstrap, args.topic, args.group)
    elif args.mode == "emptied":
        emptied(args.bootstrap, args.group)
    elif args.mode == "member-then-die":
        member_then_die(args.bootstrap, args.topic, args.group)
    else:
        admin(args.bootstrap, args.topic, args.group)
    log(f"ok: {args.mode}")


if __name__ == "__main__":
    run_main(main)
