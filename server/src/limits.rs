//! Server limits and defaults, each with its unit in its name.

/// Largest Kafka request frame accepted (Kafka's `socket.request.max.bytes` default).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 << 20;
/// Bytes of requests the broker holds at once, both front doors, all shards (see
/// `request_memory`); Kafka's `queued.max.request.bytes`, unbounded there by default.
pub const REQUEST_MEMORY_BYTES_MAX_DEFAULT: usize = 256 << 20;
/// Bytes per second of catch-up reads from segment files while producers write, all shards
/// (see `catch_up_rate`). Measured on this repository's 2-core VM disk (one cold replay of two
/// consumers next to an acks=all producer at 20k msgs/s): unlimited, the producer's p99 went
/// from 20-75 ms to 2.1-2.6 s; at 100 MB/s it was 38 ms, at 400 MB/s 158 ms.
pub const CATCH_UP_READ_BYTES_PER_SEC_MAX_DEFAULT: u64 = 100 << 20;
/// Requests one Kafka connection may have in flight (librdkafka sends up to 5 produces).
pub const IN_FLIGHT_REQUESTS_MAX: usize = 32;
/// Connections accepted per shard per front door; more are closed at once.
pub const CONNECTIONS_MAX_PER_SHARD_DEFAULT: usize = 4096;
/// Once the first byte of a request arrived, the whole request must arrive within this, or the
/// connection is closed (slowloris). Kafka clients give up on a request after their own
/// `request.timeout.ms`, 30 s by default, so a request slower than that is of no use to them.
pub const REQUEST_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// A connection with no request arriving and nothing to answer is closed after this, and so is
/// one whose client reads no response for this long (Kafka's `connections.max.idle.ms`).
pub const CONNECTION_IDLE_TIMEOUT_MS_DEFAULT: u64 = 600_000;
/// Largest value either timeout accepts (a week): beyond it a deadline is "never" in practice,
/// and `Instant` arithmetic stays far from overflowing.
pub const CONNECTION_TIMEOUT_MS_MAX: u64 = 7 * 24 * 3600 * 1000;
/// Least time between two warnings about refused connections on one shard and front door, so
/// a connection flood does not flood the log too.
pub const CONNECTIONS_REFUSED_WARNING_INTERVAL_MS: u64 = 10_000;
/// Capacity of each channel of the cross-shard mesh (messages, not bytes).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Upper bound on a Fetch long poll, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Record bytes one Fetch response holds at most, whatever its `max_bytes` asks (Kafka's broker
/// `fetch.max.bytes`, 55 MiB there; clients ask for 50 MiB by default). The first batch goes
/// out whole even when it is larger, so a consumer always progresses.
pub const FETCH_RESPONSE_BYTES_MAX: usize = 32 << 20;
/// Bytes the records of one compressed batch may expand to when the broker opens it (a Redis
/// client reading a Kafka-produced stream, ListOffsets by timestamp). A batch expanding past
/// it is not read: its entries are skipped, and a timestamp lookup answers the batch's first
/// offset. 64 times the 1 MiB batches Kafka clients send by default.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 << 20;
/// Bytes of built responses a connection holds for a client that has not taken them yet:
/// past this a Kafka Fetch waits before it reads, and a RESP connection runs no further
/// command, so a client reading slowly or not at all holds at most this plus one response.
pub const CONNECTION_UNSENT_BYTES_MAX: usize = 4 << 20;
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
const _: () = assert!(REQUEST_READ_TIMEOUT_MS_DEFAULT <= CONNECTION_IDLE_TIMEOUT_MS_DEFAULT);
const _: () = assert!(CONNECTION_IDLE_TIMEOUT_MS_DEFAULT <= CONNECTION_TIMEOUT_MS_MAX);

/// Kafka's group.initial.rebalance.delay.ms default.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3_000;
/// Size at which an internal offsets partition is compacted by snapshot.
pub const OFFSETS_COMPACTION_BYTES_DEFAULT: u64 = 32 << 20;

/// Largest RESP request (one command with its arguments) a connection may buffer.
pub const RESP_REQUEST_BYTES_MAX: usize = 64 << 20;
/// Longest inline command line (a command typed into telnet or `nc`, not a RESP array), as
/// Redis's PROTO_INLINE_MAX_SIZE.
pub const RESP_INLINE_BYTES_MAX: usize = 64 << 10;
/// Commands one transaction (MULTI ... EXEC) may queue, and the bytes of their words: the same
/// bytes as one request may hold, so a transaction holds no more memory than one command can.
pub const RESP_TRANSACTION_COMMANDS_MAX: usize = 100_000;
pub const RESP_TRANSACTION_BYTES_MAX: usize = RESP_REQUEST_BYTES_MAX;
/// Commands one RESP connection may have in flight (pipelined XADDs waiting for fsync).
pub const RESP_IN_FLIGHT_COMMANDS_MAX: usize = 1024;
/// Pipelined XADDs to one stream a connection sends to the owner as one batch: at most this
/// many entries, and this many bytes of fields (below the default max.message.bytes, so one
/// batch usually fits; the owner splits it when a stream's limit is smaller).
pub const RESP_XADD_GATHER_ENTRIES_MAX: usize = 1024;
pub const RESP_XADD_GATHER_BYTES_MAX: usize = 256 << 10;
/// Replies gathered into one socket write.
pub const RESP_WRITE_BATCH_BYTES: usize = 64 << 10;
/// Entries one XRANGE/XREVRANGE/XREAD reply may hold; a range past it without COUNT is refused.
pub const RESP_RANGE_ENTRIES_MAX: usize = 100_000;
/// Field bytes (names and values) of the stream entries one reply carries at most, as Fetch's
/// `FETCH_RESPONSE_BYTES_MAX`: XREAD returns fewer entries than COUNT past it, XRANGE and
/// XREVRANGE are refused with a hint to ask for fewer. One entry goes out whatever its size.
pub const RESP_REPLY_BYTES_MAX: usize = 32 << 20;
/// Bytes read from a stream per fetch while scanning it.
pub const RESP_SCAN_READ_BYTES: usize = 1 << 20;
/// Upper bound on XREAD BLOCK, whatever the client asks (0, "forever", waits in rounds of it).
pub const RESP_BLOCK_ROUND_MS: u64 = 30_000;
/// How often a blocked XREAD looks again for streams that did not exist when it started.
pub const RESP_MISSING_STREAM_RECHECK_MS: u64 = 100;
/// Commands that may wait in XREAD/XREADGROUP BLOCK at once, per shard.
pub const RESP_BLOCKED_CLIENTS_MAX_PER_SHARD: usize = 1024;

// The admin CLI (`sluice topic|group|produce|consume`): a blocking client of a running broker.

/// Broker the admin commands talk to when neither `--bootstrap` nor `SLUICE_BOOTSTRAP` is given.
pub const ADMIN_BOOTSTRAP_DEFAULT: &str = "127.0.0.1:9092";
/// How long an admin command waits for the TCP connection to the broker.
pub const ADMIN_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long an admin command waits for the answer to its first request (ApiVersions). A Kafka
/// broker answers at once; something else listening at that address may never answer.
pub const ADMIN_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// The `timeout_ms` the admin CLI gives the broker for CreateTopics, DeleteTopics and Produce.
pub const ADMIN_BROKER_TIMEOUT_MS: i32 = 30_000;
/// Long poll of each Fetch round of `sluice consume`: how often it looks at its idle timeout.
pub const CONSUME_FETCH_WAIT_MS: i32 = 500;
/// How long the admin CLI waits for any answer: the broker's own timeout or a fetch's long
/// poll, and then some.
pub const ADMIN_IO_TIMEOUT_MS: u64 = 40_000;
/// Largest response frame the admin CLI reads: a Fetch answer may carry one batch of the
/// largest `max.message.bytes` (1 GiB) whatever the fetch asked for.
pub const ADMIN_RESPONSE_BYTES_MAX: usize = (1 << 30) + (1 << 20);
/// Bytes one Fetch of `sluice consume` asks for, in all and per partition.
pub const CONSUME_FETCH_BYTES_MAX: i32 = 16 << 20;
pub const CONSUME_PARTITION_FETCH_BYTES_MAX: i32 = 4 << 20;
/// Default of `sluice consume --timeout-ms`: stop after this long without a new record.
pub const CONSUME_IDLE_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Records and bytes `sluice produce` puts in one batch (one Produce request); a line that is
/// longer than the byte bound goes alone.
pub const PRODUCE_BATCH_RECORDS_MAX: usize = 1_000;
pub const PRODUCE_BATCH_BYTES_MAX: usize = 512 << 10;
/// Longest line (one record) `sluice produce` reads from stdin.
pub const PRODUCE_LINE_BYTES_MAX: usize = 16 << 20;
/// Read buffer on stdin: lines already in it are batched together, so piped input goes out
/// in full batches while typed lines go out one by one.
pub const PRODUCE_STDIN_BUFFER_BYTES: usize = 1 << 20;

const _: () = assert!(ADMIN_IO_TIMEOUT_MS > ADMIN_BROKER_TIMEOUT_MS as u64);
const _: () = assert!(ADMIN_IO_TIMEOUT_MS > CONSUME_FETCH_WAIT_MS as u64);
const _: () = assert!((CONSUME_FETCH_WAIT_MS as u64) < FETCH_WAIT_MS_MAX);
const _: () = assert!(CONSUME_PARTITION_FETCH_BYTES_MAX <= CONSUME_FETCH_BYTES_MAX);
const _: () = assert!(PRODUCE_BATCH_BYTES_MAX <= PRODUCE_STDIN_BUFFER_BYTES);
