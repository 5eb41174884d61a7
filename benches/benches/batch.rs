//! Record batch validation (CRC-32C over the whole batch, on every produce), splitting a
//! produce payload into batches (framing only), and building the batch of 16 pipelined XADDs
//! (`stream_entries_16x100B`: what a stream's owner does per gathered batch, IDs as record keys
//! and fields as headers). Throughput is in bytes of batch, entries for the last.
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_bench::{produce_payload, record_batch, RECORDS_PER_LARGE_BATCH, RECORDS_PER_SMALL_BATCH};
use sluice_engine::record::batch;
use sluice_engine::stream::entry;
use sluice_engine::stream::id::StreamId;

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validate");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for (name, records) in [("16KiB", RECORDS_PER_SMALL_BATCH), ("1MiB", RECORDS_PER_LARGE_BATCH)] {
        let bytes = record_batch(records, 1_000);
        batch::validate(&bytes, usize::MAX).expect("benchmark batch is valid");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |bencher| {
            bencher.iter(|| batch::validate(black_box(&bytes), usize::MAX).expect("valid"))
        });
    }
    group.finish();
}

fn split(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_split");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    // A 1 MiB produce payload as 64 batches of 16 records, and as one batch of 1024 records.
    for (name, records_per_batch) in
        [("1MiB_of_16KiB_batches", RECORDS_PER_SMALL_BATCH), ("1MiB_one_batch", RECORDS_PER_LARGE_BATCH)]
    {
        let payload = produce_payload(1 << 20, records_per_batch);
        let expected_batches = batch::split(&payload).count();
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                let mut batches = 0usize;
                for range in batch::split(black_box(&payload)) {
                    black_box(range.expect("payload frames are valid"));
                    batches += 1;
                }
                assert_eq!(batches, expected_batches);
            })
        });
    }
    group.finish();
}

const GATHERED_XADDS: usize = 16;
const XADD_VALUE_BYTES: usize = 100;

fn stream_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_build");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    let fields: Vec<Vec<(Bytes, Bytes)>> = (0..GATHERED_XADDS)
        .map(|index| {
            vec![(
                Bytes::from_static(b"payload"),
                Bytes::from(sluice_bench::filler_bytes(XADD_VALUE_BYTES, index as u64)),
            )]
        })
        .collect();
    let entries: Vec<(StreamId, &[(Bytes, Bytes)])> = fields
        .iter()
        .enumerate()
        .map(|(index, fields)| (StreamId::new(1_764_900_000_000, index as u64), &fields[..]))
        .collect();
    group.throughput(Throughput::Elements(GATHERED_XADDS as u64));
    group.bench_function("stream_entries_16x100B", |bencher| {
        bencher.iter(|| {
            let batches = entry::encode_within(black_box(&entries), usize::MAX);
            assert_eq!(batches.len(), 1);
            batches
        })
    });
    group.finish();
}

criterion_group!(benches, validate, split, stream_entries);
criterion_main!(benches);
