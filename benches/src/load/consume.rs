//! The consume run: read a topic (or `topics` of them, named as `produce --topics` names them)
//! from its earliest offsets up to the end offsets it had when the run started (catch-up
//! reading), with `consumers` connections sharing the partitions,
//! one Fetch at a time each. Then the loopback TCP bandwidth of this machine, the ceiling a
//! broker serving from memory is compared with.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest};
use serde::Serialize;
use sluice_engine::record::batch;

use super::admin::{self, topic_name, topic_names};
use super::limits::{
    CONNECTIONS_MAX, FETCH_RESPONSE_BYTES_MAX, FETCH_VERSION, FETCH_WAIT_MS, LIST_OFFSETS_VERSION,
    LOOPBACK_CHUNK_BYTES, LOOPBACK_MEASURE_TIME, TOPICS_MAX,
};
use super::stats::{print_progress, LiveCounters};
use super::wire::{error_name, ClientError, Connection};

/// Fetches in a row that may return nothing for a partition below its end offset before the
/// consumer gives up on the run (each waits up to [`FETCH_WAIT_MS`]).
const EMPTY_FETCHES_MAX: u32 = 20;
/// ListOffsets timestamps meaning "earliest" and "latest".
const EARLIEST: i64 = -2;
pub(super) const LATEST: i64 = -1;

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeConfig {
    pub bootstrap: String,
    pub topic: String,
    /// Topics to read: with more than 1, `<topic>-0` ... `<topic>-<topics - 1>`.
    pub topics: usize,
    pub consumers: usize,
    pub fetch_partition_bytes: i32,
    /// Stop reading after this many seconds even if the end is not reached.
    pub duration_s_max: f64,
    /// Measure the loopback TCP bandwidth after reading.
    pub loopback: bool,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeResult {
    pub partitions: i32,
    pub messages: u64,
    /// Record batch bytes read (what the broker sends: the log as stored).
    pub log_bytes: u64,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub log_mb_per_s: f64,
    /// Whether every partition was read up to its end offset of the start.
    pub reached_end: bool,
    pub loopback_mb_per_s: Option<f64>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

/// Where one partition is read from and up to.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    topic: String,
    partition: i32,
    next_offset: i64,
    end_offset: i64,
    empty_fetches: u32,
}

impl Cursor {
    fn done(&self) -> bool {
        self.next_offset >= self.end_offset
    }
}

/// What one consumer read.
#[derive(Debug, Default)]
struct ConsumerTotals {
    messages: u64,
    log_bytes: u64,
    reached_end: bool,
}

pub fn run(config: &ConsumeConfig) -> Result<ConsumeResult, ClientError> {
    if !(1..=CONNECTIONS_MAX).contains(&config.consumers) {
        return Err(ClientError::Encode(format!("--consumers is 1..={CONNECTIONS_MAX}")));
    }
    if !(1..=TOPICS_MAX).contains(&config.topics) {
        return Err(ClientError::Encode(format!("--topics is 1..={TOPICS_MAX}")));
    }
    let mut setup = Connection::connect(&config.bootstrap)?;
    let mut cursors = Vec::new();
    for topic in topic_names(&config.topic, config.topics) {
        let partitions = admin::wait_for_leaders(&mut setup, &topic)?;
        cursors.extend(offsets(&mut setup, &topic, partitions)?);
    }
    let partitions = cursors.len() as i32;
    let counters = LiveCounters::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(config.duration_s_max.max(0.0));
    let (stop_progress, progress_stopped) = mpsc::channel::<()>();
    let totals: Vec<ConsumerTotals> = thread::scope(|scope| {
        if config.progress {
            let counters = &counters;
            scope.spawn(move || print_progress("consume", counters, started, Duration::ZERO, progress_stopped));
        }
        let consumers: Vec<_> = (0..config.consumers)
            .map(|index| {
                let share: Vec<Cursor> = cursors.iter().skip(index).step_by(config.consumers).cloned().collect();
                let counters = &counters;
                scope.spawn(move || consume_share(config, share, deadline, counters))
            })
            .collect();
        let totals = consumers.into_iter().map(|handle| handle.join().unwrap_or_default()).collect();
        let _ = stop_progress.send(());
        totals
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let loopback_mb_per_s = config.loopback.then(|| loopback_mb_per_s(LOOPBACK_MEASURE_TIME)).transpose();
    let loopback_mb_per_s = loopback_mb_per_s.map_err(|source| ClientError::Io { doing: "loopback test", source })?;
    let messages: u64 = totals.iter().map(|totals| totals.messages).sum();
    let log_bytes: u64 = totals.iter().map(|totals| totals.log_bytes).sum();
    Ok(ConsumeResult {
        partitions,
        messages,
        log_bytes,
        elapsed_s,
        msgs_per_s: messages as f64 / elapsed_s.max(1e-9),
        log_mb_per_s: log_bytes as f64 / elapsed_s.max(1e-9) / 1e6,
        reached_end: totals.iter().all(|totals| totals.reached_end),
        loopback_mb_per_s,
        errors: counters.errors.load(Ordering::Relaxed),
        error_samples: counters.error_samples(),
    })
}

/// Earliest and latest offset of every partition.
fn offsets(connection: &mut Connection, topic: &str, partitions: i32) -> Result<Vec<Cursor>, ClientError> {
    let earliest = list_offsets(connection, topic, partitions, EARLIEST)?;
    let latest = list_offsets(connection, topic, partitions, LATEST)?;
    Ok((0..partitions)
        .map(|partition| Cursor {
            topic: topic.to_string(),
            partition,
            next_offset: earliest[partition as usize],
            end_offset: latest[partition as usize],
            empty_fetches: 0,
        })
        .collect())
}

pub(super) fn list_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: i32,
    timestamp: i64,
) -> Result<Vec<i64>, ClientError> {
    let request =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                (0..partitions)
                    .map(|partition| {
                        ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = connection.call(&request, LIST_OFFSETS_VERSION)?;
    let mut offsets = vec![None; partitions as usize];
    for found in response.topics.iter().flat_map(|topic| &topic.partitions) {
        if found.error_code != 0 {
            return Err(ClientError::Broker {
                doing: format!("offsets of {topic}/{}", found.partition_index),
                code: found.error_code,
            });
        }
        if let Some(slot) = usize::try_from(found.partition_index).ok().and_then(|index| offsets.get_mut(index)) {
            *slot = Some(found.offset);
        }
    }
    offsets
        .into_iter()
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| ClientError::Decode(format!("ListOffsets left out a partition of {topic}")))
}

/// One consumer: fetch its partitions until each reaches its end offset, the deadline passes,
/// or something fails (noted in `counters`).
fn consume_share(
    config: &ConsumeConfig,
    mut cursors: Vec<Cursor>,
    deadline: Instant,
    counters: &LiveCounters,
) -> ConsumerTotals {
    let mut totals = ConsumerTotals::default();
    let note = |description: String| counters.note_error(description);
    let mut connection = match Connection::connect(&config.bootstrap) {
        Ok(connection) => connection,
        Err(error) => {
            note(error.to_string());
            return totals;
        }
    };
    while cursors.iter().any(|cursor| !cursor.done()) && Instant::now() < deadline {
        if let Err(error) = fetch_once(config, &mut connection, &mut cursors, &mut totals, counters) {
            note(error.to_string());
            return totals;
        }
    }
    totals.reached_end = cursors.iter().all(Cursor::done);
    totals
}

fn fetch_once(
    config: &ConsumeConfig,
    connection: &mut Connection,
    cursors: &mut [Cursor],
    totals: &mut ConsumerTotals,
    counters: &LiveCounters,
) -> Result<(), ClientError> {
    let wanted = cursors.iter().filter(|cursor| !cursor.done());
    let request = fetch_request(
        wanted.map(|cursor| (cursor.topic.as_str(), cursor.partition, cursor.next_offset)),
        config.fetch_partition_bytes,
        FETCH_WAIT_MS,
    );
    let response = connection.call(&request, FETCH_VERSION)?;
    if response.error_code != 0 {
        return Err(ClientError::Broker { doing: "fetch".into(), code: response.error_code });
    }
    for (topic, data) in fetched_partitions(&response) {
        let Some(cursor) =
            cursors.iter_mut().find(|cursor| cursor.partition == data.partition_index && cursor.topic == topic)
        else {
            continue;
        };
        if data.error_code != 0 {
            return Err(ClientError::Broker {
                doing: format!("fetch of {topic}/{}: {}", cursor.partition, error_name(data.error_code)),
                code: data.error_code,
            });
        }
        let read = walk_batches(data.records.as_deref().unwrap_or_default(), cursor.next_offset, |_, _| {});
        counters.add_acked(read.messages, read.log_bytes);
        totals.messages += read.messages;
        totals.log_bytes += read.log_bytes;
        advance(cursor, read.next_offset)?;
    }
    Ok(())
}

/// A Fetch of `partitions` (topic, partition, offset; grouped by topic), each up to
/// `partition_bytes`, waiting up to `max_wait_ms` for the first byte.
pub(super) fn fetch_request<'a>(
    partitions: impl Iterator<Item = (&'a str, i32, i64)>,
    partition_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, partition, offset) in partitions {
        let wanted = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(partition_bytes);
        match topics.last_mut().filter(|last| last.topic.0.as_str() == topic) {
            Some(last) => last.partitions.push(wanted),
            None => topics.push(FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![wanted])),
        }
    }
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_RESPONSE_BYTES_MAX)
        .with_topics(topics)
}

/// Every partition of a Fetch response, with its topic's name.
pub(super) fn fetched_partitions(response: &FetchResponse) -> impl Iterator<Item = (&str, &PartitionData)> {
    response.responses.iter().flat_map(|topic| topic.partitions.iter().map(move |data| (topic.topic.0.as_str(), data)))
}

/// Moves a cursor past what was read; too many empty reads below the end is an error.
fn advance(cursor: &mut Cursor, next_offset: Option<i64>) -> Result<(), ClientError> {
    match next_offset {
        Some(next) if next > cursor.next_offset => {
            cursor.next_offset = next;
            cursor.empty_fetches = 0;
        }
        _ if cursor.done() => {}
        _ => {
            cursor.empty_fetches += 1;
            if cursor.empty_fetches >= EMPTY_FETCHES_MAX {
                return Err(ClientError::Timeout {
                    doing: format!(
                        "partition {} returned nothing at offset {} below its end {} in {EMPTY_FETCHES_MAX} fetches",
                        cursor.partition, cursor.next_offset, cursor.end_offset
                    ),
                });
            }
        }
    }
    Ok(())
}

/// What the whole batches of a fetched `records` field hold.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BatchesRead {
    pub messages: u64,
    pub log_bytes: u64,
    /// The offset after the last whole batch; None if there was none.
    pub next_offset: Option<i64>,
}

/// Counts the whole batches from offset `from` on; a batch cut at the end (allowed by the
/// protocol) is left out, and so are batches before `from` (a broker may start a response at
/// an earlier batch, as Kafka's sendfile ranges do; consumers skip those records). Each batch
/// counted goes to `on_batch` with the records of it that count.
pub(super) fn walk_batches(records: &[u8], from: i64, mut on_batch: impl FnMut(&[u8], u64)) -> BatchesRead {
    let mut read = BatchesRead::default();
    let mut rest = records;
    while let Ok((header, total_bytes)) = batch::frame(rest) {
        let batch_bytes = rest;
        rest = &rest[total_bytes..];
        let (base, last) = (header.base_offset.get(), header.last_offset());
        if last < from {
            continue;
        }
        let records = u64::try_from(header.records_count.get()).unwrap_or(0);
        let counted = if base >= from { records } else { (last + 1 - from) as u64 };
        on_batch(&batch_bytes[..total_bytes], counted);
        read.messages += counted;
        read.log_bytes += total_bytes as u64;
        read.next_offset = Some(last + 1);
    }
    read
}

/// Bandwidth of one loopback TCP connection: 1 MiB writes for `duration`, read as they come.
pub fn loopback_mb_per_s(duration: Duration) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let writer = thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(address)?;
        let chunk = vec![0x5a_u8; LOOPBACK_CHUNK_BYTES];
        let started = Instant::now();
        while started.elapsed() < duration {
            stream.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let mut buffer = vec![0u8; LOOPBACK_CHUNK_BYTES];
    let started = Instant::now();
    let mut received = 0u64;
    loop {
        match stream.read(&mut buffer)? {
            0 => break,
            count => received += count as u64,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    writer.join().map_err(|_| std::io::Error::other("loopback writer panicked"))??;
    Ok(received as f64 / seconds.max(1e-9) / 1e6)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record_batch_sized;

    #[test]
    fn whole_batches_are_counted_and_a_cut_one_is_left_for_the_next_fetch() {
        let mut first = record_batch_sized(3, 10, 0);
        batch::set_base_offset(&mut first, 100);
        let mut second = record_batch_sized(2, 10, 0);
        batch::set_base_offset(&mut second, 103);
        let mut records = [first.clone(), second.clone()].concat();
        assert_eq!(
            walk_batches(&records, 100, |_, _| {}),
            BatchesRead { messages: 5, log_bytes: records.len() as u64, next_offset: Some(105) }
        );
        assert_eq!(
            walk_batches(&records, 102, |_, _| {}),
            BatchesRead { messages: 3, log_bytes: records.len() as u64, next_offset: Some(105) },
            "records before the fetch offset are not counted"
        );
        assert_eq!(
            walk_batches(&records, 103, |_, _| {}),
            BatchesRead { messages: 2, log_bytes: second.len() as u64, next_offset: Some(105) },
            "nor are batches before it"
        );
        records.truncate(first.len() + second.len() / 2);
        assert_eq!(
            walk_batches(&records, 100, |_, _| {}),
            BatchesRead { messages: 3, log_bytes: first.len() as u64, next_offset: Some(103) }
        );
        assert_eq!(walk_batches(&[], 0, |_, _| {}), BatchesRead::default());
    }

    #[test]
    fn a_fetch_asks_for_each_topic_once_with_its_partitions_in_order() {
        let wanted = [("a", 0, 10), ("a", 1, 20), ("b", 0, 30)];
        let request = fetch_request(wanted.into_iter(), 1 << 20, 100);
        let asked: Vec<(&str, Vec<(i32, i64)>)> = request
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic.partitions.iter().map(|p| (p.partition, p.fetch_offset)).collect();
                (topic.topic.0.as_str(), partitions)
            })
            .collect();
        assert_eq!(asked, [("a", vec![(0, 10), (1, 20)]), ("b", vec![(0, 30)])]);
        assert_eq!((request.max_wait_ms, request.min_bytes), (100, 1));
    }

    #[test]
    fn a_partition_that_stops_moving_below_its_end_fails_after_a_bound() {
        let mut cursor =
            Cursor { topic: "bench".into(), partition: 0, next_offset: 10, end_offset: 20, empty_fetches: 0 };
        advance(&mut cursor, Some(15)).unwrap();
        assert_eq!(cursor.next_offset, 15);
        for _ in 1..EMPTY_FETCHES_MAX {
            advance(&mut cursor, None).unwrap();
        }
        assert!(advance(&mut cursor, None).is_err());
    }

    #[test]
    fn loopback_moves_bytes() {
        assert!(loopback_mb_per_s(Duration::from_millis(100)).unwrap() > 0.0);
    }
}
