//! Metrics: recorded per shard without locks, merged only when scraped.
//!
//! Data flow: each shard records into its own [`ShardMetrics`] (`Cell` counters and
//! fixed-bucket histograms: a few increments per request) and its partition flushers into
//! the engine's per-shard `StorageMetrics`. `GET /metrics` runs [`scrape`] on the HTTP shard:
//! it sends `ShardRequest::Metrics` to every shard over the mesh; each answers with a
//! [`ShardSnapshot`] (plain numbers plus what it owns: its partitions' offsets and sizes, the
//! committed offsets of the groups it coordinates, its streams' groups). The snapshots are
//! merged into one [`BrokerMetrics`] and rendered as Prometheus text ([`exposition`]).
//! Consumer lag and dead-letter lengths are computed there, from the merged partitions, so a
//! scrape is one round over the mesh.
//!
//! [`check`] parses and validates the text format (used by the tests). [`overview`] renders the
//! same merged metrics as JSON for the console page (`GET /api/overview`).
pub mod check;
pub mod deliveries;
pub mod exposition;
pub mod overview;

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use sluice_engine::metrics::{
    Histogram, HistogramSnapshot, StorageMetrics, BATCH_RECORDS_BUCKETS, FLUSH_BATCHES_BUCKETS,
    LATENCY_BUCKETS_SECONDS, MESSAGE_BYTES_BUCKETS,
};
use sluice_engine::partition::Partition;

pub use self::deliveries::{DeliveryCounts, GroupDeliveries};
use crate::kafka::registry::SUPPORTED as KAFKA_APIS;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::ShardRef;

const LATENCY_BUCKETS: usize = LATENCY_BUCKETS_SECONDS.len();
type LatencyHistogram = Histogram<LATENCY_BUCKETS>;
type MessageBytesHistogram = Histogram<{ MESSAGE_BYTES_BUCKETS.len() }>;
type BatchRecordsHistogram = Histogram<{ BATCH_RECORDS_BUCKETS.len() }>;

/// A front door, as the `protocol` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Kafka,
    Resp,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Kafka, Protocol::Resp];

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Kafka => "kafka",
            Protocol::Resp => "resp",
        }
    }

    /// The front door's name in log lines.
    pub fn door_name(self) -> &'static str {
        match self {
            Protocol::Kafka => "Kafka",
            Protocol::Resp => "RESP",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why the broker closed a client's connection itself (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Accepted over `connections-max` and closed at once.
    ConnectionsMax,
    /// A request begun and not complete within `request-read-timeout-ms` (slowloris).
    RequestReadTimeout,
    /// No request and nothing to answer for `connection-idle-timeout-ms`.
    IdleTimeout,
    /// A response the client did not read for `connection-idle-timeout-ms`.
    WriteTimeout,
    /// A request whose bytes found no room in `request-memory-bytes-max` before its deadline.
    RequestMemory,
}

impl Dropped {
    pub const ALL: [Dropped; 5] = [
        Dropped::ConnectionsMax,
        Dropped::RequestReadTimeout,
        Dropped::IdleTimeout,
        Dropped::WriteTimeout,
        Dropped::RequestMemory,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Dropped::ConnectionsMax => "connections_max",
            Dropped::RequestReadTimeout => "request_read_timeout",
            Dropped::IdleTimeout => "idle_timeout",
            Dropped::WriteTimeout => "write_timeout",
            Dropped::RequestMemory => "request_memory",
        }
    }
}

/// Indexed like `Protocol::ALL`, then like `Dropped::ALL`.
type DroppedCounts = [[u64; Dropped::ALL.len()]; Protocol::ALL.len()];

/// The RESP commands timed on their own (`command` label); the rest are `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCommand {
    Xadd,
    Xreadgroup,
    Xack,
    Other,
}

impl RespCommand {
    pub const ALL: [RespCommand; 4] =
        [RespCommand::Xadd, RespCommand::Xreadgroup, RespCommand::Xack, RespCommand::Other];

    /// From the lower-case command name.
    pub fn of(name: &str) -> Self {
        match name {
            "xadd" => RespCommand::Xadd,
            "xreadgroup" => RespCommand::Xreadgroup,
            "xack" => RespCommand::Xack,
            _ => RespCommand::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RespCommand::Xadd => "xadd",
            RespCommand::Xreadgroup => "xreadgroup",
            RespCommand::Xack => "xack",
            RespCommand::Other => "other",
        }
    }
}

/// Bytes and records through one front door in one direction.
#[derive(Debug, Default)]
struct Traffic {
    bytes: Cell<u64>,
    records: Cell<u64>,
}

impl Traffic {
    fn add(&self, bytes: u64, records: u64) {
        self.bytes.set(self.bytes.get() + bytes);
        self.records.set(self.records.get() + records);
    }

    fn snapshot(&self) -> TrafficCount {
        TrafficCount { bytes: self.bytes.get(), records: self.records.get() }
    }
}

/// What one shard's front doors measure. Lives on its shard; never shared with another thread.
pub struct ShardMetrics {
    /// Indexed like the Kafka registry (`registry::SUPPORTED`).
    kafka_request_seconds: [LatencyHistogram; KAFKA_APIS.len()],
    /// Indexed like `RespCommand::ALL`.
    resp_command_seconds: [LatencyHistogram; RespCommand::ALL.len()],
    /// Indexed like `Protocol::ALL`.
    traffic_in: [Traffic; Protocol::ALL.len()],
    traffic_out: [Traffic; Protocol::ALL.len()],
    /// Sizes of what producers wrote: each Kafka record batch (bytes, records), each XADD entry.
    kafka_batch_bytes: MessageBytesHistogram,
    kafka_batch_records: BatchRecordsHistogram,
    resp_entry_bytes: MessageBytesHistogram,
    connections_open: [Cell<usize>; Protocol::ALL.len()],
    connections_dropped: [[Cell<u64>; Dropped::ALL.len()]; Protocol::ALL.len()],
    /// RESP commands blocked (BLOCK) as of the last scrape.
    resp_blocked: Cell<usize>,
    /// Requests this shard sent to other shards over the mesh and has no answer for yet.
    mesh_in_flight: Cell<usize>,
    /// Bytes of Fetch responses its connections sent from segment files with sendfile.
    sendfile_bytes: Cell<u64>,
    /// Bytes of produced records copied out of their request frames (`produce_copied`).
    produce_copied_bytes: Cell<u64>,
    /// RESP connections this shard moved to another (`balance`).
    connections_moved: Cell<u64>,
    /// The executor's scheduler totals, once recorded (`record_executor`).
    executor: Cell<Option<ExecutorTotals>>,
    /// The shard's request memory as of the last scrape (`record_request_memory`).
    request_memory: Cell<RequestMemoryStats>,
    /// Time the shard's catch-up reads waited for `catch-up-read-bytes-per-sec-max`, as of the
    /// last scrape.
    catch_up_throttled: Cell<Duration>,
}

/// A shard's request memory: bytes charged now, and charges that waited since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestMemoryStats {
    pub held_bytes: u64,
    pub waits: u64,
}

/// What a shard's executor did since it started: time running tasks, tasks run, and how often
/// its scheduler picked a task queue (glommio's executor statistics, accumulated).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExecutorTotals {
    pub shard: usize,
    pub busy_seconds: f64,
    pub tasks: u64,
    pub scheduler_runs: u64,
}

/// A mesh request's place in `mesh_in_flight`, freed when answered or abandoned.
pub struct MeshCall<'a>(&'a Cell<usize>);

impl Drop for MeshCall<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Default for ShardMetrics {
    fn default() -> Self {
        Self {
            kafka_request_seconds: std::array::from_fn(|_| Histogram::new(&LATENCY_BUCKETS_SECONDS)),
            resp_command_seconds: std::array::from_fn(|_| Histogram::new(&LATENCY_BUCKETS_SECONDS)),
            traffic_in: Default::default(),
            traffic_out: Default::default(),
            kafka_batch_bytes: Histogram::new(&MESSAGE_BYTES_BUCKETS),
            kafka_batch_records: Histogram::new(&BATCH_RECORDS_BUCKETS),
            resp_entry_bytes: Histogram::new(&MESSAGE_BYTES_BUCKETS),
            connections_open: Default::default(),
            connections_dropped: Default::default(),
            resp_blocked: Cell::new(0),
            mesh_in_flight: Cell::new(0),
            sendfile_bytes: Cell::new(0),
            produce_copied_bytes: Cell::new(0),
            connections_moved: Cell::new(0),
            executor: Cell::new(None),
            request_memory: Cell::new(RequestMemoryStats::default()),
            catch_up_throttled: Cell::new(Duration::ZERO),
        }
    }
}

impl ShardMetrics {
    /// A Kafka request of the API at `api_index` in the registry took `elapsed`.
    pub fn kafka_request(&self, api_index: usize, elapsed: Duration) {
        if let Some(histogram) = self.kafka_request_seconds.get(api_index) {
            histogram.observe_duration(elapsed);
        }
    }

    pub fn resp_command(&self, command: RespCommand, elapsed: Duration) {
        self.resp_command_seconds[command as usize].observe_duration(elapsed);
    }

    /// Records written by producers (Produce, XADD).
    pub fn received(&self, protocol: Protocol, bytes: usize, records: u64) {
        self.traffic_in[protocol.index()].add(bytes as u64, records);
    }

    /// Produce appended a record batch of `batch_bytes` holding `records` records.
    pub fn kafka_batch_produced(&self, batch_bytes: usize, records: i64) {
        self.kafka_batch_bytes.observe(batch_bytes as f64);
        self.kafka_batch_records.observe(records as f64);
    }

    /// XADD appended an entry of `field_bytes` (field names and values).
    pub fn resp_entry_added(&self, field_bytes: usize) {
        self.resp_entry_bytes.observe(field_bytes as f64);
    }

    /// Bytes a connection sent from a segment file with sendfile (also counted in `sent`).
    pub fn sent_from_file(&self, bytes: usize) {
        self.sendfile_bytes.set(self.sendfile_bytes.get() + bytes as u64);
    }

    /// Produce copied `bytes` of records on their way to a partition's memory (instead of
    /// storing them in the request frame they arrived in).
    pub fn produce_copied(&self, bytes: usize) {
        self.produce_copied_bytes.set(self.produce_copied_bytes.get() + bytes as u64);
    }

    /// A RESP connection left this shard for another (`balance`).
    pub fn connection_moved(&self) {
        self.connections_moved.set(self.connections_moved.get() + 1);
    }

    /// Records sent to consumers (Fetch, XREAD, XREADGROUP).
    pub fn sent(&self, protocol: Protocol, bytes: usize, records: u64) {
        self.traffic_out[protocol.index()].add(bytes as u64, records);
    }

    /// Adds what the shard's executor did since the last call (its statistics reset when read).
    pub fn record_executor(&self, shard: usize, busy: std::time::Duration, tasks: u64, scheduler_runs: u64) {
        let mut totals = self.executor.get().unwrap_or(ExecutorTotals { shard, ..Default::default() });
        totals.busy_seconds += busy.as_secs_f64();
        totals.tasks += tasks;
        totals.scheduler_runs += scheduler_runs;
        self.executor.set(Some(totals));
    }

    pub fn record_request_memory(&self, held_bytes: u64, waits: u64) {
        self.request_memory.set(RequestMemoryStats { held_bytes, waits });
    }

    pub fn record_catch_up_throttled(&self, throttled: Duration) {
        self.catch_up_throttled.set(throttled);
    }

    /// Counts a request sent to another shard until the returned guard is dropped.
    pub fn mesh_call(&self) -> MeshCall<'_> {
        self.mesh_in_flight.set(self.mesh_in_flight.get() + 1);
        MeshCall(&self.mesh_in_flight)
    }

    /// The connections this shard serves on each front door (`Protocol::ALL`), as of the scrape
    /// (`accept::Connections` counts them).
    pub fn record_resp_blocked(&self, blocked: usize) {
        self.resp_blocked.set(blocked);
    }

    pub fn record_connections_open(&self, open: [usize; Protocol::ALL.len()]) {
        for (cell, open) in self.connections_open.iter().zip(open) {
            cell.set(open);
        }
    }

    /// The broker closed a connection itself, for `reason`.
    pub fn connection_dropped(&self, protocol: Protocol, reason: Dropped) {
        let dropped = &self.connections_dropped[protocol.index()][reason as usize];
        dropped.set(dropped.get() + 1);
    }

    /// This shard's numbers, with what it owns (gathered by `Shard`).
    pub fn snapshot(&self, owned: OwnedStats) -> ShardSnapshot {
        let storage = StorageMetrics::current();
        ShardSnapshot {
            kafka_request_seconds: self.kafka_request_seconds.iter().map(Histogram::snapshot).collect(),
            resp_command_seconds: self.resp_command_seconds.iter().map(Histogram::snapshot).collect(),
            traffic_in: self.traffic_in.iter().map(Traffic::snapshot).collect(),
            traffic_out: self.traffic_out.iter().map(Traffic::snapshot).collect(),
            kafka_batch_bytes: self.kafka_batch_bytes.snapshot(),
            kafka_batch_records: self.kafka_batch_records.snapshot(),
            resp_entry_bytes: self.resp_entry_bytes.snapshot(),
            connections_open: self.connections_open.iter().map(Cell::get).collect(),
            connections_dropped: self.connections_dropped.each_ref().map(|counts| counts.each_ref().map(Cell::get)),
            resp_blocked: self.resp_blocked.get(),
            mesh_in_flight: self.mesh_in_flight.get(),
            sendfile_bytes: self.sendfile_bytes.get(),
            produce_copied_bytes: self.produce_copied_bytes.get(),
            connections_moved: self.connections_moved.get(),
            executor: self.executor.get(),
            request_memory: self.request_memory.get(),
            catch_up_throttled: self.catch_up_throttled.get(),
            flush_seconds: storage.flush_seconds.snapshot(),
            flush_batches: storage.flush_batches.snapshot(),
            owned,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCount {
    pub bytes: u64,
    pub records: u64,
}

/// One partition's offsets and size, from its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    pub segments: usize,
}

impl PartitionStats {
    pub fn of(topic: &str, partition_index: i32, partition: &Partition) -> Self {
        Self {
            topic: topic.to_string(),
            partition: partition_index,
            log_start_offset: partition.log_start_offset(),
            end_offset: partition.high_watermark(),
            size_bytes: partition.size_bytes(),
            segments: partition.segment_count(),
        }
    }
}

/// A Kafka consumer group's committed offset of one partition, from its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedStats {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A Redis stream group, from the stream's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroupStats {
    pub stream: String,
    pub group: String,
    pub pending: usize,
    pub oldest_pending_idle_ms: u64,
    pub consumers: usize,
    /// The stream its entries go to after too many deliveries.
    pub dead_letter: String,
    /// Entries delivered and redelivered since the broker started.
    pub deliveries: DeliveryCounts,
    /// The highest delivery count among the pending entries (0 when none).
    pub pending_deliveries_max: u64,
}

/// What a shard owns, as of the scrape.
#[derive(Debug, Default)]
pub struct OwnedStats {
    pub partitions: Vec<PartitionStats>,
    pub committed: Vec<CommittedStats>,
    pub groups: Vec<GroupStats>,
    pub stream_groups: Vec<StreamGroupStats>,
}

/// A Kafka consumer group, from its coordinator: membership as of the scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    pub group: String,
    /// Kafka's name for the state: `Empty`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Stable`, `Dead`.
    pub state: &'static str,
    pub generation: i32,
    pub members: usize,
}

/// One shard's answer to a scrape: plain numbers, sent over the mesh.
#[derive(Debug)]
pub struct ShardSnapshot {
    pub kafka_request_seconds: Vec<HistogramSnapshot>,
    pub resp_command_seconds: Vec<HistogramSnapshot>,
    pub traffic_in: Vec<TrafficCount>,
    pub traffic_out: Vec<TrafficCount>,
    pub kafka_batch_bytes: HistogramSnapshot,
    pub kafka_batch_records: HistogramSnapshot,
    pub resp_entry_bytes: HistogramSnapshot,
    pub connections_open: Vec<usize>,
    pub connections_dropped: DroppedCounts,
    pub resp_blocked: usize,
    pub mesh_in_flight: usize,
    pub sendfile_bytes: u64,
    pub produce_copied_bytes: u64,
    pub connections_moved: u64,
    pub executor: Option<ExecutorTotals>,
    pub request_memory: RequestMemoryStats,
    pub catch_up_throttled: Duration,
    pub flush_seconds: HistogramSnapshot,
    pub flush_batches: HistogramSnapshot,
    pub owned: OwnedStats,
}

/// Every shard's snapshot merged: what `/metrics` shows.
#[derive(Debug)]
pub struct BrokerMetrics {
    pub shards: usize,
    pub kafka_request_seconds: Vec<HistogramSnapshot>,
    pub resp_command_seconds: Vec<HistogramSnapshot>,
    pub traffic_in: Vec<TrafficCount>,
    pub traffic_out: Vec<TrafficCount>,
    pub kafka_batch_bytes: HistogramSnapshot,
    pub kafka_batch_records: HistogramSnapshot,
    pub resp_entry_bytes: HistogramSnapshot,
    pub connections_open: Vec<usize>,
    pub connections_dropped: DroppedCounts,
    pub resp_blocked: usize,
    pub mesh_in_flight: usize,
    pub sendfile_bytes: u64,
    pub produce_copied_bytes: u64,
    pub connections_moved: u64,
    /// Sorted by shard.
    pub executors: Vec<ExecutorTotals>,
    pub request_memory: RequestMemoryStats,
    pub catch_up_throttled: Duration,
    pub flush_seconds: HistogramSnapshot,
    pub flush_batches: HistogramSnapshot,
    /// Sorted by topic and partition.
    pub partitions: Vec<PartitionStats>,
    /// Sorted by group, topic and partition.
    pub committed: Vec<CommittedStats>,
    /// Sorted by group.
    pub groups: Vec<GroupStats>,
    /// Sorted by stream and group.
    pub stream_groups: Vec<StreamGroupStats>,
}

impl BrokerMetrics {
    pub fn merge(snapshots: Vec<ShardSnapshot>) -> Self {
        let mut merged = Self {
            shards: snapshots.len(),
            kafka_request_seconds: vec![HistogramSnapshot::empty(&LATENCY_BUCKETS_SECONDS); KAFKA_APIS.len()],
            resp_command_seconds: vec![HistogramSnapshot::empty(&LATENCY_BUCKETS_SECONDS); RespCommand::ALL.len()],
            traffic_in: vec![TrafficCount::default(); Protocol::ALL.len()],
            traffic_out: vec![TrafficCount::default(); Protocol::ALL.len()],
            kafka_batch_bytes: HistogramSnapshot::empty(&MESSAGE_BYTES_BUCKETS),
            kafka_batch_records: HistogramSnapshot::empty(&BATCH_RECORDS_BUCKETS),
            resp_entry_bytes: HistogramSnapshot::empty(&MESSAGE_BYTES_BUCKETS),
            connections_open: vec![0; Protocol::ALL.len()],
            connections_dropped: Default::default(),
            resp_blocked: 0,
            mesh_in_flight: 0,
            sendfile_bytes: 0,
            produce_copied_bytes: 0,
            connections_moved: 0,
            executors: Vec::new(),
            request_memory: RequestMemoryStats::default(),
            catch_up_throttled: Duration::ZERO,
            flush_seconds: HistogramSnapshot::empty(&LATENCY_BUCKETS_SECONDS),
            flush_batches: HistogramSnapshot::empty(&FLUSH_BATCHES_BUCKETS),
            partitions: Vec::new(),
            committed: Vec::new(),
            groups: Vec::new(),
            stream_groups: Vec::new(),
        };
        for snapshot in snapshots {
            merge_histograms(&mut merged.kafka_request_seconds, &snapshot.kafka_request_seconds);
            merge_histograms(&mut merged.resp_command_seconds, &snapshot.resp_command_seconds);
            merge_traffic(&mut merged.traffic_in, &snapshot.traffic_in);
            merge_traffic(&mut merged.traffic_out, &snapshot.traffic_out);
            merged.kafka_batch_bytes.merge(&snapshot.kafka_batch_bytes);
            merged.kafka_batch_records.merge(&snapshot.kafka_batch_records);
            merged.resp_entry_bytes.merge(&snapshot.resp_entry_bytes);
            for (total, open) in merged.connections_open.iter_mut().zip(&snapshot.connections_open) {
                *total += open;
            }
            for (totals, counts) in merged.connections_dropped.iter_mut().zip(&snapshot.connections_dropped) {
                for (total, count) in totals.iter_mut().zip(counts) {
                    *total += count;
                }
            }
            merged.resp_blocked += snapshot.resp_blocked;
            merged.mesh_in_flight += snapshot.mesh_in_flight;
            merged.sendfile_bytes += snapshot.sendfile_bytes;
            merged.produce_copied_bytes += snapshot.produce_copied_bytes;
            merged.connections_moved += snapshot.connections_moved;
            merged.executors.extend(snapshot.executor);
            merged.request_memory.held_bytes += snapshot.request_memory.held_bytes;
            merged.request_memory.waits += snapshot.request_memory.waits;
            merged.catch_up_throttled += snapshot.catch_up_throttled;
            merged.flush_seconds.merge(&snapshot.flush_seconds);
            merged.flush_batches.merge(&snapshot.flush_batches);
            merged.partitions.extend(snapshot.owned.partitions);
            merged.committed.extend(snapshot.owned.committed);
            merged.groups.extend(snapshot.owned.groups);
            merged.stream_groups.extend(snapshot.owned.stream_groups);
        }
        merged.partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        merged.committed.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
        merged.stream_groups.sort_by(|a, b| (&a.stream, &a.group).cmp(&(&b.stream, &b.group)));
        merged.groups.sort_by(|a, b| a.group.cmp(&b.group));
        merged.executors.sort_by_key(|executor| executor.shard);
        merged
    }

    /// A partition's stats by (topic, partition).
    pub fn partition_index(&self) -> HashMap<(&str, i32), &PartitionStats> {
        self.partitions.iter().map(|stats| ((stats.topic.as_str(), stats.partition), stats)).collect()
    }

    /// Each committed offset with the group's lag on that partition: end offset minus committed
    /// offset (never negative), `None` when the partition is gone (topic deleted).
    pub fn committed_with_lag(&self) -> Vec<(&CommittedStats, Option<i64>)> {
        let partitions = self.partition_index();
        self.committed
            .iter()
            .map(|committed| {
                let lag = partitions
                    .get(&(committed.topic.as_str(), committed.partition))
                    .map(|stats| (stats.end_offset - committed.offset).max(0));
                (committed, lag)
            })
            .collect()
    }

    /// Each Redis stream group with the entries in its dead-letter stream, `None` until that
    /// stream exists.
    pub fn stream_groups_with_dead_letters(&self) -> Vec<(&StreamGroupStats, Option<i64>)> {
        let partitions = self.partition_index();
        self.stream_groups
            .iter()
            .map(|group| {
                let dead_letter = partitions.get(&(group.dead_letter.as_str(), crate::resp::streams::STREAM_PARTITION));
                (group, dead_letter.map(|stats| stats.end_offset - stats.log_start_offset))
            })
            .collect()
    }
}

fn merge_histograms(totals: &mut [HistogramSnapshot], shard: &[HistogramSnapshot]) {
    for (total, histogram) in totals.iter_mut().zip(shard) {
        total.merge(histogram);
    }
}

fn merge_traffic(totals: &mut [TrafficCount], shard: &[TrafficCount]) {
    for (total, traffic) in totals.iter_mut().zip(shard) {
        total.bytes += traffic.bytes;
        total.records += traffic.records;
    }
}

/// Asks every shard for its snapshot (one mesh round) and merges them: what `/metrics` and
/// the console's `/api/overview` show.
pub async fn collect(shard: &ShardRef) -> BrokerMetrics {
    let calls: Vec<_> = (0..shard.count).map(|target| shard.call(target, ShardRequest::Metrics)).collect();
    let snapshots = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|response| match response {
            ShardResponse::Metrics(snapshot) => *snapshot,
            _ => unreachable!("Metrics answers with Metrics"),
        })
        .collect();
    BrokerMetrics::merge(snapshots)
}

/// One scrape: [`collect`], rendered as Prometheus text.
pub async fn scrape(shard: &ShardRef) -> String {
    exposition::render(&collect(shard).await)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn partition(topic: &str, partition: i32, end_offset: i64) -> PartitionStats {
        PartitionStats {
            topic: topic.to_string(),
            partition,
            log_start_offset: 2,
            end_offset,
            size_bytes: 4096,
            segments: 1,
        }
    }

    /// Two shards' snapshots: shard 0 took requests and owns `orders/1` and the group's
    /// offsets, shard 1 owns `orders/0`, the stream `jobs` and its dead-letter stream.
    fn two_shards() -> Vec<ShardSnapshot> {
        let first = ShardMetrics::default();
        first.kafka_request(0, Duration::from_micros(700));
        first.kafka_request(0, Duration::from_millis(40));
        first.resp_command(RespCommand::Xadd, Duration::from_micros(300));
        first.received(Protocol::Kafka, 1000, 10);
        first.sent(Protocol::Resp, 20, 2);
        first.record_connections_open([1, 0]);
        let second = ShardMetrics::default();
        second.received(Protocol::Kafka, 500, 5);
        second.record_connections_open([1, 1]);
        first.connection_dropped(Protocol::Resp, Dropped::RequestReadTimeout);
        second.connection_dropped(Protocol::Resp, Dropped::RequestReadTimeout);
        second.connection_dropped(Protocol::Kafka, Dropped::ConnectionsMax);
        let committed = |partition, offset| CommittedStats {
            group: "billing \"eu\"".to_string(),
            topic: "orders".to_string(),
            partition,
            offset,
        };
        vec![
            first.snapshot(OwnedStats {
                partitions: vec![partition("orders", 1, 30)],
                committed: vec![committed(1, 25), committed(0, 7), committed(9, 1)],
                groups: vec![GroupStats {
                    group: "billing \"eu\"".to_string(),
                    state: "Stable",
                    generation: 4,
                    members: 2,
                }],
                stream_groups: Vec::new(),
            }),
            second.snapshot(OwnedStats {
                partitions: vec![partition("orders", 0, 12), partition("jobs", 0, 9), partition("jobs:dlq", 0, 4)],
                committed: Vec::new(),
                groups: Vec::new(),
                stream_groups: vec![StreamGroupStats {
                    stream: "jobs".to_string(),
                    group: "workers".to_string(),
                    pending: 3,
                    oldest_pending_idle_ms: 1500,
                    consumers: 2,
                    dead_letter: "jobs:dlq".to_string(),
                    deliveries: DeliveryCounts { first: 40, again: 6, dead_lettered: 1 },
                    pending_deliveries_max: 4,
                }],
            }),
        ]
    }

    fn value(samples: &[check::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        check::value_of(samples, name, labels).unwrap()
    }

    #[test]
    fn executor_totals_accumulate_per_shard() {
        let (first, second) = (ShardMetrics::default(), ShardMetrics::default());
        first.record_executor(0, std::time::Duration::from_millis(1500), 10, 4);
        first.record_executor(0, std::time::Duration::from_millis(500), 5, 1);
        second.record_executor(1, std::time::Duration::from_millis(250), 3, 2);
        let shards = vec![second.snapshot(OwnedStats::default()), first.snapshot(OwnedStats::default())];
        let text = exposition::render(&BrokerMetrics::merge(shards));
        let samples = check::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(value(&samples, "sluice_shard_busy_seconds_total", &[("shard", "0")]), 2.0);
        assert_eq!(value(&samples, "sluice_shard_tasks_total", &[("shard", "0")]), 15.0);
        assert_eq!(value(&samples, "sluice_shard_scheduler_runs_total", &[("shard", "1")]), 2.0);
        assert_eq!(value(&samples, "sluice_shard_busy_seconds_total", &[("shard", "1")]), 0.25);
    }

    #[test]
    fn produced_sizes_are_observed_per_batch_and_per_entry_and_merged() {
        use sluice_engine::record::batch::build;
        let (first, second) = (ShardMetrics::default(), ShardMetrics::default());
        let three = build::batch(0, 1_000, &[(b"k1", b"one"), (b"k2", b"two"), (b"k3", b"three")]);
        let one = build::batch(0, 2_000, &[(b"k4", b"four")]);
        first.kafka_batch_produced(three.len(), 3);
        first.kafka_batch_produced(one.len(), 1);
        second.kafka_batch_produced(one.len(), 1);
        first.resp_entry_added(15);
        second.resp_entry_added(16);
        second.resp_entry_added(17);
        let merged =
            BrokerMetrics::merge(vec![first.snapshot(OwnedStats::default()), second.snapshot(OwnedStats::default())]);
        assert_eq!(merged.kafka_batch_records.count, 3);
        assert_eq!(merged.kafka_batch_records.sum, 5.0);
        assert_eq!(merged.kafka_batch_bytes.sum, (three.len() + 2 * one.len()) as f64);
        let text = exposition::render(&merged);
        let samples = check::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        let records = "sluice_kafka_produce_batch_records_bucket";
        assert_eq!(value(&samples, records, &[("le", "1")]), 2.0);
        assert_eq!(value(&samples, records, &[("le", "2")]), 2.0);
        assert_eq!(value(&samples, records, &[("le", "4")]), 3.0);
        assert_eq!(value(&samples, records, &[("le", "+Inf")]), 3.0);
        let entries = "sluice_resp_xadd_entry_bytes_bucket";
        assert_eq!(value(&samples, entries, &[("le", "16")]), 2.0, "15 and 16 bytes");
        assert_eq!(value(&samples, entries, &[("le", "32")]), 3.0);
        assert_eq!(value(&samples, "sluice_resp_xadd_entry_bytes_sum", &[]), 48.0);
        assert_eq!(value(&samples, "sluice_kafka_produce_batch_bytes_count", &[]), 3.0);
    }

    #[test]
    fn mesh_requests_count_while_unanswered_or_until_abandoned() {
        let metrics = ShardMetrics::default();
        let first = metrics.mesh_call();
        let second = metrics.mesh_call();
        let snapshot = |metrics: &ShardMetrics| metrics.snapshot(OwnedStats::default()).mesh_in_flight;
        assert_eq!(snapshot(&metrics), 2);
        drop(first);
        assert_eq!(snapshot(&metrics), 1);
        drop(second);
        assert_eq!(snapshot(&metrics), 0);
        let shards = vec![metrics.snapshot(OwnedStats::default()), {
            let other = ShardMetrics::default();
            std::mem::forget(other.mesh_call());
            other.snapshot(OwnedStats::default())
        }];
        let text = exposition::render(&BrokerMetrics::merge(shards));
        let samples = check::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(value(&samples, "sluice_mesh_requests_in_flight", &[]), 1.0);
    }

    #[test]
    fn the_merged_text_is_valid_and_adds_up() {
        let text = exposition::render(&BrokerMetrics::merge(two_shards()));
        let samples = check::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(value(&samples, "sluice_shards", &[]), 2.0);
        assert_eq!(value(&samples, "sluice_partition_end_offset", &[("topic", "orders"), ("partition", "0")]), 12.0);
        assert_eq!(value(&samples, "sluice_partition_log_start_offset", &[("topic", "jobs")]), 2.0);
        assert_eq!(value(&samples, "sluice_partition_size_bytes", &[("topic", "orders"), ("partition", "1")]), 4096.0);
        let group = ("group", "billing \"eu\"");
        assert_eq!(value(&samples, "sluice_consumer_group_lag", &[group, ("partition", "1")]), 5.0);
        assert_eq!(value(&samples, "sluice_consumer_group_lag", &[group, ("partition", "0")]), 5.0);
        assert_eq!(value(&samples, "sluice_consumer_group_committed_offset", &[group, ("partition", "9")]), 1.0);
        assert_eq!(value(&samples, "sluice_consumer_group_members", &[group]), 2.0);
        assert_eq!(value(&samples, "sluice_consumer_group_generation", &[group]), 4.0);
        assert_eq!(value(&samples, "sluice_consumer_group_state", &[group, ("state", "Stable")]), 1.0);
        assert!(
            !samples
                .iter()
                .any(|sample| sample.name == "sluice_consumer_group_lag" && sample.label("partition") == Some("9")),
            "no lag for a partition that does not exist"
        );
        let workers = [("stream", "jobs"), ("group", "workers")];
        assert_eq!(value(&samples, "sluice_stream_group_pending_entries", &workers), 3.0);
        assert_eq!(value(&samples, "sluice_stream_group_oldest_pending_idle_seconds", &workers), 1.5);
        assert_eq!(value(&samples, "sluice_stream_group_consumers", &workers), 2.0);
        assert_eq!(value(&samples, "sluice_stream_group_dead_letter_entries", &workers), 2.0);
        assert_eq!(value(&samples, "sluice_stream_group_deliveries_total", &workers), 40.0);
        assert_eq!(value(&samples, "sluice_stream_group_redeliveries_total", &workers), 6.0);
        assert_eq!(value(&samples, "sluice_stream_group_dead_lettered_total", &workers), 1.0);
        assert_eq!(value(&samples, "sluice_stream_group_pending_max_deliveries", &workers), 4.0);
        assert_eq!(value(&samples, "sluice_bytes_in_total", &[("protocol", "kafka")]), 1500.0);
        assert_eq!(value(&samples, "sluice_records_in_total", &[("protocol", "kafka")]), 15.0);
        assert_eq!(value(&samples, "sluice_records_out_total", &[("protocol", "resp")]), 2.0);
        assert_eq!(value(&samples, "sluice_connections_open", &[("protocol", "kafka")]), 2.0);
        let dropped = "sluice_connections_dropped_total";
        assert_eq!(value(&samples, dropped, &[("protocol", "resp"), ("reason", "request_read_timeout")]), 2.0);
        assert_eq!(value(&samples, dropped, &[("protocol", "kafka"), ("reason", "connections_max")]), 1.0);
        assert_eq!(value(&samples, dropped, &[("protocol", "kafka"), ("reason", "idle_timeout")]), 0.0);
        let produce = ("api", "Produce");
        assert_eq!(value(&samples, "sluice_kafka_request_duration_seconds_count", &[produce]), 2.0);
        assert_eq!(value(&samples, "sluice_kafka_request_duration_seconds_bucket", &[produce, ("le", "0.001")]), 1.0);
        assert_eq!(value(&samples, "sluice_kafka_request_duration_seconds_bucket", &[produce, ("le", "0.05")]), 2.0);
        let xadd = ("command", "xadd");
        assert_eq!(value(&samples, "sluice_resp_command_duration_seconds_count", &[xadd]), 1.0);
        assert_eq!(value(&samples, "sluice_flush_duration_seconds_count", &[]), 0.0);
    }

    #[test]
    fn the_overview_groups_partitions_offsets_and_stream_groups_with_lag_and_dead_letters() {
        let json = overview::render(&BrokerMetrics::merge(two_shards()));
        let overview: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(overview["shards"], 2);
        let topics: Vec<&str> =
            overview["topics"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(topics, ["jobs", "jobs:dlq", "orders"], "sorted, one entry per topic");
        let orders = &overview["topics"][2]["partitions"];
        assert_eq!(orders.as_array().unwrap().len(), 2);
        assert_eq!(orders[1]["partition"], 1);
        assert_eq!(
            (
                &orders[1]["log_start_offset"],
                &orders[1]["end_offset"],
                &orders[1]["size_bytes"],
                &orders[1]["segments"]
            ),
            (&2.into(), &30.into(), &4096.into(), &1.into())
        );
        let groups = overview["consumer_groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["group"], "billing \"eu\"");
        assert_eq!(groups[0]["lag"], 10, "5 + 5, the partition that does not exist counts nothing");
        let offsets = groups[0]["offsets"].as_array().unwrap();
        assert_eq!(offsets.len(), 3);
        assert_eq!(
            (&offsets[0]["partition"], &offsets[0]["committed_offset"], &offsets[0]["lag"]),
            (&0.into(), &7.into(), &5.into())
        );
        assert!(offsets[2]["lag"].is_null(), "partition 9 does not exist");
        let workers = &overview["stream_groups"][0];
        assert_eq!(
            (&workers["stream"], &workers["group"], &workers["pending"]),
            (&"jobs".into(), &"workers".into(), &3.into())
        );
        assert_eq!((&workers["dead_letter"], &workers["dead_letter_entries"]), (&"jobs:dlq".into(), &2.into()));
        assert_eq!((&workers["consumers"], &workers["oldest_pending_idle_ms"]), (&2.into(), &1500.into()));
        let kafka = &overview["traffic"]["kafka"];
        assert_eq!(
            (&kafka["bytes_in"], &kafka["records_in"], &kafka["connections_open"]),
            (&1500.into(), &15.into(), &2.into())
        );
        assert_eq!(overview["traffic"]["resp"]["records_out"], 2);
        let produce = &overview["produce_latency"]["kafka"];
        assert_eq!(produce["count"], 2);
        let bounds = produce["bounds_seconds"].as_array().unwrap();
        assert_eq!(bounds.len(), produce["counts"].as_array().unwrap().len());
        assert_eq!(produce["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 2);
        assert!((produce["sum_seconds"].as_f64().unwrap() - 0.0407).abs() < 1e-9);
        assert_eq!(overview["produce_latency"]["resp"]["count"], 1, "XADD");
    }

    #[test]
    fn every_line_is_help_type_or_a_sample_of_the_family_announced() {
        let text = exposition::render(&BrokerMetrics::merge(two_shards()));
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                family = rest.split(' ').next().unwrap().to_string();
                assert!(family.starts_with("sluice_"), "{line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(rest.starts_with(&format!("{family} ")), "TYPE right after its HELP: {line}");
            } else {
                assert!(line.starts_with(&family), "a sample of {family}: {line}");
            }
        }
    }
}
