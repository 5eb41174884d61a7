//! Topic metadata: an immutable snapshot every shard reads without locks, and the changes the
//! metadata shard makes to it (create/delete topics, add partitions), persisted in the
//! flatbuffers manifest before they are broadcast.
use std::collections::BTreeMap;
use std::path::Path;

use sluice_engine::manifest::{Manifest, TopicManifest};
use sluice_engine::partition::PartitionConfig;

use crate::limits::{PARTITIONS_PER_BROKER_MAX, PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_BYTES_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    /// Effective settings (defaults with overrides applied).
    pub config: PartitionConfig,
    /// The configs set explicitly at creation, as given.
    pub overrides: Vec<(String, String)>,
    pub topic_id: [u8; 16],
}

/// One version of the topic catalogue. Shared as `Arc<Metadata>`; never mutated once built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub topics: BTreeMap<String, TopicMeta>,
    pub next_producer_id: i64,
    /// Increases with every change the metadata shard broadcasts.
    pub version: u64,
}

/// A topic to create, as CreateTopics (or auto-creation, or XADD) asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// `None`: the broker's default partition count.
    pub partitions: Option<u32>,
    /// Only 1 (or -1, "default") is possible on one broker.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// A change to a topic's configs: IncrementalAlterConfigs sets and deletes single configs
/// (a deleted one falls back to its default); AlterConfigs replaces every override at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChanges {
    Incremental(Vec<ConfigChange>),
    Replace(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChangeError {
    AlreadyExists,
    UnknownTopic,
    InvalidName(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(i16),
    InvalidConfig(String),
    Storage(String),
}

impl std::fmt::Display for TopicChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyExists => write!(f, "topic already exists"),
            Self::UnknownTopic => write!(f, "unknown topic"),
            Self::InvalidName(reason) | Self::InvalidPartitions(reason) | Self::InvalidConfig(reason) => {
                write!(f, "{reason}")
            }
            Self::InvalidReplicationFactor(factor) => {
                write!(f, "replication factor {factor} is impossible on a single broker (use 1 or -1)")
            }
            Self::Storage(reason) => write!(f, "storage error: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChangeResult {
    pub name: String,
    pub result: Result<TopicMeta, TopicChangeError>,
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`; plus `:`, so
/// Redis stream keys such as `jobs:dlq` name their topic as they are (librdkafka, kcat and
/// kafka-python accept such names; Kafka's Java client does not).
pub fn check_topic_name(name: &str) -> Result<(), TopicChangeError> {
    let invalid = |reason: String| Err(TopicChangeError::InvalidName(reason));
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid(format!("topic name must be 1 to {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name '{name}' is not allowed"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))) {
        return invalid(format!("topic name '{name}' has an illegal character {bad:?} (allowed: a-z A-Z 0-9 . _ - :)"));
    }
    Ok(())
}

/// A config name this broker knows (a delete of an unknown one is refused as a set would be).
fn check_config_name(name: &str) -> Result<(), TopicChangeError> {
    if sluice_engine::partition::config::CONFIG_NAMES.contains(&name) {
        Ok(())
    } else {
        Err(TopicChangeError::InvalidConfig(format!("invalid config {name}: unknown topic config")))
    }
}

fn build_config(overrides: &[(String, String)]) -> Result<PartitionConfig, TopicChangeError> {
    let mut config = PartitionConfig::default();
    for (name, value) in overrides {
        config.set(name, value).map_err(|error| TopicChangeError::InvalidConfig(error.to_string()))?;
    }
    Ok(config)
}

impl Metadata {
    pub fn from_manifest(manifest: &Manifest) -> Result<Self, String> {
        let mut topics = BTreeMap::new();
        for topic in &manifest.topics {
            let config = build_config(&topic.configs).map_err(|error| format!("topic {}: {error}", topic.name))?;
            let meta = TopicMeta {
                name: topic.name.clone(),
                partitions: topic.partitions,
                config,
                overrides: topic.configs.clone(),
                topic_id: topic.topic_id,
            };
            topics.insert(topic.name.clone(), meta);
        }
        Ok(Self { topics, next_producer_id: manifest.next_producer_id, version: 0 })
    }

    pub fn to_manifest(&self) -> Manifest {
        Manifest {
            topics: self
                .topics
                .values()
                .map(|topic| TopicManifest {
                    name: topic.name.clone(),
                    partitions: topic.partitions,
                    configs: topic.overrides.clone(),
                    topic_id: topic.topic_id,
                })
                .collect(),
            next_producer_id: self.next_producer_id,
        }
    }

    pub fn load(data_dir: &Path) -> Result<Self, String> {
        match Manifest::load(data_dir) {
            Ok(Some(manifest)) => Self::from_manifest(&manifest),
            Ok(None) => Ok(Self::default()),
            Err(error) => Err(format!("cannot read the manifest in {}: {error}", data_dir.display())),
        }
    }

    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.topics.get(topic).is_some_and(|meta| partition >= 0 && (partition as u32) < meta.partitions)
    }

    /// Adds `new` to this (draft) catalogue; returns the topic as created.
    pub fn add_topic(&mut self, new: &NewTopic, default_partitions: u32) -> Result<TopicMeta, TopicChangeError> {
        check_topic_name(&new.name)?;
        if self.topics.contains_key(&new.name) {
            return Err(TopicChangeError::AlreadyExists);
        }
        let partitions = new.partitions.unwrap_or(default_partitions);
        if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicChangeError::InvalidPartitions(format!(
                "partition count {partitions} not in 1..={PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        if !matches!(new.replication_factor, -1 | 1) {
            return Err(TopicChangeError::InvalidReplicationFactor(new.replication_factor));
        }
        self.check_room_for(partitions)?;
        let config = build_config(&new.configs)?;
        let meta = TopicMeta {
            name: new.name.clone(),
            partitions,
            config,
            overrides: new.configs.clone(),
            topic_id: *uuid::Uuid::new_v4().as_bytes(),
        };
        self.topics.insert(new.name.clone(), meta.clone());
        Ok(meta)
    }

    pub fn remove_topic(&mut self, name: &str) -> Result<TopicMeta, TopicChangeError> {
        self.topics.remove(name).ok_or(TopicChangeError::UnknownTopic)
    }

    pub fn grow_topic(&mut self, name: &str, count: u32) -> Result<TopicMeta, TopicChangeError> {
        let topic = self.topics.get_mut(name).ok_or(TopicChangeError::UnknownTopic)?;
        if count <= topic.partitions || count > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicChangeError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count {count} must be larger and at most {PARTITIONS_PER_TOPIC_MAX}",
                topic.partitions
            )));
        }
        let added = count - topic.partitions;
        self.check_room_for(added)?;
        let topic = self.topics.get_mut(name).ok_or(TopicChangeError::UnknownTopic)?;
        topic.partitions = count;
        Ok(topic.clone())
    }

    /// Changes a topic's config overrides; every value is checked before any is kept.
    pub fn alter_topic_configs(&mut self, name: &str, changes: &ConfigChanges) -> Result<TopicMeta, TopicChangeError> {
        let topic = self.topics.get_mut(name).ok_or(TopicChangeError::UnknownTopic)?;
        let overrides = match changes {
            ConfigChanges::Replace(overrides) => overrides.clone(),
            ConfigChanges::Incremental(changes) => {
                let mut overrides = topic.overrides.clone();
                for change in changes {
                    match change {
                        ConfigChange::Set(key, value) => match overrides.iter_mut().find(|(name, _)| name == key) {
                            Some((_, kept)) => kept.clone_from(value),
                            None => overrides.push((key.clone(), value.clone())),
                        },
                        ConfigChange::Delete(key) => {
                            check_config_name(key)?;
                            overrides.retain(|(name, _)| name != key);
                        }
                    }
                }
                overrides
            }
        };
        topic.config = build_config(&overrides)?;
        topic.overrides = overrides;
        Ok(topic.clone())
    }

    /// Every partition is open files and memory on its shard: the broker holds a bounded number.
    fn check_room_for(&self, added: u32) -> Result<(), TopicChangeError> {
        let held: u64 = self.topics.values().map(|topic| u64::from(topic.partitions)).sum();
        if held + u64::from(added) > u64::from(PARTITIONS_PER_BROKER_MAX) {
            return Err(TopicChangeError::InvalidPartitions(format!(
                "the broker holds {held} partitions; {added} more would pass its limit of {PARTITIONS_PER_BROKER_MAX}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_broker_holds_a_bounded_number_of_partitions() {
        let mut metadata = Metadata::default();
        let big = PARTITIONS_PER_TOPIC_MAX;
        let mut created = 0;
        while metadata.add_topic(&new_topic(&format!("t{created}"), Some(big)), 1).is_ok() {
            created += 1;
        }
        assert_eq!(created, PARTITIONS_PER_BROKER_MAX / big);
        let refused = metadata.add_topic(&new_topic("one-more", Some(1)), 1);
        assert!(matches!(refused, Err(TopicChangeError::InvalidPartitions(reason)) if reason.contains("limit")));
        metadata.remove_topic("t0").unwrap();
        metadata.add_topic(&new_topic("small", Some(1)), 1).unwrap();
        let refused = metadata.grow_topic("small", big + 1);
        assert!(matches!(refused, Err(TopicChangeError::InvalidPartitions(_))));
    }

    fn new_topic(name: &str, partitions: Option<u32>) -> NewTopic {
        NewTopic { name: name.to_string(), partitions, replication_factor: -1, configs: Vec::new() }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "has space", "slash/name", &"x".repeat(250)] {
            assert!(matches!(check_topic_name(bad), Err(TopicChangeError::InvalidName(_))), "{bad:?}");
        }
    }

    #[test]
    fn topic_configs_are_set_deleted_and_replaced_all_checked_first() {
        let mut metadata = Metadata::default();
        let mut events = new_topic("events", Some(1));
        events.configs.push(("retention.ms".to_string(), "1000".to_string()));
        metadata.add_topic(&events, 1).unwrap();
        let set = |key: &str, value: &str| ConfigChange::Set(key.to_string(), value.to_string());
        let changed = metadata
            .alter_topic_configs(
                "events",
                &ConfigChanges::Incremental(vec![set("retention.ms", "2000"), set("max.message.bytes", "4096")]),
            )
            .unwrap();
        assert_eq!((changed.config.retention_ms, changed.config.message_bytes_max), (2000, 4096));
        assert_eq!(changed.overrides.len(), 2, "a set replaces the override of the same name");
        let deleted = ConfigChanges::Incremental(vec![ConfigChange::Delete("retention.ms".to_string())]);
        let changed = metadata.alter_topic_configs("events", &deleted).unwrap();
        assert_eq!(changed.config.retention_ms, PartitionConfig::default().retention_ms, "back to the default");
        // A bad value anywhere leaves the topic as it was.
        let bad = ConfigChanges::Incremental(vec![set("retention.ms", "5"), set("retention.bytes", "lots")]);
        assert!(matches!(metadata.alter_topic_configs("events", &bad), Err(TopicChangeError::InvalidConfig(_))));
        assert_eq!(metadata.topics["events"].config.retention_ms, PartitionConfig::default().retention_ms);
        let unknown = ConfigChanges::Incremental(vec![ConfigChange::Delete("cleanup.policy".to_string())]);
        assert!(matches!(metadata.alter_topic_configs("events", &unknown), Err(TopicChangeError::InvalidConfig(_))));
        // AlterConfigs: what is not listed goes back to its default.
        let replaced = ConfigChanges::Replace(vec![("segment.ms".to_string(), "60000".to_string())]);
        let changed = metadata.alter_topic_configs("events", &replaced).unwrap();
        assert_eq!(
            (changed.config.segment_ms, changed.config.message_bytes_max),
            (60000, PartitionConfig::default().message_bytes_max)
        );
        assert_eq!(metadata.alter_topic_configs("nope", &replaced), Err(TopicChangeError::UnknownTopic));
        let reloaded = Metadata::from_manifest(&metadata.to_manifest()).unwrap();
        assert_eq!(reloaded.topics["events"].config.segment_ms, 60000, "kept in the manifest");
    }

    #[test]
    fn catalogue_changes_validate_and_round_trip_through_the_manifest() {
        let mut metadata = Metadata::default();
        let mut with_config = new_topic("events", Some(3));
        with_config.configs.push(("retention.ms".to_string(), "1000".to_string()));
        let created = metadata.add_topic(&with_config, 1).unwrap();
        assert_eq!(created.config.retention_ms, 1000);
        assert_eq!(metadata.add_topic(&new_topic("events", None), 1), Err(TopicChangeError::AlreadyExists));
        assert!(matches!(
            metadata.add_topic(&new_topic("zero", Some(0)), 1),
            Err(TopicChangeError::InvalidPartitions(_))
        ));
        let mut bad_config = new_topic("bad", None);
        bad_config.configs.push(("retention.ms".to_string(), "often".to_string()));
        assert!(matches!(metadata.add_topic(&bad_config, 1), Err(TopicChangeError::InvalidConfig(_))));
        assert_eq!(metadata.add_topic(&new_topic("default", None), 4).unwrap().partitions, 4);
        assert_eq!(metadata.grow_topic("events", 5).unwrap().partitions, 5);
        assert!(metadata.grow_topic("events", 2).is_err());
        let reloaded = Metadata::from_manifest(&metadata.to_manifest()).unwrap();
        assert_eq!(reloaded.topics, metadata.topics);
        metadata.remove_topic("events").unwrap();
        assert_eq!(metadata.remove_topic("events"), Err(TopicChangeError::UnknownTopic));
    }
}
