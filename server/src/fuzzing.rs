//! The bodies of the server's cargo-fuzz targets (`fuzz/fuzz_targets`), here so that the normal
//! test suite can run the same code on stable: it replays the committed fuzz corpus and
//! mutations of it (`tests/tests/fuzz_corpus.rs`). Each function takes any bytes and must not
//! panic.
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::kafka::registry;
use crate::resp::check_declared_lengths;
use crate::resp::command::next_command;

/// A Kafka request frame (after the 4-byte size): the header the broker reads by hand, then
/// the header and body through the codecs of every API version sluice serves.
pub fn kafka_request(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let raw_key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Ok(key) = ApiKey::try_from(raw_key) else { return };
    let Some(support) = registry::supported(key) else { return };
    if version < support.min_version || version > support.max_version {
        return;
    }
    let mut frame = Bytes::copy_from_slice(data);
    if RequestHeader::decode(&mut frame, key.request_header_version(version)).is_ok() {
        let _ = registry::decode_body(key, version, &mut frame);
    }
}

/// Bytes on a RESP connection: the length pre-check, the frame decoder, argument parsing.
/// The vendored decoder's fast path must also answer exactly as the crate's parser does.
pub fn resp_frames(data: &[u8]) {
    let fast = format!("{:?}", redis_protocol::resp2::decode::decode_range(data));
    let parsed = format!("{:?}", redis_protocol::resp2::decode::decode_range_parsed(data));
    assert_eq!(fast, parsed, "the decoder's fast path and its parser disagree");
    let _ = check_declared_lengths(data);
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(command)) = next_command(&mut buffer) {
        if let Ok(mut args) = command {
            let _ = args.name();
            while args.next_word().is_some() {}
        }
    }
}

/// Bytes a compression codec takes from a producer: a whole stored batch, opened as a Redis
/// read and a timestamp lookup open it (the codec its attributes name, bounded), and the same
/// bytes after the first as the records section of a batch of each codec.
pub fn stored_batch(data: &[u8]) {
    let _ = crate::resp::streams::decode(&Bytes::copy_from_slice(data));
    let _ = sluice_engine::record::batch::first_record_at_or_after(data, 0, crate::compression::uncompressed_batch);
    if let Some((&code, records)) = data.split_first() {
        let _ = crate::compression::decompress_records(i16::from(code % 8), records, STORED_BATCH_RECORDS_BYTES_MAX);
    }
}

/// What `stored_batch` lets a records section expand to: mutated streams that claim more
/// stop there, so each input stays quick.
const STORED_BATCH_RECORDS_BYTES_MAX: usize = 1 << 20;
