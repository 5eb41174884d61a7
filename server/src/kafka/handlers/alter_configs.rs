//! AlterConfigs: replaces a topic's config overrides (what a resource does not list goes back to
//! its default). IncrementalAlterConfigs (`incremental_alter_configs`) sets and deletes single
//! ones; both go through `change`, one catalogue change on the metadata shard, which every
//! shard then applies to the topic's open partitions (retention, segment rolling and the
//! batch size limit take the new values at once) and the manifest keeps across restarts.
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::metadata::ConfigChanges;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

pub async fn handle(
    context: &RequestContext,
    request: AlterConfigsRequest,
    _version: i16,
) -> Option<AlterConfigsResponse> {
    let changes = request.resources.iter().map(|resource| {
        let overrides = resource
            .configs
            .iter()
            .map(|config| (config.name.to_string(), config.value.as_deref().unwrap_or_default().to_string()))
            .collect();
        (resource.resource_type, resource.resource_name.to_string(), Ok(ConfigChanges::Replace(overrides)))
    });
    let outcomes = change(context, changes.collect(), request.validate_only).await;
    let resources = request.resources.into_iter().map(|resource| (resource.resource_type, resource.resource_name));
    let responses = answers(resources, outcomes, |resource_type, resource_name, code, message| {
        AlterConfigsResourceResponse::default()
            .with_resource_type(resource_type)
            .with_resource_name(resource_name)
            .with_error_code(code)
            .with_error_message(message)
    });
    Some(AlterConfigsResponse::default().with_responses(responses))
}

/// Each resource's answer, made by `answer(resource type, resource name, error code, error
/// message)` (the two APIs' answers are different types with the same fields).
pub fn answers<T>(
    resources: impl Iterator<Item = (i8, StrBytes)>,
    outcomes: Vec<Result<(), KafkaError>>,
    answer: impl Fn(i8, StrBytes, i16, Option<StrBytes>) -> T,
) -> Vec<T> {
    resources
        .zip(outcomes)
        .map(|((resource_type, resource_name), outcome)| match outcome {
            Ok(()) => answer(resource_type, resource_name, 0, None),
            Err(error) => answer(resource_type, resource_name, error.code, Some(str_bytes(&error.message))),
        })
        .collect()
}

/// Applies each resource's changes (`resource type, name, changes or why they are refused`)
/// and answers for each, in order. Only topics have configs to change here.
pub async fn change(
    context: &RequestContext,
    resources: Vec<(i8, String, Result<ConfigChanges, KafkaError>)>,
    validate_only: bool,
) -> Vec<Result<(), KafkaError>> {
    let mut outcomes: Vec<Option<Result<(), KafkaError>>> = Vec::with_capacity(resources.len());
    let mut topic_changes = Vec::new();
    for (resource_type, name, changes) in resources {
        outcomes.push(match (resource_type, changes) {
            (_, Err(error)) => Some(Err(error)),
            (RESOURCE_TOPIC, Ok(changes)) => {
                topic_changes.push((name, changes));
                None // answered below
            }
            (RESOURCE_BROKER, Ok(_)) => Some(Err(KafkaError::new(
                errors::INVALID_REQUEST,
                "broker configs are read-only here: set them with sluice's flags".to_string(),
            ))),
            (other, Ok(_)) => Some(Err(KafkaError::new(
                errors::INVALID_REQUEST,
                format!("resource type {other} has no configs to change"),
            ))),
        });
    }
    let mut results = if topic_changes.is_empty() {
        Vec::new().into_iter()
    } else {
        let request = ShardRequest::AlterTopicConfigs { changes: topic_changes, validate_only };
        match context.call(METADATA_SHARD, request).await {
            ShardResponse::TopicChanges(results) => results.into_iter(),
            _ => unreachable!("AlterTopicConfigs answers with TopicChanges"),
        }
    };
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Some(outcome) => outcome,
            None => match results.next().map(|change| change.result) {
                Some(Ok(_)) => Ok(()),
                Some(Err(error)) => Err(KafkaError::from(&error)),
                None => Err(KafkaError::new(errors::UNKNOWN_SERVER_ERROR, "no answer from the catalogue".to_string())),
            },
        })
        .collect()
}
