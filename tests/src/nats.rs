//! A nats-server for the tests of the benchmark tool's JetStream side, and a small NATS client
//! of the tests' own (independent of the tool under test) for its JetStream API.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{free_loopback_ports, Running, POLL_INTERVAL};

/// How long nats-server may take to accept connections.
const NATS_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one answer from the server.
const NATS_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One nats-server on a free loopback port, storing in its own temporary directory; dropping
/// it kills the process it started.
pub struct NatsServer {
    port: u16,
    // Killed before the directory goes: fields drop in declaration order.
    _process: Running,
    _store: TempDir,
}

impl NatsServer {
    /// Starts nats-server, with JetStream (`-js`) if `jetstream`, and waits until it greets.
    pub fn start(jetstream: bool) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let port = free_loopback_ports(1)[0];
        let mut command = Command::new("nats-server");
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if jetstream {
            command.args(["-js", "-sd"]).arg(store.path());
        }
        let mut process = Running::spawn(command, None);
        let started = Instant::now();
        while NatsClient::try_connect(port).is_none() {
            assert!(!process.has_exited(), "nats-server exited while starting: {:?}", process_output(process));
            assert!(started.elapsed() < NATS_READY_TIMEOUT, "nats-server did not greet within {NATS_READY_TIMEOUT:?}");
            thread::sleep(POLL_INTERVAL);
        }
        NatsServer { port, _process: process, _store: store }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> NatsClient {
        NatsClient::try_connect(self.port).expect("connect to nats-server")
    }
}

fn process_output(process: Running) -> String {
    let finished = process.wait(Duration::from_secs(1));
    format!("{}{}", finished.stdout, finished.stderr)
}

/// A blocking NATS connection past its handshake, for request/reply.
pub struct NatsClient {
    reader: BufReader<TcpStream>,
    inboxes: u64,
}

impl NatsClient {
    /// A connection past its handshake; `None` if the server is not there or not ready (while
    /// it starts, nats-server may close or reset a connection it accepted).
    fn try_connect(port: u16) -> Option<NatsClient> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(NATS_IO_TIMEOUT)).ok()?;
        let mut client = NatsClient { reader: BufReader::new(stream), inboxes: 0 };
        if !client.read_line().ok()?.starts_with("INFO ") {
            return None;
        }
        let connect = b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nPING\r\n";
        client.reader.get_mut().write_all(connect).ok()?;
        loop {
            match client.read_line().ok()?.as_str() {
                "PONG" => return Some(client),
                "PING" => client.reader.get_mut().write_all(b"PONG\r\n").ok()?,
                other => assert!(other.starts_with("INFO") || other == "+OK", "handshake: {other}"),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        self.read_line().unwrap()
    }

    /// The next line without its CRLF; an error if the connection broke or ended mid-line.
    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if !line.ends_with("\r\n") {
            let message = format!("a whole NATS line, got {line:?}");
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// A request and the payload of its answer (a status answer panics with the status).
    pub fn request(&mut self, subject: &str, payload: &str) -> Vec<u8> {
        self.inboxes += 1;
        let inbox = format!("_INBOX.sluice-tests.{}.{}", std::process::id(), self.inboxes);
        let sid = self.inboxes;
        self.write(format!("SUB {inbox} {sid}\r\nPUB {subject} {inbox} {}\r\n{payload}\r\n", payload.len()).as_bytes());
        loop {
            let line = self.line();
            let words: Vec<&str> = line.split(' ').collect();
            match words[0] {
                "PING" => self.write(b"PONG\r\n"),
                "MSG" | "HMSG" => {
                    let total: usize = words.last().unwrap().parse().unwrap();
                    let header_bytes: usize =
                        if words[0] == "HMSG" { words[words.len() - 2].parse().unwrap() } else { 0 };
                    let mut body = vec![0; total + 2];
                    self.reader.read_exact(&mut body).unwrap();
                    body.truncate(total);
                    let headers = String::from_utf8_lossy(&body[..header_bytes]).into_owned();
                    assert!(!headers.starts_with("NATS/1.0 "), "{subject} answered the status {headers:?}");
                    self.write(format!("UNSUB {sid}\r\n").as_bytes());
                    return body[header_bytes..].to_vec();
                }
                other => assert!(other == "PONG" || other == "+OK" || other == "INFO", "unexpected: {line}"),
            }
        }
    }

    /// A JetStream API request (`$JS.API.<api>`) and its JSON answer.
    pub fn jetstream(&mut self, api: &str, request: &str) -> serde_json::Value {
        let answer = self.request(&format!("$JS.API.{api}"), request);
        serde_json::from_slice(&answer).expect("JetStream answers JSON")
    }
}
