//! Socket helpers both front doors share.
use std::os::fd::{AsRawFd, FromRawFd};

use glommio::net::TcpStream;

/// A second handle on the same socket, so reads and writes run in separate tasks.
pub fn duplicate(stream: &TcpStream) -> std::io::Result<TcpStream> {
    // SAFETY: dup returns a new descriptor we own (or -1); from_raw_fd takes ownership of it.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid, connected TCP socket descriptor owned by nobody else.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}
