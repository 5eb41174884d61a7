//! One blocking TCP connection with a read buffer, for the text-framed wires (RESP, NATS):
//! commands go out as already encoded bytes, frames come out of the buffer through the wire's
//! own parser, and a read waits either up to [`IO_TIMEOUT`] or until a deadline.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::limits::{IO_TIMEOUT, SOCKET_READ_BUFFER_BYTES};

/// Why reading or writing the socket failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SocketError {
    Io {
        doing: &'static str,
        source: std::io::Error,
    },
    /// The server closed the connection where an answer was due.
    Closed,
    /// More unparsed bytes than one frame may hold: a broken stream.
    FrameTooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    /// No answer within [`IO_TIMEOUT`].
    Timeout,
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { doing, source } => write!(f, "{doing}: {source}"),
            Self::Closed => write!(f, "the server closed the connection"),
            Self::FrameTooLarge { size_bytes, limit_bytes } => {
                write!(f, "an answer of more than {size_bytes} bytes (limit {limit_bytes})")
            }
            Self::Timeout => write!(f, "no answer within {} s", IO_TIMEOUT.as_secs()),
        }
    }
}

impl std::error::Error for SocketError {}

/// A frame parser: one frame from the start of the bytes and how many bytes it took, None if
/// it is not complete yet.
pub type Parse<T, E> = fn(&[u8]) -> Result<Option<(T, usize)>, E>;

#[derive(Debug)]
pub struct BufferedSocket {
    stream: TcpStream,
    /// Bytes read and not yet parsed are `buffer[start..]`.
    buffer: Vec<u8>,
    start: usize,
    /// Unparsed bytes beyond which the stream counts as broken.
    frame_bytes_max: usize,
}

impl BufferedSocket {
    /// Connects with Nagle off and [`IO_TIMEOUT`] on reads and writes. `connecting` is what a
    /// failure to connect says ("connecting to the RESP server").
    pub fn connect(address: &str, connecting: &'static str, frame_bytes_max: usize) -> Result<Self, SocketError> {
        let stream = TcpStream::connect(address).map_err(|source| SocketError::Io { doing: connecting, source })?;
        let configure = |stream: &TcpStream| -> std::io::Result<()> {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))
        };
        configure(&stream).map_err(|source| SocketError::Io { doing: "configuring the socket", source })?;
        Ok(Self { stream, buffer: Vec::with_capacity(SOCKET_READ_BUFFER_BYTES), start: 0, frame_bytes_max })
    }

    /// Writes already encoded commands.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SocketError> {
        self.stream.write_all(bytes).map_err(|source| SocketError::Io { doing: "sending commands", source })
    }

    /// The next frame, waiting up to [`IO_TIMEOUT`] for it.
    pub fn next<T, E: From<SocketError>>(&mut self, parse: Parse<T, E>) -> Result<T, E> {
        loop {
            if let Some(frame) = self.buffered(parse)? {
                return Ok(frame);
            }
            self.fill()?;
        }
    }

    /// The next frame if it arrives before `deadline`, else None (it stays due).
    pub fn next_before<T, E: From<SocketError>>(
        &mut self,
        parse: Parse<T, E>,
        deadline: Instant,
    ) -> Result<Option<T>, E> {
        loop {
            if let Some(frame) = self.buffered(parse)? {
                return Ok(Some(frame));
            }
            let now = Instant::now();
            if now >= deadline || !self.wait_readable(deadline - now)? {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// A frame already read from the socket, if a whole one is there.
    pub fn buffered<T, E>(&mut self, parse: Parse<T, E>) -> Result<Option<T>, E> {
        let parsed = parse(&self.buffer[self.start..])?;
        Ok(parsed.map(|(frame, length)| {
            self.start += length;
            frame
        }))
    }

    /// Reads what the socket has (at least one byte) into the buffer.
    fn fill(&mut self) -> Result<(), SocketError> {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let unparsed_bytes = self.buffer.len() - self.start;
        if unparsed_bytes >= self.frame_bytes_max {
            return Err(SocketError::FrameTooLarge { size_bytes: unparsed_bytes, limit_bytes: self.frame_bytes_max });
        }
        let filled = self.buffer.len();
        let room = (self.buffer.capacity() - filled).max(SOCKET_READ_BUFFER_BYTES);
        self.buffer.resize(filled + room, 0);
        let read = self.stream.read(&mut self.buffer[filled..]);
        self.buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => Err(SocketError::Closed),
            Ok(_) => Ok(()),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(SocketError::Timeout)
            }
            Err(source) => Err(SocketError::Io { doing: "reading answers", source }),
        }
    }

    /// Whether the socket has bytes to read (or is closed) within `timeout`. `ppoll` has
    /// nanosecond timeouts; a socket read timeout counts in scheduler ticks (4 ms), too coarse
    /// for an open-loop schedule.
    fn wait_readable(&self, timeout: Duration) -> Result<bool, SocketError> {
        let mut descriptor = libc::pollfd { fd: self.stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd and a valid timespec, both live for the call; no signal mask.
        let ready = unsafe { libc::ppoll(&mut descriptor, 1, &timeout, std::ptr::null()) };
        match ready {
            0 => Ok(false),
            ready if ready > 0 => Ok(true),
            _ => match std::io::Error::last_os_error() {
                error if error.kind() == std::io::ErrorKind::Interrupted => Ok(false),
                source => Err(SocketError::Io { doing: "waiting for answers", source }),
            },
        }
    }
}
