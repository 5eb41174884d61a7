//! XINFO STREAM key | GROUPS key | CONSUMERS key group.
use crate::limits::RESP_REPLY_BYTES_MAX;
use crate::resp::command::{Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error, no_group};
use crate::stream_groups::{GroupAnswer, GroupCall};
use sluice_engine::stream::id::StreamId;

const NO_SUCH_KEY: &str = "ERR no such key";

fn optional_integer(value: Option<u64>) -> Reply {
    value.map_or(Reply::Null, |value| Reply::Integer(value as i64))
}

pub async fn xinfo(session: &Session, args: &mut Args) -> CommandResult {
    let sub = args.required()?.to_ascii_uppercase();
    let key = args.required()?;
    let stream = streams::find(session, &key)?.ok_or_else(|| Reply::error(NO_SUCH_KEY))?;
    match &sub[..] {
        b"STREAM" => {
            let (start, end) = stream.offsets(session).await?;
            let length = stream.length(session).await?;
            let (min, max, one_entry) = (StreamId::MIN, StreamId::MAX, RESP_REPLY_BYTES_MAX);
            let first = stream.scan(session, start, min, max, 1, one_entry).await?.entries.into_iter().next();
            let last = stream.scan_back(session, min, max, 1, one_entry).await?.entries.into_iter().next();
            // The last ID handed out stays the newest record's, also when XDEL deleted it.
            let newest = if end > start { stream.record_at(session, end - 1).await? } else { None };
            let groups = match group_call(session, &stream, GroupCall::InfoGroups).await {
                Ok(GroupAnswer::Groups(groups)) => groups.len(),
                _ => 0,
            };
            let last_id = newest.map_or(StreamId::MIN, |entry| entry.id);
            Ok(Reply::Map(vec![
                (Reply::bulk("length"), Reply::Integer(length)),
                (Reply::bulk("last-generated-id"), Reply::text(last_id)),
                (Reply::bulk("entries-added"), Reply::Integer(end)),
                (Reply::bulk("groups"), Reply::Integer(groups as i64)),
                (Reply::bulk("first-entry"), first.map_or(Reply::Null, Reply::entry)),
                (Reply::bulk("last-entry"), last.map_or(Reply::Null, Reply::entry)),
            ]))
        }
        b"GROUPS" => {
            args.finish()?;
            let answer = group_call(session, &stream, GroupCall::InfoGroups)
                .await
                .map_err(|error| group_error(error, || NO_SUCH_KEY.to_string()))?;
            let GroupAnswer::Groups(groups) = answer else { unreachable!("InfoGroups answers with Groups") };
            let (_, end) = stream.offsets(session).await?;
            Ok(Reply::Array(
                groups
                    .into_iter()
                    .map(|group| {
                        let lag = group.entries_read.map(|read| (end as u64).saturating_sub(read));
                        Reply::Map(vec![
                            (Reply::bulk("name"), Reply::Bulk(group.name)),
                            (Reply::bulk("consumers"), Reply::Integer(group.consumers as i64)),
                            (Reply::bulk("pending"), Reply::Integer(group.pending as i64)),
                            (Reply::bulk("last-delivered-id"), Reply::text(group.last_delivered)),
                            (Reply::bulk("entries-read"), optional_integer(group.entries_read)),
                            (Reply::bulk("lag"), optional_integer(lag)),
                            (Reply::bulk("max-deliveries"), optional_integer(group.config.max_deliveries)),
                            (Reply::bulk("dead-letter"), group.config.dead_letter.map_or(Reply::Null, Reply::Bulk)),
                            (Reply::bulk("visibility-ms"), optional_integer(group.config.visibility_ms)),
                        ])
                    })
                    .collect(),
            ))
        }
        b"CONSUMERS" => {
            let group = args.required()?;
            args.finish()?;
            let answer = group_call(session, &stream, GroupCall::InfoConsumers { group: group.clone() })
                .await
                .map_err(|error| group_error(error, || no_group(&key, &group)))?;
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
        _ => Err(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        ))),
    }
}
