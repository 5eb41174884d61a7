//! Broker configuration: command-line flags, `SLUICE_*` variables and a TOML file, in that
//! order of precedence (a flag wins), then built-in defaults.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::catch_up_rate::CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN;
use crate::limits::*;
use crate::request_memory::REQUEST_MEMORY_SHARE_BYTES_MIN;

/// `sluice serve` flags. Every one also reads `SLUICE_<NAME>` and the TOML key `<name>`.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML file with any of the keys below (kebab-case, as the flags).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where topics, segments and the manifest live [default: ./data]
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka protocol listener [default: 127.0.0.1:9092]
    #[arg(long, env = "SLUICE_KAFKA_LISTEN")]
    pub kafka_listen: Option<SocketAddr>,
    /// Redis (RESP) listener [default: 127.0.0.1:6379]
    #[arg(long, env = "SLUICE_RESP_LISTEN")]
    pub resp_listen: Option<SocketAddr>,
    /// HTTP listener for /metrics and /health [default: 127.0.0.1:9644]
    #[arg(long, env = "SLUICE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Shards (one pinned executor each) [default: online cores]
    #[arg(long, env = "SLUICE_SHARDS")]
    pub shards: Option<usize>,
    /// Create topics on first produce or metadata request, like auto.create.topics.enable [default: true]
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of a topic created without a count [default: 1]
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<u32>,
    /// Largest Kafka request frame accepted, in bytes [default: 104857600]
    #[arg(long, env = "SLUICE_REQUEST_BYTES_MAX")]
    pub request_bytes_max: Option<usize>,
    /// Bytes of requests (Kafka frames, RESP commands) the broker holds at once, split evenly across shards; past it a connection waits before reading more [default: 268435456]
    #[arg(long, env = "SLUICE_REQUEST_MEMORY_BYTES_MAX")]
    pub request_memory_bytes_max: Option<usize>,
    /// Bytes per second the broker sends from segment files to consumers catching up (reads of what memory no longer holds) while producers write (any flush in the last second), split evenly across shards; 0 for no limit. Keeps catch-up reads from slowing producers on the same disk; with nothing being written, and for tail reads, there is no limit [default: 104857600]
    #[arg(long, env = "SLUICE_CATCH_UP_READ_BYTES_PER_SEC_MAX")]
    pub catch_up_read_bytes_per_sec_max: Option<u64>,
    /// Connections per shard per listener [default: 4096]
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Once a request's first byte arrived, the whole request must arrive within this, in milliseconds [default: 30000]
    #[arg(long, env = "SLUICE_REQUEST_READ_TIMEOUT_MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Close a connection idle this long (no request, nothing to answer, or its client reads no response), in milliseconds [default: 600000]
    #[arg(long, env = "SLUICE_CONNECTION_IDLE_TIMEOUT_MS")]
    pub connection_idle_timeout_ms: Option<u64>,
    /// A shard using more than this share of its core, in thousandths, moves its RESP connections one at a time to a shard using at least --connection-balance-gap-permille less; 1000 never moves one [default: 700]
    #[arg(long, env = "SLUICE_CONNECTION_BALANCE_BUSY_PERMILLE")]
    pub connection_balance_busy_permille: Option<u32>,
    /// See --connection-balance-busy-permille [default: 200]
    #[arg(long, env = "SLUICE_CONNECTION_BALANCE_GAP_PERMILLE")]
    pub connection_balance_gap_permille: Option<u32>,
    /// How often retention runs, in milliseconds [default: 5000]
    #[arg(long, env = "SLUICE_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Log filter, e.g. info or sluice_server=debug [default: info]
    #[arg(long, env = "SLUICE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log lines on stderr: text for people, json (one object per line) for log shippers [default: text]
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Wait before the first rebalance of an empty group, like Kafka's group.initial.rebalance.delay.ms [default: 3000]
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Compact an internal offsets partition (snapshot + delete older records) past this size, in bytes [default: 33554432]
    #[arg(long, env = "SLUICE_OFFSETS_COMPACTION_BYTES")]
    pub offsets_compaction_bytes: Option<u64>,
}

/// The same keys in a TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    kafka_listen: Option<SocketAddr>,
    resp_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    shards: Option<usize>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<u32>,
    request_bytes_max: Option<usize>,
    request_memory_bytes_max: Option<usize>,
    catch_up_read_bytes_per_sec_max: Option<u64>,
    connections_max: Option<usize>,
    request_read_timeout_ms: Option<u64>,
    connection_idle_timeout_ms: Option<u64>,
    connection_balance_busy_permille: Option<u32>,
    connection_balance_gap_permille: Option<u32>,
    retention_check_interval_ms: Option<u64>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    group_initial_rebalance_delay_ms: Option<u64>,
    offsets_compaction_bytes: Option<u64>,
}

/// How log lines are written to stderr.
#[derive(ValueEnum, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

/// The effective configuration, shared read-only by every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub kafka_listen: SocketAddr,
    pub resp_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub shards: usize,
    pub auto_create_topics: bool,
    pub default_partitions: u32,
    pub request_bytes_max: usize,
    pub request_memory_bytes_max: usize,
    pub catch_up_read_bytes_per_sec_max: u64,
    pub connections_max: usize,
    pub request_read_timeout_ms: u64,
    pub connection_idle_timeout_ms: u64,
    pub connection_balance_busy_permille: u32,
    pub connection_balance_gap_permille: u32,
    pub retention_check_interval_ms: u64,
    pub log_level: String,
    pub log_format: LogFormat,
    pub group_initial_rebalance_delay_ms: u64,
    pub offsets_compaction_bytes: u64,
}

fn parse_address(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|_| unreachable!("built-in address {text} parses"))
}

impl Config {
    /// Resolves flags (which clap already merged with `SLUICE_*` variables) over the TOML file
    /// over defaults, and checks the result.
    pub fn resolve(args: &ServeArgs, online_cores: usize) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let shards = args.shards.or(file.shards).unwrap_or(online_cores);
        let config = Self {
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data")),
            kafka_listen: args.kafka_listen.or(file.kafka_listen).unwrap_or_else(|| parse_address("127.0.0.1:9092")),
            resp_listen: args.resp_listen.or(file.resp_listen).unwrap_or_else(|| parse_address("127.0.0.1:6379")),
            http_listen: args.http_listen.or(file.http_listen).unwrap_or_else(|| parse_address("127.0.0.1:9644")),
            shards,
            auto_create_topics: args.auto_create_topics.or(file.auto_create_topics).unwrap_or(true),
            default_partitions: args.default_partitions.or(file.default_partitions).unwrap_or(1),
            request_bytes_max: args.request_bytes_max.or(file.request_bytes_max).unwrap_or(REQUEST_BYTES_MAX_DEFAULT),
            request_memory_bytes_max: args
                .request_memory_bytes_max
                .or(file.request_memory_bytes_max)
                .unwrap_or(REQUEST_MEMORY_BYTES_MAX_DEFAULT),
            catch_up_read_bytes_per_sec_max: args
                .catch_up_read_bytes_per_sec_max
                .or(file.catch_up_read_bytes_per_sec_max)
                // Never below the least share per shard, however many shards.
                .unwrap_or(
                    CATCH_UP_READ_BYTES_PER_SEC_MAX_DEFAULT.max(CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN * shards as u64),
                ),
            connections_max: args.connections_max.or(file.connections_max).unwrap_or(CONNECTIONS_MAX_PER_SHARD_DEFAULT),
            request_read_timeout_ms: args
                .request_read_timeout_ms
                .or(file.request_read_timeout_ms)
                .unwrap_or(REQUEST_READ_TIMEOUT_MS_DEFAULT),
            connection_idle_timeout_ms: args
                .connection_idle_timeout_ms
                .or(file.connection_idle_timeout_ms)
                .unwrap_or(CONNECTION_IDLE_TIMEOUT_MS_DEFAULT),
            connection_balance_busy_permille: args
                .connection_balance_busy_permille
                .or(file.connection_balance_busy_permille)
                .unwrap_or(crate::balance::BUSY_SHED_PERMILLE_DEFAULT),
            connection_balance_gap_permille: args
                .connection_balance_gap_permille
                .or(file.connection_balance_gap_permille)
                .unwrap_or(crate::balance::BUSY_GAP_PERMILLE_DEFAULT),
            retention_check_interval_ms: args
                .retention_check_interval_ms
                .or(file.retention_check_interval_ms)
                .unwrap_or(RETENTION_CHECK_INTERVAL_MS_DEFAULT),
            log_level: args.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".to_string()),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            group_initial_rebalance_delay_ms: args
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms)
                .unwrap_or(GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT),
            offsets_compaction_bytes: args
                .offsets_compaction_bytes
                .or(file.offsets_compaction_bytes)
                .unwrap_or(OFFSETS_COMPACTION_BYTES_DEFAULT),
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(format!("shards must be between 1 and 1024, got {}", self.shards));
        }
        if self.default_partitions == 0 || self.default_partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(format!("default-partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}"));
        }
        if self.request_bytes_max < 1024 || self.request_bytes_max > i32::MAX as usize {
            return Err("request-bytes-max must be between 1024 and 2147483647".to_string());
        }
        if self.request_memory_bytes_max / self.shards < REQUEST_MEMORY_SHARE_BYTES_MIN {
            return Err(format!(
                "request-memory-bytes-max must be at least {REQUEST_MEMORY_SHARE_BYTES_MIN} per shard ({} for {} shards), got {}",
                REQUEST_MEMORY_SHARE_BYTES_MIN * self.shards,
                self.shards,
                self.request_memory_bytes_max
            ));
        }
        let catch_up_share = self.catch_up_read_bytes_per_sec_max / self.shards as u64;
        if self.catch_up_read_bytes_per_sec_max != 0 && catch_up_share < CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN {
            return Err(format!(
                "catch-up-read-bytes-per-sec-max must be 0 (no limit) or at least {CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN} per shard ({} for {} shards), got {}",
                CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN * self.shards as u64,
                self.shards,
                self.catch_up_read_bytes_per_sec_max
            ));
        }
        if self.connections_max == 0 {
            return Err("connections-max must be at least 1".to_string());
        }
        let timeouts = [
            ("request-read-timeout-ms", self.request_read_timeout_ms),
            ("connection-idle-timeout-ms", self.connection_idle_timeout_ms),
        ];
        for (key, timeout_ms) in timeouts {
            if timeout_ms == 0 || timeout_ms > CONNECTION_TIMEOUT_MS_MAX {
                return Err(format!("{key} must be between 1 and {CONNECTION_TIMEOUT_MS_MAX}, got {timeout_ms}"));
            }
        }
        for (key, permille) in [
            ("connection-balance-busy-permille", self.connection_balance_busy_permille),
            ("connection-balance-gap-permille", self.connection_balance_gap_permille),
        ] {
            if permille > 1000 {
                return Err(format!("{key} is a share in thousandths: at most 1000, got {permille}"));
            }
        }
        if self.offsets_compaction_bytes < 4096 {
            return Err("offsets-compaction-bytes must be at least 4096".to_string());
        }
        if self.retention_check_interval_ms == 0 {
            return Err("retention-check-interval-ms must be at least 1".to_string());
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read config file {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| format!("config file {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_apply_with_no_configuration() {
        let config = Config::resolve(&ServeArgs::default(), 2).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.kafka_listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.resp_listen.to_string(), "127.0.0.1:6379");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:9644");
        assert_eq!(config.shards, 2);
        assert!(config.auto_create_topics);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn log_format_comes_from_the_flag_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "log-format = \"json\"\n").unwrap();
        let from_file = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        assert_eq!(Config::resolve(&from_file, 1).unwrap().log_format, LogFormat::Json);
        let flag_wins = ServeArgs { config: Some(path), log_format: Some(LogFormat::Text), ..ServeArgs::default() };
        assert_eq!(Config::resolve(&flag_wins, 1).unwrap().log_format, LogFormat::Text);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "log-format = \"xml\"\n").unwrap();
        let error = Config::resolve(&ServeArgs { config: Some(bad), ..ServeArgs::default() }, 1).unwrap_err();
        assert!(error.contains("xml") && error.contains("text") && error.contains("json"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "data-dir = \"/from/file\"\nshards = 3\nkafka-listen = \"127.0.0.1:1111\"\n").unwrap();
        let args = ServeArgs { config: Some(path), shards: Some(1), ..ServeArgs::default() };
        let config = Config::resolve(&args, 8).unwrap();
        assert_eq!(config.shards, 1, "flag wins");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"), "file over default");
        assert_eq!(config.kafka_listen.port(), 1111);
    }

    #[test]
    fn bad_files_and_values_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "shardz = 3\n").unwrap();
        let error = Config::resolve(&ServeArgs { config: Some(path), ..ServeArgs::default() }, 2).unwrap_err();
        assert!(error.contains("shardz"), "{error}");
        let error = Config::resolve(&ServeArgs { shards: Some(0), ..ServeArgs::default() }, 2).unwrap_err();
        assert!(error.contains("shards"), "{error}");
        let error =
            Config::resolve(&ServeArgs { request_read_timeout_ms: Some(0), ..ServeArgs::default() }, 2).unwrap_err();
        assert!(error.contains("request-read-timeout-ms must be between 1 and"), "{error}");
        let forever = Some(CONNECTION_TIMEOUT_MS_MAX + 1);
        let error =
            Config::resolve(&ServeArgs { connection_idle_timeout_ms: forever, ..ServeArgs::default() }, 2).unwrap_err();
        assert!(error.contains("connection-idle-timeout-ms"), "{error}");
        let tiny = ServeArgs { request_memory_bytes_max: Some(3 << 20), shards: Some(4), ..ServeArgs::default() };
        let error = Config::resolve(&tiny, 4).unwrap_err();
        assert!(
            error.contains("request-memory-bytes-max must be at least 1048576 per shard (4194304 for 4 shards)"),
            "{error}"
        );
        let slow =
            ServeArgs { catch_up_read_bytes_per_sec_max: Some(1 << 20), shards: Some(2), ..ServeArgs::default() };
        let error = Config::resolve(&slow, 2).unwrap_err();
        assert!(
            error.contains("catch-up-read-bytes-per-sec-max must be 0 (no limit) or at least 1048576 per shard (2097152 for 2 shards)"),
            "{error}"
        );
        let unlimited = ServeArgs { catch_up_read_bytes_per_sec_max: Some(0), ..ServeArgs::default() };
        assert_eq!(Config::resolve(&unlimited, 2).unwrap().catch_up_read_bytes_per_sec_max, 0);
        // The default holds while producers write, and is never below the least share.
        let default = Config::resolve(&ServeArgs::default(), 2).unwrap().catch_up_read_bytes_per_sec_max;
        assert_eq!(default, CATCH_UP_READ_BYTES_PER_SEC_MAX_DEFAULT);
        let many = Config::resolve(&ServeArgs { shards: Some(256), ..ServeArgs::default() }, 2).unwrap();
        assert_eq!(many.catch_up_read_bytes_per_sec_max, 256 * CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN);
    }

    #[test]
    fn connection_timeouts_default_to_kafkas_and_read_the_file() {
        let config = Config::resolve(&ServeArgs::default(), 2).unwrap();
        assert_eq!(config.request_read_timeout_ms, 30_000);
        assert_eq!(config.connection_idle_timeout_ms, 600_000, "Kafka's connections.max.idle.ms");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "request-read-timeout-ms = 1500\nconnection-idle-timeout-ms = 60000\n").unwrap();
        let config = Config::resolve(&ServeArgs { config: Some(path), ..ServeArgs::default() }, 2).unwrap();
        assert_eq!((config.request_read_timeout_ms, config.connection_idle_timeout_ms), (1500, 60_000));
    }
}
