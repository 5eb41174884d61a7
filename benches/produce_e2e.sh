#!/usr/bin/env bash
# The end-to-end produce figure, side by side with the disk it lands on, in ONE run:
#   (a) raw sequential O_DIRECT write bandwidth of the disk holding the data dir (dd, 1 MiB
#       blocks, 1 GiB, fdatasync at the end);
#   (b) librdkafka (confluent-kafka from .venv-tests) producing 1 KiB messages with acks=all,
#       linger.ms=5, batch.size=1 MiB, no compression, to a 2-partition topic on a freshly
#       started release broker with 2 shards, for a fixed window after a warm-up.
# Prints per-producer and broker CPU use, then a Markdown table row (msgs/s, MB/s, ratio to the
# raw bandwidth, whether the Python client's CPU was the limit).
#
# Usage: benches/produce_e2e.sh [--producers N] [--duration-s S] [--warmup-s S] [--shards N]
#                               [--partitions N] [--dir PARENT]
# PARENT (default: <repo>/target) receives a temporary directory for dd and the broker's data;
# it is removed at the end. Needs .venv-tests (run `SLUICE_TEST_SETUP_ONLY=1 tests/run` once).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$REPO/.venv-tests/bin/python"
SCRIPT="$REPO/benches/produce_e2e.py"
BINARY="$REPO/target/release/sluice"

PRODUCERS=1
DURATION_S=10
WARMUP_S=2
SHARDS=2
PARTITIONS=2
PARENT="$REPO/target"

# Bounds on every step, in seconds.
BUILD_TIMEOUT_S=1800
DD_TIMEOUT_S=300
READY_TIMEOUT_S=30
TOPIC_TIMEOUT_S=90
START_DELAY_S=2       # producers start together this long after being spawned (imports)
FLUSH_MARGIN_S=120    # after the window: final flush (60 s) and exit
STOP_TIMEOUT_S=20

# Prints the comment block at the top of this file.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --producers) PRODUCERS="$2"; shift 2 ;;
        --duration-s) DURATION_S="$2"; shift 2 ;;
        --warmup-s) WARMUP_S="$2"; shift 2 ;;
        --shards) SHARDS="$2"; shift 2 ;;
        --partitions) PARTITIONS="$2"; shift 2 ;;
        --dir) PARENT="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
for number in "$PRODUCERS" "$DURATION_S" "$WARMUP_S" "$SHARDS" "$PARTITIONS"; do
    [[ "$number" =~ ^[1-9][0-9]*$ ]] || { echo "expected a positive integer, got '$number'" >&2; exit 2; }
done
(( PRODUCERS <= 16 )) || { echo "--producers is at most 16" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*" >&2; }

if ! "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
    echo "$PYTHON cannot import confluent_kafka: run 'SLUICE_TEST_SETUP_ONLY=1 tests/run' first" >&2
    exit 1
fi

step "cargo build --release -p sluice-server"
(cd "$REPO" && timeout "$BUILD_TIMEOUT_S" cargo build --release --quiet -p sluice-server)

mkdir -p "$PARENT"
WORK="$(mktemp -d "$PARENT/produce-e2e.XXXXXX")"
BROKER_PID=""
PRODUCER_PIDS=()

cleanup() {
    local status=$?
    for pid in "${PRODUCER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq $((STOP_TIMEOUT_S * 10))); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$WORK/broker.log" ]]; then
        echo "--- last lines of the broker log ---" >&2
        tail -n 30 "$WORK/broker.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DEVICE="$(df --output=source "$WORK" | tail -n 1)"
step "raw O_DIRECT sequential write: dd 1 GiB in 1 MiB blocks to $WORK ($DEVICE)"
timeout "$DD_TIMEOUT_S" dd if=/dev/zero of="$WORK/ddtest" bs=1M count=1024 oflag=direct conv=fdatasync 2>"$WORK/dd.log"
rm -f "$WORK/ddtest"
cat "$WORK/dd.log" >&2
# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.61 s, 1.8 GB/s": recompute MB/s (10^6 B/s)
# from bytes and seconds, whatever unit dd chose to print.
RAW_MB_S="$(awk -F', ' '/copied/ { split($1, bytes, " "); split($3, seconds, " ");
    printf "%.1f", bytes[1] / seconds[1] / 1e6 }' "$WORK/dd.log")"
[[ -n "$RAW_MB_S" ]] || { echo "could not parse dd's output" >&2; exit 1; }
echo "raw O_DIRECT write: $RAW_MB_S MB/s" >&2

read -r KAFKA_PORT RESP_PORT HTTP_PORT < <("$PYTHON" - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(3)]
for sock in sockets:
    sock.bind(("127.0.0.1", 0))
print(*(sock.getsockname()[1] for sock in sockets))
EOF
)
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

step "start sluice serve --shards $SHARDS on $BOOTSTRAP"
"$BINARY" serve --data-dir "$WORK/data" --kafka-listen "$BOOTSTRAP" \
    --resp-listen "127.0.0.1:$RESP_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
    --shards "$SHARDS" --log-level warn >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
timeout "$READY_TIMEOUT_S" "$PYTHON" - "$HTTP_PORT" "$BROKER_PID" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
while True:
    os.kill(pid, 0)  # raises if the broker died
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            if response.status == 200:
                break
    except OSError:
        time.sleep(0.05)
EOF

TOPIC="produce-e2e"
timeout "$TOPIC_TIMEOUT_S" "$PYTHON" "$SCRIPT" create-topic --bootstrap "$BOOTSTRAP" --topic "$TOPIC" \
    --partitions "$PARTITIONS"

step "$PRODUCERS producer(s), acks=all, 1 KiB values: ${WARMUP_S} s warm-up, ${DURATION_S} s measured"
START_AT="$("$PYTHON" -c "import time; print(f'{time.time() + $START_DELAY_S:.3f}')")"
PRODUCER_TIMEOUT_S=$((START_DELAY_S + WARMUP_S + DURATION_S + FLUSH_MARGIN_S))
for index in $(seq 0 $((PRODUCERS - 1))); do
    extra=()
    # Producer 0 also samples the broker's per-thread CPU over the window.
    if [[ $index -eq 0 ]]; then extra=(--broker-pid "$BROKER_PID"); fi
    timeout "$PRODUCER_TIMEOUT_S" "$PYTHON" "$SCRIPT" produce --bootstrap "$BOOTSTRAP" --topic "$TOPIC" \
        --start-at "$START_AT" --warmup-s "$WARMUP_S" --duration-s "$DURATION_S" "${extra[@]}" \
        >"$WORK/producer-$index.json" 2>"$WORK/producer-$index.log" &
    PRODUCER_PIDS+=($!)
done
FAILED=0
for index in "${!PRODUCER_PIDS[@]}"; do
    if ! wait "${PRODUCER_PIDS[$index]}"; then
        echo "producer $index failed:" >&2
        tail -n 20 "$WORK/producer-$index.log" >&2
        FAILED=1
    fi
done
PRODUCER_PIDS=()
kill -0 "$BROKER_PID" 2>/dev/null || { echo "the broker died during the run" >&2; exit 1; }
[[ $FAILED -eq 0 ]] || exit 1

RESULTS=()
for index in $(seq 0 $((PRODUCERS - 1))); do RESULTS+=("$WORK/producer-$index.json"); done
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$REPO" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
echo "commit $COMMIT, $(nproc) cores, data dir on $DEVICE" >&2
"$PYTHON" "$SCRIPT" summarize --raw-mb-s "$RAW_MB_S" --shards "$SHARDS" "${RESULTS[@]}"
