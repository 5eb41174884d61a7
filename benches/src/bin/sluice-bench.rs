//! `sluice-bench`: load for a Sluice broker (or any Kafka broker, or redis-server on the RESP
//! side), and the ceilings to compare with.
//!
//! ```text
//! sluice-bench produce --producers 4 --acks all --duration-s 10 --disk-dir /data
//! sluice-bench produce --producers 4 --rate 10000 --consumers 2   # and end to end
//! sluice-bench consume --topic sluice-bench
//! sluice-bench disk --dir /data
//! sluice-bench xadd --resp 127.0.0.1:6379 --producers 50 --pipeline 16 --duration-s 5
//! sluice-bench xreadgroup --resp 127.0.0.1:6379 --consumers 2 --producers 4 --rate 10000
//! sluice-bench xadd --nats 127.0.0.1:4222 --producers 50 --pipeline 16   # JetStream, same load
//! ```
//! Exit status 0 only if the run had no errors and measured something. The parts live in
//! `sluice_bench::load`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sluice_bench::load::consume::{self, ConsumeConfig};
use sluice_bench::load::disk::{self, DiskConfig, DiskReport};
use sluice_bench::load::limits::{DISK_WRITERS_DEFAULT, DISK_WRITE_BYTES_DEFAULT, FETCH_PARTITION_BYTES_DEFAULT};
use sluice_bench::load::limits::{READ_BLOCK_MS_DEFAULT, READ_COUNT_DEFAULT};
use sluice_bench::load::produce::{self, ProduceConfig};
use sluice_bench::load::report;
use sluice_bench::load::timeline::{epoch_us_now, StopAfter};
use sluice_bench::load::xadd::{self, Wire, XaddConfig};
use sluice_bench::load::xreadgroup::{self, XreadgroupConfig};

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
    /// RESP: XADD pre-encoded entries over pipelined connections; report msgs/s and latency.
    /// With --nats: the same load as JetStream publishes.
    Xadd(XaddArgs),
    /// RESP: read with a new consumer group (XREADGROUP, XACK), alone or with XADD producers
    /// alongside; report the consume rate and the end-to-end latency. With --nats: a new
    /// durable JetStream pull consumer with explicit acks.
    Xreadgroup(XreadgroupArgs),
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Created if missing (an existing topic is used with the partitions it has).
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Topics to write: with more than 1, `<topic>-0` ... `<topic>-<N-1>`, each created with
    /// --partitions partitions; requests go round all their partitions.
    #[arg(long, default_value_t = 1)]
    topics: usize,
    /// Partitions of each topic created.
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
    /// Consumers that follow the topic from its end while it is written (each batch carries
    /// its send time): end-to-end latency and a check that they read what was acknowledged.
    #[arg(long, default_value_t = 0)]
    consumers: usize,
    /// Measure the disk under this directory (see `disk`) before the run and again after it,
    /// and report the ratio to the better of the two.
    #[arg(long)]
    disk_dir: Option<PathBuf>,
    /// Also write the results to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// What the RESP loads share: where, which stream, the entries, and the XADD load's shape.
#[derive(Debug, Args)]
struct StreamLoadArgs {
    /// Address of the RESP listener: sluice's --resp-listen, or a redis-server.
    #[arg(long, visible_alias = "target", default_value = "127.0.0.1:6379")]
    resp: String,
    /// Instead of RESP: a NATS server with JetStream (nats-server -js) at this address; the
    /// stream (file storage, created if missing) takes the subject of its own name.
    #[arg(long, conflicts_with = "resp")]
    nats: Option<String>,
    /// The stream's key (with sluice, a topic of one partition: one shard writes it).
    #[arg(long, default_value = "sluice-bench-stream")]
    stream: String,
    /// Size of each entry's `data` field (each entry also has a 16-digit `ts` field).
    #[arg(long, default_value_t = 100)]
    message_bytes: usize,
    /// XADDs outstanding per connection.
    #[arg(long, visible_alias = "in-flight", default_value_t = 16)]
    pipeline: usize,
    /// Seconds measured after the warm-up [default: 10].
    #[arg(long, conflicts_with = "messages")]
    duration_s: Option<f64>,
    /// Stop after this many entries (warm-up included) instead of after a time.
    #[arg(long)]
    messages: Option<u64>,
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Open loop: XADDs per second over all producers, sent on a fixed schedule; latency counts
    /// from the intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Also write the results to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

impl StreamLoadArgs {
    fn stop_after(&self) -> StopAfter {
        match (self.messages, self.duration_s) {
            (Some(messages), _) => StopAfter::Messages(messages),
            (None, seconds) => StopAfter::Seconds(seconds.unwrap_or(10.0)),
        }
    }

    fn wire_and_target(&self) -> (Wire, String) {
        match &self.nats {
            Some(nats) => (Wire::Nats, nats.clone()),
            None => (Wire::Resp, self.resp.clone()),
        }
    }

    fn xadd_config(&self, producers: usize) -> XaddConfig {
        let (wire, target) = self.wire_and_target();
        XaddConfig {
            wire,
            target,
            stream: self.stream.clone(),
            producers,
            message_bytes: self.message_bytes,
            pipeline: self.pipeline,
            stop_after: self.stop_after(),
            warmup_s: self.warmup_s,
            rate_msgs_per_s: self.rate,
            progress: !self.quiet,
        }
    }
}

#[derive(Debug, Args)]
struct XaddArgs {
    #[command(flatten)]
    load: StreamLoadArgs,
    /// Connections, each one thread sending and reading.
    #[arg(long, default_value_t = 50)]
    producers: usize,
}

#[derive(Debug, Args)]
struct XreadgroupArgs {
    #[command(flatten)]
    load: StreamLoadArgs,
    /// XADD connections run alongside (0: only read, what is there or what others add).
    #[arg(long, default_value_t = 0)]
    producers: usize,
    /// The consumer group, created by the run [default: sluice-bench-<time>, a new one].
    #[arg(long)]
    group: Option<String>,
    /// Where the new group starts: `$` (entries added from now on) or `0` (the whole stream).
    #[arg(long, default_value = "$")]
    start_id: String,
    /// Consumers of the group, one connection each.
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// XREADGROUP COUNT.
    #[arg(long, default_value_t = READ_COUNT_DEFAULT)]
    count: usize,
    /// XREADGROUP BLOCK, in milliseconds.
    #[arg(long, default_value_t = READ_BLOCK_MS_DEFAULT)]
    block_ms: u64,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Topics to read, named as `produce --topics` names them (`<topic>-0` ... for more than 1).
    #[arg(long, default_value_t = 1)]
    topics: usize,
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
        Command::Xadd(args) => xadd_command(args),
        Command::Xreadgroup(args) => xreadgroup_command(args),
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
        topics: args.topics,
        partitions: args.partitions,
        producers: args.producers,
        message_bytes: args.message_bytes,
        records_per_batch: args.records_per_batch,
        acks: args.acks,
        in_flight: args.in_flight,
        stop_after,
        warmup_s: args.warmup_s,
        rate_msgs_per_s: args.rate,
        consumers: args.consumers,
        progress: !args.quiet,
    };
    config.validate()?;
    let measure = |dir: &PathBuf| measure_disk(dir.clone(), DISK_WRITE_BYTES_DEFAULT, DISK_WRITERS_DEFAULT);
    let disk_before = args.disk_dir.as_ref().map(measure).transpose()?;
    let result = produce::run(&config).map_err(|error| error.to_string())?;
    let disk_after = args.disk_dir.as_ref().map(measure).transpose()?;
    let disks: Vec<&DiskReport> = disk_before.iter().chain(disk_after.iter()).collect();
    report::print_produce(&config, &result, &disks);
    if let Some(path) = &args.json {
        let document = report::ProduceDocument {
            command: "produce",
            config: &config,
            result: &result,
            disk: disk_before.as_ref(),
            disk_after: disk_after.as_ref(),
            ratio_to_disk: report::ratio_to_disk(&result, &disks),
        };
        report::write_json(path, &document)?;
    }
    if result.errors > 0 {
        return Err(format!("{} errors ({} messages not acknowledged)", result.errors, result.failed_messages));
    }
    if let Some(consumers) = result.consumers.as_ref().filter(|consumers| consumers.errors > 0) {
        return Err(format!("{} errors reading", consumers.errors));
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
        topics: args.topics,
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

fn xadd_command(args: XaddArgs) -> Result<(), String> {
    let config = args.load.xadd_config(args.producers);
    let result = xadd::run(&config)?;
    report::print_xadd(&config, &result);
    if let Some(path) = &args.load.json {
        report::write_json(path, &report::XaddDocument { command: "xadd", config: &config, result: &result })?;
    }
    if result.errors > 0 {
        return Err(format!("{} errors ({} entries not acknowledged)", result.errors, result.failed_messages));
    }
    if result.messages == 0 {
        return Err("no entry was acknowledged inside the measured window".into());
    }
    Ok(())
}

fn xreadgroup_command(args: XreadgroupArgs) -> Result<(), String> {
    if args.producers == 0 && args.load.rate.is_some() {
        return Err("--rate paces producers: give --producers too".into());
    }
    let (wire, target) = args.load.wire_and_target();
    let config = XreadgroupConfig {
        wire,
        target,
        stream: args.load.stream.clone(),
        group: args.group.unwrap_or_else(|| format!("sluice-bench-{}", epoch_us_now())),
        start_id: args.start_id,
        consumers: args.consumers,
        count: args.count,
        block_ms: args.block_ms,
        stop_after: args.load.stop_after(),
        warmup_s: args.load.warmup_s,
        producers: (args.producers > 0).then(|| args.load.xadd_config(args.producers)),
        progress: !args.load.quiet,
    };
    let result = xreadgroup::run(&config)?;
    report::print_xreadgroup(&config, &result);
    if let Some(path) = &args.load.json {
        let document = report::XreadgroupDocument { command: "xreadgroup", config: &config, result: &result };
        report::write_json(path, &document)?;
    }
    let producer_errors = result.producers.as_ref().map_or(0, |producers| producers.errors);
    if result.errors + producer_errors > 0 {
        return Err(format!("{} errors reading, {producer_errors} writing", result.errors));
    }
    if result.messages == 0 {
        return Err("no entry was read inside the measured window".into());
    }
    Ok(())
}
