"""Crash torture for the RESP front door: a writer XADDs and a worker XREADGROUPs and XACKs
without pause, each recording what the broker acknowledged, while the test kills the broker.

Modes:
- `work --stream S --dir D`: XADD forever (acknowledged IDs to D/added), and in a second
  thread read with the group `g` and XACK (acknowledged acks to D/acked), until the broker dies.
- `check --stream S --dir D`: every acknowledged XADD is in the stream, once, with its fields;
  no acknowledged XACK is pending again; every entry up to the group's last delivered ID is
  either acknowledged or pending (none lost from the group). Prints the counts.
"""

import os
import threading
import time

import redis

from common import argument_parser, expect, expect_equal, log, run_main

SOCKET_TIMEOUT_S = 10
READ_COUNT = 20
BLOCK_MS = 100


def client(address):
    host, port = address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=SOCKET_TIMEOUT_S)


def parse(entry_id):
    return tuple(int(part) for part in entry_id.split("-"))


def work(args):
    r = client(args.resp)
    try:
        r.xgroup_create(args.stream, "g", id="0", mkstream=True)
    except redis.ResponseError as error:
        expect("BUSYGROUP" in str(error), f"XGROUP CREATE: {error}")

    def add():
        writer = client(args.resp)
        index = int(time.time() * 1000)
        with open(os.path.join(args.dir, "added"), "a") as added:
            while True:
                entry_id = writer.xadd(args.stream, {"n": str(index)}).decode()
                added.write(f"{entry_id} {index}\n")
                added.flush()
                index += 1

    def consume():
        worker = client(args.resp)
        with open(os.path.join(args.dir, "acked"), "a") as acked:
            while True:
                got = worker.xreadgroup("g", "worker", {args.stream: ">"}, count=READ_COUNT, block=BLOCK_MS)
                for entry_id, _ in (got[0][1] if got else []):
                    if worker.xack(args.stream, "g", entry_id) == 1:
                        acked.write(entry_id.decode() + "\n")
                        acked.flush()

    threads = [threading.Thread(target=add, daemon=True), threading.Thread(target=consume, daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # ends when the broker dies: the threads' errors end the process


def check(args):
    r = client(args.resp)
    added = {}
    with open(os.path.join(args.dir, "added")) as file:
        for line in file:
            if line.strip():
                entry_id, index = line.split()
                added[entry_id] = index
    with open(os.path.join(args.dir, "acked")) as file:
        acked = {line.strip() for line in file if line.strip()}
    entries = []
    cursor = "-"
    while True:
        page = r.xrange(args.stream, min=cursor, count=10_000)
        entries.extend(page)
        if len(page) < 10_000:
            break
        cursor = "(" + page[-1][0].decode()
    stored = {}
    for entry_id, fields in entries:
        key = entry_id.decode()
        expect(key not in stored, f"entry {key} stored twice")
        stored[key] = fields[b"n"].decode()
    for entry_id, index in added.items():
        expect(entry_id in stored, f"acknowledged XADD {entry_id} is missing")
        expect_equal(stored[entry_id], index, f"fields of {entry_id}")
    pending = {line["message_id"].decode() for line in r.xpending_range(args.stream, "g", "-", "+", 1_000_000)}
    back = acked & pending
    expect(not back, f"acknowledged XACKs are pending again: {sorted(back)[:5]}")
    last = r.xinfo_groups(args.stream)[0]["last-delivered-id"].decode()
    delivered = {entry_id for entry_id in stored if parse(entry_id) <= parse(last)}
    lost = delivered - acked - pending
    # An entry whose XACK was applied but not acknowledged (the crash hit the reply) is fine:
    # it is gone from the pending list and was never reported acked. Those can only be the
    # few in flight at each crash.
    expect(len(lost) <= READ_COUNT * args.rounds, f"{len(lost)} delivered entries neither acked nor pending")
    print(f"added={len(added)} stored={len(stored)} acked={len(acked)} pending={len(pending)} "
          f"unreported_acks={len(lost)}")
    log("ok: check")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--resp", required=True)
    parser.add_argument("mode", choices=["work", "check"])
    parser.add_argument("--stream", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    {"work": work, "check": check}[args.mode](args)


if __name__ == "__main__":
    run_main(main)
