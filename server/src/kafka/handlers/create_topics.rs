//! CreateTopics: validated and applied by the metadata context, persisted in the manifest and
//! visible on every context before the answer goes out.
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_engine::partition::config::CONFIG_NAMES;

use super::str_bytes;
use crate::kafka::errors::KafkaError;
use crate::kafka::registry::RequestContext;
use crate::metadata::NewTopic;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

/// DescribeConfigs/CreateTopics config source codes (Kafka's).
pub const SOURCE_TOPIC_OVERRIDE: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    context: &RequestContext,
    request: CreateTopicsRequest,
    _version: i16,
) -> Option<CreateTopicsResponse> {
    let topics = request
        .topics
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.0.to_string(),
            partitions: (topic.num_partitions != -1).then_some(topic.num_partitions.max(0) as u32),
            replication_factor: topic.replication_factor,
            configs: topic
                .configs
                .iter()
                .map(|config| {
                    (config.name.to_string(), config.value.as_ref().map(|value| value.to_string()).unwrap_or_default())
                })
                .collect(),
        })
        .collect();
    let changes = match context
        .call(METADATA_SHARD, ShardRequest::CreateTopics { topics, validate_only: request.validate_only })
        .await
    {
        ShardResponse::TopicChanges(changes) => changes,
        _ => unreachable!("CreateTopics answers with TopicChanges"),
    };
    let results = request
        .topics
        .into_iter()
        .zip(changes)
        .map(|(topic, change)| {
            let result = CreatableTopicResult::default().with_name(topic.name);
            match change.result {
                Ok(created) => result
                    .with_topic_id(uuid::Uuid::from_bytes(created.topic_id))
                    .with_num_partitions(created.partitions as i32)
                    .with_replication_factor(1)
                    .with_configs(Some(
                        CONFIG_NAMES
                            .iter()
                            .map(|name| {
                                let overridden = created.overrides.iter().any(|(key, _)| key == name);
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(name))
                                    .with_value(created.config.get(name).map(|value| str_bytes(&value)))
                                    .with_config_source(if overridden { SOURCE_TOPIC_OVERRIDE } else { SOURCE_DEFAULT })
                            })
                            .collect(),
                    )),
                Err(error) => {
                    let error = KafkaError::from(&error);
                    result
                        .with_error_code(error.code)
                        .with_error_message(Some(str_bytes(&error.message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    Some(CreateTopicsResponse::default().with_topics(results))
}
