//! DescribeLogDirs: the one log directory (`<data-dir>/topics`), each asked-for partition's
//! size (its durable segments' bytes, from its owner shard) and the file system's total and
//! usable bytes; what Kafka UIs show as topic sizes and `kafka-log-dirs --describe` prints.
//! A topic asked for that does not exist is left out, as Kafka leaves out partitions it does
//! not host.
use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{scatter, str_bytes, topic_name};
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse, TopicPartition};

pub async fn handle(
    context: &RequestContext,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> Option<DescribeLogDirsResponse> {
    let metadata = context.metadata();
    let asked: Vec<TopicPartition> = match request.topics {
        None => metadata
            .topics
            .values()
            .flat_map(|topic| (0..topic.partitions as i32).map(|partition| (topic.name.clone(), partition)))
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|topic| topic.partitions.iter().map(|partition| (topic.topic.0.to_string(), *partition)))
            .filter(|(topic, partition)| metadata.partition_exists(topic, *partition))
            .collect(),
    };
    let items = asked.iter().map(|key| (key.clone(), ())).collect();
    let sizes = scatter(
        context,
        items,
        |partitions| ShardRequest::PartitionSizes { partitions },
        |response| match response {
            ShardResponse::PartitionSizes(sizes) => Some(sizes),
            _ => None,
        },
    )
    .await;
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for ((topic, partition), size) in asked.into_iter().zip(sizes) {
        // A partition deleted meanwhile is left out, like one never asked for.
        let Ok(size_bytes) = size else { continue };
        topics.entry(topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(partition)
                .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX)),
        );
    }
    let log_dir = context.config.data_dir.join("topics");
    // -1 when unknown, as Kafka answers.
    let (total_bytes, usable_bytes) = file_system_bytes(&log_dir).unwrap_or((-1, -1));
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default().with_name(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&log_dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    Some(DescribeLogDirsResponse::default().with_results(vec![result]))
}

/// The file system's size and the bytes an unprivileged writer may still use (statvfs).
fn file_system_bytes(path: &std::path::Path) -> Option<(i64, i64)> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is a plain C struct, valid all zeros; statvfs reads the NUL-terminated
    // path and fills the struct we own.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = stats.f_frsize as i64;
    Some((stats.f_blocks as i64 * block, stats.f_bavail as i64 * block))
}
