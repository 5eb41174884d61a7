//! The Kafka wire, blocking: length-prefixed frames, requests encoded with the `kafka-protocol`
//! codecs, responses decoded and matched to their request by correlation id.
use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::limits::{IO_TIMEOUT, PRODUCE_TIMEOUT_MS, RESPONSE_BYTES_MAX};

/// `client.id` of every request, so the broker's logs show where the load came from.
pub const CLIENT_ID: &str = "sluice-bench";
/// Where the correlation id sits in an encoded request frame: after the 4-byte length, the
/// 2-byte api key and the 2-byte api version, in every request header version.
const CORRELATION_ID_RANGE: std::ops::Range<usize> = 8..12;

/// Why a call failed. A broker error code is not a `ClientError` where the caller counts them
/// (Produce); it is one where the run cannot go on without it (CreateTopics, Metadata).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    Io {
        doing: &'static str,
        source: std::io::Error,
    },
    /// The connection closed where a response was due.
    Closed,
    Encode(String),
    Decode(String),
    FrameTooLarge {
        size_bytes: usize,
    },
    CorrelationMismatch {
        expected: i32,
        actual: i32,
    },
    Broker {
        doing: String,
        code: i16,
    },
    Timeout {
        doing: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { doing, source } => write!(f, "{doing}: {source}"),
            Self::Closed => write!(f, "the broker closed the connection"),
            Self::Encode(reason) => write!(f, "cannot encode a request: {reason}"),
            Self::Decode(reason) => write!(f, "cannot decode a response: {reason}"),
            Self::FrameTooLarge { size_bytes } => {
                write!(f, "response frame of {size_bytes} bytes exceeds {RESPONSE_BYTES_MAX}")
            }
            Self::CorrelationMismatch { expected, actual } => {
                write!(f, "response has correlation id {actual}, expected {expected}")
            }
            Self::Broker { doing, code } => write!(f, "{doing}: broker error {}", error_name(*code)),
            Self::Timeout { doing } => write!(f, "{doing}: timed out"),
        }
    }
}

impl std::error::Error for ClientError {}

/// `NAME (code)` for a Kafka error code.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE (0)".to_string(),
        Some(ResponseError::Unknown(_)) => format!("unknown error ({code})"),
        Some(error) => format!("{error:?} ({code})"),
    }
}

/// A whole request frame: length prefix, header, body.
pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> Result<Vec<u8>, ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0; 4]);
    header.encode(&mut frame, R::header_version(version)).map_err(|error| ClientError::Encode(error.to_string()))?;
    request.encode(&mut frame, version).map_err(|error| ClientError::Encode(error.to_string()))?;
    let length = i32::try_from(frame.len() - 4).map_err(|_| ClientError::Encode("request over 2 GiB".into()))?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    debug_assert_eq!(frame[CORRELATION_ID_RANGE], correlation_id.to_be_bytes());
    Ok(frame.to_vec())
}

/// A frame buffer that comes back for the next frame once the response decoded from it is
/// dropped: a fetch response of many MiB then costs no fresh pages (faults) and no zeroing,
/// which a new buffer for every response did (a sixth of a catch-up consumer's CPU).
#[derive(Debug, Default, Clone)]
pub struct FrameBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

/// A frame's bytes in a [`FrameBuffer`]'s vector, handed back when the last `Bytes` goes.
struct Lent {
    bytes: Vec<u8>,
    len: usize,
    home: FrameBuffer,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Ok(mut home) = self.home.0.lock() {
            if home.capacity() < self.bytes.capacity() {
                *home = std::mem::take(&mut self.bytes);
            }
        }
    }
}

/// Reads one length-prefixed frame (without its prefix) into `buffer`'s vector (grown and
/// zeroed only past what it had).
pub fn read_frame(reader: &mut impl Read, buffer: &FrameBuffer) -> Result<Bytes, ClientError> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).map_err(read_error)?;
    let size_bytes =
        usize::try_from(i32::from_be_bytes(length)).map_err(|_| ClientError::Decode("negative length".into()))?;
    if size_bytes > RESPONSE_BYTES_MAX {
        return Err(ClientError::FrameTooLarge { size_bytes });
    }
    let mut bytes = buffer.0.lock().map(|mut kept| std::mem::take(&mut *kept)).unwrap_or_default();
    if bytes.len() < size_bytes {
        bytes.resize(size_bytes, 0);
    }
    reader.read_exact(&mut bytes[..size_bytes]).map_err(read_error)?;
    Ok(Bytes::from_owner(Lent { bytes, len: size_bytes, home: buffer.clone() }))
}

fn read_error(error: std::io::Error) -> ClientError {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => ClientError::Closed,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ClientError::Timeout { doing: format!("waiting {IO_TIMEOUT:?} for a response") }
        }
        _ => ClientError::Io { doing: "reading a response", source: error },
    }
}

/// Decodes a response frame, checking it answers `correlation_id`.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, ClientError> {
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|error| ClientError::Decode(error.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::CorrelationMismatch { expected: correlation_id, actual: header.correlation_id });
    }
    R::Response::decode(&mut frame, version).map_err(|error| ClientError::Decode(error.to_string()))
}

/// Connects with Nagle off (a pipelined client must not wait for delayed ACKs) and every
/// blocking read and write bounded by [`IO_TIMEOUT`].
pub fn connect(bootstrap: &str) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect(bootstrap)
        .map_err(|source| ClientError::Io { doing: "connecting to the broker", source })?;
    let configure = |stream: &TcpStream| -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))
    };
    configure(&stream).map_err(|source| ClientError::Io { doing: "configuring the socket", source })?;
    Ok(stream)
}

/// One connection used one request at a time (setup: topics, metadata, offsets; and fetch).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
    responses: FrameBuffer,
}

impl Connection {
    pub fn connect(bootstrap: &str) -> Result<Self, ClientError> {
        Ok(Self { stream: connect(bootstrap)?, next_correlation_id: 1, responses: FrameBuffer::default() })
    }

    /// Sends `request` and waits for its response.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id)?;
        self.stream.write_all(&frame).map_err(|source| ClientError::Io { doing: "sending a request", source })?;
        let response = read_frame(&mut self.stream, &self.responses)?;
        decode_response::<R>(response, version, correlation_id)
    }
}

/// A Produce request of one batch for one partition, encoded once. Each send patches the
/// correlation id in place: no encoding and no allocation on the hot path.
#[derive(Debug, Clone)]
pub struct PreparedProduce {
    frame: Vec<u8>,
    pub partition: i32,
    /// Where the send time goes, once [`PreparedProduce::carrying_send_time`] asked for it.
    send_time: Option<SendTimeField>,
}

/// Where a batch in a request frame carries its send time: the 8-byte key of its first
/// record (microseconds since the Unix epoch, big-endian), and the batch itself, whose CRC
/// covers the key.
#[derive(Debug, Clone)]
struct SendTimeField {
    batch: std::ops::Range<usize>,
    key: std::ops::Range<usize>,
}

/// Bytes of a batch before what its CRC-32C covers (base offset, length, leader epoch, magic)
/// and where the CRC itself sits.
const BATCH_CRC_RANGE: std::ops::Range<usize> = 17..21;

/// The send time a batch carries in its first record's key, as
/// [`PreparedProduce::stamp_send_time`] put it there; None for a batch without one.
pub fn batch_send_time_us(batch: &[u8]) -> Option<u64> {
    let key = sluice_engine::record::batch::records(batch)?.next()?.key?;
    let sent_at_us = u64::from_be_bytes(key.try_into().ok()?);
    (sent_at_us > 0).then_some(sent_at_us)
}

impl PreparedProduce {
    pub fn new(topic: &str, partition: i32, acks: i16, records: Bytes, version: i16) -> Result<Self, ClientError> {
        let request =
            ProduceRequest::default().with_acks(acks).with_timeout_ms(PRODUCE_TIMEOUT_MS).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records))]),
            ]);
        Ok(Self { frame: encode_request(&request, version, 0)?, partition, send_time: None })
    }

    /// This request with room for a send time in its batch (the first record's 8-byte key),
    /// for consumers to measure end-to-end latency; each [`Self::stamp_send_time`] then
    /// rewrites the key and the batch's CRC.
    pub fn carrying_send_time(mut self, records: &[u8]) -> Result<Self, ClientError> {
        let no_room = |why: &str| ClientError::Encode(format!("no room for a send time in the batch: {why}"));
        let start = self
            .frame
            .windows(records.len())
            .position(|window| window == records)
            .ok_or_else(|| no_room("the batch is not in the frame"))?;
        let key = sluice_engine::record::batch::records(records)
            .and_then(|mut records| records.next())
            .and_then(|record| record.key)
            .ok_or_else(|| no_room("its first record has no key"))?;
        if key.len() != 8 {
            return Err(no_room("its first record's key is not 8 bytes"));
        }
        let key_start = start + (key.as_ptr() as usize - records.as_ptr() as usize);
        self.send_time = Some(SendTimeField { batch: start..start + records.len(), key: key_start..key_start + 8 });
        Ok(self)
    }

    /// Writes `sent_at_us` into the batch and recomputes its CRC; nothing for a request made
    /// without [`Self::carrying_send_time`].
    pub fn stamp_send_time(&mut self, sent_at_us: u64) {
        let Some(field) = &self.send_time else { return };
        self.frame[field.key.clone()].copy_from_slice(&sent_at_us.to_be_bytes());
        let batch = &mut self.frame[field.batch.clone()];
        let crc = crc32c::crc32c(&batch[BATCH_CRC_RANGE.end..]);
        batch[BATCH_CRC_RANGE].copy_from_slice(&crc.to_be_bytes());
    }

    /// The frame to send, carrying `correlation_id`.
    pub fn frame(&mut self, correlation_id: i32) -> &[u8] {
        self.frame[CORRELATION_ID_RANGE].copy_from_slice(&correlation_id.to_be_bytes());
        &self.frame
    }

    pub fn size_bytes(&self) -> usize {
        self.frame.len()
    }
}

/// The error code the broker gave the one partition a [`PreparedProduce`] wrote to: 0 when
/// it was appended. A response that does not mention the partition is a broken broker, not a
/// partition error.
pub fn produce_error_code(response: &ProduceResponse, topic: &str, partition: i32) -> Result<i16, ClientError> {
    response
        .responses
        .iter()
        .filter(|topic_response| topic_response.name.0.as_str() == topic)
        .flat_map(|topic_response| &topic_response.partition_responses)
        .find(|partition_response| partition_response.index == partition)
        .map(|partition_response| partition_response.error_code)
        .ok_or_else(|| ClientError::Decode(format!("the response does not mention {topic}/{partition}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record_batch_sized;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    use kafka_protocol::messages::ApiKey;
    use sluice_engine::record::batch;

    #[test]
    fn a_stamped_batch_carries_its_send_time_and_stays_valid() {
        let records = Bytes::from(record_batch_sized(3, 100, 1_000));
        let plain = PreparedProduce::new("bench", 0, -1, records.clone(), 9).unwrap();
        let mut stamped = plain.clone().carrying_send_time(&records).unwrap();
        for sent_at_us in [1_700_000_000_123_456, 1] {
            stamped.stamp_send_time(sent_at_us);
            let mut frame = Bytes::copy_from_slice(stamped.frame(1));
            let _ = frame.split_to(4);
            let _ = RequestHeader::decode(&mut frame, ProduceRequest::header_version(9)).unwrap();
            let request = ProduceRequest::decode(&mut frame, 9).unwrap();
            let batch = request.topic_data[0].partition_data[0].records.clone().unwrap();
            assert_eq!(batch::validate(&batch, usize::MAX).unwrap().records_count, 3, "the CRC was redone");
            assert_eq!(batch_send_time_us(&batch), Some(sent_at_us));
        }
        assert_eq!(batch_send_time_us(&records), None, "an unstamped batch's first key is 0");
        let mut unstamped = plain.clone();
        unstamped.stamp_send_time(5);
        assert_eq!(unstamped.frame(1), plain.clone().frame(1), "no field, nothing written");
        let keyless = Bytes::from(batch::build::batch_of(0, 0, &[(None, Some(&b"v"[..]))]));
        let request = PreparedProduce::new("bench", 0, -1, keyless.clone(), 9).unwrap();
        assert!(request.carrying_send_time(&keyless).is_err());
    }

    #[test]
    fn a_prepared_produce_decodes_as_the_request_it_stands_for_with_each_correlation_id() {
        let records = Bytes::from(record_batch_sized(3, 100, 1_000));
        let mut prepared = PreparedProduce::new("bench", 2, -1, records.clone(), 9).unwrap();
        for correlation_id in [0, 7, i32::MAX] {
            let mut frame = Bytes::copy_from_slice(prepared.frame(correlation_id));
            let length = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(length as usize, frame.len() - 4);
            let _ = frame.split_to(4);
            let header = RequestHeader::decode(&mut frame, ProduceRequest::header_version(9)).unwrap();
            assert_eq!(header.request_api_key, ApiKey::Produce as i16);
            assert_eq!(header.request_api_version, 9);
            assert_eq!(header.correlation_id, correlation_id);
            assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
            let request = ProduceRequest::decode(&mut frame, 9).unwrap();
            assert_eq!(request.acks, -1);
            assert_eq!(request.topic_data.len(), 1);
            assert_eq!(request.topic_data[0].name.0.as_str(), "bench");
            let partition = &request.topic_data[0].partition_data[0];
            assert_eq!(partition.index, 2);
            assert_eq!(partition.records.as_ref(), Some(&records), "the batch travels byte for byte");
            assert_eq!(batch::validate(partition.records.as_ref().unwrap(), usize::MAX).unwrap().records_count, 3);
        }
    }

    fn encoded_response(response: &ProduceResponse, version: i16, correlation_id: i32) -> Bytes {
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut frame, ProduceResponse::header_version(version))
            .unwrap();
        response.encode(&mut frame, version).unwrap();
        frame.freeze()
    }

    fn response_with(partitions: &[(i32, i16)]) -> ProduceResponse {
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_responses(
                partitions
                    .iter()
                    .map(|&(index, code)| PartitionProduceResponse::default().with_index(index).with_error_code(code))
                    .collect(),
            )])
    }

    #[test]
    fn produce_responses_yield_the_written_partitions_error_code() {
        let response = response_with(&[(0, 0), (1, 6)]);
        let frame = encoded_response(&response, 9, 41);
        let decoded = decode_response::<ProduceRequest>(frame, 9, 41).unwrap();
        assert_eq!(produce_error_code(&decoded, "bench", 0).unwrap(), 0);
        assert_eq!(produce_error_code(&decoded, "bench", 1).unwrap(), 6);
        assert!(matches!(produce_error_code(&decoded, "bench", 2), Err(ClientError::Decode(_))));
        assert!(matches!(produce_error_code(&decoded, "other", 0), Err(ClientError::Decode(_))));
        assert_eq!(error_name(6), "NotLeaderOrFollower (6)");
    }

    #[test]
    fn a_response_to_another_request_is_refused() {
        let frame = encoded_response(&response_with(&[(0, 0)]), 9, 5);
        assert!(matches!(
            decode_response::<ProduceRequest>(frame, 9, 6),
            Err(ClientError::CorrelationMismatch { expected: 6, actual: 5 })
        ));
    }

    #[test]
    fn frames_are_read_whole_and_absurd_lengths_refused() {
        let buffer = FrameBuffer::default();
        let mut stream: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0];
        assert_eq!(&read_frame(&mut stream, &buffer).unwrap()[..], b"abc");
        let cut = read_frame(&mut stream, &buffer);
        assert!(matches!(cut, Err(ClientError::Closed)), "a cut frame is a closed connection");
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut huge, &buffer), Err(ClientError::FrameTooLarge { .. })));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut negative, &buffer), Err(ClientError::Decode(_))));
    }

    #[test]
    fn a_frame_buffer_comes_back_once_its_frame_is_dropped() {
        let buffer = FrameBuffer::default();
        let mut stream: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 2, b'd', b'e', 0, 0, 0, 1, b'f'];
        let first = read_frame(&mut stream, &buffer).unwrap();
        assert_eq!(&first[..], b"abc");
        let address = first.as_ptr();
        let sliced = first.slice(1..);
        drop(first);
        // Still lent (a slice of it lives): the next frame gets a vector of its own.
        let second = read_frame(&mut stream, &buffer).unwrap();
        assert_eq!(&second[..], b"de");
        assert_eq!(&sliced[..], b"bc", "a lent frame is never overwritten");
        drop((sliced, second));
        let third = read_frame(&mut stream, &buffer).unwrap();
        assert_eq!(&third[..], b"f");
        assert_eq!(third.as_ptr(), address, "the larger vector came back and was reused");
    }
}
