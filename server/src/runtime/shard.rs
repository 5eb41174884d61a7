//! A shard: one glommio executor pinned to one core, owning a set of partitions outright.
//!
//! Request flow: a front door (Kafka or RESP connection, on whichever shard `accept` placed it)
//! groups its work by owner shard (`routing::owner`) and calls `Shard::call` once per owner.
//! A local call runs directly; a remote one travels over the channel mesh as one message and
//! the owner answers on a one-shot channel. The owner appends, waits for the group-committed
//! fdatasync when acks=all, and replies.
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Receivers, Senders};
use sluice_engine::partition::{Partition, PartitionError, Records, SendRead};
use sluice_engine::record::batch;
use sluice_engine::stream::entry;
use sluice_engine::stream::id::{self as stream_id, StreamId};
use sluice_engine::sync::Notify;

use super::mesh::*;
use super::routing::{coordinator, owner, METADATA_SHARD};
use crate::accept::Connections;
use crate::catch_up_rate::CatchUpRate;
use crate::compression;
use crate::config::Config;
use crate::coordinator::{Coordinator, GroupAnswer, GroupCall};
use crate::metadata::{ConfigChanges, Metadata, NewTopic, TopicChangeError, TopicChangeResult};
use crate::metrics::{OwnedStats, PartitionStats, Protocol, ShardMetrics, ShardSnapshot};
use crate::request_memory::RequestMemory;
use crate::stream_groups::{
    GroupAnswer as StreamGroupAnswer, GroupCall as StreamGroupCall, GroupError, References, StreamGroups,
};

struct OwnedPartition {
    topic_id: [u8; 16],
    partition: Rc<Partition>,
}

/// The tail of a stream (a partition XADD writes to), on the shard that owns it: the last
/// entry ID handed out, and a lock held from choosing an ID to appending its entry, so IDs
/// and offsets grow in the same order. The fsync wait happens outside the lock (group commit).
#[derive(Default)]
struct StreamTail {
    /// `None` until the first XADD after start reads it from the log.
    last_id: Cell<Option<StreamId>>,
    order: RefCell<Option<Rc<glommio::sync::Semaphore>>>,
}

impl StreamTail {
    fn order(&self) -> Rc<glommio::sync::Semaphore> {
        self.order.borrow_mut().get_or_insert_with(|| Rc::new(glommio::sync::Semaphore::new(1))).clone()
    }

    /// A Kafka producer appended a batch (its newest timestamp and last offset): new entries
    /// must come after its records' IDs.
    fn note_kafka_batch(&self, max_timestamp: i64, last_offset: i64) {
        if let Some(last) = self.last_id.get() {
            self.last_id.set(Some(last.max(entry::kafka_record_id(max_timestamp, last_offset))));
        }
    }
}

/// Bytes read from a stream's end to find its last entry ID (at least one whole batch is read).
const STREAM_TAIL_READ_BYTES: usize = 64 << 10;

/// Everything one shard owns. Lives on its executor only; never shared with another thread.
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Arc<Config>,
    senders: Senders<MeshMessage>,
    partitions: RefCell<HashMap<TopicPartition, OwnedPartition>>,
    metadata: RefCell<Arc<Metadata>>,
    /// Version of the newest catalogue whose partitions this shard opened (may be ahead of
    /// `metadata` while a change is being published).
    applied_version: Cell<u64>,
    /// Fires when any partition of this shard has new durable data (fetch long polls).
    appended: Rc<Notify>,
    /// Serialises catalogue changes on the metadata shard.
    catalogue_lock: glommio::sync::Semaphore,
    /// Consumer groups coordinated here; set once at start.
    coordinator: RefCell<Option<Rc<Coordinator>>>,
    /// Streams XADD wrote to since start, by partition.
    stream_tails: RefCell<HashMap<TopicPartition, Rc<StreamTail>>>,
    /// Redis stream groups of the streams this shard owns, by topic: those with a group log
    /// opened at start, the others on first use.
    stream_groups: RefCell<HashMap<String, Rc<StreamGroups>>>,
    /// Serialises opening group logs (so one is never opened twice).
    stream_groups_opening: glommio::sync::Semaphore,
    /// Streams known to have no group log on disk (reads need not look for deleted entries).
    streams_without_groups: RefCell<HashSet<String>>,
    /// What this shard's front doors measure (read by a scrape, `ShardRequest::Metrics`).
    pub metrics: ShardMetrics,
    /// This shard's share of `request-memory-bytes-max`, charged by both front doors.
    pub request_memory: RequestMemory,
    /// This shard's share of `catch-up-read-bytes-per-sec-max`.
    pub catch_up_rate: CatchUpRate,
    /// Every shard's connection counts, where new connections are placed (`accept`).
    pub connections: Arc<Connections>,
}

impl Shard {
    pub fn new(
        config: Arc<Config>,
        senders: Senders<MeshMessage>,
        metadata: Metadata,
        connections: Arc<Connections>,
    ) -> Rc<Self> {
        let request_memory_share_bytes = config.request_memory_bytes_max / senders.nr_consumers();
        let shards = senders.nr_consumers();
        let catch_up_share_bytes_per_sec = config.catch_up_read_bytes_per_sec_max / shards as u64;
        Rc::new(Self {
            id: senders.peer_id(),
            count: senders.nr_consumers(),
            senders,
            partitions: RefCell::new(HashMap::new()),
            metadata: RefCell::new(Arc::new(metadata)),
            applied_version: Cell::new(0),
            appended: Rc::new(Notify::default()),
            catalogue_lock: glommio::sync::Semaphore::new(1),
            coordinator: RefCell::new(None),
            stream_tails: RefCell::new(HashMap::new()),
            stream_groups: RefCell::new(HashMap::new()),
            stream_groups_opening: glommio::sync::Semaphore::new(1),
            streams_without_groups: RefCell::new(HashSet::new()),
            metrics: ShardMetrics::default(),
            request_memory: RequestMemory::new(request_memory_share_bytes),
            catch_up_rate: CatchUpRate::new(catch_up_share_bytes_per_sec, shards),
            connections,
            config,
        })
    }

    /// This shard's current view of the topic catalogue.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.borrow().clone()
    }

    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner(topic, partition, self.count)
    }

    /// Runs `request` on shard `target`: directly if that is this shard, else over the mesh.
    pub async fn call(self: &Rc<Self>, target: usize, request: ShardRequest) -> ShardResponse {
        if target == self.id {
            return self.clone().handle(request).await;
        }
        let _in_flight = self.metrics.mesh_call();
        let (reply, response) = futures::channel::oneshot::channel();
        if self.senders.send_to(target, MeshMessage { request, reply }).await.is_err() {
            panic!("mesh channel to shard {target} closed while the broker runs");
        }
        response.await.unwrap_or_else(|_| panic!("shard {target} dropped a request without answering"))
    }

    /// Serves requests other shards send to this one: one task per peer, which starts each
    /// request the moment it arrives and drives all it started together (a long poll does not
    /// hold up the channel). Glommio runs the tasks woken by other shards first in its next
    /// turn, so a request's first steps (a remote XADD's append) happen then; a task spawned
    /// per request would wait behind every task already queued, a whole turn of the shard's
    /// connections (0.3-0.5 ms under load, on top of the flush the XADD waits for anyway).
    pub fn serve_mesh(self: &Rc<Self>, mut receivers: Receivers<MeshMessage>) {
        use futures::stream::{FuturesUnordered, Stream};
        use std::task::Poll;
        for (_, stream) in receivers.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let mut stream = std::pin::pin!(stream);
                let mut running = std::pin::pin!(FuturesUnordered::new());
                let mut closed = false;
                futures::future::poll_fn(|context| {
                    while !closed {
                        match stream.as_mut().poll_next(context) {
                            Poll::Ready(Some(MeshMessage { request, reply })) => {
                                let shard = shard.clone();
                                running.push(async move {
                                    let _ = reply.send(shard.handle(request).await);
                                });
                            }
                            Poll::Ready(None) => closed = true,
                            Poll::Pending => break,
                        }
                    }
                    while let Poll::Ready(Some(())) = running.as_mut().poll_next(context) {}
                    if closed && running.is_empty() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            })
            .detach();
        }
    }

    async fn handle(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        match request {
            ShardRequest::Produce { acks, writes, appended } => {
                ShardResponse::Produce(self.produce(acks, writes, appended).await)
            }
            ShardRequest::Fetch { reads, response_bytes_max } => {
                ShardResponse::Fetch(self.fetch(reads, response_bytes_max).await)
            }
            ShardRequest::StreamAdd { stream, entries, appended } => {
                ShardResponse::StreamAdded(self.stream_add(stream, entries, appended).await)
            }
            ShardRequest::StreamRead { stream, offset, max_bytes } => {
                ShardResponse::StreamRead(self.stream_read(stream, offset, max_bytes).await)
            }
            ShardRequest::StreamDeleted { stream, from, to } => {
                ShardResponse::StreamDeleted(self.stream_deleted(&stream.0, from, to).await)
            }
            ShardRequest::WaitForData { watches, timeout_ms } => {
                self.wait_for_data(&watches, timeout_ms).await;
                ShardResponse::Waited
            }
            ShardRequest::ListOffsets { queries } => ShardResponse::ListOffsets(self.list_offsets(queries).await),
            ShardRequest::DeleteRecords { deletes } => {
                // Boxed: emptying a stream calls its groups, which may call shards again.
                ShardResponse::DeleteRecords(Box::pin(self.delete_records(deletes)).await)
            }
            ShardRequest::PartitionSizes { partitions } => ShardResponse::PartitionSizes(
                partitions.iter().map(|(key, ())| Ok(self.partition(key)?.size_bytes())).collect(),
            ),
            ShardRequest::CreateTopics { topics, validate_only } => {
                ShardResponse::TopicChanges(self.create_topics(topics, validate_only).await)
            }
            ShardRequest::DeleteTopics { names } => ShardResponse::TopicChanges(self.delete_topics(names).await),
            ShardRequest::CreatePartitions { counts, validate_only } => {
                ShardResponse::TopicChanges(self.create_partitions(counts, validate_only).await)
            }
            ShardRequest::AlterTopicConfigs { changes, validate_only } => {
                ShardResponse::TopicChanges(self.alter_topic_configs(changes, validate_only).await)
            }
            ShardRequest::ApplyMetadata(metadata) => {
                self.apply_metadata(metadata).await;
                ShardResponse::Applied
            }
            ShardRequest::ExposeMetadata(metadata) => {
                self.expose_metadata(metadata);
                ShardResponse::Applied
            }
            ShardRequest::AllocateProducerId => ShardResponse::ProducerId(self.allocate_producer_id().await),
            ShardRequest::Metrics => ShardResponse::Metrics(Box::new(self.metrics_snapshot())),
            ShardRequest::RespClients { filter, kill } => {
                ShardResponse::RespClients(crate::resp::clients::matching(&filter, kill))
            }
            ShardRequest::Adopt { door, connection } => {
                crate::accept::serve(self.clone(), door, connection);
                ShardResponse::Applied
            }
            ShardRequest::AdoptMoved(moved) => {
                crate::accept::serve_moved(self.clone(), moved);
                ShardResponse::Applied
            }
            ShardRequest::StreamGroupWait { topic, call, wait_ms } => {
                ShardResponse::StreamGroup(Box::pin(self.stream_group_wait(&topic, call, wait_ms)).await)
            }
            ShardRequest::StreamGroup { topic, call } => {
                // Boxed: dead-lettering calls shards again (an async recursion).
                ShardResponse::StreamGroup(Box::pin(self.stream_group_call(&topic, call)).await)
            }
            ShardRequest::Group(call) => {
                let coordinator = self.coordinator.borrow().clone();
                match coordinator {
                    Some(coordinator) => ShardResponse::Group(coordinator.handle(call).await),
                    None => unreachable!("group calls arrive after the coordinator is set up"),
                }
            }
        }
    }

    /// This shard's counters and the state of what it owns: partitions, the committed offsets
    /// of the groups it coordinates, the groups of its streams.
    fn metrics_snapshot(&self) -> ShardSnapshot {
        let executor = glommio::executor().executor_stats(); // reset by reading: accumulated here
        self.metrics.record_executor(
            self.id,
            executor.executor_runtime(),
            executor.tasks_executed(),
            executor.scheduler_runs(),
        );
        self.metrics.record_request_memory(self.request_memory.held_bytes(), self.request_memory.waits());
        self.metrics.record_catch_up_throttled(self.catch_up_rate.throttled());
        self.metrics.record_connections_open(Protocol::ALL.map(|door| self.connections.open(door, self.id)));
        self.metrics.record_resp_blocked(crate::resp::session::blocked_on_this_shard());
        let partitions = self
            .partitions
            .borrow()
            .iter()
            .map(|((topic, index), owned)| PartitionStats::of(topic, *index, &owned.partition))
            .collect();
        let committed = self.coordinator.borrow().as_ref().map(|coordinator| coordinator.committed_offsets());
        let now = now_ms().max(0) as u64;
        let stream_groups = self.stream_groups.borrow().values().flat_map(|groups| groups.stats(now)).collect();
        let groups = self.coordinator.borrow().as_ref().map(|coordinator| coordinator.group_stats());
        self.metrics.snapshot(OwnedStats {
            partitions,
            committed: committed.unwrap_or_default(),
            groups: groups.unwrap_or_default(),
            stream_groups,
        })
    }

    /// Runs a Redis stream group command on this shard, the stream's owner.
    async fn stream_group_call(
        self: &Rc<Self>,
        topic: &str,
        call: StreamGroupCall,
    ) -> Result<StreamGroupAnswer, GroupError> {
        let groups = self.stream_groups_of(topic).await?;
        groups.handle(self, call).await
    }

    /// Runs a group read until it finds entries or `wait_ms` pass, woken by appends.
    async fn stream_group_wait(
        self: &Rc<Self>,
        topic: &str,
        call: StreamGroupCall,
        wait_ms: u64,
    ) -> Result<StreamGroupAnswer, GroupError> {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let stream = (topic.to_string(), crate::resp::streams::STREAM_PARTITION);
        loop {
            // Taken before the read: an append between the read and the wait still wakes it.
            let end = self.partition(&stream).map_err(|_| GroupError::NoStream)?.high_watermark();
            let answer = self.stream_group_call(topic, call.clone()).await?;
            let now = Instant::now();
            let found_none = matches!(&answer, StreamGroupAnswer::Entries(entries) if entries.is_empty());
            if !found_none || now >= deadline {
                return Ok(answer);
            }
            let left_ms = (deadline - now).as_millis() as u64 + 1;
            self.wait_for_data(&[(stream.clone(), end)], left_ms).await;
        }
    }

    /// At start: replays the group log of every stream this shard owns that has one, so its
    /// groups are in `/metrics` before anyone uses them. A log that cannot be opened is logged
    /// and tried again on first use, which then reports the error to the client.
    pub async fn open_stream_groups(&self) {
        let streams: Vec<String> = self
            .partitions
            .borrow()
            .keys()
            .filter(|(_, index)| *index == crate::resp::streams::STREAM_PARTITION)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in streams {
            let log_dir = self.config.data_dir.join("topics").join(&topic).join(crate::stream_groups::GROUP_LOG_DIR);
            if !log_dir.is_dir() {
                continue;
            }
            if let Err(error) = self.stream_groups_of(&topic).await {
                tracing::warn!(stream = %topic, ?error, "opening the stream's groups failed; trying again on first use");
            }
        }
    }

    /// XSETID: the stream's next XADD IDs come after `id`, in turn with the XADDs in flight.
    pub async fn set_stream_last_id(&self, stream: &TopicPartition, id: StreamId) {
        let tail = self.stream_tails.borrow_mut().entry(stream.clone()).or_default().clone();
        let order = tail.order();
        let in_order = order.acquire_permit(1).await;
        if in_order.is_ok() {
            tail.last_id.set(Some(id));
        }
    }

    /// The last ID of a stream: its group log's answer when it has one (which knows what
    /// XSETID set and what trimming removed), else its last durable batch's; `0-0` for a
    /// stream that never had an entry.
    async fn stream_last_id(&self, topic: &str, partition: &Partition) -> Result<StreamId, StreamAddError> {
        match self.stream_state_if_any(topic).await {
            Ok(Some(groups)) => return groups.last_id().await.map_err(|error| group_storage_error(error).into()),
            Ok(None) => {}
            Err(error) => return Err(group_storage_error(error).into()),
        }
        let end = partition.high_watermark();
        if end == partition.log_start_offset() {
            return Ok(StreamId::MIN);
        }
        let read = partition.read(end - 1, STREAM_TAIL_READ_BYTES).await.map_err(ShardError::from)?;
        let last_batch = batch::split(&read.records).filter_map(Result::ok).last();
        Ok(last_batch.and_then(|range| entry::last_id(&read.records.slice(range))).unwrap_or(StreamId::MIN))
    }

    async fn stream_groups_of(&self, topic: &str) -> Result<Rc<StreamGroups>, GroupError> {
        if let Some(groups) = self.stream_groups.borrow().get(topic) {
            return Ok(groups.clone());
        }
        let Ok(_opening) = self.stream_groups_opening.acquire_permit(1).await else {
            return Err(GroupError::Storage("the shard is closing".to_string()));
        };
        if let Some(groups) = self.stream_groups.borrow().get(topic) {
            return Ok(groups.clone());
        }
        let stream = (topic.to_string(), crate::resp::streams::STREAM_PARTITION);
        let partition = self.partition(&stream).map_err(|_| GroupError::NoStream)?;
        let groups = Rc::new(StreamGroups::open(self, topic, partition).await.map_err(GroupError::Storage)?);
        self.stream_groups.borrow_mut().insert(topic.to_string(), groups.clone());
        self.streams_without_groups.borrow_mut().remove(topic);
        Ok(groups)
    }

    /// The stream's groups and deleted entries when it has a group log (without creating one).
    async fn stream_state_if_any(&self, topic: &str) -> Result<Option<Rc<StreamGroups>>, GroupError> {
        if let Some(groups) = self.stream_groups.borrow().get(topic) {
            return Ok(Some(groups.clone()));
        }
        if self.streams_without_groups.borrow().contains(topic) {
            return Ok(None);
        }
        let dir = self.config.data_dir.join("topics").join(topic).join(crate::stream_groups::GROUP_LOG_DIR);
        if !dir.exists() {
            self.streams_without_groups.borrow_mut().insert(topic.to_string());
            return Ok(None);
        }
        self.stream_groups_of(topic).await.map(Some)
    }

    /// The runs of offsets deleted (XDEL) from the stream `topic` in `from..to`.
    async fn stream_deleted(&self, topic: &str, from: i64, to: i64) -> Result<Vec<(i64, i64)>, ShardError> {
        match self.stream_state_if_any(topic).await {
            Ok(Some(groups)) => Ok(groups.deleted_runs(from, to)),
            Ok(None) => Ok(Vec::new()),
            Err(error) => Err(group_storage_error(error)),
        }
    }

    /// A stream's batches from `offset` and the deleted offsets among them.
    async fn stream_read(
        &self,
        stream: TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<StreamChunk, ShardError> {
        let read = self.partition(&stream)?.read(offset, max_bytes).await?;
        let fetched = Fetched {
            records: read.records,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        };
        let end = batch::split(&fetched.records)
            .map_while(Result::ok)
            .last()
            .and_then(|range| batch::header(&fetched.records[range]).ok())
            .map_or(offset, |header| header.last_offset() + 1);
        let deleted = self.stream_deleted(&stream.0, offset, end).await?;
        Ok(StreamChunk { fetched, deleted })
    }

    fn partition(&self, topic_partition: &TopicPartition) -> Result<Rc<Partition>, ShardError> {
        debug_assert_eq!(self.owner_of(&topic_partition.0, topic_partition.1), self.id, "routed to the wrong shard");
        self.partitions
            .borrow()
            .get(topic_partition)
            .map(|owned| owned.partition.clone())
            .ok_or(ShardError::UnknownTopicOrPartition)
    }

    async fn produce(
        &self,
        acks: i16,
        writes: Vec<(TopicPartition, bytes::Bytes)>,
        on_appended: Option<futures::channel::oneshot::Sender<()>>,
    ) -> Vec<Result<Appended, ShardError>> {
        let mut appended = Vec::with_capacity(writes.len());
        for (topic_partition, records) in writes {
            appended.push(self.append_records(&topic_partition, records).await);
        }
        if let Some(on_appended) = on_appended {
            let _ = on_appended.send(());
        }
        if acks == -1 {
            for result in &mut appended {
                if let Ok((partition, Some(last))) = result {
                    if let Err(error) = partition.wait_durable(last).await {
                        *result = Err(error.into());
                    }
                }
            }
        }
        appended
            .into_iter()
            .map(|result| {
                result.and_then(|(_, last)| {
                    last.map(|last| Appended {
                        base_offset: last.base_offset,
                        last_offset: last.last_offset,
                        log_start_offset: last.log_start_offset,
                    })
                    .ok_or(ShardError::Partition(PartitionError::InvalidBatch(
                        batch::BatchError::Truncated { needed_bytes: batch::BATCH_HEADER_BYTES, available_bytes: 0 },
                    )))
                })
            })
            .collect()
    }

    /// Appends every batch of one partition's `records`; returns the first append's base offset
    /// folded into the last append's result (what Produce reports). `records` of one batch is
    /// stored as it is (`Partition::append_bytes`), several batches each in a copy.
    async fn append_records(
        &self,
        topic_partition: &TopicPartition,
        mut records: bytes::Bytes,
    ) -> Result<(Rc<Partition>, Option<sluice_engine::partition::AppendResult>), ShardError> {
        let partition = self.partition(topic_partition)?;
        // Check the framing of every batch before appending any, so a bad request is all or nothing.
        let ranges: Vec<_> = batch::split(&records)
            .collect::<Result<_, _>>()
            .map_err(|error| ShardError::Partition(PartitionError::InvalidBatch(error)))?;
        let mut first_base = None;
        let mut last = None;
        let tail = self.stream_tails.borrow().get(topic_partition).cloned();
        let several = ranges.len() > 1;
        if several || !records.is_unique() {
            self.metrics.produce_copied(records.len()); // (one batch: the partition copies it)
        }
        for range in ranges {
            let batch =
                if several { bytes::Bytes::copy_from_slice(&records[range]) } else { std::mem::take(&mut records) };
            let max_timestamp =
                tail.as_ref().and_then(|_| batch::header(&batch).ok()).map(|header| header.max_timestamp.get());
            let batch_bytes = batch.len();
            let mut result = partition.append_bytes(batch).await?;
            self.metrics.kafka_batch_produced(batch_bytes, result.last_offset - result.base_offset + 1);
            if let (Some(tail), Some(max_timestamp)) = (&tail, max_timestamp) {
                tail.note_kafka_batch(max_timestamp, result.last_offset);
            }
            let base = *first_base.get_or_insert(result.base_offset);
            result.base_offset = base;
            last = Some(result);
        }
        Ok((partition, last))
    }

    /// XADD on the stream's owner: picks the entry's ID after the stream's last, appends the
    /// entry (in ID order), then waits for its fdatasync: the entry is durable when answered.
    /// Appends entries to a stream as one batch: IDs assigned in order (an entry whose ID is
    /// refused gets its error, the others go on), then one append and one durable wait.
    async fn stream_add(
        &self,
        stream: TopicPartition,
        entries: Vec<NewEntry>,
        on_appended: Option<futures::channel::oneshot::Sender<()>>,
    ) -> Vec<Result<StreamAdded, StreamAddError>> {
        let count = entries.len();
        let failed_all = |error: StreamAddError| vec![Err(error); count];
        let partition = match self.partition(&stream) {
            Ok(partition) => partition,
            Err(error) => return failed_all(error.into()),
        };
        let tail = self.stream_tails.borrow_mut().entry(stream.clone()).or_default().clone();
        let order = tail.order();
        let Ok(_in_order) = order.acquire_permit(1).await else {
            return failed_all(ShardError::Partition(PartitionError::Closed).into());
        };
        let mut last = match tail.last_id.get() {
            Some(last) => last,
            None => match self.stream_last_id(&stream.0, &partition).await {
                Ok(last) => last,
                Err(error) => return failed_all(error),
            },
        };
        let now = now_ms().max(0) as u64;
        let ids: Vec<Result<StreamId, StreamAddError>> = entries
            .iter()
            .map(|entry| {
                let id = stream_id::assign(last, entry.id, now).map_err(StreamAddError::Id)?;
                last = id;
                Ok(id)
            })
            .collect();
        let accepted: Vec<(StreamId, &[(bytes::Bytes, bytes::Bytes)])> =
            ids.iter().zip(&entries).filter_map(|(id, entry)| Some((*id.as_ref().ok()?, &entry.fields[..]))).collect();
        // One batch, or a few when they would pass the stream's max.message.bytes; a batch
        // refused (one entry too big) fails its entries only.
        let batches = entry::encode_within(&accepted, partition.config().message_bytes_max);
        let mut appends = Vec::with_capacity(batches.len());
        let mut through = 0;
        for (count, batch) in batches {
            let appended = partition.append_bytes(batch.into()).await;
            through += count;
            if appended.is_ok() {
                tail.last_id.set(Some(accepted[through - 1].0));
            }
            appends.push((count, appended));
        }
        drop(_in_order);
        if let Some(on_appended) = on_appended {
            let _ = on_appended.send(());
        }
        // Each accepted entry's offset once durable, in order.
        let mut offsets: Vec<Result<i64, PartitionError>> = Vec::with_capacity(accepted.len());
        for (count, appended) in appends {
            let durable = match appended {
                Ok(appended) => partition.wait_durable(&appended).await.map(|()| appended.base_offset),
                Err(error) => Err(error),
            };
            offsets.extend((0..count as i64).map(|index| durable.clone().map(|base_offset| base_offset + index)));
        }
        let mut offsets = offsets.into_iter();
        ids.into_iter()
            .map(|id| {
                let id = id?;
                let offset = offsets.next().expect("an offset per accepted entry")?;
                Ok(StreamAdded { id, offset })
            })
            .collect()
    }

    /// Reads one after the other, so that what they hold together stays within
    /// `response_bytes_max` before anything is read past it.
    async fn fetch(
        &self,
        reads: Vec<(TopicPartition, i64, usize)>,
        response_bytes_max: usize,
    ) -> Vec<Result<FetchedToSend, ShardError>> {
        let mut results = Vec::with_capacity(reads.len());
        let mut total_bytes = 0usize;
        for (topic_partition, offset, max_bytes) in reads {
            let left_bytes = response_bytes_max.saturating_sub(total_bytes);
            let result = match self.partition(&topic_partition) {
                Ok(partition) if total_bytes > 0 && left_bytes == 0 => {
                    partition.read_nothing(offset).map(|read| SendRead {
                        records: Records::Memory(read.records),
                        high_watermark: read.high_watermark,
                        log_start_offset: read.log_start_offset,
                    })
                }
                Ok(partition) => partition.read_to_send(offset, max_bytes.min(left_bytes)).await,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            let result = result.map_err(ShardError::from).map(|read| FetchedToSend {
                records: read.records,
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
            });
            if let Ok(fetched) = &result {
                total_bytes += fetched.records.len();
            }
            results.push(result);
        }
        results
    }

    /// Waits until a watched partition, on whichever shard owns it, has data past the offset
    /// given with it, or `wait_ms` have passed (Fetch long poll, XREAD BLOCK).
    pub async fn wait_for_data_anywhere(self: &Rc<Self>, watches: Vec<(TopicPartition, i64)>, wait_ms: u64) {
        let mut by_owner: std::collections::BTreeMap<usize, Vec<(TopicPartition, i64)>> = Default::default();
        for (topic_partition, offset) in watches {
            by_owner
                .entry(self.owner_of(&topic_partition.0, topic_partition.1))
                .or_default()
                .push((topic_partition, offset));
        }
        if by_owner.is_empty() {
            glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
            return;
        }
        let waits: Vec<_> = by_owner
            .into_iter()
            .map(|(owner, watches)| {
                Box::pin(self.call(owner, ShardRequest::WaitForData { watches, timeout_ms: wait_ms }))
            })
            .collect();
        let first = futures::future::select_all(waits);
        let deadline = glommio::timer::sleep(Duration::from_millis(wait_ms + 5));
        futures_lite::future::or(async { drop(first.await) }, deadline).await;
    }

    /// Waits (bounded by `timeout_ms`) until a watched partition's high watermark passes the
    /// offset the reader has, woken by appends, not by polling.
    async fn wait_for_data(&self, watches: &[(TopicPartition, i64)], timeout_ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let notified = self.appended.notified();
            let ready = watches.iter().any(|(topic_partition, offset)| {
                self.partitions
                    .borrow()
                    .get(topic_partition)
                    .is_none_or(|owned| owned.partition.high_watermark() > *offset)
            });
            let now = Instant::now();
            if ready || now >= deadline {
                return;
            }
            futures_lite::future::or(notified, glommio::timer::sleep(deadline - now)).await;
        }
    }

    async fn list_offsets(&self, queries: Vec<(TopicPartition, i64)>) -> Vec<Result<OffsetAt, ShardError>> {
        let mut results = Vec::with_capacity(queries.len());
        for (topic_partition, timestamp) in queries {
            let result = async {
                let partition = self.partition(&topic_partition)?;
                Ok(match timestamp {
                    EARLIEST_TIMESTAMP => OffsetAt { offset: partition.log_start_offset(), timestamp: -1 },
                    LATEST_TIMESTAMP => OffsetAt { offset: partition.high_watermark(), timestamp: -1 },
                    timestamp => {
                        match partition.offset_for_timestamp(timestamp, compression::uncompressed_batch).await? {
                            Some((offset, timestamp)) => OffsetAt { offset, timestamp },
                            None => OffsetAt { offset: -1, timestamp: -1 },
                        }
                    }
                })
            }
            .await;
            results.push(result);
        }
        results
    }

    /// DeleteRecords, and XTRIM's plain trims: moves each partition's start to its offset (-1:
    /// the end). Emptying a stream's partition goes through the stream's groups, which record
    /// its last ID (`GroupCall::Trim`): once its log no longer holds the newest entry, Redis's
    /// rule that IDs only grow still holds, whichever front door emptied it.
    async fn delete_records(self: &Rc<Self>, deletes: Vec<(TopicPartition, i64)>) -> Vec<Result<i64, ShardError>> {
        let mut results = Vec::with_capacity(deletes.len());
        for (topic_partition, offset) in deletes {
            results.push(self.delete_records_of(&topic_partition, offset).await);
        }
        results
    }

    async fn delete_records_of(
        self: &Rc<Self>,
        topic_partition: &TopicPartition,
        offset: i64,
    ) -> Result<i64, ShardError> {
        let partition = self.partition(topic_partition)?;
        let end = partition.high_watermark();
        let empties_stream = topic_partition.1 == crate::resp::streams::STREAM_PARTITION
            && (offset == -1 || offset == end)
            && end > partition.log_start_offset();
        let start = if empties_stream {
            let trim = StreamGroupCall::Trim { to: end, references: References::Keep };
            match self.stream_group_call(&topic_partition.0, trim).await.map_err(group_storage_error)? {
                StreamGroupAnswer::Trimmed { start } => start,
                _ => unreachable!("Trim answers with Trimmed"),
            }
        } else {
            partition.delete_records(offset)?
        };
        partition.enforce_retention(now_ms());
        Ok(start)
    }

    /// Metadata shard: applies a catalogue change to a draft, persists the manifest, then
    /// broadcasts the new snapshot and waits until every shard has opened or closed its
    /// partitions, so the change is visible everywhere when the client hears back.
    async fn change_catalogue(
        self: &Rc<Self>,
        validate_only: bool,
        change: impl FnOnce(&mut Metadata) -> Vec<TopicChangeResult>,
    ) -> Vec<TopicChangeResult> {
        assert_eq!(self.id, METADATA_SHARD, "catalogue changes run on the metadata shard");
        let Ok(_permit) = self.catalogue_lock.acquire_permit(1).await else {
            return Vec::new();
        };
        let mut draft = (*self.metadata()).clone();
        let mut results = change(&mut draft);
        if validate_only || results.iter().all(|change| change.result.is_err()) {
            return results;
        }
        if let Err(reason) = self.publish_catalogue(draft).await {
            for change in results.iter_mut().filter(|change| change.result.is_ok()) {
                change.result = Err(TopicChangeError::Storage(reason.clone()));
            }
        }
        results
    }

    /// Persists `draft` as the new manifest, then broadcasts it and waits until every shard has
    /// applied it. Call with the catalogue lock held.
    async fn publish_catalogue(self: &Rc<Self>, mut draft: Metadata) -> Result<(), String> {
        draft.version += 1;
        if let Err(error) = draft.to_manifest().store(&self.config.data_dir) {
            let reason = error.to_string();
            tracing::error!(%reason, "persisting the manifest failed; catalogue unchanged");
            return Err(reason);
        }
        let snapshot = Arc::new(draft);
        // Two rounds: every shard opens and closes partitions, then every shard shows the change.
        let applies: Vec<_> =
            (0..self.count).map(|shard| self.call(shard, ShardRequest::ApplyMetadata(snapshot.clone()))).collect();
        futures::future::join_all(applies).await;
        let exposes: Vec<_> =
            (0..self.count).map(|shard| self.call(shard, ShardRequest::ExposeMetadata(snapshot.clone()))).collect();
        futures::future::join_all(exposes).await;
        Ok(())
    }

    /// Metadata shard: the next producer id, persisted in the manifest before it is handed
    /// out, so no id is ever given twice, also across restarts.
    async fn allocate_producer_id(self: &Rc<Self>) -> Result<i64, TopicChangeError> {
        assert_eq!(self.id, METADATA_SHARD, "producer ids are allocated on the metadata shard");
        let Ok(_permit) = self.catalogue_lock.acquire_permit(1).await else {
            return Err(TopicChangeError::Storage("the catalogue is closed".to_string()));
        };
        let mut draft = (*self.metadata()).clone();
        let producer_id = draft.next_producer_id.max(0);
        draft.next_producer_id = producer_id + 1;
        self.publish_catalogue(draft).await.map_err(TopicChangeError::Storage)?;
        Ok(producer_id)
    }

    async fn create_topics(self: &Rc<Self>, topics: Vec<NewTopic>, validate_only: bool) -> Vec<TopicChangeResult> {
        let default_partitions = self.config.default_partitions;
        let results = self
            .change_catalogue(validate_only, |draft| {
                topics
                    .iter()
                    .map(|topic| TopicChangeResult {
                        name: topic.name.clone(),
                        result: draft.add_topic(topic, default_partitions),
                    })
                    .collect()
            })
            .await;
        for created in results.iter().filter_map(|change| change.result.as_ref().ok()) {
            if !validate_only {
                tracing::info!(topic = %created.name, partitions = created.partitions, "topic created");
            }
        }
        results
    }

    async fn delete_topics(self: &Rc<Self>, names: Vec<String>) -> Vec<TopicChangeResult> {
        let results = self
            .change_catalogue(false, |draft| {
                names
                    .iter()
                    .map(|name| TopicChangeResult { name: name.clone(), result: draft.remove_topic(name) })
                    .collect()
            })
            .await;
        for deleted in results.iter().filter(|change| change.result.is_ok()) {
            let topic_dir = self.config.data_dir.join("topics").join(&deleted.name);
            if let Err(error) = std::fs::remove_dir_all(&topic_dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %topic_dir.display(), %error, "removing a deleted topic's directory failed");
                }
            }
            tracing::info!(topic = %deleted.name, "topic deleted");
        }
        results
    }

    async fn alter_topic_configs(
        self: &Rc<Self>,
        changes: Vec<(String, ConfigChanges)>,
        validate_only: bool,
    ) -> Vec<TopicChangeResult> {
        let results = self
            .change_catalogue(validate_only, |draft| {
                changes
                    .iter()
                    .map(|(name, change)| TopicChangeResult {
                        name: name.clone(),
                        result: draft.alter_topic_configs(name, change),
                    })
                    .collect()
            })
            .await;
        if !validate_only {
            for topic in results.iter().filter_map(|change| change.result.as_ref().ok()) {
                let overrides: Vec<String> =
                    topic.overrides.iter().map(|(key, value)| format!("{key}={value}")).collect();
                tracing::info!(topic = %topic.name, overrides = %overrides.join(","), "topic configs changed");
            }
        }
        results
    }

    async fn create_partitions(
        self: &Rc<Self>,
        counts: Vec<(String, u32)>,
        validate_only: bool,
    ) -> Vec<TopicChangeResult> {
        self.change_catalogue(validate_only, |draft| {
            counts
                .iter()
                .map(|(name, count)| TopicChangeResult { name: name.clone(), result: draft.grow_topic(name, *count) })
                .collect()
        })
        .await
    }

    /// Opens the partitions this shard owns that `metadata` has and it lacks; closes and deletes
    /// those it has that `metadata` dropped (or that belong to a deleted and re-created topic).
    /// The catalogue shows a change only once every shard applied it, so a client that sees a
    /// topic on any shard finds its partitions open on their owners (`publish_catalogue`).
    pub async fn apply_metadata(&self, metadata: Arc<Metadata>) {
        if metadata.version < self.applied_version.get() {
            return;
        }
        self.applied_version.set(metadata.version);
        let stale: Vec<(TopicPartition, Rc<Partition>)> = self
            .partitions
            .borrow()
            .iter()
            .filter(|((topic, _), owned)| metadata.topics.get(topic).is_none_or(|meta| meta.topic_id != owned.topic_id))
            .map(|(key, owned)| (key.clone(), owned.partition.clone()))
            .collect();
        for (key, partition) in stale {
            self.partitions.borrow_mut().remove(&key);
            self.stream_tails.borrow_mut().remove(&key);
            self.streams_without_groups.borrow_mut().remove(&key.0);
            let groups = self.stream_groups.borrow_mut().remove(&key.0);
            if let Some(groups) = groups {
                groups.close().await;
            }
            partition.close().await;
            if let Err(error) = std::fs::remove_dir_all(partition.dir()) {
                tracing::warn!(dir = %partition.dir().display(), %error, "removing a deleted partition failed");
            }
        }
        for topic in metadata.topics.values() {
            for index in 0..topic.partitions as i32 {
                let key = (topic.name.clone(), index);
                if self.owner_of(&topic.name, index) != self.id || self.partitions.borrow().contains_key(&key) {
                    continue;
                }
                let dir = self.config.data_dir.join("topics").join(&topic.name).join(index.to_string());
                match Partition::open(&dir, topic.config.clone(), self.appended.clone()).await {
                    Ok(partition) => {
                        self.partitions
                            .borrow_mut()
                            .insert(key, OwnedPartition { topic_id: topic.topic_id, partition });
                    }
                    Err(error) => {
                        tracing::error!(dir = %dir.display(), %error, "opening a partition failed; it stays offline");
                    }
                }
            }
        }
        for ((topic, _), owned) in self.partitions.borrow().iter() {
            if let Some(meta) = metadata.topics.get(topic) {
                if owned.partition.config() != meta.config {
                    owned.partition.set_config(meta.config.clone());
                }
            }
        }
    }

    /// Makes `metadata` this shard's view of the catalogue (after every shard applied it).
    pub fn expose_metadata(&self, metadata: Arc<Metadata>) {
        if metadata.version >= self.metadata.borrow().version {
            *self.metadata.borrow_mut() = metadata;
        }
    }

    /// Background task: retention over this shard's partitions, bounded work per tick.
    pub async fn run_retention(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.retention_check_interval_ms);
        loop {
            glommio::timer::sleep(interval).await;
            let partitions: Vec<Rc<Partition>> =
                self.partitions.borrow().values().map(|owned| owned.partition.clone()).collect();
            for partition in partitions {
                partition.enforce_retention(now_ms());
                glommio::yield_if_needed().await;
            }
        }
    }

    /// Topic creation on demand (Kafka auto-create, XADD): asks the metadata shard and returns
    /// once this shard's snapshot has the topic (or it could not be created).
    /// `partitions`: `None` for the broker's default.
    pub async fn ensure_topic(self: &Rc<Self>, name: &str, partitions: Option<u32>) -> Result<(), TopicChangeError> {
        if self.metadata().topics.contains_key(name) {
            return Ok(());
        }
        let request = ShardRequest::CreateTopics {
            topics: vec![NewTopic { name: name.to_string(), partitions, replication_factor: -1, configs: Vec::new() }],
            validate_only: false,
        };
        match self.call(METADATA_SHARD, request).await {
            ShardResponse::TopicChanges(results) => match results.into_iter().next().map(|change| change.result) {
                Some(Ok(_)) | Some(Err(TopicChangeError::AlreadyExists)) => Ok(()),
                Some(Err(error)) => Err(error),
                None => Err(TopicChangeError::Storage("no answer from the metadata shard".to_string())),
            },
            _ => unreachable!("CreateTopics answers with TopicChanges"),
        }
    }

    pub fn set_coordinator(&self, coordinator: Rc<Coordinator>) {
        *self.coordinator.borrow_mut() = Some(coordinator);
    }

    /// Runs a group request on the group's coordinator shard.
    pub async fn group_call(self: &Rc<Self>, group: &str, call: GroupCall) -> GroupAnswer {
        match self.call(coordinator(group, self.count), ShardRequest::Group(call)).await {
            ShardResponse::Group(answer) => answer,
            _ => unreachable!("group calls answer with Group"),
        }
    }

    /// Runs `call` on every shard's coordinator (ListGroups).
    pub async fn group_call_everywhere(self: &Rc<Self>, call: impl Fn() -> GroupCall) -> Vec<GroupAnswer> {
        let calls: Vec<_> = (0..self.count).map(|shard| self.call(shard, ShardRequest::Group(call()))).collect();
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|response| match response {
                ShardResponse::Group(answer) => answer,
                _ => unreachable!("group calls answer with Group"),
            })
            .collect()
    }

    /// Closes every partition (flushing what is queued); used at shutdown.
    pub async fn close_all(&self) {
        let coordinator = self.coordinator.borrow().clone();
        if let Some(coordinator) = coordinator {
            coordinator.close().await;
        }
        let groups: Vec<Rc<StreamGroups>> = self.stream_groups.borrow_mut().drain().map(|(_, groups)| groups).collect();
        for groups in groups {
            groups.close().await;
        }
        let partitions: Vec<Rc<Partition>> =
            self.partitions.borrow().values().map(|owned| owned.partition.clone()).collect();
        for partition in partitions {
            partition.close().await;
        }
    }
}

/// A stream's group log that could not be opened, as a shard error.
fn group_storage_error(error: GroupError) -> ShardError {
    match error {
        GroupError::NoStream => ShardError::UnknownTopicOrPartition,
        GroupError::Storage(reason) => ShardError::Partition(PartitionError::Storage { reason }),
        other => {
            ShardError::Partition(PartitionError::Storage { reason: format!("the stream's group log: {other:?}") })
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}
