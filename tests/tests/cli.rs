//! Story: an operator installs `sluice`, checks which version it is, and reads `serve --help`
//! to learn how to point it at a data directory and listen addresses. When the broker cannot
//! start (a port taken, a data dir it cannot use) it exits at once and says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_tests::{sluice_bin, Finished, Running};

const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker that cannot start may take to say so and exit.
const START_FAILURE_TIMEOUT: Duration = Duration::from_secs(10);
/// Shards for the start-up failure tests: with more than one, a failing shard has peers that
/// must stop too.
const START_FAILURE_SHARDS: &str = "2";

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

/// A TCP socket bound to a free loopback port but not listening, as another process holds a
/// port between bind and listen. Connecting to it is refused, so the broker's start-up check
/// (does something accept there?) passes, and only the shard binding the port finds it taken.
struct BoundNotListening {
    _socket: OwnedFd,
    port: u16,
}

impl BoundNotListening {
    fn on_a_free_port() -> Self {
        // SAFETY: socket(2), bind(2) and getsockname(2) on a descriptor this struct then owns,
        // with an address struct of the size passed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = OwnedFd::from_raw_fd(fd);
            let mut address: libc::sockaddr_in = std::mem::zeroed();
            address.sin_family = libc::AF_INET as libc::sa_family_t;
            address.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let address_pointer = std::ptr::addr_of_mut!(address).cast::<libc::sockaddr>();
            assert_eq!(libc::bind(fd, address_pointer, length), 0, "bind: {}", std::io::Error::last_os_error());
            assert_eq!(libc::getsockname(fd, address_pointer, &mut length), 0, "getsockname");
            Self { _socket: socket, port: u16::from_be(address.sin_port) }
        }
    }
}

fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `sluice serve` expecting it to fail at start-up: it must exit within
/// `START_FAILURE_TIMEOUT`, unsuccessfully, with `reason` on stderr.
fn serve_expecting_start_failure(data_dir: &Path, listen: [u16; 3], reason: &str) {
    let [kafka, resp, http] = listen.map(|port| format!("127.0.0.1:{port}"));
    let data_dir = data_dir.to_str().unwrap();
    let args = ["serve", "--data-dir", data_dir, "--kafka-listen", &kafka, "--resp-listen", &resp];
    let mut command = Command::new(sluice_bin());
    command.args(args).args(["--http-listen", &http, "--shards", START_FAILURE_SHARDS]);
    let finished = Running::spawn(command, None).wait(START_FAILURE_TIMEOUT);
    assert!(
        finished.status.is_some(),
        "a broker that cannot start must exit by itself, not hang\n{}",
        finished.failure_report()
    );
    assert!(!finished.succeeded(), "the broker must report failing to start\n{}", finished.failure_report());
    assert!(
        finished.stderr.contains(&format!("sluice: {reason}")),
        "stderr should say `sluice: {reason}`\n{}",
        finished.failure_report()
    );
}

#[test]
fn a_port_taken_by_another_program_stops_the_broker_with_the_reason() {
    for (door, taken_position) in [("Kafka", 0), ("RESP", 1), ("HTTP", 2)] {
        let taken = BoundNotListening::on_a_free_port();
        let mut listen = [free_loopback_port(), free_loopback_port(), free_loopback_port()];
        listen[taken_position] = taken.port;
        let data_dir = tempfile::tempdir().unwrap();
        let reason = format!("cannot listen for {door} on 127.0.0.1:{}: Address already in use", taken.port);
        serve_expecting_start_failure(data_dir.path(), listen, &reason);
    }
}

#[test]
fn a_data_dir_the_broker_cannot_use_stops_it_with_the_reason() {
    let listen = || [free_loopback_port(), free_loopback_port(), free_loopback_port()];

    // A file where the data dir should be.
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    std::fs::write(&data_dir, b"not a directory").unwrap();
    serve_expecting_start_failure(&data_dir, listen(), &format!("cannot create data dir {}", data_dir.display()));

    // A manifest that is not one.
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(data_dir.path().join("manifest.fb"), b"garbage").unwrap();
    let reason = format!("cannot read the manifest in {}", data_dir.path().display());
    serve_expecting_start_failure(data_dir.path(), listen(), &reason);

    // A file where one shard's consumer offsets log should be: that shard fails to recover
    // while the other recovers and waits for it.
    let data_dir = tempfile::tempdir().unwrap();
    let offsets_topic = data_dir.path().join("internal").join("__consumer_offsets");
    std::fs::create_dir_all(&offsets_topic).unwrap();
    std::fs::write(offsets_topic.join("0"), b"not a directory").unwrap();
    let reason = format!("cannot open offsets log {}", offsets_topic.join("0").display());
    serve_expecting_start_failure(data_dir.path(), listen(), &reason);
}

/// A soft open-files limit far below the hard one (1024 is common) would make accepting fail
/// long before --connections-max: the broker raises it to the hard limit, logs it, and warns
/// when even the hard limit is below what --connections-max allows.
#[test]
fn the_open_files_limit_is_raised_and_a_short_one_reported() {
    const SOFT: libc::rlim_t = 256;
    const HARD: libc::rlim_t = 8192;
    const RUN_FOR: Duration = Duration::from_secs(3);
    for (connections_max, warned) in [("16", false), ("100000", true)] {
        let data_dir = tempfile::tempdir().unwrap();
        let listen =
            [free_loopback_port(), free_loopback_port(), free_loopback_port()].map(|port| format!("127.0.0.1:{port}"));
        let mut command = Command::new(sluice_bin());
        command.args(["serve", "--data-dir", data_dir.path().to_str().unwrap(), "--shards", "1"]);
        command.args(["--kafka-listen", &listen[0], "--resp-listen", &listen[1], "--http-listen", &listen[2]]);
        command.args(["--connections-max", connections_max]);
        // SAFETY: setrlimit is async-signal-safe; it only changes the child's own limits.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: SOFT, rlim_max: HARD };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let finished = Running::spawn(command, None).wait(RUN_FOR);
        assert!(finished.status.is_none(), "the broker should still run\n{}", finished.failure_report());
        assert!(
            finished.stderr.contains(&format!("open_files_limit={HARD}")),
            "the soft limit {SOFT} should be raised to the hard one, {HARD}\n{}",
            finished.failure_report()
        );
        assert_eq!(
            finished.stderr.contains("the open-files limit (ulimit -n) is below what --connections-max allows"),
            warned,
            "--connections-max {connections_max}\n{}",
            finished.failure_report()
        );
    }
}
