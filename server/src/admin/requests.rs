//! The lookups more than one command needs: a topic's partitions (Metadata) and the offsets
//! of partitions at a point (ListOffsets: the log start or the end).
use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;

use super::client::Client;
use super::error::AdminError;
use super::topic_name;

/// Metadata v12: topic ids, and topics requested by name.
pub const METADATA_VERSION: i16 = 12;
/// ListOffsets v7 (earliest, latest, by timestamp; what the broker serves up to).
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets timestamps that mean the log start offset and the end offset (high watermark).
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets `replica_id` of a client (not a follower broker).
const CONSUMER_REPLICA_ID: i32 = -1;

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: uuid::Uuid,
    /// (partition, leader broker id), by partition.
    pub partitions: Vec<(i32, i32)>,
}

impl TopicInfo {
    pub fn partition_indexes(&self) -> Vec<i32> {
        self.partitions.iter().map(|(partition, _)| *partition).collect()
    }
}

/// One topic's partitions. `allow_auto_create` asks the broker to create a missing topic (as
/// a producer does); it does so only if configured to. A missing topic is the broker's
/// UNKNOWN_TOPIC_OR_PARTITION, reported as `doing`.
pub fn describe_topic(
    client: &mut Client,
    name: &str,
    allow_auto_create: bool,
    doing: &str,
) -> Result<TopicInfo, AdminError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(name)))]))
        .with_allow_auto_topic_creation(allow_auto_create);
    let response = client.call(&request, METADATA_VERSION)?;
    let unknown = || AdminError::broker(doing, ResponseError::UnknownTopicOrPartition.code(), None);
    let topic = response
        .topics
        .into_iter()
        .find(|topic| topic.name.as_ref().is_some_and(|topic| topic.0.as_str() == name))
        .ok_or_else(unknown)?;
    if topic.error_code != 0 {
        return Err(AdminError::broker(doing, topic.error_code, None));
    }
    info(topic).ok_or_else(unknown)
}

/// Every topic the broker holds, by name.
pub fn list_topics(client: &mut Client) -> Result<Vec<TopicInfo>, AdminError> {
    let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
    let mut topics = topics(client.call(&request, METADATA_VERSION)?);
    topics.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(topics)
}

/// The topics of a Metadata response that came without an error.
fn topics(response: MetadataResponse) -> Vec<TopicInfo> {
    response.topics.into_iter().filter(|topic| topic.error_code == 0).filter_map(info).collect()
}

/// A topic of a Metadata response, partitions in order; None if it has no name.
fn info(topic: MetadataResponseTopic) -> Option<TopicInfo> {
    let mut partitions: Vec<(i32, i32)> =
        topic.partitions.iter().map(|partition| (partition.partition_index, partition.leader_id.0)).collect();
    partitions.sort_unstable();
    Some(TopicInfo { name: topic.name?.0.to_string(), topic_id: topic.topic_id, partitions })
}

/// Per partition: the offset at `timestamp` ([`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`]),
/// or the Kafka error code the broker answered for that partition.
pub type Offsets = BTreeMap<(String, i32), Result<i64, i16>>;

pub fn list_offsets(client: &mut Client, partitions: &[(String, i32)], timestamp: i64) -> Result<Offsets, AdminError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(
                partitions
                    .into_iter()
                    .map(|partition| {
                        ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)
                    })
                    .collect(),
            )
        })
        .collect();
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(CONSUMER_REPLICA_ID)).with_topics(topics);
    let response = client.call(&request, LIST_OFFSETS_VERSION)?;
    let mut offsets = Offsets::new();
    for topic in response.topics {
        for partition in topic.partitions {
            let answer = if partition.error_code == 0 { Ok(partition.offset) } else { Err(partition.error_code) };
            offsets.insert((topic.name.0.to_string(), partition.partition_index), answer);
        }
    }
    Ok(offsets)
}
