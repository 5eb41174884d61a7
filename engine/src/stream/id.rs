//! Stream entry IDs: `<ms>-<seq>`, two unsigned 64-bit numbers, ordered by `ms` then `seq`,
//! strictly increasing within a stream.
//!
//! An entry XADD wrote carries its ID in the record (see [`super::entry`]). A record a Kafka
//! producer wrote has the ID `<timestamp>-<offset>`: it increases with the log as long as the
//! producers' timestamps do not go backwards, which is what one producer's clock gives.
use std::fmt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: Self = Self { ms: 0, seq: 0 };
    pub const MAX: Self = Self { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The smallest ID greater than this one; `None` after [`StreamId::MAX`].
    pub fn successor(self) -> Option<Self> {
        match (self.seq.checked_add(1), self.ms.checked_add(1)) {
            (Some(seq), _) => Some(Self { ms: self.ms, seq }),
            (None, Some(ms)) => Some(Self { ms, seq: 0 }),
            (None, None) => None,
        }
    }

    /// The greatest ID smaller than this one; `None` before [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<Self> {
        match (self.seq.checked_sub(1), self.ms.checked_sub(1)) {
            (Some(seq), _) => Some(Self { ms: self.ms, seq }),
            (None, Some(ms)) => Some(Self { ms, seq: u64::MAX }),
            (None, None) => None,
        }
    }

    /// `<ms>-<seq>` or `<ms>` (the sequence then defaults to `missing_seq`), as Redis parses IDs.
    pub fn parse(text: &[u8], missing_seq: u64) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        match text.split_once('-') {
            Some((ms, seq)) => Some(Self { ms: parse_number(ms)?, seq: parse_number(seq)? }),
            None => Some(Self { ms: parse_number(text)?, seq: missing_seq }),
        }
    }
}

/// Digits only: Redis refuses signs, spaces and empty numbers in IDs.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl StreamId {
    /// `<ms>-<seq>` on the stack: every XADD writes its ID twice (record key and reply), and
    /// `to_string` through `fmt` was 6% of the broker's CPU under pipelined XADDs.
    pub fn text(self) -> IdText {
        let mut text = IdText { bytes: [0; ID_TEXT_BYTES_MAX], len: 0 };
        let mut digits = itoa::Buffer::new();
        text.push(digits.format(self.ms).as_bytes());
        text.push(b"-");
        text.push(digits.format(self.seq).as_bytes());
        text
    }

    /// The length of [`StreamId::text`], without writing it (reply size estimates).
    pub fn text_len(self) -> usize {
        let digits = |value: u64| value.checked_ilog10().map_or(1, |log| log as usize + 1);
        digits(self.ms) + 1 + digits(self.seq)
    }
}

/// Two 20-digit numbers and the dash.
const ID_TEXT_BYTES_MAX: usize = 41;

/// An ID as text, without an allocation.
#[derive(Clone, Copy)]
pub struct IdText {
    bytes: [u8; ID_TEXT_BYTES_MAX],
    len: u8,
}

impl IdText {
    fn push(&mut self, part: &[u8]) {
        let start = usize::from(self.len);
        self.bytes[start..start + part.len()].copy_from_slice(part);
        self.len += part.len() as u8;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Digits and a dash only.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// The ID argument of XADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRequest {
    /// `*`: the current time, or after the last ID if the clock is behind it.
    Auto,
    /// `<ms>-*`: this millisecond, the next free sequence in it.
    AutoSequence(u64),
    /// `<ms>-<seq>` or `<ms>`.
    Explicit(StreamId),
}

impl IdRequest {
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text == b"*" {
            return Some(Self::Auto);
        }
        if let Some(ms) = text.strip_suffix(b"-*") {
            return StreamId::parse(ms, 0).filter(|_| !ms.contains(&b'-')).map(|id| Self::AutoSequence(id.ms));
        }
        StreamId::parse(text, 0).map(Self::Explicit)
    }
}

/// Why XADD cannot use the ID asked for (Redis's error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignError {
    /// Not greater than the stream's last ID.
    NotGreater,
    /// `0-0` is never a valid entry ID.
    Zero,
    /// The last ID is `MAX`: no ID is left.
    Exhausted,
    /// `ms-*` after `ms-18446744073709551615`: no sequence number is left in that millisecond.
    SequenceExhausted,
}

impl fmt::Display for AssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotGreater => "ERR The ID specified in XADD is equal or smaller than the target stream top item",
            Self::Zero => "ERR The ID specified in XADD must be greater than 0-0",
            Self::Exhausted => "ERR The stream has exhausted the last possible ID, unable to add more items",
            // Redis's text for this case (its ERANGE), odd as it reads.
            Self::SequenceExhausted => "ERR Elements are too large to be stored",
        })
    }
}

/// The ID of a new entry, given the stream's last ID and the clock, by Redis's rules.
pub fn assign(last: StreamId, request: IdRequest, now_ms: u64) -> Result<StreamId, AssignError> {
    let id = match request {
        IdRequest::Auto if now_ms > last.ms => StreamId::new(now_ms, 0),
        IdRequest::Auto => last.successor().ok_or(AssignError::Exhausted)?,
        IdRequest::AutoSequence(ms) if ms > last.ms => StreamId::new(ms, 0),
        IdRequest::AutoSequence(ms) if ms == last.ms => {
            StreamId::new(ms, last.seq.checked_add(1).ok_or(AssignError::SequenceExhausted)?)
        }
        IdRequest::AutoSequence(_) => return Err(AssignError::NotGreater),
        IdRequest::Explicit(id) if id == StreamId::MIN => return Err(AssignError::Zero),
        IdRequest::Explicit(id) => id,
    };
    if id <= last {
        return Err(AssignError::NotGreater);
    }
    Ok(id)
}

/// One end of an XRANGE interval: `-`, `+`, `<ms>`, `<ms>-<seq>`, or either of the last two
/// after `(` (exclusive). Returns the inclusive ID, or `None` when the text is not an ID or an
/// exclusive bound leaves nothing (Redis: "ERR invalid start/end ID for the interval").
pub fn parse_bound(text: &[u8], is_start: bool) -> Option<StreamId> {
    match text {
        b"-" => return Some(StreamId::MIN),
        b"+" => return Some(StreamId::MAX),
        _ => {}
    }
    let missing_seq = if is_start { 0 } else { u64::MAX };
    match text.strip_prefix(b"(") {
        Some(exclusive) => {
            let id = StreamId::parse(exclusive, missing_seq)?;
            if is_start {
                id.successor()
            } else {
                id.predecessor()
            }
        }
        None => StreamId::parse(text, missing_seq),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_parse_and_print_as_redis_does() {
        assert_eq!(StreamId::parse(b"1526919030474-55", 0), Some(StreamId::new(1526919030474, 55)));
        assert_eq!(StreamId::parse(b"12", 7), Some(StreamId::new(12, 7)));
        for bad in [&b""[..], b"-", b"1-", b"-1", b"a-1", b"1-2-3", b"+1", b" 1", b"18446744073709551616"] {
            assert_eq!(StreamId::parse(bad, 0), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(StreamId::new(5, 3).to_string(), "5-3");
        assert_eq!(StreamId::MAX.text().as_bytes(), format!("{}-{}", u64::MAX, u64::MAX).as_bytes());
        assert_eq!(StreamId::MIN.text().as_str(), "0-0");
        for value in [0, 1, 9, 10, 99, 100, 1_700_000_000_123, u64::MAX - 1, u64::MAX] {
            for id in [StreamId::new(value, 0), StreamId::new(7, value), StreamId::new(value, value)] {
                assert_eq!(id.text_len(), id.text().as_bytes().len(), "{}", id.text().as_str());
            }
        }
        assert!(StreamId::new(1, 9) < StreamId::new(2, 0));
    }

    #[test]
    fn successor_and_predecessor_carry_over() {
        assert_eq!(StreamId::new(1, u64::MAX).successor(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.successor(), None);
        assert_eq!(StreamId::new(2, 0).predecessor(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.predecessor(), None);
    }

    #[test]
    fn auto_ids_follow_the_clock_and_never_go_back() {
        let last = StreamId::new(1_000, 4);
        assert_eq!(assign(last, IdRequest::Auto, 2_000), Ok(StreamId::new(2_000, 0)));
        assert_eq!(assign(last, IdRequest::Auto, 1_000), Ok(StreamId::new(1_000, 5)));
        // The clock went backwards: stay after the last ID.
        assert_eq!(assign(last, IdRequest::Auto, 10), Ok(StreamId::new(1_000, 5)));
        assert_eq!(assign(StreamId::MAX, IdRequest::Auto, 10), Err(AssignError::Exhausted));
    }

    #[test]
    fn partial_and_explicit_ids_are_checked_against_the_top_item() {
        let last = StreamId::new(1_000, 4);
        assert_eq!(assign(last, IdRequest::AutoSequence(1_000), 0), Ok(StreamId::new(1_000, 5)));
        assert_eq!(assign(last, IdRequest::AutoSequence(1_001), 0), Ok(StreamId::new(1_001, 0)));
        assert_eq!(assign(last, IdRequest::AutoSequence(999), 0), Err(AssignError::NotGreater));
        let full = StreamId::new(1_000, u64::MAX);
        assert_eq!(assign(full, IdRequest::AutoSequence(1_000), 0), Err(AssignError::SequenceExhausted));
        assert_eq!(assign(last, IdRequest::Explicit(StreamId::new(1_000, 4)), 0), Err(AssignError::NotGreater));
        assert_eq!(assign(last, IdRequest::Explicit(StreamId::new(1_000, 5)), 0), Ok(StreamId::new(1_000, 5)));
        assert_eq!(assign(StreamId::MIN, IdRequest::Explicit(StreamId::MIN), 0), Err(AssignError::Zero));
        assert_eq!(assign(StreamId::MIN, IdRequest::Explicit(StreamId::new(0, 1)), 0), Ok(StreamId::new(0, 1)));
    }

    #[test]
    fn xadd_id_arguments_parse() {
        assert_eq!(IdRequest::parse(b"*"), Some(IdRequest::Auto));
        assert_eq!(IdRequest::parse(b"5-*"), Some(IdRequest::AutoSequence(5)));
        assert_eq!(IdRequest::parse(b"5-6"), Some(IdRequest::Explicit(StreamId::new(5, 6))));
        assert_eq!(IdRequest::parse(b"5"), Some(IdRequest::Explicit(StreamId::new(5, 0))));
        assert_eq!(IdRequest::parse(b"5-6-*"), None);
        assert_eq!(IdRequest::parse(b"x"), None);
    }

    #[test]
    fn range_bounds_cover_redis_forms() {
        assert_eq!(parse_bound(b"-", true), Some(StreamId::MIN));
        assert_eq!(parse_bound(b"+", false), Some(StreamId::MAX));
        assert_eq!(parse_bound(b"7", true), Some(StreamId::new(7, 0)));
        assert_eq!(parse_bound(b"7", false), Some(StreamId::new(7, u64::MAX)));
        assert_eq!(parse_bound(b"(7-1", true), Some(StreamId::new(7, 2)));
        assert_eq!(parse_bound(b"(7-0", false), Some(StreamId::new(6, u64::MAX)));
        assert_eq!(parse_bound(b"(0-0", false), None);
        assert_eq!(parse_bound(b"nope", true), None);
    }
}
