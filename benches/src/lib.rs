//! # sluice-bench: how fast Sluice is, measured
//!
//! - `benches/batch.rs`: CRC-32C validation of record batches and splitting a produce payload.
//! - `benches/append.rs`: appending to a real `Partition` inside a glommio executor, in memory
//!   only (acks=1 path) and with an fdatasync per batch (acks=all path, direct I/O).
//! - `benches/index.rs`: offset and time index lookups.
//! - `benches/kafka_decode.rs`: Produce and Fetch request frames decoded as the Kafka listener
//!   does (`sluice_server::kafka::registry::decode_body`).
//! - `benches/resp_parse.rs`: pipelined XADDs and an XREADGROUP cut into frames and `Args` as
//!   the RESP listener does.
//! - `benches/group_step.rs`: the consumer group state machine (join, sync, heartbeat) and the
//!   stream group one (deliver, ack, claim).
//! - `produce_e2e.sh` / `produce_e2e.py`: librdkafka producing to a release broker with
//!   acks=all, next to the raw direct-write bandwidth of the same disk, in one run.
//! - `src/bin/sluice-bench.rs`, the load generator: pipelined produce (closed or open loop) with
//!   pre-encoded batches, consume, and the disk and loopback ceilings to compare them with.
//!   On the RESP side, `xadd` and `xreadgroup` do the same for Redis Streams, against sluice
//!   or redis-server. Its parts live in [`load`]; start reading at [`load::produce::run`] and
//!   [`load::xadd::run`].
//! - `compare`: sluice next to redis-server (three persistence settings) on one machine, in
//!   one run, written to `results/compare-<date>.md`.
//!
//! Run the micro-benchmarks with `cargo bench -p sluice-bench` (a few minutes on 2 cores).
//! This library holds what they share: realistic record batches built without a client.
pub mod load;

use sluice_engine::record::batch::build;

/// Value size of every benchmark record, in bytes (the "1 KiB messages" of the figures).
pub const RECORD_VALUE_BYTES: usize = 1024;
/// Records in the small batch: about 16 KiB, what a lingering producer sends per partition.
pub const RECORDS_PER_SMALL_BATCH: usize = 16;
/// Records in the large batch: about 1 MiB, librdkafka's `batch.size` ceiling.
pub const RECORDS_PER_LARGE_BATCH: usize = 1024;

/// Deterministic, incompressible-looking bytes (xorshift64), so no run depends on a RNG crate.
pub fn filler_bytes(length_bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(length_bytes + 8);
    while out.len() < length_bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(length_bytes);
    out
}

/// A valid, uncompressed RecordBatch v2 of `records` records, each with an 8-byte key and a
/// [`RECORD_VALUE_BYTES`] value, timestamps from `base_timestamp_ms` on.
pub fn record_batch(records: usize, base_timestamp_ms: i64) -> Vec<u8> {
    record_batch_sized(records, RECORD_VALUE_BYTES, base_timestamp_ms)
}

/// [`record_batch`] with values of `value_bytes` bytes each.
pub fn record_batch_sized(records: usize, value_bytes: usize, base_timestamp_ms: i64) -> Vec<u8> {
    assert!(records > 0, "a batch holds at least one record");
    let values: Vec<Vec<u8>> = (0..records).map(|index| filler_bytes(value_bytes, index as u64 + 1)).collect();
    let keys: Vec<[u8; 8]> = (0..records).map(|index| (index as u64).to_be_bytes()).collect();
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().zip(&values).map(|(key, value)| (&key[..], &value[..])).collect();
    build::batch(0, base_timestamp_ms, &pairs)
}

/// A produce request's `records` field of at least `total_bytes`: consecutive batches of
/// `records_per_batch` records, as a client sends several batches for one partition.
pub fn produce_payload(total_bytes: usize, records_per_batch: usize) -> Vec<u8> {
    let one = record_batch(records_per_batch, 0);
    let mut payload = Vec::with_capacity(total_bytes + one.len());
    while payload.len() < total_bytes {
        payload.extend_from_slice(&one);
    }
    payload
}

/// Milliseconds since the Unix epoch (record timestamps that retention by age keeps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_engine::record::batch;

    #[test]
    fn built_batches_are_valid_and_sized_as_announced() {
        let small = record_batch(RECORDS_PER_SMALL_BATCH, 1_000);
        let info = batch::validate(&small, usize::MAX).unwrap();
        assert_eq!(info.records_count, RECORDS_PER_SMALL_BATCH as i32);
        assert!((16 << 10..17 << 10).contains(&small.len()), "small batch is {} bytes", small.len());
        let large = record_batch(RECORDS_PER_LARGE_BATCH, 1_000);
        assert!((1 << 20..(1 << 20) + (64 << 10)).contains(&large.len()), "large batch is {} bytes", large.len());
        batch::validate(&large, usize::MAX).unwrap();
    }

    #[test]
    fn payload_splits_into_whole_batches() {
        let payload = produce_payload(1 << 20, RECORDS_PER_SMALL_BATCH);
        let ranges: Vec<_> = batch::split(&payload).collect::<Result<_, _>>().unwrap();
        assert_eq!(ranges.len(), payload.len() / record_batch(RECORDS_PER_SMALL_BATCH, 0).len());
        assert_eq!(ranges.last().unwrap().end, payload.len());
    }
}
