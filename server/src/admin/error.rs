//! What can go wrong in an admin command, and the exit code each case gets: 1 when the broker
//! answered with a Kafka error, 2 for usage, connection and I/O problems.
use kafka_protocol::ResponseError;

/// Exit code when the broker answered with an error.
pub const EXIT_BROKER_ERROR: u8 = 1;
/// Exit code for usage errors and for a broker that cannot be reached or understood.
pub const EXIT_USAGE_OR_CONNECTION: u8 = 2;

#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// A bad argument or bad input (e.g. a stdin line over the size limit).
    Usage(String),
    /// No TCP connection to the broker.
    Connect { bootstrap: String, reason: String },
    /// The connection broke or timed out in the middle of a request.
    Connection { bootstrap: String, doing: String, reason: String },
    /// The peer answered something that is not a Kafka response.
    Protocol { bootstrap: String, reason: String },
    /// The broker answered with a Kafka error code.
    Broker { doing: String, code: i16, message: Option<String> },
    /// Writing the output failed (other than a closed pipe, which ends the command quietly).
    Output(std::io::Error),
}

impl AdminError {
    pub fn broker(doing: impl Into<String>, code: i16, message: Option<String>) -> Self {
        let message = message.filter(|message| !message.trim().is_empty());
        Self::Broker { doing: doing.into(), code, message }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Broker { .. } => EXIT_BROKER_ERROR,
            _ => EXIT_USAGE_OR_CONNECTION,
        }
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(reason) => write!(f, "{reason}"),
            Self::Connect { bootstrap, reason } => write!(f, "cannot connect to {bootstrap}: {reason}"),
            Self::Connection { bootstrap, doing, reason } => write!(f, "{doing} ({bootstrap}): {reason}"),
            Self::Protocol { bootstrap, reason } => {
                write!(f, "{bootstrap} did not answer like a Kafka broker: {reason}")
            }
            Self::Broker { doing, code, message } => {
                write!(f, "{doing}: {}: {}", kafka_error_name(*code), kafka_error_sentence(*code))?;
                match message {
                    Some(message) => write!(f, " The broker says: {message}"),
                    None => Ok(()),
                }
            }
            Self::Output(error) => write!(f, "cannot write the output: {error}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// Kafka's name of an error code, as its documentation and other tools print it
/// (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake_case(&format!("{error:?}")),
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`.
fn screaming_snake_case(camel: &str) -> String {
    let mut name = String::with_capacity(camel.len() + 8);
    for (index, character) in camel.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

/// One sentence on what an error code means for the person at the terminal.
pub fn kafka_error_sentence(code: i16) -> String {
    let sentence = match ResponseError::try_from_code(code) {
        None => "no error.",
        Some(ResponseError::UnknownTopicOrPartition) => "the broker has no such topic or partition.",
        Some(ResponseError::TopicAlreadyExists) => "a topic with this name already exists.",
        Some(ResponseError::InvalidTopicException) => "the topic name is not valid.",
        Some(ResponseError::InvalidPartitions) => "the partition count is not valid for this broker.",
        Some(ResponseError::InvalidReplicationFactor) => "the replication factor is not valid for this broker.",
        Some(ResponseError::InvalidConfig) => "a topic config is unknown or has a value the broker refuses.",
        Some(ResponseError::InvalidRequest) => "the broker refused the request as malformed.",
        Some(ResponseError::OffsetOutOfRange) => "the offset is not between the partition's start and end offsets.",
        Some(ResponseError::MessageTooLarge) => "a record batch is larger than the topic's max.message.bytes.",
        Some(ResponseError::CorruptMessage) => "the broker found a record batch corrupt.",
        Some(ResponseError::InvalidRequiredAcks) => "acks must be 0, 1 or all.",
        Some(ResponseError::KafkaStorageError) => "the broker could not write or read its disk.",
        Some(ResponseError::NotLeaderOrFollower) => "the partition is moving or being deleted; try again.",
        Some(ResponseError::RequestTimedOut) => "the broker did not finish the request in time.",
        Some(ResponseError::GroupIdNotFound) => "the broker knows no consumer group with this id.",
        Some(ResponseError::CoordinatorNotAvailable) => "the group coordinator is not available yet; try again.",
        Some(ResponseError::CoordinatorLoadInProgress) => "the group coordinator is still loading; try again.",
        Some(ResponseError::UnsupportedVersion) => "the broker does not serve this request at the version sent.",
        Some(ResponseError::PolicyViolation) => "the request breaks a policy the broker enforces.",
        Some(ResponseError::UnknownServerError) => "the broker failed unexpectedly; its log says why.",
        Some(_) => return format!("the broker refused the request (Kafka error code {code})."),
    };
    sentence.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(30_000), "UNKNOWN_ERROR_CODE_30000");
    }

    #[test]
    fn a_broker_error_names_the_code_and_says_what_it_means() {
        let error = AdminError::broker("cannot create topic 'demo'", 36, Some("topic demo exists".to_string()));
        assert_eq!(error.exit_code(), EXIT_BROKER_ERROR);
        assert_eq!(
            error.to_string(),
            "cannot create topic 'demo': TOPIC_ALREADY_EXISTS: a topic with this name already exists. \
             The broker says: topic demo exists"
        );
        let blank_message = AdminError::broker("x", 3, Some("  ".to_string()));
        assert!(!blank_message.to_string().contains("The broker says"), "{blank_message}");
        let rare = AdminError::broker("x", 52, None);
        assert!(rare.to_string().ends_with("(Kafka error code 52)."), "{rare}");
    }

    #[test]
    fn connection_problems_are_exit_code_2() {
        let error = AdminError::Connect { bootstrap: "127.0.0.1:1".into(), reason: "connection refused".into() };
        assert_eq!(error.exit_code(), EXIT_USAGE_OR_CONNECTION);
        assert_eq!(error.to_string(), "cannot connect to 127.0.0.1:1: connection refused");
    }
}
