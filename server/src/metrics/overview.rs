//! The console's JSON (`GET /api/overview`): the same merged [`BrokerMetrics`] a Prometheus
//! scrape renders, shaped for a page: partitions grouped by topic, committed offsets grouped by
//! consumer group with their lag, stream groups with their dead-letter depth, the traffic
//! counters and the produce latency histograms. Everything is a running total or a current
//! value; the page derives rates from two readings, so the broker keeps no history for it.
use std::collections::BTreeMap;

use serde::Serialize;
use sluice_engine::metrics::HistogramSnapshot;

use super::{BrokerMetrics, Protocol, RespCommand};
use crate::kafka::registry::SUPPORTED as KAFKA_APIS;

/// The `Content-Type` of the JSON.
pub const CONTENT_TYPE: &str = "application/json";

#[derive(Serialize)]
struct Overview<'a> {
    shards: usize,
    topics: Vec<Topic<'a>>,
    consumer_groups: Vec<ConsumerGroup<'a>>,
    stream_groups: Vec<StreamGroup<'a>>,
    /// By protocol label (`kafka`, `resp`).
    traffic: BTreeMap<&'static str, Traffic>,
    /// By protocol label: Kafka Produce requests, RESP XADD commands.
    produce_latency: BTreeMap<&'static str, Latency<'a>>,
}

#[derive(Serialize)]
struct Topic<'a> {
    name: &'a str,
    partitions: Vec<Partition>,
}

#[derive(Serialize)]
struct Partition {
    partition: i32,
    log_start_offset: i64,
    end_offset: i64,
    size_bytes: u64,
    segments: usize,
}

#[derive(Serialize)]
struct ConsumerGroup<'a> {
    group: &'a str,
    /// Sum of the lag of its partitions that still exist.
    lag: i64,
    offsets: Vec<CommittedOffset<'a>>,
}

#[derive(Serialize)]
struct CommittedOffset<'a> {
    topic: &'a str,
    partition: i32,
    committed_offset: i64,
    /// `null` when the partition is gone.
    lag: Option<i64>,
}

#[derive(Serialize)]
struct StreamGroup<'a> {
    stream: &'a str,
    group: &'a str,
    pending: usize,
    oldest_pending_idle_ms: u64,
    consumers: usize,
    dead_letter: &'a str,
    /// `null` until the dead-letter stream exists.
    dead_letter_entries: Option<i64>,
}

#[derive(Serialize)]
struct Traffic {
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    records_out: u64,
    connections_open: usize,
}

/// A latency histogram: `counts[i]` observations were at most `bounds_seconds[i]` (and more
/// than the bound before); `count - sum(counts)` were above the last bound.
#[derive(Serialize)]
struct Latency<'a> {
    bounds_seconds: &'a [f64],
    counts: &'a [u64],
    count: u64,
    sum_seconds: f64,
}

impl<'a> Latency<'a> {
    fn of(histogram: &'a HistogramSnapshot) -> Self {
        Self {
            bounds_seconds: histogram.bounds,
            counts: &histogram.counts,
            count: histogram.count,
            sum_seconds: histogram.sum,
        }
    }
}

pub fn render(metrics: &BrokerMetrics) -> String {
    let overview = Overview {
        shards: metrics.shards,
        topics: topics(metrics),
        consumer_groups: consumer_groups(metrics),
        stream_groups: metrics
            .stream_groups_with_dead_letters()
            .into_iter()
            .map(|(group, dead_letter_entries)| StreamGroup {
                stream: &group.stream,
                group: &group.group,
                pending: group.pending,
                oldest_pending_idle_ms: group.oldest_pending_idle_ms,
                consumers: group.consumers,
                dead_letter: &group.dead_letter,
                dead_letter_entries,
            })
            .collect(),
        traffic: Protocol::ALL
            .iter()
            .map(|protocol| {
                let (incoming, outgoing) =
                    (metrics.traffic_in[protocol.index()], metrics.traffic_out[protocol.index()]);
                let traffic = Traffic {
                    bytes_in: incoming.bytes,
                    records_in: incoming.records,
                    bytes_out: outgoing.bytes,
                    records_out: outgoing.records,
                    connections_open: metrics.connections_open[protocol.index()],
                };
                (protocol.label(), traffic)
            })
            .collect(),
        produce_latency: produce_latency(metrics),
    };
    // Plain numbers, strings and lists: serialising cannot fail.
    serde_json::to_string(&overview).unwrap_or_else(|error| unreachable!("the overview serialises: {error}"))
}

/// `metrics.partitions` is sorted by topic, then partition.
fn topics(metrics: &BrokerMetrics) -> Vec<Topic<'_>> {
    let mut topics: Vec<Topic<'_>> = Vec::new();
    for stats in &metrics.partitions {
        let partition = Partition {
            partition: stats.partition,
            log_start_offset: stats.log_start_offset,
            end_offset: stats.end_offset,
            size_bytes: stats.size_bytes,
            segments: stats.segments,
        };
        match topics.last_mut() {
            Some(topic) if topic.name == stats.topic => topic.partitions.push(partition),
            _ => topics.push(Topic { name: &stats.topic, partitions: vec![partition] }),
        }
    }
    topics
}

/// `metrics.committed` is sorted by group, topic and partition.
fn consumer_groups(metrics: &BrokerMetrics) -> Vec<ConsumerGroup<'_>> {
    let mut groups: Vec<ConsumerGroup<'_>> = Vec::new();
    for (committed, lag) in metrics.committed_with_lag() {
        let offset = CommittedOffset {
            topic: &committed.topic,
            partition: committed.partition,
            committed_offset: committed.offset,
            lag,
        };
        match groups.last_mut() {
            Some(group) if group.group == committed.group => {
                group.lag += lag.unwrap_or(0);
                group.offsets.push(offset);
            }
            _ => groups.push(ConsumerGroup { group: &committed.group, lag: lag.unwrap_or(0), offsets: vec![offset] }),
        }
    }
    groups
}

fn produce_latency(metrics: &BrokerMetrics) -> BTreeMap<&'static str, Latency<'_>> {
    let mut latency = BTreeMap::new();
    let produce = KAFKA_APIS.iter().position(|support| support.key == kafka_protocol::messages::ApiKey::Produce);
    if let Some(histogram) = produce.and_then(|index| metrics.kafka_request_seconds.get(index)) {
        latency.insert(Protocol::Kafka.label(), Latency::of(histogram));
    }
    if let Some(histogram) = metrics.resp_command_seconds.get(RespCommand::Xadd as usize) {
        latency.insert(Protocol::Resp.label(), Latency::of(histogram));
    }
    latency
}
