//! The RESP2 wire, blocking and lean: commands encoded as arrays of bulk strings, replies
//! parsed from a read buffer, and [`PreparedXadd`], an XADD encoded once whose send-time field
//! is patched in place for every send.
//!
//! Only what the load needs and what Redis 7 and sluice send to a RESP2 client: simple
//! strings, errors, integers, bulk strings and arrays (null ones included). The same bytes go
//! to redis-server, so one tool measures both.
use std::time::Instant;

use super::limits::{RESP_REPLY_BYTES_MAX, RESP_REPLY_DEPTH_MAX};
use super::socket::{BufferedSocket, SocketError};

/// Decimal digits of the send time carried by every benchmark entry, in microseconds since the
/// Unix epoch (16 digits last until the year 2286).
pub const SENT_AT_DIGITS: usize = 16;
/// Field names of a benchmark entry: its send time, then its payload.
pub const SENT_AT_FIELD: &[u8] = b"ts";
pub const PAYLOAD_FIELD: &[u8] = b"data";

/// One reply, as RESP2 sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`: the command failed, the connection goes on.
    Error(String),
    /// `:12`
    Integer(i64),
    /// `$3 abc`; `$-1` is None.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`; `*-1` (XREADGROUP BLOCK timing out) is None.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// What a reply looks like in an error message, shortened.
    pub fn describe(&self) -> String {
        let text = format!("{self:?}");
        match text.char_indices().nth(120) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text,
        }
    }
}

/// Why a RESP exchange failed (a `-ERR` reply is not one: it is a [`Reply::Error`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum RespError {
    /// Reading or writing the connection failed, or it closed.
    Socket(SocketError),
    /// The bytes are not RESP2, or not a reply this client understands.
    Protocol(String),
    ReplyTooLarge {
        size_bytes: usize,
    },
}

impl From<SocketError> for RespError {
    fn from(error: SocketError) -> Self {
        Self::Socket(error)
    }
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(error) => error.fmt(f),
            Self::Protocol(reason) => write!(f, "not a RESP reply: {reason}"),
            Self::ReplyTooLarge { size_bytes } => {
                write!(f, "a reply of more than {size_bytes} bytes (limit {RESP_REPLY_BYTES_MAX})")
            }
        }
    }
}

impl std::error::Error for RespError {}

/// Appends `arguments` as one command (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, arguments: &[&[u8]]) {
    encode_array_header(out, arguments.len());
    for argument in arguments {
        encode_bulk(out, argument);
    }
}

fn encode_array_header(out: &mut Vec<u8>, elements: usize) {
    out.extend_from_slice(format!("*{elements}\r\n").as_bytes());
}

fn encode_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// One reply from the start of `buffer` and the bytes it took; None if it is not complete yet.
pub fn parse_reply(buffer: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    let mut position = 0;
    let reply = parse_at(buffer, &mut position, 0)?;
    Ok(reply.map(|reply| (reply, position)))
}

fn parse_at(buffer: &[u8], position: &mut usize, depth: usize) -> Result<Option<Reply>, RespError> {
    if depth > RESP_REPLY_DEPTH_MAX {
        return Err(RespError::Protocol(format!("arrays nested deeper than {RESP_REPLY_DEPTH_MAX}")));
    }
    let Some(line) = take_line(buffer, position) else { return Ok(None) };
    let (&kind, text) = line.split_first().ok_or_else(|| RespError::Protocol("an empty line".into()))?;
    let reply = match kind {
        b'+' => Reply::Simple(text.to_vec()),
        b'-' => Reply::Error(String::from_utf8_lossy(text).into_owned()),
        b':' => Reply::Integer(parse_integer(text)?),
        b'$' => match length(text)? {
            None => Reply::Bulk(None),
            Some(length) => {
                let end = *position + length;
                if buffer.len() < end + 2 {
                    return Ok(None);
                }
                if &buffer[end..end + 2] != b"\r\n" {
                    return Err(RespError::Protocol("a bulk string not followed by CRLF".into()));
                }
                let bytes = buffer[*position..end].to_vec();
                *position = end + 2;
                Reply::Bulk(Some(bytes))
            }
        },
        b'*' => match length(text)? {
            None => Reply::Array(None),
            Some(elements) => {
                // Each element takes at least 3 bytes: a count beyond what is buffered is not
                // allocated before the bytes arrive.
                let mut items = Vec::with_capacity(elements.min((buffer.len() - *position) / 3));
                for _ in 0..elements {
                    match parse_at(buffer, position, depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                Reply::Array(Some(items))
            }
        },
        other => return Err(RespError::Protocol(format!("unexpected type byte {:?}", other as char))),
    };
    Ok(Some(reply))
}

/// The line at `position` without its CRLF, moving `position` past it; None if incomplete.
fn take_line<'a>(buffer: &'a [u8], position: &mut usize) -> Option<&'a [u8]> {
    let rest = &buffer[*position..];
    let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
    *position += end + 2;
    Some(&rest[..end])
}

fn parse_integer(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| RespError::Protocol(format!("not an integer: {:?}", String::from_utf8_lossy(text))))
}

/// A bulk string's or array's length: None for -1 (null), an error if absurd.
fn length(text: &[u8]) -> Result<Option<usize>, RespError> {
    match parse_integer(text)? {
        -1 => Ok(None),
        length if (0..=RESP_REPLY_BYTES_MAX as i64).contains(&length) => Ok(Some(length as usize)),
        length if length > 0 => Err(RespError::ReplyTooLarge { size_bytes: length as usize }),
        length => Err(RespError::Protocol(format!("a negative length {length}"))),
    }
}

/// One connection to a RESP server, used by one thread: commands are written as given (many in
/// one write when pipelined), replies read in order through one buffer.
/// One blocking RESP connection: commands out, replies parsed from a read buffer.
#[derive(Debug)]
pub struct RespConnection {
    socket: BufferedSocket,
}

impl RespConnection {
    pub fn connect(address: &str) -> Result<Self, RespError> {
        Ok(Self { socket: BufferedSocket::connect(address, "connecting to the RESP server", RESP_REPLY_BYTES_MAX)? })
    }

    /// Writes already encoded commands.
    pub fn send(&mut self, commands: &[u8]) -> Result<(), RespError> {
        Ok(self.socket.send(commands)?)
    }

    /// The next reply, waiting up to [`super::limits::IO_TIMEOUT`] for it.
    pub fn read_reply(&mut self) -> Result<Reply, RespError> {
        self.socket.next(parse_reply)
    }

    /// The next reply if it arrives before `deadline`, else None (it stays due).
    pub fn read_reply_before(&mut self, deadline: Instant) -> Result<Option<Reply>, RespError> {
        self.socket.next_before(parse_reply, deadline)
    }

    /// A reply already read from the socket, if a whole one is there.
    pub fn buffered_reply(&mut self) -> Result<Option<Reply>, RespError> {
        self.socket.buffered(parse_reply)
    }

    /// Sends one command and waits for its reply.
    pub fn call(&mut self, arguments: &[&[u8]]) -> Result<Reply, RespError> {
        let mut command = Vec::new();
        encode_command(&mut command, arguments);
        self.send(&command)?;
        self.read_reply()
    }
}

/// `XADD key * ts <send time> data <payload>`, encoded once. Each send writes its send time
/// into the command in place: no encoding and no allocation on the hot path.
#[derive(Debug, Clone)]
pub struct PreparedXadd {
    command: Vec<u8>,
    /// Where the [`SENT_AT_DIGITS`] digits of the send time sit in `command`.
    sent_at: std::ops::Range<usize>,
}

impl PreparedXadd {
    pub fn new(key: &str, payload: &[u8]) -> Self {
        let mut command = Vec::with_capacity(payload.len() + key.len() + 96);
        encode_array_header(&mut command, 7);
        for argument in [&b"XADD"[..], key.as_bytes(), b"*", SENT_AT_FIELD] {
            encode_bulk(&mut command, argument);
        }
        encode_bulk(&mut command, &[b'0'; SENT_AT_DIGITS]);
        let sent_at_end = command.len() - 2; // before the CRLF
        encode_bulk(&mut command, PAYLOAD_FIELD);
        encode_bulk(&mut command, payload);
        Self { command, sent_at: sent_at_end - SENT_AT_DIGITS..sent_at_end }
    }

    /// The command to send, carrying `sent_at_us` (microseconds since the Unix epoch).
    pub fn command(&mut self, sent_at_us: u64) -> &[u8] {
        write_digits(&mut self.command[self.sent_at.clone()], sent_at_us);
        &self.command
    }

    pub fn size_bytes(&self) -> usize {
        self.command.len()
    }
}

/// `value` in decimal, right-aligned with leading zeros, into all of `digits` (a field patched
/// in place in a prepared command: a send time, a sequence number).
pub fn write_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    debug_assert_eq!(value, 0, "{value} left over: more than {} digits", digits.len());
}

/// The send time a benchmark entry carries: the value of its [`SENT_AT_FIELD`], given its
/// fields as XREADGROUP returns them (name, value, name, value ...).
pub fn sent_at_us(fields: &[Reply]) -> Option<u64> {
    fields.chunks_exact(2).find_map(|pair| match pair {
        [Reply::Bulk(Some(name)), Reply::Bulk(Some(value))] if name == SENT_AT_FIELD => {
            std::str::from_utf8(value).ok()?.parse().ok()
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Some(text.as_bytes().to_vec()))
    }

    /// Decodes a command as the server would: an array of bulk strings.
    fn arguments(command: &[u8]) -> Vec<Vec<u8>> {
        let (reply, length) = parse_reply(command).unwrap().unwrap();
        assert_eq!(length, command.len(), "one command, nothing left over");
        match reply {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(Some(bytes)) => bytes,
                    other => panic!("not a bulk string: {other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn every_reply_type_parses_and_reports_its_length() {
        let cases: [(&[u8], Reply); 8] = [
            (b"+OK\r\n", Reply::Simple(b"OK".to_vec())),
            (b"-ERR no such key\r\n", Reply::Error("ERR no such key".into())),
            (b":-42\r\n", Reply::Integer(-42)),
            (b"$15\r\n1700000000000-0\r\n", bulk("1700000000000-0")),
            (b"$0\r\n\r\n", bulk("")),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
                Reply::Array(Some(vec![bulk("a"), Reply::Array(Some(vec![Reply::Integer(1)]))])),
            ),
        ];
        for (bytes, expected) in cases {
            let mut stream = bytes.to_vec();
            stream.extend_from_slice(b"+next\r\n");
            assert_eq!(parse_reply(&stream).unwrap(), Some((expected, bytes.len())), "{bytes:?}");
        }
    }

    #[test]
    fn a_reply_cut_anywhere_is_incomplete_not_wrong() {
        let whole = b"*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$2\r\nts\r\n$3\r\n123\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse_reply(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_reply(whole).unwrap().is_some());
    }

    #[test]
    fn broken_streams_are_refused() {
        for bytes in [&b"?what\r\n"[..], b":12a\r\n", b"$3\r\nabcXY", b"*-2\r\n", b"\r\n"] {
            assert!(parse_reply(bytes).is_err(), "{bytes:?}");
        }
        assert!(matches!(parse_reply(b"$99999999999\r\n"), Err(RespError::ReplyTooLarge { .. })));
        let deep = "*1\r\n".repeat(RESP_REPLY_DEPTH_MAX + 2) + ":1\r\n";
        assert!(matches!(parse_reply(deep.as_bytes()), Err(RespError::Protocol(_))));
    }

    #[test]
    fn a_prepared_xadd_is_the_command_it_stands_for_with_each_send_time() {
        let payload = crate::filler_bytes(100, 7);
        let mut prepared = PreparedXadd::new("bench:stream", &payload);
        for sent_at in [0, 1_700_000_000_123_456, 9_999_999_999_999_999] {
            let command = prepared.command(sent_at).to_vec();
            assert_eq!(command.len(), prepared.size_bytes());
            let expected: Vec<Vec<u8>> = vec![
                b"XADD".to_vec(),
                b"bench:stream".to_vec(),
                b"*".to_vec(),
                SENT_AT_FIELD.to_vec(),
                format!("{sent_at:016}").into_bytes(),
                PAYLOAD_FIELD.to_vec(),
                payload.clone(),
            ];
            assert_eq!(arguments(&command), expected);
        }
    }

    #[test]
    fn the_send_time_is_found_among_the_fields() {
        let fields = [bulk("data"), bulk("xyz"), bulk("ts"), bulk("0001700000000123")];
        assert_eq!(sent_at_us(&fields), Some(1_700_000_000_123));
        assert_eq!(sent_at_us(&fields[..2]), None);
        assert_eq!(sent_at_us(&[bulk("ts"), bulk("soon")]), None);
    }
}
