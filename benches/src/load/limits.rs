//! Every bound and default of the load generator, with its unit last.
use std::time::Duration;

/// Produce request version sent (v9: flexible; the broker serves 3..=9).
pub const PRODUCE_VERSION: i16 = 9;
/// Fetch request version sent (v12: the last one addressing topics by name).
pub const FETCH_VERSION: i16 = 12;
/// CreateTopics request version sent.
pub const CREATE_TOPICS_VERSION: i16 = 5;
/// Metadata request version sent.
pub const METADATA_VERSION: i16 = 9;
/// ListOffsets request version sent.
pub const LIST_OFFSETS_VERSION: i16 = 5;

/// Longest wait for any one response, and for any one blocking write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Produce `timeout_ms` sent to the broker (how long it may wait for the fdatasync).
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Largest response frame accepted; a bigger length prefix means a broken stream.
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;
/// How long the topic may take to show a leader for every partition.
pub const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two Metadata polls while waiting for the topic.
pub const TOPIC_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Connections (`--producers`, `--consumers`) one run may open.
pub const CONNECTIONS_MAX: usize = 256;
/// Requests one connection may have outstanding (the broker itself reads at most 32 ahead).
pub const IN_FLIGHT_MAX: usize = 1024;
/// Records in one pre-encoded batch.
pub const RECORDS_PER_BATCH_MAX: usize = 100_000;
/// Largest record value.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;
/// Memory for the pre-encoded requests of all connections together.
pub const PREPARED_REQUEST_BYTES_MAX: usize = 1 << 30;
/// Partitions of the benchmark topic.
pub const PARTITIONS_MAX: i32 = 10_000;
/// Topics one produce run may write.
pub const TOPICS_MAX: usize = 1_000;

/// Highest latency the histograms hold; a slower answer is recorded as this.
pub const LATENCY_US_MAX: u64 = 120_000_000;
/// Significant decimal digits of the latency histograms.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How often the progress line is printed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Block size of the sequential disk write test (and its alignment unit is a multiple of
/// [`DIRECT_IO_ALIGNMENT_BYTES`]).
pub const DISK_BLOCK_BYTES: usize = 1 << 20;
/// Alignment O_DIRECT needs for buffers, offsets and sizes (logical block size, 4 KiB is safe).
pub const DIRECT_IO_ALIGNMENT_BYTES: usize = 4096;
/// Bytes written by the sequential test unless it hits its time bound first.
pub const DISK_WRITE_BYTES_DEFAULT: u64 = 1 << 30;
/// Time bound of one sequential write test (the final fdatasync comes on top).
pub const DISK_WRITE_TIME_MAX: Duration = Duration::from_secs(4);
/// Writer threads of the parallel sequential test, each on its own file.
pub const DISK_WRITERS_DEFAULT: usize = 4;
/// Writer threads the disk test may start.
pub const DISK_WRITERS_MAX: usize = 64;
/// Size of each write in the fdatasync latency test.
pub const SYNC_WRITE_BYTES: usize = 4096;
/// Samples of each fdatasync latency test unless it hits its time bound first (enough for a
/// p99.9 on a disk that syncs in 0.1-0.3 ms).
pub const SYNC_SAMPLES_DEFAULT: usize = 20_000;
/// Time bound of each fdatasync latency test (idle, then with the cores busy).
pub const SYNC_TIME_MAX: Duration = Duration::from_secs(3);

/// How long the loopback TCP bandwidth is measured.
pub const LOOPBACK_MEASURE_TIME: Duration = Duration::from_secs(2);
/// Size of each write and read of the loopback measurement.
pub const LOOPBACK_CHUNK_BYTES: usize = 1 << 20;
/// Fetch `max_bytes` for a whole response.
pub const FETCH_RESPONSE_BYTES_MAX: i32 = 64 << 20;
/// Fetch `partition_max_bytes` unless `--fetch-partition-bytes` says otherwise.
pub const FETCH_PARTITION_BYTES_DEFAULT: i32 = 8 << 20;
/// Fetch `max_wait_ms`: how long the broker may hold a fetch that found nothing.
pub const FETCH_WAIT_MS: i32 = 500;
/// Fetch `max_wait_ms` of consumers that follow a produce run: also how often an idle one
/// checks whether the run is over.
pub const FOLLOW_FETCH_WAIT_MS: i32 = 100;

/// Error descriptions a report keeps (the count of errors is exact, the list is a sample).
pub const ERROR_SAMPLES_MAX: usize = 8;

/// Room a RESP or NATS read buffer grows by; a connection reads up to this much per call.
pub const SOCKET_READ_BUFFER_BYTES: usize = 64 << 10;
/// Largest RESP reply accepted; a longer bulk string or a bigger unparsed backlog means a
/// broken stream.
pub const RESP_REPLY_BYTES_MAX: usize = 256 << 20;
/// Longest NATS protocol line accepted from the server (nats-server's own `max_control_line`
/// default).
pub const NATS_CONTROL_LINE_BYTES_MAX: usize = 4 << 10;
/// Largest NATS message accepted (the protocol's own ceiling for `max_payload`).
pub const NATS_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// Deepest nesting of RESP arrays accepted (XREADGROUP's replies are 4 deep).
pub const RESP_REPLY_DEPTH_MAX: usize = 8;
/// Commands one RESP connection may have outstanding (sluice's `RESP_IN_FLIGHT_COMMANDS_MAX`).
pub const PIPELINE_MAX: usize = 1024;
/// Entries one XREADGROUP may ask for.
pub const READ_COUNT_MAX: usize = 100_000;
/// Entries one XREADGROUP asks for unless `--count` says otherwise.
pub const READ_COUNT_DEFAULT: usize = 100;
/// XREADGROUP BLOCK unless `--block-ms` says otherwise: also how often an idle consumer checks
/// whether the run is over.
pub const READ_BLOCK_MS_DEFAULT: u64 = 100;
/// Longest XREADGROUP BLOCK accepted (a consumer must notice the end of the run).
pub const READ_BLOCK_MS_MAX: u64 = 10_000;
/// How long past its expiry a JetStream consumer waits for a pull's end (its batch, or the
/// server's 408) before it counts the pull as over and sends the next.
pub const PULL_EXPIRY_GRACE: Duration = Duration::from_millis(100);
/// After the producers stop, how long the consumers may take to read what they acknowledged.
pub const CONSUME_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

const _: () = assert!(DISK_BLOCK_BYTES % DIRECT_IO_ALIGNMENT_BYTES == 0);
const _: () = assert!(SYNC_WRITE_BYTES % DIRECT_IO_ALIGNMENT_BYTES == 0);
const _: () = assert!(FETCH_PARTITION_BYTES_DEFAULT <= FETCH_RESPONSE_BYTES_MAX);
const _: () = assert!((FETCH_RESPONSE_BYTES_MAX as usize) < RESPONSE_BYTES_MAX);
const _: () = assert!(READ_COUNT_DEFAULT <= READ_COUNT_MAX);
const _: () = assert!(READ_BLOCK_MS_DEFAULT <= READ_BLOCK_MS_MAX);
const _: () = assert!((READ_BLOCK_MS_MAX as u128) < IO_TIMEOUT.as_millis(), "a blocked read answers in time");
