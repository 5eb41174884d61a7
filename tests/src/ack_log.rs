//! Driver for `tests/py/ack_log.py`, the durability check used by the crash and shutdown tests.
//!
//! A producer records every record the broker acknowledged (partition, offset, value) in a
//! JSON-lines file, one file per run; `verify` reads the whole topic back and checks every
//! acknowledged record from every run is still at its offset with its value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::{count_lines, unique_topic, Broker, Running};

/// Time allowed to a producer past its produce duration: flushing waits out the messages that
/// were in flight when the broker died (`MESSAGE_TIMEOUT_MS` in ack_log.py, plus margin).
const PRODUCER_FLUSH_ALLOWANCE: Duration = Duration::from_secs(60);

/// The acknowledged-records files of one topic, across runs and broker restarts.
#[derive(Debug)]
pub struct AckLog {
    topic: String,
    dir: TempDir,
    files: Vec<PathBuf>,
}

/// What `ack_log.py produce` reported.
#[derive(Debug)]
pub struct ProduceSummary {
    pub produced: u64,
    pub acked: u64,
    pub failed: u64,
}

/// What `ack_log.py verify` reported, after it checked every acknowledged record.
#[derive(Debug)]
pub struct VerifySummary {
    /// Records stored in the topic (acknowledged or not).
    pub records: u64,
    /// Acknowledged records found intact at their offsets.
    pub acked_checked: u64,
    pub high_watermarks: BTreeMap<u32, u64>,
}

/// An `ack_log.py produce` running in the background.
#[derive(Debug)]
pub struct BackgroundProducer {
    running: Running,
    acked_file: PathBuf,
}

impl AckLog {
    pub fn new(topic_prefix: &str) -> AckLog {
        AckLog {
            topic: unique_topic(topic_prefix),
            dir: tempfile::Builder::new().prefix("sluice-acked-").tempdir().expect("temp dir for acked files"),
            files: Vec::new(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Start producing as fast as possible for `duration` (creating the topic with
    /// `partitions` if needed), recording acknowledgements in a new file for `run`.
    pub fn start_producing(
        &mut self,
        broker: &Broker,
        run: &str,
        partitions: u32,
        duration: Duration,
    ) -> BackgroundProducer {
        let acked_file = self.new_file(run);
        let running = broker.spawn_python(
            "ack_log.py",
            &[
                "produce",
                "--topic",
                &self.topic,
                "--run",
                run,
                "--partitions",
                &partitions.to_string(),
                "--acked",
                &path_arg(&acked_file),
                "--duration-s",
                &duration.as_secs_f64().to_string(),
            ],
        );
        BackgroundProducer { running, acked_file }
    }

    /// Produce exactly `count` records on a healthy broker; ack_log.py checks every one is
    /// acknowledged and each partition's new offsets start at its previous high watermark.
    pub fn append_and_check_offsets_follow(&mut self, broker: &Broker, run: &str, count: u64) -> ProduceSummary {
        let acked_file = self.new_file(run);
        let stdout = broker.python(
            "ack_log.py",
            &[
                "produce",
                "--topic",
                &self.topic,
                "--run",
                run,
                "--acked",
                &path_arg(&acked_file),
                "--count",
                &count.to_string(),
                "--duration-s",
                "60",
                "--check-offsets-follow",
            ],
        );
        let summary = ProduceSummary::parse(&stdout);
        assert_eq!((summary.produced, summary.acked), (count, count), "every appended record should be acknowledged");
        summary
    }

    /// Acknowledged records recorded so far, over all runs.
    pub fn acked_total(&self) -> u64 {
        self.files.iter().map(|file| count_lines(file) as u64).sum()
    }

    /// Read the whole topic back and check every acknowledged record of every run.
    pub fn verify(&self, broker: &Broker) -> VerifySummary {
        let mut args = vec!["verify".to_string(), "--topic".to_string(), self.topic.clone()];
        for file in &self.files {
            args.push("--acked".to_string());
            args.push(path_arg(file));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let summary = VerifySummary::parse(&broker.python("ack_log.py", &args));
        assert_eq!(
            summary.acked_checked,
            self.acked_total(),
            "verify should check every acknowledged record exactly once"
        );
        assert!(
            summary.records >= summary.acked_checked,
            "the topic holds fewer records ({}) than were acknowledged ({})",
            summary.records,
            summary.acked_checked
        );
        summary
    }

    fn new_file(&mut self, run: &str) -> PathBuf {
        let file = self.dir.path().join(format!("acked-{run}.jsonl"));
        assert!(!file.exists(), "run name {run} used twice");
        self.files.push(file.clone());
        file
    }
}

impl BackgroundProducer {
    /// Records acknowledged so far in this run.
    pub fn acked_so_far(&self) -> u64 {
        count_lines(&self.acked_file) as u64
    }

    pub fn is_running(&mut self) -> bool {
        !self.running.has_exited()
    }

    /// Wait for the producer to finish its run and flush; assert it exited cleanly.
    pub fn finish(self, broker: &Broker, duration: Duration) -> ProduceSummary {
        let finished = self.running.wait(duration + PRODUCER_FLUSH_ALLOWANCE);
        ProduceSummary::parse(&broker.expect_success(finished))
    }
}

impl ProduceSummary {
    fn parse(stdout: &str) -> ProduceSummary {
        let json = last_json_line(stdout);
        ProduceSummary {
            produced: json_u64(&json, "produced"),
            acked: json_u64(&json, "acked"),
            failed: json_u64(&json, "failed"),
        }
    }
}

impl VerifySummary {
    fn parse(stdout: &str) -> VerifySummary {
        let json = last_json_line(stdout);
        let high_watermarks = json["high_watermarks"]
            .as_object()
            .unwrap_or_else(|| panic!("no high_watermarks in {json}"))
            .iter()
            .map(|(partition, high)| {
                let partition = partition.parse().expect("partition number");
                (partition, high.as_u64().expect("high watermark number"))
            })
            .collect();
        VerifySummary {
            records: json_u64(&json, "records"),
            acked_checked: json_u64(&json, "acked_checked"),
            high_watermarks,
        }
    }
}

/// The JSON object a script printed as its last line of stdout.
pub fn last_json_line(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| panic!("script printed nothing on stdout"));
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

fn json_u64(json: &Value, key: &str) -> u64 {
    json[key].as_u64().unwrap_or_else(|| panic!("no number {key} in {json}"))
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}
