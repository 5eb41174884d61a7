//! One file per command family. Each command reads its words from `Args` and returns a
//! `Reply` (or an error reply); XADD returns a task that finishes once its entry is durable.
pub mod connection;
pub mod keys;
pub mod transaction;
pub mod xack;
pub mod xadd;
pub mod xclaim;
pub mod xdel;
pub mod xgroup;
pub mod xinfo;
pub mod xrange;
pub mod xread;
pub mod xreadgroup;
pub mod xtrim;

use std::rc::Rc;
use std::time::Instant;

use super::command::Args;
use super::reply::Reply;
use super::session::Session;
use crate::metrics::RespCommand;

/// What running a command gives the connection's writer.
pub enum Outcome {
    Reply(Reply),
    /// Answered later, in turn (XADD: after fdatasync).
    Later(xadd::Deferred),
    /// Answer, then close the connection (QUIT, protocol errors).
    Close(Reply),
}

impl From<Result<Reply, Reply>> for Outcome {
    fn from(result: Result<Reply, Reply>) -> Self {
        Outcome::Reply(result.unwrap_or_else(|error| error))
    }
}

/// Runs one command and times it (`RespCommand`); an XADD answered later times itself.
pub async fn execute(session: &Rc<Session>, args: Args) -> Outcome {
    let started = Instant::now();
    let name = args.name();
    session.last_command.set((started, name));
    let command = RespCommand::of(&name);
    let outcome = match transaction::route(session, &name, args) {
        transaction::Route::Run(args) => run(session, args, &name, started).await,
        transaction::Route::Answer(reply) => Outcome::Reply(reply),
        transaction::Route::Exec(queued) => Outcome::Reply(transaction::exec(session, queued).await),
    };
    if !matches!(outcome, Outcome::Later(_)) {
        session.shard.metrics.resp_command(command, started.elapsed());
    }
    outcome
}

/// Every command `run` knows (a transaction queues only these). Kept in step with `run` by a
/// test.
const COMMANDS: [&str; 40] = [
    "xadd",
    "quit",
    "ping",
    "echo",
    "hello",
    "select",
    "client",
    "command",
    "info",
    "config",
    "del",
    "unlink",
    "exists",
    "type",
    "keys",
    "scan",
    "dbsize",
    "ttl",
    "pttl",
    "time",
    "auth",
    "wait",
    "waitaof",
    "unwatch",
    "xlen",
    "xtrim",
    "xsetid",
    "xdel",
    "xdelex",
    "xackdel",
    "xrange",
    "xrevrange",
    "xread",
    "xgroup",
    "xreadgroup",
    "xack",
    "xpending",
    "xclaim",
    "xautoclaim",
    "xinfo",
];

async fn run(session: &Rc<Session>, mut args: Args, name: &str, started: Instant) -> Outcome {
    if name != "xadd" {
        xadd::send_gathered(session).await;
        session.settled().await;
    }
    match name {
        "xadd" => xadd::xadd(session, &mut args, started).await,
        "quit" => Outcome::Close(Reply::OK),
        "ping" => connection::ping(session, &mut args).into(),
        "echo" => connection::echo(&mut args).into(),
        "hello" => connection::hello(session, &mut args).into(),
        "select" => connection::select(&mut args).into(),
        "client" => connection::client(session, &mut args).await.into(),
        "command" => connection::command(&mut args).into(),
        "info" => connection::info(session, &mut args).await.into(),
        "config" => connection::config(session, &mut args).into(),
        "del" | "unlink" => keys::del(session, &mut args).await.into(),
        "exists" => keys::exists(session, &mut args).into(),
        "type" => keys::key_type(session, &mut args).into(),
        "keys" => keys::keys(session, &mut args).into(),
        "scan" => keys::scan(session, &mut args).into(),
        "dbsize" => keys::dbsize(session, &mut args).into(),
        "ttl" | "pttl" => keys::ttl(session, &mut args).into(),
        "time" => connection::time(&mut args).into(),
        "auth" => connection::auth(&mut args).into(),
        "wait" => connection::wait(&mut args).into(),
        "waitaof" => connection::waitaof(&mut args).into(),
        // Nothing is ever watched (WATCH is refused).
        "unwatch" => args.finish().map(|()| Reply::OK).map_err(|_| args.wrong_arity()).into(),
        "xlen" => xtrim::xlen(session, &mut args).await.into(),
        "xtrim" => xtrim::xtrim(session, &mut args).await.into(),
        "xsetid" => xtrim::xsetid(session, &mut args).await.into(),
        "xdel" => xdel::xdel(session, &mut args).await.into(),
        "xdelex" => xdel::xdelex(session, &mut args).await.into(),
        "xackdel" => xdel::xackdel(session, &mut args).await.into(),
        "xrange" => xrange::xrange(session, &mut args, false).await.into(),
        "xrevrange" => xrange::xrange(session, &mut args, true).await.into(),
        "xread" => xread::xread(session, &mut args).await.into(),
        "xgroup" => xgroup::xgroup(session, &mut args).await.into(),
        "xreadgroup" => xreadgroup::xreadgroup(session, &mut args).await.into(),
        "xack" => xack::xack(session, &mut args).await.into(),
        "xpending" => xack::xpending(session, &mut args).await.into(),
        "xclaim" => xclaim::xclaim(session, &mut args).await.into(),
        "xautoclaim" => xclaim::xautoclaim(session, &mut args).await.into(),
        "xinfo" => xinfo::xinfo(session, &mut args).await.into(),
        _ => Outcome::Reply(unknown_command(&mut args)),
    }
}

/// Redis's text, to the trailing space.
fn unknown_command(args: &mut Args) -> Reply {
    let name = args.original_name();
    let shown: String =
        args.rest().iter().take(8).map(|word| format!("'{}' ", String::from_utf8_lossy(word))).collect();
    Reply::error(format!("ERR unknown command '{name}', with args beginning with: {shown}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// `COMMANDS` names exactly the commands `run` dispatches: its match arms, read from this
    /// file, so a command added to one and not the other fails here.
    #[test]
    fn the_command_list_matches_the_dispatch() {
        let source = include_str!("mod.rs");
        let body = &source[source.find("async fn run(").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let mut dispatched: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with('"'))
            .filter_map(|line| line.split_once("=>"))
            .flat_map(|(names, _)| names.split('|').map(|name| name.trim().trim_matches('"')))
            .collect();
        dispatched.sort_unstable();
        let mut listed = super::COMMANDS.to_vec();
        listed.sort_unstable();
        assert_eq!(dispatched, listed);
    }
}
