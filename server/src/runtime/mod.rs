//! The shard runtime: one glommio executor per core, joined by a channel mesh. Everything that
//! depends on glommio's executor API lives here, so the rest of the server does not.
pub mod mesh;
pub mod routing;
pub mod shard;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::config::Config;
use crate::http::Readiness;
use crate::limits::{IO_MEMORY_BYTES, MESH_CHANNEL_CAPACITY, RING_DEPTH};
use crate::metadata::Metadata;
use mesh::MeshMessage;
use shard::Shard;

/// How often a shard looks at the stop flag (shutdown only, not a hot path).
const STOP_POLL_INTERVAL_MS: u64 = 50;
/// How often a recovered shard looks whether its peers recovered too (start-up only).
const RECOVERY_POLL_INTERVAL_MS: u64 = 2;
/// How long start-up waits for a listen address a just-killed process still holds.
const LISTEN_ADDRESS_WAIT_MS: u64 = 3_000;
/// How long a connection attempt to a listen address may take before it counts as free.
const LISTEN_PROBE_TIMEOUT_MS: u64 = 200;

/// Starts one executor per shard and blocks until they all stop. Setting `stop` (SIGTERM)
/// makes every shard stop accepting, flush and sync its partitions, and return.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), String> {
    let config = Arc::new(config);
    let stopped = Arc::new(std::sync::Barrier::new(config.shards));
    let readiness = Arc::new(Readiness::new(config.shards));
    std::fs::create_dir_all(config.data_dir.join("topics"))
        .map_err(|error| format!("cannot create data dir {}: {error}", config.data_dir.display()))?;
    // Fail early, on the main thread, if the manifest cannot be read.
    Metadata::load(&config.data_dir)?;
    check_listen_addresses_free(&config)?;
    sluice_engine::fs::create_direct_io_probe(&config.data_dir)
        .map_err(|error| format!("cannot write in data dir {}: {error}", config.data_dir.display()))?;
    tracing::info!(
        shards = config.shards,
        ring_depth = RING_DEPTH,
        io_memory_bytes = IO_MEMORY_BYTES,
        placement = "MaxSpread (one executor pinned per core)",
        memlock_limit_bytes = memlock_limit_bytes(),
        "starting glommio executors"
    );
    let mesh = MeshBuilder::<MeshMessage, _>::full(config.shards, MESH_CHANNEL_CAPACITY);
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(config.shards, None))
        .name("sluice-shard")
        .ring_depth(RING_DEPTH)
        .io_memory(IO_MEMORY_BYTES)
        .on_all_shards(move || {
            let (config, mesh, stop) = (config.clone(), mesh.clone(), stop.clone());
            let (stopped, readiness) = (stopped.clone(), readiness.clone());
            async move {
                let result = run_shard(config, mesh, stop, stopped, readiness).await;
                if let Err(error) = &result {
                    tracing::error!(%error, "shard failed");
                }
                result
            }
        })
        .map_err(|error| format!("cannot start the executors: {error}"))?;
    let errors: Vec<String> = handles
        .join_all()
        .into_iter()
        .filter_map(|result| match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(error) => Some(format!("a shard stopped: {error}")),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

async fn run_shard(
    config: Arc<Config>,
    mesh: MeshBuilder<MeshMessage, glommio::channels::channel_mesh::Full>,
    stop: Arc<AtomicBool>,
    stopped: Arc<std::sync::Barrier>,
    readiness: Arc<Readiness>,
) -> Result<(), String> {
    let (senders, receivers) = mesh.join().await.map_err(|error| format!("joining the shard mesh failed: {error}"))?;
    sluice_engine::fs::prime_direct_io(&config.data_dir)
        .await
        .map_err(|error| format!("direct I/O does not work in {}: {error}", config.data_dir.display()))?;
    let metadata = Metadata::load(&config.data_dir)?;
    let shard = Shard::new(config.clone(), senders, Metadata::default());
    // HTTP first, so /health answers and /ready says 503 while the partitions recover.
    let http = if shard.id == 0 { Some(crate::http::listen(shard.clone(), readiness.clone())?) } else { None };
    let metadata = Arc::new(metadata);
    shard.apply_metadata(metadata.clone()).await;
    shard.expose_metadata(metadata);
    let limits = sluice_engine::group::state_machine::GroupLimits {
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        ..Default::default()
    };
    let coordinator = crate::coordinator::Coordinator::open(
        &config.data_dir,
        shard.id,
        shard.count,
        limits,
        config.offsets_compaction_bytes,
    )
    .await?;
    shard.set_coordinator(coordinator);
    shard.serve_mesh(receivers);
    tracing::info!(shard = shard.id, "shard recovered its partitions");
    glommio::spawn_local(shard.clone().run_retention()).detach();
    // Listen only once every shard has recovered: a client must never reach a shard whose
    // peers cannot answer yet. Waiting without blocking the thread keeps HTTP probes answered.
    readiness.shard_recovered();
    while !readiness.all_recovered() && !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(RECOVERY_POLL_INTERVAL_MS)).await;
    }
    let mut listeners = None;
    if !stop.load(Ordering::Relaxed) {
        listeners = Some((crate::kafka::listen(shard.clone())?, crate::resp::listen(shard.clone())?));
        readiness.shard_listening();
    }
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS)).await;
    }
    // Stop accepting; requests already in flight carry on while the partitions close.
    drop((listeners, http));
    shard.close_all().await;
    tracing::info!(shard = shard.id, "shard flushed and synced its partitions");
    // Keep this shard's mesh channels open until every shard is done, so no in-flight request
    // finds a peer gone. Every shard only waits here after finishing its own local work.
    stopped.wait();
    Ok(())
}

/// Every shard binds its listeners with SO_REUSEPORT (the kernel spreads connections over the
/// shards), which would also let this broker share a port with another process listening the
/// same way, e.g. a second broker, splitting its clients between two brokers. So start-up
/// refuses an address where something accepts connections. (A bind test would also trip over
/// the previous run's connections in TIME_WAIT.) A broker killed a moment ago may accept for
/// a few milliseconds more (io_uring releases its sockets asynchronously): wait, bounded.
fn check_listen_addresses_free(config: &Config) -> Result<(), String> {
    let listeners = [("Kafka", config.kafka_listen), ("RESP", config.resp_listen), ("HTTP", config.http_listen)];
    for (door, address) in listeners {
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(LISTEN_PROBE_TIMEOUT_MS)).is_ok() {
            if started.elapsed() >= Duration::from_millis(LISTEN_ADDRESS_WAIT_MS) {
                return Err(format!(
                    "cannot listen for {door} on {address}: another process accepts connections there \
                     (is another broker running?)"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// RLIMIT_MEMLOCK soft limit: glommio's registered buffers silently fall back above it.
fn memlock_limit_bytes() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if result == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

/// Spawns a task on the current shard's executor.
pub fn spawn<T: 'static>(future: impl std::future::Future<Output = T> + 'static) -> glommio::Task<T> {
    glommio::spawn_local(future)
}

/// Shared by listeners: the shard as an `Rc`.
pub type ShardRef = Rc<Shard>;
