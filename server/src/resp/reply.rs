//! Replies, and their bytes in RESP2 or RESP3 (whichever the connection chose with HELLO).
//!
//! Requests are parsed by the `redis-protocol` crate; replies are written here directly into
//! the connection's buffer: the encodings are a few lines each, and building the crate's frame
//! trees (RESP3 maps are hash maps there, losing order) would cost an allocation per item.
use bytes::{BufMut, Bytes, BytesMut};

use sluice_engine::stream::entry::Entry;
use sluice_engine::stream::id::StreamId;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Status(&'static str),
    /// `-ERR ...`: the text starts with the error code (`ERR`, `WRONGTYPE`, `NOGROUP`...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// An entry ID, as a bulk string (`<ms>-<seq>`), formatted when written.
    Id(StreamId),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// A missing aggregate: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 `%`; a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub const OK: Reply = Reply::Status("OK");

    pub fn error(text: impl Into<String>) -> Self {
        Self::Error(text.into())
    }

    pub fn bulk(bytes: impl Into<Bytes>) -> Self {
        Self::Bulk(bytes.into())
    }

    pub fn text(text: impl std::fmt::Display) -> Self {
        Self::Bulk(Bytes::from(text.to_string()))
    }

    /// A stream entry: `[id, [field, value, ...]]`.
    pub fn entry(entry: Entry) -> Self {
        let mut fields = Vec::with_capacity(entry.fields.len() * 2);
        for (name, value) in entry.fields {
            fields.push(Reply::Bulk(name));
            fields.push(Reply::Bulk(value));
        }
        Reply::Array(vec![Reply::Id(entry.id), Reply::Array(fields)])
    }

    /// An entry that may be gone from the stream (trimmed): `[id, nil]` then.
    pub fn maybe_entry(id: StreamId, entry: Option<Entry>) -> Self {
        match entry {
            Some(entry) => Reply::entry(entry),
            None => Reply::Array(vec![Reply::Id(id), Reply::NullArray]),
        }
    }

    pub fn entries(entries: Vec<Entry>) -> Self {
        Reply::Array(entries.into_iter().map(Reply::entry).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// About the memory this reply holds until it is written: its strings' bytes plus
    /// `ITEM_OVERHEAD_BYTES` per item (the enum and its framing). A connection counts it as
    /// unsent until the writer took it.
    pub fn size_bytes(&self) -> usize {
        ITEM_OVERHEAD_BYTES
            + match self {
                Reply::Status(text) => text.len(),
                Reply::Error(text) => text.len(),
                Reply::Bulk(bytes) => bytes.len(),
                Reply::Id(id) => id.text_len(),
                Reply::Integer(_) | Reply::Null | Reply::NullArray => 0,
                Reply::Array(items) => items.iter().map(Reply::size_bytes).sum(),
                Reply::Map(pairs) => pairs.iter().map(|(key, value)| key.size_bytes() + value.size_bytes()).sum(),
            }
    }

    /// Appends this reply's bytes for protocol `resp3` or RESP2.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.replace(['\r', '\n'], " ").as_bytes()),
            Reply::Integer(value) => line(out, b':', itoa::Buffer::new().format(*value).as_bytes()),
            Reply::Bulk(bytes) => bulk(out, bytes),
            Reply::Id(id) => bulk(out, id.text().as_bytes()),
            Reply::Null if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', itoa::Buffer::new().format(items.len()).as_bytes());
                for item in items {
                    item.encode(resp3, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    line(out, b'%', itoa::Buffer::new().format(pairs.len()).as_bytes());
                } else {
                    line(out, b'*', itoa::Buffer::new().format(pairs.len() * 2).as_bytes());
                }
                for (key, value) in pairs {
                    key.encode(resp3, out);
                    value.encode(resp3, out);
                }
            }
        }
    }
}

/// What one reply item costs besides its string bytes: the enum (32 bytes) and its framing.
const ITEM_OVERHEAD_BYTES: usize = 40;
const _: () = assert!(std::mem::size_of::<Reply>() <= ITEM_OVERHEAD_BYTES);

fn bulk(out: &mut BytesMut, bytes: &[u8]) {
    line(out, b'$', itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(reply: &Reply, resp3: bool) -> String {
        let mut out = BytesMut::new();
        reply.encode(resp3, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn replies_encode_in_both_protocols() {
        assert_eq!(bytes(&Reply::OK, false), "+OK\r\n");
        assert_eq!(bytes(&Reply::error("ERR bad\r\nthing"), false), "-ERR bad  thing\r\n");
        assert_eq!(bytes(&Reply::Integer(-3), true), ":-3\r\n");
        assert_eq!(bytes(&Reply::bulk("hi"), false), "$2\r\nhi\r\n");
        assert_eq!(bytes(&Reply::Id(StreamId::new(12, 3)), true), "$4\r\n12-3\r\n");
        assert_eq!(bytes(&Reply::Null, false), "$-1\r\n");
        assert_eq!(bytes(&Reply::NullArray, false), "*-1\r\n");
        assert_eq!(bytes(&Reply::Null, true), "_\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1))]);
        assert_eq!(bytes(&map, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(bytes(&map, true), "%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn size_counts_every_string_and_item() {
        assert_eq!(Reply::OK.size_bytes(), ITEM_OVERHEAD_BYTES + 2);
        let entry =
            Reply::Array(vec![Reply::bulk("1-0"), Reply::Array(vec![Reply::bulk("f"), Reply::bulk(vec![0u8; 1000])])]);
        assert_eq!(entry.size_bytes(), 5 * ITEM_OVERHEAD_BYTES + 3 + 1 + 1000);
        let mut out = BytesMut::new();
        entry.encode(false, &mut out);
        assert!(entry.size_bytes() >= out.len(), "at least the bytes written");
    }
}
