"""A kafka-python consumer for the admin CLI test (tests/tests/admin_cli.rs): joins --group on
--topic, reads --expect records, commits the offsets given with --commit (partition=offset,...),
then writes --ready-file and stays in the group, heartbeating, until --stop-file appears. Then it
leaves the group and exits. Every wait is bounded."""

import os
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from common import argument_parser, expect, expect_equal, log, run_main

WAIT_S = 60
CLIENT_ID = "admin-cli-test"


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True, help="records to read before committing")
    parser.add_argument("--commit", required=True, help="partition=offset,... to commit")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--stop-file", required=True)
    args = parser.parse_args()
    commits = {int(p): int(o) for p, o in (pair.split("=") for pair in args.commit.split(","))}

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, client_id=CLIENT_ID,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=10000, heartbeat_interval_ms=1000)
    consumer.subscribe([args.topic])
    seen = 0
    deadline = time.monotonic() + WAIT_S
    while seen < args.expect and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            seen += len(records)
    expect_equal(seen, args.expect, "records read before committing")
    assigned = {tp.partition for tp in consumer.assignment()}
    expect(set(commits) <= assigned, f"commits {commits} for partitions outside the assignment {assigned}")
    consumer.commit({TopicPartition(args.topic, partition): OffsetAndMetadata(offset, "", -1)
                     for partition, offset in commits.items()})
    with open(args.ready_file, "w") as ready:
        ready.write(f"assigned {sorted(assigned)}\n")
    log(f"committed {commits}; waiting for {args.stop_file}")

    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(args.stop_file) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
    expect(os.path.exists(args.stop_file), f"no stop file within {WAIT_S} s")
    consumer.close()
    log("ok: left the group")


if __name__ == "__main__":
    run_main(main)
