//! XLEN, XTRIM, and the trimming XADD shares. Trimming moves the stream's start offset (like
//! Kafka's DeleteRecords); whole segments below it are deleted by the retention task. So `~`
//! and `=` both trim exactly, and LIMIT has nothing to bound. Lengths count entries XDEL
//! deleted out. KEEPREF (the default) leaves the groups' references to trimmed entries,
//! DELREF acknowledges them, ACKED trims no further than what every group is done with.
use sluice_engine::stream::id::StreamId;

use crate::limits::RESP_REPLY_BYTES_MAX;
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, Stream};
use crate::stream_groups::{GroupCall, References};

/// How far to trim, and what to do with the groups' references to what goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    pub bound: Bound,
    pub references: References,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Keep the newest `n` entries.
    MaxLength(u64),
    /// Drop entries with an ID below this one.
    MinId(StreamId),
}

/// `KEEPREF`, `DELREF` or `ACKED` if the next word is one (Redis 8.2).
pub fn parse_references(args: &mut Args) -> Option<References> {
    [("KEEPREF", References::Keep), ("DELREF", References::Delete), ("ACKED", References::Acked)]
        .into_iter()
        .find(|(keyword, _)| args.take_keyword(keyword))
        .map(|(_, references)| references)
}

/// What XADD and XTRIM take before their ID (XADD) or end (XTRIM).
#[derive(Debug, Default)]
pub struct TrimOptions {
    /// MAXLEN or MINID, with KEEPREF, DELREF or ACKED.
    pub trim: Option<Trim>,
    /// XADD's NOMKSTREAM.
    pub no_make_stream: bool,
}

/// The options XADD (`xadd`, which also takes NOMKSTREAM) and XTRIM share, in any order as
/// Redis reads them: `MAXLEN|MINID [=|~] threshold`, `LIMIT count` (only with `~`),
/// `KEEPREF|DELREF|ACKED`. Stops at the first word that is none of them.
pub fn parse_trim_options(args: &mut Args, xadd: bool) -> Result<TrimOptions, Reply> {
    let mut options = TrimOptions::default();
    let (mut bound, mut approximate, mut limit, mut references) = (None, false, false, None);
    loop {
        if xadd && args.take_keyword("NOMKSTREAM") {
            options.no_make_stream = true;
        } else if let Some(given) = references.is_none().then(|| parse_references(args)).flatten() {
            references = Some(given);
        } else if args.take_keyword("LIMIT") {
            if args.integer()? < 0 {
                return Err(Reply::error("ERR The LIMIT argument must be >= 0."));
            }
            limit = true;
        } else if let Some(is_max_length) = [("MAXLEN", true), ("MINID", false)]
            .into_iter()
            .find(|(keyword, _)| args.take_keyword(keyword))
            .map(|(_, is_max_length)| is_max_length)
        {
            if matches!((bound, is_max_length), (Some(Bound::MinId(_)), true) | (Some(Bound::MaxLength(_)), false)) {
                return Err(Reply::error(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            approximate = args.take_keyword("~");
            if !approximate {
                args.take_keyword("=");
            }
            bound = Some(parse_threshold(&args.required()?, is_max_length)?);
        } else {
            break;
        }
    }
    if limit && bound.is_none() {
        return Err(Reply::error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if limit && !approximate {
        return Err(Reply::error("ERR syntax error, LIMIT cannot be used without the special ~ option"));
    }
    options.trim = bound.map(|bound| Trim { bound, references: references.unwrap_or_default() });
    Ok(options)
}

fn parse_threshold(threshold: &[u8], is_max_length: bool) -> Result<Bound, Reply> {
    Ok(if is_max_length {
        let length = crate::resp::command::parse_integer(threshold).ok_or_else(crate::resp::command::not_an_integer)?;
        Bound::MaxLength(u64::try_from(length).map_err(|_| Reply::error("ERR The MAXLEN argument must be >= 0."))?)
    } else {
        Bound::MinId(
            StreamId::parse(threshold, 0)
                .ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))?,
        )
    })
}

impl Trim {
    /// Trims `stream`; returns how many entries went.
    pub async fn apply(self, session: &Session, stream: &Stream) -> Result<i64, Reply> {
        let (start, end) = stream.offsets(session).await?;
        let new_start = match self.bound {
            Bound::MaxLength(length) => stream.deleted(session, start, end).await?.start_keeping(length, start, end),
            Bound::MinId(min_id) => {
                let from = stream.seek(session, min_id).await?;
                let scanned = stream.scan(session, from, min_id, StreamId::MAX, 1, RESP_REPLY_BYTES_MAX).await?;
                scanned.entries.first().map_or(scanned.next.max(end), |entry| entry.offset)
            }
        };
        if new_start <= start {
            return Ok(0);
        }
        stream.trim_to(session, new_start, self.references).await
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
    // Redis's arity: a strategy and its threshold at least.
    if args.remaining() < 2 {
        return Err(args.wrong_arity());
    }
    let trim = parse_trim_options(args, false)?.trim;
    args.finish()?;
    let trim = trim.ok_or_else(|| Reply::error("ERR syntax error, XTRIM must be called with a trimming strategy"))?;
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Integer(0));
    };
    Ok(Reply::Integer(trim.apply(session, &stream).await?))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]: sets the
/// stream's last ID (no lower than its newest entry's) and its entries-added counter (no
/// lower than its length), as a copy of a stream made elsewhere needs: Redis's AOF rewrite
/// writes one after each stream's entries. MAXDELETEDID sets the stream's max-deleted-entry-id
/// (not above the last ID), also below what XDEL deleted.
pub async fn xsetid(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    let id = parse_id(&args.required()?)?;
    let (mut entries_added, mut max_deleted) = (None, None);
    while args.remaining() > 0 {
        if args.take_keyword("ENTRIESADDED") {
            let count = args.integer()?;
            if count < 0 {
                return Err(Reply::error("ERR entries_added must be positive"));
            }
            entries_added = Some(count);
        } else if args.take_keyword("MAXDELETEDID") {
            max_deleted = Some(parse_id(&args.required()?)?);
        } else {
            return Err(syntax_error());
        }
    }
    let stream = streams::find(session, &key)?.ok_or_else(|| Reply::error("ERR no such key"))?;
    if let Some(count) = entries_added {
        if count < stream.length(session).await? {
            return Err(Reply::error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    match streams::group_call(session, &stream, GroupCall::SetLastId { id, entries_added, max_deleted }).await {
        Ok(_) => Ok(Reply::OK),
        Err(error) => Err(streams::group_error(error, || "ERR no such key".to_string())),
    }
}

fn parse_id(word: &[u8]) -> Result<StreamId, Reply> {
    StreamId::parse(word, 0).ok_or_else(|| Reply::error("ERR Invalid stream ID specified as stream command argument"))
}
