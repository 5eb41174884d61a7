//! DescribeConfigs: topic configs (effective values, marked as override or default) and the
//! few broker settings that matter to clients.
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_engine::partition::config::CONFIG_NAMES;

use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC_OVERRIDE};
use super::str_bytes;
use crate::kafka::errors;
use crate::kafka::registry::RequestContext;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigType codes (v3+).
const CONFIG_TYPE_BOOLEAN: i8 = 1;
const CONFIG_TYPE_INT: i8 = 3;
const CONFIG_TYPE_LONG: i8 = 5;
/// Kafka's config source for static broker settings.
const SOURCE_STATIC_BROKER: i8 = 4;

pub async fn handle(
    context: &RequestContext,
    request: DescribeConfigsRequest,
    _version: i16,
) -> Option<DescribeConfigsResponse> {
    let metadata = context.metadata();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let wanted = |name: &str| {
                resource.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => match metadata.topics.get(resource.resource_name.as_str()) {
                    Some(topic) => result.with_configs(
                        CONFIG_NAMES
                            .iter()
                            .filter(|name| wanted(name))
                            .map(|name| {
                                let overridden = topic.overrides.iter().any(|(key, _)| key == name);
                                let config_type =
                                    if *name == "max.message.bytes" { CONFIG_TYPE_INT } else { CONFIG_TYPE_LONG };
                                entry(name, topic.config.get(name).unwrap_or_default(), config_type)
                                    .with_config_source(if overridden { SOURCE_TOPIC_OVERRIDE } else { SOURCE_DEFAULT })
                            })
                            .collect(),
                    ),
                    None => result
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(str_bytes("unknown topic"))),
                },
                RESOURCE_BROKER => {
                    let config = &context.config;
                    let settings = [
                        ("auto.create.topics.enable", config.auto_create_topics.to_string(), CONFIG_TYPE_BOOLEAN),
                        ("num.partitions", config.default_partitions.to_string(), CONFIG_TYPE_INT),
                        ("socket.request.max.bytes", config.request_bytes_max.to_string(), CONFIG_TYPE_INT),
                    ];
                    result.with_configs(
                        settings
                            .into_iter()
                            .filter(|(name, _, _)| wanted(name))
                            .map(|(name, value, config_type)| {
                                entry(name, value, config_type)
                                    .with_read_only(true)
                                    .with_config_source(SOURCE_STATIC_BROKER)
                            })
                            .collect(),
                    )
                }
                other => result
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes(&format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    Some(DescribeConfigsResponse::default().with_results(results))
}

fn entry(name: &str, value: String, config_type: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(&value)))
        .with_config_type(config_type)
}
