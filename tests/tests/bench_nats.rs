//! Story: an operator puts NATS JetStream next to sluice with `sluice-bench --nats`, the same
//! loads as over RESP. A two-second publish run reports its figures without errors, and the
//! JetStream stream holds exactly the messages the run counted as acknowledged, each with its
//! send time and payload. A pull-consumer run with producers alongside reads every
//! acknowledged message once, acknowledges all of them (the server has none pending after),
//! and reports end-to-end latency. A server without JetStream, or none at all, fails the run
//! with a message that says so.
//!
//! No performance is asserted here: figures depend on the machine (see README, Benchmarks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sluice_tests::nats::NatsServer;
use sluice_tests::{
    acknowledged_total, require_nats_server, sluice_bench, sluice_bench_report, unique_topic, POLL_INTERVAL,
};

/// How long JetStream may take to apply acknowledgements already sent.
const ACKS_APPLIED_TIMEOUT: Duration = Duration::from_secs(10);

/// Standard base64 (JetStream's encoding of stored headers and data), padding required.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        assert_eq!(chunk.len(), 4, "padded base64: {text}");
        let sextets: Vec<u32> = chunk
            .iter()
            .filter(|&&byte| byte != b'=')
            .map(|byte| ALPHABET.iter().position(|letter| letter == byte).expect("base64 letter") as u32)
            .collect();
        let bits = sextets.iter().fold(0u32, |bits, sextet| bits << 6 | sextet) << (6 * (4 - sextets.len()));
        out.extend_from_slice(&bits.to_be_bytes()[1..sextets.len()]);
    }
    out
}

#[test]
fn a_publish_run_reports_its_figures_and_the_stream_holds_exactly_what_was_acknowledged() {
    require_nats_server!();
    let server = NatsServer::start(true);
    let stream = unique_topic("bench-publish");
    let (run, report) = sluice_bench_report(&[
        "xadd",
        "--nats",
        &server.address(),
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
    assert!(run.stdout.contains("NATS JetStream") && run.stdout.contains("publish (ms)"), "{}", run.stdout);
    assert_eq!(report["config"]["wire"], "nats", "{report:#}");
    let acked_total = acknowledged_total(&report, "latency");
    assert_eq!(report["result"]["failed_messages"], 0, "{report:#}");

    let mut client = server.client();
    let info = client.jetstream(&format!("STREAM.INFO.{stream}"), "");
    assert_eq!(
        info["state"]["messages"].as_u64(),
        Some(acked_total),
        "the stream holds what was acknowledged: {info:#}"
    );
    assert_eq!(info["config"]["storage"], "file", "{info:#}");
    let first = client.jetstream(&format!("STREAM.MSG.GET.{stream}"), r#"{"seq":1}"#);
    let message = &first["message"];
    assert_eq!(message["subject"].as_str(), Some(stream.as_str()), "{first:#}");
    assert_eq!(base64_decode(message["data"].as_str().unwrap()).len(), 100, "{first:#}");
    let headers = String::from_utf8(base64_decode(message["hdrs"].as_str().unwrap())).unwrap();
    let sent_at = headers.strip_prefix("NATS/1.0\r\nts: ").and_then(|rest| rest.strip_suffix("\r\n\r\n"));
    assert!(
        sent_at.is_some_and(|digits| digits.len() == 16 && digits.bytes().all(|byte| byte.is_ascii_digit())),
        "{headers:?}"
    );
}

#[test]
fn a_pull_consumer_reads_every_acknowledged_message_once_and_times_it_end_to_end() {
    require_nats_server!();
    let server = NatsServer::start(true);
    let stream = unique_topic("bench-pull");
    let (run, report) = sluice_bench_report(&[
        "xreadgroup",
        "--nats",
        &server.address(),
        "--stream",
        &stream,
        "--group",
        "workers",
        "--consumers",
        "2",
        "--producers",
        "4",
        "--pipeline",
        "4",
        "--rate",
        "2000",
        "--count",
        "50",
        "--block-ms",
        "50",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "2",
    ]);
    assert!(run.stdout.contains("acknowledgements sent"), "{}", run.stdout);
    let acked = acknowledged_total(&report, "end_to_end_latency");
    let result = &report["result"];
    let produced = result["producers"]["messages_acked_total"].as_u64().unwrap();
    assert_eq!(
        result["messages_read_total"].as_u64(),
        Some(produced),
        "read exactly what was acknowledged: {report:#}"
    );
    assert_eq!(acked, produced, "{report:#}");

    // The server's side: everything delivered, nothing pending or awaiting an acknowledgement.
    let mut client = server.client();
    let started = Instant::now();
    let info = loop {
        let info = client.jetstream(&format!("CONSUMER.INFO.{stream}.workers"), "");
        if info["num_ack_pending"] == 0 || started.elapsed() > ACKS_APPLIED_TIMEOUT {
            break info;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    assert_eq!(info["num_ack_pending"], 0, "{info:#}");
    assert_eq!(info["num_pending"], 0, "{info:#}");
    assert_eq!(info["delivered"]["stream_seq"].as_u64(), Some(produced), "{info:#}");
    assert_eq!(info["config"]["ack_policy"], "explicit", "{info:#}");

    // A second run may not take over the first run's consumer.
    let again = sluice_bench(&["xreadgroup", "--nats", &server.address(), "--stream", &stream, "--group", "workers"]);
    assert!(!again.succeeded(), "{}", again.failure_report());
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
}

#[test]
fn a_server_without_jetstream_or_none_at_all_fails_the_run_with_a_reason() {
    require_nats_server!();
    let plain = NatsServer::start(false);
    let run = sluice_bench(&["xadd", "--nats", &plain.address(), "--duration-s", "1", "--warmup-s", "0"]);
    assert!(!run.succeeded(), "{}", run.failure_report());
    assert!(run.stderr.contains("is JetStream enabled?"), "{}", run.stderr);

    let address = plain.address();
    drop(plain);
    let run = sluice_bench(&["xadd", "--nats", &address, "--duration-s", "1", "--warmup-s", "0"]);
    assert!(!run.succeeded(), "{}", run.failure_report());
    assert!(run.stderr.contains("connecting to the NATS server"), "{}", run.stderr);
}
