//! Consumers that follow a topic while a produce run writes it (`produce --consumers N`): the
//! Kafka side's end-to-end latency.
//!
//! Before the producers start, the run takes the end offset of every partition it writes (of
//! every topic); then `consumers` connections, sharing the partitions, fetch from there with long polling (a Fetch waits up
//! to [`FOLLOW_FETCH_WAIT_MS`] for data). Every batch a producer sends carries its send time
//! in its first record's key ([`PreparedProduce::stamp_send_time`]: microseconds, the write in
//! closed loop, the intended send in open loop); a consumer compares it with its own clock
//! when the Fetch response arrives and counts it once per record of the batch, for batches
//! sent after the warm-up. They stop once they have read what the producers had acknowledged
//! ([`Drain`]); reading more or less is an error.
//!
//! [`PreparedProduce::stamp_send_time`]: super::wire::PreparedProduce::stamp_send_time
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::consume::{fetch_request, fetched_partitions, list_offsets, walk_batches, LATEST};
use super::drain::{Drain, LastProgress, TARGET_UNKNOWN};
use super::limits::{FETCH_PARTITION_BYTES_DEFAULT, FETCH_VERSION, FOLLOW_FETCH_WAIT_MS};
use super::produce::Target;
use super::stats::{latency_histogram, record_latency_n, LatencySummary, LiveCounters};
use super::timeline::{epoch_us_now, Timeline};
use super::wire::{batch_send_time_us, error_name, ClientError, Connection};

/// What the following consumers measured.
#[derive(Debug, Clone, Serialize)]
pub struct FollowResult {
    pub consumers: usize,
    /// Messages read inside the producers' measured window.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// Messages read over the whole run, warm-up and drain included.
    pub messages_read_total: u64,
    /// Fetches sent, and those that came back with nothing (their wait ran out).
    pub fetches: u64,
    pub empty_fetches: u64,
    /// From each batch's send time to the Fetch response that brought it, once per record, for
    /// batches sent after the warm-up.
    pub end_to_end_latency: Option<LatencySummary>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

/// Where one partition is read from.
#[derive(Debug, Clone)]
struct Cursor {
    topic: String,
    partition: i32,
    next_offset: i64,
}

/// What every following consumer of one run shares.
pub struct Followers<'a> {
    bootstrap: &'a str,
    consumers: usize,
    timeline: &'a Timeline,
    start: Vec<Cursor>,
    pub counters: LiveCounters,
    drain: Drain,
}

/// What one consumer counted.
#[derive(Debug)]
pub struct FollowerTotals {
    read_messages: u64,
    window_messages: u64,
    fetches: u64,
    empty_fetches: u64,
    last_read: Option<Instant>,
    end_to_end: Histogram<u64>,
}

impl Default for FollowerTotals {
    fn default() -> Self {
        Self {
            read_messages: 0,
            window_messages: 0,
            fetches: 0,
            empty_fetches: 0,
            last_read: None,
            end_to_end: latency_histogram(),
        }
    }
}

impl<'a> Followers<'a> {
    /// Takes the end offset of every partition in `targets` (grouped by topic, partitions in
    /// order, as a produce run lists them): the consumers read what is written from now on.
    pub fn new(
        bootstrap: &'a str,
        targets: &[Target],
        consumers: usize,
        timeline: &'a Timeline,
    ) -> Result<Self, ClientError> {
        let mut connection = Connection::connect(bootstrap)?;
        let mut start = Vec::with_capacity(targets.len());
        for topic in targets.chunk_by(|one, next| one.topic == next.topic) {
            let name = &topic[0].topic;
            let ends = list_offsets(&mut connection, name, topic.len() as i32, LATEST)?;
            start.extend(ends.into_iter().zip(0..).map(|(next_offset, partition)| Cursor {
                topic: name.clone(),
                partition,
                next_offset,
            }));
        }
        Ok(Self {
            bootstrap,
            consumers,
            timeline,
            start,
            counters: LiveCounters::new(consumers),
            drain: Drain::new(TARGET_UNKNOWN),
        })
    }

    /// The producers are done and had this many messages acknowledged.
    pub fn producers_done(&self, acked: u64) {
        self.drain.set_target(acked);
    }

    /// One consumer: fetch its share of the partitions until everything due is read, nothing
    /// comes for too long, or the connection fails.
    pub fn follow(&self, index: usize) -> FollowerTotals {
        let mut totals = FollowerTotals::default();
        let note = |error: &dyn std::fmt::Display| self.counters.note_error(format!("consumer {index}: {error}"));
        let mut cursors: Vec<Cursor> = self.start.iter().skip(index).step_by(self.consumers).cloned().collect();
        if cursors.is_empty() {
            return totals; // more consumers than partitions
        }
        let mut connection = match Connection::connect(self.bootstrap) {
            Ok(connection) => connection,
            Err(error) => {
                note(&error);
                return totals;
            }
        };
        let mut last_progress = LastProgress::now();
        while !self.drain.done(&mut last_progress) {
            if let Err(error) = self.fetch(index, &mut connection, &mut cursors, &mut totals) {
                note(&error);
                break;
            }
        }
        totals
    }

    fn fetch(
        &self,
        index: usize,
        connection: &mut Connection,
        cursors: &mut [Cursor],
        totals: &mut FollowerTotals,
    ) -> Result<(), ClientError> {
        // A consumer's share keeps the targets' order: grouped by topic.
        let partitions = cursors.iter().map(|cursor| (cursor.topic.as_str(), cursor.partition, cursor.next_offset));
        let request = fetch_request(partitions, FETCH_PARTITION_BYTES_DEFAULT, FOLLOW_FETCH_WAIT_MS);
        let response = connection.call(&request, FETCH_VERSION)?;
        let read_at = Instant::now();
        let read_at_us = epoch_us_now();
        let sent_after_warmup_us = self.timeline.epoch_us(self.timeline.warmup_end);
        if response.error_code != 0 {
            return Err(ClientError::Broker { doing: "fetch".into(), code: response.error_code });
        }
        let mut read = 0;
        for (topic, data) in fetched_partitions(&response) {
            let Some(cursor) =
                cursors.iter_mut().find(|cursor| cursor.partition == data.partition_index && cursor.topic == topic)
            else {
                continue;
            };
            if data.error_code != 0 {
                return Err(ClientError::Broker {
                    doing: format!("fetch of {}/{}: {}", cursor.topic, cursor.partition, error_name(data.error_code)),
                    code: data.error_code,
                });
            }
            let records = data.records.as_deref().unwrap_or_default();
            let batches = walk_batches(records, cursor.next_offset, |batch, counted| {
                let sent_at_us = batch_send_time_us(batch).filter(|&sent_at_us| sent_at_us >= sent_after_warmup_us);
                if let Some(sent_at_us) = sent_at_us {
                    let latency = Duration::from_micros(read_at_us.saturating_sub(sent_at_us));
                    record_latency_n(&mut totals.end_to_end, latency, counted);
                    self.counters.record_interval_latency(index, latency);
                }
            });
            if let Some(next_offset) = batches.next_offset {
                cursor.next_offset = next_offset;
            }
            read += batches.messages;
            self.counters.add_acked(batches.messages, batches.log_bytes);
        }
        totals.fetches += 1;
        if read == 0 {
            totals.empty_fetches += 1;
            return Ok(());
        }
        totals.read_messages += read;
        if self.timeline.in_window(read_at) {
            totals.window_messages += read;
        }
        totals.last_read = totals.last_read.max(Some(read_at));
        self.drain.add_read(read);
        Ok(())
    }

    pub fn result(&self, totals: Vec<FollowerTotals>) -> FollowResult {
        let mut sum = FollowerTotals::default();
        for consumer in totals {
            sum.read_messages += consumer.read_messages;
            sum.window_messages += consumer.window_messages;
            sum.fetches += consumer.fetches;
            sum.empty_fetches += consumer.empty_fetches;
            sum.last_read = sum.last_read.max(consumer.last_read);
            // Same bounds everywhere, so adding cannot fail.
            let _ = sum.end_to_end.add(&consumer.end_to_end);
        }
        if let Some(mismatch) = self.drain.mismatch(sum.read_messages) {
            self.counters.note_error(mismatch);
        }
        let measured_s = self.timeline.measured_s(sum.last_read);
        FollowResult {
            consumers: self.consumers,
            messages: sum.window_messages,
            msgs_per_s: if measured_s > 0.0 { sum.window_messages as f64 / measured_s } else { 0.0 },
            messages_read_total: sum.read_messages,
            fetches: sum.fetches,
            empty_fetches: sum.empty_fetches,
            end_to_end_latency: (!sum.end_to_end.is_empty()).then(|| LatencySummary::of(&sum.end_to_end)),
            errors: self.counters.errors.load(Ordering::Relaxed),
            error_samples: self.counters.error_samples(),
        }
    }
}
