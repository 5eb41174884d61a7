//! The typed messages shards exchange over the channel mesh. Each request carries a one-shot
//! reply channel; record bytes travel as `Bytes` (reference-counted, never copied).
use std::sync::Arc;

use bytes::Bytes;
use sluice_engine::partition::{PartitionError, Records};
use sluice_engine::stream::id::{AssignError, IdRequest, StreamId};

use crate::coordinator::{GroupAnswer, GroupCall};
use crate::metadata::{ConfigChanges, Metadata, NewTopic, TopicChangeError, TopicChangeResult};

/// (topic, partition).
pub type TopicPartition = (String, i32);

/// A partition-level failure as the owner shard reports it; each front door maps it to its
/// protocol's error in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardError {
    UnknownTopicOrPartition,
    Partition(PartitionError),
}

impl From<PartitionError> for ShardError {
    fn from(error: PartitionError) -> Self {
        Self::Partition(error)
    }
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownTopicOrPartition => write!(f, "unknown topic or partition"),
            Self::Partition(error) => write!(f, "{error}"),
        }
    }
}

/// A new stream entry: its ID and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAdded {
    pub id: StreamId,
    pub offset: i64,
}

/// One XADD's entry: the ID it asks for and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: IdRequest,
    pub fields: Vec<(Bytes, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamAddError {
    Id(AssignError),
    Shard(ShardError),
}

impl From<ShardError> for StreamAddError {
    fn from(error: ShardError) -> Self {
        Self::Shard(error)
    }
}

impl From<PartitionError> for StreamAddError {
    fn from(error: PartitionError) -> Self {
        Self::Shard(ShardError::Partition(error))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
}

/// What a Kafka fetch gets from one partition: batches in memory or a checked range of a
/// segment file that the connection sends with sendfile.
#[derive(Debug, Clone)]
pub struct FetchedToSend {
    pub records: Records,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// What a stream read gets: the batches, and the runs `start..end` of offsets in them that
/// XDEL deleted (entries to skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    pub fetched: Fetched,
    pub deleted: Vec<(i64, i64)>,
}

/// Where a ListOffsets query landed: an offset and the timestamp found (-1 when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAt {
    pub offset: i64,
    pub timestamp: i64,
}

/// Special ListOffsets timestamps (Kafka's).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

pub enum ShardRequest {
    /// Append batches (one `records` field per partition); `acks` -1 waits for fdatasync.
    /// `appended` fires once every batch is appended (ordered), before any waiting.
    Produce {
        acks: i16,
        writes: Vec<(TopicPartition, Bytes)>,
        appended: Option<futures::channel::oneshot::Sender<()>>,
    },
    /// Reads in order, each up to its byte limit, together up to `response_bytes_max` (the
    /// first non-empty read may pass it alone); reads past that come back empty.
    Fetch {
        reads: Vec<(TopicPartition, i64, usize)>,
        response_bytes_max: usize,
    },
    /// XADD: append entries to a stream (one batch: a connection's pipelined XADDs to one
    /// key), answered once they are durable, one result per entry in order. `appended` fires
    /// once they are ordered in the log.
    StreamAdd {
        stream: TopicPartition,
        entries: Vec<NewEntry>,
        appended: Option<futures::channel::oneshot::Sender<()>>,
    },
    /// A Redis read of a stream: durable batches from `offset` (as Fetch) and the offsets
    /// among them that XDEL deleted.
    StreamRead {
        stream: TopicPartition,
        offset: i64,
        max_bytes: usize,
    },
    /// The runs of offsets XDEL deleted from a stream in `from..to` (XLEN, XTRIM, XINFO).
    StreamDeleted {
        stream: TopicPartition,
        from: i64,
        to: i64,
    },
    /// Completes when any of the partitions has data past the given offset, or on timeout.
    WaitForData {
        watches: Vec<(TopicPartition, i64)>,
        timeout_ms: u64,
    },
    ListOffsets {
        queries: Vec<(TopicPartition, i64)>,
    },
    DeleteRecords {
        deletes: Vec<(TopicPartition, i64)>,
    },
    /// The bytes of each partition's durable segments (DescribeLogDirs).
    PartitionSizes {
        partitions: Vec<(TopicPartition, ())>,
    },
    /// To the metadata shard.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        counts: Vec<(String, u32)>,
        validate_only: bool,
    },
    /// Topic config changes (IncrementalAlterConfigs, AlterConfigs).
    AlterTopicConfigs {
        changes: Vec<(String, ConfigChanges)>,
        validate_only: bool,
    },
    /// From the metadata shard to every shard: open and close partitions to match.
    ApplyMetadata(Arc<Metadata>),
    /// Then, once every shard applied it: show it to this shard's clients.
    ExposeMetadata(Arc<Metadata>),
    /// To the metadata shard: hand out a new producer id (persisted in the manifest).
    AllocateProducerId,
    /// To the group's coordinator shard (`routing::coordinator`), or to every shard (ListGroups).
    Group(GroupCall),
    /// A Redis stream group command, to the stream's owner.
    StreamGroup {
        topic: String,
        call: crate::stream_groups::GroupCall,
    },
    /// XREADGROUP BLOCK on one stream: the read, repeated on the owner when entries arrive,
    /// until it finds some or `wait_ms` pass (one round trip instead of one per step).
    StreamGroupWait {
        topic: String,
        call: crate::stream_groups::GroupCall,
        wait_ms: u64,
    },
    /// A scrape (`GET /metrics`), to every shard: its counters and what it owns.
    Metrics,
    /// CLIENT LIST / CLIENT KILL, to every shard: its RESP connections that match (closed when
    /// `kill`).
    RespClients {
        filter: crate::resp::clients::ClientFilter,
        kill: bool,
    },
    /// Serve this connection, which another shard accepted and counted here (`accept`).
    Adopt {
        door: crate::metrics::Protocol,
        connection: glommio::net::AcceptedTcpStream,
    },
    /// Serve this RESP connection, which another shard served until now (`balance`).
    AdoptMoved(crate::resp::MovedConnection),
}

pub enum ShardResponse {
    Produce(Vec<Result<Appended, ShardError>>),
    Fetch(Vec<Result<FetchedToSend, ShardError>>),
    StreamAdded(Vec<Result<StreamAdded, StreamAddError>>),
    StreamRead(Result<StreamChunk, ShardError>),
    StreamDeleted(Result<Vec<(i64, i64)>, ShardError>),
    Waited,
    ListOffsets(Vec<Result<OffsetAt, ShardError>>),
    DeleteRecords(Vec<Result<i64, ShardError>>),
    PartitionSizes(Vec<Result<u64, ShardError>>),
    TopicChanges(Vec<TopicChangeResult>),
    Applied,
    Group(GroupAnswer),
    StreamGroup(Result<crate::stream_groups::GroupAnswer, crate::stream_groups::GroupError>),
    ProducerId(Result<i64, TopicChangeError>),
    Metrics(Box<crate::metrics::ShardSnapshot>),
    /// (client id, CLIENT LIST line).
    RespClients(Vec<(u64, String)>),
}

pub struct MeshMessage {
    pub request: ShardRequest,
    pub reply: futures::channel::oneshot::Sender<ShardResponse>,
}
