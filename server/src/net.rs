//! Socket helpers both front doors share: a second handle for the writer task, and reads that
//! give up when a client is too slow.
//!
//! A connection waits for its client in two ways. Between requests it is idle: the first byte
//! of the next request may take up to `connection-idle-timeout-ms`. Once that byte arrived, the
//! rest of the request must arrive within `request-read-timeout-ms` of it, however the client
//! spaces its bytes, so a client sending one byte a second (slowloris) cannot hold a connection
//! and its buffer for ever. Both use glommio's own read timeout, armed only when a read has to
//! wait, so a client that keeps up costs one clock read per socket read.
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::TcpStream;

use sluice_engine::page_cache;
use sluice_engine::sync::Notify;

use crate::catch_up_rate::CatchUpRate;
use crate::config::Config;

/// A second handle on the same socket, so reads and writes run in separate tasks.
pub fn duplicate(stream: &TcpStream) -> io::Result<TcpStream> {
    let fd = duplicate_fd(stream)?;
    // SAFETY: `fd` is a fresh, valid, connected TCP socket descriptor; the stream takes it over.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

/// A new descriptor of the stream's socket, owned by the caller.
fn duplicate_fd(stream: &TcpStream) -> io::Result<OwnedFd> {
    // SAFETY: dup only reads the descriptor number and returns a new descriptor (or -1).
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How long a connection waits for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request to its last.
    pub request_read: Duration,
    /// For the first byte of the next request, and for a client to take a response.
    pub idle: Duration,
}

impl Timeouts {
    pub fn of(config: &Config) -> Self {
        Self {
            request_read: Duration::from_millis(config.request_read_timeout_ms),
            idle: Duration::from_millis(config.connection_idle_timeout_ms),
        }
    }

    /// A write that makes no progress for the idle timeout fails with `TimedOut`: a client that
    /// stops reading responses does not hold its connection for ever.
    pub fn apply_to_writer(&self, writer: &TcpStream) -> io::Result<()> {
        writer.set_write_timeout(Some(self.idle)).map_err(io::Error::from)
    }
}

/// Reads what arrives within `limit`; `Ok(0)` when the client closed its side, `TimedOut`
/// when nothing came in time.
pub async fn read_within(stream: &mut TcpStream, buffer: &mut [u8], limit: Duration) -> io::Result<usize> {
    limit_next_read(stream, limit)?;
    stream.read(buffer).await
}

/// The next read on `stream` fails with `TimedOut` after `limit` (at once when it is zero).
fn limit_next_read(stream: &TcpStream, limit: Duration) -> io::Result<()> {
    if limit.is_zero() {
        return Err(io::ErrorKind::TimedOut.into()); // glommio refuses a zero timeout
    }
    stream.set_read_timeout(Some(limit)).map_err(io::Error::from)
}

/// Responses a connection owes (counted up by its reader, down by its writer once written),
/// when the last one left (the idle timeout counts from then), and the bytes of those already
/// built but not yet handed to the socket: a client that reads slowly or not at all makes the
/// connection wait (`wait_for_room`) instead of making the broker hold its answers.
pub struct Owed {
    count: Cell<usize>,
    settled_at: Cell<Instant>,
    unsent_bytes: Cell<usize>,
    sent: Notify,
    /// The writer stopped: nothing more will be sent.
    writer_stopped: Cell<bool>,
}

impl Default for Owed {
    fn default() -> Self {
        Self {
            count: Cell::new(0),
            settled_at: Cell::new(Instant::now()),
            unsent_bytes: Cell::new(0),
            sent: Notify::default(),
            writer_stopped: Cell::new(false),
        }
    }
}

impl Owed {
    pub fn owe(&self, responses: usize) {
        self.count.set(self.count.get() + responses);
    }

    pub fn paid(&self, responses: usize) {
        self.count.set(self.count.get() - responses);
        if self.count.get() == 0 {
            self.settled_at.set(Instant::now());
        }
    }

    /// A response of `bytes` is built and waits for the writer.
    pub fn built(&self, bytes: usize) {
        self.unsent_bytes.set(self.unsent_bytes.get() + bytes);
    }

    /// The writer handed `bytes` of built responses to the socket.
    pub fn sent(&self, bytes: usize) {
        let unsent = self.unsent_bytes.get();
        assert!(bytes <= unsent, "sent {bytes} bytes of {unsent} built");
        self.unsent_bytes.set(unsent - bytes);
        self.sent.notify_all();
    }

    pub fn unsent_bytes(&self) -> usize {
        self.unsent_bytes.get()
    }

    /// The writer stopped (the client went away or was dropped): wakes whoever waits for room.
    pub fn writer_stopped(&self) {
        self.writer_stopped.set(true);
        self.sent.notify_all();
    }

    /// Waits until at most `limit` bytes of built responses wait for the writer; false if the
    /// writer stopped instead. Bounded by the write timeout: a client that takes nothing for
    /// that long is dropped, which stops the writer.
    pub async fn wait_for_room(&self, limit: usize) -> bool {
        while self.unsent_bytes.get() > limit {
            if self.writer_stopped.get() {
                return false;
            }
            self.sent.notified().await;
        }
        true
    }
}

/// Waits for the first bytes of the next request: `Ok(0)` when the client closed its side,
/// `TimedOut` when the connection was idle for `idle`: no byte arrived and no response was
/// owed, counted from when the wait began or the last owed response left, whichever is later.
/// While a response is owed (a Fetch long poll, a reply the client is slow to take) the wait
/// goes on; the write timeout bounds the latter.
pub async fn wait_for_request(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    idle: Duration,
    owed: &Owed,
) -> io::Result<usize> {
    let waiting_since = Instant::now();
    loop {
        let limit = if owed.count.get() > 0 {
            idle
        } else {
            idle.saturating_sub(waiting_since.max(owed.settled_at.get()).elapsed())
        };
        if limit.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match read_within(stream, buffer, limit).await {
            Err(error) if is_timeout(&error) => continue,
            result => return result,
        }
    }
}

/// Fills `buffer` before `deadline`: `TimedOut` if the client is too slow, `UnexpectedEof` if
/// it closed its side first.
pub async fn read_exact_before(stream: &mut TcpStream, buffer: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let limit = deadline.saturating_duration_since(Instant::now());
        match read_within(stream, &mut buffer[filled..], limit).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => filled += read,
        }
    }
    Ok(())
}

/// Reads into the spare capacity of `buffer` until it holds `length` bytes, before `deadline`
/// (errors as `read_exact_before`). The bytes go into memory not zeroed first: a request
/// frame of 256 KiB zeroed and then overwritten cost a Kafka producer 7.6% of the broker's
/// CPU (`BytesMut::zeroed` on memory the allocator reuses).
pub async fn fill_before(
    stream: &mut TcpStream,
    buffer: &mut bytes::BytesMut,
    length: usize,
    deadline: Instant,
) -> io::Result<()> {
    assert!(length <= buffer.capacity(), "fill_before past the buffer's capacity");
    while buffer.len() < length {
        limit_next_read(stream, deadline.saturating_duration_since(Instant::now()))?;
        let wanted = length - buffer.len();
        match stream.read_uninit(&mut buffer.spare_capacity_mut()[..wanted]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            // SAFETY: `read_uninit` initialized the `read` bytes after the buffer's length.
            read => unsafe { buffer.set_len(buffer.len() + read) },
        }
    }
    Ok(())
}

/// Bytes one sendfile call moves at most. A call whose bytes are all in the page cache runs
/// on the executor; any other runs on the shard's blocking thread (on a page-cache miss it
/// waits for the disk, which must not stall the executor), shared by all the shard's
/// connections: each gets it for turns of this size.
pub const SENDFILE_CALL_BYTES_MAX: usize = 1 << 20;
/// Bytes one sendfile call on the executor moves at most (from the page cache: about 100 us
/// of copying on these machines, which the shard's other tasks wait for).
pub const SENDFILE_INLINE_CALL_BYTES_MAX: usize = 256 << 10;

/// Sends `length` bytes of `file` from `position` to the socket with sendfile(2), from the
/// page cache to the socket without passing through the broker's memory, at most at the
/// shard's catch-up read `rate`. Each call whose bytes the page cache holds (`page_cache::in_page_cache`)
/// runs right here, the others on the blocking thread: a hop there and back is two thread
/// wake-ups, which cost a catch-up read from memory a third of its speed at 64 KiB a fetch.
/// The socket is made
/// non-blocking (glommio's own sends and receives pass MSG_DONTWAIT anyway, so they are
/// unaffected), so a client that takes nothing costs no thread: the call returns EAGAIN and
/// is tried again once the socket has room (a POLLOUT wait on the ring). `TimedOut` once no
/// byte went out for `stalled_max`.
/// The blocking calls use their own duplicate of the socket: if this future is dropped while
/// one runs (the connection's task cancelled at shutdown), the stream may close, and its
/// descriptor number must not be reused by a file the call would then write into.
pub async fn send_file(
    stream: &TcpStream,
    file: &Arc<File>,
    mut position: u64,
    length: usize,
    stalled_max: Duration,
    rate: &CatchUpRate,
) -> io::Result<()> {
    let socket = Arc::new(duplicate_fd(stream)?);
    set_nonblocking(socket.as_raw_fd())?;
    let end = position + length as u64;
    let mut progressed_at = Instant::now();
    while position < end {
        let count = ((end - position) as usize).min(SENDFILE_CALL_BYTES_MAX);
        let inline_count = count.min(SENDFILE_INLINE_CALL_BYTES_MAX);
        let sent = if page_cache::in_page_cache(file, position, inline_count).unwrap_or(false) {
            let sent = sendfile(&socket, file, position, inline_count);
            glommio::yield_if_needed().await;
            sent
        } else {
            let (source, target) = (file.clone(), socket.clone());
            glommio::executor().spawn_blocking(move || sendfile(&target, &source, position, count)).await
        };
        match sent {
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than the range to send"))
            }
            Ok(sent) => {
                position += sent as u64;
                progressed_at = Instant::now();
                // Charged for what went out, not for what was tried: a client that takes
                // nothing (EAGAIN, tried again) must not run the shard into debt.
                rate.take(sent).await;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_for_room(stream, progressed_at, stalled_max).await?
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Buffers one sendmsg(2) call takes at most (Linux's IOV_MAX is 1024).
pub const SEND_BUFFERS_PER_CALL_MAX: usize = 64;

/// Writes all of `buffers`, in order, with as few sendmsg(2) calls as the socket allows: a
/// response of several parts, or several responses, leave in one call instead of one send
/// each (under Kafka produce, a send was about 6 us of broker CPU, most of it the loopback delivery
/// and the wake-up of the client's thread, which one call pays once). When the socket is full
/// it waits for room (a POLLOUT wait on the ring); `TimedOut` once no byte went out for
/// `stalled_max`. The calls pass MSG_DONTWAIT, as glommio's own sends do.
pub async fn send_buffers(stream: &TcpStream, buffers: &[&[u8]], stalled_max: Duration) -> io::Result<()> {
    // The first byte not yet sent: `buffers[index][offset]`.
    let (mut index, mut offset) = (0, 0);
    let mut progressed_at = Instant::now();
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(SEND_BUFFERS_PER_CALL_MAX.min(buffers.len()));
    while index < buffers.len() {
        if buffers[index].len() == offset {
            (index, offset) = (index + 1, 0);
            continue;
        }
        iovecs.clear();
        iovecs.extend(buffers[index..].iter().take(SEND_BUFFERS_PER_CALL_MAX).enumerate().map(|(at, buffer)| {
            let unsent = if at == 0 { &buffer[offset..] } else { buffer };
            libc::iovec { iov_base: unsent.as_ptr() as *mut libc::c_void, iov_len: unsent.len() }
        }));
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = iovecs.len();
        // SAFETY: the iovecs point into `buffers`, which outlive the call; the kernel only
        // reads them.
        let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            let mut sent = sent as usize;
            while sent > 0 {
                let step = sent.min(buffers[index].len() - offset);
                (offset, sent) = (offset + step, sent - step);
                if offset == buffers[index].len() {
                    (index, offset) = (index + 1, 0);
                }
            }
            progressed_at = Instant::now();
            continue;
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => wait_for_room(stream, progressed_at, stalled_max).await?,
            _ => return Err(error),
        }
    }
    Ok(())
}

/// After a non-blocking send found the socket full: waits until the client takes bytes and
/// the socket has room again, or until `stalled_max` has passed since the last byte went out
/// (`progressed_at`), then `TimedOut`. A socket error shows in the next send.
async fn wait_for_room(stream: &TcpStream, progressed_at: Instant, stalled_max: Duration) -> io::Result<()> {
    let left = stalled_max.saturating_sub(progressed_at.elapsed());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    let _ = glommio::timer::timeout(left, stream.writable()).await;
    Ok(())
}

/// One sendfile(2) call: up to `count` bytes of `file` from `position` to `socket`.
fn sendfile(socket: &OwnedFd, file: &File, position: u64, count: usize) -> io::Result<usize> {
    let mut offset = position as libc::off_t;
    // SAFETY: both descriptors are open for the call (borrowed); `offset` is a valid off_t.
    let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

fn set_nonblocking(socket: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we hold open; F_GETFL/F_SETFL take and return plain flags.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// After a connection's writer failed (and shut the socket down, so the reader stops): takes
/// and drops what the reader still hands over until it ends. A reader waiting for room in a
/// full channel would wait for ever if the writer just dropped its end: glommio's local channel
/// wakes it then, but it still finds no room. Dropping a pending task cancels it.
pub async fn drain_until_reader_ends<T>(pending: LocalReceiver<T>) {
    while pending.recv().await.is_some() {}
}

pub fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
}

/// Connections one accept loop refused over `connections-max`, logged at most once per
/// `CONNECTIONS_REFUSED_WARNING_INTERVAL_MS` (with how many since the last line). Lives in one
/// accept loop.
#[derive(Debug, Default)]
pub struct Refusals {
    since_warning: u64,
    last_warning: Option<Instant>,
}

impl Refusals {
    pub fn refused(&mut self, door: &str, limit: usize) {
        self.since_warning += 1;
        let interval = Duration::from_millis(crate::limits::CONNECTIONS_REFUSED_WARNING_INTERVAL_MS);
        if self.last_warning.is_none_or(|last| last.elapsed() >= interval) {
            let refused = self.since_warning;
            tracing::warn!(limit, refused, "{door} connections refused: connections-max per shard reached");
            self.since_warning = 0;
            self.last_warning = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    use super::*;

    /// Many buffers of uneven lengths, more bytes than the socket holds, to a reader that
    /// takes them slowly: every byte arrives once and in order (partial sends resume mid
    /// buffer), and empty buffers are skipped.
    #[test]
    fn send_buffers_sends_everything_in_order_through_a_full_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let buffers: Vec<Vec<u8>> = (0..300usize)
            .map(|index| (0..(index * 7_919) % 60_013).map(|at| (at * 7 + index) as u8).collect())
            .collect();
        let expected: Vec<u8> = buffers.iter().flat_map(|buffer| buffer.iter().copied()).collect();
        let reader = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 7_919];
            loop {
                std::thread::sleep(Duration::from_micros(200));
                match socket.read(&mut chunk).unwrap() {
                    0 => return received,
                    read => received.extend_from_slice(&chunk[..read]),
                }
            }
        });
        glommio::LocalExecutorBuilder::default().make().unwrap().run(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            let slices: Vec<&[u8]> = buffers.iter().map(|buffer| &buffer[..]).collect();
            send_buffers(&stream, &slices, Duration::from_secs(10)).await.unwrap();
            send_buffers(&stream, &[], Duration::from_secs(10)).await.unwrap();
        });
        assert_eq!(reader.join().unwrap(), expected);
    }

    /// A client that takes nothing: the send fails with `TimedOut` once no byte went out for
    /// the stall limit.
    #[test]
    fn send_buffers_times_out_when_nothing_is_taken() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let holder = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(socket);
        });
        let error = glommio::LocalExecutorBuilder::default().make().unwrap().run(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            let buffer = vec![1u8; 64 << 20];
            send_buffers(&stream, &[&buffer[..]], Duration::from_millis(200)).await.unwrap_err()
        });
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        holder.join().unwrap();
    }
}
