//! Story: a team that runs Redis Streams points redis-py, redis-cli and ioredis at sluice. The
//! stream commands answer as Redis does; an entry XADD acknowledged survives kill -9; a Kafka consumer
//! reads what XADD wrote and XRANGE reads what a Kafka producer wrote; a client sending
//! garbage gets an error and is disconnected while others carry on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use sluice_tests::{count_lines, require_js_clients, require_python, wait_until, Broker, Running, SCRIPT_TIMEOUT};

/// XADDs acknowledged before the crash, so it lands mid-stream.
const ACKED_BEFORE_CRASH_MIN: usize = 200;
const ACKED_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn resp_args(broker: &Broker) -> Vec<String> {
    vec!["--resp".to_string(), broker.resp_addr()]
}

#[test]
fn stream_commands_answer_as_redis_does() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    let mut args = resp_args(&broker);
    args.push("commands".to_string());
    broker.python("resp_streams.py", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The same from Node.js: ioredis's stream, group, pipeline and blocking-read calls.
#[test]
fn ioredis_works_a_stream_and_its_group() {
    require_js_clients!();
    let broker = Broker::builder().shards(2).start();
    broker.node("ioredis_streams.js", &["--resp", &broker.resp_addr()]);
}

#[test]
fn one_log_two_front_doors() {
    require_python!();
    let broker = Broker::builder().shards(2).start();
    let mut args = resp_args(&broker);
    args.push("interop".to_string());
    broker.python("resp_streams.py", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn acknowledged_xadds_survive_kill_9() {
    require_python!();
    let mut broker = Broker::builder().shards(2).start();
    let ids_file = broker.data_dir().parent().unwrap().join("acknowledged-ids.txt");
    let ids = ids_file.to_str().unwrap().to_string();
    let resp = broker.resp_addr();
    let mut writer: Running = broker.spawn_python(
        "resp_streams.py",
        &["--resp", &resp, "write", "--stream", "orders:crash", "--count", "1000000", "--ids", &ids],
    );
    let acked = wait_until(ACKED_WAIT_TIMEOUT, || count_lines(&ids_file) >= ACKED_BEFORE_CRASH_MIN);
    assert!(acked, "only {} XADDs acknowledged within {ACKED_WAIT_TIMEOUT:?}", count_lines(&ids_file));
    assert!(!writer.has_exited(), "the writer must still be writing when the broker is killed");
    broker.kill9();
    // The writer fails on the dead connection; what it recorded is what was acknowledged.
    let _ = writer.wait(SCRIPT_TIMEOUT);
    let acknowledged = count_lines(&ids_file);
    broker.start();
    let out = broker.python("resp_streams.py", &["--resp", &resp, "check", "--stream", "orders:crash", "--ids", &ids]);
    eprintln!("{acknowledged} acknowledged before kill -9; {out}");
}

fn redis_cli(broker: &Broker, args: &[&str]) -> String {
    let (host, port) = broker.resp_addr().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let mut command = Command::new("redis-cli");
    command.args(["-h", &host, "-p", &port]).args(args);
    let finished = Running::spawn(command, None).wait(SCRIPT_TIMEOUT);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    finished.stdout
}

/// Whether redis-cli runs (tests/run installs it with redis-tools).
fn redis_cli_installed() -> bool {
    Command::new("redis-cli").arg("--version").output().is_ok()
}

/// One field of `XINFO STREAM key` as redis-cli prints it (a line each, the value after the
/// field's name).
fn xinfo_stream_field(broker: &Broker, key: &str, field: &str) -> String {
    let info = redis_cli(broker, &["XINFO", "STREAM", key]);
    let lines: Vec<&str> = info.lines().collect();
    let at = lines.iter().position(|line| *line == field).expect("the field is there");
    lines[at + 1].to_string()
}

/// `key` is empty, keeps `last` as its last ID, and refuses an XADD of `smaller`.
fn assert_emptied_with_last_id(broker: &Broker, key: &str, last: &str, smaller: &str, when: &str) {
    assert_eq!(xinfo_stream_field(broker, key, "length"), "0", "{key} empty {when}");
    assert_eq!(xinfo_stream_field(broker, key, "last-generated-id"), last, "{key}'s last ID kept {when}");
    let refused = "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    assert_eq!(redis_cli(broker, &["XADD", key, smaller, "n", "1"]).trim(), refused, "{key} {when}");
}

#[test]
fn redis_cli_works_and_garbage_is_refused() {
    let broker = Broker::builder().shards(2).start();
    if redis_cli_installed() {
        assert_eq!(redis_cli(&broker, &["PING"]).trim(), "PONG");
        let id = redis_cli(&broker, &["XADD", "cli-stream", "1-1", "name", "ada"]);
        assert_eq!(id.trim(), "1-1");
        let range = redis_cli(&broker, &["XRANGE", "cli-stream", "-", "+"]);
        assert_eq!(range.split_whitespace().collect::<Vec<_>>(), ["1-1", "name", "ada"]);
        let error = redis_cli(&broker, &["XADD", "cli-stream", "1-1", "name", "again"]);
        assert!(error.contains("equal or smaller than the target stream top item"), "{error}");
    } else {
        eprintln!("SKIPPED the redis-cli part: redis-cli is not installed (tests/run installs redis-tools)");
    }

    // A client speaking garbage gets a protocol error and is disconnected.
    let mut garbage = TcpStream::connect(broker.resp_addr()).unwrap();
    garbage.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    garbage.write_all(b"*\x00\x01 this is not RESP\r\n").unwrap();
    let mut answer = Vec::new();
    garbage.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer}");

    // An absurd bulk length is refused without buffering it.
    let mut absurd = TcpStream::connect(broker.resp_addr()).unwrap();
    absurd.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    absurd.write_all(b"*1\r\n$-7\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = absurd.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with('-'), "{}", String::from_utf8_lossy(&answer));

    // A command that is not an array of strings, and an unknown command, keep the connection.
    let mut client = TcpStream::connect(broker.resp_addr()).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.write_all(b"*1\r\n*0\r\n*2\r\n$7\r\nNOTHING\r\n$1\r\nx\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    let expected = "-ERR Protocol error: expected an array of bulk strings\r\n\
                    -ERR unknown command 'NOTHING', with args beginning with: 'x' \r\n+PONG\r\n";
    let mut answer = vec![0u8; expected.len()];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(String::from_utf8_lossy(&answer), expected);
}

/// XDEL's greatest deleted ID is kept in the group log: a restart still shows it.
#[test]
fn the_greatest_deleted_id_survives_a_restart() {
    if !redis_cli_installed() {
        eprintln!("SKIPPED: redis-cli is not installed (tests/run installs redis-tools)");
        return;
    }
    let mut broker = Broker::builder().shards(2).start();
    for id in ["1-1", "2-1", "3-1"] {
        assert_eq!(redis_cli(&broker, &["XADD", "deleted-ids", id, "n", "1"]).trim(), id);
    }
    assert_eq!(redis_cli(&broker, &["XDEL", "deleted-ids", "2-1", "1-1"]).trim(), "2");
    let max_deleted = |broker: &Broker| xinfo_stream_field(broker, "deleted-ids", "max-deleted-entry-id");
    assert_eq!(max_deleted(&broker), "2-1");
    broker.restart();
    assert_eq!(max_deleted(&broker), "2-1", "kept across a restart");
}

/// A stream trimmed empty keeps its last ID (Redis keeps `last_id` in the stream): XINFO still
/// shows it, and an XADD with a smaller ID is refused, before and after a restart, though no
/// entry in the log holds that ID any more. So does the last ID XSETID set.
#[test]
fn a_stream_trimmed_empty_keeps_its_last_id_across_a_restart() {
    if !redis_cli_installed() {
        eprintln!("SKIPPED: redis-cli is not installed (tests/run installs redis-tools)");
        return;
    }
    let mut broker = Broker::builder().shards(2).start();
    assert_eq!(redis_cli(&broker, &["XADD", "emptied", "5000-5", "n", "1"]).trim(), "5000-5");
    assert_eq!(redis_cli(&broker, &["XTRIM", "emptied", "MAXLEN", "0"]).trim(), "1");
    assert_emptied_with_last_id(&broker, "emptied", "5000-5", "3000-1", "before a restart");
    broker.restart();
    assert_emptied_with_last_id(&broker, "emptied", "5000-5", "3000-1", "after a restart");
    assert_eq!(redis_cli(&broker, &["XADD", "emptied", "5000-*", "n", "1"]).trim(), "5000-6");
    // XSETID's last ID is kept the same way, also below a deleted newest entry.
    assert_eq!(redis_cli(&broker, &["XADD", "emptied", "7000-0", "n", "1"]).trim(), "7000-0");
    assert_eq!(redis_cli(&broker, &["XDEL", "emptied", "7000-0"]).trim(), "1");
    assert_eq!(redis_cli(&broker, &["XSETID", "emptied", "6000-0"]).trim(), "OK");
    broker.restart();
    assert_eq!(xinfo_stream_field(&broker, "emptied", "last-generated-id"), "6000-0", "XSETID's, across a restart");
    assert_eq!(redis_cli(&broker, &["XADD", "emptied", "6000-*", "n", "1"]).trim(), "6000-1");
}

/// A stream emptied by a Kafka client's DeleteRecords keeps its last ID as one trimmed empty
/// does: the same log behind both front doors, so the same rule that IDs only grow.
#[test]
fn a_stream_emptied_by_kafka_delete_records_keeps_its_last_id_across_a_restart() {
    require_python!();
    if !redis_cli_installed() {
        eprintln!("SKIPPED: redis-cli is not installed (tests/run installs redis-tools)");
        return;
    }
    let mut broker = Broker::builder().shards(2).start();
    assert_eq!(redis_cli(&broker, &["XADD", "kafka-emptied", "5000-5", "n", "1"]).trim(), "5000-5");
    assert_eq!(redis_cli(&broker, &["XADD", "kafka-emptied", "5000-6", "n", "2"]).trim(), "5000-6");
    broker.python("retention.py", &["delete-records", "--topic", "kafka-emptied", "--offset", "2"]);
    assert_emptied_with_last_id(&broker, "kafka-emptied", "5000-6", "3000-1", "before a restart");
    broker.restart();
    assert_emptied_with_last_id(&broker, "kafka-emptied", "5000-6", "3000-1", "after a restart");
    assert_eq!(redis_cli(&broker, &["XADD", "kafka-emptied", "5000-*", "n", "1"]).trim(), "5000-7");
}

/// Moving from Redis: a redis-server's AOF rewrite of streams, groups and pending entries,
/// replayed into sluice with `redis-cli --pipe`, gives the same streams (tests/py/redis_aof.py).
#[test]
fn a_redis_aof_of_streams_replays_into_sluice() {
    require_python!();
    if !redis_cli_installed() || Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIPPED: redis-server or redis-cli is not installed (tests/run installs redis-server)");
        return;
    }
    let broker = Broker::builder().shards(2).start();
    let resp = broker.resp_addr();
    broker.python("redis_aof.py", &["--resp", &resp]);
}

/// redis-benchmark: 50 clients pipelining XADDs into one new stream (they race to create it),
/// every one acknowledged and stored.
#[test]
fn redis_benchmark_pipelined_xadds_all_land() {
    const REQUESTS: usize = 20_000;
    if Command::new("redis-benchmark").arg("--version").output().is_err() {
        eprintln!("SKIPPED: redis-benchmark is not installed (tests/run installs redis-tools)");
        return;
    }
    let broker = Broker::builder().shards(2).start();
    let (host, port) = broker.resp_addr().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", &host, "-p", &port, "-n", &REQUESTS.to_string(), "-c", "50", "-P", "16", "-q"]);
    command.args(["XADD", "bench:stream", "*", "field", "value-of-about-thirty-bytes...."]);
    let finished = Running::spawn(command, None).wait(SCRIPT_TIMEOUT);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    assert!(!finished.stdout.contains("Error"), "{}", finished.failure_report());
    assert_eq!(redis_cli(&broker, &["XLEN", "bench:stream"]).trim(), REQUESTS.to_string());
}
