"""librdkafka (confluent-kafka) load for benches/produce_e2e.sh.

Three sub-commands, all bounded in time:

  create-topic --bootstrap B --topic T --partitions N
      creates the topic with AdminClient and waits until every partition has a leader.
  produce --bootstrap B --topic T --start-at EPOCH --warmup-s W --duration-s D [--broker-pid P]
      produces 1 KiB values with acks=all until EPOCH + W + D and prints one JSON line with
      what was acknowledged inside the window [EPOCH + W, EPOCH + W + D], the CPU this
      process (and its main Python thread) used in that window and, with --broker-pid, the
      CPU of the broker's threads in that window. Several producers given the same EPOCH
      measure the same window, so their figures add up.
  summarize --raw-mb-s R --shards S result.json...
      adds the producers up and prints a Markdown table (header and one row).

Exit status 0 only if every message produced was acknowledged without error.
"""

import argparse
import json
import os
import sys
import time

VALUE_BYTES = 1024
REQUEST_TIMEOUT_S = 30
FLUSH_TIMEOUT_S = 60
# A producer process counts as client-bound when its Python thread was on a CPU this much of
# the window (it is the one thread that calls produce()).
CLIENT_BOUND_THREAD_SHARE = 0.85
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def log(message):
    print(message, file=sys.stderr, flush=True)


def producer_config(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "compression.type": "none",
        "enable.idempotence": False,  # Sluice has no InitProducerId yet
        "queue.buffering.max.kbytes": 256 << 10,
        "queue.buffering.max.messages": 1_000_000,
        "request.timeout.ms": REQUEST_TIMEOUT_S * 1000,
        "message.timeout.ms": (REQUEST_TIMEOUT_S + 30) * 1000,
    }


def create_topic(args):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
        operation_timeout=REQUEST_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S)
    futures[args.topic].result(timeout=REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=args.topic, timeout=REQUEST_TIMEOUT_S).topics.get(args.topic)
        if (topic is not None and topic.error is None and len(topic.partitions) == args.partitions
                and all(partition.leader >= 0 for partition in topic.partitions.values())):
            log(f"topic {args.topic} ready with {args.partitions} partitions")
            return 0
        time.sleep(0.1)
    log(f"FAIL: topic {args.topic} has no leaders after {REQUEST_TIMEOUT_S}s")
    return 1


def thread_ticks(pid):
    """{thread id: (name, user+system clock ticks)} for every thread of `pid`."""
    ticks = {}
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/stat") as stat_file:
                stat = stat_file.read()
        except FileNotFoundError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # Fields 14 and 15 of stat (utime, stime) are 11 and 12 after "pid (comm)".
        ticks[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def thread_cpu_seconds(before, after):
    """{thread name#tid: CPU seconds between two thread_ticks snapshots}."""
    used = {}
    for tid, (name, ticks) in after.items():
        used[f"{name}#{tid}"] = (ticks - before.get(tid, (name, 0))[1]) / CLOCK_TICKS_PER_S
    return used


class Window:
    """Counters of one producer and the snapshots taken at the start and end of the window."""

    def __init__(self, broker_pid):
        self.broker_pid = broker_pid
        self.acked_messages = 0
        self.acked_by_partition = {}
        self.errors = 0
        self.first_error = None
        self.start = None
        self.end = None

    def on_delivery(self, error, message):
        if error is not None:
            self.errors += 1
            self.first_error = self.first_error or str(error)
            return
        self.acked_messages += 1
        partition = message.partition()
        self.acked_by_partition[partition] = self.acked_by_partition.get(partition, 0) + 1

    def snapshot(self):
        return {
            "wall_s": time.monotonic(),
            "acked": self.acked_messages,
            "by_partition": dict(self.acked_by_partition),
            "process_cpu_s": sum(os.times()[:2]),
            "main_thread_cpu_s": time.thread_time(),
            "broker_threads": thread_ticks(self.broker_pid) if self.broker_pid else {},
        }


def produce(args):
    from confluent_kafka import Producer

    window = Window(args.broker_pid)
    producer = Producer({**producer_config(args.bootstrap), "on_delivery": window.on_delivery})
    value = os.urandom(VALUE_BYTES)
    window_start_epoch = args.start_at + args.warmup_s
    window_end_epoch = window_start_epoch + args.duration_s
    if time.time() > args.start_at:
        log(f"WARNING: started {time.time() - args.start_at:.2f}s after --start-at")
    while time.time() < args.start_at:
        time.sleep(0.005)
    produced = 0
    while True:
        now = time.time()
        if window.start is None and now >= window_start_epoch:
            producer.poll(0)  # deliver what is acknowledged so far before the window opens
            window.start = window.snapshot()
        if now >= window_end_epoch:
            producer.poll(0)
            window.end = window.snapshot()
            break
        # Inner batch between clock reads keeps time.time() off the profile.
        for _ in range(256):
            try:
                producer.produce(args.topic, value)
                produced += 1
            except BufferError:  # librdkafka's queue is full: wait for acknowledgements
                producer.poll(0.001)
                break
        producer.poll(0)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    if remaining:
        log(f"FAIL: {remaining} messages still unacknowledged {FLUSH_TIMEOUT_S}s after the run")
        return 1
    if window.errors:
        log(f"FAIL: {window.errors} delivery errors, first: {window.first_error}")
        return 1
    print(json.dumps(window_result(args, window, produced)), flush=True)
    return 0


def window_result(args, window, produced):
    start, end = window.start, window.end
    wall_s = end["wall_s"] - start["wall_s"]
    acked = end["acked"] - start["acked"]
    by_partition = {
        str(partition): count - start["by_partition"].get(partition, 0)
        for partition, count in sorted(end["by_partition"].items())
    }
    broker = thread_cpu_seconds(start["broker_threads"], end["broker_threads"])
    busiest = dict(sorted(broker.items(), key=lambda item: -item[1])[:6])
    return {
        "window_s": wall_s,
        "produced_total": produced,
        "acked_in_window": acked,
        "acked_by_partition": by_partition,
        "process_cpu_share": (end["process_cpu_s"] - start["process_cpu_s"]) / wall_s,
        "main_thread_cpu_share": (end["main_thread_cpu_s"] - start["main_thread_cpu_s"]) / wall_s,
        "broker_cpu_share": sum(broker.values()) / wall_s if broker else None,
        "broker_busiest_threads_share": {name: used / wall_s for name, used in busiest.items()},
    }


def summarize(args):
    results = []
    for path in args.results:
        with open(path) as result_file:
            results.append(json.loads(result_file.read().strip().splitlines()[-1]))
    window_s = max(result["window_s"] for result in results)
    messages_per_s = sum(result["acked_in_window"] / result["window_s"] for result in results)
    mb_per_s = messages_per_s * VALUE_BYTES / 1e6
    ratio = mb_per_s / args.raw_mb_s
    client_bound = [result["main_thread_cpu_share"] >= CLIENT_BOUND_THREAD_SHARE for result in results]
    broker = next((result for result in results if result["broker_cpu_share"] is not None), None)
    log("")
    for index, result in enumerate(results):
        log(f"producer {index}: {result['acked_in_window'] / result['window_s']:,.0f} msgs/s acked, "
            f"by partition {result['acked_by_partition']}, process CPU "
            f"{result['process_cpu_share']:.0%}, main (Python) thread "
            f"{result['main_thread_cpu_share']:.0%} of one core")
    if broker is not None:
        threads = ", ".join(f"{name} {share:.0%}"
                            for name, share in broker["broker_busiest_threads_share"].items())
        log(f"broker: {broker['broker_cpu_share']:.0%} of one core in total; busiest threads: {threads}")
    log(f"cores online: {os.cpu_count()} (broker and producers share them)")
    verdict = ("yes" if all(client_bound) else "partly" if any(client_bound) else "no")
    print()
    print("| date | shards | producers | window s | msgs/s (1 KiB, acks=all) | MB/s | raw O_DIRECT dd MB/s "
          "| ratio | client CPU-bound | broker CPU (cores) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    broker_cores = f"{broker['broker_cpu_share']:.2f}" if broker is not None else "n/a"
    print(f"| {time.strftime('%Y-%m-%d')} | {args.shards} | {len(results)} | {window_s:.1f} "
          f"| {messages_per_s:,.0f} | {mb_per_s:,.1f} | {args.raw_mb_s:,.1f} | {ratio:.1%} "
          f"| {verdict} | {broker_cores} |")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-topic")
    create.add_argument("--bootstrap", required=True)
    create.add_argument("--topic", required=True)
    create.add_argument("--partitions", type=int, required=True)
    load = commands.add_parser("produce")
    load.add_argument("--bootstrap", required=True)
    load.add_argument("--topic", required=True)
    load.add_argument("--start-at", type=float, required=True, help="Unix time the load starts")
    load.add_argument("--warmup-s", type=float, default=2.0)
    load.add_argument("--duration-s", type=float, default=10.0)
    load.add_argument("--broker-pid", type=int, help="sample this process's thread CPU too")
    summary = commands.add_parser("summarize")
    summary.add_argument("--raw-mb-s", type=float, required=True)
    summary.add_argument("--shards", type=int, required=True)
    summary.add_argument("results", nargs="+")
    args = parser.parse_args()
    return {"create-topic": create_topic, "produce": produce, "summarize": summarize}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
