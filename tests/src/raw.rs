//! Speaking the Kafka protocol by hand, for tests that need exact requests and exact error
//! codes (a client library would hide or retry them). Codecs from the `kafka-protocol` crate.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Bound on every read and write of a raw connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).expect("connect to the broker");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set a read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set a write timeout");
    stream
}

/// Sends one request and returns its decoded response (checking the correlation id).
pub fn call<R: Request>(stream: &mut TcpStream, request: &R, version: i16, correlation_id: i32) -> R::Response {
    // One write: a separate 4-byte write would meet Nagle and delayed ACKs (40 ms a request).
    stream.write_all(&frame(request, version, correlation_id)).expect("send the request");
    read_response::<R>(stream, version, correlation_id)
}

/// Reads and decodes the response to a request sent earlier (checking the correlation id).
pub fn read_response<R: Request>(stream: &mut TcpStream, version: i16, correlation_id: i32) -> R::Response {
    let mut response = read_frame(stream).expect("the broker answered");
    let response_header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
        .expect("decode the response header");
    assert_eq!(response_header.correlation_id, correlation_id, "correlation id of the answer");
    R::Response::decode(&mut response, version).expect("decode the response")
}

/// A request as it goes on the wire: length prefix, header, body.
pub fn frame<R: Request>(request: &R, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.extend_from_slice(&[0; 4]); // length, filled in below
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-tests")));
    header.encode(&mut body, R::header_version(version)).expect("encode the request header");
    request.encode(&mut body, version).expect("encode the request");
    let length = (body.len() - 4) as i32;
    body[..4].copy_from_slice(&length.to_be_bytes());
    body.to_vec()
}

/// One length-prefixed frame, or None if the connection closed or timed out.
pub fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).ok()?;
    let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(length)).ok()?];
    stream.read_exact(&mut frame).ok()?;
    Some(Bytes::from(frame))
}
