//! Story: an operator measures sluice's Redis Streams side with `sluice-bench`. A two-second
//! XADD run reports its figures without errors, and the stream holds exactly the entries the
//! run counted as acknowledged, each with its send time and payload. A consumer-group run with
//! producers alongside reads every acknowledged entry once, acknowledges all of them, and
//! reports end-to-end latency. Runs the server refuses fail loudly instead of reporting a
//! figure.
//!
//! No performance is asserted here: figures depend on the machine (see README, Benchmarks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_tests::{acknowledged_total, sluice_bench, sluice_bench_report, unique_topic, Broker};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP connection of the test's own, independent of the tool under test.
struct Resp {
    reader: BufReader<TcpStream>,
}

impl Resp {
    fn connect(broker: &Broker) -> Resp {
        let stream = TcpStream::connect(broker.resp_addr()).expect("connect to the RESP listener");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Resp { reader: BufReader::new(stream) }
    }

    fn send(&mut self, arguments: &[&str]) {
        let mut command = format!("*{}\r\n", arguments.len());
        for argument in arguments {
            command += &format!("${}\r\n{argument}\r\n", argument.len());
        }
        self.reader.get_mut().write_all(command.as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "a whole RESP line, got {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// An integer reply.
    fn integer(&mut self, arguments: &[&str]) -> u64 {
        self.send(arguments);
        let line = self.line();
        line.strip_prefix(':').and_then(|number| number.parse().ok()).unwrap_or_else(|| panic!("{arguments:?}: {line}"))
    }

    /// The raw bytes of a reply to a command whose reply ends with `ending` (arrays whose
    /// shape the test knows).
    fn raw_until(&mut self, arguments: &[&str], ending: &[u8]) -> Vec<u8> {
        self.send(arguments);
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(ending) {
            self.reader.read_exact(&mut byte).unwrap();
            raw.push(byte[0]);
        }
        raw
    }
}

#[test]
fn an_xadd_run_reports_its_figures_and_the_stream_holds_exactly_what_was_acknowledged() {
    let broker = Broker::builder().shards(2).start();
    let stream = unique_topic("bench-xadd");
    let (run, report) = sluice_bench_report(&[
        "xadd",
        "--resp",
        &broker.resp_addr(),
        "--stream",
        &stream,
        "--producers",
        "4",
        "--pipeline",
        "8",
        "--message-bytes",
        "100",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "2",
    ]);
    assert!(run.stdout.contains("msgs/s") && run.stdout.contains("p99.9"), "{}", run.stdout);
    assert!(run.stderr.contains("xadd measure"), "a progress line every second:\n{}", run.stderr);
    let acked_total = acknowledged_total(&report, "latency");
    assert_eq!(report["result"]["failed_messages"], 0, "{report:#}");

    let mut resp = Resp::connect(&broker);
    assert_eq!(resp.integer(&["XLEN", &stream]), acked_total, "the stream holds what was acknowledged, no more");
    // The first entry: `ts` with 16 digits of send time, then `data` with 100 bytes.
    let first = resp.raw_until(&["XRANGE", &stream, "-", "+", "COUNT", "1"], b"$4\r\ndata\r\n$100\r\n");
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("*1\r\n*2\r\n$"), "{first:?}");
    assert!(first.contains("\r\n*4\r\n$2\r\nts\r\n$16\r\n"), "{first:?}");
}

#[test]
fn a_consumer_group_reads_every_acknowledged_entry_once_and_times_it_end_to_end() {
    let broker = Broker::builder().shards(2).start();
    let stream = unique_topic("bench-group");
    let address = broker.resp_addr();
    let args = [
        "xreadgroup",
        "--resp",
        &address,
        "--stream",
        &stream,
        "--group",
        "workers",
        "--consumers",
        "2",
        "--producers",
        "2",
        "--rate",
        "2000",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "2",
    ];
    let (run, report) = sluice_bench_report(&args);
    assert!(run.stdout.contains("end to end (ms)"), "{}", run.stdout);
    let acked = acknowledged_total(&report, "end_to_end_latency");
    let result = &report["result"];
    assert_eq!(result["producers"]["errors"], 0, "{report:#}");
    let produced = result["producers"]["messages_acked_total"].as_u64().unwrap();
    assert_eq!(result["messages_read_total"].as_u64().unwrap(), produced, "each entry read once: {report:#}");
    assert_eq!(acked, produced, "each read acknowledged: {report:#}");

    let mut resp = Resp::connect(&broker);
    assert_eq!(resp.integer(&["XLEN", &stream]), produced);
    // XPENDING summary of a group with nothing pending: 0, then nil, nil and an empty list.
    let pending = resp.raw_until(&["XPENDING", &stream, "workers"], b"\r\n*-1\r\n");
    assert!(pending.starts_with(b"*4\r\n:0\r\n"), "nothing left pending: {:?}", String::from_utf8_lossy(&pending));

    // A second run cannot reuse the group: it would read the first run's leftovers.
    let again = sluice_bench(&args);
    assert_eq!(again.status.and_then(|status| status.code()), Some(1), "{}", again.failure_report());
    assert!(again.stderr.contains("exists already"), "{}", again.failure_report());
}

#[test]
fn xadds_the_server_refuses_fail_the_run_and_are_named() {
    let broker = Broker::builder().shards(2).start();

    // A space is not allowed in a sluice stream key (it names a topic): every XADD is refused.
    let refused = sluice_bench(&[
        "xadd",
        "--resp",
        &broker.resp_addr(),
        "--stream",
        "no spaces here",
        "--producers",
        "1",
        "--messages",
        "5",
        "--warmup-s",
        "0",
        "--quiet",
    ]);
    assert_eq!(refused.status.and_then(|status| status.code()), Some(1), "{}", refused.failure_report());
    assert!(refused.stdout.contains("errors          5"), "{}", refused.failure_report());
    assert!(refused.stdout.contains("ERR invalid stream key"), "{}", refused.failure_report());
    assert!(refused.stderr.contains("5 errors (5 entries not acknowledged)"), "{}", refused.failure_report());
}
