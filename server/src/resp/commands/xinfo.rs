//! XINFO STREAM key [FULL [COUNT count]] | GROUPS key | CONSUMERS key group.
use crate::limits::{RESP_RANGE_ENTRIES_MAX, RESP_REPLY_BYTES_MAX};
use crate::resp::command::{Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error};
use crate::stream_groups::{GroupAnswer, GroupCall, GroupFull, GroupInfo};
use sluice_engine::stream::id::StreamId;

const NO_SUCH_KEY: &str = "ERR no such key";
/// Entries, and pending entries per group and per consumer, XINFO STREAM FULL shows without
/// COUNT (Redis's default).
const FULL_COUNT_DEFAULT: u64 = 10;

fn optional_integer(value: Option<u64>) -> Reply {
    value.map_or(Reply::Null, |value| Reply::Integer(value as i64))
}

/// A group's `entries-read` and `lag` (exact, see `StreamState::progress`).
fn progress_fields(group: &GroupInfo) -> [(Reply, Reply); 2] {
    [
        (Reply::bulk("entries-read"), Reply::Integer(group.progress.entries_read as i64)),
        (Reply::bulk("lag"), Reply::Integer(group.progress.lag as i64)),
    ]
}

/// A group in XINFO STREAM FULL, in Redis's fields and order.
fn full_group(group: GroupFull) -> Reply {
    let pending = group.pending.into_iter().map(|(delivery, consumer)| {
        Reply::Array(vec![
            Reply::Id(delivery.id),
            Reply::Bulk(consumer),
            Reply::Integer(delivery.delivered_ms as i64),
            Reply::Integer(delivery.deliveries as i64),
        ])
    });
    let consumers = group.consumers.into_iter().map(|consumer| {
        let pending = consumer.pending.into_iter().map(|delivery| {
            Reply::Array(vec![
                Reply::Id(delivery.id),
                Reply::Integer(delivery.delivered_ms as i64),
                Reply::Integer(delivery.deliveries as i64),
            ])
        });
        Reply::Map(vec![
            (Reply::bulk("name"), Reply::Bulk(consumer.name)),
            (Reply::bulk("seen-time"), Reply::Integer(consumer.seen_ms as i64)),
            (Reply::bulk("active-time"), Reply::Integer(consumer.active_ms.map_or(-1, |active| active as i64))),
            (Reply::bulk("pel-count"), Reply::Integer(consumer.pending_count as i64)),
            (Reply::bulk("pending"), Reply::Array(pending.collect())),
        ])
    });
    let mut fields = vec![
        (Reply::bulk("name"), Reply::Bulk(group.info.name.clone())),
        (Reply::bulk("last-delivered-id"), Reply::Id(group.info.last_delivered)),
    ];
    fields.extend(progress_fields(&group.info));
    fields.extend([
        (Reply::bulk("pel-count"), Reply::Integer(group.info.pending as i64)),
        (Reply::bulk("pending"), Reply::Array(pending.collect())),
        (Reply::bulk("consumers"), Reply::Array(consumers.collect())),
    ]);
    Reply::Map(fields)
}

pub async fn xinfo(session: &Session, args: &mut Args) -> CommandResult {
    let given = args.required()?;
    let sub = given.to_ascii_uppercase();
    if &sub[..] == b"HELP" {
        let lines = [
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Print this help.",
        ];
        return Ok(Reply::Array(lines.iter().map(|line| Reply::bulk(*line)).collect()));
    }
    let key = args.required()?;
    let stream = streams::find(session, &key)?.ok_or_else(|| Reply::error(NO_SUCH_KEY))?;
    match &sub[..] {
        b"STREAM" => {
            let full = if args.take_keyword("FULL") {
                let count = if args.take_keyword("COUNT") { args.count()? } else { FULL_COUNT_DEFAULT };
                // COUNT 0 is "all" in Redis; here at most a range reply's worth per list.
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                Some(if count == 0 { RESP_RANGE_ENTRIES_MAX } else { count.min(RESP_RANGE_ENTRIES_MAX) })
            } else {
                None
            };
            args.finish()?;
            let (start, end) = stream.offsets(session).await?;
            let length = stream.length(session).await?;
            let (min, max, one_entry) = (StreamId::MIN, StreamId::MAX, RESP_REPLY_BYTES_MAX);
            // FULL shows the first `count` entries; the short form the first one.
            let entries = stream.scan(session, start, min, max, full.unwrap_or(1), RESP_REPLY_BYTES_MAX).await?.entries;
            // The stream's owner answers its groups, the greatest deleted ID, its last ID (the
            // newest record's, also when XDEL deleted it, or what XSETID or a trim that
            // emptied the stream set) and how many entries were ever added.
            let info = group_call(session, &stream, GroupCall::InfoStream).await;
            let (groups, max_deleted_id, last_id, entries_added) = match info {
                Ok(GroupAnswer::Stream { groups, max_deleted_id, last_id, entries_added }) => {
                    (groups, max_deleted_id, last_id, entries_added)
                }
                // Its groups could not be read: none, nothing deleted, the newest record's ID,
                // one entry added per offset.
                _ => {
                    let newest = if end > start { stream.record_at(session, end - 1).await? } else { None };
                    (0, StreamId::MIN, newest.map_or(StreamId::MIN, |entry| entry.id), end)
                }
            };
            let mut fields = vec![
                (Reply::bulk("length"), Reply::Integer(length)),
                (Reply::bulk("last-generated-id"), Reply::Id(last_id)),
                (Reply::bulk("max-deleted-entry-id"), Reply::Id(max_deleted_id)),
                (Reply::bulk("entries-added"), Reply::Integer(entries_added)),
                (
                    Reply::bulk("recorded-first-entry-id"),
                    Reply::Id(entries.first().map_or(StreamId::MIN, |entry| entry.id)),
                ),
            ];
            if let Some(count) = full {
                let groups = match group_call(session, &stream, GroupCall::InfoFull { pending_max: count }).await {
                    Ok(GroupAnswer::Full(groups)) => groups,
                    Ok(_) => unreachable!("InfoFull answers with Full"),
                    Err(error) => return Err(group_error(error, || NO_SUCH_KEY.to_string())),
                };
                fields.push((Reply::bulk("entries"), Reply::Array(entries.into_iter().map(Reply::entry).collect())));
                fields.push((Reply::bulk("groups"), Reply::Array(groups.into_iter().map(full_group).collect())));
                return Ok(Reply::Map(fields));
            }
            let last = stream.scan_back(session, min, max, 1, one_entry).await?.entries.into_iter().next();
            fields.push((Reply::bulk("groups"), Reply::Integer(groups as i64)));
            fields.push((Reply::bulk("first-entry"), entries.into_iter().next().map_or(Reply::Null, Reply::entry)));
            fields.push((Reply::bulk("last-entry"), last.map_or(Reply::Null, Reply::entry)));
            Ok(Reply::Map(fields))
        }
        b"GROUPS" => {
            args.finish()?;
            let answer = group_call(session, &stream, GroupCall::InfoGroups)
                .await
                .map_err(|error| group_error(error, || NO_SUCH_KEY.to_string()))?;
            let GroupAnswer::Groups(groups) = answer else { unreachable!("InfoGroups answers with Groups") };
            Ok(Reply::Array(
                groups
                    .into_iter()
                    .map(|group| {
                        let mut fields = vec![
                            (Reply::bulk("name"), Reply::Bulk(group.name.clone())),
                            (Reply::bulk("consumers"), Reply::Integer(group.consumers as i64)),
                            (Reply::bulk("pending"), Reply::Integer(group.pending as i64)),
                            (Reply::bulk("last-delivered-id"), Reply::Id(group.last_delivered)),
                        ];
                        fields.extend(progress_fields(&group));
                        fields.extend([
                            (Reply::bulk("max-deliveries"), optional_integer(group.config.max_deliveries)),
                            (Reply::bulk("dead-letter"), group.config.dead_letter.map_or(Reply::Null, Reply::Bulk)),
                            (Reply::bulk("visibility-ms"), optional_integer(group.config.visibility_ms)),
                        ]);
                        Reply::Map(fields)
                    })
                    .collect(),
            ))
        }
        b"CONSUMERS" => {
            let group = args.required()?;
            args.finish()?;
            let answer = group_call(session, &stream, GroupCall::InfoConsumers { group: group.clone() })
                .await
                .map_err(|error| group_error(error, || streams::no_such_group(&key, &group)))?;
            let GroupAnswer::Consumers(consumers) = answer else {
                unreachable!("InfoConsumers answers with Consumers")
            };
            Ok(Reply::Array(
                consumers
                    .into_iter()
                    .map(|consumer| {
                        Reply::Map(vec![
                            (Reply::bulk("name"), Reply::Bulk(consumer.name)),
                            (Reply::bulk("pending"), Reply::Integer(consumer.pending as i64)),
                            (Reply::bulk("idle"), Reply::Integer(consumer.idle_ms as i64)),
                            (
                                Reply::bulk("inactive"),
                                Reply::Integer(consumer.inactive_ms.map_or(-1, |inactive| inactive as i64)),
                            ),
                        ])
                    })
                    .collect(),
            ))
        }
        _ => {
            Err(Reply::error(format!("ERR unknown subcommand '{}'. Try XINFO HELP.", String::from_utf8_lossy(&given))))
        }
    }
}
