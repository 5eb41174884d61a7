//! `sluice-bench`: load for a Sluice (or any Kafka) broker, and the ceilings to compare with.
//!
//! ```text
//! sluice-bench produce --producers 4 --acks all --duration-s 10 --disk-dir /data
//! sluice-bench consume --topic sluice-bench
//! sluice-bench disk --dir /data
//! ```
//! Exit status 0 only if the run had no errors and measured something. The parts live in
//! `sluice_bench::load`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sluice_bench::load::consume::{self, ConsumeConfig};
use sluice_bench::load::disk::{self, DiskConfig, DiskReport};
use sluice_bench::load::limits::{DISK_WRITERS_DEFAULT, DISK_WRITE_BYTES_DEFAULT, FETCH_PARTITION_BYTES_DEFAULT};
use sluice_bench::load::produce::{self, ProduceConfig, StopAfter};
use sluice_bench::load::report;

#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version, about = "Load generator for Sluice: produce, consume, and the disk under it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce pre-encoded batches over pipelined connections; report msgs/s, MB/s, latency.
    Produce(ProduceArgs),
    /// Read a topic from its earliest offsets to its end; report MB/s next to loopback TCP.
    Consume(ConsumeArgs),
    /// Sequential O_DIRECT write bandwidth and fdatasync latency of the disk under DIR.
    Disk(DiskArgs),
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Created if missing (an existing topic is used with the partitions it has).
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    #[arg(long, default_value_t = 2)]
    partitions: i32,
    /// Connections, each with its own sender and receiver thread.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Size of each record value.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Records per batch; each request carries one batch for one partition.
    #[arg(long, default_value_t = 64)]
    records_per_batch: usize,
    /// 0, 1, -1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
    /// Produce requests outstanding per connection.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Seconds measured after the warm-up [default: 10].
    #[arg(long, conflicts_with = "messages")]
    duration_s: Option<f64>,
    /// Stop after sending this many messages (warm-up included) instead of after a time.
    #[arg(long)]
    messages: Option<u64>,
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Open loop: messages per second over all producers, sent on a fixed schedule; latency
    /// counts from the intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Measure the disk under this directory first (see `disk`) and report the ratio.
    #[arg(long)]
    disk_dir: Option<PathBuf>,
    /// Also write the results to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Connections; partitions are dealt out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long, default_value_t = FETCH_PARTITION_BYTES_DEFAULT)]
    fetch_partition_bytes: i32,
    /// Stop reading after this many seconds even if the end is not reached.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Skip the loopback TCP measurement.
    #[arg(long)]
    no_loopback: bool,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct DiskArgs {
    /// A directory on the disk to measure (scratch files are removed afterwards).
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per sequential test (each also stops after a few seconds).
    #[arg(long, default_value_t = DISK_WRITE_BYTES_DEFAULT)]
    write_bytes: u64,
    /// Writer threads of the parallel sequential test.
    #[arg(long, default_value_t = DISK_WRITERS_DEFAULT)]
    writers: usize,
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks is 0, 1, -1 or all, not {text:?}")),
    }
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Produce(args) => produce_command(args),
        Command::Consume(args) => consume_command(args),
        Command::Disk(args) => disk_command(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sluice-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn measure_disk(dir: PathBuf, write_bytes: u64, writers: usize) -> Result<DiskReport, String> {
    eprintln!("measuring the disk under {} ...", dir.display());
    disk::measure(&DiskConfig::new(dir, write_bytes, writers)).map_err(|error| format!("disk measurement: {error}"))
}

fn disk_command(args: DiskArgs) -> Result<(), String> {
    let disk = measure_disk(args.dir, args.write_bytes, args.writers)?;
    report::print_disk(&disk);
    match &args.json {
        Some(path) => report::write_json(path, &report::DiskDocument { command: "disk", disk: &disk }),
        None => Ok(()),
    }
}

fn produce_command(args: ProduceArgs) -> Result<(), String> {
    let stop_after = match (args.messages, args.duration_s) {
        (Some(messages), _) => StopAfter::Messages(messages),
        (None, seconds) => StopAfter::Seconds(seconds.unwrap_or(10.0)),
    };
    let config = ProduceConfig {
        bootstrap: args.bootstrap,
        topic: args.topic,
        partitions: args.partitions,
        producers: args.producers,
        message_bytes: args.message_bytes,
        records_per_batch: args.records_per_batch,
        acks: args.acks,
        in_flight: args.in_flight,
        stop_after,
        warmup_s: args.warmup_s,
        rate_msgs_per_s: args.rate,
        progress: !args.quiet,
    };
    config.validate()?;
    let disk =
        args.disk_dir.map(|dir| measure_disk(dir, DISK_WRITE_BYTES_DEFAULT, DISK_WRITERS_DEFAULT)).transpose()?;
    let result = produce::run(&config).map_err(|error| error.to_string())?;
    report::print_produce(&config, &result, disk.as_ref());
    if let Some(path) = &args.json {
        let ratio_to_disk = report::ratio_to_disk(&result, disk.as_ref());
        let document = report::ProduceDocument {
            command: "produce",
            config: &config,
            result: &result,
            disk: disk.as_ref(),
            ratio_to_disk,
        };
        report::write_json(path, &document)?;
    }
    if result.errors > 0 {
        return Err(format!("{} errors ({} messages not acknowledged)", result.errors, result.failed_messages));
    }
    if result.messages == 0 {
        return Err("no message was acknowledged inside the measured window".into());
    }
    Ok(())
}

fn consume_command(args: ConsumeArgs) -> Result<(), String> {
    let config = ConsumeConfig {
        bootstrap: args.bootstrap,
        topic: args.topic,
        consumers: args.consumers,
        fetch_partition_bytes: args.fetch_partition_bytes,
        duration_s_max: args.duration_s,
        loopback: !args.no_loopback,
        progress: !args.quiet,
    };
    let result = consume::run(&config).map_err(|error| error.to_string())?;
    report::print_consume(&config, &result);
    if let Some(path) = &args.json {
        report::write_json(path, &report::ConsumeDocument { command: "consume", config: &config, result: &result })?;
    }
    if result.errors > 0 {
        return Err(format!("{} errors while consuming", result.errors));
    }
    Ok(())
}
