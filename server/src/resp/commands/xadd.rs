//! XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] <*|id> field value ...
//!
//! The entry is appended on the stream's owner shard in ID order, and answered once it is
//! durable. The reader goes on with the next command as soon as the entry is in the log, so
//! pipelined XADDs share one fdatasync.
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use sluice_engine::stream::id::IdRequest;

use super::xtrim::{parse_trim, Trim};
use super::Outcome;
use crate::metrics::{Protocol, RespCommand};
use crate::resp::command::Args;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, storage_error, Stream, STREAM_PARTITION};
use crate::runtime::mesh::{ShardRequest, ShardResponse, StreamAddError, StreamAdded};

/// A new stream is a topic of one partition (Redis streams are one ordered sequence).
pub const STREAM_PARTITIONS: u32 = 1;

struct Request {
    key: Bytes,
    make_stream: bool,
    trim: Option<Trim>,
    id: IdRequest,
    fields: Vec<(Bytes, Bytes)>,
}

fn parse(args: &mut Args) -> Result<Request, Reply> {
    let key = args.required()?;
    let mut make_stream = true;
    let mut trim = None;
    loop {
        if args.take_keyword("NOMKSTREAM") {
            make_stream = false;
        } else if let Some(parsed) = parse_trim(args)? {
            trim = Some(parsed);
        } else {
            break;
        }
    }
    let id_word = args.required()?;
    let id = IdRequest::parse(&id_word)
        .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?;
    let rest = args.rest();
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(args.wrong_arity());
    }
    let fields = rest.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
    Ok(Request { key, make_stream, trim, id, fields })
}

/// `started`: when the command began, for its latency (measured once the reply is ready).
pub async fn xadd(session: &Rc<Session>, args: &mut Args, started: Instant) -> Outcome {
    let request = match parse(args) {
        Ok(request) => request,
        Err(reply) => return Outcome::Reply(reply),
    };
    let stream = match open(session, &request).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return Outcome::Reply(Reply::Null),
        Err(reply) => return Outcome::Reply(reply),
    };
    let (appended_sender, appended) = futures::channel::oneshot::channel();
    let field_bytes = streams::fields_bytes(&request.fields);
    let call = ShardRequest::StreamAdd {
        stream: stream.partition.clone(),
        id: request.id,
        fields: request.fields,
        appended: Some(appended_sender),
    };
    session.defer_started();
    let task = glommio::spawn_local({
        let (session, trim) = (session.clone(), request.trim);
        async move {
            let reply = match session.shard.call(stream.owner, call).await {
                ShardResponse::StreamAdded(result) => {
                    if result.is_ok() {
                        session.shard.metrics.received(Protocol::Resp, field_bytes, 1);
                    }
                    finish(&session, &stream, result, trim).await
                }
                _ => unreachable!("StreamAdd answers with StreamAdded"),
            };
            session.defer_finished();
            session.shard.metrics.resp_command(RespCommand::Xadd, started.elapsed());
            reply
        }
    });
    // Read on once the entry is ordered in the log (or the append failed).
    let _ = appended.await;
    Outcome::Later(task)
}

/// The stream to append to, created (one partition) unless NOMKSTREAM.
async fn open(session: &Rc<Session>, request: &Request) -> Result<Option<Stream>, Reply> {
    let name = streams::topic_name(&request.key)?;
    if request.make_stream {
        if let Err(error) = session.shard.ensure_topic(&name, Some(STREAM_PARTITIONS)).await {
            return Err(Reply::error(format!("ERR cannot create stream: {error}")));
        }
    }
    let stream = streams::find(session, &request.key)?;
    debug_assert!(stream.as_ref().is_none_or(|stream| stream.partition.1 == STREAM_PARTITION));
    Ok(stream)
}

async fn finish(
    session: &Session,
    stream: &Stream,
    result: Result<StreamAdded, StreamAddError>,
    trim: Option<Trim>,
) -> Reply {
    let added = match result {
        Ok(added) => added,
        Err(StreamAddError::Id(error)) => return Reply::error(error.to_string()),
        Err(StreamAddError::Shard(error)) => return storage_error(&error),
    };
    if let Some(trim) = trim {
        if let Err(reply) = trim.apply(session, stream).await {
            return reply;
        }
    }
    Reply::text(added.id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_engine::stream::id::StreamId;

    #[test]
    fn options_ids_and_fields_parse() {
        let request = parse(&mut Args::of(&["XADD", "s", "NOMKSTREAM", "MAXLEN", "~", "10", "*", "a", "1"])).unwrap();
        assert!(!request.make_stream);
        assert_eq!(request.trim, Some(Trim::MaxLength(10)));
        assert_eq!(request.id, IdRequest::Auto);
        assert_eq!(request.fields, vec![(Bytes::from("a"), Bytes::from("1"))]);
        let request = parse(&mut Args::of(&["XADD", "s", "MINID", "5-1", "7-*", "a", "1", "b", "2"])).unwrap();
        assert_eq!(request.trim, Some(Trim::MinId(StreamId::new(5, 1))));
        assert_eq!(request.id, IdRequest::AutoSequence(7));
        assert_eq!(request.fields.len(), 2);
    }

    #[test]
    fn bad_xadd_arguments_get_redis_errors() {
        let error = |words: &[&str]| parse(&mut Args::of(words)).err().unwrap();
        assert_eq!(error(&["XADD", "s", "*", "a"]), Reply::error("ERR wrong number of arguments for 'xadd' command"));
        assert_eq!(error(&["XADD", "s", "*"]), Reply::error("ERR wrong number of arguments for 'xadd' command"));
        assert_eq!(
            error(&["XADD", "s", "x-1", "a", "1"]),
            Reply::error("ERR Invalid stream ID specified as stream command argument")
        );
        assert_eq!(
            error(&["XADD", "s", "MAXLEN", "-1", "*", "a", "1"]),
            Reply::error("ERR The MAXLEN argument must be >= 0.")
        );
        assert_eq!(
            error(&["XADD", "s", "MAXLEN", "5", "LIMIT", "3", "*", "a", "1"]),
            Reply::error("ERR syntax error, LIMIT cannot be used without the special ~ option")
        );
    }
}
