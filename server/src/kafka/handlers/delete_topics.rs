//! DeleteTopics: the metadata context drops the topics from the manifest; every owner context
//! closes and deletes their partitions before the answer goes out.
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::{str_bytes, topic_name};
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

pub async fn handle(
    context: &RequestContext,
    request: DeleteTopicsRequest,
    version: i16,
) -> Option<DeleteTopicsResponse> {
    let names: Vec<Option<String>> = if version >= 6 {
        let metadata = context.metadata();
        request
            .topics
            .iter()
            .map(|topic| match &topic.name {
                Some(name) => Some(name.0.to_string()),
                None => {
                    let id = *topic.topic_id.as_bytes();
                    metadata.topics.values().find(|meta| meta.topic_id == id).map(|meta| meta.name.clone())
                }
            })
            .collect()
    } else {
        request.topic_names.iter().map(|name| Some(name.0.to_string())).collect()
    };
    let known: Vec<String> = names.iter().flatten().cloned().collect();
    let changes = match context.call(METADATA_SHARD, ShardRequest::DeleteTopics { names: known }).await {
        ShardResponse::TopicChanges(changes) => changes,
        _ => unreachable!("DeleteTopics answers with TopicChanges"),
    };
    let mut changes = changes.into_iter();
    let responses = names
        .into_iter()
        .map(|name| {
            let Some(name) = name else {
                return DeletableTopicResult::default().with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
            };
            let result = DeletableTopicResult::default().with_name(Some(topic_name(&name)));
            match changes.next().map(|change| change.result) {
                Some(Ok(deleted)) => result.with_topic_id(uuid::Uuid::from_bytes(deleted.topic_id)),
                Some(Err(error)) => {
                    let error = KafkaError::from(&error);
                    result.with_error_code(error.code).with_error_message(Some(str_bytes(&error.message)))
                }
                None => result.with_error_code(errors::UNKNOWN_SERVER_ERROR),
            }
        })
        .collect();
    Some(DeleteTopicsResponse::default().with_responses(responses))
}
