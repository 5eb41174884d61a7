//! Story: an operator installs `sluice`, checks which version it is, and reads `serve --help`
//! to learn how to point it at a data directory and listen addresses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use sluice_tests::{sluice_bin, Finished, Running};

const CLI_TIMEOUT: Duration = Duration::from_secs(30);

fn run_sluice(args: &[&str]) -> Finished {
    let mut command = Command::new(sluice_bin());
    command.args(args);
    Running::spawn(command, None).wait(CLI_TIMEOUT)
}

#[test]
fn version_names_the_crate_version() {
    let finished = run_sluice(&["--version"]);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        finished.stdout.contains(version),
        "`sluice --version` should print version {version}, printed {:?}",
        finished.stdout
    );
}

#[test]
fn serve_help_lists_every_listener_and_storage_flag() {
    let finished = run_sluice(&["serve", "--help"]);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    for flag in ["--data-dir", "--kafka-listen", "--resp-listen", "--http-listen", "--shards"] {
        assert!(
            finished.stdout.contains(flag),
            "`sluice serve --help` should mention {flag}; it printed:\n{}",
            finished.stdout
        );
    }
}

#[test]
fn serve_rejects_an_unknown_flag_by_name() {
    let finished = run_sluice(&["serve", "--no-such-flag"]);
    assert!(
        finished.status.is_some_and(|status| !status.success()),
        "`sluice serve --no-such-flag` should fail\n{}",
        finished.failure_report()
    );
    assert!(
        finished.stderr.contains("--no-such-flag"),
        "the error should name the unknown flag\n{}",
        finished.failure_report()
    );
}

#[test]
fn a_second_broker_on_the_same_ports_refuses_to_start() {
    let broker = sluice_tests::Broker::builder().shards(1).start();
    let other_dir = tempfile::tempdir().unwrap();
    let mut args = broker.serve_args();
    let data_dir_flag = args.iter().position(|arg| arg == "--data-dir").expect("serve args name the data dir");
    args[data_dir_flag + 1] = other_dir.path().to_str().unwrap().to_string();
    let finished = run_sluice(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        finished.status.is_some_and(|status| !status.success()),
        "a second broker on the same listen addresses must not start\n{}",
        finished.failure_report()
    );
    assert!(finished.stderr.contains("is another broker running?"), "{}", finished.failure_report());
}
