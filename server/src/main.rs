//! `sluice`: the broker binary.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sluice_server::config::{Config, LogFormat, ServeArgs};
use sluice_server::data_dir::LockingCommand;
use sluice_server::verify::VerifyArgs;

/// mimalloc instead of glibc malloc: per-thread heaps suit one executor per core, and the
/// request path's many small, short-lived buffers cost glibc a fifth of the broker's CPU
/// (profiled under pipelined XADDs: `_int_malloc`, `malloc_consolidate`, `unlink_chunk`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A durable log engine and message broker: Kafka and Redis Streams on one log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process: boxing would buy nothing
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Check a stopped broker's data directory offline: every batch's framing, CRC-32C and
    /// offsets, and the indexes. Exit 0: clean (warnings at most, e.g. a torn tail recovery
    /// cuts at start); 1: damage found; 2: usage or I/O error, or a broker runs on the directory.
    Verify(VerifyArgs),
    #[command(flatten)]
    Admin(sluice_server::admin::AdminCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(command) => sluice_server::admin::run(command),
        Command::Verify(args) => match sluice_server::verify::run(&args, &mut std::io::stdout().lock()) {
            Ok(report) if report.damage == 0 => std::process::ExitCode::SUCCESS,
            Ok(_) => std::process::ExitCode::from(1),
            Err(error) => {
                eprintln!("sluice verify: {error}");
                std::process::ExitCode::from(2)
            }
        },
        Command::Serve(args) => {
            let online_cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
            let config = match Config::resolve(&args, online_cores) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("sluice: {error}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logging(&config.log_level, config.log_format);
            // Held until the process ends: before anything in the data dir is read or written.
            let _data_dir_lock = match sluice_server::data_dir::lock(&config.data_dir, LockingCommand::Serve) {
                Ok(lock) => lock,
                Err(error) => {
                    eprintln!("sluice: {error}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            tracing::info!(version = env!("CARGO_PKG_VERSION"), ?config, "sluice starting");
            let stop = Arc::new(AtomicBool::new(false));
            if let Err(error) = watch_stop_signals(stop.clone()) {
                eprintln!("sluice: cannot install signal handling: {error}");
                return std::process::ExitCode::FAILURE;
            }
            match sluice_server::runtime::run(config, stop) {
                Ok(()) => {
                    tracing::info!("sluice stopped cleanly");
                    std::process::ExitCode::SUCCESS
                }
                Err(error) => {
                    tracing::error!(%error, "sluice stopped");
                    eprintln!("sluice: {error}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

/// Blocks SIGTERM and SIGINT in every thread (the executors inherit the mask) and waits for
/// them on a dedicated thread, which sets `stop`: a clean shutdown instead of death by signal.
fn watch_stop_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    // SAFETY: plain libc signal-set calls on a set we own; no handler runs async code.
    let signals = unsafe {
        let mut signals: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut signals);
        libc::sigaddset(&mut signals, libc::SIGTERM);
        libc::sigaddset(&mut signals, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        signals
    };
    std::thread::Builder::new().name("sluice-signals".to_string()).spawn(move || {
        let mut signal = 0;
        // SAFETY: sigwait reads the set we own and writes the signal number into `signal`.
        if unsafe { libc::sigwait(&signals, &mut signal) } == 0 {
            tracing::info!(signal, "stop signal received: stopping accepting, flushing, syncing");
            stop.store(true, Ordering::Relaxed);
        }
    })?;
    Ok(())
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // glommio logs through the `log` crate (e.g. the memlock fallback warning): bridged here.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line, the event's fields next to `timestamp`, `level`, `target` and
        // `message`: what log shippers index without a parsing rule.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
}
