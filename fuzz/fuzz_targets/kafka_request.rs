//! A Kafka request frame (after the 4-byte size): the header the broker reads by hand, then
//! the header and body through the codecs of every API version sluice serves.
#![no_main]
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use sluice_server::kafka::registry;

fuzz_target!(|data: &[u8]| {
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
});
