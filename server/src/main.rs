//! `sluice`: the broker binary.
use clap::{Parser, Subcommand};
use sluice_server::config::{Config, ServeArgs};

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
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let online_cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
            let config = match Config::resolve(&args, online_cores) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("sluice: {error}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logging(&config.log_level);
            tracing::info!(version = env!("CARGO_PKG_VERSION"), ?config, "sluice starting");
            match sluice_server::runtime::run(config) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "sluice stopped");
                    eprintln!("sluice: {error}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // glommio logs through the `log` crate (e.g. the memlock fallback warning): bridged here.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
