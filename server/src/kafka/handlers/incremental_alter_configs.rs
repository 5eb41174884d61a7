//! IncrementalAlterConfigs (what `kafka-configs --alter` and AdminClient.incrementalAlterConfigs
//! send): SET and DELETE of single topic configs; the others keep their values. APPEND and
//! SUBTRACT apply to list configs, which no topic config here is. See `alter_configs`.
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{answers, change};
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::metadata::{ConfigChange, ConfigChanges};

/// Kafka's AlterConfigOp codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(
    context: &RequestContext,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> Option<IncrementalAlterConfigsResponse> {
    let changes = request.resources.iter().map(|resource| {
        let changes = resource
            .configs
            .iter()
            .map(|config| {
                let name = config.name.to_string();
                match (config.config_operation, &config.value) {
                    (OP_SET, Some(value)) => Ok(ConfigChange::Set(name, value.to_string())),
                    (OP_SET, None) => Err(format!("config {name}: SET needs a value")),
                    (OP_DELETE, _) => Ok(ConfigChange::Delete(name)),
                    (operation, _) => Err(format!(
                        "config {name}: operation {operation} (APPEND 2, SUBTRACT 3) applies to list configs only"
                    )),
                }
            })
            .collect::<Result<Vec<_>, String>>()
            .map(ConfigChanges::Incremental)
            .map_err(|reason| KafkaError::new(errors::INVALID_CONFIG, reason));
        (resource.resource_type, resource.resource_name.to_string(), changes)
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
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}
