//! Work queues on streams: Redis stream consumer groups (pending entries lists, delivery
//! counts, claims) plus what Redis lacks (a dead-letter stream after N deliveries, redelivery
//! of entries idle past a visibility timeout). No I/O here:
//! - [`group`]: one group's state and the events that change it (`apply`), with the queries
//!   commands need to decide which events to emit;
//! - [`codec`]: events as the records of the stream's group log (`state_log`), replayed at start.
pub mod codec;
pub mod group;
