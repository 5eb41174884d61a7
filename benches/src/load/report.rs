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
    pub disk: Option<&'a DiskReport>,
    /// Payload MB/s over the disk's best sequential direct-write MB/s.
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

pub fn ratio_to_disk(result: &ProduceResult, disk: Option<&DiskReport>) -> Option<f64> {
    disk.map(DiskReport::write_mb_per_s).filter(|&disk| disk > 0.0).map(|disk| result.payload_mb_per_s / disk)
}

fn acks_name(acks: i16) -> String {
    if acks == -1 {
        "all".to_string()
    } else {
        acks.to_string()
    }
}

pub fn print_produce(config: &ProduceConfig, result: &ProduceResult, disk: Option<&DiskReport>) {
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
    if let Some(disk) = disk {
        print_disk_lines(disk);
        if let Some(ratio) = ratio_to_disk(result, Some(disk)) {
            println!("  ratio to disk   {ratio:.2} (payload MB/s over the disk's best direct-write MB/s)");
        }
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
