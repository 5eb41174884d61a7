"""Work queues on Redis stream groups with redis-py: competing workers, redelivery, claims,
dead-lettering after MAXDELIVERIES, visibility timeouts, and group state across kill -9.

Modes:
- `queue`: two workers share a queue: every job is delivered once, acknowledged, none left.
- `redelivery`: pending entries, XPENDING (summary, extended, IDLE), history reads, XCLAIM
  (JUSTID, RETRYCOUNT, FORCE), XAUTOCLAIM, delivery counts as Redis counts them, errors.
- `dead-letter`: MAXDELIVERIES moves an entry to the dead-letter stream with its origin;
  VISIBILITY hands a silent worker's entry to the next XREADGROUP >.
- `deletion`: groups skip entries XDEL deleted; a deleted pending entry reads back empty and
  a claim drops it; XCLAIM LASTID moves the group on.
- `prepare --stream S`: builds group state (deliveries, acks, claims, deleted entries) and
  writes it to --state.
- `verify --stream S`: the group state after a restart equals --state exactly; then reads the
  next new entry and records the new state in --state.
"""

import json
import time

import redis

from common import argument_parser, expect, expect_equal, log, run_main

SOCKET_TIMEOUT_S = 30
JOBS = 100


def client(address):
    host, port = address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=SOCKET_TIMEOUT_S)


def expect_error(call, text, what):
    try:
        call()
    except redis.ResponseError as error:
        expect(text in str(error), f"{what}: expected an error with {text!r}, got {error!r}")
        return
    raise AssertionError(f"{what}: expected the error {text!r}, got a reply")


def read(r, stream, group, consumer, count=None, position=">", **options):
    got = r.xreadgroup(group, consumer, {stream: position}, count=count, **options)
    return got[0][1] if got else []


def queue(args):
    r = client(args.resp)
    stream = f"jobs-{time.time_ns()}"
    expect_error(lambda: r.xgroup_create(stream, "workers", id="0"), "requires the key to exist", "no MKSTREAM")
    expect(r.xgroup_create(stream, "workers", id="$", mkstream=True), "XGROUP CREATE MKSTREAM")
    expect_error(lambda: r.xgroup_create(stream, "workers", id="$"), "BUSYGROUP", "a second CREATE")
    expect_error(lambda: r.xreadgroup("nope", "w", {stream: ">"}), "NOGROUP", "XREADGROUP on a missing group")
    for index in range(JOBS):
        r.xadd(stream, {"job": str(index)})
    done = {}
    for _ in range(JOBS):
        for worker in ("worker-a", "worker-b"):
            for entry_id, fields in read(r, stream, "workers", worker, count=7):
                expect(entry_id not in done, f"{entry_id} delivered twice")
                done[entry_id] = worker
                expect_equal(r.xack(stream, "workers", entry_id), 1, "XACK of a delivered entry")
        if len(done) == JOBS:
            break
    expect_equal(len(done), JOBS, "every job delivered")
    expect(set(done.values()) == {"worker-a", "worker-b"}, "both workers got jobs")
    expect_equal(r.xpending(stream, "workers")["pending"], 0, "nothing pending after the acks")
    expect_equal(read(r, stream, "workers", "worker-a"), [], "no more new entries")
    expect_equal(r.xack(stream, "workers", "1-1"), 0, "XACK of an unknown ID")
    expect_equal(r.xack(stream, "nope", "1-1"), 0, "XACK in a missing group")
    info = r.xinfo_groups(stream)[0]
    expect_equal((info["name"], info["pending"], info["entries-read"], info["lag"]), (b"workers", 0, JOBS, 0),
                 "XINFO GROUPS")
    expect_equal(r.xgroup_destroy(stream, "workers"), 1, "XGROUP DESTROY")
    log("ok: queue")


def redelivery(args):
    r = client(args.resp)
    stream = f"retry-{time.time_ns()}"
    r.xgroup_create(stream, "g", id="$", mkstream=True)
    ids = [r.xadd(stream, {"n": str(index)}).decode() for index in range(4)]
    got = read(r, stream, "g", "alice", count=3)
    expect_equal([entry_id.decode() for entry_id, _ in got], ids[:3], "alice got three")
    summary = r.xpending(stream, "g")
    expect_equal((summary["pending"], summary["min"].decode(), summary["max"].decode()), (3, ids[0], ids[2]),
                 "XPENDING summary")
    expect_equal(summary["consumers"], [{"name": b"alice", "pending": 3}], "pending per consumer")
    lines = r.xpending_range(stream, "g", "-", "+", 10)
    expect_equal([(line["message_id"].decode(), line["consumer"], line["times_delivered"]) for line in lines],
                 [(entry_id, b"alice", 1) for entry_id in ids[:3]], "XPENDING extended")
    expect_equal(r.xpending_range(stream, "g", "-", "+", 10, idle=60_000), [], "XPENDING IDLE filters")
    history = read(r, stream, "g", "alice", position="0")
    expect_equal([entry_id.decode() for entry_id, _ in history], ids[:3], "alice re-reads her pending entries")
    expect_equal(r.xpending_range(stream, "g", ids[0], ids[0], 1)[0]["times_delivered"], 2,
                 "a history read is a delivery")
    expect_equal(r.xclaim(stream, "g", "bob", 60_000, [ids[0]]), [], "XCLAIM respects min-idle-time")
    time.sleep(0.05)
    claimed = r.xclaim(stream, "g", "bob", 10, [ids[0]])
    expect_equal([(entry_id.decode(), fields) for entry_id, fields in claimed], [(ids[0], {b"n": b"0"})], "XCLAIM")
    line = r.xpending_range(stream, "g", ids[0], ids[0], 1)[0]
    expect_equal((line["consumer"], line["times_delivered"]), (b"bob", 3), "claimed by bob, delivered 3 times")
    just = r.xclaim(stream, "g", "carol", 0, [ids[0]], justid=True)
    expect_equal([entry_id.decode() for entry_id in just], [ids[0]], "XCLAIM JUSTID")
    expect_equal(r.xpending_range(stream, "g", ids[0], ids[0], 1)[0]["times_delivered"], 3, "JUSTID is not a delivery")
    r.xclaim(stream, "g", "carol", 0, [ids[1]], retrycount=9, justid=True)
    expect_equal(r.xpending_range(stream, "g", ids[1], ids[1], 1)[0]["times_delivered"], 9, "RETRYCOUNT")
    forced = r.xclaim(stream, "g", "dave", 0, [ids[3]], force=True, justid=True)
    expect_equal([entry_id.decode() for entry_id in forced], [ids[3]], "XCLAIM FORCE adds a pending entry")
    next_id, entries, deleted = r.xautoclaim(stream, "g", "erin", 0, "0-0", count=2)[:3]
    expect_equal([entry_id.decode() for entry_id, _ in entries], ids[:2], "XAUTOCLAIM claims the oldest two")
    expect_equal(next_id.decode(), ids[2], "XAUTOCLAIM's cursor is the next pending ID")
    expect_equal(deleted, [], "nothing deleted")
    expect_equal(r.xgroup_createconsumer(stream, "g", "frank"), 1, "CREATECONSUMER")
    expect_equal(r.xgroup_delconsumer(stream, "g", "erin"), 2, "DELCONSUMER returns its pending count")
    expect_equal(r.xpending(stream, "g")["pending"], 2, "erin's entries left the pending list")
    consumers = {consumer["name"]: consumer["pending"] for consumer in r.xinfo_consumers(stream, "g")}
    expect_equal(consumers.get(b"frank"), 0, "XINFO CONSUMERS lists the new consumer")
    check_xinfo_full(r, stream, ids, consumers)
    extra = r.xadd(stream, {"n": "extra"}).decode()
    got = read(r, stream, "g", "frank", noack=True)
    # ids[3] entered the pending list by XCLAIM FORCE, never by `>`: the group still hands it
    # out (as Redis does), with the new entry.
    expect_equal([entry_id.decode() for entry_id, _ in got], [ids[3], extra], "NOACK read of new entries")
    expect_equal(r.xpending(stream, "g")["pending"], 2, "NOACK entries are not pending")
    r3 = redis.Redis(host=args.resp.rsplit(":", 1)[0], port=int(args.resp.rsplit(":", 1)[1]), protocol=3,
                     socket_timeout=SOCKET_TIMEOUT_S)
    history = r3.xreadgroup("g", "dave", {stream: "0"})
    expect(isinstance(history, dict) and stream.encode() in history, f"RESP3 XREADGROUP is a map: {history}")
    log("ok: redelivery")


def check_xinfo_full(r, stream, ids, consumer_pending):
    """XINFO STREAM FULL agrees with XRANGE, XPENDING and XINFO CONSUMERS, and COUNT cuts
    every list it shows."""
    now_ms = time.time() * 1000
    full = r.xinfo_stream(stream, full=True)
    expect_equal((full["length"], full["last-generated-id"].decode(), full["recorded-first-entry-id"].decode()),
                 (len(ids), ids[-1], ids[0]), "XINFO STREAM FULL: length and IDs")
    expect_equal([entry_id.decode() for entry_id in full["entries"]], ids, "FULL shows the entries (COUNT 10)")
    [group] = full["groups"]
    lines = r.xpending_range(stream, "g", "-", "+", 100)
    expect_equal((group["name"], group["pel-count"]), (b"g", len(lines)), "FULL: the group and its pending count")
    expect_equal([(entry_id.decode(), consumer, deliveries) for entry_id, consumer, _, deliveries in group["pending"]],
                 [(line["message_id"].decode(), line["consumer"], line["times_delivered"]) for line in lines],
                 "FULL's pending list is XPENDING's")
    for _, _, delivered_ms, _ in group["pending"]:
        expect(now_ms - 60_000 < delivered_ms <= now_ms + 1_000, f"a delivery time in ms since the epoch: {delivered_ms}")
    shown = {consumer["name"]: consumer for consumer in group["consumers"]}
    expect_equal({name: consumer["pel-count"] for name, consumer in shown.items()}, consumer_pending,
                 "FULL's consumers are XINFO CONSUMERS'")
    for name, consumer in shown.items():
        mine = [line["message_id"] for line in lines if line["consumer"] == name]
        expect_equal([entry_id for entry_id, _, _ in consumer["pending"]], mine, f"{name}'s pending entries")
        expect(consumer["seen-time"] <= now_ms + 1_000, f"{name}'s seen-time is a time: {consumer['seen-time']}")
    cut = r.execute_command("XINFO STREAM", stream, "FULL", "COUNT", "1", full=True)
    expect_equal(list(cut["entries"]), [ids[0].encode()], "COUNT 1: one entry")
    [cut_group] = cut["groups"]
    expect_equal((len(cut_group["pending"]), cut_group["pel-count"]), (1, len(lines)), "COUNT 1: one pending line")
    expect(all(len(consumer["pending"]) <= 1 for consumer in cut_group["consumers"]), "COUNT 1 per consumer")
    expect_error(lambda: r.execute_command("XINFO", "STREAM", stream, "FULL", "COUNT", "-1"), "out of range",
                 "a negative COUNT")
    expect_error(lambda: r.execute_command("XINFO", "STREAM", stream, "FOO"), "syntax error", "an unknown option")


def dead_letter(args):
    r = client(args.resp)
    stream = f"flaky-{time.time_ns()}"
    dead = f"{stream}:graveyard"
    r.execute_command("XGROUP", "CREATE", stream, "g", "$", "MKSTREAM", "MAXDELIVERIES", 2, "DEADLETTER", dead)
    poison = r.xadd(stream, {"job": "poison"}).decode()
    expect_equal(len(read(r, stream, "g", "a")), 1, "first delivery")
    expect_equal(len(r.xclaim(stream, "g", "b", 0, [poison])), 1, "second delivery (a claim)")
    expect_equal(r.xclaim(stream, "g", "c", 0, [poison]), [], "the third delivery attempt dead-letters it")
    expect_equal(r.xpending(stream, "g")["pending"], 0, "the dead entry left the pending list")
    moved = r.xrange(dead)
    expect_equal(len(moved), 1, "one entry in the dead-letter stream")
    expect_equal(moved[0][1], {b"origin-stream": stream.encode(), b"origin-id": poison.encode(), b"group": b"g",
                               b"deliveries": b"2", b"job": b"poison"}, "the dead-letter entry says where it came from")

    visible = f"visible-{time.time_ns()}"
    r.execute_command("XGROUP", "CREATE", visible, "g", "$", "MKSTREAM", "VISIBILITY", 300, "MAXDELIVERIES", 2)
    job = r.xadd(visible, {"job": "slow"}).decode()
    expect_equal(len(read(r, visible, "g", "crashed-worker")), 1, "a worker takes the job and dies")
    expect_equal(read(r, visible, "g", "healthy"), [], "not visible again before the timeout")
    time.sleep(0.4)
    again = read(r, visible, "g", "healthy")
    expect_equal([entry_id.decode() for entry_id, _ in again], [job], "redelivered after the visibility timeout")
    line = r.xpending_range(visible, "g", "-", "+", 1)[0]
    expect_equal((line["consumer"], line["times_delivered"]), (b"healthy", 2), "now owned by the healthy worker")
    time.sleep(0.4)
    expect_equal(read(r, visible, "g", "third"), [], "past MAXDELIVERIES it is not handed out again")
    expect_equal([fields[b"origin-id"].decode() for _, fields in r.xrange(f"{visible}:dlq")], [job],
                 "it went to the default dead-letter stream <key>:dlq")
    r.execute_command("XGROUP", "CONFIG", visible, "g", "VISIBILITY", 0, "MAXDELIVERIES", 0)
    groups = r.xinfo_groups(visible)
    expect_equal((groups[0]["visibility-ms"], groups[0]["max-deliveries"]), (None, None), "XGROUP CONFIG turns them off")
    log("ok: dead-letter")


def deletion(args):
    r = client(args.resp)
    stream = f"deleting-{time.time_ns()}"
    r.xgroup_create(stream, "g", id="$", mkstream=True)
    ids = [r.xadd(stream, {"n": str(index)}).decode() for index in range(6)]
    expect_equal(r.xdel(stream, ids[1]), 1, "XDEL before delivery")
    got = read(r, stream, "g", "alice", count=2)
    expect_equal([entry_id.decode() for entry_id, _ in got], [ids[0], ids[2]], "XREADGROUP > skips deleted entries")
    expect_equal(r.xdel(stream, ids[2]), 1, "XDEL of a pending entry")
    expect_equal(r.xpending(stream, "g")["pending"], 2, "a deleted entry stays pending (as in Redis)")
    history = read(r, stream, "g", "alice", position="0")
    expect_equal([(entry_id.decode(), fields) for entry_id, fields in history],
                 [(ids[0], {b"n": b"0"}), (ids[2], {})], "a deleted pending entry reads back without fields")
    expect_equal(r.xclaim(stream, "g", "bob", 0, [ids[2]]), [], "XCLAIM of a deleted entry claims nothing")
    expect_equal([line["message_id"].decode() for line in r.xpending_range(stream, "g", "-", "+", 10)], [ids[0]],
                 "the claim dropped the deleted entry from the pending list")
    read(r, stream, "g", "bob", count=1)
    expect_equal(r.xdel(stream, ids[3]), 1, "XDEL of bob's entry")
    next_id, entries, deleted = r.xautoclaim(stream, "g", "carol", 0, "0-0")[:3]
    expect_equal(([entry_id.decode() for entry_id, _ in entries], [entry_id.decode() for entry_id in deleted]),
                 ([ids[0]], [ids[3]]), "XAUTOCLAIM claims what exists and lists what was deleted")
    expect_equal(r.execute_command("XCLAIM", stream, "g", "carol", 0, ids[0], "JUSTID", "LASTID", ids[5],
                                   parse_justid=True),
                 [ids[0].encode()], "XCLAIM with LASTID")
    expect_equal(r.xinfo_groups(stream)[0]["last-delivered-id"].decode(), ids[5], "LASTID moved the group on")
    r.execute_command("XCLAIM", stream, "g", "carol", 0, ids[0], "JUSTID", "LASTID", ids[0], parse_justid=True)
    expect_equal(r.xinfo_groups(stream)[0]["last-delivered-id"].decode(), ids[5], "an older LASTID changes nothing")
    expect_equal(read(r, stream, "g", "carol"), [], "entries up to LASTID are not new")
    newest = r.xadd(stream, {"n": "new"}).decode()
    expect_equal([entry_id.decode() for entry_id, _ in read(r, stream, "g", "carol")], [newest],
                 "entries after LASTID are")
    expect_error(lambda: r.execute_command("XCLAIM", stream, "g", "carol", 0, ids[0], "LASTID", "nope"),
                 "Invalid stream ID", "a bad LASTID")
    log("ok: deletion")


def group_state(r, stream):
    pending = [(line["message_id"].decode(), line["consumer"].decode(), line["times_delivered"])
               for line in r.xpending_range(stream, "g", "-", "+", 10_000)]
    info = r.xinfo_groups(stream)[0]
    return {"pending": pending, "last_delivered": info["last-delivered-id"].decode(),
            "entries_read": info["entries-read"], "length": r.xlen(stream),
            "entries": [entry_id.decode() for entry_id, _ in r.xrange(stream)]}


def prepare(args):
    r = client(args.resp)
    r.xgroup_create(args.stream, "g", id="$", mkstream=True)
    ids = [r.xadd(args.stream, {"n": str(index)}).decode() for index in range(50)]
    read(r, args.stream, "g", "a", count=20)
    read(r, args.stream, "g", "b", count=10)
    r.xack(args.stream, "g", *ids[:5])
    r.xclaim(args.stream, "g", "c", 0, ids[10:12])
    read(r, args.stream, "g", "a", position="0", count=3)
    # Deleted: one pending (it stays pending), two not delivered yet (they will be skipped).
    expect_equal(r.xdel(args.stream, ids[12], ids[40], ids[41]), 3, "XDEL before the crash")
    # Changes that leave the state as it was but grow the group log (to have it compacted).
    for index in range(100):
        r.xgroup_createconsumer(args.stream, "g", f"passing-{index}")
        r.xgroup_delconsumer(args.stream, "g", f"passing-{index}")
    state = group_state(r, args.stream)
    state["next"] = 30
    expect_equal(len(state["pending"]), 25, "pending entries before the crash")
    with open(args.state, "w") as file:
        json.dump(state, file)
    log(f"ok: prepared {state['last_delivered']}")


def verify(args):
    r = client(args.resp)
    with open(args.state) as file:
        before = json.load(file)
    after = group_state(r, args.stream)
    expect_equal(after["pending"], [tuple(line) for line in before["pending"]], "pending entries after the restart")
    expect_equal(after["last_delivered"], before["last_delivered"], "last delivered ID after the restart")
    expect_equal(after["entries_read"], before["entries_read"], "entries read after the restart")
    expect_equal((after["length"], after["entries"]), (before["length"], before["entries"]),
                 "the stream's entries (XDEL's deletions kept) after the restart")
    following = read(r, args.stream, "g", "a", count=1)
    expected = {b"n": str(before["next"]).encode()}
    expect(following and following[0][1] == expected, f"the next new entry is #{before['next']}, got {following}")
    # That read changed the state: record it for the next restart.
    state = group_state(r, args.stream)
    state["next"] = before["next"] + 1
    with open(args.state, "w") as file:
        json.dump(state, file)
    log("ok: group state identical after the restart")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--resp", required=True)
    parser.add_argument("mode", choices=["queue", "redelivery", "dead-letter", "deletion", "prepare", "verify"])
    parser.add_argument("--stream")
    parser.add_argument("--state")
    args = parser.parse_args()
    {"queue": queue, "redelivery": redelivery, "dead-letter": dead_letter, "deletion": deletion,
     "prepare": prepare, "verify": verify}[args.mode](args)


if __name__ == "__main__":
    run_main(main)
