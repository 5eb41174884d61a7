//! ListOffsets: earliest (-2), latest (-1, the high watermark) or the first offset at or after
//! a timestamp, answered by the owner context from the time index.
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::scatter;
use crate::kafka::errors::KafkaError;
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse};

pub async fn handle(
    context: &RequestContext,
    request: ListOffsetsRequest,
    _version: i16,
) -> Option<ListOffsetsResponse> {
    let queries = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.name.0.to_string();
            topic
                .partitions
                .iter()
                .map(move |partition| ((name.clone(), partition.partition_index), partition.timestamp))
        })
        .collect();
    let results = scatter(
        context,
        queries,
        |queries| ShardRequest::ListOffsets { queries },
        |response| match response {
            ShardResponse::ListOffsets(results) => Some(results),
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
                    let response =
                        ListOffsetsPartitionResponse::default().with_partition_index(partition.partition_index);
                    match results.next() {
                        Some(Ok(found)) => response.with_offset(found.offset).with_timestamp(found.timestamp),
                        Some(Err(error)) => {
                            response.with_error_code(KafkaError::from(&error).code).with_offset(-1).with_timestamp(-1)
                        }
                        None => response.with_offset(-1).with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    Some(ListOffsetsResponse::default().with_topics(topics))
}
