//! `sluice produce TOPIC`: each line of stdin (without its newline) becomes one record, or
//! `--value` sends one. Lines already waiting in the stdin buffer go out together in one
//! record batch (one Produce request), so piped input travels in full batches while lines
//! typed at a terminal go out one by one, as they are typed. Batches are sent one at a time
//! and each answer is awaited (acks 1 or all), so records land in the order of the input.
//!
//! Partition: `--partition`, else Kafka's default for keyed records (murmur2 of the key, as
//! the Java client and kafka-python hash it), else round robin per batch from a partition that
//! changes from run to run.
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

use super::client::Client;
use super::error::AdminError;
use super::requests;
use super::{topic_name, write_out, Connection};
use crate::limits::{
    ADMIN_BROKER_TIMEOUT_MS, PRODUCE_BATCH_BYTES_MAX, PRODUCE_BATCH_RECORDS_MAX, PRODUCE_LINE_BYTES_MAX,
    PRODUCE_STDIN_BUFFER_BYTES,
};

/// Produce v9 (flexible versions; what the broker serves up to).
const PRODUCE_VERSION: i16 = 9;
/// Record batch format v2, the only one the broker stores.
const RECORD_BATCH_VERSION: i8 = 2;
/// The acks of `--acks all`: answered once the records are fdatasynced.
const ACKS_ALL: i16 = -1;
/// The acks with which the broker sends no answer at all.
const ACKS_NONE: i16 = 0;

#[derive(Args, Debug)]
#[command(after_help = super::EXIT_CODES_HELP)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Topic to write to (created if the broker auto-creates topics)
    pub topic: String,
    /// Partition to write to (default: by the hash of --key, else round robin per batch)
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Key of every record (default: no key)
    #[arg(long)]
    pub key: Option<String>,
    /// Send this one value instead of reading lines from stdin
    #[arg(long)]
    pub value: Option<String>,
    /// 0: no answer, no offsets; 1: answered once appended; all: answered once fdatasynced
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Print the partition and offset of every record, tab-separated, instead of a summary
    #[arg(long)]
    pub print_offsets: bool,
}

fn parse_acks(argument: &str) -> Result<i16, String> {
    match argument {
        "0" => Ok(ACKS_NONE),
        "1" => Ok(1),
        "all" | "-1" => Ok(ACKS_ALL),
        _ => Err(format!("expected 0, 1 or all, got '{argument}'")),
    }
}

/// Where the records went: per partition, the first and last offset and the record count.
type Written = std::collections::BTreeMap<i32, (i64, i64, u64)>;

pub fn run(args: &ProduceArgs, stdin: impl Read, out: &mut impl Write) -> Result<(), AdminError> {
    let mut client = Client::connect(&args.connection.bootstrap)?;
    let doing = format!("cannot produce to topic '{}'", args.topic);
    let partitions = requests::describe_topic(&mut client, &args.topic, true, &doing)?.partitions.len() as i32;
    if let Some(partition) = args.partition.filter(|partition| *partition >= partitions) {
        return Err(AdminError::Usage(format!(
            "partition {partition} does not exist: topic '{}' has {partitions} partitions (0 to {})",
            args.topic,
            partitions - 1
        )));
    }
    let key = args.key.as_deref().map(|key| Bytes::copy_from_slice(key.as_bytes()));
    let fixed_partition = args.partition.or_else(|| key.as_deref().map(|key| key_partition(key, partitions)));
    let mut written = Written::new();
    let mut sent = 0u64;
    let mut round_robin = round_robin_start(partitions);
    let mut send = |values: Vec<Vec<u8>>, out: &mut dyn Write| -> Result<(), AdminError> {
        let partition = fixed_partition.unwrap_or(round_robin);
        round_robin = (round_robin + 1) % partitions;
        let count = values.len() as u64;
        let batch = encode_batch(key.as_ref(), values, now_ms())?;
        sent += count;
        let Some(base_offset) = send_batch(&mut client, args, partition, batch)? else {
            return Ok(());
        };
        let last_offset = base_offset + count as i64 - 1;
        let entry = written.entry(partition).or_insert((base_offset, last_offset, 0));
        entry.1 = last_offset;
        entry.2 += count;
        if args.print_offsets {
            for offset in base_offset..=last_offset {
                writeln!(out, "{partition}\t{offset}").map_err(AdminError::Output)?;
            }
        }
        Ok(())
    };
    match &args.value {
        Some(value) => send(vec![value.as_bytes().to_vec()], out)?,
        None => {
            let mut lines = LineBatches::new(stdin);
            while let Some(values) = lines.next_batch()? {
                send(values, out)?;
                out.flush().map_err(AdminError::Output)?;
            }
        }
    }
    if args.acks == ACKS_NONE {
        // No answer comes to acks=0. The broker starts on a connection's next request once
        // the produces before it are appended, so one more round trip means they were.
        requests::describe_topic(&mut client, &args.topic, false, &doing)?;
    }
    if args.print_offsets {
        return Ok(());
    }
    write_out(out, &summary(&args.topic, args.acks, sent, &written))
}

/// One line on what was produced.
fn summary(topic: &str, acks: i16, sent: u64, written: &Written) -> String {
    let records = |count: u64| if count == 1 { "1 record".to_string() } else { format!("{count} records") };
    if acks == ACKS_NONE {
        return format!("sent {} to {topic} (acks=0: the broker does not answer, so no offsets)\n", records(sent));
    }
    let places: Vec<String> = written
        .iter()
        .map(|(partition, (first, last, _))| match first == last {
            true => format!("partition {partition} offset {first}"),
            false => format!("partition {partition} offsets {first}-{last}"),
        })
        .collect();
    match places.is_empty() {
        true => format!("produced 0 records to {topic}\n"),
        false => format!("produced {} to {topic}: {}\n", records(sent), places.join(", ")),
    }
}

/// Sends one batch; returns its base offset, or None with acks=0 (no answer).
fn send_batch(
    client: &mut Client,
    args: &ProduceArgs,
    partition: i32,
    batch: Bytes,
) -> Result<Option<i64>, AdminError> {
    let request = ProduceRequest::default()
        .with_acks(args.acks)
        .with_timeout_ms(ADMIN_BROKER_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(&args.topic)).with_partition_data(
            vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch))],
        )]);
    if args.acks == ACKS_NONE {
        client.send_only(&request, PRODUCE_VERSION)?;
        return Ok(None);
    }
    let response = client.call(&request, PRODUCE_VERSION)?;
    let doing = format!("cannot produce to topic '{}' partition {partition}", args.topic);
    let answer = response
        .responses
        .into_iter()
        .flat_map(|topic| topic.partition_responses)
        .find(|answer| answer.index == partition)
        .ok_or_else(|| AdminError::Protocol {
            bootstrap: client.bootstrap().to_string(),
            reason: format!("{doing}: the Produce answer holds no result for the partition"),
        })?;
    if answer.error_code != 0 {
        let message = answer.error_message.map(|message| message.to_string());
        return Err(AdminError::broker(doing, answer.error_code, message));
    }
    Ok(Some(answer.base_offset))
}

/// One uncompressed record batch of `values`, all with `key`, encoded by kafka-protocol.
fn encode_batch(key: Option<&Bytes>, values: Vec<Vec<u8>>, timestamp_ms: i64) -> Result<Bytes, AdminError> {
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder starts a new batch wherever offset - sequence changes: sequences that
            // follow the offsets keep the records in one batch, whose base sequence is -1 (the
            // first record's), as for any producer without idempotence.
            sequence: index as i32 - 1,
            timestamp: timestamp_ms,
            key: key.cloned(),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        })
        .collect();
    let options = RecordEncodeOptions { version: RECORD_BATCH_VERSION, compression: Compression::None };
    let mut buffer = BytesMut::new();
    RecordBatchEncoder::encode(&mut buffer, &records, &options)
        .map_err(|error| AdminError::Usage(format!("cannot encode a record batch: {error}")))?;
    Ok(buffer.freeze())
}

/// Where round robin starts: varies from run to run, so single records sent by separate runs
/// spread over the partitions instead of all landing on partition 0.
fn round_robin_start(partitions: i32) -> i32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    ((nanos ^ std::process::id()) % partitions as u32) as i32
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The partition of a keyed record, as Kafka's default partitioner picks it:
/// `toPositive(murmur2(key)) % partitions`.
fn key_partition(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), the hash behind the Java
/// client's and kafka-python's default partitioner.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            hash ^= u32::from(*byte) << (8 * index);
        }
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash
}

/// Lines of the input, grouped into batches.
struct LineBatches<R> {
    reader: BufReader<R>,
    lines_read: u64,
}

impl<R: Read> LineBatches<R> {
    fn new(input: R) -> Self {
        Self { reader: BufReader::with_capacity(PRODUCE_STDIN_BUFFER_BYTES, input), lines_read: 0 }
    }

    /// The next batch: one line (waiting for it), then the whole lines already in the buffer,
    /// within [`PRODUCE_BATCH_RECORDS_MAX`] and [`PRODUCE_BATCH_BYTES_MAX`]. None at the end.
    fn next_batch(&mut self) -> Result<Option<Vec<Vec<u8>>>, AdminError> {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0usize;
        loop {
            if !batch.is_empty() {
                let buffered_line_bytes = self.reader.buffer().iter().position(|byte| *byte == b'\n');
                match buffered_line_bytes {
                    Some(line_bytes)
                        if batch.len() < PRODUCE_BATCH_RECORDS_MAX
                            && batch_bytes + line_bytes <= PRODUCE_BATCH_BYTES_MAX => {}
                    _ => break,
                }
            }
            match self.read_line()? {
                Some(line) => {
                    batch_bytes += line.len();
                    batch.push(line);
                }
                None => break,
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// One line without its newline; None at the end of the input.
    fn read_line(&mut self) -> Result<Option<Vec<u8>>, AdminError> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(PRODUCE_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|error| AdminError::Usage(format!("cannot read stdin: {error}")))?;
        if read == 0 {
            return Ok(None);
        }
        self.lines_read += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > PRODUCE_LINE_BYTES_MAX {
            return Err(AdminError::Usage(format!(
                "line {} of stdin is longer than {PRODUCE_LINE_BYTES_MAX} bytes; nothing from it on was sent",
                self.lines_read
            )));
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;
    use sluice_engine::record::batch;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2 (Java ints).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data) as i32, expected, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_key_always_lands_on_the_same_partition_within_range() {
        for partitions in 1..20 {
            let partition = key_partition(b"customer-42", partitions);
            assert!((0..partitions).contains(&partition));
            assert_eq!(partition, key_partition(b"customer-42", partitions));
        }
    }

    #[test]
    fn records_go_out_in_one_valid_batch_without_a_producer_id() {
        let values: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), b"three".to_vec()];
        let key = Bytes::from_static(b"k");
        let encoded = encode_batch(Some(&key), values, 1_700_000_000_000).expect("encodes");
        let info = batch::validate(&encoded, usize::MAX).expect("one valid batch, as the broker checks it");
        assert_eq!((info.records_count, info.last_offset_delta), (3, 2));
        assert_eq!((info.producer_id, info.base_sequence), (-1, -1));
        let mut bytes = encoded.clone();
        let decoded = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
        let values: Vec<&[u8]> = decoded.records.iter().filter_map(|record| record.value.as_deref()).collect();
        assert_eq!(values, [&b"one"[..], b"", b"three"]);
        assert!(decoded.records.iter().all(|record| record.key.as_deref() == Some(&b"k"[..])));
    }

    fn batches(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, AdminError> {
        let mut lines = LineBatches::new(input);
        let mut batches = Vec::new();
        while let Some(batch) = lines.next_batch()? {
            batches.push(batch);
        }
        Ok(batches)
    }

    #[test]
    fn buffered_lines_travel_together_without_their_newlines() {
        let batches = batches(b"a\n\nc\r\nlast without newline").expect("reads");
        // A last line without a newline is only known to be whole once the input ends: it
        // goes in a batch of its own.
        let expected = vec![vec![b"a".to_vec(), Vec::new(), b"c\r".to_vec()], vec![b"last without newline".to_vec()]];
        assert_eq!(batches, expected);
        assert!(self::batches(b"").expect("reads").is_empty());
    }

    #[test]
    fn batches_stop_at_their_record_and_byte_bounds() {
        let many: Vec<u8> = "x\n".repeat(PRODUCE_BATCH_RECORDS_MAX + 5).into_bytes();
        let sizes: Vec<usize> = batches(&many).expect("reads").iter().map(Vec::len).collect();
        assert_eq!(sizes, [PRODUCE_BATCH_RECORDS_MAX, 5]);

        let line = "y".repeat(PRODUCE_BATCH_BYTES_MAX / 2 + 1);
        let big: Vec<u8> = format!("{line}\n{line}\n{line}\n").into_bytes();
        let sizes: Vec<usize> = batches(&big).expect("reads").iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1], "two such lines would pass the byte bound");
    }

    #[test]
    fn a_line_over_the_limit_is_refused() {
        let input = vec![b'z'; PRODUCE_LINE_BYTES_MAX + 1];
        let error = batches(&input).expect_err("too long");
        assert!(error.to_string().contains("line 1 of stdin is longer than"), "{error}");
        let mut exact = vec![b'z'; PRODUCE_LINE_BYTES_MAX];
        exact.push(b'\n');
        assert_eq!(batches(&exact).expect("reads")[0][0].len(), PRODUCE_LINE_BYTES_MAX);
    }

    #[test]
    fn acks_and_summaries() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
        let mut written = Written::new();
        assert_eq!(summary("t", -1, 0, &written), "produced 0 records to t\n");
        written.insert(0, (0, 4, 5));
        written.insert(2, (7, 7, 1));
        assert_eq!(
            summary("t", -1, 6, &written),
            "produced 6 records to t: partition 0 offsets 0-4, partition 2 offset 7\n"
        );
        assert_eq!(
            summary("t", 0, 1, &Written::new()),
            "sent 1 record to t (acks=0: the broker does not answer, so no offsets)\n"
        );
    }
}
