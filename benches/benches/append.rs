//! Appending 16-record batches of 1 KiB records to a real `Partition` on direct-I/O files,
//! inside one glommio executor that lives for the whole benchmark (made once, `run` per
//! measurement). Throughput is in records.
//!
//! - `memory`: `append` only, the acks=1 path (validate, assign offsets, queue in memory). The
//!   flusher cannot run while the timed loop runs (appends never yield), so the queue is
//!   drained to disk between chunks with the clock stopped, below the backpressure limit.
//! - `dma`: `append` + `wait_durable` per batch, one producer: the acks=all path with one
//!   direct write + fdatasync per batch.
//! - `dma_16_producers`: the same with 16 concurrent producers, showing group commit.
//!
//! The data lives under `SLUICE_BENCH_DIR`, else cargo's target tmp dir (same disk as the
//! repository).
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use sluice_bench::{now_ms, record_batch, RECORDS_PER_SMALL_BATCH};
use sluice_engine::partition::{AppendResult, Partition, PartitionConfig};
use sluice_engine::sync::Notify;

/// Batches appended between two drains in `memory` mode: 16 MiB, under the engine's 64 MiB
/// backpressure limit (`PENDING_BYTES_MAX`), so a timed append never waits for the disk.
const MEMORY_CHUNK_BATCHES: u64 = 1024;
/// Concurrent producers of `dma_16_producers`.
const CONCURRENT_PRODUCERS: u64 = 16;
/// Retention keeps the benchmark's disk use bounded (the memory mode appends gigabytes).
const RETENTION_BYTES: &str = "1073741824";
const SEGMENT_BYTES: &str = "268435456";

fn bench_root() -> PathBuf {
    std::env::var_os("SLUICE_BENCH_DIR").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from)
}

/// One executor and one partition on a fresh temporary directory, for one benchmark.
struct Fixture {
    executor: LocalExecutor,
    partition: Rc<Partition>,
    batch: Rc<Vec<u8>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn open() -> Self {
        let root = bench_root();
        std::fs::create_dir_all(&root).expect("create the benchmark root dir");
        let dir = tempfile::Builder::new().prefix("sluice-bench-append-").tempdir_in(&root).expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let executor = LocalExecutorBuilder::new(Placement::Unbound).make().expect("glommio executor");
        sluice_engine::fs::create_direct_io_probe(&data_dir).expect("direct I/O probe file");
        let mut config = PartitionConfig::default();
        config.set("retention.bytes", RETENTION_BYTES).expect("retention.bytes");
        config.set("segment.bytes", SEGMENT_BYTES).expect("segment.bytes");
        let partition = executor.run(async move {
            // GLOMMIO.md trap 1: the executor's first DMA file must be a non-empty one, read.
            sluice_engine::fs::prime_direct_io(&data_dir).await.expect("prime direct I/O");
            Partition::open(&data_dir.join("bench/0"), config, Rc::new(Notify::default()))
                .await
                .expect("open partition")
        });
        let batch = Rc::new(record_batch(RECORDS_PER_SMALL_BATCH, now_ms()));
        Self { executor, partition, batch, _dir: dir }
    }

    /// Times `iters` appends without waiting for durability, draining between chunks.
    fn append_memory(&self, iters: u64) -> Duration {
        let (partition, batch) = (self.partition.clone(), self.batch.clone());
        self.executor.run(async move {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let chunk = MEMORY_CHUNK_BATCHES.min(iters - done);
                let start = Instant::now();
                let mut last = None;
                for _ in 0..chunk {
                    last = Some(partition.append(&batch).await.expect("append"));
                }
                elapsed += start.elapsed();
                drain(&partition, last).await;
                done += chunk;
            }
            elapsed
        })
    }

    /// Times `iters` appends each followed by `wait_durable`, by `producers` concurrent tasks.
    fn append_durable(&self, iters: u64, producers: u64) -> Duration {
        let (partition, batch) = (self.partition.clone(), self.batch.clone());
        self.executor.run(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..producers)
                .map(|producer| {
                    let share = iters / producers + u64::from(producer < iters % producers);
                    let (partition, batch) = (partition.clone(), batch.clone());
                    glommio::spawn_local(async move {
                        for _ in 0..share {
                            let appended = partition.append(&batch).await.expect("append");
                            partition.wait_durable(&appended).await.expect("durable");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            let elapsed = start.elapsed();
            partition.enforce_retention(now_ms());
            elapsed
        })
    }

    /// Stops the flusher after it synced everything, and drops the partition on its executor.
    fn close(self) {
        let Self { executor, partition, batch: _, _dir } = self;
        executor.run(async move {
            partition.close().await;
            drop(partition);
        });
    }
}

/// Waits (untimed) until everything appended is on disk and retention has trimmed old segments.
async fn drain(partition: &Partition, last: Option<AppendResult>) {
    if let Some(last) = last {
        partition.wait_durable(&last).await.expect("drain to disk");
    }
    partition.enforce_retention(now_ms());
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_16x1KiB");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    group.throughput(Throughput::Elements(RECORDS_PER_SMALL_BATCH as u64));

    let fixture = Fixture::open();
    group.bench_function("memory", |bencher| bencher.iter_custom(|iters| fixture.append_memory(iters)));
    fixture.close();

    let fixture = Fixture::open();
    group.bench_function("dma", |bencher| bencher.iter_custom(|iters| fixture.append_durable(iters, 1)));
    fixture.close();

    let fixture = Fixture::open();
    group.bench_function("dma_16_producers", |bencher| {
        bencher.iter_custom(|iters| fixture.append_durable(iters, CONCURRENT_PRODUCERS))
    });
    fixture.close();
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
