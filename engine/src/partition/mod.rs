//! A partition: an ordered sequence of segments, appended by one shard.
pub mod config;
#[allow(clippy::module_inception)]
pub mod partition;
mod producer_recovery;
pub mod producer_snapshot;
pub mod producers;
pub mod read_ahead;
pub mod retention;

pub use config::PartitionConfig;
pub use partition::{AppendResult, FetchResult, FileRange, Partition, PartitionError, Records, SendRead};
