//! Story: an operator checks a host with `tuning/sluice-tune check` and sees what `apply`
//! would change before letting it (`--dry-run` is the default); nothing changes without --yes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sluice_tests::Running;

const TUNE_TIMEOUT: Duration = Duration::from_secs(30);

fn tune(args: &[&str]) -> sluice_tests::Finished {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tuning/sluice-tune");
    let mut command = Command::new(script);
    command.args(args).env("SLUICE_TUNE_STATE", std::env::temp_dir().join("sluice-tune-test-never-written"));
    Running::spawn(command, None).wait(TUNE_TIMEOUT)
}

#[test]
fn check_reports_and_apply_dry_run_changes_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_str().unwrap();
    let check = tune(&["check", "--data-dir", dir]);
    assert!(check.succeeded(), "{}", check.failure_report());
    assert!(check.stdout.contains("/proc/sys/vm/swappiness"), "{}", check.failure_report());
    assert!(check.stdout.contains("RLIMIT_NOFILE"), "{}", check.failure_report());
    assert!(check.stdout.contains("as recommended,"), "{}", check.failure_report());
    let swappiness_before = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let dry_run = tune(&["apply", "--data-dir", dir]);
    assert!(dry_run.succeeded(), "{}", dry_run.failure_report());
    assert!(dry_run.stdout.starts_with("# dry run"), "{}", dry_run.failure_report());
    for line in dry_run.stdout.lines().skip(1) {
        assert!(line.starts_with("echo '") && line.contains("' > /"), "a command to run, got `{line}`");
    }
    assert_eq!(std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(), swappiness_before, "dry run changed it");
    let revert = tune(&["revert"]);
    assert_eq!(revert.status.and_then(|status| status.code()), Some(1), "{}", revert.failure_report());
    assert!(revert.stderr.contains("nothing saved"), "{}", revert.failure_report());
    let unknown = tune(&["tighten"]);
    assert_eq!(unknown.status.and_then(|status| status.code()), Some(2), "{}", unknown.failure_report());
}
