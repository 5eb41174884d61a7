//! The shard runtime: one glommio executor per core, joined by a channel mesh. Everything that
//! depends on glommio's executor API lives here, so the rest of the server does not.
pub mod mesh;
pub mod routing;
pub mod shard;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::accept::Connections;
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
/// How often a finished shard looks whether its peers finished too (shutdown only).
const PEERS_FINISHED_POLL_INTERVAL_MS: u64 = 2;
/// How long the shards may take to stop (flush, sync, close) once asked to, before the process
/// exits without them: a stuck shard must not keep the broker from exiting. What was not yet
/// synced then is what a crash would lose, and recovery handles that at the next start.
const SHUTDOWN_WAIT_MS_MAX: u64 = 30_000;
/// How long start-up waits for a listen address a just-killed process still holds.
const LISTEN_ADDRESS_WAIT_MS: u64 = 3_000;
/// How long a connection attempt to a listen address may take before it counts as free.
const LISTEN_PROBE_TIMEOUT_MS: u64 = 200;
/// The executor threads' name prefix (glommio appends the executor id).
const SHARD_THREAD_NAME: &str = "sluice-shard";

/// How the shards stop together; shared by the shard threads. `stop` is set by SIGTERM and by
/// any shard that fails (an error or a panic, at start-up or later), so a failing shard takes
/// the whole broker down instead of leaving its peers waiting for it.
struct Stopping {
    stop: Arc<AtomicBool>,
    shards: usize,
    /// Shards that are done: returned (cleanly or not) or whose thread panicked.
    finished: AtomicUsize,
}

impl Stopping {
    fn new(shards: usize, stop: Arc<AtomicBool>) -> Self {
        Self { stop, shards, finished: AtomicUsize::new(0) }
    }

    fn is_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn request(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// One more shard is done. Not asserted to stay within `shards`: a panic caught on a shard
    /// thread (glommio catches a panicking waker) counts its shard once more, which only ends
    /// the wait sooner.
    fn shard_finished(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
    }

    /// Blocks this shard's thread until every shard finished. Blocking, not awaiting: this
    /// executor must run nothing more (its partitions are closed) while it keeps its mesh
    /// channels open, so no request in flight on a peer finds this shard gone.
    fn wait_for_peers(&self) {
        while self.finished.load(Ordering::Acquire) < self.shards {
            std::thread::sleep(Duration::from_millis(PEERS_FINISHED_POLL_INTERVAL_MS));
        }
    }
}

/// Starts one executor per shard and blocks until they all stop. Setting `stop` (SIGTERM)
/// makes every shard stop accepting, flush and sync its partitions, and return. A shard that
/// fails sets `stop` too, and `run` returns its error.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), String> {
    let config = Arc::new(config);
    let stopping = Arc::new(Stopping::new(config.shards, stop));
    let readiness = Arc::new(Readiness::new(config.shards));
    std::fs::create_dir_all(config.data_dir.join("topics"))
        .map_err(|error| format!("cannot create data dir {}: {error}", config.data_dir.display()))?;
    // Fail early, on the main thread, if the manifest cannot be read.
    Metadata::load(&config.data_dir)?;
    check_listen_addresses_free(&config)?;
    sluice_engine::fs::create_direct_io_probe(&config.data_dir)
        .map_err(|error| format!("cannot write in data dir {}: {error}", config.data_dir.display()))?;
    let open_files = raise_open_files_limit();
    let open_files_needed = open_files_needed(&config);
    if open_files < open_files_needed {
        tracing::warn!(
            open_files_limit = open_files,
            open_files_needed,
            "the open-files limit (ulimit -n) is below what --connections-max allows: accepting will fail \
             with EMFILE before it is reached; raise the hard limit or lower --connections-max"
        );
    }
    stop_every_shard_when_one_panics(stopping.clone());
    exit_if_stopping_takes_longer_than_allowed(stopping.clone())
        .map_err(|error| format!("cannot start the shutdown watchdog: {error}"))?;
    tracing::info!(
        shards = config.shards,
        ring_depth = RING_DEPTH,
        io_memory_bytes = IO_MEMORY_BYTES,
        placement = "MaxSpread (one executor pinned per core)",
        memlock_limit_bytes = memlock_limit_bytes(),
        open_files_limit = open_files,
        "starting glommio executors"
    );
    let mesh = MeshBuilder::<MeshMessage, _>::full(config.shards, MESH_CHANNEL_CAPACITY);
    let connections = Arc::new(Connections::new(config.shards));
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(config.shards, None))
        .name(SHARD_THREAD_NAME)
        .ring_depth(RING_DEPTH)
        .io_memory(IO_MEMORY_BYTES)
        .on_all_shards(move || {
            let (config, mesh, stopping, readiness, connections) =
                (config.clone(), mesh.clone(), stopping.clone(), readiness.clone(), connections.clone());
            async move {
                let result = run_shard(config, mesh, &stopping, readiness, connections).await;
                if let Err(error) = &result {
                    tracing::error!(%error, "shard failed: stopping every shard");
                    stopping.request();
                }
                stopping.shard_finished();
                stopping.wait_for_peers();
                result
            }
        })
        .map_err(|error| format!("cannot start the executors: {error}"))?;
    failures_of(handles.join_all())
}

/// What the shards' threads returned, as one message that names every distinct failure
/// (every shard failing to bind the same port says so once).
fn failures_of(results: Vec<glommio::Result<Result<(), String>, ()>>) -> Result<(), String> {
    let mut failures: Vec<String> = Vec::new();
    for result in results {
        let failure = match result {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(glommio::GlommioError::BuilderError(glommio::BuilderErrorKind::ThreadPanic(_))) => {
                "a shard panicked (the panic message is above)".to_string()
            }
            Err(error) => format!("a shard stopped: {error}"),
        };
        if !failures.contains(&failure) {
            failures.push(failure);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

async fn run_shard(
    config: Arc<Config>,
    mesh: MeshBuilder<MeshMessage, Full>,
    stopping: &Stopping,
    readiness: Arc<Readiness>,
    connections: Arc<Connections>,
) -> Result<(), String> {
    let (senders, receivers) = mesh.join().await.map_err(|error| format!("joining the shard mesh failed: {error}"))?;
    sluice_engine::fs::prime_direct_io(&config.data_dir)
        .await
        .map_err(|error| format!("direct I/O does not work in {}: {error}", config.data_dir.display()))?;
    let metadata = Metadata::load(&config.data_dir)?;
    let shard = Shard::new(config.clone(), senders, Metadata::default(), connections);
    let served = recover_and_serve(&shard, metadata, receivers, stopping, readiness).await;
    // Also after a failure: a shard that failed once recovered may hold appends its peers'
    // clients made.
    shard.close_all().await;
    tracing::info!(shard = shard.id, "shard flushed and synced its partitions");
    served
}

/// Opens this shard's partitions and its consumer-group state, then serves until asked to stop.
async fn recover_and_serve(
    shard: &ShardRef,
    metadata: Metadata,
    receivers: Receivers<MeshMessage>,
    stopping: &Stopping,
    readiness: Arc<Readiness>,
) -> Result<(), String> {
    let config = shard.config.clone();
    // HTTP first, so /health answers and /ready says 503 while the partitions recover.
    let http = if shard.id == 0 { Some(crate::http::listen(shard.clone(), readiness.clone())?) } else { None };
    let metadata = Arc::new(metadata);
    shard.apply_metadata(metadata.clone()).await;
    shard.expose_metadata(metadata);
    shard.open_stream_groups().await;
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
    while !readiness.all_recovered() && !stopping.is_requested() {
        glommio::timer::sleep(Duration::from_millis(RECOVERY_POLL_INTERVAL_MS)).await;
    }
    if stopping.is_requested() {
        return Ok(());
    }
    let listeners = (crate::kafka::listen(shard.clone())?, crate::resp::listen(shard.clone())?);
    let balancing = glommio::spawn_local(crate::balance::run(shard.clone()));
    readiness.shard_listening();
    while !stopping.is_requested() {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS)).await;
    }
    // Stop accepting; requests already in flight carry on while the partitions close.
    drop((listeners, http, balancing));
    Ok(())
}

/// A panic on a shard thread ends that thread (glommio passes it on), and with it the shard's
/// partitions and mesh channels: its peers cannot serve without it. So the panic stops every
/// shard, and counts the dead shard as finished so its peers do not wait for it.
fn stop_every_shard_when_one_panics(stopping: Arc<Stopping>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if std::thread::current().name().is_some_and(|name| name.starts_with(SHARD_THREAD_NAME)) {
            stopping.request();
            stopping.shard_finished();
        }
    }));
}

/// Once stopping was asked for (SIGTERM or a failed shard), gives the shards
/// `SHUTDOWN_WAIT_MS_MAX` to finish, then exits the process without them. `run` returning
/// first ends the process, and this thread with it.
fn exit_if_stopping_takes_longer_than_allowed(stopping: Arc<Stopping>) -> std::io::Result<()> {
    std::thread::Builder::new().name("sluice-stop-watchdog".to_string()).spawn(move || {
        while !stopping.is_requested() {
            std::thread::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS));
        }
        std::thread::sleep(Duration::from_millis(SHUTDOWN_WAIT_MS_MAX));
        let finished = stopping.finished.load(Ordering::Acquire);
        let message = format!(
            "{} of {} shards did not stop within {SHUTDOWN_WAIT_MS_MAX} ms; exiting without them",
            stopping.shards.saturating_sub(finished),
            stopping.shards
        );
        tracing::error!("{message}");
        eprintln!("sluice: {message}");
        std::process::exit(1);
    })?;
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
/// Descriptors the broker may need beyond connections: segment, index and log files, the
/// io_uring rings and eventfds, listeners.
const OPEN_FILES_RESERVED: u64 = 1024;

/// Connections at `--connections-max` on both front doors of every shard, two descriptors each
/// (the socket and its writer's duplicate), plus `OPEN_FILES_RESERVED`.
fn open_files_needed(config: &Config) -> u64 {
    const FRONT_DOORS: u64 = 2;
    const DESCRIPTORS_PER_CONNECTION: u64 = 2;
    (config.connections_max as u64)
        .saturating_mul(config.shards as u64 * FRONT_DOORS * DESCRIPTORS_PER_CONNECTION)
        .saturating_add(OPEN_FILES_RESERVED)
}

/// Raises the soft open-files limit to the hard one (a default soft limit of 1024 would stop
/// accepting long before --connections-max) and returns the limit in force.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

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
