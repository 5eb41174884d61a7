//! Key commands on streams: DEL (deletes the stream's topic), EXISTS, TYPE, KEYS, SCAN, DBSIZE,
//! TTL and PTTL. Every topic is a key (a stream is partition 0 of its topic), of type stream.
use bytes::Bytes;

use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

fn names(args: &mut Args) -> Result<Vec<String>, Reply> {
    let keys = args.rest();
    if keys.is_empty() {
        return Err(args.wrong_arity());
    }
    Ok(keys.iter().map(|key| String::from_utf8_lossy(key).into_owned()).collect())
}

pub async fn del(session: &Session, args: &mut Args) -> CommandResult {
    let names = names(args)?;
    let existing: Vec<String> = {
        let metadata = session.shard.metadata();
        names.into_iter().filter(|name| metadata.topics.contains_key(name)).collect()
    };
    if existing.is_empty() {
        return Ok(Reply::Integer(0));
    }
    match session.shard.call(METADATA_SHARD, ShardRequest::DeleteTopics { names: existing }).await {
        ShardResponse::TopicChanges(results) => {
            Ok(Reply::Integer(results.iter().filter(|change| change.result.is_ok()).count() as i64))
        }
        _ => unreachable!("DeleteTopics answers with TopicChanges"),
    }
}

pub fn exists(session: &Session, args: &mut Args) -> CommandResult {
    let names = names(args)?;
    let metadata = session.shard.metadata();
    Ok(Reply::Integer(names.iter().filter(|name| metadata.topics.contains_key(*name)).count() as i64))
}

pub fn key_type(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    args.finish().map_err(|_| args.wrong_arity())?;
    let exists = is_stream(session, &key);
    Ok(Reply::Status(if exists { "stream" } else { "none" }))
}

/// Whether `key` names a stream (a topic).
fn is_stream(session: &Session, key: &[u8]) -> bool {
    session.shard.metadata().topics.contains_key(&*String::from_utf8_lossy(key))
}

/// `KEYS pattern`: the keys matching a Redis glob pattern, in name order.
pub fn keys(session: &Session, args: &mut Args) -> CommandResult {
    let pattern = args.required()?;
    args.finish().map_err(|_| args.wrong_arity())?;
    Ok(Reply::Array(matching(session, &pattern)))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: every matching key in one reply, and
/// cursor 0 (the iteration is over). COUNT is a hint in Redis too; one reply keeps Redis's
/// promise that a key present during the whole iteration is returned, whatever changes.
pub fn scan(session: &Session, args: &mut Args) -> CommandResult {
    let cursor = args.required()?;
    if std::str::from_utf8(&cursor).ok().and_then(|cursor| cursor.parse::<u64>().ok()).is_none() {
        return Err(Reply::error("ERR invalid cursor"));
    }
    let mut pattern = Bytes::from_static(b"*");
    let mut streams = true;
    while args.remaining() > 0 {
        if args.take_keyword("MATCH") {
            pattern = args.required()?;
        } else if args.take_keyword("COUNT") {
            if args.integer()? < 1 {
                return Err(syntax_error());
            }
        } else if args.take_keyword("TYPE") {
            streams = args.required()?.eq_ignore_ascii_case(b"stream");
        } else {
            return Err(syntax_error());
        }
    }
    let keys = if streams { matching(session, &pattern) } else { Vec::new() };
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from_static(b"0")), Reply::Array(keys)]))
}

fn matching(session: &Session, pattern: &[u8]) -> Vec<Reply> {
    let metadata = session.shard.metadata();
    let names = metadata.topics.keys().filter(|name| glob_matches(pattern, name.as_bytes()));
    names.map(|name| Reply::Bulk(Bytes::copy_from_slice(name.as_bytes()))).collect()
}

pub fn dbsize(session: &Session, args: &mut Args) -> CommandResult {
    args.finish().map_err(|_| args.wrong_arity())?;
    Ok(Reply::Integer(session.shard.metadata().topics.len() as i64))
}

/// `TTL key` / `PTTL key`: -1 for a stream (keys do not expire; retention trims entries, not
/// keys), -2 for a missing key.
pub fn ttl(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    args.finish().map_err(|_| args.wrong_arity())?;
    let exists = is_stream(session, &key);
    Ok(Reply::Integer(if exists { -1 } else { -2 }))
}

/// Redis's glob-style match (KEYS, SCAN MATCH): `*` any run, `?` one byte, `[abc]`, `[a-z]` and
/// `[^...]` one byte of a set (an unclosed set runs to the pattern's end), `\` escapes the next
/// byte. Backtracks only to the last `*`: linear in the key for each position of the pattern.
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a mismatch: the pattern after the last `*`, the text it took up to.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            resume = Some((p, t));
            continue;
        }
        if let Some(used) = element_matches(&pattern[p.min(pattern.len())..], text[t]) {
            p += used;
            t += 1;
            continue;
        }
        let Some((after_star, taken)) = resume else {
            return false;
        };
        (p, t) = (after_star, taken + 1);
        resume = Some((after_star, taken + 1));
    }
    pattern[p.min(pattern.len())..].iter().all(|&byte| byte == b'*')
}

/// The pattern bytes its first element (not `*`) spans, if it matches `byte`.
fn element_matches(pattern: &[u8], byte: u8) -> Option<usize> {
    match *pattern.first()? {
        b'?' => Some(1),
        b'\\' if pattern.len() >= 2 => (pattern[1] == byte).then_some(2),
        b'[' => {
            let negated = pattern.get(1) == Some(&b'^');
            let mut position = 1 + usize::from(negated);
            let mut found = false;
            while position < pattern.len() && pattern[position] != b']' {
                if pattern[position] == b'\\' && position + 1 < pattern.len() {
                    found |= pattern[position + 1] == byte;
                    position += 2;
                } else if position + 2 < pattern.len() && pattern[position + 1] == b'-' {
                    let (low, high) =
                        (pattern[position].min(pattern[position + 2]), pattern[position].max(pattern[position + 2]));
                    found |= (low..=high).contains(&byte);
                    position += 3;
                } else {
                    found |= pattern[position] == byte;
                    position += 1;
                }
            }
            let used = (position + 1).min(pattern.len());
            (found != negated).then_some(used)
        }
        literal => (literal == byte).then_some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn glob_patterns_match_as_in_redis() {
        let cases: [(&str, &str, bool); 22] = [
            ("*", "orders", true),
            ("*", "", true),
            ("orders", "orders", true),
            ("orders", "order", false),
            ("ord*", "orders", true),
            ("*ers", "orders", true),
            ("*d*r*", "orders", true),
            ("o*s*x", "orders", false),
            ("ord?rs", "orders", true),
            ("ord?rs", "ordrs", false),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("jobs\\*", "jobs*", true),
            ("jobs\\*", "jobsX", false),
            ("jobs:[dl]lq", "jobs:dlq", true),
            ("a[bc", "ab", true),
            ("**a", "a", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern.as_bytes(), text.as_bytes()), expected, "{pattern:?} on {text:?}");
        }
    }
}
