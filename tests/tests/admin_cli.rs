//! Story: an operator runs the `sluice` admin commands against a running broker, over its
//! Kafka port as from another machine. They create, list, describe and delete topics and read
//! the tables; pipe lines into `sluice produce` and get exactly those lines back from
//! `sluice consume`; watch a kafka-python consumer group's members, assignments and lag with
//! `sluice group describe`; and when something is wrong, get exit code 1 with the Kafka error
//! name if the broker refused, 2 if the command line was wrong or the broker unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_tests::{require_kcat, require_python, sluice_bin, unique_topic, wait_until, Broker, Finished, Running};

/// Bound on one admin command.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the consumer group forming and committing.
const GROUP_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `sluice <args> --bootstrap <bootstrap>` with `stdin` (else /dev/null).
fn sluice(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> Finished {
    let mut command = Command::new(sluice_bin());
    command.args(args).arg("--bootstrap").arg(bootstrap).env_remove("SLUICE_BOOTSTRAP");
    Running::spawn(command, stdin.map(<[u8]>::to_vec)).wait(CLI_TIMEOUT)
}

fn exit_code(finished: &Finished) -> Option<i32> {
    finished.status.and_then(|status| status.code())
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &Broker, args: &[&str]) -> String {
    let finished = sluice(&broker.bootstrap(), args, None);
    assert_eq!(exit_code(&finished), Some(0), "{}", finished.failure_report());
    assert_eq!(finished.stderr, "", "{}", finished.failure_report());
    finished.stdout
}

/// Runs a command that must fail with `code`, its stderr naming `expected`; returns stderr.
fn fails(bootstrap: &str, args: &[&str], code: i32, expected: &str) -> String {
    let finished = sluice(bootstrap, args, None);
    assert_eq!(exit_code(&finished), Some(code), "{}", finished.failure_report());
    assert!(finished.stderr.contains(expected), "expected {expected:?} in stderr: {}", finished.failure_report());
    assert_eq!(finished.stdout, "", "{}", finished.failure_report());
    finished.stderr
}

/// The whitespace-separated cells of the table row whose first cells are `first`.
fn row<'a>(table: &'a str, first: &[&str]) -> Option<Vec<&'a str>> {
    table.lines().map(|line| line.split_whitespace().collect::<Vec<_>>()).find(|cells| cells.starts_with(first))
}

#[test]
fn operator_creates_lists_describes_alters_and_deletes_topics() {
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cli-topics");

    let created = ok(&broker, &["topic", "create", &topic, "--partitions", "3", "--config", "retention.ms=3600000"]);
    assert_eq!(created, format!("created topic {topic} with 3 partitions\n"));
    fails(&bootstrap, &["topic", "create", &topic], 1, "TOPIC_ALREADY_EXISTS: a topic with this name already exists.");

    let listed = ok(&broker, &["topic", "list"]);
    assert!(listed.starts_with("TOPIC "), "{listed}");
    let listed_row = row(&listed, &[&topic]).unwrap_or_else(|| panic!("{topic} not listed: {listed}"));
    assert_eq!(listed_row[1], "3", "{listed}");

    ok(&broker, &["produce", &topic, "--partition", "1", "--value", "one record"]);
    let described = ok(&broker, &["topic", "describe", &topic]);
    assert_eq!(row(&described, &["partitions"]), Some(vec!["partitions", "3"]), "{described}");
    assert_eq!(row(&described, &["0"]), Some(vec!["0", "0", "0", "0"]), "partition, leader, start, end: {described}");
    assert_eq!(row(&described, &["1"]), Some(vec!["1", "0", "0", "1"]), "one record in partition 1: {described}");
    assert_eq!(row(&described, &["2"]), Some(vec!["2", "0", "0", "0"]), "{described}");
    assert_eq!(
        row(&described, &["retention.ms"]),
        Some(vec!["retention.ms", "3600000", "topic", "override"]),
        "{described}"
    );
    assert_eq!(row(&described, &["segment.ms"]), Some(vec!["segment.ms", "604800000", "default"]), "{described}");

    fails(&bootstrap, &["topic", "create", "other", "--config", "retention.ms"], 2, "expected KEY=VALUE");
    fails(&bootstrap, &["topic", "create", "other", "--config", "retention.ms=soon"], 1, "INVALID_CONFIG");
    fails(&bootstrap, &["topic", "create", "other", "--partitions", "0"], 2, "--partitions");

    let altered =
        ok(&broker, &["topic", "alter", &topic, "--config", "segment.ms=60000", "--delete-config", "retention.ms"]);
    assert_eq!(altered, format!("altered topic {topic}: 1 set, 1 back to default\n"));
    let described = ok(&broker, &["topic", "describe", &topic]);
    assert_eq!(row(&described, &["segment.ms"]), Some(vec!["segment.ms", "60000", "topic", "override"]), "{described}");
    assert_eq!(row(&described, &["retention.ms"]), Some(vec!["retention.ms", "604800000", "default"]), "{described}");
    fails(&bootstrap, &["topic", "alter", &topic, "--config", "segment.ms=never"], 1, "INVALID_CONFIG");
    fails(
        &bootstrap,
        &["topic", "alter", "no-such-topic", "--config", "segment.ms=1"],
        1,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    fails(&bootstrap, &["topic", "alter", &topic], 2, "--config");

    assert_eq!(ok(&broker, &["topic", "delete", &topic]), format!("deleted topic {topic}\n"));
    fails(&bootstrap, &["topic", "describe", &topic], 1, "UNKNOWN_TOPIC_OR_PARTITION");
    fails(&bootstrap, &["topic", "delete", &topic], 1, "UNKNOWN_TOPIC_OR_PARTITION");
    let listed = ok(&broker, &["topic", "list"]);
    assert!(row(&listed, &[&topic]).is_none(), "{topic} still listed: {listed}");
}

/// What an operator might pipe in: empty lines, tabs, non-ASCII, a carriage return, a long
/// line, enough lines for several batches, no newline after the last one.
fn awkward_lines() -> Vec<u8> {
    let mut input = String::new();
    for index in 0..2_500 {
        input.push_str(&format!("line {index}\n"));
    }
    input.push_str("\n\ttabbed\tvalue\ngrüße, 日本\nwindows\r\n");
    input.push_str(&"x".repeat(100_000));
    input.push_str("\nlast line without newline");
    input.into_bytes()
}

#[test]
fn lines_produced_come_back_identical() {
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cli-lines");
    ok(&broker, &["topic", "create", &topic, "--partitions", "1"]);
    let input = awkward_lines();
    let lines = input.split(|byte| *byte == b'\n').count();

    let produced = sluice(&bootstrap, &["produce", &topic], Some(&input));
    assert_eq!(exit_code(&produced), Some(0), "{}", produced.failure_report());
    assert_eq!(produced.stdout, format!("produced {lines} records to {topic}: partition 0 offsets 0-{}\n", lines - 1));

    let mut expected = input.clone();
    expected.push(b'\n');
    let max = lines.to_string();
    let consumed = sluice(&bootstrap, &["consume", &topic, "--max-messages", &max], None);
    assert_eq!(exit_code(&consumed), Some(0), "{}", consumed.failure_report());
    assert!(consumed.stdout.as_bytes() == expected, "consumed output differs from the input");

    // Without a count it stops once nothing new came for --timeout-ms.
    let started = Instant::now();
    let consumed = sluice(&bootstrap, &["consume", &topic, "--timeout-ms", "300"], None);
    assert_eq!(exit_code(&consumed), Some(0), "{}", consumed.failure_report());
    assert!(consumed.stdout.as_bytes() == expected, "consumed output differs from the input");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    let tail = ok(&broker, &["consume", &topic, "--partition", "0", "--from", "2499", "--max-messages", "3"]);
    assert_eq!(tail, "line 2499\n\n\ttabbed\tvalue\n");
    let nothing_new = ok(&broker, &["consume", &topic, "--from", "latest", "--timeout-ms", "200"]);
    assert_eq!(nothing_new, "");

    // A reader that goes away (`| head`) ends the command at once, with 0.
    let pipeline =
        format!("'{}' consume {topic} --bootstrap {bootstrap} --timeout-ms 20000 | head -n 1", sluice_bin().display());
    let started = Instant::now();
    let mut command = Command::new("bash");
    command.args(["-o", "pipefail", "-c", &pipeline]).env_remove("SLUICE_BOOTSTRAP");
    let finished = Running::spawn(command, None).wait(CLI_TIMEOUT);
    assert_eq!(exit_code(&finished), Some(0), "{}", finished.failure_report());
    assert_eq!(finished.stdout, "line 0\n");
    assert!(started.elapsed() < Duration::from_secs(10), "waited for the idle timeout: {:?}", started.elapsed());
}

#[test]
fn keys_acks_and_partitions() {
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cli-keys");
    ok(&broker, &["topic", "create", &topic, "--partitions", "4"]);

    // One key: every record on the partition the key hashes to, offsets printed per record.
    let keyed = sluice(&bootstrap, &["produce", &topic, "--key", "customer-7", "--print-offsets"], Some(b"a\nb\nc\n"));
    assert_eq!(exit_code(&keyed), Some(0), "{}", keyed.failure_report());
    let placed: Vec<(String, String)> = keyed
        .stdout
        .lines()
        .map(|line| line.split_once('\t').map(|(p, o)| (p.to_string(), o.to_string())).expect("partition\toffset"))
        .collect();
    assert_eq!(placed.len(), 3, "{}", keyed.stdout);
    let partition = placed[0].0.clone();
    assert!(placed.iter().all(|(p, _)| *p == partition), "{placed:?}");
    assert_eq!(placed.iter().map(|(_, o)| o.as_str()).collect::<Vec<_>>(), ["0", "1", "2"]);
    let with_keys = ok(&broker, &["consume", &topic, "--partition", &partition, "--print-keys", "--timeout-ms", "300"]);
    assert_eq!(with_keys, "customer-7\ta\ncustomer-7\tb\ncustomer-7\tc\n");

    // acks=0 has no offsets to print, and the records are there once the command returns.
    let other = ((partition.parse::<i32>().unwrap() + 1) % 4).to_string();
    let unacked = sluice(&bootstrap, &["produce", &topic, "--partition", &other, "--acks", "0"], Some(b"x\ny\n"));
    assert_eq!(exit_code(&unacked), Some(0), "{}", unacked.failure_report());
    assert!(unacked.stdout.starts_with("sent 2 records"), "{}", unacked.stdout);
    assert_eq!(ok(&broker, &["consume", &topic, "--partition", &other, "--max-messages", "2"]), "x\ny\n");
    let acked = ok(&broker, &["produce", &topic, "--partition", &other, "--acks", "1", "--value", "z"]);
    assert_eq!(acked, format!("produced 1 record to {topic}: partition {other} offset 2\n"));
    fails(&bootstrap, &["consume", &topic, "--partition", &other, "--from", "99"], 1, "OFFSET_OUT_OF_RANGE");

    // No partition and no key: round robin, a batch at a time. 2,500 lines are at least three
    // batches of at most 1,000, so at least three partitions.
    let spread = unique_topic("cli-round-robin");
    ok(&broker, &["topic", "create", &spread, "--partitions", "4"]);
    let lines: Vec<u8> = (0..2_500).flat_map(|index| format!("r{index}\n").into_bytes()).collect();
    let produced = sluice(&bootstrap, &["produce", &spread], Some(&lines));
    assert_eq!(exit_code(&produced), Some(0), "{}", produced.failure_report());
    let described = ok(&broker, &["topic", "describe", &spread]);
    let ends: Vec<u64> =
        (0..4).map(|partition| row(&described, &[&partition.to_string()]).unwrap()[3].parse().unwrap()).collect();
    assert_eq!(ends.iter().sum::<u64>(), 2_500, "{described}");
    assert!(ends.iter().filter(|end| **end > 0).count() >= 3, "{described}");

    fails(&bootstrap, &["produce", &topic, "--acks", "2", "--value", "v"], 2, "expected 0, 1 or all");
    fails(&bootstrap, &["produce", &topic, "--partition", "9", "--value", "v"], 2, "partition 9 does not exist");
    fails(&bootstrap, &["consume", &topic, "--partition", "9"], 2, "partition 9 does not exist");
    fails(&bootstrap, &["consume", &topic, "--from", "soon"], 2, "expected earliest, latest or an offset");
}

#[test]
fn other_clients_read_what_it_writes_and_it_reads_their_compressed_batches() {
    require_kcat!();
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("cli-kcat");
    ok(&broker, &["topic", "create", &topic, "--partitions", "1"]);

    let produced = sluice(&bootstrap, &["produce", &topic, "--key", "from-cli"], Some(b"one\ntwo\n"));
    assert_eq!(exit_code(&produced), Some(0), "{}", produced.failure_report());
    let read = broker.kcat(&["-C", "-t", &topic, "-e", "-o", "beginning", "-f", "%o %k=%s\n"], b"");
    assert_eq!(read, "0 from-cli=one\n1 from-cli=two\n");

    for codec in ["gzip", "zstd"] {
        let input = format!("k-{codec}:{codec} first\nk-{codec}:{codec} second\n");
        let args = ["-P", "-t", &topic, "-K:", "-z", codec, "-X", "topic.request.required.acks=all"];
        broker.kcat(&args, input.as_bytes());
    }
    let consumed = ok(&broker, &["consume", &topic, "--from", "2", "--print-keys", "--max-messages", "4"]);
    assert_eq!(consumed, "k-gzip\tgzip first\nk-gzip\tgzip second\nk-zstd\tzstd first\nk-zstd\tzstd second\n");
}

#[test]
fn group_describe_shows_members_assignments_and_lag() {
    require_python!();
    let broker = Broker::builder().args(["--group-initial-rebalance-delay-ms", "0"]).start();
    let bootstrap = broker.bootstrap();
    let (topic, group) = (unique_topic("cli-lag"), unique_topic("cli-group"));
    ok(&broker, &["topic", "create", &topic, "--partitions", "2"]);
    let ten: Vec<u8> = (0..10).flat_map(|index| format!("p0-{index}\n").into_bytes()).collect();
    let six: Vec<u8> = (0..6).flat_map(|index| format!("p1-{index}\n").into_bytes()).collect();
    for (partition, lines) in [("0", &ten), ("1", &six)] {
        let produced = sluice(&bootstrap, &["produce", &topic, "--partition", partition], Some(lines));
        assert_eq!(exit_code(&produced), Some(0), "{}", produced.failure_report());
    }

    let signals = tempfile::tempdir().unwrap();
    let (ready, stop) = (signals.path().join("ready"), signals.path().join("stop"));
    let consumer = broker.spawn_python(
        "admin_cli_group.py",
        &[
            "--topic",
            &topic,
            "--group",
            &group,
            "--expect",
            "16",
            "--commit",
            "0=7,1=6",
            "--ready-file",
            ready.to_str().unwrap(),
            "--stop-file",
            stop.to_str().unwrap(),
        ],
    );
    let mut consumer = Some(consumer);
    let formed = wait_until(GROUP_READY_TIMEOUT, || ready.exists() || consumer.as_mut().unwrap().has_exited());
    if !ready.exists() {
        let finished = consumer.take().unwrap().wait(Duration::from_secs(1));
        panic!("the consumer did not commit (formed: {formed}): {}", finished.failure_report());
    }

    let groups = ok(&broker, &["group", "list"]);
    assert_eq!(row(&groups, &[&group]), Some(vec![group.as_str(), "Stable", "consumer"]), "{groups}");

    let described = ok(&broker, &["group", "describe", &group]);
    assert_eq!(row(&described, &["state"]), Some(vec!["state", "Stable"]), "{described}");
    assert_eq!(row(&described, &["members"]), Some(vec!["members", "1"]), "{described}");
    assert_eq!(row(&described, &["total", "lag"]), Some(vec!["total", "lag", "3"]), "{described}");
    let member = described
        .lines()
        .find(|line| line.contains("admin-cli-test"))
        .unwrap_or_else(|| panic!("no member with the consumer's client id: {described}"));
    let member: Vec<&str> = member.split_whitespace().collect();
    assert_eq!(member[1..], ["admin-cli-test", "/127.0.0.1", &format!("{topic}[0,1]")], "{described}");
    let member_id = member[0];
    assert_eq!(row(&described, &[&topic, "0"]), Some(vec![topic.as_str(), "0", "7", "10", "3", member_id]));
    assert_eq!(row(&described, &[&topic, "1"]), Some(vec![topic.as_str(), "1", "6", "6", "0", member_id]));

    // Once the consumer leaves, the group is Empty and its offsets and lag stay.
    std::fs::write(&stop, b"stop").unwrap();
    broker.expect_success(consumer.take().unwrap().wait(CLI_TIMEOUT));
    let described = ok(&broker, &["group", "describe", &group]);
    assert_eq!(row(&described, &["state"]), Some(vec!["state", "Empty"]), "{described}");
    assert_eq!(row(&described, &["members"]), Some(vec!["members", "0"]), "{described}");
    assert_eq!(row(&described, &[&topic, "0"]), Some(vec![topic.as_str(), "0", "7", "10", "3", "-"]), "{described}");
}

#[test]
fn errors_exit_1_from_the_broker_and_2_for_usage_or_connection() {
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();

    let stderr = fails(&bootstrap, &["topic", "describe", "no-such-topic"], 1, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(
        stderr,
        "sluice: cannot describe topic 'no-such-topic': UNKNOWN_TOPIC_OR_PARTITION: the broker has no such topic \
         or partition.\n"
    );
    fails(&bootstrap, &["consume", "no-such-topic"], 1, "UNKNOWN_TOPIC_OR_PARTITION");
    fails(&bootstrap, &["group", "describe", "no-such-group"], 1, "GROUP_ID_NOT_FOUND");
    fails(&bootstrap, &["topic", "create", "bad name!"], 1, "INVALID_TOPIC_EXCEPTION");

    // Nothing listens on a port that was just free.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("127.0.0.1:{port}");
    let stderr = fails(&unreachable, &["topic", "list"], 2, "connection refused");
    assert_eq!(stderr, format!("sluice: cannot connect to {unreachable}: connection refused\n"));
    fails("no-port-here", &["group", "list"], 2, "cannot connect to no-port-here");
    // The broker's Redis port is not its Kafka port; a port that accepts and stays silent is
    // given up on after the handshake timeout (5 s).
    fails(&broker.resp_addr(), &["topic", "list"], 2, "did not answer like a Kafka broker");
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_address = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let stderr = fails(&silent_address, &["topic", "list"], 2, "did not answer like a Kafka broker");
    assert!(stderr.contains("no answer to ApiVersions (timed out)"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    drop(silent);

    fails(&bootstrap, &["produce"], 2, "<TOPIC>");
    fails(&bootstrap, &["topic", "frobnicate"], 2, "unrecognized subcommand");
}
