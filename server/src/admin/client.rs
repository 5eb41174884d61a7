//! A small blocking Kafka client: one TCP connection, one request at a time. Requests are
//! framed with their header and a 4-byte size, responses read back by size and matched to the
//! request by correlation id; codecs come from the `kafka-protocol` crate. Every connect, read
//! and write is bounded in time.
//!
//! The first request on a connection is ApiVersions: it proves the peer speaks Kafka (under
//! [`ADMIN_HANDSHAKE_TIMEOUT_MS`]) and tells which versions it serves, so a request the broker
//! does not serve fails with UNSUPPORTED_VERSION before it is sent.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

use super::error::AdminError;
use crate::limits::{
    ADMIN_CONNECT_TIMEOUT_MS, ADMIN_HANDSHAKE_TIMEOUT_MS, ADMIN_IO_TIMEOUT_MS, ADMIN_RESPONSE_BYTES_MAX,
};

/// `client.id` of every request, so the broker (and DescribeGroups) shows where it came from.
pub const CLIENT_ID: &str = "sluice-cli";
/// ApiVersions v3 carries the client software name and version.
const API_VERSIONS_VERSION: i16 = 3;

/// One connection to a broker. Lives in one command, on one thread.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    bootstrap: String,
    next_correlation_id: i32,
    /// (api key, min version, max version) for every API the broker serves.
    served: Vec<(i16, i16, i16)>,
}

impl Client {
    /// Connects to `bootstrap` (`HOST:PORT`) and asks which API versions it serves.
    pub fn connect(bootstrap: &str) -> Result<Client, AdminError> {
        let stream = open(bootstrap)?;
        let mut client =
            Client { stream, bootstrap: bootstrap.to_string(), next_correlation_id: 1, served: Vec::new() };
        client.handshake()?;
        Ok(client)
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn handshake(&mut self) -> Result<(), AdminError> {
        self.set_read_timeout(ADMIN_HANDSHAKE_TIMEOUT_MS)?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = self.exchange(&request, API_VERSIONS_VERSION, "asking for the API versions").map_err(
            |error| match error {
                AdminError::Connection { bootstrap, reason, .. } => AdminError::Protocol {
                    bootstrap,
                    reason: format!("no answer to ApiVersions ({reason}); is this the Kafka listener?"),
                },
                other => other,
            },
        )?;
        if response.error_code != 0 {
            return Err(AdminError::broker("asking for the API versions", response.error_code, None));
        }
        self.served = response.api_keys.iter().map(|api| (api.api_key, api.min_version, api.max_version)).collect();
        self.set_read_timeout(ADMIN_IO_TIMEOUT_MS)
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, AdminError> {
        self.check_served(R::KEY, version)?;
        self.exchange(request, version, &format!("waiting for the answer to {}", api_name(R::KEY)))
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send_only<R: Request>(&mut self, request: &R, version: i16) -> Result<(), AdminError> {
        self.check_served(R::KEY, version)?;
        self.send(request, version).map(drop)
    }

    fn check_served(&self, key: i16, version: i16) -> Result<(), AdminError> {
        match self.served.iter().find(|(served_key, _, _)| *served_key == key) {
            Some((_, min, max)) if (*min..=*max).contains(&version) => Ok(()),
            Some((_, min, max)) => Err(AdminError::broker(
                format!("{} v{version}", api_name(key)),
                ResponseError::UnsupportedVersion.code(),
                Some(format!("it serves v{min} to v{max}")),
            )),
            None => Err(AdminError::broker(
                api_name(key),
                ResponseError::UnsupportedVersion.code(),
                Some("it does not serve this API at all".to_string()),
            )),
        }
    }

    fn exchange<R: Request>(&mut self, request: &R, version: i16, doing: &str) -> Result<R::Response, AdminError> {
        let correlation_id = self.send(request, version)?;
        let mut frame = self.read_frame(doing)?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|error| self.protocol_error(format!("undecodable response header: {error}")))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol_error(format!(
                "the answer carries correlation id {}, the request {correlation_id}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(|error| {
            self.protocol_error(format!("undecodable {} v{version} response: {error}", api_name(R::KEY)))
        })
    }

    /// Encodes and writes one request frame; returns its correlation id.
    fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, AdminError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]); // the size, filled in below
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|error| AdminError::Usage(format!("cannot encode {}: {error}", api_name(R::KEY))))?;
        let size_bytes = i32::try_from(frame.len() - 4)
            .map_err(|_| AdminError::Usage(format!("{} request over 2 GiB", api_name(R::KEY))))?;
        frame[..4].copy_from_slice(&size_bytes.to_be_bytes());
        // One write: header and body in separate segments would meet Nagle and delayed ACKs.
        self.stream
            .write_all(&frame)
            .map_err(|error| self.io_error(&format!("sending {}", api_name(R::KEY)), &error))?;
        Ok(correlation_id)
    }

    /// Reads one size-prefixed frame. The buffer grows as bytes arrive, so a peer announcing an
    /// absurd size (not a Kafka broker) costs no memory up front.
    fn read_frame(&mut self, doing: &str) -> Result<Bytes, AdminError> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(|error| self.io_error(doing, &error))?;
        let size_bytes = i32::from_be_bytes(size);
        let size_bytes = usize::try_from(size_bytes)
            .ok()
            .filter(|size_bytes| *size_bytes <= ADMIN_RESPONSE_BYTES_MAX)
            .ok_or_else(|| {
                self.protocol_error(format!(
                    "a response of {size_bytes} bytes announced (at most {ADMIN_RESPONSE_BYTES_MAX} accepted)"
                ))
            })?;
        let mut frame = Vec::new();
        let read = (&mut self.stream)
            .take(size_bytes as u64)
            .read_to_end(&mut frame)
            .map_err(|error| self.io_error(doing, &error))?;
        if read < size_bytes {
            return Err(AdminError::Connection {
                bootstrap: self.bootstrap.clone(),
                doing: doing.to_string(),
                reason: format!("the broker closed the connection after {read} of {size_bytes} bytes"),
            });
        }
        Ok(Bytes::from(frame))
    }

    fn set_read_timeout(&self, timeout_ms: u64) -> Result<(), AdminError> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(timeout_ms)))
            .map_err(|error| self.io_error("configuring the socket", &error))
    }

    fn io_error(&self, doing: &str, error: &std::io::Error) -> AdminError {
        let reason = match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_string(),
            std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
            _ => io_reason(error),
        };
        AdminError::Connection { bootstrap: self.bootstrap.clone(), doing: doing.to_string(), reason }
    }

    fn protocol_error(&self, reason: String) -> AdminError {
        AdminError::Protocol { bootstrap: self.bootstrap.clone(), reason }
    }
}

/// Resolves `bootstrap` and connects to the first address that accepts, each attempt bounded by
/// [`ADMIN_CONNECT_TIMEOUT_MS`].
fn open(bootstrap: &str) -> Result<TcpStream, AdminError> {
    let connect_error = |reason: String| AdminError::Connect { bootstrap: bootstrap.to_string(), reason };
    let addresses: Vec<SocketAddr> = bootstrap
        .to_socket_addrs()
        .map_err(|error| connect_error(format!("cannot resolve it as HOST:PORT ({})", io_reason(&error))))?
        .collect();
    let mut last_reason = "it resolves to no address".to_string();
    for address in addresses {
        match TcpStream::connect_timeout(&address, Duration::from_millis(ADMIN_CONNECT_TIMEOUT_MS)) {
            Ok(stream) => {
                let configure = |stream: &TcpStream| -> std::io::Result<()> {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(Duration::from_millis(ADMIN_IO_TIMEOUT_MS)))?;
                    stream.set_write_timeout(Some(Duration::from_millis(ADMIN_IO_TIMEOUT_MS)))
                };
                configure(&stream).map_err(|error| connect_error(io_reason(&error)))?;
                return Ok(stream);
            }
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                last_reason = format!("no answer within {ADMIN_CONNECT_TIMEOUT_MS} ms");
            }
            Err(error) => last_reason = io_reason(&error),
        }
    }
    Err(connect_error(last_reason))
}

/// An I/O error as a short lowercase phrase: `connection refused`, not
/// `Connection refused (os error 111)`.
fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        kind @ (ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected
        | ErrorKind::AddrNotAvailable
        | ErrorKind::BrokenPipe
        | ErrorKind::TimedOut
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable) => kind.to_string(),
        _ => {
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut characters = text.chars();
            match characters.next() {
                Some(first) => first.to_lowercase().chain(characters).collect(),
                None => text,
            }
        }
    }
}

/// The API's name (`ListOffsets`) for messages.
fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|()| format!("API {key}"), |api| format!("{api:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_short_phrases() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let os = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&os), "no such file or directory");
    }

    #[test]
    fn an_address_without_a_port_is_refused_before_connecting() {
        let error = open("localhost").expect_err("no port");
        assert!(matches!(error, AdminError::Connect { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with("cannot connect to localhost: cannot resolve it as HOST:PORT"),
            "{error}"
        );
    }

    #[test]
    fn api_names_come_from_the_codec() {
        assert_eq!(api_name(ApiKey::ListOffsets as i16), "ListOffsets");
        assert_eq!(api_name(-7), "API -7");
    }
}
