"""Consumer group figures for README, against a running broker (release build):
- rebalance: 3 confluent-kafka consumers subscribe to a 12-partition topic; time from the
  first subscribe until the 12 partitions are assigned with none held twice;
- commits: synchronous OffsetCommits per second from one consumer (each is fdatasynced), and
  asynchronous commits per second (pipelined, group-committed).
Usage: groups_bench.py --bootstrap HOST:PORT
"""
import argparse
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

WAIT_S = 60


def consumer(bootstrap, group):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})


def rebalance(bootstrap, topic):
    group = f"bench-{uuid.uuid4().hex[:8]}"
    members = [consumer(bootstrap, group) for _ in range(3)]
    started = time.monotonic()
    for member in members:
        member.subscribe([topic])
    while time.monotonic() - started < WAIT_S:
        for member in members:
            member.poll(0.01)
        held = [{tp.partition for tp in member.assignment()} for member in members]
        if sum(map(len, held)) == 12 and len(set().union(*held)) == 12 and all(held):
            elapsed = time.monotonic() - started
            break
    else:
        raise SystemExit("rebalance did not complete")
    for member in members:
        member.close()
    return elapsed


def commits(bootstrap, topic, count, asynchronous):
    member = consumer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    for index in range(count):
        member.commit(offsets=[TopicPartition(topic, index % 12, index)], asynchronous=asynchronous)
        if asynchronous and index % 1000 == 0:
            member.poll(0)
    if asynchronous:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            committed = member.committed([TopicPartition(topic, (count - 1) % 12)], timeout=10)
            if committed[0].offset == count - 1:
                break
            member.poll(0.01)
    elapsed = time.monotonic() - started
    member.close()
    return count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    topic = f"bench-groups-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 12, 1)]).values():
        future.result()
    rebalances = [rebalance(args.bootstrap, topic) for _ in range(3)]
    sync_rate = commits(args.bootstrap, topic, 2000, asynchronous=False)
    async_rate = commits(args.bootstrap, topic, 20000, asynchronous=True)
    print(f"| rebalance, 3 consumers x 12 partitions (s) | {' / '.join(f'{r:.2f}' for r in rebalances)} |")
    print(f"| synchronous commits per second | {sync_rate:,.0f} |")
    print(f"| asynchronous commits per second | {async_rate:,.0f} |")


if __name__ == "__main__":
    main()
