//! XDEL key id [id ...]: deletes entries from anywhere in a stream. The log is append-only:
//! the stream's group log records the deleted offsets (durably, before the reply) and every
//! Redis read skips them; their records stay on disk, and readable by Kafka consumers, until
//! trimming or retention removes their segment.
use super::xack::parse_ids;
use crate::resp::command::{Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error};
use crate::stream_groups::{GroupAnswer, GroupCall};

pub async fn xdel(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    let ids = parse_ids(&args.rest())?;
    if ids.is_empty() {
        return Err(args.wrong_arity());
    }
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Integer(0));
    };
    match group_call(session, &stream, GroupCall::Delete { ids }).await {
        Ok(GroupAnswer::Count(deleted)) => Ok(Reply::Integer(deleted)),
        Ok(_) => unreachable!("Delete answers with Count"),
        Err(error) => Err(group_error(error, || "ERR no such key".to_string())),
    }
}
