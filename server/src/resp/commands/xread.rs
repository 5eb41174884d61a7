//! XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...
//!
//! BLOCK waits on the owner shards' append notifications (no polling), in rounds of at most
//! `RESP_BLOCK_ROUND_MS`; streams that do not exist yet are looked for again every
//! `RESP_MISSING_STREAM_RECHECK_MS`.
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_engine::stream::entry::Entry;
use sluice_engine::stream::id::StreamId;

use crate::limits::{
    RESP_BLOCK_ROUND_MS, RESP_MISSING_STREAM_RECHECK_MS, RESP_RANGE_ENTRIES_MAX, RESP_REPLY_BYTES_MAX,
};
use crate::metrics::Protocol;
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, Stream};

/// Where reading one stream stands.
struct Cursor {
    key: Bytes,
    /// Entries after this ID (`None`: everything from `offset` on, as for `$`).
    after: Option<StreamId>,
    /// Where to read next; `None` until the stream exists.
    offset: Option<i64>,
}

pub struct ReadOptions {
    pub count: usize,
    /// `None`: do not block; `Some(None)`: block forever (BLOCK 0).
    pub block: Option<Option<Duration>>,
}

/// `[COUNT n] [BLOCK ms]` then `STREAMS`; returns the options and the keys and IDs after it.
/// Inside a transaction's EXEC, BLOCK is checked and then ignored, as in Redis.
pub fn parse_options(
    args: &mut Args,
    allow_noack: bool,
    session: &Session,
) -> Result<(ReadOptions, bool, Vec<Bytes>), Reply> {
    // Redis's arity: XREAD STREAMS key id, XREADGROUP GROUP group consumer STREAMS key id.
    if args.remaining() < 3 {
        return Err(args.wrong_arity());
    }
    let mut options = ReadOptions { count: RESP_RANGE_ENTRIES_MAX, block: None };
    let mut noack = false;
    loop {
        if args.take_keyword("COUNT") {
            // As in Redis, COUNT 0 or below means no count (here: a range reply's worth).
            let count = usize::try_from(args.integer()?).unwrap_or(0);
            options.count = if count == 0 { RESP_RANGE_ENTRIES_MAX } else { count.min(RESP_RANGE_ENTRIES_MAX) };
        } else if args.take_keyword("BLOCK") {
            let block_ms = args.integer()?;
            if block_ms < 0 {
                return Err(Reply::error("ERR timeout is negative"));
            }
            if !session.executing.get() {
                options.block = Some((block_ms > 0).then(|| Duration::from_millis(block_ms as u64)));
            }
        } else if allow_noack && args.take_keyword("NOACK") {
            noack = true;
        } else if args.take_keyword("STREAMS") {
            break;
        } else {
            return Err(syntax_error());
        }
    }
    let rest = args.rest();
    if rest.is_empty() || rest.len() % 2 != 0 {
        let (command, symbol) = if allow_noack { ("xreadgroup", '>') } else { ("xread", '$') };
        return Err(Reply::error(format!(
            "ERR Unbalanced '{command}' list of streams: for each stream key an ID or '{symbol}' must be specified."
        )));
    }
    Ok((options, noack, rest))
}

pub async fn xread(session: &Session, args: &mut Args) -> CommandResult {
    let (options, _, words) = parse_options(args, false, session)?;
    let (keys, ids) = words.split_at(words.len() / 2);
    let mut cursors = Vec::with_capacity(keys.len());
    for (key, id) in keys.iter().zip(ids) {
        let stream = streams::find(session, key)?;
        let after = if &id[..] == b"$" {
            None
        } else if &id[..] == b"+" {
            // Redis 7.4: the stream's last entry, if it has one; else what comes next.
            let newest = match &stream {
                Some(stream) => {
                    stream.scan_back(session, StreamId::MIN, StreamId::MAX, 1, RESP_REPLY_BYTES_MAX).await?
                }
                None => Default::default(),
            };
            Some(newest.entries.first().and_then(|entry| entry.id.predecessor()).unwrap_or(StreamId::MIN))
        } else {
            Some(
                StreamId::parse(id, 0)
                    .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?,
            )
        };
        let offset = match (&stream, after) {
            (None, _) => None,
            (Some(stream), None) => Some(stream.offsets(session).await?.1),
            (Some(stream), Some(after)) => Some(stream.seek(session, after).await?),
        };
        cursors.push(Cursor { key: key.clone(), after, offset });
    }
    let deadline = options.block.map(|block| block.map(|wait| Instant::now() + wait));
    let mut blocked = None;
    loop {
        let found = read_once(session, &mut cursors, options.count).await?;
        if !found.is_empty() {
            count_sent(session, found.iter().flat_map(|(_, entries)| entries));
            return Ok(reply(session, found));
        }
        let Some(deadline) = deadline else {
            return Ok(Reply::NullArray);
        };
        if blocked.is_none() {
            blocked = Some(crate::resp::session::Blocked::enter()?);
        }
        let now = Instant::now();
        let mut round = deadline.map_or(Duration::from_millis(RESP_BLOCK_ROUND_MS), |deadline| deadline - now);
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Ok(Reply::NullArray);
        }
        if cursors.iter().any(|cursor| cursor.offset.is_none()) {
            round = round.min(Duration::from_millis(RESP_MISSING_STREAM_RECHECK_MS));
        }
        let watches = cursors
            .iter()
            .filter_map(|cursor| {
                let stream = streams::find(session, &cursor.key).ok()??;
                Some((stream.partition, cursor.offset?))
            })
            .collect();
        let round_ms = round.as_millis().min(u128::from(RESP_BLOCK_ROUND_MS)) as u64;
        session.shard.wait_for_data_anywhere(watches, round_ms.max(1)).await;
    }
}

/// One pass over every stream: the entries each has past its cursor (streams with none are
/// left out), advancing the cursors.
async fn read_once(
    session: &Session,
    cursors: &mut [Cursor],
    count: usize,
) -> Result<Vec<(Bytes, Vec<sluice_engine::stream::entry::Entry>)>, Reply> {
    let mut found = Vec::new();
    // One budget for the whole reply, whatever the number of streams.
    let mut bytes_left = RESP_REPLY_BYTES_MAX;
    for cursor in cursors.iter_mut() {
        if bytes_left == 0 {
            break;
        }
        let Some(stream): Option<Stream> = streams::find(session, &cursor.key)? else {
            continue;
        };
        let offset = match cursor.offset {
            Some(offset) => offset,
            // Created while we waited: everything in it is new.
            None => *cursor.offset.insert(stream.offsets(session).await?.0),
        };
        let first = cursor.after.and_then(StreamId::successor).unwrap_or(StreamId::MIN);
        if cursor.after == Some(StreamId::MAX) {
            continue;
        }
        let scanned = stream.scan(session, offset, first, StreamId::MAX, count, bytes_left).await?;
        cursor.offset = Some(scanned.next);
        bytes_left = if scanned.full {
            0
        } else {
            bytes_left.saturating_sub(scanned.entries.iter().map(|entry| streams::fields_bytes(&entry.fields)).sum())
        };
        if let Some(last) = scanned.entries.last() {
            cursor.after = Some(last.id);
            found.push((cursor.key.clone(), scanned.entries));
        }
    }
    Ok(found)
}

/// Adds entries going out to the shard's records out, their field names and values to its
/// bytes out.
pub fn count_sent<'a>(session: &Session, entries: impl Iterator<Item = &'a Entry>) {
    let (mut bytes, mut records) = (0usize, 0u64);
    for entry in entries {
        bytes += streams::fields_bytes(&entry.fields);
        records += 1;
    }
    session.shard.metrics.sent(Protocol::Resp, bytes, records);
}

/// RESP2: `[[key, entries], ...]`; RESP3: `{key: entries, ...}`.
pub fn reply(session: &Session, found: Vec<(Bytes, Vec<sluice_engine::stream::entry::Entry>)>) -> Reply {
    if session.resp3.get() {
        Reply::Map(found.into_iter().map(|(key, entries)| (Reply::Bulk(key), Reply::entries(entries))).collect())
    } else {
        Reply::Array(
            found
                .into_iter()
                .map(|(key, entries)| Reply::Array(vec![Reply::Bulk(key), Reply::entries(entries)]))
                .collect(),
        )
    }
}
