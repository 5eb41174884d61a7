//! The NATS client wire, blocking and lean, for measuring NATS JetStream with the same stream
//! loads as Redis Streams: [`PreparedPublish`], a JetStream publish encoded once whose send
//! time and sequence are patched in place, the server's operations parsed from a read buffer,
//! and the few JetStream API requests a run needs (create a stream, create a pull consumer).
//!
//! Only what the loads need: `INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK` and `-ERR` from the
//! server; `CONNECT`, `PING`/`PONG`, `SUB`, `UNSUB`, `PUB` and `HPUB` to it. A publish carries
//! the send time as a `ts` header (16 digits, like the XADD's `ts` field) and the payload as
//! its body, and asks for JetStream's acknowledgement on a reply subject ending in the
//! publish's sequence number on its connection, so an answer can be matched to its publish.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use super::limits::{NATS_CONTROL_LINE_BYTES_MAX, NATS_MESSAGE_BYTES_MAX};
use super::resp_wire::{write_digits, SENT_AT_DIGITS, SENT_AT_FIELD};
use super::socket::{BufferedSocket, SocketError};

/// Decimal digits of a publish's sequence number in its reply subject (all of a u64).
const SEQUENCE_DIGITS: usize = 20;
/// The first line of a header block, and how status messages extend it (`NATS/1.0 408 ...`).
const HEADER_VERSION: &[u8] = b"NATS/1.0";

/// One operation from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    Msg(Message),
    Ping,
    Pong,
    Ok,
    /// `-ERR 'text'`: the server refused something; for most errors it closes the connection.
    Err(String),
    /// `INFO {json}`.
    Info(Vec<u8>),
}

/// A message delivered to one of the connection's subscriptions (`MSG` or `HMSG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: Vec<u8>,
    pub reply: Option<Vec<u8>>,
    /// The header block (`NATS/1.0 ...\r\nname: value\r\n...\r\n\r\n`) of an `HMSG`.
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The status of a status message (`NATS/1.0 408 Request Timeout`): its code and text.
    pub fn status(&self) -> Option<(u16, String)> {
        let headers = self.headers.as_deref()?;
        let first_line = headers.split(|&byte| byte == b'\n').next()?.strip_prefix(HEADER_VERSION)?;
        let text = String::from_utf8_lossy(first_line).trim().to_string();
        let code = text.get(..3)?.parse().ok()?;
        Some((code, text[3..].trim().to_string()))
    }

    /// The value of the header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        let headers = self.headers.as_deref()?;
        headers.split(|&byte| byte == b'\n').skip(1).find_map(|line| {
            let colon = line.iter().position(|&byte| byte == b':')?;
            line[..colon].eq_ignore_ascii_case(name).then(|| line[colon + 1..].trim_ascii())
        })
    }

    /// The send time a benchmark message carries in its `ts` header.
    pub fn sent_at_us(&self) -> Option<u64> {
        std::str::from_utf8(self.header(SENT_AT_FIELD)?).ok()?.parse().ok()
    }

    pub fn describe(&self) -> String {
        let status = self.status().map(|(code, text)| format!(" status {code} {text}")).unwrap_or_default();
        let payload = String::from_utf8_lossy(&self.payload);
        let cut = payload.char_indices().nth(160).map_or(payload.len(), |(cut, _)| cut);
        format!("a message on {}{status}: {:?}", String::from_utf8_lossy(&self.subject), &payload[..cut])
    }
}

/// Why a NATS exchange failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum NatsError {
    Socket(SocketError),
    /// The bytes are not the NATS protocol, or not what this client understands.
    Protocol(String),
    /// `-ERR` from the server.
    Server(String),
}

impl From<SocketError> for NatsError {
    fn from(error: SocketError) -> Self {
        Self::Socket(error)
    }
}

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(error) => error.fmt(f),
            Self::Protocol(reason) => write!(f, "not the NATS protocol: {reason}"),
            Self::Server(text) => write!(f, "the NATS server answered -ERR {text}"),
        }
    }
}

impl std::error::Error for NatsError {}

/// One operation from the start of `buffer` and the bytes it took; None if it is not complete.
pub fn parse_op(buffer: &[u8]) -> Result<Option<(ServerOp, usize)>, NatsError> {
    let Some(line_end) = buffer.windows(2).position(|pair| pair == b"\r\n") else {
        if buffer.len() > NATS_CONTROL_LINE_BYTES_MAX {
            return Err(NatsError::Protocol(format!("a line of more than {NATS_CONTROL_LINE_BYTES_MAX} bytes")));
        }
        return Ok(None);
    };
    let line = &buffer[..line_end];
    let body_start = line_end + 2;
    let mut words = line.split(|&byte| byte == b' ' || byte == b'\t').filter(|word| !word.is_empty());
    let operation = words.next().unwrap_or_default().to_ascii_uppercase();
    let simple = |op| Ok(Some((op, body_start)));
    match operation.as_slice() {
        b"PING" => simple(ServerOp::Ping),
        b"PONG" => simple(ServerOp::Pong),
        b"+OK" => simple(ServerOp::Ok),
        b"-ERR" => {
            let text = String::from_utf8_lossy(&line[4..]).trim().trim_matches('\'').to_string();
            simple(ServerOp::Err(text))
        }
        b"INFO" => simple(ServerOp::Info(line[4..].trim_ascii().to_vec())),
        b"MSG" | b"HMSG" => {
            let with_headers = operation == b"HMSG";
            let arguments: Vec<&[u8]> = words.collect();
            let counts = if with_headers { (4, 5) } else { (3, 4) };
            if arguments.len() != counts.0 && arguments.len() != counts.1 {
                return Err(NatsError::Protocol(format!("{}", String::from_utf8_lossy(line))));
            }
            let reply = (arguments.len() == counts.1).then(|| arguments[2].to_vec());
            let sizes = &arguments[arguments.len() - if with_headers { 2 } else { 1 }..];
            let total_bytes = size(sizes[sizes.len() - 1])?;
            let header_bytes = if with_headers { size(sizes[0])? } else { 0 };
            if header_bytes > total_bytes {
                return Err(NatsError::Protocol(format!("headers longer than the message: {header_bytes}")));
            }
            let end = body_start + total_bytes;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            if &buffer[end..end + 2] != b"\r\n" {
                return Err(NatsError::Protocol("a message not followed by CRLF".into()));
            }
            let body = &buffer[body_start..end];
            let message = Message {
                subject: arguments[0].to_vec(),
                reply,
                headers: with_headers.then(|| body[..header_bytes].to_vec()),
                payload: body[header_bytes..].to_vec(),
            };
            Ok(Some((ServerOp::Msg(message), end + 2)))
        }
        _ => Err(NatsError::Protocol(format!("unknown operation {:?}", String::from_utf8_lossy(line)))),
    }
}

fn size(text: &[u8]) -> Result<usize, NatsError> {
    let value: usize = std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| NatsError::Protocol(format!("a size of {:?}", String::from_utf8_lossy(text))))?;
    if value > NATS_MESSAGE_BYTES_MAX {
        return Err(NatsError::Protocol(format!("a message of {value} bytes (limit {NATS_MESSAGE_BYTES_MAX})")));
    }
    Ok(value)
}

/// A subject no other connection of this process or any other uses:
/// `_INBOX.sluice-bench.<pid>.<microseconds since the epoch>.<n>`.
pub fn new_inbox() -> String {
    static INBOXES: AtomicU64 = AtomicU64::new(0);
    let epoch_us = super::timeline::epoch_us_now();
    format!("_INBOX.sluice-bench.{}.{epoch_us}.{}", std::process::id(), INBOXES.fetch_add(1, Ordering::Relaxed))
}

/// One blocking NATS connection, past its handshake: `PING`s are answered as they come.
#[derive(Debug)]
pub struct NatsConnection {
    socket: BufferedSocket,
    next_sid: u64,
}

impl NatsConnection {
    /// Connects and completes the handshake (`INFO`, then `CONNECT` and a `PING` answered by
    /// `PONG`), asking for headers and for "no responders" statuses (a publish to a subject no
    /// stream takes is answered 503 at once instead of timing out).
    pub fn connect(address: &str) -> Result<Self, NatsError> {
        let socket = BufferedSocket::connect(address, "connecting to the NATS server", NATS_MESSAGE_BYTES_MAX * 2)?;
        let mut connection = Self { socket, next_sid: 1 };
        let info = match connection.socket.next(parse_op)? {
            ServerOp::Info(info) => info,
            other => return Err(NatsError::Protocol(format!("the server began with {other:?}, not INFO"))),
        };
        let info: Value =
            serde_json::from_slice(&info).map_err(|error| NatsError::Protocol(format!("INFO is not JSON: {error}")))?;
        if info["headers"] != Value::Bool(true) {
            return Err(NatsError::Protocol("the server takes no headers (nats-server 2.2 and later do)".into()));
        }
        let connect = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "headers": true,
            "no_responders": true,
            "protocol": 1,
            "name": "sluice-bench",
            "lang": "rust",
            "version": env!("CARGO_PKG_VERSION"),
        });
        connection.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())?;
        loop {
            match connection.socket.next(parse_op)? {
                ServerOp::Pong => return Ok(connection),
                ServerOp::Ping => connection.send(b"PONG\r\n")?,
                ServerOp::Err(text) => return Err(NatsError::Server(text)),
                ServerOp::Ok | ServerOp::Info(_) => {}
                ServerOp::Msg(message) => {
                    return Err(NatsError::Protocol(format!("{} before the handshake ended", message.describe())))
                }
            }
        }
    }

    /// Writes already encoded operations.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), NatsError> {
        Ok(self.socket.send(bytes)?)
    }

    /// Subscribes to `subject`; returns the subscription's id.
    pub fn subscribe(&mut self, subject: &str) -> Result<u64, NatsError> {
        let sid = self.next_sid;
        self.next_sid += 1;
        self.send(format!("SUB {subject} {sid}\r\n").as_bytes())?;
        Ok(sid)
    }

    /// The next message, waiting for it until `deadline` (None: up to the I/O timeout). None
    /// when the deadline passed first.
    pub fn next_message(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, NatsError> {
        loop {
            let op = match deadline {
                None => self.socket.next(parse_op)?,
                Some(deadline) => match self.socket.next_before(parse_op, deadline)? {
                    Some(op) => op,
                    None => return Ok(None),
                },
            };
            if let Some(message) = self.handle(op)? {
                return Ok(Some(message));
            }
        }
    }

    /// Waits until the server has handled everything sent before (`PING`, answered by `PONG`
    /// in order). Used when nothing more is due: a message meanwhile is an error.
    pub fn flush(&mut self) -> Result<(), NatsError> {
        self.send(b"PING\r\n")?;
        loop {
            match self.socket.next(parse_op)? {
                ServerOp::Pong => return Ok(()),
                ServerOp::Msg(message) => {
                    return Err(NatsError::Protocol(format!("{} where none was due", message.describe())))
                }
                op => {
                    self.handle(op)?;
                }
            }
        }
    }

    /// A message already read from the socket, if a whole one is there.
    pub fn buffered_message(&mut self) -> Result<Option<Message>, NatsError> {
        while let Some(op) = self.socket.buffered(parse_op)? {
            if let Some(message) = self.handle(op)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// A message is the caller's; the rest is the connection's business.
    fn handle(&mut self, op: ServerOp) -> Result<Option<Message>, NatsError> {
        match op {
            ServerOp::Msg(message) => Ok(Some(message)),
            ServerOp::Ping => self.send(b"PONG\r\n").map(|()| None),
            ServerOp::Pong | ServerOp::Ok | ServerOp::Info(_) => Ok(None),
            ServerOp::Err(text) => Err(NatsError::Server(text)),
        }
    }

    /// A request and its one answer, on an inbox of its own.
    pub fn request(&mut self, subject: &str, payload: &[u8]) -> Result<Message, NatsError> {
        let inbox = new_inbox();
        let sid = self.subscribe(&inbox)?;
        let mut command = format!("UNSUB {sid} 1\r\nPUB {subject} {inbox} {}\r\n", payload.len()).into_bytes();
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        self.send(&command)?;
        loop {
            let Some(message) = self.next_message(None)? else { continue };
            if message.subject == inbox.as_bytes() {
                return Ok(message);
            }
        }
    }

    /// A JetStream API request (`$JS.API.<api>`) and its JSON answer; an answer with an
    /// `error` is an error, with the server's description. A null request goes as an empty
    /// payload (what the INFO requests take).
    pub fn jetstream_api(&mut self, api: &str, request: &Value) -> Result<Value, String> {
        let payload = if request.is_null() { String::new() } else { request.to_string() };
        let answer = self
            .request(&format!("$JS.API.{api}"), payload.as_bytes())
            .map_err(|error| format!("JetStream {api}: {error}"))?;
        if let Some((code, text)) = answer.status() {
            return Err(format!("JetStream {api}: status {code} {text} (is JetStream enabled? nats-server -js)"));
        }
        let answer: Value = serde_json::from_slice(&answer.payload)
            .map_err(|error| format!("JetStream {api}: the answer is not JSON: {error}"))?;
        match answer.get("error") {
            Some(error) => Err(format!("JetStream {api}: {}", describe_api_error(error))),
            None => Ok(answer),
        }
    }
}

fn describe_api_error(error: &Value) -> String {
    let description = error["description"].as_str().unwrap_or("(no description)");
    format!("{description} (code {}, err_code {})", error["code"], error["err_code"])
}

/// Creates the file-backed stream `name` taking the subject `name`, unless it exists with the
/// same configuration (JetStream answers that request as a success). One replica: the server
/// under test is one process, like the others.
pub fn create_stream(connection: &mut NatsConnection, name: &str) -> Result<(), String> {
    let config = serde_json::json!({
        "name": name,
        "subjects": [name],
        "retention": "limits",
        "storage": "file",
        "num_replicas": 1,
    });
    connection.jetstream_api(&format!("STREAM.CREATE.{name}"), &config).map(drop)
}

/// Creates the durable pull consumer `durable` on `stream`, with explicit acknowledgements
/// (the work-queue reading that XREADGROUP + XACK is); `deliver_all` starts at the first
/// message, else at the next one published. An existing consumer is an error, like an existing
/// group with XGROUP CREATE: a run never reads another run's leftovers.
pub fn create_pull_consumer(
    connection: &mut NatsConnection,
    stream: &str,
    durable: &str,
    deliver_all: bool,
) -> Result<(), String> {
    if connection.jetstream_api(&format!("CONSUMER.INFO.{stream}.{durable}"), &Value::Null).is_ok() {
        return Err(format!(
            "consumer {durable} of {stream} exists already (a run starts a new one: pick another --group)"
        ));
    }
    let request = serde_json::json!({
        "stream_name": stream,
        "config": {
            "durable_name": durable,
            "ack_policy": "explicit",
            "deliver_policy": if deliver_all { "all" } else { "new" },
        },
    });
    connection.jetstream_api(&format!("CONSUMER.DURABLE.CREATE.{stream}.{durable}"), &request).map(drop)
}

/// A pull request for `consumer` of `stream`: up to `batch` messages, each sent as soon as it
/// is there, the request ending after `expires_ms` with a 408 status if the batch is not full.
pub fn encode_pull(out: &mut Vec<u8>, stream: &str, consumer: &str, inbox: &str, batch: usize, expires_ms: u64) {
    let request = format!("{{\"batch\":{batch},\"expires\":{}}}", expires_ms * 1_000_000);
    let header = format!("PUB $JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer} {inbox} {}\r\n", request.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(request.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Acknowledges a delivered message: an empty publish to its reply subject (`+ACK`, which
/// JetStream does not answer).
pub fn encode_ack(out: &mut Vec<u8>, reply: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(reply);
    out.extend_from_slice(b" 0\r\n\r\n");
}

/// What JetStream answered a publish: stored, or why not. `expected` is the sequence of the
/// oldest outstanding publish; an answer to another one is a protocol error (JetStream
/// answers one stream's publishes in order).
pub fn publish_answer(message: &Message, expected: u64) -> Result<Result<(), String>, NatsError> {
    let sequence = message
        .subject
        .rsplit(|&byte| byte == b'.')
        .next()
        .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<u64>().ok());
    if sequence != Some(expected) {
        return Err(NatsError::Protocol(format!(
            "expected the answer to publish {expected}, got {}",
            message.describe()
        )));
    }
    if let Some((code, text)) = message.status() {
        return Ok(Err(format!("JetStream publish: status {code} {text} (no stream takes the subject?)")));
    }
    let payload = &message.payload;
    let has = |needle: &[u8]| payload.windows(needle.len()).any(|window| window == needle);
    if !has(b"\"error\"") && has(b"\"seq\":") {
        return Ok(Ok(()));
    }
    let described = match serde_json::from_slice::<Value>(payload) {
        Ok(answer) if answer.get("error").is_some() => describe_api_error(&answer["error"]),
        _ => message.describe(),
    };
    Ok(Err(format!("JetStream publish: {described}")))
}

/// `HPUB subject <inbox>.<sequence> ...` with a `ts` header and the payload, encoded once.
/// Each send writes its send time and sequence into the command in place.
#[derive(Debug, Clone)]
pub struct PreparedPublish {
    command: Vec<u8>,
    sequence: std::ops::Range<usize>,
    sent_at: std::ops::Range<usize>,
}

impl PreparedPublish {
    /// `reply_prefix` ends the subject the answers come on without the sequence (`<inbox>.`).
    pub fn new(subject: &str, reply_prefix: &str, payload: &[u8]) -> Self {
        let headers_before = format!("NATS/1.0\r\n{}: ", String::from_utf8_lossy(SENT_AT_FIELD));
        let header_bytes = headers_before.len() + SENT_AT_DIGITS + 4;
        let total_bytes = header_bytes + payload.len();
        let mut command = format!("HPUB {subject} {reply_prefix}").into_bytes();
        let sequence = command.len()..command.len() + SEQUENCE_DIGITS;
        command.extend_from_slice(&[b'0'; SEQUENCE_DIGITS]);
        command.extend_from_slice(format!(" {header_bytes} {total_bytes}\r\n{headers_before}").as_bytes());
        let sent_at = command.len()..command.len() + SENT_AT_DIGITS;
        command.extend_from_slice(&[b'0'; SENT_AT_DIGITS]);
        command.extend_from_slice(b"\r\n\r\n");
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        Self { command, sequence, sent_at }
    }

    /// The command to send: publish number `sequence`, carrying `sent_at_us`.
    pub fn command(&mut self, sent_at_us: u64, sequence: u64) -> &[u8] {
        write_digits(&mut self.command[self.sent_at.clone()], sent_at_us);
        write_digits(&mut self.command[self.sequence.clone()], sequence);
        &self.command
    }

    pub fn size_bytes(&self) -> usize {
        self.command.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(bytes: &[u8]) -> Message {
        match parse_op(bytes).unwrap() {
            Some((ServerOp::Msg(message), length)) => {
                assert_eq!(length, bytes.len());
                message
            }
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn every_server_operation_parses_and_reports_its_length() {
        let status = b"HMSG _INBOX.x 2 32 32\r\nNATS/1.0 408 Request Timeout\r\n\r\n\r\n".to_vec();
        let cases: Vec<(Vec<u8>, ServerOp)> = vec![
            (b"PING\r\n".to_vec(), ServerOp::Ping),
            (b"pong\r\n".to_vec(), ServerOp::Pong),
            (b"+OK\r\n".to_vec(), ServerOp::Ok),
            (b"-ERR 'Unknown Protocol Operation'\r\n".to_vec(), ServerOp::Err("Unknown Protocol Operation".into())),
            (b"INFO {\"headers\":true}\r\n".to_vec(), ServerOp::Info(b"{\"headers\":true}".to_vec())),
            (
                b"MSG orders 1 5\r\nhello\r\n".to_vec(),
                ServerOp::Msg(Message {
                    subject: b"orders".to_vec(),
                    reply: None,
                    headers: None,
                    payload: b"hello".to_vec(),
                }),
            ),
            (
                b"HMSG orders 1 $JS.ACK.o.c.1.2.3.4.0 20 22\r\nNATS/1.0\r\nts: 12\r\n\r\nhi\r\n".to_vec(),
                ServerOp::Msg(Message {
                    subject: b"orders".to_vec(),
                    reply: Some(b"$JS.ACK.o.c.1.2.3.4.0".to_vec()),
                    headers: Some(b"NATS/1.0\r\nts: 12\r\n\r\n".to_vec()),
                    payload: b"hi".to_vec(),
                }),
            ),
        ];
        for (bytes, expected) in cases {
            let mut stream = bytes.clone();
            stream.extend_from_slice(b"PING\r\n");
            assert_eq!(
                parse_op(&stream).unwrap(),
                Some((expected, bytes.len())),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let status = message(&status);
        assert_eq!(status.status(), Some((408, "Request Timeout".to_string())));
        assert!(status.payload.is_empty());
    }

    #[test]
    fn an_operation_cut_anywhere_is_incomplete_not_wrong() {
        let whole = b"HMSG orders 1 reply.to 20 22\r\nNATS/1.0\r\nts: 12\r\n\r\nhi\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse_op(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn broken_streams_are_refused() {
        let endless = vec![b'x'; NATS_CONTROL_LINE_BYTES_MAX + 1];
        let huge = format!("MSG a 1 {}\r\n", NATS_MESSAGE_BYTES_MAX + 1);
        for bytes in [
            &b"WHAT\r\n"[..],
            b"MSG a 1\r\n",
            b"MSG a 1 x\r\n",
            b"HMSG a 1 9 3\r\n",
            b"MSG a 1 2\r\nabXY",
            &endless,
            huge.as_bytes(),
        ] {
            assert!(parse_op(bytes).is_err(), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn headers_are_found_by_name_and_carry_the_send_time() {
        let message = message(b"HMSG s 1 44 44\r\nNATS/1.0\r\nOther: x\r\nTS: 0001700000000123\r\n\r\n\r\n");
        assert_eq!(message.header(b"other"), Some(&b"x"[..]));
        assert_eq!(message.sent_at_us(), Some(1_700_000_000_123));
        assert_eq!(message.status(), None);
        assert_eq!(message.header(b"missing"), None);
    }

    #[test]
    fn a_prepared_publish_is_the_hpub_it_stands_for_with_each_send_time_and_sequence() {
        let payload = crate::filler_bytes(100, 7);
        let mut prepared = PreparedPublish::new("bench", "_INBOX.t.", &payload);
        for (sent_at, sequence) in [(0, 0), (1_700_000_000_123_456, 7), (9_999_999_999_999_999, u64::MAX)] {
            let mut stream = prepared.command(sent_at, sequence).to_vec();
            assert_eq!(stream.len(), prepared.size_bytes());
            // What the server would deliver to a subscriber: the same line as an HMSG.
            stream.splice(0..4, b"HMSG".iter().copied());
            let at = stream.iter().position(|&byte| byte == b' ').unwrap() + 1;
            let subject_end = at + stream[at..].iter().position(|&byte| byte == b' ').unwrap();
            stream.splice(subject_end..subject_end, b" 9".iter().copied());
            let delivered = message(&stream);
            assert_eq!(delivered.subject, b"bench");
            assert_eq!(delivered.reply.clone().unwrap(), format!("_INBOX.t.{sequence:020}").into_bytes());
            assert_eq!(delivered.sent_at_us(), Some(sent_at));
            assert_eq!(delivered.payload, payload);
        }
    }

    #[test]
    fn publish_answers_are_matched_to_their_publish_and_read() {
        let answer = |sequence: u64, payload: &str| Message {
            subject: format!("_INBOX.t.{sequence:020}").into_bytes(),
            reply: None,
            headers: None,
            payload: payload.as_bytes().to_vec(),
        };
        assert_eq!(publish_answer(&answer(3, r#"{"stream":"bench","seq":12}"#), 3).unwrap(), Ok(()));
        let refused = publish_answer(
            &answer(4, r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#),
            4,
        )
        .unwrap()
        .unwrap_err();
        assert!(refused.contains("maximum messages exceeded") && refused.contains("10077"), "{refused}");
        assert!(publish_answer(&answer(5, r#"{"stream":"bench","seq":12}"#), 4).is_err(), "out of order");
        let no_stream = Message { headers: Some(b"NATS/1.0 503\r\n\r\n".to_vec()), ..answer(6, "") };
        assert!(publish_answer(&no_stream, 6).unwrap().unwrap_err().contains("503"));
    }

    #[test]
    fn pulls_and_acks_are_encoded_as_publishes() {
        let mut out = Vec::new();
        encode_pull(&mut out, "bench", "workers", "_INBOX.p", 100, 100);
        encode_ack(&mut out, b"$JS.ACK.bench.workers.1.5.5.17.0");
        let text = String::from_utf8(out).unwrap();
        let (pull, ack) = text.split_at(text.find("PUB $JS.ACK").unwrap());
        let request = r#"{"batch":100,"expires":100000000}"#;
        let expected =
            format!("PUB $JS.API.CONSUMER.MSG.NEXT.bench.workers _INBOX.p {}\r\n{request}\r\n", request.len());
        assert_eq!(pull, expected);
        assert_eq!(ack, "PUB $JS.ACK.bench.workers.1.5.5.17.0 0\r\n\r\n");
    }
}
