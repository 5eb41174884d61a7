//! A request frame becomes a command: its words, read one by one with Redis's error texts.
use bytes::{Bytes, BytesMut};
use redis_protocol::error::RedisProtocolError;
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;

use super::reply::Reply;

/// The words of one command; the first is its name.
pub struct Args {
    words: Vec<Bytes>,
    position: usize,
}

/// What a command answers, or the error it answers with (both are replies; `?` returns early).
pub type CommandResult = Result<Reply, Reply>;

/// The next whole request frame at the front of `buffer`, taken off it, as a command (or the
/// error to answer it with); `None` until a whole frame arrived. The `redis-protocol` decoder
/// gives the frame as ranges into the buffer, which the words then share: no copy, and no
/// frame tree built only to be taken apart.
pub fn next_command(buffer: &mut BytesMut) -> Result<Option<Result<Args, Reply>>, RedisProtocolError> {
    let Some((frame, used)) = decode_range(buffer)? else {
        return Ok(None);
    };
    let request = buffer.split_to(used).freeze();
    Ok(Some(Args::from_frame(&request, frame)))
}

impl Args {
    /// A request must be an array of bulk strings (what every Redis client sends).
    fn from_frame(request: &Bytes, frame: RangeFrame) -> Result<Self, Reply> {
        let RangeFrame::Array(parts) = frame else {
            return Err(Reply::error("ERR Protocol error: expected an array of bulk strings"));
        };
        let mut words = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                RangeFrame::BulkString((start, end)) | RangeFrame::SimpleString((start, end)) => {
                    words.push(request.slice(start..end))
                }
                RangeFrame::Integer(value) => words.push(Bytes::from(value.to_string())),
                _ => return Err(Reply::error("ERR Protocol error: expected an array of bulk strings")),
            }
        }
        if words.is_empty() {
            return Err(Reply::error("ERR Protocol error: empty command"));
        }
        Ok(Self { words, position: 1 })
    }

    #[cfg(test)]
    pub fn of(words: &[&str]) -> Self {
        Self { words: words.iter().map(|word| Bytes::from(word.to_string())).collect(), position: 1 }
    }

    /// The command name, lower case, without an allocation (one per command was measurable
    /// under pipelined XADDs). A name longer than any command's is empty: unknown.
    pub fn name(&self) -> Name {
        let mut name = Name { bytes: [0; NAME_BYTES_MAX], len: 0 };
        let word = &self.words[0];
        if word.len() <= NAME_BYTES_MAX && word.is_ascii() {
            name.bytes[..word.len()].copy_from_slice(word);
            name.bytes[..word.len()].make_ascii_lowercase();
            name.len = word.len();
        }
        name
    }

    /// The command name as sent.
    pub fn original_name(&self) -> String {
        String::from_utf8_lossy(&self.words[0]).into_owned()
    }

    pub fn remaining(&self) -> usize {
        self.words.len() - self.position
    }

    pub fn next_word(&mut self) -> Option<Bytes> {
        let word = self.words.get(self.position).cloned();
        self.position += usize::from(word.is_some());
        word
    }

    /// The next word, or the arity error.
    pub fn required(&mut self) -> Result<Bytes, Reply> {
        self.next_word().ok_or_else(|| self.wrong_arity())
    }

    /// Consumes the next word if it is `keyword` (any case).
    pub fn take_keyword(&mut self, keyword: &str) -> bool {
        let found = self.words.get(self.position).is_some_and(|word| word.eq_ignore_ascii_case(keyword.as_bytes()));
        self.position += usize::from(found);
        found
    }

    pub fn peek(&self) -> Option<&Bytes> {
        self.words.get(self.position)
    }

    pub fn integer(&mut self) -> Result<i64, Reply> {
        let word = self.required()?;
        parse_integer(&word).ok_or_else(not_an_integer)
    }

    /// A count that must not be negative.
    pub fn count(&mut self) -> Result<u64, Reply> {
        let value = self.integer()?;
        u64::try_from(value).map_err(|_| Reply::error("ERR value is out of range, must be positive"))
    }

    /// The rest of the words, taken.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let rest = self.words.split_off(self.position);
        self.position = self.words.len();
        rest
    }

    pub fn wrong_arity(&self) -> Reply {
        Reply::error(format!("ERR wrong number of arguments for '{}' command", &*self.name()))
    }

    /// Fails with the arity error unless every word was used.
    pub fn finish(&self) -> Result<(), Reply> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(syntax_error())
        }
    }
}

/// Longer than every command name (`xautoclaim`, `xreadgroup`: 10).
const NAME_BYTES_MAX: usize = 16;

/// A command name in lower case, on the stack.
pub struct Name {
    bytes: [u8; NAME_BYTES_MAX],
    len: usize,
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        // ASCII only (checked when made).
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

pub fn parse_integer(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

pub fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

pub fn syntax_error() -> Reply {
    Reply::error("ERR syntax error")
}
