//! Setting the stage: the benchmark topic exists and every partition has a leader.
use std::time::Instant;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::limits::{CREATE_TOPICS_VERSION, METADATA_VERSION, TOPIC_POLL_INTERVAL, TOPIC_READY_TIMEOUT};
use super::wire::{ClientError, Connection};

const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;

/// Creates `topic` with `partitions` partitions unless it exists, then waits until every
/// partition has a leader. Returns the partition count the topic has, which differs from
/// `partitions` when it already existed with another count.
pub fn ensure_topic(connection: &mut Connection, topic: &str, partitions: i32) -> Result<i32, ClientError> {
    let request =
        CreateTopicsRequest::default().with_timeout_ms(TOPIC_READY_TIMEOUT.as_millis() as i32).with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let response = connection.call(&request, CREATE_TOPICS_VERSION)?;
    let code = response.topics.first().map_or(0, |result| result.error_code);
    if code != 0 && code != TOPIC_ALREADY_EXISTS {
        return Err(ClientError::Broker { doing: format!("creating topic {topic}"), code });
    }
    wait_for_leaders(connection, topic)
}

/// Polls Metadata until every partition of `topic` has a leader; returns how many there are.
pub fn wait_for_leaders(connection: &mut Connection, topic: &str) -> Result<i32, ClientError> {
    let started = Instant::now();
    loop {
        match partitions_with_leaders(connection, topic)? {
            Some(partitions) => return Ok(partitions),
            None if started.elapsed() > TOPIC_READY_TIMEOUT => {
                return Err(ClientError::Timeout { doing: format!("waiting for leaders of {topic}") })
            }
            None => std::thread::sleep(TOPIC_POLL_INTERVAL),
        }
    }
}

/// The partition count of `topic` if it has partitions and all of them have a leader.
fn partitions_with_leaders(connection: &mut Connection, topic: &str) -> Result<Option<i32>, ClientError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let response = connection.call(&request, METADATA_VERSION)?;
    let Some(found) =
        response.topics.iter().find(|found| found.name.as_ref().is_some_and(|name| name.0.as_str() == topic))
    else {
        return Ok(None);
    };
    match found.error_code {
        0 => {}
        UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE => return Ok(None),
        code => return Err(ClientError::Broker { doing: format!("metadata of {topic}"), code }),
    }
    let ready = !found.partitions.is_empty()
        && found.partitions.iter().all(|partition| partition.error_code == 0 && partition.leader_id.0 >= 0);
    Ok(ready.then_some(found.partitions.len() as i32))
}

/// The topics a run of `topics` topics uses: `topic` itself for one, else `<topic>-0` ...
/// `<topic>-<topics - 1>`.
pub fn topic_names(topic: &str, topics: usize) -> Vec<String> {
    match topics {
        1 => vec![topic.to_string()],
        topics => (0..topics).map(|index| format!("{topic}-{index}")).collect(),
    }
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
