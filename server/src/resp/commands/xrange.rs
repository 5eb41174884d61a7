//! XRANGE key start end [COUNT n] and XREVRANGE key end start [COUNT n].
use sluice_engine::stream::id::{parse_bound, StreamId};

use crate::limits::{RESP_RANGE_ENTRIES_MAX, RESP_REPLY_BYTES_MAX};
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams;

/// A range bound, with Redis's two errors: not an ID, or an exclusive bound past the end.
pub fn bound(text: &[u8], is_start: bool) -> Result<StreamId, Reply> {
    if let Some(id) = parse_bound(text, is_start) {
        return Ok(id);
    }
    let exclusive_of_an_id = text.strip_prefix(b"(").is_some_and(|rest| StreamId::parse(rest, 0).is_some());
    Err(if exclusive_of_an_id {
        Reply::error(format!("ERR invalid {} ID for the interval", if is_start { "start" } else { "end" }))
    } else {
        Reply::error("ERR Invalid stream ID specified as stream command argument")
    })
}

/// `COUNT n` if given (a negative count returns nothing, as in Redis).
fn count(args: &mut Args) -> Result<Option<usize>, Reply> {
    if !args.take_keyword("COUNT") {
        return if args.remaining() == 0 { Ok(None) } else { Err(syntax_error()) };
    }
    let count = args.integer()?;
    args.finish()?;
    let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
    if count > RESP_RANGE_ENTRIES_MAX {
        return Err(Reply::error(format!("ERR COUNT above {RESP_RANGE_ENTRIES_MAX} is not supported")));
    }
    Ok(Some(count))
}

pub async fn xrange(session: &Session, args: &mut Args, reverse: bool) -> CommandResult {
    let key = args.required()?;
    let (first_word, second_word) = (args.required()?, args.required()?);
    let (start_word, end_word) = if reverse { (second_word, first_word) } else { (first_word, second_word) };
    let (first, last) = (bound(&start_word, true)?, bound(&end_word, false)?);
    let count = count(args)?;
    let Some(stream) = streams::find(session, &key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if first > last || count == Some(0) {
        return Ok(Reply::Array(Vec::new()));
    }
    // Without COUNT, one more than the cap tells a range that is too large from one that fits.
    let limit = count.unwrap_or(RESP_RANGE_ENTRIES_MAX + 1);
    let scanned = if reverse {
        stream.scan_back(session, first, last, limit, RESP_REPLY_BYTES_MAX).await?
    } else {
        let from = stream.seek(session, first).await?;
        stream.scan(session, from, first, last, limit, RESP_REPLY_BYTES_MAX).await?
    };
    if count.is_none() && scanned.entries.len() > RESP_RANGE_ENTRIES_MAX {
        return Err(Reply::error(format!(
            "ERR the range holds more than {RESP_RANGE_ENTRIES_MAX} entries: page through it with COUNT"
        )));
    }
    if scanned.full {
        // Fewer entries than asked for would read as the end of the range: refuse instead.
        let (fitted, asked) = (scanned.entries.len(), count.map_or("all".to_string(), |count| count.to_string()));
        return Err(Reply::error(format!(
            "ERR the reply would hold more than {RESP_REPLY_BYTES_MAX} bytes of fields ({fitted} entries fit of the {asked} asked for): page through the range with a smaller COUNT"
        )));
    }
    Ok(Reply::entries(scanned.entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_give_redis_errors() {
        assert_eq!(bound(b"-", true), Ok(StreamId::MIN));
        assert_eq!(bound(b"(5-0", false), Ok(StreamId::new(4, u64::MAX)));
        assert_eq!(bound(b"(0-0", false), Err(Reply::error("ERR invalid end ID for the interval")));
        assert_eq!(bound(b"zz", true), Err(Reply::error("ERR Invalid stream ID specified as stream command argument")));
    }
}
