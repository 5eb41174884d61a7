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
/// Partitions the broker holds in all (each is open files and memory on its shard).
pub const PARTITIONS_PER_BROKER_MAX: u32 = 20_000;
/// Topics one Metadata request may create (auto.create.topics.enable); the rest are answered
/// UNKNOWN_TOPIC_OR_PARTITION and a client asks again.
pub const AUTO_CREATED_TOPICS_PER_REQUEST_MAX: usize = 64;

const _: () = assert!(PARTITIONS_PER_TOPIC_MAX <= PARTITIONS_PER_BROKER_MAX);
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

/// Largest RESP request (one command with its arguments) a connection may buffer.
pub const RESP_REQUEST_BYTES_MAX: usize = 64 << 20;
/// Commands one RESP connection may have in flight (pipelined XADDs waiting for fsync).
pub const RESP_IN_FLIGHT_COMMANDS_MAX: usize = 1024;
/// Replies gathered into one socket write.
pub const RESP_WRITE_BATCH_BYTES: usize = 64 << 10;
/// Entries one XRANGE/XREVRANGE/XREAD reply may hold; a range past it without COUNT is refused.
pub const RESP_RANGE_ENTRIES_MAX: usize = 100_000;
/// Bytes read from a stream per fetch while scanning it.
pub const RESP_SCAN_READ_BYTES: usize = 1 << 20;
/// Upper bound on XREAD BLOCK, whatever the client asks (0, "forever", waits in rounds of it).
pub const RESP_BLOCK_ROUND_MS: u64 = 30_000;
/// How often a blocked XREAD looks again for streams that did not exist when it started.
pub const RESP_MISSING_STREAM_RECHECK_MS: u64 = 100;
/// Commands that may wait in XREAD/XREADGROUP BLOCK at once, per shard.
pub const RESP_BLOCKED_CLIENTS_MAX_PER_SHARD: usize = 1024;
