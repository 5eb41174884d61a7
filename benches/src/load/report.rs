//! Results for people (a table on stdout) and for scripts (one JSON document).
use std::path::Path;

use serde::Serialize;

use super::consume::{ConsumeConfig, ConsumeResult};
use super::disk::DiskReport;
use super::produce::{ProduceConfig, ProduceResult};
use super::stats::{thousands, LatencySummary};
use super::xadd::{Wire, XaddConfig, XaddResult};
use super::xreadgroup::{XreadgroupConfig, XreadgroupResult};

/// The JSON document of a produce run.
#[derive(Debug, Serialize)]
pub struct ProduceDocument<'a> {
    pub command: &'static str,
    pub config: &'a ProduceConfig,
    pub result: &'a ProduceResult,
    /// The disk measured just before the run, and again just after it (a disk shared with other
    /// machines moves between minutes).
    pub disk: Option<&'a DiskReport>,
    pub disk_after: Option<&'a DiskReport>,
    /// Payload MB/s over the best sequential direct-write MB/s the disk showed, before or after.
    pub ratio_to_disk: Option<f64>,
}

/// The JSON document of a consume run.
#[derive(Debug, Serialize)]
pub struct ConsumeDocument<'a> {
    pub command: &'static str,
    pub config: &'a ConsumeConfig,
    pub result: &'a ConsumeResult,
}

/// The JSON document of an XADD run.
#[derive(Debug, Serialize)]
pub struct XaddDocument<'a> {
    pub command: &'static str,
    pub config: &'a XaddConfig,
    pub result: &'a XaddResult,
}

/// The JSON document of an XREADGROUP run (its producers, if any, inside).
#[derive(Debug, Serialize)]
pub struct XreadgroupDocument<'a> {
    pub command: &'static str,
    pub config: &'a XreadgroupConfig,
    pub result: &'a XreadgroupResult,
}

/// The JSON document of a disk measurement alone.
#[derive(Debug, Serialize)]
pub struct DiskDocument<'a> {
    pub command: &'static str,
    pub disk: &'a DiskReport,
}

pub fn write_json(path: &Path, document: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(document).map_err(|error| format!("encoding JSON: {error}"))?;
    std::fs::write(path, text + "\n").map_err(|error| format!("writing {}: {error}", path.display()))
}

/// Payload MB/s over the best write bandwidth of `disks` (the same disk measured more than
/// once); `None` without a measurement.
pub fn ratio_to_disk(result: &ProduceResult, disks: &[&DiskReport]) -> Option<f64> {
    best_write_mb_per_s(disks).map(|disk| result.payload_mb_per_s / disk)
}

/// The best write bandwidth any of `disks` showed; `None` if none showed any.
fn best_write_mb_per_s(disks: &[&DiskReport]) -> Option<f64> {
    disks.iter().map(|disk| disk.write_mb_per_s()).filter(|&mb_per_s| mb_per_s > 0.0).reduce(f64::max)
}

fn acks_name(acks: i16) -> String {
    if acks == -1 {
        "all".to_string()
    } else {
        acks.to_string()
    }
}

/// `disks`: the disk measured before the run and after it (or none).
pub fn print_produce(config: &ProduceConfig, result: &ProduceResult, disks: &[&DiskReport]) {
    let mode = open_or_closed_loop(config.rate_msgs_per_s);
    println!(
        "sluice-bench produce: {}, {} partitions, {} producers, {} records of {} B per request, acks={}, \
         in-flight {}, {mode}",
        topics_described(&config.topic, config.topics),
        result.partitions,
        config.producers,
        config.records_per_batch,
        config.message_bytes,
        acks_name(config.acks),
        config.in_flight,
    );
    println!("  measured        {:.1} s after {:.1} s of warm-up", result.measured_s, config.warmup_s);
    let counted =
        if config.acks == 0 { "written in the window; acks=0 has no answers" } else { "acknowledged in the window" };
    println!("  messages        {} ({counted})", thousands(result.messages));
    println!(
        "  throughput      {} msgs/s   {:.1} MB/s payload   {:.1} MB/s log",
        thousands(result.msgs_per_s as u64),
        result.payload_mb_per_s,
        result.log_mb_per_s
    );
    match &result.latency {
        Some(latency) => print_latency(
            "latency (ms)",
            latency,
            "requests",
            if config.rate_msgs_per_s.is_some() { "the intended send time" } else { "the write" },
        ),
        None if config.acks == 0 => println!("  latency         not measured (acks=0 has no answers)"),
        None => println!("  latency         no request sent after the warm-up was answered"),
    }
    if let Some(lag) = result.schedule_lag_max_ms {
        println!(
            "  schedule lag    {lag:.2} ms at most (a full in-flight window, or the client itself, held a send back)"
        );
    }
    print_errors(result.errors, &result.error_samples);
    if let Some(consumers) = &result.consumers {
        println!(
            "  consumers       {} following: {} messages read in the window ({} in all; {} fetches, {} empty)",
            consumers.consumers,
            thousands(consumers.messages),
            thousands(consumers.messages_read_total),
            thousands(consumers.fetches),
            thousands(consumers.empty_fetches),
        );
        let from = if config.rate_msgs_per_s.is_some() { "the intended send time" } else { "the write" };
        match &consumers.end_to_end_latency {
            Some(latency) => print_latency("end to end (ms)", latency, "messages", from),
            None => println!("  end to end      no batch sent after the warm-up was read"),
        }
        if consumers.errors > 0 {
            println!("  read errors     {}", consumers.errors);
            for sample in &consumers.error_samples {
                println!("                  {sample}");
            }
        }
    }
    for (when, disk) in ["before the run", "after the run"].iter().zip(disks) {
        println!("  the disk, {when}:");
        print_disk_lines(disk);
    }
    if let Some(ratio) = ratio_to_disk(result, disks) {
        println!("  ratio to disk   {ratio:.2} (payload MB/s over the best direct-write MB/s the disk showed)");
    }
}

/// `topic x`, or `3 topics x-0 ... x-2`.
fn topics_described(topic: &str, topics: usize) -> String {
    match topics {
        1 => format!("topic {topic}"),
        topics => format!("{topics} topics {topic}-0 ... {topic}-{}", topics - 1),
    }
}

fn print_latency(label: &str, latency: &LatencySummary, counted: &str, from: &str) {
    println!(
        "  {label:<15} p50 {:.2}   p90 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}   ({} {counted}, from {from})",
        latency.p50_ms,
        latency.p90_ms,
        latency.p99_ms,
        latency.p99_9_ms,
        latency.max_ms,
        thousands(latency.count),
    );
}

fn open_or_closed_loop(rate_msgs_per_s: Option<f64>) -> String {
    match rate_msgs_per_s {
        Some(rate) => format!("open loop at {} msgs/s", thousands(rate as u64)),
        None => "closed loop".to_string(),
    }
}

pub fn print_xadd(config: &XaddConfig, result: &XaddResult) {
    println!(
        "sluice-bench xadd: {} {} stream {}, {} connections, {} B entries, pipeline {}, {}",
        config.wire.name(),
        config.target,
        config.stream,
        config.producers,
        config.message_bytes,
        config.pipeline,
        open_or_closed_loop(config.rate_msgs_per_s),
    );
    print_xadd_lines(config, result);
    print_errors(result.errors, &result.error_samples);
}

fn print_xadd_lines(config: &XaddConfig, result: &XaddResult) {
    println!("  measured        {:.1} s after {:.1} s of warm-up", result.measured_s, config.warmup_s);
    println!(
        "  entries         {} acknowledged in the window ({} in all)",
        thousands(result.messages),
        thousands(result.messages_acked_total)
    );
    println!(
        "  throughput      {} msgs/s   {:.1} MB/s payload",
        thousands(result.msgs_per_s as u64),
        result.payload_mb_per_s
    );
    let from = if config.rate_msgs_per_s.is_some() { "the intended send time" } else { "the write" };
    match &result.latency {
        Some(latency) => print_latency(&format!("{} (ms)", config.wire.produce_command()), latency, "commands", from),
        None => println!("  XADD latency    no command sent after the warm-up was answered"),
    }
    if let Some(lag) = result.schedule_lag_max_ms {
        println!("  schedule lag    {lag:.2} ms at most (a full pipeline, or the client itself, held a send back)");
    }
}

pub fn print_xreadgroup(config: &XreadgroupConfig, result: &XreadgroupResult) {
    println!(
        "sluice-bench xreadgroup: {} {} stream {}, group {} from {}, {} consumers, COUNT {}, BLOCK {} ms",
        config.wire.name(),
        config.target,
        config.stream,
        config.group,
        config.start_id,
        config.consumers,
        config.count,
        config.block_ms,
    );
    println!("  measured        {:.1} s after {:.1} s of warm-up", result.measured_s, config.warmup_s);
    println!(
        "  entries         {} read in the window ({} in all, {} {}; {} reads, {} empty)",
        thousands(result.messages),
        thousands(result.messages_read_total),
        thousands(result.messages_acked_total),
        match config.wire {
            Wire::Resp => "acknowledged with XACK",
            Wire::Nats => "acknowledgements sent",
        },
        thousands(result.reads),
        thousands(result.empty_reads),
    );
    println!(
        "  consume rate    {} msgs/s   {:.1} MB/s payload",
        thousands(result.msgs_per_s as u64),
        result.payload_mb_per_s
    );
    let from = match config.producers.as_ref().and_then(|producers| producers.rate_msgs_per_s) {
        Some(_) => "the intended send time",
        None => "the XADD write",
    };
    match &result.end_to_end_latency {
        Some(latency) => print_latency("end to end (ms)", latency, "entries", from),
        None => println!("  end to end      no benchmark entry sent after the warm-up was read"),
    }
    if let (Some(producers), Some(produced)) = (&config.producers, &result.producers) {
        println!(
            "  producers       {} connections, {} B entries, pipeline {}, {}",
            producers.producers,
            producers.message_bytes,
            producers.pipeline,
            open_or_closed_loop(producers.rate_msgs_per_s)
        );
        print_xadd_lines(producers, produced);
        if produced.errors > 0 {
            println!("  XADD errors     {}", produced.errors);
            for sample in &produced.error_samples {
                println!("                  {sample}");
            }
        }
    }
    print_errors(result.errors, &result.error_samples);
}

fn print_errors(errors: u64, samples: &[String]) {
    println!("  errors          {errors}");
    for sample in samples {
        println!("                  {sample}");
    }
}

pub fn print_disk(disk: &DiskReport) {
    println!("sluice-bench disk: {}", disk.dir.display());
    print_disk_lines(disk);
}

fn print_disk_lines(disk: &DiskReport) {
    println!(
        "  disk write      {:.1} MB/s with 1 writer, {:.1} MB/s with {} writers (O_DIRECT, 1 MiB blocks, with fdatasync)",
        disk.write_mb_per_s_one_writer, disk.write_mb_per_s_parallel, disk.writers
    );
    print_latency("fdatasync (ms)", &disk.fdatasync, "4 KiB direct appends + fdatasync", "the write, machine idle");
    let busy = format!("the write, {} threads spinning", disk.cores_busy);
    print_latency("  cores busy", &disk.fdatasync_cores_busy, "of the same", &busy);
}

pub fn print_consume(config: &ConsumeConfig, result: &ConsumeResult) {
    println!(
        "sluice-bench consume: {}, {} partitions, {} consumers, from the earliest offsets",
        topics_described(&config.topic, config.topics),
        result.partitions,
        config.consumers
    );
    println!(
        "  read            {} messages, {:.1} MB of batches in {:.2} s{}",
        thousands(result.messages),
        result.log_bytes as f64 / 1e6,
        result.elapsed_s,
        if result.reached_end { " (up to the end offsets seen at the start)" } else { " (time bound hit first)" },
    );
    println!("  throughput      {} msgs/s   {:.1} MB/s log", thousands(result.msgs_per_s as u64), result.log_mb_per_s);
    if let Some(loopback) = result.loopback_mb_per_s {
        println!("  loopback TCP    {loopback:.1} MB/s (one socket pair, 1 MiB writes)");
        if loopback > 0.0 {
            println!("  ratio           {:.2} of loopback", result.log_mb_per_s / loopback);
        }
    }
    print_errors(result.errors, &result.error_samples);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_writing(one_writer: f64, parallel: f64) -> DiskReport {
        let latency = LatencySummary {
            count: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p99_9_ms: 0.0,
            max_ms: 0.0,
            mean_ms: 0.0,
        };
        DiskReport {
            dir: "/data".into(),
            write_mb_per_s_one_writer: one_writer,
            write_mb_per_s_parallel: parallel,
            writers: 4,
            fdatasync: latency,
            fdatasync_cores_busy: latency,
            cores_busy: 2,
        }
    }

    #[test]
    fn the_disk_figure_is_the_best_any_measurement_showed() {
        let (before, after) = (disk_writing(1_347.0, 1_111.0), disk_writing(1_672.0, 1_770.0));
        assert_eq!(best_write_mb_per_s(&[&before, &after]), Some(1_770.0));
        assert_eq!(best_write_mb_per_s(&[&after, &before]), Some(1_770.0));
        assert_eq!(best_write_mb_per_s(&[&before]), Some(1_347.0));
        assert_eq!(best_write_mb_per_s(&[]), None);
        assert_eq!(best_write_mb_per_s(&[&disk_writing(0.0, 0.0)]), None, "a disk that wrote nothing is no figure");
    }
}
