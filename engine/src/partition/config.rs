//! Per-topic settings that shape a partition's log, with Kafka's config names.
use crate::limits::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionConfig {
    /// `segment.bytes`: roll to a new segment when the active one reaches this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest record is older than this; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the partition is larger; -1 unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub message_bytes_max: usize,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: RETENTION_BYTES_DEFAULT,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Names of the topic configs this engine understands.
pub const CONFIG_NAMES: [&str; 5] =
    ["segment.bytes", "segment.ms", "retention.ms", "retention.bytes", "max.message.bytes"];

/// A topic config value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid config {}: {}", self.name, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl PartitionConfig {
    /// Applies one `name = value` topic config. Unknown names are refused.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let error = |reason: String| ConfigError { name: name.to_string(), reason };
        let number = || value.trim().parse::<i64>().map_err(|_| error(format!("'{value}' is not an integer")));
        match name {
            "segment.bytes" => {
                let bytes = number()?;
                if !(SEGMENT_BYTES_MIN as i64..=SEGMENT_BYTES_MAX as i64).contains(&bytes) {
                    return Err(error(format!("{bytes} not in {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}")));
                }
                self.segment_bytes = bytes as u64;
            }
            "segment.ms" => {
                let ms = number()?;
                if ms < 1 {
                    return Err(error(format!("{ms} must be at least 1")));
                }
                self.segment_ms = ms;
            }
            "retention.ms" => {
                let ms = number()?;
                if ms < -1 {
                    return Err(error(format!("{ms} must be -1 or more")));
                }
                self.retention_ms = ms;
            }
            "retention.bytes" => {
                let bytes = number()?;
                if bytes < -1 {
                    return Err(error(format!("{bytes} must be -1 or more")));
                }
                self.retention_bytes = bytes;
            }
            "max.message.bytes" => {
                let bytes = number()?;
                if !(1..=MESSAGE_BYTES_MAX_LIMIT as i64).contains(&bytes) {
                    return Err(error(format!("{bytes} not in 1..={MESSAGE_BYTES_MAX_LIMIT}")));
                }
                self.message_bytes_max = bytes as usize;
            }
            _ => return Err(error("unknown topic config".to_string())),
        }
        Ok(())
    }

    /// The value of a config by name, as Kafka's DescribeConfigs shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.message_bytes_max.to_string(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn configs_round_trip_and_bad_values_are_refused() {
        let mut config = PartitionConfig::default();
        config.set("retention.ms", "60000").unwrap();
        config.set("max.message.bytes", "2048").unwrap();
        assert_eq!(config.get("retention.ms").unwrap(), "60000");
        assert_eq!(config.message_bytes_max, 2048);
        assert!(config.set("retention.ms", "soon").is_err());
        assert!(config.set("segment.bytes", "10").is_err());
        assert!(config.set("max.message.bytes", "2000000000").is_err());
        assert!(config.set("cleanup.policy", "compact").is_err());
        for name in CONFIG_NAMES {
            assert!(config.get(name).is_some());
        }
    }
}
