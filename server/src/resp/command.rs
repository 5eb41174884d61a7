//! A request becomes a command: its words, read one by one with Redis's error texts.
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;

use super::reply::Reply;
use crate::limits::RESP_INLINE_BYTES_MAX;

/// The words of one command; the first is its name. They are places in the request's bytes,
/// made `Bytes` only when a command keeps one: a `Bytes` per word, each a reference count
/// taken and given back, was a third of reading a pipelined XADD.
pub struct Args {
    request: Bytes,
    /// Where each word lies in `request`.
    words: Vec<Range<usize>>,
    position: usize,
}

/// What a command answers, or the error it answers with (both are replies; `?` returns early).
pub type CommandResult = Result<Reply, Reply>;

/// The next whole command at the front of `buffer`, taken off it (or the error to answer it
/// with); `None` until a whole command arrived. `Err` is a protocol error: the reason, after
/// which the connection is answered and closed.
///
/// As in Redis, a request that starts with `*` is a RESP array of bulk strings (what every
/// client library sends); anything else is an inline command, a line of words as typed into
/// telnet or `nc`. The `redis-protocol` decoder gives an array as ranges into the buffer, which
/// the words then share: no copy, and no frame tree built only to be taken apart.
pub fn next_command(buffer: &mut BytesMut) -> Result<Option<Result<Args, Reply>>, String> {
    loop {
        match buffer.first() {
            None => return Ok(None),
            Some(b'*') => {
                let Some((frame, used)) = decode_range(buffer).map_err(|error| error.to_string())? else {
                    return Ok(None);
                };
                let request = buffer.split_to(used).freeze();
                return Ok(Some(Args::from_frame(request, frame)));
            }
            Some(_) => {
                let Some(newline) = buffer.iter().position(|&byte| byte == b'\n') else {
                    if buffer.len() > RESP_INLINE_BYTES_MAX {
                        return Err("too big inline request".to_string());
                    }
                    return Ok(None);
                };
                if newline > RESP_INLINE_BYTES_MAX {
                    return Err("too big inline request".to_string());
                }
                let line = buffer.split_to(newline + 1);
                let line = &line[..newline];
                let (joined, words) = split_inline(line.strip_suffix(b"\r").unwrap_or(line))
                    .ok_or_else(|| "unbalanced quotes in request".to_string())?;
                // An empty line is skipped, as Redis does (telnet users press enter).
                if !words.is_empty() {
                    return Ok(Some(Ok(Args { request: Bytes::from(joined), words, position: 1 })));
                }
            }
        }
    }
}

/// The words of an inline command line, split as Redis's `sdssplitargs` does: on spaces, tabs
/// and line ends; "double quotes" with C escapes (`\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`, and
/// `\` before any other byte for that byte), 'single quotes' with `\'`. `None` when a quote is
/// not closed or its closing quote is followed by something other than a space. The words,
/// unescaped, are joined in one buffer: the places in it of each are the second part.
fn split_inline(line: &[u8]) -> Option<(Vec<u8>, Vec<Range<usize>>)> {
    let is_space = |byte: u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut joined = Vec::with_capacity(line.len());
    let mut words = Vec::new();
    let mut position = 0;
    loop {
        while position < line.len() && is_space(line[position]) {
            position += 1;
        }
        // A NUL ends the line, as it ends Redis's C string.
        if position == line.len() || line[position] == 0 {
            return Some((joined, words));
        }
        let start = joined.len();
        match line[position] {
            quote @ (b'"' | b'\'') => {
                position += 1;
                loop {
                    let byte = *line.get(position)?;
                    let next = line.get(position + 1).copied();
                    if byte == quote {
                        if next.is_some_and(|next| next != 0 && !is_space(next)) {
                            return None;
                        }
                        position += 1;
                        break;
                    }
                    if let (b'"', b'\\', Some(next)) = (quote, byte, next) {
                        let hex_digits =
                            line.get(position + 2..position + 4).map(|digits| (hex(digits[0]), hex(digits[1])));
                        let escaped = match (next, hex_digits) {
                            (b'x', Some((Some(high), Some(low)))) => {
                                position += 2;
                                high << 4 | low
                            }
                            (b'n', _) => b'\n',
                            (b'r', _) => b'\r',
                            (b't', _) => b'\t',
                            (b'b', _) => 0x08,
                            (b'a', _) => 0x07,
                            (other, _) => other,
                        };
                        joined.push(escaped);
                        position += 2;
                    } else if quote == b'\'' && byte == b'\\' && next == Some(b'\'') {
                        joined.push(b'\'');
                        position += 2;
                    } else {
                        joined.push(byte);
                        position += 1;
                    }
                }
            }
            _ => {
                while let Some(&byte) = line.get(position) {
                    if matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0) {
                        break;
                    }
                    joined.push(byte);
                    position += 1;
                }
            }
        }
        words.push(start..joined.len());
    }
}

impl Args {
    /// A request must be an array of bulk strings (what every Redis client sends).
    /// (Redis refuses integers and simple strings in one too; sluice takes simple strings.)
    fn from_frame(request: Bytes, frame: RangeFrame) -> Result<Self, Reply> {
        let not_bulk_strings = || Reply::error("ERR Protocol error: expected an array of bulk strings");
        let RangeFrame::Array(parts) = frame else { return Err(not_bulk_strings()) };
        // Collected in place: the decoder's list of parts becomes the list of words.
        let words = parts
            .into_iter()
            .map(|part| match part {
                RangeFrame::BulkString((start, end)) | RangeFrame::SimpleString((start, end)) => Ok(start..end),
                _ => Err(not_bulk_strings()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if words.is_empty() {
            return Err(Reply::error("ERR Protocol error: empty command"));
        }
        Ok(Self { request, words, position: 1 })
    }

    #[cfg(test)]
    pub fn of(words: &[&str]) -> Self {
        let mut request = Vec::new();
        let words = words
            .iter()
            .map(|word| {
                request.extend_from_slice(word.as_bytes());
                request.len() - word.len()..request.len()
            })
            .collect();
        Self { request: Bytes::from(request), words, position: 1 }
    }

    fn word(&self, index: usize) -> Option<&[u8]> {
        self.words.get(index).map(|range| &self.request[range.clone()])
    }

    /// The word at `range`, as `Bytes` sharing the request's (a command keeps it).
    fn kept(&self, range: &Range<usize>) -> Bytes {
        self.request.slice(range.clone())
    }

    /// The first word, as sent (every `Args` has one).
    fn name_word(&self) -> &[u8] {
        self.word(0).unwrap_or_default()
    }

    /// The command name, lower case, without an allocation (one per command was measurable
    /// under pipelined XADDs). A name longer than any command's is empty: unknown.
    pub fn name(&self) -> Name {
        let mut name = Name { bytes: [0; NAME_BYTES_MAX], len: 0 };
        let word = self.name_word();
        if word.len() <= NAME_BYTES_MAX && word.is_ascii() {
            name.bytes[..word.len()].copy_from_slice(word);
            name.bytes[..word.len()].make_ascii_lowercase();
            name.len = word.len();
        }
        name
    }

    /// The command name as sent.
    pub fn original_name(&self) -> String {
        String::from_utf8_lossy(self.name_word()).into_owned()
    }

    /// The bytes of all its words.
    pub fn size_bytes(&self) -> usize {
        self.words.iter().map(ExactSizeIterator::len).sum()
    }

    pub fn remaining(&self) -> usize {
        self.words.len() - self.position
    }

    pub fn next_word(&mut self) -> Option<Bytes> {
        let word = self.words.get(self.position).map(|range| self.kept(range));
        self.position += usize::from(word.is_some());
        word
    }

    /// The next word, or the arity error.
    pub fn required(&mut self) -> Result<Bytes, Reply> {
        self.next_word().ok_or_else(|| self.wrong_arity())
    }

    /// Consumes the next word if it is `keyword` (any case).
    pub fn take_keyword(&mut self, keyword: &str) -> bool {
        let found = self.word(self.position).is_some_and(|word| word.eq_ignore_ascii_case(keyword.as_bytes()));
        self.position += usize::from(found);
        found
    }

    pub fn peek(&self) -> Option<&[u8]> {
        self.word(self.position)
    }

    pub fn integer(&mut self) -> Result<i64, Reply> {
        let value = self.peek().map(parse_integer).ok_or_else(|| self.wrong_arity())?;
        self.position += 1;
        value.ok_or_else(not_an_integer)
    }

    /// A count that must not be negative.
    pub fn count(&mut self) -> Result<u64, Reply> {
        let value = self.integer()?;
        u64::try_from(value).map_err(|_| Reply::error("ERR value is out of range, must be positive"))
    }

    /// The rest of the words, taken.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let rest = self.words[self.position..].iter().map(|range| self.kept(range)).collect();
        self.position = self.words.len();
        rest
    }

    /// The rest of the words, taken as pairs (an XADD's fields and values); `None`, taking
    /// nothing, when there are none or one is left over.
    pub fn rest_pairs(&mut self) -> Option<Vec<(Bytes, Bytes)>> {
        let rest = &self.words[self.position..];
        if rest.is_empty() || rest.len() % 2 != 0 {
            return None;
        }
        let pairs = rest.chunks_exact(2).map(|pair| (self.kept(&pair[0]), self.kept(&pair[1]))).collect();
        self.position = self.words.len();
        Some(pairs)
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
#[derive(Clone, Copy, Default)]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The words of every command in `input`, in order, until it needs more bytes.
    fn commands(input: &[u8]) -> Result<Vec<Vec<String>>, String> {
        let mut buffer = BytesMut::from(input);
        let mut commands = Vec::new();
        while let Some(command) = next_command(&mut buffer)? {
            let mut args = command.map_err(|reply| format!("{reply:?}"))?;
            let name = args.original_name();
            let rest = args.rest();
            commands.push(
                std::iter::once(name)
                    .chain(rest.iter().map(|word| String::from_utf8_lossy(word).into_owned()))
                    .collect(),
            );
        }
        Ok(commands)
    }

    #[test]
    fn inline_commands_are_read_like_redis_does_between_arrays() {
        let input = b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n  xadd   s\t* f v\nXLEN s\r\n";
        assert_eq!(
            commands(input).unwrap(),
            [vec!["PING"], vec!["ECHO", "hi"], vec!["xadd", "s", "*", "f", "v"], vec!["XLEN", "s"]]
        );
    }

    #[test]
    fn an_array_takes_bulk_and_simple_strings_only() {
        assert_eq!(commands(b"*2\r\n$4\r\nECHO\r\n+hi\r\n").unwrap(), [vec!["ECHO", "hi"]]);
        for request in [&b"*2\r\n$4\r\nECHO\r\n:5\r\n"[..], b"*2\r\n$4\r\nECHO\r\n$-1\r\n", b"*1\r\n*0\r\n"] {
            let error = commands(request).unwrap_err();
            assert!(error.contains("expected an array of bulk strings"), "{error}");
        }
    }

    #[test]
    fn pairs_are_the_rest_of_the_words_in_twos() {
        let mut args = Args::of(&["xadd", "s", "f1", "v1", "f2", "v2"]);
        args.next_word();
        let pairs = args.rest_pairs().unwrap();
        assert_eq!(pairs, [(Bytes::from("f1"), Bytes::from("v1")), (Bytes::from("f2"), Bytes::from("v2"))]);
        assert_eq!(args.remaining(), 0);
        let mut odd = Args::of(&["xadd", "f1", "v1", "f2"]);
        assert!(odd.rest_pairs().is_none());
        assert_eq!(odd.remaining(), 3, "nothing taken");
        assert!(Args::of(&["xadd"]).rest_pairs().is_none());
    }

    #[test]
    fn empty_inline_lines_are_skipped() {
        assert_eq!(commands(b"\r\n\n   \r\nPING\r\n\r\n").unwrap(), [vec!["PING"]]);
    }

    #[test]
    fn quoted_inline_words_keep_spaces_and_take_escapes() {
        let input = br#"XADD s * "a field" "tab\there\x41\n" 'it\'s' "" "say \"hi\"\\""#;
        let mut line = input.to_vec();
        line.extend_from_slice(b"\r\n");
        assert_eq!(
            commands(&line).unwrap(),
            [vec!["XADD", "s", "*", "a field", "tab\there\x41\n", "it's", "", "say \"hi\"\\"]]
        );
    }

    #[test]
    fn unbalanced_quotes_are_a_protocol_error() {
        assert_eq!(commands(b"SET \"a b\r\n").unwrap_err(), "unbalanced quotes in request");
        assert_eq!(commands(b"SET 'a\r\n").unwrap_err(), "unbalanced quotes in request");
        // A closing quote must end the word.
        assert_eq!(commands(b"SET \"a\"b\r\n").unwrap_err(), "unbalanced quotes in request");
    }

    #[test]
    fn an_inline_line_waits_for_its_end_up_to_the_limit() {
        assert_eq!(commands(b"PIN").unwrap(), Vec::<Vec<String>>::new());
        let long = vec![b'a'; RESP_INLINE_BYTES_MAX];
        assert_eq!(commands(&long).unwrap(), Vec::<Vec<String>>::new());
        let too_long = vec![b'a'; RESP_INLINE_BYTES_MAX + 1];
        assert_eq!(commands(&too_long).unwrap_err(), "too big inline request");
        let mut line = vec![b'a'; RESP_INLINE_BYTES_MAX + 1];
        line.push(b'\n');
        assert_eq!(commands(&line).unwrap_err(), "too big inline request");
    }

    /// Bytes that look like requests: arrays of bulk strings, then one byte changed to one
    /// that matters to the grammar, cut short or followed by more.
    fn request_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let word = proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..12);
        let grammar = prop_oneof![
            Just(b'*'),
            Just(b'$'),
            Just(b'-'),
            Just(b'+'),
            Just(b':'),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'0'),
            Just(b'9'),
            Just(b'x'),
        ];
        (
            proptest::collection::vec(word, 0..5),
            proptest::option::of((any::<proptest::sample::Index>(), grammar)),
            any::<proptest::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(words, change, cut, more)| {
                let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
                for word in &words {
                    bytes.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
                    bytes.extend_from_slice(word);
                    bytes.extend_from_slice(b"\r\n");
                }
                if let Some((at, byte)) = change {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
                bytes.extend_from_slice(&more);
                bytes
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// The vendored redis-protocol decodes arrays of bulk strings by a fast path of its
        /// own (a sluice patch): it answers as the crate's parser does, whatever the bytes.
        #[test]
        fn the_fast_decoder_answers_as_the_parser(bytes in request_like()) {
            let fast = redis_protocol::resp2::decode::decode_range(&bytes);
            let parsed = redis_protocol::resp2::decode::decode_range_parsed(&bytes);
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{parsed:?}"));
        }
    }
}
