//! # sluice-server: the broker
//!
//! A produce enters a connection on any shard, is routed to the owning shard over the mesh,
//! appended, group-fsynced and acknowledged:
//!
//! ```text
//! kafka::serve_connection -> registry::dispatch -> handlers::produce
//!   -> handlers::scatter (routing::owner) -> Shard::call -> [mesh] -> Shard::produce
//!   -> Partition::append -> flusher (write + fdatasync) -> Partition::wait_durable -> reply
//! ```
//!
//! - [`runtime`]: glommio executors (one per core), the channel mesh, routing, the shard.
//! - [`accept`]: both doors' accept loops, and the spread of connections over the shards.
//! - [`kafka`]: the Kafka wire protocol front door, one handler file per API.
//! - [`resp`]: the Redis front door.
//! - [`coordinator`]: consumer groups and committed offsets of the groups a shard coordinates.
//! - [`metadata`]: the topic catalogue (one writer: shard 0) and its snapshots.
//! - [`catch_up_rate`]: the cap on bytes a shard sends from segment files to consumers catching up.
//! - [`request_memory`]: the budget for the bytes of requests a shard holds at once.
//! - [`metrics`]: per-shard counters and histograms, merged into Prometheus text on a scrape.
//! - [`config`]: flags, `SLUICE_*` variables and the TOML file.
//! - [`data_dir`]: the lock that keeps a second broker or `verify` off a data directory in use.
//! - [`fuzzing`]: the fuzz targets' bodies, shared with the corpus replay in the test suite.
//! - [`verify`]: `sluice verify`, the offline check of a stopped broker's data directory.
//! - [`admin`]: `sluice topic|group|produce|consume`, a blocking Kafka client of a running broker.
pub mod accept;
pub mod admin;
pub mod balance;
pub mod catch_up_rate;
pub mod compression;
pub mod config;
pub mod coordinator;
pub mod data_dir;
pub mod fuzzing;
pub mod http;
pub mod kafka;
pub mod limits;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod process;
pub mod request_memory;
pub mod resp;
pub mod runtime;
pub mod stream_groups;
pub mod verify;
