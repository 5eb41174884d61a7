//! CreatePartitions: grows a topic; new partitions open on their owner shards.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

pub async fn handle(
    context: &RequestContext,
    request: CreatePartitionsRequest,
    _version: i16,
) -> Option<CreatePartitionsResponse> {
    let counts = request.topics.iter().map(|topic| (topic.name.0.to_string(), topic.count.max(0) as u32)).collect();
    let request_kind = ShardRequest::CreatePartitions { counts, validate_only: request.validate_only };
    let changes = match context.call(METADATA_SHARD, request_kind).await {
        ShardResponse::TopicChanges(changes) => changes,
        _ => unreachable!("CreatePartitions answers with TopicChanges"),
    };
    let mut changes = changes.into_iter();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name);
            match changes.next().map(|change| change.result) {
                Some(Ok(_)) => result,
                Some(Err(error)) => {
                    let error = KafkaError::from(&error);
                    result.with_error_code(error.code).with_error_message(Some(str_bytes(&error.message)))
                }
                None => result.with_error_code(errors::UNKNOWN_SERVER_ERROR),
            }
        })
        .collect();
    Some(CreatePartitionsResponse::default().with_results(results))
}
