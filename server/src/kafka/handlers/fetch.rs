//! Fetch: reads each partition on its owner context; if less than `min_bytes` came back, waits
//! (up to `max_wait_ms`) for an append notification from any owner, then reads once more.
//! Stored batch bytes go out unchanged.
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::scatter;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use crate::metrics::Protocol;
use crate::runtime::mesh::{Fetched, ShardError, ShardRequest, ShardResponse, TopicPartition};
use sluice_engine::record::batch;

type Read = (TopicPartition, i64, usize);

pub async fn handle(context: &RequestContext, request: FetchRequest, _version: i16) -> Option<FetchResponse> {
    let response_bytes_max = (request.max_bytes.max(0) as usize).min(FETCH_RESPONSE_BYTES_MAX);
    let reads: Vec<Read> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.topic.0.to_string();
            topic.partitions.iter().map(move |partition| {
                let max_bytes = (partition.partition_max_bytes.max(0) as usize).min(response_bytes_max);
                ((name.clone(), partition.partition), partition.fetch_offset, max_bytes)
            })
        })
        .collect();
    let mut results = read(context, &reads, response_bytes_max).await;
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX);
    let fetched_bytes = |results: &[Result<Fetched, ShardError>]| -> usize {
        results.iter().filter_map(|result| result.as_ref().ok()).map(|fetched| fetched.records.len()).sum()
    };
    let any_error = results.iter().any(Result::is_err);
    if !any_error && wait_ms > 0 && fetched_bytes(&results) < request.min_bytes.max(1) as usize && !reads.is_empty() {
        let watches = reads.iter().map(|(topic_partition, offset, _)| (topic_partition.clone(), *offset)).collect();
        context.wait_for_data_anywhere(watches, wait_ms).await;
        results = read(context, &reads, response_bytes_max).await;
    }
    let response = build_response(request, results, response_bytes_max);
    count_sent(context, &response);
    Some(response)
}

/// Adds the record batches going out to the shard's bytes and records out.
fn count_sent(context: &RequestContext, response: &FetchResponse) {
    let (mut bytes, mut records) = (0usize, 0u64);
    for partition_records in
        response.responses.iter().flat_map(|topic| &topic.partitions).filter_map(|data| data.records.as_ref())
    {
        bytes += partition_records.len();
        for range in batch::split(partition_records).filter_map(Result::ok) {
            if let Ok(header) = batch::header(&partition_records[range]) {
                records += header.records_count.get().max(0) as u64;
            }
        }
    }
    context.metrics.sent(Protocol::Kafka, bytes, records);
}

/// Each owner reads its share within `response_bytes_max`; `build_response` then keeps the
/// whole response within it.
async fn read(context: &RequestContext, reads: &[Read], response_bytes_max: usize) -> Vec<Result<Fetched, ShardError>> {
    let items =
        reads.iter().map(|(topic_partition, offset, max_bytes)| (topic_partition.clone(), (*offset, *max_bytes)));
    scatter(
        context,
        items.collect(),
        |share| ShardRequest::Fetch {
            reads: share
                .into_iter()
                .map(|(topic_partition, (offset, max_bytes))| (topic_partition, offset, max_bytes))
                .collect(),
            response_bytes_max,
        },
        |response| match response {
            ShardResponse::Fetch(results) => Some(results),
            _ => None,
        },
    )
    .await
}

fn build_response(
    request: FetchRequest,
    results: Vec<Result<Fetched, ShardError>>,
    response_bytes_max: usize,
) -> FetchResponse {
    let mut results = results.into_iter();
    let mut total_bytes = 0usize;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let mut data = PartitionData::default().with_partition_index(partition.partition);
            match results.next().unwrap_or(Err(ShardError::UnknownTopicOrPartition)) {
                Ok(fetched) => {
                    data.high_watermark = fetched.high_watermark;
                    data.last_stable_offset = fetched.high_watermark;
                    data.log_start_offset = fetched.log_start_offset;
                    // The response limit is soft only for the first non-empty partition (so a
                    // consumer always progresses); past it, later partitions come back empty.
                    let records = if total_bytes > 0 && total_bytes + fetched.records.len() > response_bytes_max {
                        bytes::Bytes::new()
                    } else {
                        fetched.records
                    };
                    total_bytes += records.len();
                    data.records = Some(records);
                }
                Err(error) => {
                    let error = KafkaError::from(&error);
                    data.error_code = error.code;
                    data.high_watermark = -1;
                    data.last_stable_offset = -1;
                    data.log_start_offset = -1;
                    data.records = Some(bytes::Bytes::new());
                    if error.code == errors::OFFSET_OUT_OF_RANGE {
                        tracing::debug!(topic = %topic.topic.0, partition = partition.partition, offset = partition.fetch_offset, "fetch out of range");
                    }
                }
            }
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    FetchResponse::default().with_responses(topics)
}
