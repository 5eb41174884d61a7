//! Produce: batches are framed-checked here, routed to their owner shards, validated (CRC) and
//! appended there; acks=all answers after the group-committed fdatasync; acks=0 never answers.
use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use sluice_engine::record::batch;

use super::{gather, group_by_owner, str_bytes};
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::OrderPoint;
use crate::kafka::registry::RequestContext;
use crate::metrics::Protocol;
use crate::runtime::mesh::{Appended, ShardError, ShardRequest, ShardResponse, TopicPartition};

/// A request's records are stored in the request frame's own memory (`Partition::append_bytes`)
/// when they are one partition's and at least this share of the frame; otherwise they are
/// copied out of it, so that no stored batch keeps the bytes of others (or a long client id)
/// alive: a single batch here, several batch by batch where they are appended.
const FRAME_KEPT_RECORDS_PERMILLE_MIN: usize = 875;

pub async fn handle(
    context: &RequestContext,
    mut request: ProduceRequest,
    _version: i16,
    order: OrderPoint,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let topic_data = std::mem::take(&mut request.topic_data);
    drop(request); // (its transactional id is a slice of the frame)
    let partitions_with_records: usize =
        topic_data.iter().map(|topic| topic.partition_data.iter().filter(|data| data.records.is_some()).count()).sum();
    let mut responses = Vec::with_capacity(topic_data.len());
    let mut writes = Vec::new();
    let mut slots = Vec::new();
    for topic in topic_data {
        let name = topic.name.0.to_string();
        let topic_error = prepare_topic(context, &name, acks).await;
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let mut response = PartitionProduceResponse::default().with_index(data.index).with_base_offset(-1);
            response.log_append_time_ms = -1;
            let error = topic_error.clone().or_else(|| {
                (!context.metadata().partition_exists(&name, data.index))
                    .then(|| KafkaError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "unknown partition"))
            });
            match (error, data.records) {
                (Some(error), _) => set_error(&mut response, &error),
                (None, None) => set_error(&mut response, &KafkaError::new(errors::CORRUPT_MESSAGE, "no records")),
                (None, Some(records)) => {
                    let kept = partitions_with_records == 1
                        && records.len() * 1000 >= context.frame_bytes * FRAME_KEPT_RECORDS_PERMILLE_MIN;
                    let one_batch = batch::split(&records).nth(1).is_none();
                    let records = if kept || !one_batch {
                        records
                    } else {
                        context.metrics.produce_copied(records.len());
                        Bytes::copy_from_slice(&records)
                    };
                    slots.push((responses.len(), partitions.len(), records.len()));
                    writes.push(((name.clone(), data.index), records));
                }
            }
            partitions.push(response);
        }
        // The name is copied: the request's is a slice of the frame.
        let name = TopicName(str_bytes(&name));
        responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(partitions));
    }
    let results = append_in_order(context, acks, writes, order).await;
    for ((topic_index, partition_index, records_bytes), result) in slots.into_iter().zip(results) {
        let response = &mut responses[topic_index].partition_responses[partition_index];
        match result {
            Ok(appended) => {
                let count = (appended.last_offset - appended.base_offset + 1).max(0) as u64;
                context.metrics.received(Protocol::Kafka, records_bytes, count);
                response.base_offset = appended.base_offset;
                response.log_start_offset = appended.log_start_offset;
            }
            Err(error) => set_error(response, &KafkaError::from(&error)),
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Sends each owner context its writes, releases `order` once every owner has appended (so the
/// connection's next request appends after these), then waits for the answers (acks=all:
/// after the fdatasync).
async fn append_in_order(
    context: &RequestContext,
    acks: i16,
    writes: Vec<(TopicPartition, Bytes)>,
    mut order: OrderPoint,
) -> Vec<Result<Appended, ShardError>> {
    let count = writes.len();
    let mut positions = Vec::new();
    let mut appended = Vec::new();
    let mut requests = Vec::new();
    for (owner, indexes, share) in group_by_owner(context, writes) {
        let (appended_sender, appended_receiver) = futures::channel::oneshot::channel();
        positions.push(indexes);
        appended.push(appended_receiver);
        requests.push((owner, ShardRequest::Produce { acks, writes: share, appended: Some(appended_sender) }));
    }
    // Started as a task so the sends go out (in order) while we wait for the appends.
    let calls = glommio::spawn_local({
        let shard = context.shard.clone();
        async move {
            let calls = requests.into_iter().map(|(owner, request)| {
                let shard = shard.clone();
                async move { shard.call(owner, request).await }
            });
            futures::future::join_all(calls).await
        }
    });
    for receiver in appended {
        let _ = receiver.await;
    }
    order.release();
    let answers = calls
        .await
        .into_iter()
        .map(|answer| match answer {
            ShardResponse::Produce(results) => results,
            _ => unreachable!("Produce answers with Produce"),
        })
        .collect();
    gather(count, positions, answers)
}

/// Checks acks and makes sure the topic exists (auto-creating it if allowed).
async fn prepare_topic(context: &RequestContext, name: &str, acks: i16) -> Option<KafkaError> {
    if !matches!(acks, -1..=1) {
        return Some(KafkaError::new(errors::INVALID_REQUIRED_ACKS, format!("acks must be -1, 0 or 1, got {acks}")));
    }
    if context.metadata().topics.contains_key(name) {
        return None;
    }
    if !context.config.auto_create_topics {
        return Some(KafkaError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic"));
    }
    context.ensure_topic(name, None).await.err().map(|error| KafkaError::from(&error))
}

fn set_error(response: &mut PartitionProduceResponse, error: &KafkaError) {
    response.error_code = error.code;
    response.error_message = Some(str_bytes(&error.message));
}
