//! The Kafka front door: frame (4-byte length) -> request header -> handler -> response.
//!
//! A connection is served by the shard `accept` placed it on (the one serving fewest);
//! handlers route partition work to owner shards. Requests on one connection are answered in
//! order. Bad input never panics: an absurd length closes the connection before anything is
//! allocated, a malformed frame closes the connection, the broker carries on. A slow or silent
//! client is dropped too (`net::Timeouts`): a request must arrive whole within
//! `request-read-timeout-ms` of its first byte, and a connection with no request and no
//! response in flight for `connection-idle-timeout-ms` is closed, like Kafka's
//! `connections.max.idle.ms`; so is one whose client takes no response bytes for as long.
pub mod errors;
pub mod handlers;
pub mod registry;
pub mod response;

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use glommio::net::{TcpListener, TcpStream};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::runtime::ShardRef;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use registry::{DispatchError, OrderPoint, RequestContext};
use response::{frame_bytes, Part, ResponseBuffer};

use crate::catch_up_rate::CatchUpRate;
use crate::limits::{CONNECTION_UNSENT_BYTES_MAX, IN_FLIGHT_REQUESTS_MAX};
use crate::metrics::{Dropped, Protocol};
use crate::net::{self, Timeouts};
use crate::request_memory::{Allowance, NoRoom, REQUEST_MEMORY_STEP_BYTES};

/// Smallest frame that can hold a request header (api key, version, correlation id).
const REQUEST_HEADER_BYTES_MIN: usize = 8;

pub fn listen(shard: ShardRef) -> Result<glommio::Task<()>, String> {
    let address = shard.config.kafka_listen;
    let listener = TcpListener::bind(address)
        .map_err(|error| format!("cannot listen for Kafka on {address}: {}", std::io::Error::from(error)))?;
    if shard.id == 0 {
        tracing::info!(%address, "Kafka listener ready");
    }
    Ok(glommio::spawn_local(crate::accept::accept_loop(shard, listener, Protocol::Kafka)))
}

/// Serves one connection until it ends (`accept::serve` counts it).
pub async fn serve(shard: &ShardRef, stream: TcpStream) {
    let peer = stream.peer_addr().map(|address| address.to_string()).unwrap_or_default();
    if let Err(reason) = serve_connection(shard, stream).await {
        if let Closed::Dropped(dropped) = reason {
            shard.metrics.connection_dropped(Protocol::Kafka, dropped);
        }
        tracing::debug!(%peer, %reason, "Kafka connection closed");
    }
}

/// Why a connection ended.
enum Closed {
    Io(std::io::Error),
    Protocol(String),
    /// The broker gave up on a slow or silent client.
    Dropped(Dropped),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::Protocol(reason) => write!(f, "{reason}"),
            Self::Dropped(reason) => write!(f, "dropped by the broker: {}", reason.label()),
        }
    }
}

/// A connection is two tasks: this one reads requests and starts a handler task for each (up to
/// `IN_FLIGHT_REQUESTS_MAX` at once), waiting only until the handler's order point (Produce:
/// its appends) before reading on; the writer task answers in request order. So a producer's
/// next request appends while the previous one waits for its fdatasync.
async fn serve_connection(shard: &ShardRef, mut stream: TcpStream) -> Result<(), Closed> {
    stream.set_nodelay(true).map_err(|error| Closed::Io(error.into()))?;
    let timeouts = Timeouts::of(&shard.config);
    let writer_stream = net::duplicate(&stream).map_err(Closed::Io)?;
    timeouts.apply_to_writer(&writer_stream).map_err(Closed::Io)?;
    let (pending_sender, pending_receiver) = local_channel::new_bounded(IN_FLIGHT_REQUESTS_MAX);
    let in_flight = Rc::new(InFlight::default());
    let writer = glommio::spawn_local(write_responses(
        shard.clone(),
        writer_stream,
        pending_receiver,
        in_flight.clone(),
        timeouts,
    ));
    // Kafka shows a client's host as "/<ip>" (DescribeGroups).
    let client_host: Rc<str> =
        stream.peer_addr().map_or_else(|_| "".into(), |address| format!("/{}", address.ip()).into());
    let connection = Connection { shard, client_host, timeouts, in_flight, request_allowance: Allowance::default() };
    let read_result = read_requests(&connection, &mut stream, pending_sender).await;
    if let Err(Closed::Dropped(_)) = read_result {
        // Wake the writer, which may wait for a client that reads nothing either.
        let _ = stream.shutdown(std::net::Shutdown::Both).await;
    }
    let write_result = writer.await;
    read_result.and(write_result)
}

/// What the reader of one connection knows. Lives in the connection's tasks; never shared.
struct Connection<'a> {
    shard: &'a ShardRef,
    client_host: Rc<str>,
    timeouts: Timeouts,
    in_flight: Rc<InFlight>,
    /// Shared by the connection's requests in flight.
    request_allowance: Allowance,
}

/// What a connection's reader, handlers and writer share. Lives in the connection's tasks.
struct InFlight {
    /// Requests read and not yet answered (the writer counts them down): while any is, the
    /// connection is not idle (a Fetch long poll). Also the bytes of built, unsent responses.
    owed: net::Owed,
    /// Fetches take turns: one reads (or long-polls) at a time, and only once the responses
    /// built before it fit in `CONNECTION_UNSENT_BYTES_MAX`. Kafka clients send one fetch at a
    /// time anyway; one that pipelines fetches and reads none of them cannot make the broker
    /// read the log into memory for each (Kafka itself reads no request on a connection until
    /// the previous response is sent).
    fetch_turns: glommio::sync::Semaphore,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { owed: net::Owed::default(), fetch_turns: glommio::sync::Semaphore::new(1) }
    }
}

/// A response frame as parts (see `response::ResponseBuffer`), or none (acks=0).
type PendingResponse = glommio::Task<Result<Option<Vec<Part>>, Closed>>;

async fn read_requests(
    connection: &Connection<'_>,
    stream: &mut TcpStream,
    pending: LocalSender<PendingResponse>,
) -> Result<(), Closed> {
    let shard = connection.shard;
    let mut length_prefix = [0u8; 4];
    loop {
        let idle = connection.timeouts.idle;
        let first_read = match net::wait_for_request(stream, &mut length_prefix, idle, &connection.in_flight.owed).await
        {
            Ok(0) => return Ok(()), // the client closed the connection
            Ok(read) => read,
            Err(error) if net::is_timeout(&error) => return Err(Closed::Dropped(Dropped::IdleTimeout)),
            Err(error) => return Err(Closed::Io(error)),
        };
        let deadline = Instant::now() + connection.timeouts.request_read;
        net::read_exact_before(stream, &mut length_prefix[first_read..], deadline).await.map_err(request_read_error)?;
        let length = i32::from_be_bytes(length_prefix);
        if length < REQUEST_HEADER_BYTES_MIN as i32 || length as usize > shard.config.request_bytes_max {
            return Err(Closed::Protocol(format!(
                "request length {length} outside {REQUEST_HEADER_BYTES_MIN}..={}",
                shard.config.request_bytes_max
            )));
        }
        // The frame's bytes are charged to the shard's request memory as they arrive, and
        // given back once the request is handled.
        let length = length as usize;
        let mut frame = BytesMut::with_capacity(length);
        let mut charge = shard.request_memory.charge(&connection.request_allowance);
        while frame.len() < length {
            let step_end = length.min(frame.len() + REQUEST_MEMORY_STEP_BYTES);
            charge
                .cover(&shard.request_memory, step_end, deadline)
                .await
                .map_err(|NoRoom| Closed::Dropped(Dropped::RequestMemory))?;
            net::fill_before(stream, &mut frame, step_end, deadline).await.map_err(request_read_error)?;
        }
        let (order, ordered) = OrderPoint::new();
        let handler = glommio::spawn_local({
            let (shard, client_host) = (shard.clone(), connection.client_host.clone());
            let in_flight = connection.in_flight.clone();
            async move {
                let response = handle_frame(&shard, &client_host, &in_flight, frame.freeze(), order).await;
                drop(charge);
                response
            }
        });
        connection.in_flight.owed.owe(1);
        if pending.send(handler).await.is_err() {
            return Ok(()); // the writer stopped (and said why)
        }
        let _ = ordered.await;
    }
}

fn request_read_error(error: std::io::Error) -> Closed {
    if net::is_timeout(&error) {
        Closed::Dropped(Dropped::RequestReadTimeout)
    } else {
        Closed::Io(error)
    }
}

async fn write_responses(
    shard: ShardRef,
    stream: TcpStream,
    pending: LocalReceiver<PendingResponse>,
    in_flight: Rc<InFlight>,
    timeouts: Timeouts,
) -> Result<(), Closed> {
    let mut next = pending.recv().await;
    while let Some(handler) = next.take() {
        // This response, and those after it that are answered already (at most the
        // connection's requests in flight): one write for all.
        let mut answered = vec![handler.await];
        while let Some(mut handler) = futures_lite::future::poll_once(pending.recv()).await.flatten() {
            match futures_lite::future::poll_once(&mut handler).await {
                Some(answer) => answered.push(answer),
                None => {
                    next = Some(handler);
                    break;
                }
            }
        }
        let frames: Vec<&[Part]> =
            answered.iter().map_while(|answer| answer.as_ref().ok()).flatten().map(Vec::as_slice).collect();
        let written = write_frames(&stream, &frames, timeouts.idle, &shard.catch_up_rate).await.map_err(|error| {
            if net::is_timeout(&error) {
                Closed::Dropped(Dropped::WriteTimeout)
            } else {
                Closed::Io(error)
            }
        });
        for parts in &frames {
            in_flight.owed.sent(frame_bytes(parts));
        }
        in_flight.owed.paid(answered.len());
        let result = written.and(answered.into_iter().find_map(Result::err).map_or(Ok(()), Err));
        if let Err(closed) = result {
            in_flight.owed.writer_stopped();
            // Wake the reader, which may be waiting for a request that will never come.
            let _ = stream.shutdown(std::net::Shutdown::Both).await;
            drop(next);
            net::drain_until_reader_ends(pending).await;
            return Err(closed);
        }
        if next.is_none() {
            next = pending.recv().await;
        }
    }
    Ok(())
}

/// Writes response frames in order: bytes in memory gathered into as few sendmsg calls as
/// the socket allows, file ranges with sendfile at the shard's catch-up `rate`. A write the
/// client takes nothing of for `stalled_max` fails with `TimedOut` (the write timeout).
async fn write_frames(
    stream: &TcpStream,
    frames: &[&[Part]],
    stalled_max: Duration,
    rate: &CatchUpRate,
) -> std::io::Result<()> {
    let mut buffers = Vec::new();
    for part in frames.iter().copied().flatten() {
        match part {
            Part::Memory(bytes) => buffers.push(&bytes[..]),
            Part::File(range) => {
                net::send_buffers(stream, &buffers, stalled_max).await?;
                buffers.clear();
                net::send_file(stream, &range.file, range.position, range.length_bytes, stalled_max, rate).await?
            }
        }
    }
    net::send_buffers(stream, &buffers, stalled_max).await
}

/// Answers one request frame: `Ok(None)` when the API sends no response. A Fetch first waits
/// for its turn on the connection (`InFlight::fetch_turns`); the response's bytes are counted
/// as unsent before the turn passes on, so the next fetch sees them.
async fn handle_frame(
    shard: &ShardRef,
    client_host: &str,
    in_flight: &InFlight,
    frame: Bytes,
    order: OrderPoint,
) -> Result<Option<Vec<Part>>, Closed> {
    let _fetch_turn = if i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::Fetch as i16 {
        // The semaphore lives as long as the connection and is never closed.
        let turn = in_flight.fetch_turns.acquire_permit(1).await.ok();
        if !in_flight.owed.wait_for_room(CONNECTION_UNSENT_BYTES_MAX).await {
            return Ok(None); // the writer stopped: nobody will read this answer
        }
        turn
    } else {
        None
    };
    let answer = answer_frame(shard, client_host, frame, order).await;
    if let Ok(Some(parts)) = &answer {
        in_flight.owed.built(frame_bytes(parts));
    }
    answer
}

async fn answer_frame(
    shard: &ShardRef,
    client_host: &str,
    mut frame: Bytes,
    order: OrderPoint,
) -> Result<Option<Vec<Part>>, Closed> {
    let started = Instant::now();
    let frame_bytes = frame.len();
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|()| Closed::Protocol(format!("unknown API key {raw_key}")))?;
    let api_index = registry::SUPPORTED.iter().position(|support| support.key == key);
    let supported = api_index.map(|index| registry::SUPPORTED[index]);
    let Some(support) = supported.filter(|s| (s.min_version..=s.max_version).contains(&version)) else {
        if key == ApiKey::ApiVersions {
            // The protocol's rule: answer an unknown ApiVersions version with a v0 response
            // carrying UNSUPPORTED_VERSION and our ranges, so the client can retry.
            return unsupported_api_versions(correlation_id).map(Some);
        }
        return Err(Closed::Protocol(format!("{key:?} v{version} is not supported")));
    };
    debug_assert!(support.key == key);
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|error| Closed::Protocol(format!("malformed {key:?} request header: {error}")))?;
    let mut out = response_buffer(correlation_id, key.response_header_version(version))?;
    let context = RequestContext {
        shard: shard.clone(),
        client_id: header.client_id.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        client_host: client_host.to_string(),
        frame_bytes,
        file_ranges: Default::default(),
    };
    drop(header); // (its client id is a slice of the frame)
    let dispatched = registry::dispatch(&context, key, version, frame, &mut out, order).await;
    if let Some(api_index) = api_index {
        shard.metrics.kafka_request(api_index, started.elapsed());
    }
    match dispatched {
        Ok(true) => Ok(Some(out.finish())),
        Ok(false) => Ok(None),
        Err(error @ DispatchError::Decode(_)) => {
            let client = &context.client_id;
            Err(Closed::Protocol(format!("{key:?} v{version} from client '{client}': {error}")))
        }
        Err(error) => Err(Closed::Protocol(error.to_string())),
    }
}

fn response_buffer(correlation_id: i32, header_version: i16) -> Result<ResponseBuffer, Closed> {
    let mut out = ResponseBuffer::new();
    out.put_i32(0); // length, filled in by finish
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|error| Closed::Protocol(format!("cannot encode response header: {error}")))?;
    Ok(out)
}

fn unsupported_api_versions(correlation_id: i32) -> Result<Vec<Part>, Closed> {
    let mut out = response_buffer(correlation_id, 0)?;
    let response: ApiVersionsResponse = handlers::api_versions::response(errors::UNSUPPORTED_VERSION);
    response.encode(&mut out, 0).map_err(|error| Closed::Protocol(error.to_string()))?;
    Ok(out.finish())
}
