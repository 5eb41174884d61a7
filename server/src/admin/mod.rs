//! # The admin CLI: `sluice topic | group | produce | consume`
//!
//! Clients of a running broker over the Kafka protocol, so they work from any machine that
//! reaches its Kafka listener (`--bootstrap HOST:PORT`, or `SLUICE_BOOTSTRAP`). Nothing here
//! runs on glommio: each command opens one blocking connection ([`client::Client`]), sends
//! the requests it needs one after the other and prints a table ([`table`]) or records.
//!
//! - [`topic`]: create, list, describe (partitions with start and end offsets, configs), delete.
//! - [`group`]: list, describe (members, assignments decoded from the consumer protocol,
//!   committed offsets, end offsets and lag).
//! - [`produce`]: stdin lines, or one `--value`, as records.
//! - [`consume`]: records as lines on stdout, until a count or an idle timeout.
//! - [`requests`]: the lookups several commands share (a topic's partitions, ListOffsets).
//!
//! Exit codes: 0 success; 1 the broker answered with a Kafka error (its name and a sentence on
//! what it means are printed); 2 a usage, connection or I/O error ([`error::AdminError`]).
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::limits::ADMIN_BOOTSTRAP_DEFAULT;
use error::AdminError;

pub mod client;
pub mod consume;
pub mod error;
pub mod group;
pub mod produce;
pub mod requests;
pub mod table;
pub mod topic;

/// Where the broker is: every admin command takes `--bootstrap`, before or after its
/// subcommand.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Kafka listener of the broker
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "SLUICE_BOOTSTRAP",
        default_value = ADMIN_BOOTSTRAP_DEFAULT
    )]
    pub bootstrap: String,
}

/// The admin subcommands of `sluice`, flattened into its command list.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create, list, describe and delete topics of a running broker
    Topic(topic::TopicArgs),
    /// List consumer groups, or describe one: members, assignments, committed offsets and lag
    Group(group::GroupArgs),
    /// Send lines from stdin (or one --value) as records, one record per line
    Produce(produce::ProduceArgs),
    /// Print a topic's records, one value per line, until --max-messages or --timeout-ms
    Consume(consume::ConsumeArgs),
}

/// Runs one admin command, printing to stdout; errors go to stderr. Returns the exit code.
pub fn run(command: AdminCommand) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match command {
        AdminCommand::Topic(args) => topic::run(&args, &mut out),
        AdminCommand::Group(args) => group::run(&args, &mut out),
        AdminCommand::Produce(args) => produce::run(&args, std::io::stdin().lock(), &mut out),
        AdminCommand::Consume(args) => consume::run(&args, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(AdminError::Output)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sluice consume ... | head`): what it wanted was printed.
        Err(AdminError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let _ = out.flush();
            eprintln!("sluice: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The end of every admin command's `--help`.
const EXIT_CODES_HELP: &str = "Exit codes: 0 done; 1 the broker answered with an error (its Kafka name is printed); \
     2 usage or connection error.";

/// Writes `text` to the command's output.
fn write_out(out: &mut impl Write, text: &str) -> Result<(), AdminError> {
    out.write_all(text.as_bytes()).map_err(AdminError::Output)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
