//! The Prometheus text exposition format, version 0.0.4: for each metric family a `# HELP` and
//! a `# TYPE` line, then its samples, `name{label="value",...} value`, all together; histograms
//! as cumulative `_bucket{le="..."}` samples ending with `le="+Inf"`, then `_sum` and `_count`.
use std::fmt::Write;

use sluice_engine::metrics::HistogramSnapshot;

use super::{BrokerMetrics, Dropped, Protocol, RespCommand};
use crate::kafka::registry::SUPPORTED as KAFKA_APIS;

/// The `Content-Type` of the text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Text being written; every family is written whole before the next starts.
struct Exposition {
    text: String,
}

type Labels<'a> = [(&'a str, &'a str)];

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(matches!(kind, Kind::Counter) == name.ends_with("_total"), "{name}: only counters end in _total");
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    fn sample(&mut self, name: &str, labels: &Labels<'_>, value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, label_value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(label_value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, labels: &Labels<'_>, histogram: &HistogramSnapshot) {
        let bucket_name = format!("{name}_bucket");
        for (bound, count) in histogram.cumulative() {
            let le = format_float(bound);
            let mut bucket_labels = labels.to_vec();
            bucket_labels.push(("le", &le));
            self.sample(&bucket_name, &bucket_labels, count);
        }
        self.sample(&format!("{name}_sum"), labels, format_float(histogram.sum));
        self.sample(&format!("{name}_count"), labels, histogram.count);
    }
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`; Rust never uses an exponent here).
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(metrics: &BrokerMetrics) -> String {
    let mut out = Exposition { text: String::with_capacity(16 << 10) };
    out.family("sluice_shards", Kind::Gauge, "Shards (executors, one per core) that answered this scrape.");
    out.sample("sluice_shards", &[], metrics.shards);
    render_partitions(&mut out, metrics);
    render_consumer_groups(&mut out, metrics);
    render_group_membership(&mut out, metrics);
    render_stream_groups(&mut out, metrics);
    render_requests(&mut out, metrics);
    render_storage(&mut out, metrics);
    render_traffic(&mut out, metrics);
    render_message_sizes(&mut out, metrics);
    out.text
}

fn render_partitions(out: &mut Exposition, metrics: &BrokerMetrics) {
    type Field = fn(&super::PartitionStats) -> String;
    let families: [(&str, &str, Field); 4] = [
        (
            "sluice_partition_log_start_offset",
            "First offset still in the partition's log (moved by retention, DeleteRecords, XTRIM).",
            |stats| stats.log_start_offset.to_string(),
        ),
        (
            "sluice_partition_end_offset",
            "High watermark: the offset the next durable record gets; every offset below is fdatasynced.",
            |stats| stats.end_offset.to_string(),
        ),
        ("sluice_partition_size_bytes", "Bytes of the partition's durable segments.", |stats| {
            stats.size_bytes.to_string()
        }),
        ("sluice_partition_segments", "Segment files of the partition.", |stats| stats.segments.to_string()),
    ];
    for (name, help, field) in families {
        out.family(name, Kind::Gauge, help);
        for stats in &metrics.partitions {
            let partition = stats.partition.to_string();
            out.sample(name, &[("topic", &stats.topic), ("partition", &partition)], field(stats));
        }
    }
}

fn render_consumer_groups(out: &mut Exposition, metrics: &BrokerMetrics) {
    out.family(
        "sluice_consumer_group_committed_offset",
        Kind::Gauge,
        "Offset a Kafka consumer group committed for a partition (the next record it will read).",
    );
    for committed in &metrics.committed {
        let partition = committed.partition.to_string();
        let labels = [("group", committed.group.as_str()), ("topic", &committed.topic), ("partition", &partition)];
        out.sample("sluice_consumer_group_committed_offset", &labels, committed.offset);
    }
    out.family(
        "sluice_consumer_group_lag",
        Kind::Gauge,
        "Records a Kafka consumer group has not committed yet: partition end offset minus committed offset.",
    );
    for (committed, lag) in metrics.committed_with_lag() {
        let Some(lag) = lag else {
            continue; // the partition is gone (topic deleted): no lag to speak of
        };
        let partition = committed.partition.to_string();
        let labels = [("group", committed.group.as_str()), ("topic", &committed.topic), ("partition", &partition)];
        out.sample("sluice_consumer_group_lag", &labels, lag);
    }
}

fn render_group_membership(out: &mut Exposition, metrics: &BrokerMetrics) {
    let name = "sluice_consumer_group_members";
    out.family(name, Kind::Gauge, "Members of a Kafka consumer group, on its coordinator.");
    for group in &metrics.groups {
        out.sample(name, &[("group", group.group.as_str())], group.members);
    }
    let name = "sluice_consumer_group_generation";
    out.family(name, Kind::Gauge, "Generation of a Kafka consumer group: it grows by one per completed rebalance.");
    for group in &metrics.groups {
        out.sample(name, &[("group", group.group.as_str())], group.generation);
    }
    let name = "sluice_consumer_group_state";
    out.family(
        name,
        Kind::Gauge,
        "1 for the state a Kafka consumer group is in (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead).",
    );
    for group in &metrics.groups {
        out.sample(name, &[("group", group.group.as_str()), ("state", group.state)], 1);
    }
}

fn render_stream_groups(out: &mut Exposition, metrics: &BrokerMetrics) {
    type Field = fn(&super::StreamGroupStats) -> String;
    let families: [(&str, &str, Field); 4] = [
        (
            "sluice_stream_group_pending_entries",
            "Entries a Redis stream group delivered and nobody acknowledged yet (its pending entries list).",
            |group| group.pending.to_string(),
        ),
        (
            "sluice_stream_group_oldest_pending_idle_seconds",
            "Seconds since the longest-waiting pending entry of the group was last delivered (0 when none).",
            |group| format_float(group.oldest_pending_idle_ms as f64 / 1000.0),
        ),
        ("sluice_stream_group_consumers", "Consumers the Redis stream group knows.", |group| {
            group.consumers.to_string()
        }),
        (
            "sluice_stream_group_pending_max_deliveries",
            "The highest delivery count among the group's pending entries (0 when none): how close the worst entry is to MAXDELIVERIES.",
            |group| group.pending_deliveries_max.to_string(),
        ),
    ];
    for (name, help, field) in families {
        out.family(name, Kind::Gauge, help);
        for group in &metrics.stream_groups {
            out.sample(name, &[("stream", &group.stream), ("group", &group.group)], field(group));
        }
    }
    let counters: [(&str, &str, Field); 3] = [
        (
            "sluice_stream_group_deliveries_total",
            "Entries a Redis stream group handed out for the first time (XREADGROUP >, NOACK included).",
            |group| group.deliveries.first.to_string(),
        ),
        (
            "sluice_stream_group_redeliveries_total",
            "Pending entries a Redis stream group handed out again: XREADGROUP with an ID, XCLAIM, XAUTOCLAIM, visibility timeouts (JUSTID claims not counted).",
            |group| group.deliveries.again.to_string(),
        ),
        (
            "sluice_stream_group_dead_lettered_total",
            "Entries a Redis stream group moved to its dead-letter stream after MAXDELIVERIES deliveries.",
            |group| group.deliveries.dead_lettered.to_string(),
        ),
    ];
    for (name, help, field) in counters {
        out.family(name, Kind::Counter, help);
        for group in &metrics.stream_groups {
            out.sample(name, &[("stream", &group.stream), ("group", &group.group)], field(group));
        }
    }
    out.family(
        "sluice_stream_group_dead_letter_entries",
        Kind::Gauge,
        "Entries in the group's dead-letter stream (shown once that stream exists).",
    );
    for (group, dead_letter_entries) in metrics.stream_groups_with_dead_letters() {
        if let Some(entries) = dead_letter_entries {
            let labels =
                [("stream", group.stream.as_str()), ("group", &group.group), ("dead_letter", &group.dead_letter)];
            out.sample("sluice_stream_group_dead_letter_entries", &labels, entries);
        }
    }
}

fn render_requests(out: &mut Exposition, metrics: &BrokerMetrics) {
    let name = "sluice_kafka_request_duration_seconds";
    out.family(name, Kind::Histogram, "Kafka requests from decoding to the response being ready, by API (Produce with acks=all includes the fdatasync; Fetch includes its long poll).");
    for (support, histogram) in KAFKA_APIS.iter().zip(&metrics.kafka_request_seconds) {
        let always_shown =
            matches!(support.key, kafka_protocol::messages::ApiKey::Produce | kafka_protocol::messages::ApiKey::Fetch);
        if always_shown || histogram.count > 0 {
            out.histogram(name, &[("api", &format!("{:?}", support.key))], histogram);
        }
    }
    let name = "sluice_resp_command_duration_seconds";
    out.family(name, Kind::Histogram, "RESP commands from parsing to the reply being ready (XADD includes the fdatasync; XREAD and XREADGROUP include BLOCK).");
    for (command, histogram) in RespCommand::ALL.iter().zip(&metrics.resp_command_seconds) {
        out.histogram(name, &[("command", command.label())], histogram);
    }
}

fn render_storage(out: &mut Exposition, metrics: &BrokerMetrics) {
    let name = "sluice_flush_duration_seconds";
    out.family(name, Kind::Histogram, "Flush rounds of the partition flushers (data, offsets and group logs): a direct write and the fdatasync linked to it.");
    out.histogram(name, &[], &metrics.flush_seconds);
    let name = "sluice_flush_batches";
    out.family(name, Kind::Histogram, "Record batches made durable by one flush round (group commit).");
    out.histogram(name, &[], &metrics.flush_batches);
}

fn render_traffic(out: &mut Exposition, metrics: &BrokerMetrics) {
    type Field = fn(&super::TrafficCount) -> u64;
    let families: [(&str, &str, &[super::TrafficCount], Field); 4] = [
        (
            "sluice_bytes_in_total",
            "Bytes producers wrote: Kafka record batches appended by Produce; RESP field names and values appended by XADD.",
            &metrics.traffic_in,
            |traffic| traffic.bytes,
        ),
        ("sluice_records_in_total", "Records appended by Produce, entries by XADD.", &metrics.traffic_in, |traffic| {
            traffic.records
        }),
        (
            "sluice_bytes_out_total",
            "Bytes sent to consumers: Kafka record batches in Fetch responses; RESP field names and values in XREAD and XREADGROUP replies.",
            &metrics.traffic_out,
            |traffic| traffic.bytes,
        ),
        (
            "sluice_records_out_total",
            "Records in Fetch responses, entries in XREAD and XREADGROUP replies.",
            &metrics.traffic_out,
            |traffic| traffic.records,
        ),
    ];
    for (name, help, traffic, field) in families {
        out.family(name, Kind::Counter, help);
        for (protocol, count) in Protocol::ALL.iter().zip(traffic) {
            out.sample(name, &[("protocol", protocol.label())], field(count));
        }
    }
    let name = "sluice_connections_open";
    out.family(name, Kind::Gauge, "Client connections open, by front door.");
    for (protocol, open) in Protocol::ALL.iter().zip(&metrics.connections_open) {
        out.sample(name, &[("protocol", protocol.label())], open);
    }
    let name = "sluice_resp_blocked_clients";
    out.family(name, Kind::Gauge, "RESP commands waiting with BLOCK (XREAD, XREADGROUP) for entries.");
    out.sample(name, &[], metrics.resp_blocked);
    type ExecutorField = fn(&super::ExecutorTotals) -> String;
    let families: [(&str, &str, ExecutorField); 3] = [
        (
            "sluice_shard_busy_seconds_total",
            "Time a shard's executor spent running tasks (its rate is the shard's busy fraction; sleeping and waiting for I/O are not counted).",
            |executor| executor.busy_seconds.to_string(),
        ),
        ("sluice_shard_tasks_total", "Tasks a shard's executor ran.", |executor| executor.tasks.to_string()),
        (
            "sluice_shard_scheduler_runs_total",
            "Times a shard's scheduler picked a task queue to run (about once per wake-up).",
            |executor| executor.scheduler_runs.to_string(),
        ),
    ];
    for (name, help, field) in families {
        out.family(name, Kind::Counter, help);
        for executor in &metrics.executors {
            out.sample(name, &[("shard", executor.shard.to_string().as_str())], field(executor));
        }
    }
    out.single(
        "sluice_mesh_requests_in_flight",
        Kind::Gauge,
        "Requests shards sent to other shards over the channel mesh and have no answer for yet (long polls included).",
        metrics.mesh_in_flight,
    );
    out.single(
        "sluice_fetch_sendfile_bytes_total",
        Kind::Counter,
        "Bytes of Fetch responses sent from segment files with sendfile (page cache to socket); the rest of sluice_bytes_out_total for Kafka went from memory.",
        metrics.sendfile_bytes,
    );
    out.single(
        "sluice_produce_copied_bytes_total",
        Kind::Counter,
        "Bytes of produced records copied out of their request frames: records of several partitions or batches in one request; records of one batch are stored in the frame they arrived in.",
        metrics.produce_copied_bytes,
    );
    out.single(
        "sluice_connections_moved_total",
        Kind::Counter,
        "RESP connections moved from a shard using most of its core to a less busy one (connection-balance-busy-permille).",
        metrics.connections_moved,
    );
    out.single(
        "sluice_request_memory_bytes",
        Kind::Gauge,
        "Bytes of requests being read or handled charged to request-memory-bytes-max (the first 64 KiB of each request are not charged).",
        metrics.request_memory.held_bytes,
    );
    out.single(
        "sluice_request_memory_waits_total",
        Kind::Counter,
        "Times a connection stopped reading a request to wait for room in request-memory-bytes-max.",
        metrics.request_memory.waits,
    );
    out.single(
        "sluice_catch_up_read_throttled_seconds_total",
        Kind::Counter,
        "Time Fetch responses waited, summed over connections, before sending bytes from segment files, held to catch-up-read-bytes-per-sec-max.",
        metrics.catch_up_throttled.as_secs_f64(),
    );
    let name = "sluice_connections_dropped_total";
    out.family(name, Kind::Counter, "Connections the broker closed itself, by front door and reason: accepted over connections-max, a request not complete within request-read-timeout-ms, idle or not reading responses for connection-idle-timeout-ms, a request that found no room in request-memory-bytes-max before its read deadline.");
    for (protocol, counts) in Protocol::ALL.iter().zip(&metrics.connections_dropped) {
        for (reason, count) in Dropped::ALL.iter().zip(counts) {
            out.sample(name, &[("protocol", protocol.label()), ("reason", reason.label())], count);
        }
    }
}

fn render_message_sizes(out: &mut Exposition, metrics: &BrokerMetrics) {
    let families = [
        (
            "sluice_kafka_produce_batch_bytes",
            "Size of each record batch Produce appended (the batch as sent, header included).",
            &metrics.kafka_batch_bytes,
        ),
        (
            "sluice_kafka_produce_batch_records",
            "Records in each record batch Produce appended.",
            &metrics.kafka_batch_records,
        ),
        (
            "sluice_resp_xadd_entry_bytes",
            "Field name and value bytes of each entry XADD appended.",
            &metrics.resp_entry_bytes,
        ),
    ];
    for (name, help, histogram) in families {
        out.family(name, Kind::Histogram, help);
        out.histogram(name, &[], histogram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(0.00005), "0.00005");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(2.5), "2.5");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }
}
