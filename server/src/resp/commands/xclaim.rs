//! XCLAIM key group consumer min-idle-time id ... [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
//! [JUSTID] [LASTID id] and XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID].
//!
//! A claim is a delivery: past the group's MAXDELIVERIES the entry goes to the dead-letter
//! stream instead of to the claimer (JUSTID claims are not deliveries and never do).
use sluice_engine::stream::id::StreamId;

use crate::resp::command::{Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error, no_group};
use crate::runtime::shard::now_ms;
use crate::stream_groups::{ClaimOptions, GroupAnswer, GroupCall};

/// XAUTOCLAIM's default COUNT, as in Redis.
const AUTOCLAIM_COUNT_DEFAULT: usize = 100;
/// XAUTOCLAIM's largest COUNT.
const AUTOCLAIM_COUNT_MAX: usize = 10_000;

pub async fn xclaim(session: &Session, args: &mut Args) -> CommandResult {
    let (key, group, consumer) = (args.required()?, args.required()?, args.required()?);
    let min_idle_ms = args.integer().map_err(|_| Reply::error("ERR Invalid min-idle-time argument for XCLAIM"))?;
    // As Redis reads them: IDs up to the first word that is not one, then options.
    let mut ids = Vec::new();
    while let Some(id) = args.peek().and_then(|word| StreamId::parse(word, 0)) {
        ids.push(id);
        args.next_word();
    }
    if ids.is_empty() && args.remaining() == 0 {
        return Err(args.wrong_arity());
    }
    let now = now_ms().max(0) as u64;
    let mut options = ClaimOptions::default();
    // As in Redis, a delivery time before 0 or after now (a negative IDLE, say) is now.
    let delivery_time = |at_ms: i64| u64::try_from(at_ms).ok().filter(|at_ms| *at_ms <= now).unwrap_or(now);
    while args.remaining() > 0 {
        if args.take_keyword("IDLE") {
            options.delivered_ms = Some(delivery_time((now as i64).saturating_sub(args.integer()?)));
        } else if args.take_keyword("TIME") {
            options.delivered_ms = Some(delivery_time(args.integer()?));
        } else if args.take_keyword("RETRYCOUNT") {
            options.retry_count = Some(args.count()?);
        } else if args.take_keyword("FORCE") {
            options.force = true;
        } else if args.take_keyword("JUSTID") {
            options.just_id = true;
        } else if args.take_keyword("LASTID") {
            let word = args.required()?;
            options.last_id = Some(
                StreamId::parse(&word, 0)
                    .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?,
            );
        } else {
            return Err(Reply::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(&args.required()?)
            )));
        }
    }
    let Some(stream) = streams::find(session, &key)? else {
        return Err(Reply::error(no_group(&key, &group)));
    };
    let just_id = options.just_id;
    let call =
        GroupCall::Claim { group: group.clone(), consumer, min_idle_ms: min_idle_ms.max(0) as u64, ids, options };
    let answer =
        group_call(session, &stream, call).await.map_err(|error| group_error(error, || no_group(&key, &group)))?;
    let GroupAnswer::AutoClaimed { entries, .. } = answer else { unreachable!("claims answer with AutoClaimed") };
    Ok(claimed(entries, just_id))
}

fn claimed(entries: Vec<(StreamId, Option<sluice_engine::stream::entry::Entry>)>, just_id: bool) -> Reply {
    Reply::Array(
        entries
            .into_iter()
            .map(|(id, entry)| if just_id { Reply::Id(id) } else { Reply::maybe_entry(id, entry) })
            .collect(),
    )
}

pub async fn xautoclaim(session: &Session, args: &mut Args) -> CommandResult {
    let (key, group, consumer) = (args.required()?, args.required()?, args.required()?);
    let min_idle_ms = args.integer().map_err(|_| Reply::error("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?;
    let start = super::xrange::bound(&args.required()?, true)?;
    let mut count = AUTOCLAIM_COUNT_DEFAULT;
    let mut just_id = false;
    while args.remaining() > 0 {
        if args.take_keyword("COUNT") {
            let asked = args.integer()?;
            if asked < 1 {
                return Err(Reply::error("ERR COUNT must be > 0"));
            }
            if asked as u64 > AUTOCLAIM_COUNT_MAX as u64 {
                return Err(Reply::error(format!("ERR COUNT must be at most {AUTOCLAIM_COUNT_MAX}")));
            }
            count = asked as usize;
        } else if args.take_keyword("JUSTID") {
            just_id = true;
        } else {
            return Err(crate::resp::command::syntax_error());
        }
    }
    let Some(stream) = streams::find(session, &key)? else {
        return Err(Reply::error(no_group(&key, &group)));
    };
    let call = GroupCall::AutoClaim {
        group: group.clone(),
        consumer,
        min_idle_ms: min_idle_ms.max(0) as u64,
        start,
        count,
        just_id,
    };
    let answer =
        group_call(session, &stream, call).await.map_err(|error| group_error(error, || no_group(&key, &group)))?;
    let GroupAnswer::AutoClaimed { next, entries, deleted } = answer else {
        unreachable!("XAUTOCLAIM answers with AutoClaimed")
    };
    Ok(Reply::Array(vec![
        Reply::Id(next),
        claimed(entries, just_id),
        Reply::Array(deleted.into_iter().map(Reply::Id).collect()),
    ]))
}
