//! The Redis (RESP) front door: Redis Streams over the partition log.
//!
//! Data flow: a connection (on whichever shard accepted it) parses request frames with the
//! `redis-protocol` crate (`command::Args`), runs each command (`commands/`, one family per
//! file) and hands the reply to the connection's writer task, which answers in request order
//! (`reply::Reply`, RESP2 or RESP3). A stream is partition 0 of the topic named by its key; its
//! owner shard appends XADD's entry, which is answered once fdatasync covered it. Pipelined
//! XADDs do not wait for each other's fsync (one fdatasync serves many); any other command
//! first waits for the XADDs before it, so it sees their entries.
//!
//! A slow or silent client is dropped (`net::Timeouts`): a command must arrive whole within
//! `request-read-timeout-ms` of its first byte, and a connection with no command arriving and
//! no reply owed for `connection-idle-timeout-ms` is closed (Redis's `timeout`, which Redis
//! leaves off by default), as is one whose client takes no reply bytes for as long. One over
//! `connections-max` gets `-ERR max number of clients reached` and is closed, as Redis does.
pub mod clients;
pub mod command;
pub mod commands;
pub mod reply;
pub mod session;
pub mod streams;

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use crate::limits::{
    CONNECTION_UNSENT_BYTES_MAX, RESP_IN_FLIGHT_COMMANDS_MAX, RESP_REQUEST_BYTES_MAX, RESP_WRITE_BATCH_BYTES,
};
use crate::metrics::{Dropped, Protocol};
use crate::net::{self, Timeouts};
use crate::request_memory::{Allowance, NoRoom};
use crate::runtime::mesh::ShardRequest;
use crate::runtime::ShardRef;
use command::next_command;
use commands::Outcome;
use reply::Reply;
use session::Session;

const READ_CHUNK_BYTES: usize = 16 << 10;
/// A connection's read buffer grown past this by a large command is replaced by a small one
/// once the command has run, so an idle connection does not keep it.
const READ_BUFFER_KEPT_BYTES: usize = 4 * READ_CHUNK_BYTES;
/// A connection's write buffer that one large reply grew past this is given back after the
/// write; gathering small replies leaves it a little over `RESP_WRITE_BATCH_BYTES`.
const WRITE_BUFFER_KEPT_BYTES_MAX: usize = 4 * RESP_WRITE_BATCH_BYTES;

pub fn listen(shard: ShardRef) -> Result<glommio::Task<()>, String> {
    let address = shard.config.resp_listen;
    let listener = TcpListener::bind(address)
        .map_err(|error| format!("cannot listen for RESP on {address}: {}", std::io::Error::from(error)))?;
    if shard.id == 0 {
        tracing::info!(%address, "RESP listener ready");
    }
    Ok(glommio::spawn_local(crate::accept::accept_loop(shard, listener, Protocol::Resp)))
}

/// Serves one connection until it ends or moves to another shard (`accept::serve` counts it).
pub async fn serve(shard: &ShardRef, stream: TcpStream) {
    let connection = session::ConnectionInfo {
        addr: stream.peer_addr().map(|address| address.to_string()).unwrap_or_default(),
        laddr: stream.local_addr().map(|address| address.to_string()).unwrap_or_default(),
        fd: std::os::fd::AsRawFd::as_raw_fd(&stream),
        opened: Instant::now(),
    };
    let session = Session::new(shard.clone(), shard.connections.client_id(), connection);
    serve_session(session, stream, Unread::default()).await;
}

/// A RESP connection on its way to another shard (`balance`): its socket, its session, and
/// the command it had read in part.
pub struct MovedConnection {
    socket: std::os::fd::OwnedFd,
    session: session::MovedSession,
    unread: Unread,
}

/// What a connection read of a command that has not arrived whole, and when its first bytes
/// came (the request read timeout counts from then, on whichever shard).
#[derive(Default)]
pub struct Unread {
    bytes: BytesMut,
    since: Option<Instant>,
}

/// Serves a connection another shard moved here, as `serve` does.
pub async fn serve_moved(shard: &ShardRef, moved: MovedConnection) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = moved.socket.into_raw_fd();
    // SAFETY: `fd` is a connected TCP socket this connection owns alone (a duplicate made for
    // the move, whose owner gave it up above).
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let session = Session::moved_in(shard.clone(), moved.session, fd);
    serve_session(session, stream, moved.unread).await;
}

async fn serve_session(session: Rc<Session>, mut stream: TcpStream, mut unread: Unread) {
    let shard = session.shard.clone();
    let _listed = clients::register(&session);
    loop {
        match serve_connection(session.clone(), stream, unread).await {
            Ok(Ended::Closed) => return,
            Ok(Ended::Moving { target, stream: kept, unread: rest }) => {
                match hand_over(&session, target, kept, rest).await {
                    Ok(()) => return,
                    // No room there, or no descriptor: the connection stays.
                    Err(stays) => (stream, unread) = stays,
                }
            }
            Err(closed) => {
                if let Closed::Dropped(dropped) = closed {
                    shard.metrics.connection_dropped(Protocol::Resp, dropped);
                }
                tracing::debug!(%closed, "RESP connection closed");
                return;
            }
        }
    }
}

/// A reply as it leaves the reader: ready, or one finished later (XADD waiting for fsync).
/// It carries the protocol in force when the command ran (HELLO changes it for what follows),
/// and the bytes it was counted as (`net::Owed::built`; 0 for a later one, whose reply is small).
struct Pending {
    resp3: bool,
    reply: Outcome,
    bytes: usize,
}

impl Pending {
    fn new(resp3: bool, reply: Outcome) -> Self {
        let bytes = match &reply {
            Outcome::Reply(reply) | Outcome::Close(reply) => reply.size_bytes(),
            Outcome::Later(_) => 0,
        };
        Self { resp3, reply, bytes }
    }
}

/// Gives a quiet connection to shard `target` (`balance`); back when it cannot go.
async fn hand_over(
    session: &Session,
    target: usize,
    stream: TcpStream,
    unread: Unread,
) -> Result<(), (TcpStream, Unread)> {
    let shard = &session.shard;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    // SAFETY: `stream` holds the descriptor open while it is borrowed here.
    let socket = match unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "cannot duplicate a RESP socket to move it; it stays");
            return Err((stream, unread));
        }
    };
    if !shard.connections.count_in(Protocol::Resp, target, shard.config.connections_max) {
        return Err((stream, unread)); // dropping the duplicate leaves the socket to `stream`
    }
    tracing::debug!(client = session.id, from = shard.id, to = target, "RESP connection moves");
    // Closing this shard's descriptor leaves the socket to the duplicate.
    drop(stream);
    let moved = MovedConnection { socket, session: session.moving_out(), unread };
    shard.call(target, ShardRequest::AdoptMoved(moved)).await;
    shard.metrics.connection_moved();
    Ok(())
}

/// How serving a connection on this shard ended, when it did without an error.
enum Ended {
    Closed,
    /// `balance` asked it to move to shard `target`, and it is quiet: every reply is written.
    Moving {
        target: usize,
        stream: TcpStream,
        unread: Unread,
    },
}

/// Why a connection ended.
enum Closed {
    Io(std::io::Error),
    /// The broker gave up on a slow or silent client.
    Dropped(Dropped),
}

impl From<std::io::Error> for Closed {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::Dropped(reason) => write!(f, "dropped by the broker: {}", reason.label()),
        }
    }
}

/// Two tasks per connection: this one reads and runs commands in order; the writer answers.
/// `unread` is what was read before of a command (a connection moved here with part of one).
async fn serve_connection(session: Rc<Session>, mut stream: TcpStream, unread: Unread) -> Result<Ended, Closed> {
    stream.set_nodelay(true).map_err(std::io::Error::from)?;
    let timeouts = Timeouts::of(&session.shard.config);
    let writer_stream = net::duplicate(&stream)?;
    timeouts.apply_to_writer(&writer_stream)?;
    let (pending_sender, pending_receiver) = local_channel::new_bounded(RESP_IN_FLIGHT_COMMANDS_MAX);
    // Replies owed: counted up by the reader, down by the writer once written.
    let in_flight = Rc::new(net::Owed::default());
    let writer = glommio::spawn_local(write_replies(writer_stream, pending_receiver, in_flight.clone()));
    let replies = Replies { pending: pending_sender, in_flight };
    let read_result = read_commands(&session, &mut stream, replies, timeouts, unread).await;
    if let Err(Closed::Dropped(_)) = read_result {
        // Wake the writer, which may wait for a client that reads nothing either.
        let _ = stream.shutdown(std::net::Shutdown::Both).await;
    }
    // XADDs read before the connection ended are still appended, as Redis would.
    commands::xadd::send_gathered(&session).await;
    // The reader dropped its end of the replies: the writer ends once it wrote them all.
    let write_result = writer.await;
    match (read_result?, write_result?) {
        (Some((target, unread)), ()) => Ok(Ended::Moving { target, stream, unread }),
        (None, ()) => Ok(Ended::Closed),
    }
}

/// Where the reader hands replies to the writer, counting them.
struct Replies {
    pending: LocalSender<Pending>,
    in_flight: Rc<net::Owed>,
}

impl Replies {
    /// Fails once the writer stopped (the client went away).
    async fn send(&self, reply: Pending) -> Result<(), ()> {
        self.in_flight.owe(1);
        self.in_flight.built(reply.bytes);
        self.pending.send(reply).await.map_err(|_| ())
    }
}

/// Reads and runs commands until the connection ends (`None`) or, at a quiet point, `balance`
/// asks it to move: then the shard to move to and the bytes of a command read in part.
async fn read_commands(
    session: &Rc<Session>,
    stream: &mut TcpStream,
    pending: Replies,
    timeouts: Timeouts,
    unread: Unread,
) -> Result<Option<(usize, Unread)>, Closed> {
    // `request_started`: when the broker began waiting for the rest of the partial command in
    // `buffer`.
    let Unread { bytes: mut buffer, since: mut request_started } = unread;
    buffer.reserve(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    // The bytes in `buffer`, charged to the shard as they come (`request_memory`).
    let mut charge = session.shard.request_memory.charge(&Allowance::default());
    loop {
        loop {
            let command = match next_command(&mut buffer) {
                Ok(Some(command)) => command,
                Ok(None) => match check_declared_lengths(&buffer) {
                    Ok(()) => break,
                    Err(reason) => {
                        let reply = Reply::error(format!("ERR Protocol error: {reason}"));
                        let _ = pending.send(Pending::new(session.resp3.get(), Outcome::Close(reply))).await;
                        return Ok(None);
                    }
                },
                Err(error) => {
                    let reason = check_declared_lengths(&buffer).err().unwrap_or_else(|| error.to_string());
                    let reply = Reply::error(format!("ERR Protocol error: {reason}"));
                    let _ = pending.send(Pending::new(session.resp3.get(), Outcome::Close(reply))).await;
                    return Ok(None);
                }
            };
            if pending.in_flight.unsent_bytes() > CONNECTION_UNSENT_BYTES_MAX {
                // The client is slow to take its replies: run nothing more until it took
                // them. XADDs gathered so far go first, since replies before them wait on them.
                commands::xadd::send_gathered(session).await;
                if !pending.in_flight.wait_for_room(CONNECTION_UNSENT_BYTES_MAX).await {
                    return Ok(None); // the writer stopped (and says why)
                }
            }
            let outcome = match command {
                Ok(args) => commands::execute(session, args).await,
                Err(reply) => Outcome::Reply(reply),
            };
            let close = matches!(outcome, Outcome::Close(_));
            if pending.send(Pending::new(session.resp3.get(), outcome)).await.is_err() || close {
                return Ok(None); // the writer stopped (the client went away) or QUIT
            }
            request_started = None; // what is left in `buffer` is the next command
        }
        if buffer.len() > RESP_REQUEST_BYTES_MAX {
            let reply = Reply::error(format!("ERR Protocol error: request larger than {RESP_REQUEST_BYTES_MAX} bytes"));
            let _ = pending.send(Pending::new(session.resp3.get(), Outcome::Close(reply))).await;
            return Ok(None);
        }
        // Everything read so far has run: send the XADDs it gathered before waiting for more.
        commands::xadd::send_gathered(session).await;
        if let Some(target) = session.take_move(crate::balance::MOVE_REQUEST_FRESH) {
            return Ok(Some((target, Unread { bytes: buffer, since: request_started })));
        }
        // What ran gives its bytes back; a command not whole yet keeps its charge.
        charge.keep(buffer.len());
        if buffer.len() <= READ_CHUNK_BYTES && buffer.capacity() > READ_BUFFER_KEPT_BYTES {
            // No large command is held any more: give its buffer back too.
            buffer = BytesMut::from(&buffer[..]);
        }
        let read = if buffer.is_empty() {
            request_started = None;
            net::wait_for_request(stream, &mut chunk, timeouts.idle, &pending.in_flight)
                .await
                .map_err(|error| dropped_on_timeout(error, Dropped::IdleTimeout))?
        } else {
            let deadline = *request_started.get_or_insert_with(Instant::now) + timeouts.request_read;
            let limit = deadline.saturating_duration_since(Instant::now());
            net::read_within(stream, &mut chunk, limit)
                .await
                .map_err(|error| dropped_on_timeout(error, Dropped::RequestReadTimeout))?
        };
        if read == 0 {
            return Ok(None);
        }
        let deadline = *request_started.get_or_insert_with(Instant::now) + timeouts.request_read;
        charge
            .cover(&session.shard.request_memory, buffer.len() + read, deadline)
            .await
            .map_err(|NoRoom| Closed::Dropped(Dropped::RequestMemory))?;
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn dropped_on_timeout(error: std::io::Error, reason: Dropped) -> Closed {
    if net::is_timeout(&error) {
        Closed::Dropped(reason)
    } else {
        Closed::Io(error)
    }
}

/// Arguments one command may have.
const RESP_ARGUMENTS_MAX: i64 = 1 << 20;

/// A partial request announcing more than the limits (a 4 GB bulk string, a million
/// arguments) is refused now, not buffered until it arrives. Walks the array header and the
/// bulk headers that arrived so far.
pub fn check_declared_lengths(buffer: &[u8]) -> Result<(), String> {
    fn header(rest: &[u8], kind: u8) -> Option<(i64, usize)> {
        let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
        if rest.first() != Some(&kind) {
            return None;
        }
        let value = std::str::from_utf8(&rest[1..end]).ok()?.parse::<i64>().ok()?;
        Some((value, end + 2))
    }
    let Some((count, mut position)) = header(buffer, b'*') else {
        return Ok(()); // incomplete, or not an array: the decoder reports what is wrong
    };
    if !(-1..=RESP_ARGUMENTS_MAX).contains(&count) {
        return Err(format!("invalid multibulk length {count} (at most {RESP_ARGUMENTS_MAX} arguments)"));
    }
    for _ in 0..count.max(0) {
        let Some((length, used)) = header(&buffer[position..], b'$') else {
            return Ok(());
        };
        if !(-1..=RESP_REQUEST_BYTES_MAX as i64).contains(&length) {
            return Err(format!("invalid bulk length {length} (at most {RESP_REQUEST_BYTES_MAX} bytes)"));
        }
        position += used + length.max(0) as usize + 2;
        if position >= buffer.len() {
            return Ok(());
        }
    }
    Ok(())
}

/// Answers in request order; a client that takes no reply for the idle timeout is dropped.
async fn write_replies(
    mut stream: TcpStream,
    pending: LocalReceiver<Pending>,
    in_flight: Rc<net::Owed>,
) -> Result<(), Closed> {
    let result = write_replies_in_order(&mut stream, &pending, &in_flight).await;
    in_flight.writer_stopped();
    if let Err(error) = result {
        // Wake the reader, which may be waiting for a command that will never come.
        let _ = stream.shutdown(std::net::Shutdown::Both).await;
        net::drain_until_reader_ends(pending).await;
        return Err(dropped_on_timeout(error, Dropped::WriteTimeout));
    }
    Ok(())
}

/// Gathers replies that are already there into one write.
async fn write_replies_in_order(
    stream: &mut TcpStream,
    pending: &LocalReceiver<Pending>,
    in_flight: &net::Owed,
) -> std::io::Result<()> {
    let mut out = WriteBatch { bytes: BytesMut::with_capacity(RESP_WRITE_BATCH_BYTES), replies: 0, counted_bytes: 0 };
    let mut next = pending.recv().await;
    while let Some(Pending { resp3, reply, bytes }) = next {
        let (reply, close) = match reply {
            Outcome::Reply(reply) => (reply, false),
            Outcome::Later(deferred) => {
                let mut reply = std::pin::pin!(deferred.reply());
                match futures_lite::future::poll_once(reply.as_mut()).await {
                    Some(reply) => (reply, false),
                    None => {
                        // Not durable yet: what is gathered goes now, not one fsync later.
                        out.write(stream, in_flight).await?;
                        (reply.await, false)
                    }
                }
            }
            Outcome::Close(reply) => (reply, true),
        };
        reply.encode(resp3, &mut out.bytes);
        out.replies += 1;
        out.counted_bytes += bytes;
        if close {
            stream.write_all(&out.bytes).await?;
            return stream.close().await;
        }
        next = if out.bytes.len() < RESP_WRITE_BATCH_BYTES {
            futures_lite::future::poll_once(pending.recv()).await.flatten()
        } else {
            None
        };
        if next.is_none() {
            out.write(stream, in_flight).await?;
            next = pending.recv().await;
        }
    }
    Ok(())
}

/// Encoded replies waiting for one socket write, and what they were counted as in `Owed`.
struct WriteBatch {
    bytes: BytesMut,
    replies: usize,
    counted_bytes: usize,
}

impl WriteBatch {
    async fn write(&mut self, stream: &mut TcpStream, in_flight: &net::Owed) -> std::io::Result<()> {
        if self.replies == 0 {
            return Ok(());
        }
        stream.write_all(&self.bytes).await?;
        self.bytes.clear();
        if self.bytes.capacity() > WRITE_BUFFER_KEPT_BYTES_MAX {
            // A large reply grew the buffer: give its memory back rather than keep it for the
            // life of the connection.
            self.bytes = BytesMut::with_capacity(RESP_WRITE_BATCH_BYTES);
        }
        in_flight.sent(std::mem::take(&mut self.counted_bytes));
        in_flight.paid(std::mem::take(&mut self.replies));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_declared_lengths_are_refused_before_they_arrive() {
        assert!(check_declared_lengths(b"*2\r\n$4\r\nPING\r\n$4294967296\r\n").is_err());
        assert!(check_declared_lengths(b"*99999999\r\n").is_err());
        assert!(check_declared_lengths(b"*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$100\r\nabc").is_ok());
        assert!(check_declared_lengths(b"*1\r\n$4\r\nPI").is_ok());
        assert!(check_declared_lengths(b"").is_ok());
    }

    proptest::proptest! {
        /// Whatever bytes arrive, framing and argument parsing answer or wait, never panic.
        #[test]
        fn any_bytes_are_parsed_without_panicking(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = check_declared_lengths(&input);
            let mut buffer = BytesMut::from(&input[..]);
            while let Ok(Some(command)) = next_command(&mut buffer) {
                if let Ok(mut args) = command {
                    let _ = args.name();
                    let _ = args.rest();
                }
            }
        }

        /// Commands cut anywhere parse as "wait for more", never as a different command.
        #[test]
        fn a_cut_command_waits_for_the_rest(cut in 0usize..40) {
            let whole = b"*3\r\n$4\r\nXLEN\r\n$6\r\nstream\r\n$2\r\nab\r\n";
            let cut = cut.min(whole.len() - 1);
            let mut buffer = BytesMut::from(&whole[..cut]);
            proptest::prop_assert!(matches!(next_command(&mut buffer), Ok(None)));
            proptest::prop_assert!(check_declared_lengths(&whole[..cut]).is_ok());
        }
    }
}
