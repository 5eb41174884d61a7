//! `sluice consume TOPIC`: fetches the topic's partitions (or one) from a starting point and
//! prints each record's value on its own line, bytes as stored; `--print-keys` puts the key
//! and a tab before it. Stops after `--max-messages` records, or once `--timeout-ms` passed
//! without a new record. No consumer group: nothing is committed.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::records::RecordBatchDecoder;
use sluice_engine::record::batch::{self, BatchError};

use super::client::Client;
use super::error::AdminError;
use super::requests::{self, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::{topic_name, Connection};
use crate::limits::{
    CONSUME_FETCH_BYTES_MAX, CONSUME_FETCH_WAIT_MS, CONSUME_IDLE_TIMEOUT_MS_DEFAULT, CONSUME_PARTITION_FETCH_BYTES_MAX,
};

/// Fetch v11 (full fetches without a session; what the broker serves up to 12).
const FETCH_VERSION: i16 = 11;
/// Fetch `isolation_level`: read uncommitted (the broker has no transactions).
const READ_UNCOMMITTED: i8 = 0;

#[derive(Args, Debug)]
#[command(after_help = super::EXIT_CODES_HELP)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Topic to read
    pub topic: String,
    /// Read only this partition (default: every partition)
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Where to start in each partition: earliest, latest or an offset
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: Start,
    /// Stop after this many records
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Stop once this long passed without a new record; 0 waits for ever
    #[arg(long, default_value_t = CONSUME_IDLE_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,
    /// Print each record's key and a tab before its value
    #[arg(long)]
    pub print_keys: bool,
}

/// Where reading starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
}

fn parse_start(argument: &str) -> Result<Start, String> {
    match argument {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        offset => match offset.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
            _ => Err(format!("expected earliest, latest or an offset (0 or more), got '{argument}'")),
        },
    }
}

pub fn run(args: &ConsumeArgs, out: &mut impl Write) -> Result<(), AdminError> {
    let mut client = Client::connect(&args.connection.bootstrap)?;
    let doing = format!("cannot consume topic '{}'", args.topic);
    let topic = requests::describe_topic(&mut client, &args.topic, false, &doing)?;
    let partitions = match args.partition {
        Some(partition) if !topic.partition_indexes().contains(&partition) => {
            return Err(AdminError::Usage(format!(
                "partition {partition} does not exist: topic '{}' has {} partitions",
                args.topic,
                topic.partitions.len()
            )))
        }
        Some(partition) => vec![partition],
        None => topic.partition_indexes(),
    };
    let mut positions = start_positions(&mut client, &args.topic, &partitions, args.from, &doing)?;
    let mut printed = 0u64;
    let limit_reached = |printed: u64| args.max_messages.is_some_and(|max| printed >= max);
    let mut last_record_at = Instant::now();
    let idle_timeout = Duration::from_millis(args.timeout_ms);
    while !limit_reached(printed) {
        let wait_ms = match args.timeout_ms {
            0 => CONSUME_FETCH_WAIT_MS,
            _ => {
                let remaining = idle_timeout.saturating_sub(last_record_at.elapsed());
                if remaining.is_zero() {
                    break;
                }
                (remaining.as_millis() as i32).clamp(1, CONSUME_FETCH_WAIT_MS)
            }
        };
        let before = printed;
        for (partition, records) in fetch(&mut client, &args.topic, &positions, wait_ms)? {
            let position = positions.entry(partition).or_default();
            let remaining = args.max_messages.map(|max| max - printed);
            printed += print_records(client.bootstrap(), &records, position, remaining, args.print_keys, out)?;
            if limit_reached(printed) {
                break;
            }
        }
        out.flush().map_err(AdminError::Output)?;
        if printed > before {
            last_record_at = Instant::now();
        }
    }
    Ok(())
}

/// The offset each partition starts at.
fn start_positions(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    start: Start,
    doing: &str,
) -> Result<BTreeMap<i32, i64>, AdminError> {
    let timestamp = match start {
        Start::Offset(offset) => return Ok(partitions.iter().map(|partition| (*partition, offset)).collect()),
        Start::Earliest => EARLIEST_TIMESTAMP,
        Start::Latest => LATEST_TIMESTAMP,
    };
    let keys: Vec<(String, i32)> = partitions.iter().map(|partition| (topic.to_string(), *partition)).collect();
    let offsets = requests::list_offsets(client, &keys, timestamp)?;
    let mut positions = BTreeMap::new();
    for key in keys {
        match offsets.get(&key) {
            Some(Ok(offset)) => positions.insert(key.1, *offset),
            Some(Err(code)) => return Err(AdminError::broker(format!("{doing} partition {}", key.1), *code, None)),
            None => {
                return Err(AdminError::broker(
                    doing,
                    kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                    None,
                ))
            }
        };
    }
    Ok(positions)
}

/// One Fetch of every partition from its position: (partition, record batches) of those that
/// returned records.
fn fetch(
    client: &mut Client,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    wait_ms: i32,
) -> Result<Vec<(i32, Bytes)>, AdminError> {
    let partitions = positions
        .iter()
        .map(|(partition, offset)| {
            FetchPartition::default()
                .with_partition(*partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(CONSUME_PARTITION_FETCH_BYTES_MAX)
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(CONSUME_FETCH_BYTES_MAX)
        .with_isolation_level(READ_UNCOMMITTED)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions)]);
    let response = client.call(&request, FETCH_VERSION)?;
    if response.error_code != 0 {
        return Err(AdminError::broker(format!("cannot fetch topic '{topic}'"), response.error_code, None));
    }
    let mut fetched = Vec::new();
    for data in response.responses.into_iter().flat_map(|topic| topic.partitions) {
        let partition = data.partition_index;
        if data.error_code != 0 {
            let offset = positions.get(&partition).copied().unwrap_or_default();
            let doing = format!("cannot fetch topic '{topic}' partition {partition} at offset {offset}");
            return Err(AdminError::broker(doing, data.error_code, None));
        }
        if let Some(records) = data.records.filter(|records| !records.is_empty()) {
            fetched.push((partition, records));
        }
    }
    Ok(fetched)
}

/// Prints the records at or after `position` (a batch starts where its producer wrote it,
/// maybe before the offset asked for), at most `remaining` of them, and moves `position`
/// past what was read. A batch cut short at the end of the answer is left for the next
/// fetch. Returns how many records were printed.
fn print_records(
    bootstrap: &str,
    records: &Bytes,
    position: &mut i64,
    remaining: Option<u64>,
    print_keys: bool,
    out: &mut impl Write,
) -> Result<u64, AdminError> {
    let protocol_error = |reason: String| AdminError::Protocol { bootstrap: bootstrap.to_string(), reason };
    let mut printed = 0u64;
    for (whole_batches, range) in batch::split(records).enumerate() {
        let range = match range {
            Ok(range) => range,
            Err(BatchError::Truncated { .. }) if whole_batches > 0 => break,
            Err(error) => {
                return Err(protocol_error(format!("a fetched record batch at offset {position} is unusable: {error}")))
            }
        };
        let last_offset = batch::header(&records[range.clone()]).map_or(*position, |header| header.last_offset());
        let mut batch_bytes = records.slice(range);
        let decoded = RecordBatchDecoder::decode(&mut batch_bytes)
            .map_err(|error| protocol_error(format!("cannot decode the record batch at offset {position}: {error}")))?;
        let first_wanted = *position;
        for record in decoded.records.iter().filter(|record| !record.control && record.offset >= first_wanted) {
            if remaining.is_some_and(|remaining| printed >= remaining) {
                return Ok(printed);
            }
            if print_keys {
                out.write_all(record.key.as_deref().unwrap_or_default()).map_err(AdminError::Output)?;
                out.write_all(b"\t").map_err(AdminError::Output)?;
            }
            out.write_all(record.value.as_deref().unwrap_or_default()).map_err(AdminError::Output)?;
            out.write_all(b"\n").map_err(AdminError::Output)?;
            printed += 1;
            *position = record.offset + 1;
        }
        *position = (*position).max(last_offset + 1);
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::record::batch::build;

    #[test]
    fn starts_are_earliest_latest_or_an_offset() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        for bad in ["-1", "soon", ""] {
            assert!(parse_start(bad).expect_err(bad).contains("expected earliest, latest or an offset"));
        }
    }

    fn two_batches() -> Vec<u8> {
        let mut records = build::batch(10, 1_000, &[(b"k10", b"v10"), (b"k11", b"v11"), (b"k12", b"v12")]);
        records.extend(build::batch(13, 1_003, &[(b"k13", b"v13")]));
        records
    }

    fn print(records: &[u8], position: &mut i64, remaining: Option<u64>, keys: bool) -> (u64, String) {
        let mut out = Vec::new();
        let printed = print_records("broker", &Bytes::copy_from_slice(records), position, remaining, keys, &mut out)
            .expect("prints");
        (printed, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn records_before_the_position_are_skipped_and_the_position_moves_past_the_batches() {
        let mut position = 11;
        assert_eq!(print(&two_batches(), &mut position, None, false), (3, "v11\nv12\nv13\n".to_string()));
        assert_eq!(position, 14);
        let mut position = 10;
        assert_eq!(
            print(&two_batches(), &mut position, None, true),
            (4, "k10\tv10\nk11\tv11\nk12\tv12\nk13\tv13\n".into())
        );
    }

    #[test]
    fn the_count_limit_stops_mid_batch_at_the_next_record() {
        let mut position = 10;
        assert_eq!(print(&two_batches(), &mut position, Some(2), false), (2, "v10\nv11\n".to_string()));
        assert_eq!(position, 12, "the next record to print");
    }

    #[test]
    fn a_batch_cut_at_the_end_of_the_answer_waits_for_the_next_fetch() {
        let records = two_batches();
        let mut position = 10;
        assert_eq!(print(&records[..records.len() - 5], &mut position, None, false).0, 3);
        assert_eq!(position, 13);
        let error =
            print_records("broker", &Bytes::copy_from_slice(&records[..20]), &mut 10, None, false, &mut Vec::new())
                .expect_err("no whole batch");
        assert!(matches!(error, AdminError::Protocol { .. }), "{error}");
    }
}
