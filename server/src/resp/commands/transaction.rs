//! MULTI, EXEC, DISCARD: commands queued on a connection, then run in order on EXEC, their
//! replies answered as one array. redis-py's `pipeline()` is such a transaction by default.
//!
//! As in Redis: a command after MULTI answers `+QUEUED`; an unknown one answers its error and
//! dooms the transaction, so EXEC answers `EXECABORT` and runs nothing. EXEC runs the queued
//! commands one after the other, an error reply among them not stopping the rest, and XREAD
//! and XREADGROUP do not block inside it (BLOCK is ignored). Unlike Redis, a transaction is
//! not isolated: streams live on different shards, and another connection's commands may run
//! between two of its commands. So WATCH, whose check-and-set needs that isolation, is refused.
//! Consecutive XADDs in a transaction go to their stream's owner together, as pipelined ones do.
//! A transaction queues at most `RESP_TRANSACTION_COMMANDS_MAX` commands and
//! `RESP_TRANSACTION_BYTES_MAX` bytes of arguments; past that it is doomed, like one with an
//! unknown command.
use std::rc::Rc;
use std::time::Instant;

use super::{xadd, Outcome};
use crate::limits::{RESP_TRANSACTION_BYTES_MAX, RESP_TRANSACTION_COMMANDS_MAX};
use crate::resp::command::Args;
use crate::resp::reply::Reply;
use crate::resp::session::Session;

/// An open transaction (after MULTI): the commands queued, and whether one was refused.
#[derive(Default)]
pub struct Transaction {
    queued: Vec<Args>,
    /// Of the queued commands' words.
    queued_bytes: usize,
    doomed: bool,
}

/// Where `execute` sends a command, given the connection's transaction.
pub enum Route {
    /// Not in a transaction (or a command that never queues): run it.
    Run(Args),
    /// Answered here: queued, or a transaction command's own reply.
    Answer(Reply),
    /// EXEC: run these and answer with their replies.
    Exec(Vec<Args>),
}

/// Commands that answer at once even inside a transaction, never queued.
const NEVER_QUEUED: [&str; 5] = ["multi", "exec", "discard", "watch", "quit"];

impl Transaction {
    /// Commands queued so far (CLIENT LIST's `multi`).
    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }
}

pub fn route(session: &Session, name: &str, args: Args) -> Route {
    let mut open = session.transaction.borrow_mut();
    if !NEVER_QUEUED.contains(&name) {
        let Some(transaction) = open.as_mut() else {
            return Route::Run(args);
        };
        if !super::COMMANDS.contains(&name) {
            transaction.doomed = true;
            let mut args = args;
            return Route::Answer(super::unknown_command(&mut args));
        }
        let size_bytes = args.size_bytes();
        if transaction.queued.len() >= RESP_TRANSACTION_COMMANDS_MAX
            || transaction.queued_bytes + size_bytes > RESP_TRANSACTION_BYTES_MAX
        {
            transaction.doomed = true;
            return Route::Answer(Reply::error(format!(
                "ERR transaction too large: at most {RESP_TRANSACTION_COMMANDS_MAX} commands and \
                 {RESP_TRANSACTION_BYTES_MAX} bytes of arguments are queued; EXEC will abort"
            )));
        }
        transaction.queued_bytes += size_bytes;
        transaction.queued.push(args);
        return Route::Answer(Reply::Status("QUEUED"));
    }
    if name == "quit" {
        return Route::Run(args);
    }
    if name == "watch" {
        let refusal = if open.is_some() {
            "ERR WATCH inside MULTI is not allowed"
        } else {
            "ERR WATCH is not supported: transactions here are not isolated from other connections"
        };
        return Route::Answer(Reply::error(refusal));
    }
    if args.remaining() != 0 {
        if let Some(transaction) = open.as_mut() {
            transaction.doomed = true;
        }
        return Route::Answer(args.wrong_arity());
    }
    match (name, open.take()) {
        ("multi", None) => {
            *open = Some(Transaction::default());
            Route::Answer(Reply::OK)
        }
        ("multi", Some(transaction)) => {
            *open = Some(transaction);
            Route::Answer(Reply::error("ERR MULTI calls can not be nested"))
        }
        ("exec", Some(Transaction { doomed: true, .. })) => {
            Route::Answer(Reply::error("EXECABORT Transaction discarded because of previous errors."))
        }
        ("exec", Some(transaction)) => Route::Exec(transaction.queued),
        ("exec", None) => Route::Answer(Reply::error("ERR EXEC without MULTI")),
        ("discard", Some(_)) => Route::Answer(Reply::OK),
        (_, _) => Route::Answer(Reply::error("ERR DISCARD without MULTI")),
    }
}

/// Runs a transaction's commands in order; their replies, in that order.
pub async fn exec(session: &Rc<Session>, queued: Vec<Args>) -> Reply {
    session.executing.set(true);
    let mut replies: Vec<Reply> = Vec::with_capacity(queued.len());
    let mut durable_later: Vec<(usize, xadd::Deferred)> = Vec::new();
    for args in queued {
        let name = args.name();
        if &*name != "xadd" {
            // It must see the XADDs before it (and `run` waits for them).
            finish(session, &mut replies, &mut durable_later).await;
        }
        match super::run(session, args, &name, Instant::now()).await {
            Outcome::Reply(reply) | Outcome::Close(reply) => replies.push(reply),
            Outcome::Later(deferred) => {
                durable_later.push((replies.len(), deferred));
                replies.push(Reply::Null); // its place, filled by `finish`
            }
        }
    }
    finish(session, &mut replies, &mut durable_later).await;
    session.executing.set(false);
    Reply::Array(replies)
}

/// Sends the gathered XADDs and puts their replies in place once they are durable.
async fn finish(session: &Rc<Session>, replies: &mut [Reply], later: &mut Vec<(usize, xadd::Deferred)>) {
    if later.is_empty() {
        return;
    }
    xadd::send_gathered(session).await;
    for (index, deferred) in later.drain(..) {
        replies[index] = deferred.reply().await;
    }
}
