//! Fetch: reads each partition on its owner context; if less than `min_bytes` came back, waits
//! (up to `max_wait_ms`) for an append notification from any owner, then reads once more.
//! Stored batch bytes go out unchanged: from memory, or (a checked range only the segment
//! file holds) with sendfile, through a placeholder in the encoded response.
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::scatter;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::kafka::response::file_placeholder;
use crate::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use crate::metrics::Protocol;
use crate::runtime::mesh::{FetchedToSend, ShardError, ShardRequest, ShardResponse, TopicPartition};
use sluice_engine::partition::Records;
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
    let fetched_bytes = |results: &[Result<FetchedToSend, ShardError>]| -> usize {
        results.iter().filter_map(|result| result.as_ref().ok()).map(|fetched| fetched.records.len()).sum()
    };
    let any_error = results.iter().any(Result::is_err);
    if !any_error && wait_ms > 0 && fetched_bytes(&results) < request.min_bytes.max(1) as usize && !reads.is_empty() {
        let watches = reads.iter().map(|(topic_partition, offset, _)| (topic_partition.clone(), *offset)).collect();
        context.wait_for_data_anywhere(watches, wait_ms).await;
        results = read(context, &reads, response_bytes_max).await;
    }
    Some(build_response(context, request, results, response_bytes_max))
}

/// Adds record batches going out to the shard's bytes and records out. A file range is not
/// read, so its records are counted as the offsets it spans.
fn count_sent(context: &RequestContext, records: &Records) {
    let count = match records {
        Records::Memory(bytes) => batch::split(bytes)
            .filter_map(Result::ok)
            .filter_map(|range| batch::header(&bytes[range]).ok())
            .map(|header| header.records_count.get().max(0) as u64)
            .sum(),
        Records::File(range) => {
            context.metrics.sent_from_file(range.length_bytes);
            (range.offsets.end - range.offsets.start).max(0) as u64
        }
    };
    context.metrics.sent(Protocol::Kafka, records.len(), count);
}

/// Each owner reads its share within `response_bytes_max`; `build_response` then keeps the
/// whole response within it.
async fn read(
    context: &RequestContext,
    reads: &[Read],
    response_bytes_max: usize,
) -> Vec<Result<FetchedToSend, ShardError>> {
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

/// The response, with each partition's records in place; file ranges go to the context (their
/// placeholders to the message), to be sent with sendfile.
fn build_response(
    context: &RequestContext,
    request: FetchRequest,
    results: Vec<Result<FetchedToSend, ShardError>>,
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
                    let over = total_bytes > 0 && total_bytes + fetched.records.len() > response_bytes_max;
                    let records = if over { Records::Memory(bytes::Bytes::new()) } else { fetched.records };
                    total_bytes += records.len();
                    count_sent(context, &records);
                    data.records = Some(match records {
                        Records::Memory(bytes) => bytes,
                        Records::File(range) => {
                            let placeholder = file_placeholder(&range).unwrap_or_default();
                            if !placeholder.is_empty() {
                                context.file_ranges.borrow_mut().push(range);
                            }
                            placeholder
                        }
                    });
                }
                Err(error) => {
                    let error = KafkaError::from(&error);
                    data.error_code = error.code;
                    data.high_watermark = -1;
                    data.last_stable_offset = -1;
                    data.log_start_offset = -1;
                    data.records = Some(bytes::Bytes::new());
                    if error.code == errors::OFFSET_OUT_OF_RANGE {
                        tracing::debug!(topic = %topic.topic.0, partition = partition.partition, offset = partition.fetch_offset, reason = %error.message, "fetch out of range");
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
    // throttle_time_ms stays 0 even when `catch-up-read-bytes-per-sec-max` holds this response
    // back: the broker paces the file bytes as it sends them (the wait is already spent when
    // the client has the response), and a client on Fetch v8 or later (KIP-219) would wait
    // the reported time once more before its next fetch, halving its rate under the cap. The
    // time held back is `sluice_catch_up_read_throttled_seconds_total`.
    FetchResponse::default().with_responses(topics)
}
