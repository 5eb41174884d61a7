//! `sluice group list | describe`. Describe joins three answers: DescribeGroups (state,
//! protocol, members and the assignment bytes the leader handed each member, decoded here from
//! the consumer protocol), OffsetFetch (the group's committed offsets) and ListOffsets (end
//! offsets), so lag = end offset - committed offset per partition.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use bytes::{Buf, Bytes};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};
use kafka_protocol::ResponseError;

use super::client::Client;
use super::error::{kafka_error_name, AdminError};
use super::requests::{self, LATEST_TIMESTAMP};
use super::table::{properties, Align, Table};
use super::{write_out, Connection};

const LIST_GROUPS_VERSION: i16 = 4;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
/// OffsetFetch v7: one group, every committed partition when no topics are named.
const OFFSET_FETCH_VERSION: i16 = 7;
/// The protocol type of Kafka consumers, whose assignments this module decodes.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// DescribeGroups answers a group it does not know as Dead with no members.
const DEAD_STATE: &str = "Dead";

#[derive(Args, Debug)]
#[command(after_help = super::EXIT_CODES_HELP)]
pub struct GroupArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state
    List,
    /// Show a group's state, members with their assigned partitions, and per partition the
    /// committed offset, end offset and lag
    Describe {
        /// Group id
        group: String,
    },
}

pub fn run(args: &GroupArgs, out: &mut impl Write) -> Result<(), AdminError> {
    let mut client = Client::connect(&args.connection.bootstrap)?;
    match &args.command {
        GroupCommand::List => list(&mut client, out),
        GroupCommand::Describe { group } => describe(&mut client, group, out),
    }
}

fn list(client: &mut Client, out: &mut impl Write) -> Result<(), AdminError> {
    let response = client.call(&ListGroupsRequest::default(), LIST_GROUPS_VERSION)?;
    if response.error_code != 0 {
        return Err(AdminError::broker("cannot list groups", response.error_code, None));
    }
    let mut groups: Vec<[String; 3]> = response
        .groups
        .into_iter()
        .map(|group| [group.group_id.0.to_string(), group.group_state.to_string(), group.protocol_type.to_string()])
        .collect();
    groups.sort();
    let mut table = Table::new(&[("GROUP", Align::Left), ("STATE", Align::Left), ("PROTOCOL TYPE", Align::Left)]);
    for group in groups {
        table.row(group.to_vec());
    }
    write_out(out, &table.render())
}

/// A topic's name and a partition index.
type TopicPartition = (String, i32);

/// What the partitions table shows of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PartitionLag {
    committed: Option<i64>,
    end: Option<Result<i64, i16>>,
    member: Option<String>,
}

impl PartitionLag {
    fn lag(&self) -> Option<i64> {
        match (self.committed, &self.end) {
            (Some(committed), Some(Ok(end))) => Some((end - committed).max(0)),
            _ => None,
        }
    }
}

fn describe(client: &mut Client, group_id: &str, out: &mut impl Write) -> Result<(), AdminError> {
    let doing = format!("cannot describe group '{group_id}'");
    let group = describe_group(client, group_id, &doing)?;
    let committed = committed_offsets(client, group_id, &doing)?;
    if group.group_state.as_str() == DEAD_STATE && group.members.is_empty() && committed.is_empty() {
        // What the broker answers for a group it does not know.
        return Err(AdminError::broker(doing, ResponseError::GroupIdNotFound.code(), None));
    }
    let decodes = group.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
    let mut members = Table::new(&[
        ("MEMBER ID", Align::Left),
        ("CLIENT ID", Align::Left),
        ("HOST", Align::Left),
        ("ASSIGNMENT", Align::Left),
    ]);
    let mut partitions: BTreeMap<TopicPartition, PartitionLag> = BTreeMap::new();
    for member in &group.members {
        let assignment = if decodes { Some(decode_assignment(&member.member_assignment)) } else { None };
        if let Some(Ok(assigned)) = &assignment {
            for (topic, partition) in assigned {
                partitions.entry((topic.clone(), *partition)).or_default().member = Some(member.member_id.to_string());
            }
        }
        let assignment_cell = match assignment {
            Some(Ok(assigned)) => format_assignment(&assigned),
            Some(Err(reason)) => format!("(undecodable: {reason})"),
            None => format!("({} bytes of protocol type '{}')", member.member_assignment.len(), group.protocol_type),
        };
        members.row(vec![
            member.member_id.to_string(),
            member.client_id.to_string(),
            member.client_host.to_string(),
            assignment_cell,
        ]);
    }
    for (partition, offset) in committed {
        partitions.entry(partition).or_default().committed = Some(offset);
    }
    let keys: Vec<TopicPartition> = partitions.keys().cloned().collect();
    if !keys.is_empty() {
        for (key, end) in requests::list_offsets(client, &keys, LATEST_TIMESTAMP)? {
            if let Some(partition) = partitions.get_mut(&key) {
                partition.end = Some(end);
            }
        }
    }
    let total_lag: i64 = partitions.values().filter_map(PartitionLag::lag).sum();
    let or_dash = |text: &StrBytes| if text.is_empty() { "-".to_string() } else { text.to_string() };
    let head = [
        ("group", group_id.to_string()),
        ("state", group.group_state.to_string()),
        ("protocol type", or_dash(&group.protocol_type)),
        ("protocol", or_dash(&group.protocol_data)),
        ("members", group.members.len().to_string()),
        ("total lag", total_lag.to_string()),
    ];
    let text = format!("{}\n{}\n{}", properties(&head), members.render(), lag_table(&partitions).render());
    write_out(out, &text)
}

fn lag_table(partitions: &BTreeMap<TopicPartition, PartitionLag>) -> Table {
    let mut table = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITION", Align::Right),
        ("COMMITTED", Align::Right),
        ("END OFFSET", Align::Right),
        ("LAG", Align::Right),
        ("MEMBER ID", Align::Left),
    ]);
    let dash = || "-".to_string();
    for ((topic, partition), lag) in partitions {
        table.row(vec![
            topic.clone(),
            partition.to_string(),
            lag.committed.map_or_else(dash, |offset| offset.to_string()),
            match &lag.end {
                Some(Ok(end)) => end.to_string(),
                Some(Err(code)) => kafka_error_name(*code),
                None => dash(),
            },
            lag.lag().map_or_else(dash, |lag| lag.to_string()),
            lag.member.clone().unwrap_or_else(dash),
        ]);
    }
    table
}

fn describe_group(client: &mut Client, group_id: &str, doing: &str) -> Result<DescribedGroup, AdminError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id_of(group_id)]);
    let response = client.call(&request, DESCRIBE_GROUPS_VERSION)?;
    let group = response.groups.into_iter().next().ok_or_else(|| AdminError::Protocol {
        bootstrap: client.bootstrap().to_string(),
        reason: format!("{doing}: DescribeGroups answered without the group"),
    })?;
    if group.error_code != 0 {
        return Err(AdminError::broker(doing, group.error_code, None));
    }
    Ok(group)
}

/// The group's committed offsets, partitions without one left out.
fn committed_offsets(
    client: &mut Client,
    group_id: &str,
    doing: &str,
) -> Result<Vec<(TopicPartition, i64)>, AdminError> {
    let request = OffsetFetchRequest::default().with_group_id(group_id_of(group_id)).with_topics(None);
    let response = client.call(&request, OFFSET_FETCH_VERSION)?;
    if response.error_code != 0 {
        return Err(AdminError::broker(doing, response.error_code, None));
    }
    let mut committed = Vec::new();
    for topic in response.topics {
        for partition in topic.partitions {
            if partition.error_code != 0 {
                return Err(AdminError::broker(doing, partition.error_code, None));
            }
            if partition.committed_offset >= 0 {
                committed.push(((topic.name.0.to_string(), partition.partition_index), partition.committed_offset));
            }
        }
    }
    Ok(committed)
}

fn group_id_of(group_id: &str) -> GroupId {
    GroupId(StrBytes::from_string(group_id.to_string()))
}

/// Decodes a consumer's assignment (Kafka's ConsumerProtocolAssignment: a version, then topics
/// with their partitions, then user data) into (topic, partition) pairs, sorted. Empty bytes
/// are an empty assignment (a member between joining and syncing). A version newer than the
/// codec knows is read as the newest it knows: newer versions only add fields at the end.
fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buffer = bytes.clone();
    if buffer.remaining() < 2 {
        return Err(format!("{} bytes, too short for a version", bytes.len()));
    }
    let version = buffer.get_i16();
    if version < 0 {
        return Err(format!("version {version}"));
    }
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let assignment = ConsumerProtocolAssignment::decode(&mut buffer, version).map_err(|error| error.to_string())?;
    let mut assigned: Vec<TopicPartition> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|topic| topic.partitions.iter().map(|partition| (topic.topic.0.to_string(), *partition)))
        .collect();
    assigned.sort();
    assigned.dedup();
    Ok(assigned)
}

/// `orders[0,1,2] audit[0]`, topics by name; `-` when nothing is assigned.
fn format_assignment(assigned: &[TopicPartition]) -> String {
    if assigned.is_empty() {
        return "-".to_string();
    }
    let mut by_topic: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (topic, partition) in assigned {
        by_topic.entry(topic.as_str()).or_default().insert(*partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}[{}]", partitions.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::Encodable;

    fn encoded(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        );
        let mut buffer = bytes::BytesMut::new();
        buffer.put_i16(version);
        assignment.encode(&mut buffer, version).expect("encode an assignment");
        buffer.freeze()
    }

    #[test]
    fn an_assignment_decodes_to_sorted_topic_partitions() {
        let bytes = encoded(1, &[("orders", &[2, 0]), ("audit", &[5])]);
        let assigned = decode_assignment(&bytes).expect("decodes");
        assert_eq!(assigned, vec![("audit".to_string(), 5), ("orders".to_string(), 0), ("orders".to_string(), 2)]);
        assert_eq!(format_assignment(&assigned), "audit[5] orders[0,2]");
    }

    #[test]
    fn the_bytes_a_java_or_python_consumer_sends_decode() {
        // Version 0, one topic "t" with partitions 0 and 3, null user data: written by hand
        // as kafka-python's ConsumerProtocolMemberAssignment encodes it.
        let bytes = Bytes::from_static(&[
            0, 0, // version
            0, 0, 0, 1, // one topic
            0, 1, b't', // "t"
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, // partitions [0, 3]
            0xff, 0xff, 0xff, 0xff, // user data: null
        ]);
        assert_eq!(decode_assignment(&bytes), Ok(vec![("t".to_string(), 0), ("t".to_string(), 3)]));
    }

    #[test]
    fn a_newer_version_is_read_as_the_newest_known() {
        let mut bytes = encoded(3, &[("t", &[1])]).to_vec();
        bytes[..2].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(decode_assignment(&Bytes::from(bytes)), Ok(vec![("t".to_string(), 1)]));
    }

    #[test]
    fn empty_and_broken_assignments() {
        assert_eq!(decode_assignment(&Bytes::new()), Ok(Vec::new()));
        assert_eq!(format_assignment(&[]), "-");
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff])).is_err());
        let truncated = encoded(0, &[("orders", &[0, 1])]);
        assert!(decode_assignment(&truncated.slice(..truncated.len() - 3)).is_err());
    }

    #[test]
    fn lag_needs_both_offsets_and_never_goes_negative() {
        let lag = |committed, end| PartitionLag { committed, end, member: None }.lag();
        assert_eq!(lag(Some(3), Some(Ok(10))), Some(7));
        assert_eq!(lag(Some(12), Some(Ok(10))), Some(0));
        assert_eq!(lag(None, Some(Ok(10))), None);
        assert_eq!(lag(Some(3), Some(Err(3))), None);
        assert_eq!(lag(Some(3), None), None);
    }

    #[test]
    fn the_lag_table_shows_dashes_and_error_names() {
        let mut partitions = BTreeMap::new();
        partitions.insert(
            ("orders".to_string(), 0),
            PartitionLag { committed: Some(4), end: Some(Ok(10)), member: Some("m-1".into()) },
        );
        partitions.insert(("orders".to_string(), 1), PartitionLag { committed: None, end: Some(Ok(2)), member: None });
        partitions
            .insert(("gone".to_string(), 0), PartitionLag { committed: Some(1), end: Some(Err(3)), member: None });
        assert_eq!(
            lag_table(&partitions).render(),
            "TOPIC   PARTITION  COMMITTED                  END OFFSET  LAG  MEMBER ID\n\
             gone            0          1  UNKNOWN_TOPIC_OR_PARTITION    -  -\n\
             orders          0          4                          10    6  m-1\n\
             orders          1          -                           2    -  -\n"
        );
    }
}
