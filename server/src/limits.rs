//! Server limits and defaults, each with its unit in its name.

/// Largest Kafka request frame accepted (Kafka's `socket.request.max.bytes` default).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 << 20;
/// Requests one Kafka connection may have in flight (librdkafka sends up to 5 produces).
pub const IN_FLIGHT_REQUESTS_MAX: usize = 32;
/// Connections accepted per shard per front door; more are closed at once.
pub const CONNECTIONS_MAX_PER_SHARD_DEFAULT: usize = 4096;
/// Capacity of each channel of the cross-shard mesh (messages, not bytes).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Upper bound on a Fetch long poll, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Partitions a single topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
/// Longest topic name Kafka allows.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// How often the retention task looks at every partition of a shard.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// io_uring ring depth per executor (GLOMMIO.md: up to 32768 works, 128-1024 is plenty).
pub const RING_DEPTH: usize = 512;
/// Registered I/O buffer memory per executor.
pub const IO_MEMORY_BYTES: usize = 8 << 20;

const _: () = assert!(RING_DEPTH <= 32_768);

/// Kafka's group.initial.rebalance.delay.ms default.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3_000;
/// Size at which an internal offsets partition is compacted by snapshot.
pub const OFFSETS_COMPACTION_BYTES_DEFAULT: u64 = 32 << 20;
