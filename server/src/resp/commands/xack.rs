//! XACK key group id ... and XPENDING key group [[IDLE ms] start end count [consumer]].
use sluice_engine::stream::id::StreamId;

use super::xrange::bound;
use crate::resp::command::{Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error, no_group};
use crate::stream_groups::{GroupAnswer, GroupCall, GroupError};

pub fn parse_ids(words: &[bytes::Bytes]) -> Result<Vec<StreamId>, Reply> {
    words
        .iter()
        .map(|word| {
            StreamId::parse(word, 0)
                .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))
        })
        .collect()
}

pub async fn xack(session: &Session, args: &mut Args) -> CommandResult {
    let (key, group) = (args.required()?, args.required()?);
    let ids = parse_ids(&args.rest())?;
    if ids.is_empty() {
        return Err(args.wrong_arity());
    }
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Integer(0));
    };
    match group_call(session, &stream, GroupCall::Ack { group: group.clone(), ids }).await {
        Ok(GroupAnswer::Count(count)) => Ok(Reply::Integer(count)),
        Ok(_) => unreachable!("XACK answers with Count"),
        // Redis acknowledges nothing, without an error, in a group that does not exist.
        Err(GroupError::NoGroup | GroupError::NoStream) => Ok(Reply::Integer(0)),
        Err(error) => Err(group_error(error, || no_group(&key, &group))),
    }
}

pub async fn xpending(session: &Session, args: &mut Args) -> CommandResult {
    let (key, group) = (args.required()?, args.required()?);
    let nogroup = || no_group(&key, &group);
    let stream = streams::find(session, &key)?.ok_or_else(|| Reply::error(nogroup()))?;
    if args.remaining() == 0 {
        let answer = group_call(session, &stream, GroupCall::PendingSummary { group: group.clone() })
            .await
            .map_err(|error| group_error(error, nogroup))?;
        let GroupAnswer::Summary(summary) = answer else { unreachable!("summary answers with Summary") };
        if summary.count == 0 {
            return Ok(Reply::Array(vec![Reply::Integer(0), Reply::Null, Reply::Null, Reply::NullArray]));
        }
        let per_consumer = summary
            .per_consumer
            .into_iter()
            .map(|(name, count)| Reply::Array(vec![Reply::Bulk(name), Reply::text(count)]))
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Integer(summary.count as i64),
            summary.first.map_or(Reply::Null, Reply::text),
            summary.last.map_or(Reply::Null, Reply::text),
            Reply::Array(per_consumer),
        ]));
    }
    // A negative IDLE is no minimum, as in Redis.
    let min_idle_ms = if args.take_keyword("IDLE") { u64::try_from(args.integer()?).unwrap_or(0) } else { 0 };
    let first = bound(&args.required()?, true)?;
    let last = bound(&args.required()?, false)?;
    let count = args.integer()?;
    let consumer = args.next_word();
    args.finish()?;
    if count <= 0 || first > last {
        return Ok(Reply::Array(Vec::new()));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX).min(crate::limits::RESP_RANGE_ENTRIES_MAX);
    let call = GroupCall::PendingRange { group: group.clone(), first, last, count, consumer, min_idle_ms };
    let answer = group_call(session, &stream, call).await.map_err(|error| group_error(error, nogroup))?;
    let GroupAnswer::Pending(lines) = answer else { unreachable!("range answers with Pending") };
    Ok(Reply::Array(
        lines
            .into_iter()
            .map(|line| {
                Reply::Array(vec![
                    Reply::Id(line.id),
                    Reply::Bulk(line.consumer),
                    Reply::Integer(line.idle_ms as i64),
                    Reply::Integer(line.deliveries as i64),
                ])
            })
            .collect(),
    ))
}
