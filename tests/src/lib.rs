//! End-to-end test harness for Sluice.
//!
//! The scenario tests in `tests/tests/` start the real `sluice` binary and drive it with real
//! clients: the pinned Python clients in `tests/py/` (confluent-kafka, kafka-python, redis),
//! and `kcat`. This crate holds what they share:
//!
//! - [`Broker`]: one broker process on free loopback ports with its own temporary data
//!   directory. It can be killed with SIGKILL and restarted on the same directory and ports
//!   (crash tests), or stopped with SIGTERM (shutdown tests). Dropping it kills only the process
//!   it started.
//! - [`Broker::python`] / [`Broker::spawn_python`]: run a script from `tests/py/` against the
//!   broker, with `--bootstrap` filled in and a bounded run time.
//! - [`Broker::kcat`]: run `kcat -b <bootstrap> ...` with a bounded run time.
//! - [`nats::NatsServer`]: a nats-server (with or without JetStream) to measure next to
//!   sluice, and [`nats::NatsClient`], a test-side NATS client for its JetStream API.
//! - [`ack_log::AckLog`]: produce with acks=all while recording what was acknowledged, then
//!   check all of it survived (crash and shutdown tests).
//!
//! Every wait is bounded in time and every retry loop in count. On a failure the helpers panic
//! with the child's output, and a [`Broker`] dropped during the panic prints the tail of its log,
//! so a red test explains itself.
//!
//! `tests/run` installs the clients and sets `SLUICE_TEST_PYTHON` to its venv's interpreter.
//! Run outside it, the tests fall back to `python3` when it can import `confluent_kafka`, and
//! otherwise skip loudly (see [`require_python!`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod ack_log;
pub mod nats;
pub mod raw;
pub mod resp;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker may take from spawn to accepting Kafka connections.
pub const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between readiness probes and between checks on a running child.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a broker may take to exit after SIGTERM.
pub const BROKER_TERMINATE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default run time allowed to one Python script or kcat invocation before it is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of each broker log printed when something fails.
pub const LOG_TAIL_LINES: usize = 60;
/// Shards a broker runs with unless the test asks otherwise.
pub const DEFAULT_SHARDS: usize = 2;
/// Starts each start's section of the broker's log files, followed by the start's number.
const START_MARKER: &str = "===== sluice-tests: start #";

/// Path of the `sluice` binary under test: `SLUICE_BIN` if set, else `<target>/<profile>/sluice`
/// next to the directory that holds this test executable (`<target>/<profile>/deps/`).
pub fn sluice_bin() -> PathBuf {
    workspace_bin("sluice", "SLUICE_BIN")
}

/// Path of the `sluice-bench` load generator, found like [`sluice_bin`] (`SLUICE_BENCH_BIN`).
pub fn sluice_bench_bin() -> PathBuf {
    workspace_bin("sluice-bench", "SLUICE_BENCH_BIN")
}

/// A binary of this workspace: `$env_var` if set, else `<target>/<profile>/<name>`.
fn workspace_bin(name: &str, env_var: &str) -> PathBuf {
    let path = match std::env::var_os(env_var) {
        Some(path) => PathBuf::from(path),
        None => {
            let test_exe = std::env::current_exe().expect("current_exe");
            let profile_dir =
                test_exe.parent().and_then(Path::parent).expect("test executable lives in <target>/<profile>/deps/");
            profile_dir.join(name)
        }
    };
    assert!(
        path.is_file(),
        "{name} binary not found at {}: run `cargo build --workspace --bins` first (or set {env_var})",
        path.display()
    );
    path
}

/// Directory holding the Python test scripts (`tests/py/`).
pub fn python_scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// The Python interpreter for the scripts: `SLUICE_TEST_PYTHON`, else `python3` with a loud note.
pub fn python_interpreter() -> PathBuf {
    if let Some(python) = std::env::var_os("SLUICE_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        eprintln!(
            "NOTE: SLUICE_TEST_PYTHON is not set; using `python3` from PATH. \
             Run `tests/run` to get the pinned client versions."
        );
    });
    PathBuf::from("python3")
}

/// Whether the Python clients can run: always under `tests/run` (SLUICE_TEST_PYTHON set, and a
/// broken interpreter there must fail the tests, not skip them); otherwise only if `python3` can
/// import `confluent_kafka`.
pub fn python_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("SLUICE_TEST_PYTHON").is_some() {
            return true;
        }
        Command::new("python3")
            .args(["-c", "import confluent_kafka"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    })
}

/// Whether a tool `tests/run` installs can run: always under `tests/run` (SLUICE_TEST_PYTHON
/// set: a broken install there must fail the tests, not skip them); elsewhere only if
/// `program version_arg` succeeds.
fn installed_tool_available(program: &str, version_arg: &str) -> bool {
    if std::env::var_os("SLUICE_TEST_PYTHON").is_some() {
        return true;
    }
    Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Whether kcat can run: required under `tests/run`, optional elsewhere.
pub fn kcat_available() -> bool {
    installed_tool_available("kcat", "-V")
}

/// Whether nats-server can run (the benchmark tool's JetStream side): required under
/// `tests/run` (which installs it), optional elsewhere.
pub fn nats_server_available() -> bool {
    installed_tool_available("nats-server", "--version")
}

/// Whether headless Chromium can run: required under `tests/run` (which installs it), optional
/// elsewhere.
pub fn chromium_available() -> bool {
    installed_tool_available("chromium", "--version")
}

/// Directory holding the KafkaJS test scripts and their `node_modules` (`tests/js/`).
pub fn js_scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Whether the Node.js scripts can run: required under `tests/run` (which installs KafkaJS and
/// ioredis with `npm ci`); elsewhere only if `node` runs and `tests/js/node_modules` holds both.
pub fn js_clients_available() -> bool {
    installed_tool_available("node", "--version") && {
        std::env::var_os("SLUICE_TEST_PYTHON").is_some()
            || ["kafkajs", "ioredis"]
                .iter()
                .all(|client| js_scripts_dir().join("node_modules").join(client).join("package.json").is_file())
    }
}

/// `node tests/js/<script>`.
pub fn node_command(script: &str) -> Command {
    let path = js_scripts_dir().join(script);
    assert!(path.is_file(), "no such test script: {}", path.display());
    let mut command = Command::new("node");
    command.arg(path);
    command
}

/// Skip the current test, loudly, when the Python clients are not installed (only possible
/// outside `tests/run`).
#[macro_export]
macro_rules! require_python {
    () => {
        if !$crate::python_available() {
            eprintln!(
                "SKIPPED {}: SLUICE_TEST_PYTHON is unset and python3 cannot import \
                 confluent_kafka; run `tests/run` to install the clients",
                module_path!()
            );
            return;
        }
    };
}

/// Skip the current test, loudly, when Chromium is not installed (only possible outside
/// `tests/run`).
#[macro_export]
macro_rules! require_chromium {
    () => {
        if !$crate::chromium_available() {
            eprintln!("SKIPPED {}: chromium is not installed; run `tests/run` to install it", module_path!());
            return;
        }
    };
}

/// Skip the current test, loudly, when nats-server is not installed (only possible outside
/// `tests/run`).
#[macro_export]
macro_rules! require_nats_server {
    () => {
        if !$crate::nats_server_available() {
            eprintln!("SKIPPED {}: nats-server is not installed; run `tests/run` to install it", module_path!());
            return;
        }
    };
}

/// Skip the current test, loudly, when node or the Node.js clients are not installed (only
/// possible outside `tests/run`).
#[macro_export]
macro_rules! require_js_clients {
    () => {
        if !$crate::js_clients_available() {
            eprintln!(
                "SKIPPED {}: node or tests/js/node_modules is missing; run `tests/run` to install KafkaJS and ioredis",
                module_path!()
            );
            return;
        }
    };
}

/// Skip the current test, loudly, when kcat is not installed (only possible outside `tests/run`).
#[macro_export]
macro_rules! require_kcat {
    () => {
        if !$crate::kcat_available() {
            eprintln!("SKIPPED {}: kcat is not installed; run `tests/run` to install it", module_path!());
            return;
        }
    };
}

/// Bound on one `sluice-bench` run in the tests (a run of a few seconds plus setup and
/// drain, debug build).
pub const BENCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `sluice-bench` with `args`, at most [`BENCH_TIMEOUT`].
pub fn sluice_bench(args: &[&str]) -> Finished {
    let mut command = Command::new(sluice_bench_bin());
    command.args(args);
    Running::spawn(command, None).wait(BENCH_TIMEOUT)
}

/// The JSON document a `sluice-bench --json` run wrote.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).expect("the --json file was written")).expect("valid JSON")
}

/// A `sluice-bench` run that must succeed, with `--json` added: its output and its report.
pub fn sluice_bench_report(args: &[&str]) -> (Finished, serde_json::Value) {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let json = scratch.path().join("report.json");
    let mut args = args.to_vec();
    args.extend(["--json", json.to_str().expect("a UTF-8 temporary path")]);
    let run = sluice_bench(&args);
    assert!(run.succeeded(), "{}", run.failure_report());
    let report = read_json(&json);
    (run, report)
}

/// What every load run's `result` must show: no errors, messages acknowledged inside the
/// measured window and at least as many over the whole run, and a latency summary (under
/// `latency_key`) that is not empty and in order. Returns the acknowledged total.
pub fn acknowledged_total(report: &serde_json::Value, latency_key: &str) -> u64 {
    let result = &report["result"];
    assert_eq!(result["errors"], 0, "{report:#}");
    let measured = result["messages"].as_u64().expect("result.messages");
    let acked_total = result["messages_acked_total"].as_u64().expect("result.messages_acked_total");
    assert!(measured > 0 && acked_total >= measured, "{report:#}");
    let latency = &result[latency_key];
    assert!(latency["count"].as_u64().is_some_and(|count| count > 0), "{report:#}");
    let (p50, max) = (latency["p50_ms"].as_f64(), latency["max_ms"].as_f64());
    assert!(p50.zip(max).is_some_and(|(p50, max)| p50 <= max), "{report:#}");
    acked_total
}

/// A unique, readable topic name for one test.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: Mutex<u64> = Mutex::new(0);
    let mut counter = COUNTER.lock().unwrap();
    *counter += 1;
    format!("{prefix}-{}-{}", std::process::id(), *counter)
}

/// Loopback ports for one broker, kept for its whole life so a restart rebinds the same ones.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub kafka: u16,
    pub resp: u16,
    pub http: u16,
}

impl Ports {
    fn pick() -> Ports {
        let ports = free_loopback_ports(3);
        Ports { kafka: ports[0], resp: ports[1], http: ports[2] }
    }
}

/// Ask the kernel for `count` free loopback ports. They are held open together so they are
/// distinct, and never handed out twice by this process, so parallel tests don't collide.
pub fn free_loopback_ports(count: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const ATTEMPTS_MAX: usize = 100;
    let mut handed_out = HANDED_OUT.lock().unwrap();
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..ATTEMPTS_MAX {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if handed_out.insert(port) {
            ports.push(port);
            listeners.push(listener);
            if ports.len() == count {
                return ports;
            }
        }
    }
    panic!("could not find {count} unused loopback ports in {ATTEMPTS_MAX} attempts");
}

/// Configures a [`Broker`] before it starts.
#[derive(Debug)]
pub struct BrokerBuilder {
    shards: usize,
    extra_args: Vec<String>,
    data_dir: Option<PathBuf>,
}

impl BrokerBuilder {
    /// Number of shards (`--shards`).
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(shards > 0, "a broker needs at least one shard");
        self.shards = shards;
        self
    }

    /// One extra command-line argument for `sluice serve`, kept across restarts.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Extra command-line arguments for `sluice serve`, kept across restarts.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Keep the data in `dir` (e.g. on a small filesystem) instead of the temporary directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Start the broker and wait until its Kafka port accepts connections.
    pub fn start(self) -> Broker {
        let root = tempfile::Builder::new().prefix("sluice-test-").tempdir().expect("create temp dir");
        let data_dir = self.data_dir.unwrap_or_else(|| root.path().join("data"));
        fs::create_dir_all(&data_dir).expect("create data dir");
        let mut broker = Broker {
            binary: sluice_bin(),
            data_dir,
            ports: Ports::pick(),
            shards: self.shards,
            extra_args: self.extra_args,
            child: None,
            starts: 0,
            root,
        };
        broker.start();
        broker
    }
}

/// One running (or stopped) `sluice serve` process, owned by one test.
///
/// The data directory and the log files live in a temporary directory that this struct owns:
/// they survive [`Broker::kill9`] and [`Broker::restart`], and are removed on drop. Drop kills
/// the process this struct started, and nothing else.
#[derive(Debug)]
pub struct Broker {
    binary: PathBuf,
    data_dir: PathBuf,
    ports: Ports,
    shards: usize,
    extra_args: Vec<String>,
    child: Option<Child>,
    /// How many times the process has been spawned, for the log markers.
    starts: u32,
    /// Holds the data dir and logs; removed after `Drop` has killed the process.
    root: TempDir,
}

impl Broker {
    /// A builder with the defaults: [`DEFAULT_SHARDS`] shards, no extra arguments.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder { shards: DEFAULT_SHARDS, extra_args: Vec::new(), data_dir: None }
    }

    /// Start a broker with the defaults.
    pub fn start_default() -> Broker {
        Broker::builder().start()
    }

    /// Kafka bootstrap address, `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports.kafka)
    }

    /// RESP (Redis protocol) address, `127.0.0.1:<port>`.
    pub fn resp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.resp)
    }

    /// HTTP (metrics, health) address, `127.0.0.1:<port>`.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.http)
    }

    /// The value of an unlabelled sample on `/metrics` now.
    pub fn metric(&self, name: &str) -> f64 {
        use sluice_server::metrics::check;
        let address = self.http_addr().parse().expect("the HTTP address");
        let response = http_get(&address, "/metrics", raw::IO_TIMEOUT).expect("a /metrics response");
        let samples = check::parse(&response.body).expect("metrics in the exposition format");
        check::value_of(&samples, name, &[]).unwrap_or_else(|error| panic!("{name} on /metrics: {error}"))
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The broker's process id while it runs (to read `/proc/<pid>/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The running broker's resident memory (`VmRSS` in `/proc/<pid>/status`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        resident_bytes_of(self.pid().expect("the broker runs"))
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait on broker").is_none(),
            None => false,
        }
    }

    /// The full command line `sluice serve` is started with.
    pub fn serve_args(&self) -> Vec<String> {
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--kafka-listen".to_string(),
            self.bootstrap(),
            "--resp-listen".to_string(),
            self.resp_addr(),
            "--http-listen".to_string(),
            self.http_addr(),
            "--shards".to_string(),
            self.shards.to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawn the process on the same data dir and ports, and wait until it accepts Kafka
    /// connections. Panics if it is already running, exits early, or is not ready in time.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "broker already running");
        self.starts += 1;
        let args = self.serve_args();
        let marker = format!("\n{START_MARKER}{} `{} {}` =====\n", self.starts, self.binary.display(), args.join(" "));
        let stdout = self.open_log("broker.stdout.log", &marker);
        let stderr = self.open_log("broker.stderr.log", &marker);
        let child = Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Kill the process with SIGKILL (a crash: no shutdown code runs) and reap it.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("kill9: broker is not running");
        };
        if child.try_wait().expect("try_wait on broker").is_some() {
            panic!("kill9: broker had already exited (its log follows)");
        }
        // Child::kill sends SIGKILL to this child's pid only.
        child.kill().expect("SIGKILL broker");
        child.wait().expect("reap broker");
        self.wait_port_released();
    }

    /// After a SIGKILL the kernel may keep the dead broker's listening sockets open for a few
    /// milliseconds (io_uring releases its file references asynchronously). A new broker binds
    /// the same port with SO_REUSEPORT, so a connection could land on a dying socket and be
    /// reset. Wait, bounded, until nothing accepts on the Kafka port.
    fn wait_port_released(&self) {
        let address: SocketAddr = self.bootstrap().parse().expect("socket address");
        let started = Instant::now();
        while started.elapsed() < BROKER_READY_TIMEOUT {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        panic!("the killed broker's port {address} still accepts connections after {BROKER_READY_TIMEOUT:?}");
    }

    /// Crash and restart: SIGKILL, then start again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    /// Ask the broker to shut down with SIGTERM and wait, bounded by
    /// [`BROKER_TERMINATE_TIMEOUT`], for it to exit. Returns its exit status; panics (after a
    /// SIGKILL) if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("terminate: broker is not running");
        };
        if let Some(status) = child.try_wait().expect("try_wait on broker") {
            return status;
        }
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (checked
        // just above), so the pid cannot have been reused by another process.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(result, 0, "SIGTERM broker: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + BROKER_TERMINATE_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                return status;
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("broker did not exit within {BROKER_TERMINATE_TIMEOUT:?} of SIGTERM");
    }

    /// What the broker wrote to stderr during its `start`-th start (1 is the first), without
    /// the marker line this harness writes before each start.
    pub fn stderr_of_start(&self, start: u32) -> String {
        let text = fs::read_to_string(self.root.path().join("broker.stderr.log")).unwrap_or_default();
        let prefix = format!("{start} `");
        text.split(START_MARKER)
            .find_map(|part| part.strip_prefix(&prefix))
            .and_then(|part| part.split_once(" =====\n"))
            .map(|(_, lines)| lines.to_string())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the broker's stdout and stderr, across all restarts.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut tail = String::new();
        for name in ["broker.stdout.log", "broker.stderr.log"] {
            let text = fs::read_to_string(self.root.path().join(name)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            tail.push_str(&format!("----- {name} (last {lines} lines) -----\n"));
            for line in &all[start..] {
                tail.push_str(line);
                tail.push('\n');
            }
        }
        tail
    }

    /// Run `tests/py/<script> --bootstrap <bootstrap> <args>`; assert it exits 0 within
    /// [`SCRIPT_TIMEOUT`] and return its stdout.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        self.python_with_timeout(script, args, SCRIPT_TIMEOUT)
    }

    pub fn python_with_timeout(&self, script: &str, args: &[&str], timeout: Duration) -> String {
        let finished = self.spawn_python(script, args).wait(timeout);
        self.expect_success(finished)
    }

    /// Start `tests/py/<script> --bootstrap <bootstrap> <args>` in the background.
    pub fn spawn_python(&self, script: &str, args: &[&str]) -> Running {
        let mut command = python_command(script);
        command.arg("--bootstrap").arg(self.bootstrap()).args(args);
        Running::spawn(command, None)
    }

    /// Run `node tests/js/<script> <args>` (the scripts take `--bootstrap` or `--resp` and an
    /// address); assert it exits 0 within [`SCRIPT_TIMEOUT`] and return its stdout.
    pub fn node(&self, script: &str, args: &[&str]) -> String {
        let mut command = node_command(script);
        command.args(args);
        let finished = Running::spawn(command, None).wait(SCRIPT_TIMEOUT);
        self.expect_success(finished)
    }

    /// Assert a finished helper exited 0 and return its stdout; on failure panic with its output
    /// (the broker log tail follows when the broker is dropped).
    pub fn expect_success(&self, finished: Finished) -> String {
        assert!(finished.succeeded(), "{}", finished.failure_report());
        finished.stdout
    }

    /// Run `kcat -b <bootstrap> <args>` with `stdin` as its input; assert it exits 0 within
    /// [`SCRIPT_TIMEOUT`] and return its stdout.
    pub fn kcat(&self, args: &[&str], stdin: &[u8]) -> String {
        let mut command = Command::new("kcat");
        command.arg("-b").arg(self.bootstrap()).args(args);
        let finished = Running::spawn(command, Some(stdin.to_vec())).wait(SCRIPT_TIMEOUT);
        self.expect_success(finished)
    }

    fn open_log(&self, name: &str, marker: &str) -> File {
        let mut file =
            OpenOptions::new().create(true).append(true).open(self.root.path().join(name)).expect("open broker log");
        file.write_all(marker.as_bytes()).expect("write log marker");
        file
    }

    /// Polls `GET /ready` until it answers 200 (every shard's Kafka and RESP listeners open),
    /// the process exits, or time runs out. (The Kafka port accepting is not enough: the RESP
    /// listeners open just after, and a test that went straight to RESP was refused.)
    fn wait_ready(&mut self) {
        let address: SocketAddr = self.http_addr().parse().expect("socket address");
        let started = Instant::now();
        while started.elapsed() < BROKER_READY_TIMEOUT {
            let child = self.child.as_mut().expect("broker child");
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                self.child = None;
                panic!("broker exited during startup with {status} (its log follows)");
            }
            if http_status(&address, "/ready") == Some(200) {
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        panic!("broker was not ready (GET /ready on {address}) within {BROKER_READY_TIMEOUT:?} (its log follows)");
    }
}

/// The status code of `GET path`, or `None` when nothing answers (yet).
fn http_status(address: &SocketAddr, path: &str) -> Option<u16> {
    http_get(address, path, Duration::from_millis(200)).map(|response| response.status)
}

/// Resident memory of process `pid` (`VmRSS` in `/proc/<pid>/status`), in bytes.
pub fn resident_bytes_of(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib << 10
}

/// Raises this process's open-file limit to its hard limit (a broker started afterwards
/// inherits it) and checks it allows `needed` descriptors.
pub fn raise_open_files_limit(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "RLIMIT_NOFILE hard limit {} is below the {needed} this test needs",
        limit.rlim_max
    );
}

/// An HTTP response as the tests read it.
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The value of header `name` (as the broker spells it), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`, or `None` when nothing answers (or the
/// answer is not HTTP) within `timeout`.
pub fn http_get(address: &SocketAddr, path: &str, timeout: Duration) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(HttpResponse { status, head: head.to_string(), body: body.to_string() })
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Every failure while a broker is alive unwinds through here: show what it logged.
        if thread::panicking() {
            eprintln!("broker log at failure:\n{}", self.log_tail(LOG_TAIL_LINES));
        }
    }
}

/// `python3 tests/py/<script>` with the interpreter from [`python_interpreter`].
pub fn python_command(script: &str) -> Command {
    let path = python_scripts_dir().join(script);
    assert!(path.is_file(), "no such test script: {}", path.display());
    let mut command = Command::new(python_interpreter());
    // Unbuffered, so a killed script still leaves its output behind; no __pycache__ in the tree.
    command.arg("-u").arg(path).env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// Run `tests/py/<script> <args>` (no broker involved); assert it exits 0 within
/// [`SCRIPT_TIMEOUT`] and return its stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let mut command = python_command(script);
    command.args(args);
    let finished = Running::spawn(command, None).wait(SCRIPT_TIMEOUT);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    finished.stdout
}

/// Run `kcat <args>` (no broker involved); assert it exits 0 within [`SCRIPT_TIMEOUT`] and
/// return its stdout.
pub fn kcat(args: &[&str], stdin: &[u8]) -> String {
    let mut command = Command::new("kcat");
    command.args(args);
    let finished = Running::spawn(command, Some(stdin.to_vec())).wait(SCRIPT_TIMEOUT);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    finished.stdout
}

/// A child process (script or tool) whose output is being collected. Dropping it before
/// [`Running::wait`] kills it.
#[derive(Debug)]
pub struct Running {
    description: String,
    child: Option<Child>,
    stdout_reader: Option<JoinHandle<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<Vec<u8>>>,
    stdin_writer: Option<JoinHandle<()>>,
}

impl Running {
    /// Spawn `command` with piped output, feeding it `stdin` if given (else /dev/null).
    pub fn spawn(mut command: Command, stdin: Option<Vec<u8>>) -> Running {
        let description = format!("{command:?}");
        command
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|error| panic!("spawn {description}: {error}"));
        let stdin_writer = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || {
                // A child that exits early closes the pipe; its exit status reports that.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stdout_reader = child.stdout.take().map(read_to_end_in_thread);
        let stderr_reader = child.stderr.take().map(read_to_end_in_thread);
        Running { description, child: Some(child), stdout_reader, stderr_reader, stdin_writer }
    }

    /// Whether the child has exited yet.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_some(),
            None => true,
        }
    }

    /// Wait for the child to exit, at most `timeout`; past that kill it. Either way, collect
    /// its output.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("child not yet waited for");
        let started = Instant::now();
        let status = loop {
            if let Some(exit) = child.try_wait().expect("try_wait") {
                break Some(exit);
            }
            if started.elapsed() >= timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(POLL_INTERVAL);
        };
        if let Some(writer) = self.stdin_writer.take() {
            let _ = writer.join();
        }
        let stdout = join_output(self.stdout_reader.take());
        let stderr = join_output(self.stderr_reader.take());
        Finished { description: std::mem::take(&mut self.description), status, timeout, stdout, stderr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_to_end_in_thread<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn join_output(reader: Option<JoinHandle<Vec<u8>>>) -> String {
    let bytes = reader.map(|handle| handle.join().unwrap_or_default()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The outcome of a [`Running`] child.
#[derive(Debug)]
pub struct Finished {
    pub description: String,
    /// `None` when the child was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub timeout: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// What ran, how it ended, and everything it printed.
    pub fn failure_report(&self) -> String {
        let ending = match self.status {
            Some(status) => format!("exited with {status}"),
            None => format!("was killed after running longer than {:?}", self.timeout),
        };
        format!(
            "{} {ending}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.description, self.stdout, self.stderr
        )
    }
}

/// Number of complete (newline-terminated) lines in a file; 0 if it does not exist yet.
pub fn count_lines(path: &Path) -> usize {
    fs::read(path).map(|bytes| bytes.iter().filter(|&&byte| byte == b'\n').count()).unwrap_or(0)
}

/// Poll `condition` every [`POLL_INTERVAL`] until it holds or `timeout` passes; returns whether
/// it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if condition() {
            return true;
        }
        thread::sleep(POLL_INTERVAL);
    }
    condition()
}
