//! Metadata: one broker (this one) leads every partition. Unknown topics are created when the
//! client allows it and the broker is configured to (auto.create.topics.enable).
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};

use super::{str_bytes, topic_name};
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::limits::AUTO_CREATED_TOPICS_PER_REQUEST_MAX;
use crate::metadata::TopicMeta;

/// This broker's id in every response.
pub const BROKER_ID: i32 = 0;
pub const CLUSTER_ID: &str = "sluice";

pub async fn handle(context: &RequestContext, request: MetadataRequest, version: i16) -> Option<MetadataResponse> {
    let requested: Option<Vec<String>> = match request.topics {
        // v0: an empty list means all topics.
        Some(topics) if !(version == 0 && topics.is_empty()) => {
            Some(topics.into_iter().filter_map(|topic| topic.name.map(|name| name.0.to_string())).collect())
        }
        _ => None,
    };
    let auto_create = context.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => topics.extend(context.metadata().topics.values().map(describe)),
        Some(names) => {
            let mut created = 0usize;
            for name in names {
                let mut error = None;
                if !context.metadata().topics.contains_key(&name) {
                    let may_create = auto_create && created < AUTO_CREATED_TOPICS_PER_REQUEST_MAX;
                    created += usize::from(may_create);
                    error = Some(if may_create {
                        context.ensure_topic(&name, None).await.err().map(|error| KafkaError::from(&error))
                    } else {
                        Some(KafkaError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic"))
                    })
                    .flatten();
                }
                let metadata = context.metadata();
                match (error, metadata.topics.get(&name)) {
                    (None, Some(topic)) => topics.push(describe(topic)),
                    (error, _) => {
                        let code = error.map_or(errors::UNKNOWN_TOPIC_OR_PARTITION, |error| error.code);
                        topics.push(
                            MetadataResponseTopic::default().with_name(Some(topic_name(&name))).with_error_code(code),
                        );
                    }
                }
            }
        }
    }
    let (host, port) = advertised(context);
    let broker =
        MetadataResponseBroker::default().with_node_id(BrokerId(BROKER_ID)).with_host(str_bytes(&host)).with_port(port);
    Some(
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(str_bytes(CLUSTER_ID)))
            .with_controller_id(BrokerId(BROKER_ID))
            .with_topics(topics),
    )
}

/// The host and port clients are told to connect to: the Kafka listener's (`localhost` for an
/// unspecified address such as 0.0.0.0).
pub fn advertised(context: &RequestContext) -> (String, i32) {
    let listen = context.config.kafka_listen;
    let host = if listen.ip().is_unspecified() { "localhost".to_string() } else { listen.ip().to_string() };
    (host, i32::from(listen.port()))
}

fn describe(topic: &TopicMeta) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(BROKER_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(BROKER_ID)])
                .with_isr_nodes(vec![BrokerId(BROKER_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(uuid::Uuid::from_bytes(topic.topic_id))
        .with_partitions(partitions)
}
