//! Sparse index lookups (every cold fetch and ListOffsets-by-time does one) on indexes of
//! 100k entries: one per 4 KiB of log, i.e. a 400 MB segment. Keys are spread pseudo-randomly
//! so branch prediction and caches see a realistic mix.
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_engine::index::offset_index::{OffsetIndex, OffsetIndexEntry};
use sluice_engine::index::time_index::{TimeIndex, TimeIndexEntry};

const INDEX_ENTRIES: u32 = 100_000;
/// Records per indexed batch and bytes between entries: a 16-record, 4 KiB-spaced log.
const OFFSETS_PER_ENTRY: u32 = 16;
const POSITION_BYTES_PER_ENTRY: u32 = 4096;
const TIMESTAMP_MS_PER_ENTRY: i64 = 3;
const TIMESTAMP_BASE_MS: i64 = 1_700_000_000_000;
const LOOKUPS: usize = 1024;

/// `LOOKUPS` keys in `0..limit`, deterministic.
fn keys(limit: u64) -> Vec<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..LOOKUPS)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % limit
        })
        .collect()
}

fn offset_index(c: &mut Criterion) {
    let entries = (0..INDEX_ENTRIES)
        .map(|index| OffsetIndexEntry {
            relative_offset: (index * OFFSETS_PER_ENTRY).into(),
            position: (index * POSITION_BYTES_PER_ENTRY).into(),
        })
        .collect();
    let index = OffsetIndex::from_entries(entries);
    let lookups: Vec<u32> =
        keys(u64::from(INDEX_ENTRIES * OFFSETS_PER_ENTRY)).into_iter().map(|key| key as u32).collect();
    let mut group = c.benchmark_group("index_lookup_100k");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("offset", |bencher| {
        bencher.iter(|| {
            for &key in &lookups {
                black_box(index.lookup(black_box(key)));
            }
        })
    });

    let entries = (0..INDEX_ENTRIES)
        .map(|index| TimeIndexEntry {
            timestamp: (TIMESTAMP_BASE_MS + i64::from(index) * TIMESTAMP_MS_PER_ENTRY).into(),
            relative_offset: (index * OFFSETS_PER_ENTRY).into(),
        })
        .collect();
    let time_index = TimeIndex::from_entries(entries);
    assert_eq!(time_index.entries().len(), INDEX_ENTRIES as usize, "every entry kept");
    let span_ms = i64::from(INDEX_ENTRIES) * TIMESTAMP_MS_PER_ENTRY;
    let timestamps: Vec<i64> = keys(span_ms as u64).into_iter().map(|key| TIMESTAMP_BASE_MS + key as i64).collect();
    group.bench_function("time", |bencher| {
        bencher.iter(|| {
            for &timestamp in &timestamps {
                black_box(time_index.lookup(black_box(timestamp)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, offset_index);
criterion_main!(benches);
