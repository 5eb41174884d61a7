//! Speaking RESP by hand, for tests that want a Redis command's exact reply without a client
//! library.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::raw::IO_TIMEOUT;

/// A RESP connection with [`IO_TIMEOUT`] on reads.
pub fn connect(address: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(address).expect("connect to the RESP listener");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set a read timeout");
    BufReader::new(stream)
}

/// One command as a RESP array of bulk strings.
pub fn encode(words: &[&str]) -> String {
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    request
}

/// Sends one command as an array of bulk strings and returns its whole reply flattened to text:
/// a bulk string as itself, an array as `[item item ...]`, anything else as its line. Panics on
/// an error reply.
pub fn command(connection: &mut BufReader<TcpStream>, words: &[&str]) -> String {
    connection.get_mut().write_all(encode(words).as_bytes()).expect("send the command");
    let reply = read_reply(connection);
    assert!(!reply.starts_with('-'), "{words:?} failed: {reply}");
    reply
}

/// Reads one reply, flattened to text as `command` returns it (an error reply as its line).
pub fn read_reply(connection: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    connection.read_line(&mut line).expect("read a reply line");
    let line = line.trim_end().to_string();
    let count: i64 = line.get(1..).and_then(|count| count.parse().ok()).unwrap_or(-1);
    match line.as_bytes().first() {
        Some(b'$') if count >= 0 => {
            let mut data = vec![0u8; count as usize + 2];
            connection.read_exact(&mut data).expect("read a bulk string");
            String::from_utf8_lossy(&data[..count as usize]).to_string()
        }
        Some(b'*') if count >= 0 => {
            let items: Vec<String> = (0..count).map(|_| read_reply(connection)).collect();
            format!("[{}]", items.join(" "))
        }
        _ => line,
    }
}
