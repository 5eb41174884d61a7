//! XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] <*|id> field value ...
//!
//! The entry is appended on the stream's owner shard in ID order, and answered once it is
//! durable. A connection's pipelined XADDs to one stream travel together (`Gathered`): one
//! request to the owner, one batch in the log, one fdatasync shared with everything else
//! written in that round.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::channel::oneshot;
use sluice_engine::partition::PartitionError;
use sluice_engine::stream::id::IdRequest;
use sluice_engine::sync::Notify;

use super::xtrim::{parse_trim_options, Trim, TrimOptions};
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
    let TrimOptions { trim, no_make_stream } = parse_trim_options(args, true)?;
    let make_stream = !no_make_stream;
    let id_word = args.required()?;
    let id = IdRequest::parse(&id_word)
        .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?;
    let fields = args.rest_pairs().ok_or_else(|| args.wrong_arity())?;
    Ok(Request { key, make_stream, trim, id, fields })
}

/// Pipelined XADDs to one stream, gathered by the connection that read them and sent to the
/// stream's owner as one request: one mesh message, one batch, one append.
pub struct Gathered {
    stream: Stream,
    entries: Vec<NewEntry>,
    answers: Answering,
    bytes: usize,
}

type Answer = Result<StreamAdded, StreamAddError>;

fn closed() -> StreamAddError {
    StreamAddError::Shard(ShardError::Partition(PartitionError::Closed))
}

/// The owner's answers to one gathered batch, one per entry in order, each taken by its
/// entry's deferred reply: one allocation per batch, not a channel per XADD.
#[derive(Default)]
struct BatchAnswers {
    answers: RefCell<Option<Vec<Answer>>>,
    arrived: Notify,
}

impl BatchAnswers {
    async fn take(&self, index: usize) -> Answer {
        loop {
            let arrived = self.arrived.notified();
            if let Some(answers) = self.answers.borrow_mut().as_mut() {
                // Taken once: what is left in its place is `Closed`.
                return answers
                    .get_mut(index)
                    .map_or_else(|| Err(closed()), |answer| std::mem::replace(answer, Err(closed())));
            }
            arrived.await;
        }
    }
}

/// Gives a batch its answers; dropped unanswered (the batch was never sent, or its sender
/// went away), it answers every entry `Closed`, so no deferred reply waits forever.
struct Answering(Rc<BatchAnswers>);

impl Answering {
    fn answer(self, answers: Vec<Answer>) {
        *self.0.answers.borrow_mut() = Some(answers);
        self.0.arrived.notify_all();
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if self.0.answers.borrow().is_none() {
            *self.0.answers.borrow_mut() = Some(Vec::new());
            self.0.arrived.notify_all();
        }
    }
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
    // A pipeline's XADDs usually go to one stream, which the gathered ones found already:
    // `opened` is the stream only when they did not.
    let gathered_here = session.gathered.borrow().as_ref().is_some_and(|gathered| gathered.stream.key == request.key);
    let mut opened = None;
    if !gathered_here {
        match open(session, &request).await {
            Ok(Some(stream)) => opened = Some(stream),
            Ok(None) => return Outcome::Reply(Reply::Null),
            Err(reply) => return Outcome::Reply(reply),
        }
    }
    let field_bytes = streams::fields_bytes(&request.fields);
    let send_first = session.gathered.borrow().as_ref().is_some_and(|gathered| {
        opened.as_ref().is_some_and(|stream| gathered.stream.partition != stream.partition)
            || gathered.bytes + field_bytes > RESP_XADD_GATHER_BYTES_MAX
    });
    if send_first {
        if opened.is_none() {
            // The gathering is full: this entry starts the next one, to the same stream.
            opened = session.gathered.borrow().as_ref().map(|gathered| gathered.stream.clone());
        }
        send_gathered(session).await;
    }
    let (answers, index, full, trim) = {
        let mut gathering = session.gathered.borrow_mut();
        let gathered = gathering.get_or_insert_with(|| Gathered {
            stream: opened.take().expect("a stream is opened unless one is gathered"),
            entries: Vec::new(),
            answers: Answering(Rc::default()),
            bytes: 0,
        });
        gathered.entries.push(NewEntry { id: request.id, fields: request.fields });
        gathered.bytes += field_bytes;
        let index = gathered.entries.len() - 1;
        let full = gathered.entries.len() >= RESP_XADD_GATHER_ENTRIES_MAX;
        let trim = request.trim.map(|trim| Box::new((trim, gathered.stream.clone())));
        (gathered.answers.0.clone(), index, full, trim)
    };
    if full {
        send_gathered(session).await;
    }
    Outcome::Later(Deferred { owed: DeferredReply::new(session), trim, answers, index, field_bytes, started })
}

/// An XADD's reply, ready once its entry is durable. The connection's writer finishes it
/// when its turn comes (replies go out in order anyway): no task per XADD.
pub struct Deferred {
    owed: DeferredReply,
    /// Applied once the entry is in (boxed: rare, and the reply travels through a channel).
    trim: Option<Box<(Trim, Stream)>>,
    answers: Rc<BatchAnswers>,
    /// This entry's place in its batch.
    index: usize,
    field_bytes: usize,
    started: Instant,
}

impl Deferred {
    pub async fn reply(self) -> Reply {
        let Deferred { owed, trim, answers, index, field_bytes, started } = self;
        let result = answers.take(index).await;
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
        gathered.answers.answer(results);
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

async fn finish(
    session: &Session,
    result: Result<StreamAdded, StreamAddError>,
    trim: Option<Box<(Trim, Stream)>>,
) -> Reply {
    let added = match result {
        Ok(added) => added,
        Err(StreamAddError::Id(error)) => return Reply::error(error.to_string()),
        Err(StreamAddError::Shard(error)) => return storage_error(&error),
    };
    if let Some(trim) = trim {
        let (trim, stream) = *trim;
        if let Err(reply) = trim.apply(session, &stream).await {
            return reply;
        }
    }
    Reply::Id(added.id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_engine::stream::id::StreamId;

    use crate::resp::commands::xtrim::Bound;
    use crate::stream_groups::References;

    #[test]
    fn each_entry_takes_its_answer_and_an_unanswered_batch_answers_closed() {
        let answers = Rc::new(BatchAnswers::default());
        let added = |id| Ok(StreamAdded { id: StreamId::new(id, 0), offset: id as i64 });
        Answering(answers.clone()).answer(vec![added(1), added(2)]);
        let take = |index| futures_lite::future::block_on(answers.take(index));
        assert_eq!(take(1).unwrap().id, StreamId::new(2, 0));
        assert_eq!(take(0).unwrap().id, StreamId::new(1, 0));
        assert!(matches!(take(0), Err(StreamAddError::Shard(_))), "an answer is taken once");
        assert!(matches!(take(2), Err(StreamAddError::Shard(_))), "no answer for an entry the owner did not see");

        let unanswered = Rc::new(BatchAnswers::default());
        drop(Answering(unanswered.clone()));
        assert!(matches!(futures_lite::future::block_on(unanswered.take(0)), Err(StreamAddError::Shard(_))));
    }

    #[test]
    fn options_ids_and_fields_parse() {
        let request = parse(&mut Args::of(&["XADD", "s", "NOMKSTREAM", "MAXLEN", "~", "10", "*", "a", "1"])).unwrap();
        assert!(!request.make_stream);
        assert_eq!(request.trim, Some(Trim { bound: Bound::MaxLength(10), references: References::Keep }));
        assert_eq!(request.id, IdRequest::Auto);
        assert_eq!(request.fields, vec![(Bytes::from("a"), Bytes::from("1"))]);
        let request = parse(&mut Args::of(&["XADD", "s", "MINID", "5-1", "7-*", "a", "1", "b", "2"])).unwrap();
        assert_eq!(request.trim, Some(Trim { bound: Bound::MinId(StreamId::new(5, 1)), references: References::Keep }));
        assert_eq!(request.id, IdRequest::AutoSequence(7));
        assert_eq!(request.fields.len(), 2);
        let request = parse(&mut Args::of(&["XADD", "s", "ACKED", "MAXLEN", "3", "*", "a", "1"])).unwrap();
        assert_eq!(request.trim, Some(Trim { bound: Bound::MaxLength(3), references: References::Acked }));
        // In any order, as Redis reads them.
        let words = ["XADD", "s", "LIMIT", "10", "MAXLEN", "~", "100", "DELREF", "NOMKSTREAM", "*", "a", "1"];
        let request = parse(&mut Args::of(&words)).unwrap();
        assert_eq!(request.trim, Some(Trim { bound: Bound::MaxLength(100), references: References::Delete }));
        assert!(!request.make_stream);
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
        assert_eq!(
            error(&["XADD", "s", "LIMIT", "3", "*", "a", "1"]),
            Reply::error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
        );
        assert_eq!(
            error(&["XADD", "s", "MAXLEN", "5", "MINID", "1", "*", "a", "1"]),
            Reply::error("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
        );
    }
}
