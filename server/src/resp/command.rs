//! A request frame becomes a command: its words, read one by one with Redis's error texts.
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

use super::reply::Reply;

/// The words of one command; the first is its name.
pub struct Args {
    words: Vec<Bytes>,
    position: usize,
}

/// What a command answers, or the error it answers with (both are replies; `?` returns early).
pub type CommandResult = Result<Reply, Reply>;

impl Args {
    /// A request must be an array of bulk strings (what every Redis client sends).
    pub fn from_frame(frame: BytesFrame) -> Result<Self, Reply> {
        let BytesFrame::Array(parts) = frame else {
            return Err(Reply::error("ERR Protocol error: expected an array of bulk strings"));
        };
        let mut words = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                BytesFrame::BulkString(bytes) | BytesFrame::SimpleString(bytes) => words.push(bytes),
                BytesFrame::Integer(value) => words.push(Bytes::from(value.to_string())),
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

    /// The command name, lower case.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.words[0]).to_ascii_lowercase()
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

    /// The rest of the words.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let rest = self.words[self.position..].to_vec();
        self.position = self.words.len();
        rest
    }

    pub fn wrong_arity(&self) -> Reply {
        Reply::error(format!("ERR wrong number of arguments for '{}' command", self.name()))
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

pub fn parse_integer(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

pub fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

pub fn syntax_error() -> Reply {
    Reply::error("ERR syntax error")
}
