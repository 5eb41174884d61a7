//! XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] <*|id> field value ...
//!
//! The entry is appended on the stream's owner shard in ID order, and answered once it is
//! durable. A connection's pipelined XADDs to one stream travel together (`Gathered`): one
//! request to the owner, one batch in the log, one fdatasync shared with everything else
//! written in that round.
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::channel::oneshot;
use sluice_engine::partition::PartitionError;
use sluice_engine::stream::id::IdRequest;

use super::xtrim::{parse_trim, Trim};
use super::Outcome;
use crate::limits::{RESP_XADD_GATHER_BYTES_MAX, RESP_XADD_GATHER_ENTRIES_MAX};
use crate::metrics::{Protocol, RespCommand};
use crate::resp::command::Args;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, storage_error, Stream, STREAM_PARTITION};
use crate::runtime::mesh::{NewEntry, ShardError, ShardRequest, ShardResponse, StreamAddError, StreamAdded};

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

/// Pipelined XADDs to one stream, gathered by the connection that read them and sent to the
/// stream's owner as one request: one mesh message, one batch, one append.
pub struct Gathered {
    stream: Stream,
    entries: Vec<NewEntry>,
    replies: Vec<oneshot::Sender<Result<StreamAdded, StreamAddError>>>,
    bytes: usize,
}

/// `started`: when the command began, for its latency (measured once the reply is ready).
///
/// The entry joins the connection's gathered XADDs, sent when the connection has read all it
/// has (`send_gathered`), before any other command, or when the gathering is full.
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
    let field_bytes = streams::fields_bytes(&request.fields);
    let other_stream = session.gathered.borrow().as_ref().is_some_and(|gathered| {
        gathered.stream.partition != stream.partition || gathered.bytes + field_bytes > RESP_XADD_GATHER_BYTES_MAX
    });
    if other_stream {
        send_gathered(session).await;
    }
    let (reply_sender, reply) = oneshot::channel();
    let full = {
        let mut gathered = session.gathered.borrow_mut();
        let gathered = gathered.get_or_insert_with(|| Gathered {
            stream: stream.clone(),
            entries: Vec::new(),
            replies: Vec::new(),
            bytes: 0,
        });
        gathered.entries.push(NewEntry { id: request.id, fields: request.fields });
        gathered.replies.push(reply_sender);
        gathered.bytes += field_bytes;
        gathered.entries.len() >= RESP_XADD_GATHER_ENTRIES_MAX
    };
    if full {
        send_gathered(session).await;
    }
    Outcome::Later(Deferred {
        owed: DeferredReply::new(session),
        trim: request.trim.map(|trim| (trim, stream)),
        reply,
        field_bytes,
        started,
    })
}

/// An XADD's reply, ready once its entry is durable. The connection's writer finishes it
/// when its turn comes (replies go out in order anyway): no task per XADD.
pub struct Deferred {
    owed: DeferredReply,
    /// Applied once the entry is in.
    trim: Option<(Trim, Stream)>,
    reply: oneshot::Receiver<Result<StreamAdded, StreamAddError>>,
    field_bytes: usize,
    started: Instant,
}

impl Deferred {
    pub async fn reply(self) -> Reply {
        let Deferred { owed, trim, reply, field_bytes, started } = self;
        let result = reply.await.unwrap_or(Err(StreamAddError::Shard(ShardError::Partition(PartitionError::Closed))));
        let session = &owed.0;
        if result.is_ok() {
            session.shard.metrics.received(Protocol::Resp, field_bytes, 1);
            session.shard.metrics.resp_entry_added(field_bytes);
        }
        let reply = finish(session, result, trim).await;
        session.shard.metrics.resp_command(RespCommand::Xadd, started.elapsed());
        reply
    }
}

/// A deferred reply's place in its session's count (`Session::settled`), freed when the reply
/// is finished or dropped (a connection whose writer stopped).
struct DeferredReply(Rc<Session>);

impl DeferredReply {
    fn new(session: &Rc<Session>) -> Self {
        session.defer_started();
        Self(session.clone())
    }
}

impl Drop for DeferredReply {
    fn drop(&mut self) {
        self.0.defer_finished();
    }
}

/// Sends the connection's gathered XADDs to their stream's owner and returns once they are
/// ordered in its log (or failed), so that whatever the connection runs next comes after
/// them; their replies follow when they are durable.
pub async fn send_gathered(session: &Rc<Session>) {
    let Some(gathered) = session.gathered.borrow_mut().take() else { return };
    let (appended_sender, appended) = oneshot::channel();
    let call = ShardRequest::StreamAdd {
        stream: gathered.stream.partition.clone(),
        entries: gathered.entries,
        appended: Some(appended_sender),
    };
    let shard = session.shard.clone();
    glommio::spawn_local(async move {
        let ShardResponse::StreamAdded(results) = shard.call(gathered.stream.owner, call).await else {
            unreachable!("StreamAdd answers with StreamAdded")
        };
        for (reply, result) in gathered.replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    })
    .detach();
    let _ = appended.await;
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

async fn finish(session: &Session, result: Result<StreamAdded, StreamAddError>, trim: Option<(Trim, Stream)>) -> Reply {
    let added = match result {
        Ok(added) => added,
        Err(StreamAddError::Id(error)) => return Reply::error(error.to_string()),
        Err(StreamAddError::Shard(error)) => return storage_error(&error),
    };
    if let Some((trim, stream)) = trim {
        if let Err(reply) = trim.apply(session, &stream).await {
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
