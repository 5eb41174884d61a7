//! Key commands on streams: DEL (deletes the stream's topic), EXISTS, TYPE.
use crate::resp::command::{Args, CommandResult};
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
    let exists = session.shard.metadata().topics.contains_key(&*String::from_utf8_lossy(&key));
    Ok(Reply::Status(if exists { "stream" } else { "none" }))
}
