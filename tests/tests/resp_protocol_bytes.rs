//! Story: a client library author checks sluice's RESP replies byte for byte against what
//! Redis sends for the main stream commands, and a hostile client finds that absurd lengths,
//! negative counts and wrong arities get an error (or a closed connection), never a half-done
//! command, while a well-behaved client on the next connection is served as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_tests::Broker;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw RESP connection.
struct Raw(TcpStream);

impl Raw {
    fn connect(broker: &Broker) -> Raw {
        let stream = TcpStream::connect(broker.resp_addr()).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Raw(stream)
    }

    /// Sends `words` as a RESP array and returns exactly `expected.len()` reply bytes.
    fn call(&mut self, words: &[&str], expected_bytes: usize) -> String {
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        self.0.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0u8; expected_bytes];
        self.0.read_exact(&mut reply).unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    }

    fn expect(&mut self, words: &[&str], expected: &str) {
        assert_eq!(self.call(words, expected.len()), expected, "reply to {words:?}");
    }

    /// Sends raw bytes and reads until the server closes the connection.
    fn send_until_closed(&mut self, bytes: &[u8]) -> String {
        self.0.write_all(bytes).unwrap();
        let mut reply = Vec::new();
        let _ = self.0.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    }
}

#[test]
fn stream_replies_match_redis_byte_for_byte() {
    let broker = Broker::builder().shards(2).start();
    let mut raw = Raw::connect(&broker);
    raw.expect(&["XADD", "s", "1-1", "name", "ada"], "$3\r\n1-1\r\n");
    raw.expect(&["XADD", "s", "1-*", "name", "bob"], "$3\r\n1-2\r\n");
    raw.expect(&["XLEN", "s"], ":2\r\n");
    raw.expect(
        &["XRANGE", "s", "-", "+"],
        "*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$4\r\nname\r\n$3\r\nada\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$4\r\nname\r\n$3\r\nbob\r\n",
    );
    raw.expect(
        &["XREVRANGE", "s", "+", "-", "COUNT", "1"],
        "*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$4\r\nname\r\n$3\r\nbob\r\n",
    );
    raw.expect(&["XREAD", "STREAMS", "s", "1-2"], "*-1\r\n");
    raw.expect(&["XGROUP", "CREATE", "s", "g", "0"], "+OK\r\n");
    raw.expect(
        &["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"],
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$4\r\nname\r\n$3\r\nada\r\n",
    );
    raw.expect(&["XPENDING", "s", "g"], "*4\r\n:1\r\n$3\r\n1-1\r\n$3\r\n1-1\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n1\r\n");
    raw.expect(&["XACK", "s", "g", "1-1", "1-1"], ":1\r\n");
    raw.expect(&["XPENDING", "s", "g"], "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n");
    raw.expect(
        &["XADD", "s", "1-1", "x", "y"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n",
    );
    raw.expect(&["XADD", "s", "*", "odd"], "-ERR wrong number of arguments for 'xadd' command\r\n");
    raw.expect(&["XGROUP", "CREATE", "s", "g", "$"], "-BUSYGROUP Consumer Group name already exists\r\n");
    raw.expect(
        &["XREADGROUP", "GROUP", "nope", "c", "STREAMS", "s", ">"],
        "-NOGROUP No such key 's' or consumer group 'nope' in XREADGROUP with GROUP option\r\n",
    );
    raw.expect(&["XLEN", "s", "extra"], "-ERR wrong number of arguments for 'xlen' command\r\n");
    // Inline commands, as typed into telnet or nc: words split on spaces, quotes kept together.
    raw.0.write_all(b"XADD s 2-1 text \"two words\"\r\n\r\nxrange s 2-1 +\n").unwrap();
    raw.expect(&["PING"], "$3\r\n2-1\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$4\r\ntext\r\n$9\r\ntwo words\r\n+PONG\r\n");
    raw.expect(&["HELLO", "3"], "%7\r\n");
}

#[test]
fn hostile_input_gets_errors_and_others_are_served() {
    let broker = Broker::builder().shards(2).start();
    // A 4 GB bulk string is refused when announced, not buffered.
    let reply = Raw::connect(&broker).send_until_closed(b"*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$4294967296\r\n");
    assert!(reply.starts_with("-ERR Protocol error: invalid bulk length 4294967296"), "{reply}");
    // A million-argument command likewise.
    let reply = Raw::connect(&broker).send_until_closed(b"*99999999\r\n");
    assert!(reply.starts_with("-ERR Protocol error: invalid multibulk length"), "{reply}");
    // A negative multibulk count, too.
    let reply = Raw::connect(&broker).send_until_closed(b"*-5\r\n");
    assert!(reply.starts_with("-ERR Protocol error: invalid multibulk length -5"), "{reply}");
    // An array of something else than bulk strings is answered and the connection stays usable.
    let mut raw = Raw::connect(&broker);
    raw.0.write_all(b"*1\r\n*0\r\n").unwrap();
    raw.expect(&["PING"], "-ERR Protocol error: expected an array of bulk strings\r\n+PONG\r\n");
    // Anything not starting with `*` is an inline command line, as in Redis.
    raw.0.write_all(b":7\r\n").unwrap();
    raw.expect(&["PING"], "-ERR unknown command ':7', with args beginning with: \r\n+PONG\r\n");
    // An inline line with an unclosed quote is a protocol error, which closes the connection.
    let reply = Raw::connect(&broker).send_until_closed(b"XADD s * f \"v\r\n");
    assert_eq!(reply, "-ERR Protocol error: unbalanced quotes in request\r\n");
    // So is an inline line over 64 KiB without its end.
    let reply = Raw::connect(&broker).send_until_closed(&[b'a'; (64 << 10) + 1]);
    assert_eq!(reply, "-ERR Protocol error: too big inline request\r\n");
    // A half-valid XADD (odd field count) writes nothing.
    raw.expect(&["XADD", "half", "*", "a", "1", "b"], "-ERR wrong number of arguments for 'xadd' command\r\n");
    raw.expect(&["EXISTS", "half"], ":0\r\n");
    // Bad IDs and options.
    raw.expect(&["XRANGE", "half", "x", "+"], "-ERR Invalid stream ID specified as stream command argument\r\n");
    raw.expect(&["XREAD", "COUNT", "x", "STREAMS", "s", "0"], "-ERR value is not an integer or out of range\r\n");
    raw.expect(
        &["XREAD", "STREAMS", "a", "b", "0"],
        "-ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.\r\n",
    );
    raw.expect(&["XADD", "bad/key", "*", "a", "1"], "-ERR invalid stream key: ");
    // A transaction queues at most 100,000 commands: one more dooms it, and EXEC runs nothing.
    const TRANSACTION_COMMANDS_MAX: usize = 100_000;
    let mut request = b"MULTI\r\n".to_vec();
    request.extend(b"XADD queued * a 1\r\n".repeat(TRANSACTION_COMMANDS_MAX + 1));
    request.extend(b"EXEC\r\nEXISTS queued\r\n");
    let mut expected = "+OK\r\n".to_string() + &"+QUEUED\r\n".repeat(TRANSACTION_COMMANDS_MAX);
    expected += "-ERR transaction too large: at most 100000 commands and 67108864 bytes of arguments are \
                 queued; EXEC will abort\r\n-EXECABORT Transaction discarded because of previous errors.\r\n:0\r\n";
    let mut transaction = Raw::connect(&broker);
    // Written from another thread: the replies (900 KB) come back while it writes.
    let mut writer = transaction.0.try_clone().unwrap();
    let writer = std::thread::spawn(move || writer.write_all(&request).unwrap());
    let mut reply = vec![0; expected.len()];
    transaction.0.read_exact(&mut reply).unwrap();
    assert!(reply == expected.as_bytes(), "the reply ends {:?}", String::from_utf8_lossy(&reply[reply.len() - 200..]));
    writer.join().unwrap();
    // Another client, meanwhile, is served as usual.
    let mut other = Raw::connect(&broker);
    other.expect(&["XADD", "fine", "5-5", "a", "1"], "$3\r\n5-5\r\n");
}
