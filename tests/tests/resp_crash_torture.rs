//! Story: Redis users lose data on restart unless they tune it; sluice must not. A writer
//! XADDs and a worker XREADGROUPs and XACKs without pause while the broker is killed with
//! SIGKILL, again and again. After every restart each acknowledged XADD is there once with its
//! fields, no acknowledged XACK comes back as pending, and work carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::Duration;

use sluice_tests::{count_lines, require_python, wait_until, Broker, SCRIPT_TIMEOUT};

const ROUNDS: usize = 3;
/// Acknowledged XADDs and XACKs to see in a round before its crash.
const ACKED_BEFORE_CRASH_MIN: usize = 150;
const ACKED_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra delay before each crash, so they land at different points.
const CRASH_DELAYS_MS: [u64; ROUNDS] = [0, 130, 370];

#[test]
fn acknowledged_xadds_and_xacks_survive_repeated_kill_9() {
    require_python!();
    let mut broker = Broker::builder().shards(2).start();
    let dir = broker.data_dir().parent().unwrap().join("torture");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_text = dir.to_str().unwrap().to_string();
    let resp = broker.resp_addr();
    let rounds = ROUNDS.to_string();
    for (round, delay_ms) in CRASH_DELAYS_MS.iter().enumerate() {
        let (added_before, acked_before) = (count_lines(&dir.join("added")), count_lines(&dir.join("acked")));
        let mut worker = broker.spawn_python(
            "resp_torture.py",
            &["--resp", &resp, "work", "--stream", "torture:jobs", "--dir", &dir_text],
        );
        let busy = wait_until(ACKED_WAIT_TIMEOUT, || {
            count_lines(&dir.join("added")) >= added_before + ACKED_BEFORE_CRASH_MIN
                && count_lines(&dir.join("acked")) >= acked_before + ACKED_BEFORE_CRASH_MIN
        });
        assert!(busy, "round {round}: the writer and the worker did not get going");
        thread::sleep(Duration::from_millis(*delay_ms));
        assert!(!worker.has_exited(), "round {round}: the worker stopped before the crash");
        broker.restart();
        let _ = worker.wait(SCRIPT_TIMEOUT);
        let out = broker.python(
            "resp_torture.py",
            &["--resp", &resp, "check", "--stream", "torture:jobs", "--dir", &dir_text, "--rounds", &rounds],
        );
        eprintln!("round {}: {}", round + 1, out.trim());
    }
}
