//! Bytes on a RESP connection: the length pre-check, the frame decoder, argument parsing.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_protocol::resp2::decode::decode_bytes_mut;
use sluice_server::resp::check_declared_lengths;
use sluice_server::resp::command::Args;

fuzz_target!(|data: &[u8]| {
    let _ = check_declared_lengths(data);
    let mut buffer = BytesMut::from(data);
    while let Ok(Some((frame, _, _))) = decode_bytes_mut(&mut buffer) {
        if let Ok(mut args) = Args::from_frame(frame) {
            let _ = args.name();
            while args.next_word().is_some() {}
        }
    }
});
