//! XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...
//!
//! `>` hands out entries no consumer of the group has had (and, with VISIBILITY, entries
//! idle past it); any other ID re-reads the consumer's own pending entries after it. BLOCK
//! waits, as XREAD does, only when every ID is `>`.
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_engine::stream::entry::Entry;
use sluice_engine::stream::id::StreamId;

use super::xread::{count_sent, parse_options};
use crate::limits::RESP_BLOCK_ROUND_MS;
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error, Stream};
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::stream_groups::{GroupAnswer, GroupCall, ReplyBudget};

/// Per stream: its key and the entries (an entry trimmed from the stream is `None`).
type Found = Vec<(Bytes, Vec<(StreamId, Option<Entry>)>)>;

enum Position {
    New,
    After(StreamId),
}

pub async fn xreadgroup(session: &Session, args: &mut Args) -> CommandResult {
    if !args.take_keyword("GROUP") {
        return Err(syntax_error());
    }
    let (group, consumer) = (args.required()?, args.required()?);
    let (options, noack, words) = parse_options(args, true, session)?;
    let (keys, ids) = words.split_at(words.len() / 2);
    let mut reads: Vec<(Stream, Position)> = Vec::with_capacity(keys.len());
    for (key, id) in keys.iter().zip(ids) {
        let nogroup = || Reply::error(no_group(key, &group));
        let stream = streams::find(session, key)?.ok_or_else(nogroup)?;
        let position = if &id[..] == b">" {
            Position::New
        } else if &id[..] == b"$" {
            return Err(Reply::error(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this \
                 consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return \
                 an empty result set.",
            ));
        } else {
            Position::After(
                StreamId::parse(id, 0)
                    .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?,
            )
        };
        reads.push((stream, position));
    }
    let all_new = reads.iter().all(|(_, position)| matches!(position, Position::New));
    let deadline = options.block.filter(|_| all_new).map(|block| block.map(|wait| Instant::now() + wait));
    if let (Some(deadline), [(stream, Position::New)]) = (deadline, &reads[..]) {
        if let Ok(blocked) = crate::resp::session::Blocked::enter() {
            let call = GroupCall::ReadNew {
                group: group.clone(),
                consumer,
                count: options.count,
                noack,
                budget: ReplyBudget::whole(),
            };
            return read_new_blocking(session, stream, &group, call, deadline, blocked).await;
        }
        // Too many blocked already: the loop below still answers when entries are there.
    }
    let mut blocked = None;
    loop {
        // Where the streams end before reading: a blocked read wakes on anything after that.
        let mut watches = Vec::new();
        if deadline.is_some() {
            for (stream, _) in &reads {
                let (_, end) = stream.offsets(session).await?;
                watches.push((stream.partition.clone(), end));
            }
        }
        let mut found: Found = Vec::new();
        // The reply's fields stay within RESP_REPLY_BYTES_MAX over all its streams: each read
        // gets what is left, and once it is spent the streams left are not read (nothing is
        // delivered from them).
        let mut budget = ReplyBudget::whole();
        for (stream, position) in &reads {
            if budget.bytes_left == 0 {
                break;
            }
            let call = match position {
                Position::New => GroupCall::ReadNew {
                    group: group.clone(),
                    consumer: consumer.clone(),
                    count: options.count,
                    noack,
                    budget,
                },
                Position::After(after) => GroupCall::ReadHistory {
                    group: group.clone(),
                    consumer: consumer.clone(),
                    after: *after,
                    count: options.count,
                    budget,
                },
            };
            let answer = group_call(session, stream, call)
                .await
                .map_err(|error| group_error(error, || no_group(&stream.key, &group)))?;
            let GroupAnswer::Entries(entries) = answer else { unreachable!("group reads answer with Entries") };
            budget = budget.after(&entries);
            // History reads always name their stream; new reads only when they got entries.
            if !entries.is_empty() || matches!(position, Position::After(_)) {
                found.push((stream.key.clone(), entries));
            }
        }
        if !found.is_empty() {
            let delivered =
                found.iter().flat_map(|(_, entries)| entries.iter().filter_map(|(_, entry)| entry.as_ref()));
            count_sent(session, delivered);
            return Ok(reply(session, found));
        }
        let Some(deadline) = deadline else {
            return Ok(Reply::NullArray);
        };
        if blocked.is_none() {
            blocked = Some(crate::resp::session::Blocked::enter()?);
        }
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Ok(Reply::NullArray);
        }
        let round = deadline.map_or(Duration::from_millis(RESP_BLOCK_ROUND_MS), |deadline| deadline - now);
        let round_ms = round.as_millis().min(u128::from(RESP_BLOCK_ROUND_MS)) as u64;
        session.shard.wait_for_data_anywhere(watches, round_ms.max(1)).await;
    }
}

/// XREADGROUP BLOCK on one stream with `>`: the owner reads, waits for appends and reads
/// again, in rounds of at most `RESP_BLOCK_ROUND_MS`; one round trip per round.
async fn read_new_blocking(
    session: &Session,
    stream: &Stream,
    group: &Bytes,
    call: GroupCall,
    deadline: Option<Instant>,
    _blocked: crate::resp::session::Blocked,
) -> CommandResult {
    loop {
        let round = deadline.map_or(Duration::from_millis(RESP_BLOCK_ROUND_MS), |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        let wait_ms = round.as_millis().min(u128::from(RESP_BLOCK_ROUND_MS)) as u64;
        let request = ShardRequest::StreamGroupWait { topic: stream.partition.0.clone(), call: call.clone(), wait_ms };
        let ShardResponse::StreamGroup(answer) = session.shard.call(stream.owner, request).await else {
            unreachable!("StreamGroupWait answers with StreamGroup")
        };
        let answer = answer.map_err(|error| group_error(error, || no_group(&stream.key, group)))?;
        let GroupAnswer::Entries(entries) = answer else { unreachable!("group reads answer with Entries") };
        if !entries.is_empty() {
            count_sent(session, entries.iter().filter_map(|(_, entry)| entry.as_ref()));
            return Ok(reply(session, vec![(stream.key.clone(), entries)]));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(Reply::NullArray);
        }
    }
}

fn no_group(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    )
}

fn reply(session: &Session, found: Found) -> Reply {
    let entries = |entries: Vec<(StreamId, Option<Entry>)>| {
        Reply::Array(entries.into_iter().map(|(id, entry)| Reply::maybe_entry(id, entry)).collect())
    };
    if session.resp3.get() {
        Reply::Map(found.into_iter().map(|(key, found)| (Reply::Bulk(key), entries(found))).collect())
    } else {
        Reply::Array(
            found.into_iter().map(|(key, found)| Reply::Array(vec![Reply::Bulk(key), entries(found)])).collect(),
        )
    }
}
