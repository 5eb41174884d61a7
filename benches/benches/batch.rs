//! Record batch validation (CRC-32C over the whole batch, on every produce) and splitting a
//! produce payload into batches (framing only). Throughput is in bytes of batch.
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_bench::{produce_payload, record_batch, RECORDS_PER_LARGE_BATCH, RECORDS_PER_SMALL_BATCH};
use sluice_engine::record::batch;

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

criterion_group!(benches, validate, split);
criterion_main!(benches);
