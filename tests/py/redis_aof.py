"""A Redis deployment's streams move into sluice the way Redis itself replays them: its AOF
rewrite fed to `redis-cli --pipe`.

A redis-server of our own (free port, temporary directory, killed at the end) gets streams
with deletions, trims, groups, pending entries and a consumer with none; BGREWRITEAOF writes
them as commands (XADD, XSETID ENTRIESADDED MAXDELETEDID, XGROUP CREATE ENTRIESREAD -1,
XCLAIM ... FORCE, XGROUP CREATECONSUMER). Replayed into sluice, every command must succeed and
each stream must look the same through XRANGE, XINFO STREAM, XINFO GROUPS, XINFO CONSUMERS and
XPENDING, and go on the same way (the next XREADGROUP, the next XADD).
"""

import glob
import os
import socket
import subprocess
import tempfile
import time

import redis

from common import argument_parser, expect, expect_equal, log, run_main

SOCKET_TIMEOUT_S = 10
START_TIMEOUT_S = 10
REWRITE_TIMEOUT_S = 20
# What XINFO STREAM shows that both must agree on (Redis's radix-tree figures are its own).
STREAM_FIELDS = ["length", "last-generated-id", "max-deleted-entry-id", "entries-added", "recorded-first-entry-id",
                 "groups", "first-entry", "last-entry"]


def client(host, port):
    return redis.Redis(host=host, port=port, socket_timeout=SOCKET_TIMEOUT_S)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(directory):
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                               "--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--save", ""],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = client("127.0.0.1", port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            r.ping()
            return server, r
        except redis.ConnectionError:
            expect(time.monotonic() < deadline and server.poll() is None, "redis-server did not start")
            time.sleep(0.05)


def fill(r):
    """Streams as a work queue leaves them: the AOF rewrite has to carry all of it."""
    for seq in range(1, 41):
        r.xadd("orders", {"n": str(seq), "customer": f"c-{seq % 7}", "note": "caf\u00e9 \u2615"}, id=f"1000-{seq}")
    r.xdel("orders", "1000-5", "1000-25", "1000-40")  # the last one: last ID kept past the newest left
    r.xtrim("orders", maxlen=30, approximate=False)
    r.xgroup_create("orders", "billing", id="0")
    r.xreadgroup("billing", "alice", {"orders": ">"}, count=8)
    r.xreadgroup("billing", "bob", {"orders": ">"}, count=4)
    r.xack("orders", "billing", "1000-12", "1000-13")
    r.xclaim("orders", "billing", "bob", 0, ["1000-14"])  # a second delivery
    r.xgroup_create("orders", "audit", id="$")
    r.xgroup_createconsumer("orders", "audit", "idle")
    r.xadd("emptied", {"x": "1"}, id="7-7")
    r.xtrim("emptied", maxlen=0, approximate=False)
    r.xgroup_create("fresh", "g", id="$", mkstream=True)


def rewritten_aof(r, directory):
    r.bgrewriteaof()
    deadline = time.monotonic() + REWRITE_TIMEOUT_S
    while True:
        persistence = r.info("persistence")
        if not persistence["aof_rewrite_in_progress"] and not persistence["aof_rewrite_scheduled"]:
            break
        expect(time.monotonic() < deadline, "BGREWRITEAOF did not finish")
        time.sleep(0.05)
    # Redis 7 writes a base file per rewrite into appendonlydir; Redis 6 one appendonly.aof.
    bases = sorted(glob.glob(os.path.join(directory, "appendonlydir", "*.base.aof")), key=os.path.getmtime)
    path = bases[-1] if bases else os.path.join(directory, "appendonly.aof")
    with open(path, "rb") as aof:
        data = aof.read()
    expect(b"XSETID" in data and b"XCLAIM" in data, f"the rewrite of {path} holds the streams")
    return data


def replay(aof, host, port):
    done = subprocess.run(["redis-cli", "-h", host, "-p", str(port), "--pipe"], input=aof, capture_output=True,
                          timeout=REWRITE_TIMEOUT_S, check=False)
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    expect(done.returncode == 0 and "errors: 0," in output, f"redis-cli --pipe into sluice: {output}")
    log(output.strip().splitlines()[-1])


def state(r, key):
    info = r.xinfo_stream(key)
    described = {"entries": r.xrange(key), "stream": {field: info[field] for field in STREAM_FIELDS}, "groups": {}}
    for group in r.xinfo_groups(key):
        name = group["name"].decode()
        pending = r.xpending_range(key, name, "-", "+", 1000)
        described["groups"][name] = {
            "consumers": group["consumers"],
            "pending": group["pending"],
            "last-delivered-id": group["last-delivered-id"],
            # Where Redis knows the lag (no deletions ahead of the group) sluice must agree.
            "lag": group["lag"],
            "pending entries": [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending],
            "consumer list": sorted((c["name"], c["pending"]) for c in r.xinfo_consumers(key, name)),
        }
    return described


def compare(source, sluice, key):
    expected, actual = state(source, key), state(sluice, key)
    for name, group in expected["groups"].items():
        if group["lag"] is None:  # Redis cannot tell; sluice counts it (checked below)
            actual["groups"].get(name, {}).pop("lag", None)
            group.pop("lag")
    expect_equal(actual, expected, f"stream {key} after the replay")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--resp", required=True)
    args = parser.parse_args()
    host, port = args.resp.rsplit(":", 1)
    sluice = client(host, int(port))
    with tempfile.TemporaryDirectory(prefix="sluice-aof-") as directory:
        server, source = start_redis(directory)
        try:
            fill(source)
            replay(rewritten_aof(source, directory), host, port)
            for key in ["orders", "emptied", "fresh"]:
                compare(source, sluice, key)
            # The lag Redis left unknown (a deletion ahead of billing): billing was given 1000-9
            # to 1000-20, and 1000-21 to 1000-39 wait but for the deleted 1000-25.
            billing = {g["name"]: g for g in sluice.xinfo_groups("orders")}[b"billing"]
            expect_equal(billing["lag"], 18, "billing's lag, counted")
            # Both go on alike: the next delivery, the next ID.
            for r in (source, sluice):
                delivered = r.xreadgroup("billing", "carol", {"orders": ">"}, count=2)[0][1]
                expect_equal([entry_id for entry_id, _ in delivered], [b"1000-21", b"1000-22"], "the next delivery")
                expect_equal(r.xadd("orders", {"n": "next"}, id="1000-*"), b"1000-41", "the next ID")
                expect_equal(r.xadd("emptied", {"n": "next"}, id="7-*"), b"7-8", "after an emptied stream's")
        finally:
            server.kill()
            server.wait()
    log("ok: a Redis AOF of streams replayed into sluice")


if __name__ == "__main__":
    run_main(main)
