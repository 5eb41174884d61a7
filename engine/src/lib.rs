//! # sluice-engine: the storage of Sluice
//!
//! Storage only, no sockets. A topic partition is an append-only log of Kafka RecordBatch v2
//! bytes, exactly as producers sent them (only `baseOffset` is patched), split into segment
//! files with sparse offset and time indexes.
//!
//! ## Where to start reading
//! - [`record::batch`]: the batch format and its validation (CRC-32C, lengths, counts).
//! - [`partition::Partition`]: append, group-commit flush, read, offsets by time, retention;
//!   [`partition::read_ahead`] reads ahead of sequential cold readers.
//! - [`segment`]: the direct-I/O appender, the reader and crash recovery.
//! - [`index`]: the sparse offset and time indexes.
//! - [`page_cache`]: what the page cache holds (cachestat) and reading it in place (mmap).
//! - [`manifest`]: the topic catalogue, persisted atomically with flatbuffers.
//! - [`metrics`]: fixed-bucket histograms; fdatasync latency and group-commit size per shard.
//! - [`fuzzing`]: the fuzz targets' bodies, shared with the corpus replay in the test suite.
//!
//! ## Durability contract
//! - **appended**: the batch has offsets and is ordered in memory (what acks=1 waits for).
//! - **flushed and synced**: the partition's flusher wrote it with direct I/O and fdatasync
//!   returned (what acks=all waits for). Only synced batches are visible to readers, so the
//!   high watermark never moves backwards, even across kill -9 or power loss.
//! - **recovered**: at open, each segment is scanned from its last index entry; the first batch
//!   with a bad length, CRC or offset ends the log and the file is truncated there.
//! - **failed**: a write or sync error rolls the partition back to the durable offset; appends
//!   not yet durable get `PartitionError::Storage`, and the next write starts again at the
//!   durable end, zeroing what the failed one left past it. Tests inject such errors with
//!   [`segment::faults`].
//!
//! Every structure here lives on one shard (glommio executor) and is never shared between
//! threads: `Rc` and `RefCell`, no locks.
pub mod fs;
pub mod fuzzing;
pub mod group;
pub mod index;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod page_cache;
pub mod partition;
pub mod queue;
pub mod record;
pub mod segment;
pub mod state_log;
pub mod stream;
pub mod sync;
