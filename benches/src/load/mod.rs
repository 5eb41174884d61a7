//! # The load generator behind `sluice-bench`
//!
//! A small Kafka client, a small RESP client and a small NATS client of its own, so what is
//! measured is the broker and not a client library: std threads and blocking sockets,
//! requests encoded once and replayed.
//!
//! - [`wire`]: frames, request encoding, response decoding, one blocking [`wire::Connection`],
//!   and [`wire::PreparedProduce`], a Produce request encoded once whose correlation id is
//!   patched in place for every send.
//! - [`admin`]: create the topic and wait until every partition has a leader.
//! - [`produce`]: the produce run. Per connection a sender thread and a receiver thread share
//!   the socket; at most `in_flight` requests are outstanding, answered in order. Closed loop
//!   sends as soon as a slot frees up; open loop (`rate`) sends on a fixed schedule and measures
//!   latency from the *intended* send time, so a stalled broker cannot hide its stall
//!   (coordinated omission).
//! - [`timeline`]: warm-up, measured window, when sending stops, the open-loop schedule; shared
//!   by every load.
//! - [`resp_wire`]: the RESP2 wire for the Redis Streams loads: commands, replies, one
//!   blocking [`resp_wire::RespConnection`], and [`resp_wire::PreparedXadd`], an XADD encoded
//!   once whose send-time field is patched in place.
//! - [`nats_wire`]: the NATS wire for the same loads against JetStream (`--nats`): the
//!   server's operations, [`nats_wire::PreparedPublish`] (a publish with its send time in a
//!   header and its sequence in the reply subject, both patched in place), and the JetStream
//!   API requests a run makes.
//! - [`socket`]: the blocking connection with a read buffer both text wires frame from.
//! - [`stats`]: latency histograms, the live progress line, percentiles.
//! - [`report`]: the human table and the JSON document.
//! - [`disk`]: what the disk under the data directory can do (sequential O_DIRECT writes,
//!   4 KiB write + fdatasync latency), to put the broker's figure next to.
//! - [`xadd`]: the RESP produce run, against sluice or redis-server: one thread per
//!   connection writes every XADD that is due in one write and reads the replies in order, up
//!   to `pipeline` outstanding; closed or open loop like [`produce`]. Each entry carries its
//!   send time.
//! - [`xreadgroup`]: a new consumer group read with XREADGROUP and XACK, alone or with
//!   [`xadd`] producers alongside: consume rate, and end-to-end latency from each entry's send
//!   time to its read.
//! - [`consume`]: fetch a topic from its earliest offsets, next to the loopback TCP bandwidth.
//! - [`limits`]: every bound, with its unit.
pub mod admin;
pub mod consume;
pub mod disk;
pub mod drain;
pub mod follow;
pub mod limits;
pub mod nats_wire;
pub mod produce;
pub mod report;
pub mod resp_wire;
pub mod socket;
pub mod stats;
pub mod timeline;
pub mod wire;
pub mod xadd;
pub mod xreadgroup;
