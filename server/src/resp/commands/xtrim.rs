//! XLEN, XTRIM, and the trimming XADD shares. Trimming moves the stream's start offset (like
//! Kafka's DeleteRecords); whole segments below it are deleted by the retention task. So `~`
//! and `=` both trim exactly, and LIMIT has nothing to bound. Lengths count entries XDEL
//! deleted out.
use sluice_engine::stream::id::StreamId;

use crate::limits::RESP_REPLY_BYTES_MAX;
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, Stream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep the newest `n` entries.
    MaxLength(u64),
    /// Drop entries with an ID below this one.
    MinId(StreamId),
}

/// `MAXLEN|MINID [=|~] threshold [LIMIT count]` if the next word starts it.
pub fn parse_trim(args: &mut Args) -> Result<Option<Trim>, Reply> {
    let is_max_length = if args.take_keyword("MAXLEN") {
        true
    } else if args.take_keyword("MINID") {
        false
    } else {
        return Ok(None);
    };
    let approximate = args.take_keyword("~");
    if !approximate {
        args.take_keyword("=");
    }
    let threshold = args.required()?;
    let trim = if is_max_length {
        let length =
            crate::resp::command::parse_integer(&threshold).ok_or_else(crate::resp::command::not_an_integer)?;
        Trim::MaxLength(u64::try_from(length).map_err(|_| Reply::error("ERR The MAXLEN argument must be >= 0."))?)
    } else {
        Trim::MinId(
            StreamId::parse(&threshold, 0)
                .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?,
        )
    };
    if args.take_keyword("LIMIT") {
        if !approximate {
            return Err(Reply::error("ERR syntax error, LIMIT cannot be used without the special ~ option"));
        }
        args.count()?;
    }
    Ok(Some(trim))
}

impl Trim {
    /// Trims `stream`; returns how many entries went.
    pub async fn apply(self, session: &Session, stream: &Stream) -> Result<i64, Reply> {
        let (start, end) = stream.offsets(session).await?;
        let new_start = match self {
            Trim::MaxLength(length) => stream.deleted(session, start, end).await?.start_keeping(length, start, end),
            Trim::MinId(min_id) => {
                let from = stream.seek(session, min_id).await?;
                let scanned = stream.scan(session, from, min_id, StreamId::MAX, 1, RESP_REPLY_BYTES_MAX).await?;
                scanned.entries.first().map_or(scanned.next.max(end), |entry| entry.offset)
            }
        };
        if new_start <= start {
            return Ok(0);
        }
        stream.trim_to(session, new_start).await
    }
}

pub async fn xlen(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    args.finish().map_err(|_| args.wrong_arity())?;
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Integer(0));
    };
    Ok(Reply::Integer(stream.length(session).await?))
}

pub async fn xtrim(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    let trim = parse_trim(args)?.ok_or_else(syntax_error)?;
    args.finish()?;
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Integer(0));
    };
    Ok(Reply::Integer(trim.apply(session, &stream).await?))
}
