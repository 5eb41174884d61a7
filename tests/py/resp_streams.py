"""Redis Streams on sluice with redis-py: the commands a Redis user relies on, checked against
Redis's replies, and one log behind both front doors.

Modes:
- `commands`: XADD (auto, partial and explicit IDs, errors, NOMKSTREAM, MAXLEN), XLEN, XRANGE
  and XREVRANGE (exclusive bounds, COUNT), XREAD (COUNT, BLOCK woken by another client, `$`),
  XTRIM, DEL/EXISTS/TYPE, connection commands, pipelines, MULTI/EXEC transactions, RESP3.
- `interop`: what XADD writes a Kafka consumer reads (key = ID, headers = fields); what a
  Kafka producer writes (also compressed, each codec) XRANGE returns as key, value and header fields.
- `write --stream S --count N --ids FILE`: XADDs N entries, appending each acknowledged ID
  to FILE as soon as it is acknowledged (the broker may be killed meanwhile).
- `check --stream S --ids FILE`: every ID in FILE is in the stream with its fields, in order,
  and a new XADD gets a greater ID.
"""

import threading
import time

import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import REQUEST_TIMEOUT_S, argument_parser, expect, expect_equal, log, run_main

SOCKET_TIMEOUT_S = 30
BLOCK_WAKE_DELAY_S = 0.3


def client(address, protocol=2):
    host, port = address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), protocol=protocol, socket_timeout=SOCKET_TIMEOUT_S)


def expect_error(call, text, what):
    try:
        call()
    # redis-py raises AuthenticationError for Redis's AUTH errors.
    except (redis.ResponseError, redis.exceptions.AuthenticationError) as error:
        expect(text in str(error), f"{what}: expected an error with {text!r}, got {error!r}")
        return
    raise AssertionError(f"{what}: expected the error {text!r}, got a reply")


def ids(entries):
    return [entry_id.decode() for entry_id, _ in entries]


def check_ids_and_errors(r, stream):
    first = r.xadd(stream, {"job": "resize", "size": "10"}).decode()
    ms, seq = (int(part) for part in first.split("-"))
    expect(abs(ms - time.time() * 1000) < 60_000, f"auto ID {first} is not near the current time")
    second = r.xadd(stream, {"job": "crop"}, id=f"{ms}-*").decode()
    expect_equal(second, f"{ms}-{seq + 1}", "ms-* takes the next sequence")
    expect_error(lambda: r.xadd(stream, {"a": "1"}, id="1-1"), "equal or smaller than the target stream top item",
                 "an ID below the top item")
    expect_error(lambda: r.xadd("fresh-" + stream, {"a": "1"}, id="0-0"), "must be greater than 0-0", "ID 0-0")
    expect_error(lambda: r.xadd(stream, {"a": "1"}, id="bad"), "Invalid stream ID", "a malformed ID")
    explicit = r.xadd(stream, {"k": "v"}, id=f"{ms + 5}-7").decode()
    expect_equal(explicit, f"{ms + 5}-7", "an explicit ID is kept")
    expect_equal(r.xadd("missing-" + stream, {"a": "1"}, nomkstream=True), None, "NOMKSTREAM on a missing key")
    expect_equal(r.exists("missing-" + stream), 0, "NOMKSTREAM created nothing")
    return [first, second, explicit]


def check_ranges(r, stream, written):
    expect_equal(r.xlen(stream), 3, "XLEN")
    entries = r.xrange(stream)
    expect_equal(ids(entries), written, "XRANGE - + order")
    expect_equal(entries[0][1], {b"job": b"resize", b"size": b"10"}, "fields of the first entry")
    expect_equal(ids(r.xrange(stream, min=written[1])), written[1:], "XRANGE from an ID")
    expect_equal(ids(r.xrange(stream, min="(" + written[0])), written[1:], "XRANGE exclusive start")
    expect_equal(ids(r.xrange(stream, max="(" + written[2])), written[:2], "XRANGE exclusive end")
    expect_equal(ids(r.xrange(stream, count=2)), written[:2], "XRANGE COUNT")
    ms = written[0].split("-")[0]
    expect_equal(ids(r.xrange(stream, min=ms, max=ms)), written[:2], "XRANGE by millisecond")
    expect_equal(ids(r.xrevrange(stream)), written[::-1], "XREVRANGE + -")
    expect_equal(ids(r.xrevrange(stream, count=1)), written[2:], "XREVRANGE COUNT 1")
    expect_equal(ids(r.xrevrange(stream, max="(" + written[2], min="-")), written[1::-1], "XREVRANGE exclusive")
    expect_equal(r.xrange(stream, min=written[2], max=written[0]), [], "an empty interval")
    expect_equal(r.xrange("missing-" + stream), [], "XRANGE on a missing key")
    expect_error(lambda: r.xrange(stream, min="(0-0", max="(0-0"), "invalid end ID for the interval",
                 "an exclusive end before everything")


def check_xread(address, r, stream, written):
    got = r.xread({stream: "0-0"}, count=2)
    expect_equal([(key.decode(), ids(entries)) for key, entries in got], [(stream, written[:2])], "XREAD COUNT 2")
    expect_equal(r.xread({stream: written[2]}), [], "XREAD past the last entry")
    expect_equal(r.xread({stream: "$"}, block=200), [], "XREAD BLOCK times out with nothing")

    def late_writer():
        time.sleep(BLOCK_WAKE_DELAY_S)
        client(address).xadd(stream, {"late": "yes"})

    writer = threading.Thread(target=late_writer)
    started = time.monotonic()
    writer.start()
    got = r.xread({stream: "$", "missing-" + stream: "$"}, block=10_000)
    waited = time.monotonic() - started
    writer.join()
    expect_equal(len(got), 1, "one stream answered the blocked XREAD")
    expect_equal(got[0][1][0][1], {b"late": b"yes"}, "the blocked XREAD got the new entry")
    expect(waited < 5, f"the blocked XREAD was woken by the append, not the timeout ({waited:.2f}s)")
    return ids(got[0][1])[0]


def check_trim_and_keys(r, stream):
    removed = r.xtrim(stream, maxlen=2, approximate=False)
    expect_equal(removed, 2, "XTRIM MAXLEN 2 removed two entries")
    expect_equal(r.xlen(stream), 2, "XLEN after XTRIM")
    r.xadd(stream, {"n": "5"}, maxlen=2)
    expect_equal(r.xlen(stream), 2, "XADD MAXLEN keeps the length")
    last_two = ids(r.xrange(stream))
    expect_equal(r.xtrim(stream, minid=last_two[1]), 1, "XTRIM MINID")
    expect_equal(ids(r.xrange(stream)), last_two[1:], "what XTRIM MINID kept")
    expect_equal(r.type(stream), b"stream", "TYPE of a stream")
    expect_equal(r.type("missing-" + stream), b"none", "TYPE of a missing key")
    expect_equal(r.exists(stream, "missing-" + stream), 1, "EXISTS counts existing keys")
    expect_equal(r.ttl(stream), -1, "TTL of a stream: no expiry")
    expect_equal(r.pttl("missing-" + stream), -2, "PTTL of a missing key")
    sibling = f"{stream}:sibling"
    r.xadd(sibling, {"n": "1"})
    expect_equal(sorted(r.keys(f"{stream}*")), sorted([stream.encode(), sibling.encode()]), "KEYS with a pattern")
    expect_equal(r.keys(f"{stream}:s?bl[hi]ng"), [sibling.encode()], "KEYS with ? and a set")
    expect_equal(sorted(r.scan_iter(match=f"{stream}*", count=10)), sorted([stream.encode(), sibling.encode()]),
                 "SCAN MATCH through redis-py's iterator")
    expect_equal(list(r.scan_iter(match=f"{stream}*", _type="hash")), [], "SCAN TYPE of another type")
    expect(r.dbsize() >= 2, "DBSIZE counts the streams")
    expect_error(lambda: r.scan("nope"), "invalid cursor", "SCAN with a bad cursor")
    expect_equal(r.unlink(sibling), 1, "UNLINK removes a stream like DEL")
    expect_equal(r.delete(stream), 1, "DEL removes the stream")
    expect_equal(r.exists(stream), 0, "the stream is gone")
    expect_equal(r.xlen(stream), 0, "XLEN of a deleted stream")


def check_xdel(r, stream):
    """XDEL deletes entries anywhere in a stream: reads skip them, lengths leave them out, the
    stream's last ID stays the newest one's."""
    written = [r.xadd(stream, {"n": str(index)}).decode() for index in range(6)]
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), "0-0", "nothing deleted yet")
    expect_equal(r.xdel(stream, written[1], written[3], written[3], "9999999999999-0"), 2,
                 "XDEL counts the entries it deleted (not repeats, not missing IDs)")
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), written[3],
                 "XINFO STREAM: the greatest ID deleted (a missing ID does not count)")
    expect_equal(r.xdel(stream, written[1]), 0, "an entry is deleted once")
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), written[3], "a smaller ID leaves it")
    live = [written[index] for index in (0, 2, 4, 5)]
    expect_equal(r.xlen(stream), 4, "XLEN leaves deleted entries out")
    expect_equal(ids(r.xrange(stream)), live, "XRANGE skips deleted entries")
    expect_equal(ids(r.xrevrange(stream)), live[::-1], "XREVRANGE skips deleted entries")
    expect_equal(ids(r.xrange(stream, min=written[1], max=written[3])), [written[2]], "a range of deleted bounds")
    expect_equal(ids(r.xread({stream: "0-0"})[0][1]), live, "XREAD skips deleted entries")
    expect_equal(r.xdel(stream, written[5]), 1, "XDEL of the newest entry")
    info = r.xinfo_stream(stream)
    expect_equal((info["length"], info["last-generated-id"].decode()), (3, written[5]),
                 "XINFO STREAM: the length without it, the last ID still its")
    expect_equal((info["first-entry"][0].decode(), info["last-entry"][0].decode()), (written[0], written[4]),
                 "XINFO STREAM's first and last entries are entries not deleted")
    expect_error(lambda: r.xadd(stream, {"n": "old"}, id=written[5]), "equal or smaller", "IDs stay monotonic")
    expect_equal(r.xtrim(stream, maxlen=2, approximate=False), 1, "XTRIM MAXLEN counts only entries not deleted")
    expect_equal(ids(r.xrange(stream)), [written[2], written[4]], "the newest two entries are kept")
    full = r.xinfo_stream(stream, full=True)
    expect_equal((r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), full["max-deleted-entry-id"].decode()),
                 (written[5], written[5]), "trimming leaves the greatest deleted ID, in both forms")
    expect_equal(r.xdel("missing-" + stream, written[0]), 0, "XDEL on a missing key")
    expect_error(lambda: r.xdel(stream, "nope"), "Invalid stream ID", "XDEL of a bad ID")
    expect_error(lambda: r.execute_command("XDEL", stream), "wrong number of arguments", "XDEL without IDs")


def check_deletion_with_groups(r, stream):
    """Redis 8.2's XDELEX and XACKDEL: one code per ID (1 deleted, -1 no such entry, 2 kept for
    a group), KEEPREF leaving pending references, DELREF removing them from every group, ACKED
    deleting only what every group delivered and acknowledged."""
    def call(*words):
        return r.execute_command(*words)
    written = [r.xadd(stream, {"n": str(index)}).decode() for index in range(8)]
    r.xgroup_create(stream, "left", id="0")
    r.xgroup_create(stream, "right", id="0")
    r.xreadgroup("left", "worker", {stream: ">"}, count=4)   # left holds 0-3 pending
    r.xreadgroup("right", "worker", {stream: ">"}, count=2)  # right holds 0-1; 2-7 undelivered

    expect_equal(call("XDELEX", stream, "ACKED", "IDS", 2, written[0], written[6]), [2, 2],
                 "ACKED keeps entries pending in a group, or not delivered by every group")
    expect_equal(call("XACKDEL", stream, "left", "ACKED", "IDS", 2, written[0], written[2]), [2, 2],
                 "XACKDEL ACKED: acknowledged in 'left', kept while 'right' needs them")
    expect_equal(r.xpending(stream, "left")["pending"], 2, "the two acknowledged in 'left'")
    expect_equal(call("XACKDEL", stream, "right", "ACKED", "IDS", 1, written[0]), [1],
                 "acknowledged by the last group holding it: deleted")
    expect_equal(call("XDELEX", stream, "IDS", 3, written[1], written[1], "9999999999999-0"), [1, -1, -1],
                 "KEEPREF (the default): deleted once; a repeat and a missing ID answer -1")
    expect_equal([line["message_id"].decode() for line in r.xpending_range(stream, "left", "-", "+", 10)],
                 [written[1], written[3]], "KEEPREF leaves the group's reference to a deleted entry")
    expect_equal(call("XDELEX", stream, "DELREF", "IDS", 2, written[1], written[3]), [-1, 1],
                 "DELREF: a deleted entry answers -1, yet its references go too")
    expect_equal(r.xpending(stream, "left")["pending"], 0, "DELREF removed every group's reference")
    expect_equal(r.xpending(stream, "right")["pending"], 0, "and the other group's")
    expect_equal(call("XACKDEL", stream, "nogroup", "IDS", 1, written[4]), [-1], "XACKDEL in a missing group")
    expect_equal(call("XDELEX", "missing-" + stream, "IDS", 2, written[4], written[5]), [-1, -1],
                 "XDELEX on a missing key")
    expect_equal(ids(r.xrange(stream)), [written[index] for index in (2, 4, 5, 6, 7)], "what is left")
    expect_error(lambda: call("XDELEX", stream, "IDS", 2, written[4]), "numids",
                 "more IDs announced than given")
    expect_error(lambda: call("XDELEX", stream, "IDS", 0, written[4]), "positive integer", "numids 0")
    expect_error(lambda: call("XDELEX", stream, "KEEPREF", "DELREF", "IDS", 1, written[4]), "syntax error",
                 "two policies")
    expect_error(lambda: call("XACKDEL", stream, "left", "IDS"), "wrong number of arguments", "XACKDEL arity")


def check_trimming_with_groups(r, stream):
    """XTRIM and XADD's trimming with Redis 8.2's KEEPREF (the default), DELREF and ACKED."""
    written = [r.xadd(stream, {"n": str(index)}).decode() for index in range(10)]
    r.xgroup_create(stream, "g", id="0")
    r.xreadgroup("g", "worker", {stream: ">"}, count=4)
    r.xack(stream, "g", written[0], written[1])  # pending: 2, 3; delivered up to 3
    expect_equal(r.execute_command("XTRIM", stream, "MAXLEN", 0, "ACKED"), 2,
                 "ACKED trims no further than the group's oldest pending entry")
    expect_equal(ids(r.xrange(stream, count=1)), [written[2]], "the stream starts at the pending entry")
    later = r.execute_command("XADD", stream, "ACKED", "MAXLEN", 1, "*", "n", "10").decode()
    expect_equal(r.xlen(stream), 9, "XADD ... ACKED MAXLEN 1 trims nothing the group still needs")
    expect_equal(r.execute_command("XTRIM", stream, "MINID", written[5], "DELREF"), 3,
                 "DELREF trims to the bound")
    expect_equal(r.xpending(stream, "g")["pending"], 0, "DELREF acknowledged the trimmed pending entries")
    r.xreadgroup("g", "worker", {stream: ">"}, count=2)  # pending: 5, 6
    expect_equal(r.xtrim(stream, maxlen=2, approximate=False), 4, "KEEPREF trims past pending entries")
    expect_equal(r.xpending(stream, "g")["pending"], 2, "and leaves their references")
    expect_equal(ids(r.xrange(stream)), [written[9], later], "the newest two")
    bare = f"{stream}:no-groups"
    r.xadd(bare, {"n": "1"})
    expect_equal(r.execute_command("XTRIM", bare, "MAXLEN", 0, "ACKED"), 0,
                 "ACKED with no group trims nothing (no group has acknowledged anything)")
    expect_error(lambda: r.execute_command("XTRIM", stream, "MAXLEN", 0, "ACKED", "DELREF"), "syntax error",
                 "two policies")


def check_xsetid(r, stream):
    """XSETID sets the last ID: XADD's next IDs follow it, it may go below a deleted newest
    entry but not below the newest one left, and its options get Redis's checks."""
    def call(*words):
        return r.execute_command(*words)
    def last_generated():
        return r.xinfo_stream(stream)["last-generated-id"].decode()
    for index in range(3):
        r.xadd(stream, {"n": str(index)}, id=f"{1000 + index}-1")
    expect_equal(call("XSETID", stream, "5000-0"), b"OK", "XSETID raises the last ID")
    expect_equal(last_generated(), "5000-0", "XINFO shows it")
    expect_error(lambda: r.xadd(stream, {"n": "x"}, id="4000-0"), "equal or smaller", "XADD below it")
    expect_equal(r.xadd(stream, {"n": "x"}, id="5000-*").decode(), "5000-1", "XADD after it")
    expect_error(lambda: call("XSETID", stream, "1001-0"), "smaller than the target stream top item",
                 "not below the newest entry")
    r.xdel(stream, "5000-1")
    expect_equal(call("XSETID", stream, "1002-5"), b"OK", "below a deleted newest entry, above the newest left")
    expect_equal(last_generated(), "1002-5", "the lower last ID")
    expect_equal(r.xadd(stream, {"n": "y"}, id="1002-*").decode(), "1002-6", "XADD follows the lower last ID")
    expect_error(lambda: call("XSETID", stream, "2000-0", "MAXDELETEDID", "3000-0"), "max_deleted_entry_id",
                 "MAXDELETEDID above the last ID")
    # XDEL of 5000-1 made it the stream's max-deleted-entry-id; XSETID may lower it, as in Redis.
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), "5000-1", "XDEL's max-deleted-entry-id")
    expect_equal(call("XSETID", stream, "2000-0", "MAXDELETEDID", "1-0"), b"OK", "MAXDELETEDID lowered")
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), "1-0", "the lower max-deleted-entry-id")
    expect_equal(call("XSETID", stream, "6000-0", "MAXDELETEDID", "5500-0"), b"OK", "MAXDELETEDID raised")
    expect_equal(r.xinfo_stream(stream)["max-deleted-entry-id"].decode(), "5500-0", "XINFO's max-deleted-entry-id")
    added = r.xinfo_stream(stream)["entries-added"]
    expect_error(lambda: call("XSETID", stream, "6000-0", "ENTRIESADDED", 1), "smaller than the target stream length",
                 "ENTRIESADDED below the length")
    expect_error(lambda: call("XSETID", stream, "6000-0", "ENTRIESADDED", -1), "entries_added must be positive",
                 "a negative ENTRIESADDED")
    # A copy of a stream that lost entries to trimming: its source added more than it holds.
    expect_equal(call("XSETID", stream, "6000-0", "ENTRIESADDED", added + 10), b"OK", "ENTRIESADDED raised")
    expect_equal(r.xinfo_stream(stream)["entries-added"], added + 10, "XINFO's entries-added")
    r.xadd(stream, {"n": "z"}, id="6000-1")
    expect_equal(r.xinfo_stream(stream)["entries-added"], added + 11, "counting on from there")
    expect_error(lambda: call("XSETID", "missing-" + stream, "1-1"), "no such key", "XSETID on a missing key")
    expect_error(lambda: call("XSETID", stream, "nope"), "Invalid stream ID", "XSETID with a bad ID")
    expect_error(lambda: call("XSETID", stream, "2000-0", "FOO"), "syntax error", "XSETID with a bad option")


def check_group_progress(r, stream):
    """XINFO's entries-read and lag follow from where each group reads: exact, also past
    deleted entries (where Redis answers lag nil), and ENTRIESREAD is checked, not needed."""
    def call(*words):
        return r.execute_command(*words)

    def progress(group):
        info = {g["name"].decode(): g for g in r.xinfo_groups(stream)}[group]
        return info["entries-read"], info["lag"]
    for seq in range(1, 6):
        r.xadd(stream, {"n": str(seq)}, id=f"{seq}-1")
    expect_equal(call("XGROUP", "CREATE", stream, "at-end", "$"), b"OK", "XGROUP CREATE $")
    expect_equal(progress("at-end"), (5, 0), "a group created at the end")
    expect_equal(call("XGROUP", "CREATE", stream, "from-start", "0", "ENTRIESREAD", -1), b"OK",
                 "ENTRIESREAD -1 (unknown), as Redis's AOF rewrite writes it")
    expect_equal(progress("from-start"), (0, 5), "a group created at the start")
    expect_error(lambda: call("XGROUP", "CREATE", stream, "bad", "0", "ENTRIESREAD", -2),
                 "value for ENTRIESREAD must be positive or -1", "ENTRIESREAD below -1")
    expect_equal(call("XGROUP", "CREATE", stream, "mid", "2-1"), b"OK", "XGROUP CREATE at an entry")
    expect_equal(progress("mid"), (2, 3), "a group created after the second entry")
    r.xdel(stream, "4-1")
    expect_equal(progress("from-start"), (0, 4), "a deleted entry is not waiting")
    expect_equal(progress("mid"), (2, 2), "nor for a group past some entries")
    expect_equal([e[0].decode() for e in r.xreadgroup("mid", "c", {stream: ">"}, count=1)[0][1]], ["3-1"],
                 "XREADGROUP delivers the next entry")
    expect_equal(progress("mid"), (3, 1), "read on by one")
    expect_equal(call("XGROUP", "SETID", stream, "mid", "0", "ENTRIESREAD", 99), b"OK", "XGROUP SETID")
    expect_equal(progress("mid"), (0, 4), "back at the start, whatever ENTRIESREAD said")
    r.xtrim(stream, maxlen=1)
    expect_equal(progress("from-start"), (4, 1), "trimmed entries are not waiting")


def check_redis_answers(r, stream):
    """Answers checked side by side with redis-server 7: COUNT 0 or below is no count, and
    Redis's own texts for what it refuses."""
    def call(*words):
        return r.execute_command(*words)
    for seq in range(1, 4):
        r.xadd(stream, {"n": str(seq)}, id=f"{seq}-1")
    for count in (0, -5):
        expect_equal(len(call("XREAD", "COUNT", count, "STREAMS", stream, "0")[0][1]), 3, f"XREAD COUNT {count}")
    expect_error(lambda: call("XREAD", "STREAMS", stream), "wrong number of arguments", "XREAD without an ID")
    last = call("XREAD", "STREAMS", stream, "missing-" + stream, "+", "+")
    expect_equal([(key, [entry_id for entry_id, _ in entries]) for key, entries in last], [(stream.encode(), [b"3-1"])],
                 "XREAD + (Redis 7.4): the last entry; nothing for a missing stream")
    r.xgroup_create(stream, "g", id="0")
    expect_error(lambda: call("XREADGROUP", "GROUP", "g", "c", "STREAMS", stream, "$"),
                 "The $ ID is meaningless in the context of XREADGROUP", "XREADGROUP with $")
    expect_error(lambda: call("XREADGROUP", "GROUP", "g", "c", "STREAMS", stream, "0", "other"),
                 "Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified",
                 "XREADGROUP with a key short of its ID")
    expect_equal(len(call("XREADGROUP", "GROUP", "g", "c", "COUNT", 0, "STREAMS", stream, ">")[0][1]), 3,
                 "XREADGROUP COUNT 0")
    expect_error(lambda: call("XCLAIM", stream, "g", "c", 0, "1-1", "bogus"), "Unrecognized XCLAIM option 'bogus'",
                 "XCLAIM with a word that is neither an ID nor an option")
    expect_error(lambda: call("XAUTOCLAIM", stream, "g", "c", 0, 0, "COUNT", 0), "COUNT must be > 0",
                 "XAUTOCLAIM COUNT 0")
    expect_error(lambda: call("XINFO", "CONSUMERS", stream, "nope"),
                 f"NOGROUP No such consumer group 'nope' for key name '{stream}'", "XINFO CONSUMERS of no group")
    expect_error(lambda: call("XINFO", "Bogus", stream), "unknown subcommand 'Bogus'. Try XINFO HELP",
                 "an unknown XINFO subcommand, as given")
    expect(call("XINFO", "HELP")[0].startswith(b"XINFO <subcommand>"), "XINFO HELP")
    # Past redis-py's reply parsers and its own check that IDLE is not negative.
    def raw(*words):
        connection = r.connection_pool.get_connection("raw")
        try:
            connection.send_command(*words)
            return connection.read_response()
        finally:
            r.connection_pool.release(connection)
    expect_equal(len(raw("XPENDING", stream, "g", "IDLE", -5, "-", "+", 10)), 3, "a negative IDLE is no minimum")
    expect_equal(raw("XCLAIM", stream, "g", "d", 0, "1-1", "IDLE", -1, "JUSTID"), [b"1-1"],
                 "XCLAIM IDLE -1: delivered now")
    expect_error(lambda: call("XTRIM", stream, "MAXLEN", "~", 1, "LIMIT", -1), "The LIMIT argument must be >= 0",
                 "a negative LIMIT")
    expect_error(lambda: call("XGROUP", "CREATE", stream, "g2", "$", "EXTRA"),
                 "unknown subcommand or wrong number of arguments for 'CREATE'", "XGROUP CREATE with a stray word")
    r.delete(stream)


def check_info(r):
    """INFO's sections and the fields monitoring tools read (redis-py parses them), from every
    shard: a blocked XREAD on another connection is counted, commands and connections add up."""
    info = r.info()
    for field in ["uptime_in_seconds", "connected_clients", "blocked_clients", "maxclients", "used_memory",
                  "used_memory_rss", "loading", "aof_enabled", "total_connections_received",
                  "total_commands_processed", "rejected_connections", "role", "used_cpu_sys", "used_cpu_user"]:
        expect(field in info, f"INFO has {field}")
    expect_equal(info["role"], "master", "INFO role")
    expect_equal((info["loading"], info["rdb_bgsave_in_progress"], info["aof_rewrite_in_progress"]), (0, 0, 0),
                 "no child process, nothing loading")
    expect(info["used_memory_rss"] > 1 << 20, f"INFO used_memory_rss: {info['used_memory_rss']}")
    expect(info["connected_clients"] >= 1, "INFO counts this connection")
    before = r.info("stats")
    expect_equal(set(before), {"total_connections_received", "total_commands_processed", "rejected_connections"},
                 "INFO stats alone")
    others = [client(f"{r.connection_pool.connection_kwargs['host']}:{r.connection_pool.connection_kwargs['port']}")
              for _ in range(3)]
    for other in others:
        other.ping()
    blocked = threading.Thread(target=lambda: others[0].xread({"info-block": "$"}, block=3000))
    blocked.start()
    deadline = time.monotonic() + 5
    while r.info("clients")["blocked_clients"] != 1:
        expect(time.monotonic() < deadline, "INFO never counted the blocked XREAD")
        time.sleep(0.02)
    others[1].xadd("info-block", {"wake": "up"})
    blocked.join(timeout=5)
    after = r.info("stats")
    expect(after["total_connections_received"] >= before["total_connections_received"] + 3,
           f"connections received: {before} -> {after}")
    expect(after["total_commands_processed"] >= before["total_commands_processed"] + 6,
           f"commands processed: {before} -> {after}")
    expect_equal(r.info("clients")["blocked_clients"], 0, "the XREAD woke")
    expect_equal(r.info("cpu", "replication")["connected_slaves"], 0, "INFO with two sections")
    for other in others:
        other.close()
    r.delete("info-block")


def check_connection(address):
    r = client(address)
    expect(r.ping(), "PING")
    expect_equal(r.echo("hello"), b"hello", "ECHO")
    r.client_setname("worker-1")
    expect_equal(r.client_getname(), "worker-1", "CLIENT GETNAME (redis-py decodes it)")
    expect(isinstance(r.client_id(), int), "CLIENT ID is an integer")
    expect(r.execute_command("SELECT", 0), "SELECT 0")
    expect_error(lambda: r.execute_command("SELECT", 1), "DB index is out of range", "SELECT 1")
    expect_equal(r.info("server").get("redis_version"), "7.2.0", "INFO server")
    host, port = address.rsplit(":", 1)
    expect_equal(r.config_get("port"), {"port": port}, "CONFIG GET port: the RESP listener's")
    expect_equal(r.config_get("maxmemory*"), {"maxmemory": "0", "maxmemory-policy": "noeviction"}, "CONFIG GET maxmemory*")
    expect_error(lambda: r.execute_command("HELLO", "x"), "Protocol version is not an integer", "HELLO x")
    expect_error(lambda: r.execute_command("HELLO", "4"), "NOPROTO", "HELLO 4")
    expect_error(lambda: r.execute_command("CLIENT", "ID", "x"), "wrong number of arguments", "CLIENT ID x")
    check_info(r)
    expect_error(lambda: r.execute_command("NOSUCHCOMMAND", "x"), "unknown command", "an unknown command")
    pipe = r.pipeline(transaction=False)
    for index in range(20):
        pipe.xadd("waitaof-stream", {"i": str(index)})
    pipe.execute_command("WAITAOF", 1, 0, 0)
    expect_equal(pipe.execute()[-1], [1, 0], "WAITAOF after pipelined XADDs: on disk here, no replicas")
    expect_equal(r.execute_command("WAIT", 0, 100), 0, "WAIT: no replicas")
    expect_error(lambda: r.execute_command("WAIT", 0, -1), "timeout is negative", "WAIT with a negative timeout")
    r.delete("waitaof-stream")
    seconds, micros = r.time()
    expect(abs(seconds + micros / 1e6 - time.time()) < 60, f"TIME is the clock: {seconds}.{micros}")
    expect_error(lambda: r.execute_command("AUTH", "secret"), "without any password configured", "AUTH, no password")
    expect(r.execute_command("AUTH", "default", "anything"), "AUTH as the default user, which needs no password")
    expect_error(lambda: r.execute_command("AUTH", "bob", "secret"), "invalid username-password pair", "AUTH as a user that does not exist")
    hello = r.execute_command("HELLO", "2", "AUTH", "default", "x")  # RESP2: a flat list of pairs
    expect_equal(hello[hello.index(b"proto") + 1], 2, "HELLO with AUTH default")
    expect_error(lambda: r.execute_command("HELLO", "2", "AUTH", "bob", "x"), "invalid username-password pair", "HELLO with AUTH bob")


def raw_connection(address):
    """A plain socket that has sent CLIENT ID: (socket, its id, its address as the broker sees it)."""
    import socket
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
    sock.sendall(b"CLIENT ID\r\n")
    client_id = int(sock.recv(64).strip()[1:])
    return sock, client_id, "%s:%d" % sock.getsockname()


def closed_by_broker(sock):
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


def check_client_list_and_kill(address):
    """CLIENT LIST shows every connection of every shard (redis-py parses it), CLIENT INFO the
    caller's, CLIENT KILL closes the ones its filter names and says how many."""
    r = client(address)
    r.client_setname("lister")
    others = [raw_connection(address) for _ in range(4)]  # spread over both shards
    listed = {entry["id"]: entry for entry in r.client_list()}
    me = r.client_id()
    for _, client_id, addr in others:
        expect(str(client_id) in listed, f"CLIENT LIST shows connection {client_id}: {sorted(listed)}")
        expect_equal(listed[str(client_id)]["addr"], addr, "its address")
        expect_equal(listed[str(client_id)]["cmd"], "client", "the last command it ran")
    expect_equal(listed[str(me)]["name"], "lister", "the name CLIENT SETNAME gave")
    expect_equal(listed[str(me)]["lib-name"], "redis-py", "what redis-py announced with CLIENT SETINFO")
    expect_equal(len({entry["shard"] for entry in listed.values()}), 2, "connections on both shards are listed")
    info = r.client_info()
    expect_equal((info["id"], info["name"]), (me, "lister"), "CLIENT INFO is the caller's line")
    expect_equal([entry["id"] for entry in r.client_list(client_id=[str(others[0][1])])], [str(others[0][1])],
                 "CLIENT LIST ID")
    expect_equal(r.client_list(_type="pubsub"), [], "no pub/sub connections")
    # New form, by id: one closed, the others stay.
    expect_equal(r.client_kill_filter(_id=others[0][1]), 1, "CLIENT KILL ID")
    expect(closed_by_broker(others[0][0]), "the killed connection is closed")
    # Old form, by address.
    expect_equal(r.client_kill(others[1][2]), True, "CLIENT KILL ip:port")
    expect(closed_by_broker(others[1][0]), "the connection killed by address is closed")
    expect_error(lambda: r.client_kill(others[1][2]), "No such client", "killing it again")
    # SKIPME (default yes): every other connection of the default user, not the caller.
    killed = r.client_kill_filter(user="default")
    expect(killed >= 2, f"CLIENT KILL USER default closed the others: {killed}")
    for sock, _, _ in others[2:]:
        expect(closed_by_broker(sock), "closed by CLIENT KILL USER")
    expect_equal(r.client_info()["name"], "lister", "the caller was skipped")


def check_pipeline_and_resp3(address, stream):
    r = client(address)
    pipe = r.pipeline(transaction=False)
    for index in range(200):
        pipe.xadd(stream, {"i": str(index)})
    pipe.xlen(stream)
    replies = pipe.execute()
    written = [reply.decode() for reply in replies[:-1]]
    expect_equal(replies[-1], 200, "XLEN right after a pipeline of XADDs sees all of them")
    parsed = [tuple(int(part) for part in entry_id.split("-")) for entry_id in written]
    expect(parsed == sorted(set(parsed)), "pipelined XADD IDs strictly increase")
    expect_equal(ids(r.xrange(stream)), written, "every pipelined entry, in order")
    r3 = client(address, protocol=3)
    got = r3.xread({stream: "0-0"}, count=3)
    expect(isinstance(got, dict), f"RESP3 XREAD replies with a map, got {type(got)}")
    expect_equal(ids(got[stream.encode()][0]), written[:3], "RESP3 XREAD entries")


def check_mixed_pipeline(address, stream):
    """Pipelined XADDs travel to the owner together: each still gets its own reply, in order,
    an entry refused its ID fails alone, and other keys and commands in between keep their place."""
    r = client(address)
    other = f"{stream}:other"
    pipe = r.pipeline(transaction=False)
    pipe.xadd(stream, {"n": "1"})
    pipe.xadd(stream, {"n": "bad"}, id="1-1")
    pipe.xadd(stream, {"n": "2"})
    pipe.xadd(other, {"n": "elsewhere"})
    pipe.xadd(stream, {"n": "3"}, maxlen=2, approximate=False)
    pipe.xlen(stream)
    pipe.xadd(stream, {"n": "4"})
    replies = pipe.execute(raise_on_error=False)
    expect(isinstance(replies[1], redis.ResponseError) and "equal or smaller" in str(replies[1]),
           f"the pipelined XADD with a stale ID fails alone, got {replies[1]!r}")
    good = [replies[index].decode() for index in (0, 2, 4, 6)]
    expect_equal(replies[5], 2, "XLEN after MAXLEN 2, in pipeline order")
    expect_equal(ids(r.xrange(stream)), good[1:], "MAXLEN 2 kept two entries, then one more came")
    expect_equal(len(r.xrange(other)), 1, "the other key got its entry")
    fields = [entry[b"n"] for _, entry in r.xrange(stream)]
    expect_equal(fields, [b"2", b"3", b"4"], "entries kept their fields")


def check_transactions(address, stream):
    """redis-py's pipeline() is a MULTI/EXEC transaction by default: its commands are queued,
    run in order on EXEC and answered together; XREAD's BLOCK does not wait inside it; an
    unknown command dooms the transaction (EXECABORT, nothing run); DISCARD drops the queue."""
    r = client(address)
    pipe = r.pipeline()
    for index in range(50):
        pipe.xadd(stream, {"i": str(index)})
    pipe.xlen(stream)
    pipe.xread({stream: "$"}, block=5_000)
    pipe.xrange(stream, count=2)
    started = time.monotonic()
    replies = pipe.execute()
    expect(time.monotonic() - started < 4, "XREAD BLOCK inside a transaction answers at once")
    written = [reply.decode() for reply in replies[:50]]
    expect_equal(replies[50], 50, "XLEN in the transaction sees the XADDs queued before it")
    expect(not replies[51], f"XREAD with BLOCK inside a transaction: nothing new, no wait; got {replies[51]!r}")
    expect_equal(ids(replies[52]), written[:2], "XRANGE in the transaction")
    expect_equal(ids(r.xrange(stream)), written, "every XADD of the transaction, in order")
    # An error reply does not stop the rest (redis-py raises the first after EXEC answered).
    pipe = r.pipeline()
    pipe.xadd(stream, {"n": "stale"}, id="1-1")
    pipe.xadd(stream, {"n": "fresh"})
    replies = pipe.execute(raise_on_error=False)
    expect(isinstance(replies[0], redis.ResponseError), f"the stale ID fails alone, got {replies[0]!r}")
    expect_equal(r.xlen(stream), 51, "the next XADD in the transaction still ran")
    # Raw MULTI / EXEC / DISCARD on one connection, with Redis's replies.
    connection = r.connection_pool.get_connection()
    try:
        def call(*words):
            connection.send_command(*words)
            try:
                return connection.read_response()
            except redis.ResponseError as error:
                return error
        expect_equal(str(call("EXEC")), "EXEC without MULTI", "EXEC without MULTI")
        expect_equal(call("MULTI"), b"OK", "MULTI")
        expect_equal(str(call("MULTI")), "MULTI calls can not be nested", "nested MULTI")
        expect_equal(call("XLEN", stream), b"QUEUED", "a queued command")
        expect("unknown command" in str(call("NOSUCH")), "an unknown command in a transaction")
        aborted = call("EXEC")  # -EXECABORT: redis-py raises ExecAbortError for that code
        expect(isinstance(aborted, redis.exceptions.ExecAbortError), f"EXEC after a refused command aborts: {aborted!r}")
        expect_equal(call("MULTI"), b"OK", "MULTI again")
        expect_equal(call("XADD", stream, "*", "n", "discarded"), b"QUEUED", "a queued XADD")
        expect_equal(call("DISCARD"), b"OK", "DISCARD")
        expect_equal(str(call("DISCARD")), "DISCARD without MULTI", "DISCARD without MULTI")
        expect("not supported" in str(call("WATCH", stream)), "WATCH is refused with a reason")
        expect_equal(call("UNWATCH"), b"OK", "UNWATCH")
    finally:
        r.connection_pool.release(connection)
    expect_equal(r.xlen(stream), 51, "nothing of the aborted or discarded transactions ran")


def commands(args):
    r = client(args.resp)
    stream = f"jobs-{time.time_ns()}"
    written = check_ids_and_errors(r, stream)
    check_ranges(r, stream, written)
    check_xread(args.resp, r, stream, written)
    check_trim_and_keys(r, stream)
    check_xdel(r, f"{stream}:deleting")
    check_deletion_with_groups(r, f"{stream}:deleting-with-groups")
    check_trimming_with_groups(r, f"{stream}:trimming-with-groups")
    check_xsetid(r, f"{stream}:setid")
    check_group_progress(r, f"{stream}:progress")
    check_redis_answers(r, f"{stream}:answers")
    check_connection(args.resp)
    check_client_list_and_kill(args.resp)
    check_pipeline_and_resp3(args.resp, f"{stream}:pipelined")
    check_mixed_pipeline(args.resp, f"{stream}:mixed")
    check_transactions(args.resp, f"{stream}:transaction")
    log("ok: commands")


def check_small_message_limit(args, r, stream):
    """A stream whose max.message.bytes is small: pipelined XADDs still all land (the owner splits
    them into batches that fit) and only an entry too big alone is refused."""
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = NewTopic(stream, num_partitions=1, replication_factor=1, config={"max.message.bytes": "1000"})
    for future in admin.create_topics([topic], request_timeout=REQUEST_TIMEOUT_S).values():
        future.result(REQUEST_TIMEOUT_S)
    pipe = r.pipeline(transaction=False)
    for index in range(50):
        pipe.xadd(stream, {"i": str(index), "pad": "x" * 100})
    pipe.xadd(stream, {"too": "big" * 400})
    pipe.xadd(stream, {"i": "last"})
    replies = pipe.execute(raise_on_error=False)
    refused = [index for index, reply in enumerate(replies) if isinstance(reply, Exception)]
    expect_equal(refused, [50], f"only the entry above max.message.bytes is refused: {replies[50]!r}")
    expect_equal(ids(r.xrange(stream)), [reply.decode() for reply in replies[:50] + replies[51:]],
                 "every other pipelined entry landed, in order")


def interop(args):
    r = client(args.resp)
    stream = f"events-{time.time_ns()}"
    first = r.xadd(stream, {"user": "ada", "action": "login"}).decode()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"{stream}-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([stream])
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    message = None
    while message is None and time.monotonic() < deadline:
        polled = consumer.poll(0.2)
        if polled is not None and not polled.error():
            message = polled
    consumer.close()
    expect(message is not None, "a Kafka consumer read the XADD entry")
    expect_equal(message.key(), first.encode(), "the record key is the entry ID")
    expect_equal(message.value(), None, "the record value is null")
    expect_equal(message.headers(), [("user", b"ada"), ("action", b"login")], "fields are record headers")
    expect_equal(message.timestamp()[1], int(first.split("-")[0]), "the record timestamp is the ID's ms")

    codecs = ("none", "gzip", "snappy", "lz4", "zstd")
    for compression in codecs:
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "compression.type": compression})
        producer.produce(stream, key=b"order-7", value=f"paid-{compression}".encode(), headers=[("source", b"kafka")])
        expect_equal(producer.flush(REQUEST_TIMEOUT_S), 0, "Kafka produce to the stream")
    entries = r.xrange(stream)
    expect_equal(len(entries), 1 + len(codecs), "XRANGE sees the XADD entry and every Kafka record")
    for (entry_id, fields), compression in zip(entries[1:], codecs):
        expect_equal(fields, {b"key": b"order-7", b"value": f"paid-{compression}".encode(), b"source": b"kafka"},
                     f"a Kafka record ({compression}) read as fields")
    check_small_message_limit(args, r, f"{stream}:small")
    later = r.xadd(stream, {"after": "kafka"}).decode()
    as_tuple = lambda text: tuple(int(part) for part in text.split("-"))  # noqa: E731
    expect(all(as_tuple(later) > as_tuple(entry_id.decode()) for entry_id, _ in entries),
           f"an XADD after Kafka records gets a greater ID ({later} vs {ids(entries)})")
    log("ok: interop")


def write(args):
    r = client(args.resp)
    with open(args.ids, "a") as acknowledged:
        for index in range(args.count):
            entry_id = r.xadd(args.stream, {"index": str(index), "payload": "x" * (index % 50)})
            acknowledged.write(entry_id.decode() + "\n")
            acknowledged.flush()


def check(args):
    r = client(args.resp)
    with open(args.ids) as file:
        acknowledged = [line.strip() for line in file if line.strip()]
    entries = r.xrange(args.stream)
    stored = {entry_id.decode(): fields for entry_id, fields in entries}
    expect_equal(ids(entries), sorted(stored, key=lambda text: tuple(int(p) for p in text.split("-"))),
                 "entries in ID order")
    for index, entry_id in enumerate(acknowledged):
        expect(entry_id in stored, f"acknowledged entry {entry_id} (#{index}) is missing after the restart")
        expect_equal(stored[entry_id], {b"index": str(index).encode(), b"payload": b"x" * (index % 50)},
                     f"fields of {entry_id}")
    if acknowledged:
        newer = r.xadd(args.stream, {"after": "restart"}).decode()
        last = tuple(int(part) for part in acknowledged[-1].split("-"))
        expect(tuple(int(part) for part in newer.split("-")) > last, f"new ID {newer} after {acknowledged[-1]}")
    log(f"ok: {len(acknowledged)} acknowledged entries present of {len(entries)} stored")


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--resp", required=True, help="RESP address host:port")
    parser.add_argument("mode", choices=["commands", "interop", "write", "check"])
    parser.add_argument("--stream")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--ids")
    args = parser.parse_args()
    {"commands": commands, "interop": interop, "write": write, "check": check}[args.mode](args)


if __name__ == "__main__":
    run_main(main)
