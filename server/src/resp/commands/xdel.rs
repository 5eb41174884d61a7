//! XDEL key id [id ...], and Redis 8.2's XDELEX key [KEEPREF|DELREF|ACKED] IDS numids id ...
//! and XACKDEL key group [KEEPREF|DELREF|ACKED] IDS numids id ...: delete entries from
//! anywhere in a stream. The log is append-only: the stream's group log records the deleted
//! offsets (durably, before the reply; with XACKDEL's acknowledgements in the same write) and
//! every Redis read skips them; their records stay on disk, and readable by Kafka consumers,
//! until trimming or retention removes their segment.
use bytes::Bytes;
use sluice_engine::stream::id::StreamId;

use super::xack::parse_ids;
use super::xtrim::parse_references;
use crate::resp::command::{syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::streams::{self, group_call, group_error};
use crate::stream_groups::{GroupAnswer, GroupCall, GroupError, References};

pub async fn xdel(session: &Session, args: &mut Args) -> CommandResult {
    let key = args.required()?;
    let ids = parse_ids(&args.rest())?;
    if ids.is_empty() {
        return Err(args.wrong_arity());
    }
    let Some(codes) = delete(session, &key, None, ids, References::Keep).await? else {
        return Ok(Reply::Integer(0));
    };
    Ok(Reply::Integer(codes.iter().filter(|&&code| code == DELETED).count() as i64))
}

pub async fn xdelex(session: &Session, args: &mut Args) -> CommandResult {
    if args.remaining() < 4 {
        return Err(args.wrong_arity()); // key IDS numids id
    }
    let key = args.required()?;
    let (references, ids) = parse_deletion(args)?;
    let asked = ids.len();
    let codes = delete(session, &key, None, ids, references).await?;
    Ok(codes_reply(codes, asked))
}

pub async fn xackdel(session: &Session, args: &mut Args) -> CommandResult {
    if args.remaining() < 5 {
        return Err(args.wrong_arity()); // key group IDS numids id
    }
    let (key, group) = (args.required()?, args.required()?);
    let (references, ids) = parse_deletion(args)?;
    let asked = ids.len();
    let codes = delete(session, &key, Some(group), ids, references).await?;
    Ok(codes_reply(codes, asked))
}

/// An entry deleted (XDELEX, XACKDEL's code 1).
const DELETED: i64 = 1;
/// No such entry (or key, or group), Redis's -1.
const NOT_FOUND: i64 = -1;

/// The owner's codes, or `None` when there is no such stream, or no such group for XACKDEL
/// (nothing to acknowledge: every ID answers -1, as XACK answers 0 there).
async fn delete(
    session: &Session,
    key: &Bytes,
    ack: Option<Bytes>,
    ids: Vec<StreamId>,
    references: References,
) -> Result<Option<Vec<i64>>, Reply> {
    let Some(stream) = streams::find(session, key)? else {
        return Ok(None);
    };
    match group_call(session, &stream, GroupCall::Delete { ack, ids, references }).await {
        Ok(GroupAnswer::Codes(codes)) => Ok(Some(codes)),
        Ok(_) => unreachable!("Delete answers with Codes"),
        Err(GroupError::NoGroup | GroupError::NoStream) => Ok(None),
        Err(error) => Err(group_error(error, || "ERR no such key".to_string())),
    }
}

fn codes_reply(codes: Option<Vec<i64>>, asked: usize) -> Reply {
    let codes = codes.unwrap_or_else(|| vec![NOT_FOUND; asked]);
    Reply::Array(codes.into_iter().map(Reply::Integer).collect())
}

/// `[KEEPREF | DELREF | ACKED] IDS numids id ...`, the two parts in either order.
fn parse_deletion(args: &mut Args) -> Result<(References, Vec<StreamId>), Reply> {
    let mut references = None;
    let mut ids = None;
    while args.remaining() > 0 {
        if let Some(chosen) = references.is_none().then(|| parse_references(args)).flatten() {
            references = Some(chosen);
        } else if ids.is_none() && args.take_keyword("IDS") {
            let count = args
                .integer()
                .ok()
                .filter(|&count| count > 0)
                .ok_or_else(|| Reply::error("ERR Number of IDs must be a positive integer"))?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > args.remaining() {
                return Err(numids_mismatch());
            }
            let words: Vec<_> = (0..count).filter_map(|_| args.next_word()).collect();
            ids = Some(parse_ids(&words)?);
        } else if ids.is_some() && args.next_word().is_some_and(|word| StreamId::parse(&word, 0).is_some()) {
            return Err(numids_mismatch()); // more IDs than numids said
        } else {
            return Err(syntax_error());
        }
    }
    Ok((references.unwrap_or_default(), ids.ok_or_else(syntax_error)?))
}

fn numids_mismatch() -> Reply {
    Reply::error("ERR The `numids` parameter must match the number of arguments")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(words: &[&str]) -> Result<(References, Vec<StreamId>), Reply> {
        let mut args = Args::of(&[&["XDELEX", "s"], words].concat());
        args.required().unwrap();
        parse_deletion(&mut args)
    }

    #[test]
    fn the_ids_block_and_the_policy_parse_in_either_order() {
        let ids = vec![StreamId::new(1, 0), StreamId::new(2, 5)];
        assert_eq!(parse(&["IDS", "2", "1-0", "2-5"]).unwrap(), (References::Keep, ids.clone()));
        assert_eq!(parse(&["acked", "IDS", "2", "1-0", "2-5"]).unwrap(), (References::Acked, ids.clone()));
        assert_eq!(parse(&["IDS", "2", "1-0", "2-5", "DELREF"]).unwrap(), (References::Delete, ids));
    }

    #[test]
    fn bad_deletion_arguments_get_redis_errors() {
        let error = |words: &[&str]| parse(words).unwrap_err();
        assert_eq!(error(&["IDS", "0"]), Reply::error("ERR Number of IDs must be a positive integer"));
        assert_eq!(error(&["IDS", "x", "1-0"]), Reply::error("ERR Number of IDs must be a positive integer"));
        assert_eq!(error(&["IDS", "3", "1-0", "2-0"]), numids_mismatch());
        assert_eq!(error(&["IDS", "1", "1-0", "2-0"]), numids_mismatch());
        assert_eq!(error(&["KEEPREF", "ACKED", "IDS", "1", "1-0"]), syntax_error());
        assert_eq!(error(&["KEEPREF"]), syntax_error());
        assert_eq!(
            error(&["IDS", "1", "x-y"]),
            Reply::error("ERR Invalid stream ID specified as stream command argument")
        );
    }
}
