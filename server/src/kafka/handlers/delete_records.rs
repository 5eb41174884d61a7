//! DeleteRecords: moves each partition's log start offset; whole segments below it are deleted.
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::scatter;
use crate::kafka::errors::KafkaError;
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse};

pub async fn handle(
    context: &RequestContext,
    request: DeleteRecordsRequest,
    _version: i16,
) -> Option<DeleteRecordsResponse> {
    let deletes = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.name.0.to_string();
            topic.partitions.iter().map(move |partition| ((name.clone(), partition.partition_index), partition.offset))
        })
        .collect();
    let results = scatter(
        context,
        deletes,
        |deletes| ShardRequest::DeleteRecords { deletes },
        |response| match response {
            ShardResponse::DeleteRecords(results) => Some(results),
            _ => None,
        },
    )
    .await;
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let result =
                        DeleteRecordsPartitionResult::default().with_partition_index(partition.partition_index);
                    match results.next() {
                        Some(Ok(low_watermark)) => result.with_low_watermark(low_watermark),
                        Some(Err(error)) => {
                            result.with_error_code(KafkaError::from(&error).code).with_low_watermark(-1)
                        }
                        None => result.with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
