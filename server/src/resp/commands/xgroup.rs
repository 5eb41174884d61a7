//! XGROUP CREATE | SETID | CREATECONSUMER | DELCONSUMER | DESTROY, and sluice's CONFIG.
//!
//! `XGROUP CREATE key group <id|$> [MKSTREAM] [ENTRIESREAD n] [MAXDELIVERIES n]
//! [DEADLETTER stream] [VISIBILITY ms]`; `XGROUP CONFIG key group option value ...` changes
//! the last three later (`MAXDELIVERIES 0` and `VISIBILITY 0` turn them off, `DEADLETTER ""`
//! goes back to `<key>:dlq`).
//!
//! ENTRIESREAD is checked as Redis checks it and then not needed: Redis keeps a group's
//! read counter because it cannot tell an entry's position in the stream, while here the log
//! knows it, so XINFO's entries-read and lag follow from where the group reads.
use bytes::Bytes;
use sluice_engine::stream::id::StreamId;

use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error, Stream};
use crate::stream_groups::{ConfigChange, GroupAnswer, GroupCall, StartId};

const KEY_MUST_EXIST: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want \
                              to use the MKSTREAM option to create an empty stream automatically.";

fn start_id(word: &[u8]) -> Result<StartId, Reply> {
    if word == b"$" {
        return Ok(StartId::Last);
    }
    StreamId::parse(word, 0)
        .map(StartId::After)
        .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))
}

/// ENTRIESREAD's value: a count, or -1 for "unknown" (what Redis's AOF rewrite writes).
fn entries_read(args: &mut Args) -> Result<i64, Reply> {
    let value = args.integer()?;
    if value < -1 {
        return Err(Reply::error("ERR value for ENTRIESREAD must be positive or -1"));
    }
    Ok(value)
}

/// One of sluice's group options, if the next word is one.
fn config_change(args: &mut Args) -> Result<Option<ConfigChange>, Reply> {
    let positive = |value: u64| (value > 0).then_some(value);
    Ok(Some(if args.take_keyword("MAXDELIVERIES") {
        ConfigChange::MaxDeliveries(positive(args.count()?))
    } else if args.take_keyword("VISIBILITY") {
        ConfigChange::VisibilityMs(positive(args.count()?))
    } else if args.take_keyword("DEADLETTER") {
        let stream = args.required()?;
        if !stream.is_empty() {
            streams::topic_name(&stream)?;
        }
        ConfigChange::DeadLetter((!stream.is_empty()).then_some(stream))
    } else {
        return Ok(None);
    }))
}

pub async fn xgroup(session: &Session, args: &mut Args) -> CommandResult {
    let given = args.required()?;
    let sub = given.to_ascii_uppercase();
    if &sub[..] == b"HELP" {
        return Ok(Reply::Array(
            ["XGROUP CREATE|SETID|CREATECONSUMER|DELCONSUMER|DESTROY|CONFIG <key> <group> ..."]
                .iter()
                .map(|line| Reply::bulk(*line))
                .collect(),
        ));
    }
    let key = args.required()?;
    let group = args.required()?;
    let nogroup = || streams::no_such_group(&key, &group);
    let (call, stream) = match &sub[..] {
        b"CREATE" => {
            let start = start_id(&args.required()?)?;
            let mut make_stream = false;
            let mut config = Vec::new();
            while args.remaining() > 0 {
                if args.take_keyword("MKSTREAM") {
                    make_stream = true;
                } else if args.take_keyword("ENTRIESREAD") {
                    entries_read(args)?;
                } else if let Some(change) = config_change(args)? {
                    config.push(change);
                } else {
                    return Err(Reply::error(
                        "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.",
                    ));
                }
            }
            let stream = existing_or_created(session, &key, make_stream).await?;
            (GroupCall::Create { group: group.clone(), start, config }, stream)
        }
        b"SETID" => {
            let start = start_id(&args.required()?)?;
            if args.take_keyword("ENTRIESREAD") {
                entries_read(args)?;
            }
            args.finish()?;
            (GroupCall::SetId { group: group.clone(), start }, existing(session, &key)?)
        }
        b"CONFIG" => {
            let mut changes = Vec::new();
            while args.remaining() > 0 {
                changes.push(config_change(args)?.ok_or_else(syntax_error)?);
            }
            if changes.is_empty() {
                return Err(args.wrong_arity());
            }
            (GroupCall::Configure { group: group.clone(), changes }, existing(session, &key)?)
        }
        b"DESTROY" => {
            args.finish()?;
            (GroupCall::Destroy { group: group.clone() }, existing(session, &key)?)
        }
        b"CREATECONSUMER" | b"DELCONSUMER" => {
            let consumer = args.required()?;
            args.finish()?;
            let call = if &sub[..] == b"CREATECONSUMER" {
                GroupCall::CreateConsumer { group: group.clone(), consumer }
            } else {
                GroupCall::DeleteConsumer { group: group.clone(), consumer }
            };
            (call, existing(session, &key)?)
        }
        _ => {
            return Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try XGROUP HELP.",
                String::from_utf8_lossy(&given)
            )))
        }
    };
    match group_call(session, &stream, call).await.map_err(|error| group_error(error, nogroup))? {
        GroupAnswer::Done => Ok(Reply::OK),
        GroupAnswer::Count(count) => Ok(Reply::Integer(count)),
        _ => unreachable!("XGROUP answers Done or Count"),
    }
}

fn existing(session: &Session, key: &Bytes) -> Result<Stream, Reply> {
    streams::find(session, key)?.ok_or_else(|| Reply::error(KEY_MUST_EXIST))
}

async fn existing_or_created(session: &Session, key: &Bytes, make_stream: bool) -> Result<Stream, Reply> {
    if make_stream {
        let name = streams::topic_name(key)?;
        session
            .shard
            .ensure_topic(&name, Some(super::xadd::STREAM_PARTITIONS))
            .await
            .map_err(|error| Reply::error(format!("ERR cannot create stream: {error}")))?;
    }
    existing(session, key)
}
