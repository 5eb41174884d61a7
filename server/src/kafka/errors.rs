//! Every mapping from a Sluice error to a Kafka error code, in one place.
use kafka_protocol::ResponseError;
use sluice_engine::group::state_machine::GroupError;
use sluice_engine::partition::producers::ProducerError;
use sluice_engine::partition::PartitionError;
use sluice_engine::record::batch::BatchError;

use crate::metadata::TopicChangeError;
use crate::runtime::mesh::ShardError;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
pub const INVALID_TOPIC: i16 = ResponseError::InvalidTopicException.code();
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();

/// Kafka's code for a consumer group error.
pub fn group_error_code(error: GroupError) -> i16 {
    match error {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId.code(),
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration.code(),
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress.code(),
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol.code(),
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired.code(),
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId.code(),
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout.code(),
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound.code(),
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup.code(),
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached.code(),
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic.code(),
        #[allow(unreachable_patterns)]
        _ => UNKNOWN_SERVER_ERROR,
    }
}

pub fn optional_group_error_code(error: Option<GroupError>) -> i16 {
    error.map_or(NONE, group_error_code)
}

/// A Kafka error code with the message that goes with it where the response has room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: String,
}

impl KafkaError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<&ShardError> for KafkaError {
    fn from(error: &ShardError) -> Self {
        let code = match error {
            ShardError::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
            ShardError::Partition(PartitionError::InvalidBatch(BatchError::TooLarge { .. })) => MESSAGE_TOO_LARGE,
            ShardError::Partition(PartitionError::InvalidBatch(_)) => CORRUPT_MESSAGE,
            ShardError::Partition(PartitionError::Producer(ProducerError::OutOfOrderSequence { .. })) => {
                ResponseError::OutOfOrderSequenceNumber.code()
            }
            ShardError::Partition(PartitionError::Producer(ProducerError::InvalidProducerEpoch { .. })) => {
                ResponseError::InvalidProducerEpoch.code()
            }
            ShardError::Partition(PartitionError::OffsetOutOfRange { .. }) => OFFSET_OUT_OF_RANGE,
            ShardError::Partition(PartitionError::Storage { .. }) => KAFKA_STORAGE_ERROR,
            // Being deleted or stopping: the client should refresh metadata and retry.
            ShardError::Partition(PartitionError::Closed) => NOT_LEADER_OR_FOLLOWER,
            ShardError::Partition(_) => UNKNOWN_SERVER_ERROR,
        };
        Self::new(code, error.to_string())
    }
}

impl From<&TopicChangeError> for KafkaError {
    fn from(error: &TopicChangeError) -> Self {
        let code = match error {
            TopicChangeError::AlreadyExists => TOPIC_ALREADY_EXISTS,
            TopicChangeError::UnknownTopic => UNKNOWN_TOPIC_OR_PARTITION,
            TopicChangeError::InvalidName(_) => INVALID_TOPIC,
            TopicChangeError::InvalidPartitions(_) => INVALID_PARTITIONS,
            TopicChangeError::InvalidReplicationFactor(_) => INVALID_REPLICATION_FACTOR,
            TopicChangeError::InvalidConfig(_) => INVALID_CONFIG,
            TopicChangeError::Storage(_) => KAFKA_STORAGE_ERROR,
        };
        Self::new(code, error.to_string())
    }
}
