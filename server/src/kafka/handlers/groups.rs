//! Shared by the consumer group handlers: converting wire strings and answers.
use kafka_protocol::protocol::StrBytes;

use crate::coordinator::{GroupAnswer, GroupCall};
use crate::runtime::ShardRef;

pub fn text(value: &StrBytes) -> String {
    value.to_string()
}

pub fn optional_text(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|value| value.to_string()).filter(|value| !value.is_empty())
}

/// Runs `call` on the group's coordinator shard.
pub async fn on_coordinator(shard: &ShardRef, group: &str, call: GroupCall) -> GroupAnswer {
    shard.group_call(group, call).await
}
