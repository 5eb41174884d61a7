//! `sluice topic create | list | describe | alter | delete`.
use std::io::Write;

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Client;
use super::error::AdminError;
use super::requests::{self, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::table::{properties, Align, Table};
use super::{topic_name, write_out, Connection};
use crate::limits::ADMIN_BROKER_TIMEOUT_MS;

/// CreateTopics v7 (answers with the topic id, partition count and configs).
const CREATE_TOPICS_VERSION: i16 = 7;
/// DeleteTopics v6 (topics named in `topics`).
const DELETE_TOPICS_VERSION: i16 = 6;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
/// IncrementalAlterConfigs operations.
const CONFIG_SET: i8 = 0;
const CONFIG_DELETE: i8 = 1;
/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// CreateTopics: -1 asks for the broker's default partition count and replication factor.
const BROKER_DEFAULT: i32 = -1;

#[derive(Args, Debug)]
#[command(after_help = super::EXIT_CODES_HELP)]
pub struct TopicArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic
    Create {
        /// Topic name
        name: String,
        /// Partitions (default: the broker's --default-partitions)
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// A topic config, e.g. retention.ms=3600000 (repeat for several)
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
    },
    /// List topics with their partition counts
    List,
    /// Show a topic's partitions (log start and end offsets) and its configs
    Describe {
        /// Topic name
        name: String,
    },
    /// Change a topic's configs (the partitions apply them at once)
    Alter {
        /// Topic name
        name: String,
        /// Set a config, e.g. retention.ms=3600000 (repeat for several)
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config, required_unless_present = "deleted")]
        configs: Vec<(String, String)>,
        /// Put a config back to its default (repeat for several)
        #[arg(long = "delete-config", value_name = "KEY")]
        deleted: Vec<String>,
    },
    /// Delete a topic and all its records
    Delete {
        /// Topic name
        name: String,
    },
}

pub fn run(args: &TopicArgs, out: &mut impl Write) -> Result<(), AdminError> {
    let mut client = Client::connect(&args.connection.bootstrap)?;
    match &args.command {
        TopicCommand::Create { name, partitions, configs } => create(&mut client, name, *partitions, configs, out),
        TopicCommand::List => list(&mut client, out),
        TopicCommand::Describe { name } => describe(&mut client, name, out),
        TopicCommand::Alter { name, configs, deleted } => alter(&mut client, name, configs, deleted, out),
        TopicCommand::Delete { name } => delete(&mut client, name, out),
    }
}

/// `key=value` -> (key, value); the key may not be empty, the value may.
fn parse_config(argument: &str) -> Result<(String, String), String> {
    match argument.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE (e.g. retention.ms=3600000), got '{argument}'")),
    }
}

fn create(
    client: &mut Client,
    name: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions.unwrap_or(BROKER_DEFAULT))
        .with_replication_factor(BROKER_DEFAULT as i16)
        .with_configs(
            configs
                .iter()
                .map(|(key, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(key.clone()))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(ADMIN_BROKER_TIMEOUT_MS);
    let response = client.call(&request, CREATE_TOPICS_VERSION)?;
    let doing = format!("cannot create topic '{name}'");
    let result = response.topics.into_iter().next().ok_or_else(|| missing_answer(client, &doing))?;
    if result.error_code != 0 {
        let message = result.error_message.map(|message| message.to_string());
        return Err(AdminError::broker(doing, result.error_code, message));
    }
    write_out(out, &format!("created topic {name} with {} partitions\n", result.num_partitions))
}

fn list(client: &mut Client, out: &mut impl Write) -> Result<(), AdminError> {
    let mut table = Table::new(&[("TOPIC", Align::Left), ("PARTITIONS", Align::Right), ("TOPIC ID", Align::Left)]);
    for topic in requests::list_topics(client)? {
        table.row(vec![topic.name, topic.partitions.len().to_string(), topic.topic_id.to_string()]);
    }
    write_out(out, &table.render())
}

fn describe(client: &mut Client, name: &str, out: &mut impl Write) -> Result<(), AdminError> {
    let doing = format!("cannot describe topic '{name}'");
    let topic = requests::describe_topic(client, name, false, &doing)?;
    let partitions: Vec<(String, i32)> =
        topic.partition_indexes().into_iter().map(|partition| (name.to_string(), partition)).collect();
    let starts = requests::list_offsets(client, &partitions, EARLIEST_TIMESTAMP)?;
    let ends = requests::list_offsets(client, &partitions, LATEST_TIMESTAMP)?;
    let configs = describe_configs(client, name, &doing)?;

    let head = [
        ("topic", topic.name.clone()),
        ("topic id", topic.topic_id.to_string()),
        ("partitions", topic.partitions.len().to_string()),
    ];
    let mut partition_table = Table::new(&[
        ("PARTITION", Align::Right),
        ("LEADER", Align::Right),
        ("START OFFSET", Align::Right),
        ("END OFFSET", Align::Right),
    ]);
    for (partition, leader) in &topic.partitions {
        let key = (name.to_string(), *partition);
        partition_table.row(vec![
            partition.to_string(),
            leader.to_string(),
            offset_cell(starts.get(&key)),
            offset_cell(ends.get(&key)),
        ]);
    }
    let mut config_table = Table::new(&[("CONFIG", Align::Left), ("VALUE", Align::Left), ("SOURCE", Align::Left)]);
    for (config, value, source) in configs {
        config_table.row(vec![config, value, source]);
    }
    let text = format!("{}\n{}\n{}", properties(&head), partition_table.render(), config_table.render());
    write_out(out, &text)
}

/// An offset, or the Kafka error the broker answered for the partition, or `-` if none.
fn offset_cell(answer: Option<&Result<i64, i16>>) -> String {
    match answer {
        Some(Ok(offset)) => offset.to_string(),
        Some(Err(code)) => super::error::kafka_error_name(*code),
        None => "-".to_string(),
    }
}

/// The topic's configs: (name, value, source), by name.
fn describe_configs(client: &mut Client, name: &str, doing: &str) -> Result<Vec<(String, String, String)>, AdminError> {
    let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configuration_keys(None)]);
    let response = client.call(&request, DESCRIBE_CONFIGS_VERSION)?;
    let result = response.results.into_iter().next().ok_or_else(|| missing_answer(client, doing))?;
    if result.error_code != 0 {
        let message = result.error_message.map(|message| message.to_string());
        return Err(AdminError::broker(doing, result.error_code, message));
    }
    let mut configs: Vec<(String, String, String)> = result
        .configs
        .into_iter()
        .map(|config| {
            let value = if config.is_sensitive {
                "(sensitive)".to_string()
            } else {
                config.value.map_or_else(|| "(null)".to_string(), |value| value.to_string())
            };
            (config.name.to_string(), value, config_source(config.config_source).to_string())
        })
        .collect();
    configs.sort();
    Ok(configs)
}

/// Kafka's config sources, as words.
fn config_source(source: i8) -> &'static str {
    match source {
        1 => "topic override",
        2 => "dynamic broker",
        3 => "dynamic broker default",
        4 => "static broker",
        5 => "default",
        6 => "broker logger",
        _ => "unknown",
    }
}

fn alter(
    client: &mut Client,
    name: &str,
    configs: &[(String, String)],
    deleted: &[String],
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let doing = format!("cannot alter topic '{name}'");
    let change = |key: &str, operation, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_string()))
            .with_config_operation(operation)
            .with_value(value.map(|value| StrBytes::from_string(value.to_string())))
    };
    let changes = configs
        .iter()
        .map(|(key, value)| change(key, CONFIG_SET, Some(value)))
        .chain(deleted.iter().map(|key| change(key, CONFIG_DELETE, None)))
        .collect();
    let resource = AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(changes);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response = client.call(&request, INCREMENTAL_ALTER_CONFIGS_VERSION)?;
    let result = response.responses.into_iter().next().ok_or_else(|| missing_answer(client, &doing))?;
    if result.error_code != 0 {
        let message = result.error_message.map(|message| message.to_string());
        return Err(AdminError::broker(doing, result.error_code, message));
    }
    write_out(out, &format!("altered topic {name}: {} set, {} back to default\n", configs.len(), deleted.len()))
}

fn delete(client: &mut Client, name: &str, out: &mut impl Write) -> Result<(), AdminError> {
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(name)))])
        .with_timeout_ms(ADMIN_BROKER_TIMEOUT_MS);
    let response = client.call(&request, DELETE_TOPICS_VERSION)?;
    let doing = format!("cannot delete topic '{name}'");
    let result = response.responses.into_iter().next().ok_or_else(|| missing_answer(client, &doing))?;
    if result.error_code != 0 {
        let message = result.error_message.map(|message| message.to_string());
        return Err(AdminError::broker(doing, result.error_code, message));
    }
    write_out(out, &format!("deleted topic {name}\n"))
}

/// The broker answered a request about one topic without an entry for it.
fn missing_answer(client: &Client, doing: &str) -> AdminError {
    AdminError::Protocol {
        bootstrap: client.bootstrap().to_string(),
        reason: format!("{doing}: the answer holds no result for the topic"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_key_equals_value() {
        assert_eq!(parse_config("retention.ms=3600000"), Ok(("retention.ms".into(), "3600000".into())));
        assert_eq!(parse_config("cleanup.policy="), Ok(("cleanup.policy".into(), String::new())));
        assert_eq!(parse_config("a=b=c"), Ok(("a".into(), "b=c".into())));
        for bad in ["retention.ms", "=5", ""] {
            let error = parse_config(bad).expect_err(bad);
            assert!(error.contains("expected KEY=VALUE"), "{error}");
        }
    }
}
