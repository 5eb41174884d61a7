//! Story: an operator measures a broker with `sluice-bench`. A two-second acks=all produce run
//! reports what it measured, without errors, and every message it counted as acknowledged is
//! there to be read back by `sluice-bench consume`. Consumers following a run from the topic's
//! end read exactly what was acknowledged and time it end to end. A run the broker refuses
//! (messages larger than max.message.bytes) fails loudly instead of reporting a figure. Given a
//! directory on the data disk, a run measures that disk before and after itself and reports its
//! throughput as a ratio of the better figure.
//!
//! No performance is asserted here: figures depend on the machine (see README, Benchmarks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{acknowledged_total, sluice_bench, sluice_bench_report, unique_topic, Broker};

#[test]
fn an_acks_all_run_reports_its_figures_and_everything_acknowledged_can_be_read_back() {
    let broker = Broker::builder().shards(2).start();
    let topic = unique_topic("bench");
    let (produced, report) = sluice_bench_report(&[
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--partitions",
        "2",
        "--producers",
        "2",
        "--records-per-batch",
        "16",
        "--acks",
        "all",
        "--in-flight",
        "4",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "2",
    ]);
    assert!(produced.stdout.contains("msgs/s") && produced.stdout.contains("p99.9"), "{}", produced.stdout);
    assert!(produced.stderr.contains("produce measure"), "a progress line every second:\n{}", produced.stderr);
    assert_eq!(report["result"]["partitions"], 2, "{report:#}");
    let acked_total = acknowledged_total(&report, "latency");
    assert_eq!(acked_total % 16, 0, "whole 16-record batches were acknowledged: {report:#}");

    let (_, read) = sluice_bench_report(&[
        "consume",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--no-loopback",
        "--quiet",
    ]);
    assert_eq!(read["result"]["reached_end"], true, "{read:#}");
    assert_eq!(
        read["result"]["messages"].as_u64().unwrap(),
        acked_total,
        "every acknowledged message is in the log, and nothing else: {read:#}"
    );
}

#[test]
fn consumers_following_a_produce_run_over_several_topics_read_what_was_acknowledged_and_time_it() {
    let broker = Broker::builder().shards(2).start();
    let topic = unique_topic("bench-follow");
    // Something already in the topics: followers start at their end and do not read it.
    let before = sluice_bench(&[
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--topics",
        "3",
        "--messages",
        "64",
        "--warmup-s",
        "0",
        "--quiet",
    ]);
    assert!(before.succeeded(), "{}", before.failure_report());

    let (run, report) = sluice_bench_report(&[
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--topics",
        "3",
        "--producers",
        "2",
        "--records-per-batch",
        "4",
        "--message-bytes",
        "100",
        "--rate",
        "4000",
        "--consumers",
        "3",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "2",
    ]);
    assert!(run.stdout.contains("end to end (ms)"), "{}", run.stdout);
    let acked = acknowledged_total(&report, "latency");
    let consumers = &report["result"]["consumers"];
    assert_eq!(consumers["errors"], 0, "{report:#}");
    assert_eq!(consumers["consumers"], 3, "{report:#}");
    assert_eq!(report["result"]["partitions"], 6, "3 topics of 2 partitions: {report:#}");
    assert_eq!(consumers["messages_read_total"].as_u64(), Some(acked), "exactly what was acknowledged: {report:#}");
    let end_to_end = &consumers["end_to_end_latency"];
    assert!(end_to_end["count"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(end_to_end["count"].as_u64().unwrap() % 4, 0, "once per record of each batch: {report:#}");
    assert!(end_to_end["p50_ms"].as_f64().unwrap() <= end_to_end["max_ms"].as_f64().unwrap(), "{report:#}");

    // The three topics hold the 64 written before and everything acknowledged, nothing else.
    let (_, read) = sluice_bench_report(&[
        "consume",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--topics",
        "3",
        "--consumers",
        "2",
        "--no-loopback",
        "--quiet",
    ]);
    assert_eq!(read["result"]["partitions"], 6, "{read:#}");
    assert_eq!(read["result"]["messages"].as_u64(), Some(64 + acked), "{read:#}");
}

#[test]
fn a_run_the_broker_refuses_exits_non_zero_and_names_the_error() {
    let broker = Broker::builder().shards(2).start();
    let topic = unique_topic("bench-too-large");

    // One 2 MB record per batch: over the default max.message.bytes (1 MiB).
    let refused = sluice_bench(&[
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--message-bytes",
        "2000000",
        "--records-per-batch",
        "1",
        "--messages",
        "3",
        "--warmup-s",
        "0",
        "--quiet",
    ]);
    assert_eq!(refused.status.and_then(|status| status.code()), Some(1), "{}", refused.failure_report());
    assert!(refused.stdout.contains("errors          3"), "{}", refused.failure_report());
    assert!(refused.stdout.contains("MessageTooLarge (10)"), "{}", refused.failure_report());
    assert!(refused.stderr.contains("3 errors"), "{}", refused.failure_report());
}

#[test]
fn a_run_with_a_disk_dir_measures_the_disk_before_and_after_and_divides_by_the_better() {
    let broker = Broker::builder().shards(2).start();
    let topic = unique_topic("bench-disk");
    let disk_dir = tempfile::tempdir().unwrap();
    let (produced, report) = sluice_bench_report(&[
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        &topic,
        "--records-per-batch",
        "16",
        "--acks",
        "all",
        "--warmup-s",
        "0",
        "--duration-s",
        "1",
        "--disk-dir",
        disk_dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    let best_of = |disk: &serde_json::Value| {
        let one = disk["write_mb_per_s_one_writer"].as_f64().unwrap();
        let parallel = disk["write_mb_per_s_parallel"].as_f64().unwrap();
        assert!(one > 0.0 && parallel > 0.0, "{report:#}");
        one.max(parallel)
    };
    let best = best_of(&report["disk"]).max(best_of(&report["disk_after"]));
    let payload = report["result"]["payload_mb_per_s"].as_f64().unwrap();
    let ratio = report["ratio_to_disk"].as_f64().unwrap();
    assert!(payload > 0.0 && (ratio - payload / best).abs() <= 1e-9 * ratio.abs().max(1.0), "{report:#}");
    for line in ["the disk, before the run:", "the disk, after the run:", "ratio to disk"] {
        assert!(produced.stdout.contains(line), "{line}: {}", produced.stdout);
    }
    let left: Vec<_> = std::fs::read_dir(disk_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the measurements remove their scratch files: {left:?}");
}
