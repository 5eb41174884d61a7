//! Story: an operator restarts a broker too early, with the old one still running (or still
//! shutting down, when it no longer accepts connections), on other ports by mistake. The new
//! broker refuses the data directory at once, naming the old one's pid, and the old one keeps
//! serving untouched. After a crash (kill -9) nothing is left locked: the restart just works.
//! `sluice verify` refuses a directory a broker is running on, since the tails change under it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_tests::{resp, sluice_bin, Broker, Finished, Running};

/// A refused process must be gone within this (it does not wait for the lock).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// What `sluice serve` may take to exit when refused: no recovery, no executors, no waiting.
const REFUSAL_MS_MAX: u128 = 2_000;

fn run_sluice(args: &[String]) -> (Finished, Duration) {
    let mut command = Command::new(sluice_bin());
    command.args(args);
    let started = Instant::now();
    let finished = Running::spawn(command, None).wait(REFUSAL_TIMEOUT);
    (finished, started.elapsed())
}

fn exit_code(finished: &Finished) -> Option<i32> {
    finished.status.and_then(|status| status.code())
}

fn lock_file_contents(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join(".lock")).unwrap()
}

/// XADDs one entry and reads the stream back: the broker answers, and holds what it acknowledged.
fn xadd_and_read_back(broker: &Broker, stream: &str, id: &str, expected_entries: usize) {
    let mut connection = resp::connect(&broker.resp_addr());
    assert_eq!(resp::command(&mut connection, &["XADD", stream, id, "field", id]), id);
    let entries = resp::command(&mut connection, &["XRANGE", stream, "-", "+"]);
    for entry in 1..=expected_entries {
        assert!(entries.contains(&format!("{entry}-0 [field {entry}-0]")), "entry {entry}-0 missing: {entries}");
    }
    assert_eq!(resp::command(&mut connection, &["XLEN", stream]), format!(":{expected_entries}"));
}

#[test]
fn a_second_broker_on_a_data_dir_in_use_is_refused_and_the_first_keeps_serving() {
    let broker = Broker::builder().shards(1).start();
    xadd_and_read_back(&broker, "orders", "1-0", 1);
    let holder = lock_file_contents(broker.data_dir());
    let pid = broker.pid().unwrap();
    assert_eq!(holder, format!("{pid} serve\n"));

    // Same data dir, other ports (port 0: the listen-address probe cannot object).
    let mut args = broker.serve_args();
    for flag in ["--kafka-listen", "--resp-listen", "--http-listen"] {
        let at = args.iter().position(|arg| arg == flag).unwrap();
        args[at + 1] = "127.0.0.1:0".to_string();
    }
    let (finished, took) = run_sluice(&args);
    assert_eq!(exit_code(&finished), Some(1), "{}", finished.failure_report());
    let expected = format!(
        "sluice: data dir {} is in use by another sluice process (pid {pid}, sluice serve); \
         stop it first or choose another --data-dir\n",
        broker.data_dir().display()
    );
    assert!(finished.stderr.ends_with(&expected), "{}", finished.failure_report());
    assert!(!finished.stderr.contains("sluice starting"), "refused before starting\n{}", finished.failure_report());
    assert!(took.as_millis() <= REFUSAL_MS_MAX, "refusal took {took:?}");
    eprintln!("second broker refused in {took:?}");

    assert_eq!(lock_file_contents(broker.data_dir()), holder, "the refused broker leaves the lock file alone");
    xadd_and_read_back(&broker, "orders", "2-0", 2);
}

#[test]
fn a_broker_killed_with_sigkill_leaves_no_lock_behind() {
    let mut broker = Broker::start_default();
    xadd_and_read_back(&broker, "events", "1-0", 1);
    let first_pid = broker.pid().unwrap();
    // `restart` panics if the new process exits during start-up, as a refused one would.
    broker.restart();
    let second_pid = broker.pid().unwrap();
    assert_ne!(first_pid, second_pid);
    assert_eq!(lock_file_contents(broker.data_dir()), format!("{second_pid} serve\n"));
    xadd_and_read_back(&broker, "events", "2-0", 2);
}

#[test]
fn verify_refuses_a_data_dir_a_broker_runs_on() {
    let mut broker = Broker::builder().shards(1).start();
    xadd_and_read_back(&broker, "audit", "1-0", 1);
    let pid = broker.pid().unwrap();
    let args: Vec<String> = vec!["verify".into(), "--data-dir".into(), broker.data_dir().display().to_string()];
    let (finished, _) = run_sluice(&args);
    assert_eq!(exit_code(&finished), Some(2), "{}", finished.failure_report());
    let expected = format!(
        "sluice verify: data dir {} is in use by another sluice process (pid {pid}, sluice serve); \
         verify checks a stopped broker's files (a live broker's log changes under it): stop it first\n",
        broker.data_dir().display()
    );
    assert_eq!(finished.stderr, expected, "{}", finished.failure_report());
    assert_eq!(finished.stdout, "", "no report on a live broker's files");
    assert_eq!(lock_file_contents(broker.data_dir()), format!("{pid} serve\n"));

    assert!(broker.terminate().success(), "graceful stop");
    let (finished, _) = run_sluice(&args);
    assert_eq!(exit_code(&finished), Some(0), "{}", finished.failure_report());
    assert!(finished.stdout.contains(" 1 batches, "), "the XADD is checked\n{}", finished.failure_report());
    assert!(finished.stdout.contains(" 0 problems, 0 warnings: clean"), "{}", finished.failure_report());
}
