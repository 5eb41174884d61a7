//! The one list of Kafka APIs Sluice serves, with their version ranges. ApiVersions is
//! generated from it, and dispatch goes through it: a handler not listed here does not exist.
use bytes::Bytes;

use super::response::ResponseBuffer;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::handlers;
use crate::runtime::ShardRef;

/// One supported API: its key and the versions we serve (within what the codec supports).
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

/// Why a frame could not be answered; the connection is closed.
#[derive(Debug)]
pub enum DispatchError {
    UnsupportedVersion { key: ApiKey, version: i16 },
    Decode(String),
    Encode(String),
}

impl std::fmt::Display for DispatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedVersion { key, version } => write!(f, "{key:?} v{version} is not supported"),
            Self::Decode(reason) => write!(f, "malformed request: {reason}"),
            Self::Encode(reason) => write!(f, "cannot encode response: {reason}"),
        }
    }
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, DispatchError> {
    T::decode(body, version).map_err(|error| DispatchError::Decode(error.to_string()))
}

/// Decodes a request and lets go of the frame: from here on only what the request kept of it
/// holds its memory (Produce's records, which a partition may keep: `handlers::produce`).
fn decode_frame<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, DispatchError> {
    decode(&mut body, version)
}

fn encode<T: Encodable + SharedRecords>(
    response: &T,
    version: i16,
    context: &RequestContext,
    out: &mut ResponseBuffer,
) -> Result<(), DispatchError> {
    out.send_files(context.file_ranges.take());
    response.share_records(out);
    response.encode(out, version).map_err(|error| DispatchError::Encode(error.to_string()))
}

/// Responses that carry stored record batches hand them to the buffer to be referenced rather
/// than copied.
pub trait SharedRecords {
    fn share_records(&self, _out: &mut ResponseBuffer) {}
}

impl SharedRecords for FetchResponse {
    fn share_records(&self, out: &mut ResponseBuffer) {
        for partition in self.responses.iter().flat_map(|topic| &topic.partitions) {
            if let Some(records) = &partition.records {
                out.share(records);
            }
        }
    }
}

macro_rules! no_shared_records {
    ($($response:ty),*) => { $(impl SharedRecords for $response {})* };
}

no_shared_records!(
    ProduceResponse,
    ListOffsetsResponse,
    MetadataResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    DeleteRecordsResponse,
    DescribeConfigsResponse,
    DescribeClusterResponse,
    DescribeAclsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    DescribeLogDirsResponse,
    CreatePartitionsResponse,
    AlterConfigsResponse,
    IncrementalAlterConfigsResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    ListGroupsResponse,
    DescribeGroupsResponse,
    DeleteGroupsResponse,
    InitProducerIdResponse,
    OffsetDeleteResponse
);

/// What a handler knows of the request besides its body: the shard it runs on (it derefs to
/// it, so handlers route as before) and who is asking.
pub struct RequestContext {
    pub shard: ShardRef,
    /// The request header's client id ("" when absent).
    pub client_id: String,
    /// The peer address as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
    /// The request frame's length (after its length prefix).
    pub frame_bytes: usize,
    /// Segment file ranges the response sends with sendfile, in the order their placeholders
    /// (`response::file_placeholder`) appear in it (Fetch).
    pub file_ranges: std::cell::RefCell<Vec<sluice_engine::partition::FileRange>>,
}

impl std::ops::Deref for RequestContext {
    type Target = ShardRef;
    fn deref(&self) -> &ShardRef {
        &self.shard
    }
}

/// Released by a handler once the part of its work whose order matters is done (Produce: the
/// appends), so the connection may start on its next request while this one finishes (waits
/// for fdatasync). Dropping it releases it too, so a handler that fails never stalls the
/// connection. Kafka clients rely on this: requests on one connection append in order.
pub struct OrderPoint(Option<futures::channel::oneshot::Sender<()>>);

impl OrderPoint {
    pub fn new() -> (Self, futures::channel::oneshot::Receiver<()>) {
        let (sender, receiver) = futures::channel::oneshot::channel();
        (Self(Some(sender)), receiver)
    }

    pub fn release(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(());
        }
    }
}

impl Drop for OrderPoint {
    fn drop(&mut self) {
        self.release();
    }
}

macro_rules! registry {
    (
        ordered { $($okey:ident => $omodule:ident ($orequest:ty) [$omin:literal ..= $omax:literal];)* }
        unordered { $($key:ident => $module:ident ($request:ty) [$min:literal ..= $max:literal];)* }
    ) => {
        /// Every API served, in ApiVersions order.
        pub const SUPPORTED: &[ApiSupport] = &[
            $(ApiSupport { key: ApiKey::$okey, min_version: $omin, max_version: $omax },)*
            $(ApiSupport { key: ApiKey::$key, min_version: $min, max_version: $max },)*
        ];

        /// Decodes a request body of `key` at `version` without running anything (what the
        /// fuzz target `kafka_request` drives).
        pub fn decode_body(key: ApiKey, version: i16, body: &mut Bytes) -> Result<(), DispatchError> {
            match key {
                $(ApiKey::$okey => decode::<$orequest>(body, version).map(drop),)*
                $(ApiKey::$key => decode::<$request>(body, version).map(drop),)*
                _ => Err(DispatchError::UnsupportedVersion { key, version }),
            }
        }

        /// Decodes the request body, runs its handler and encodes the response body into `out`.
        /// Returns false when the API sends no response (Produce with acks=0). Ordered handlers
        /// release `order` themselves; the others release it at once.
        pub async fn dispatch(
            shard: &RequestContext,
            key: ApiKey,
            version: i16,
            body: Bytes,
            out: &mut ResponseBuffer,
            mut order: OrderPoint,
        ) -> Result<bool, DispatchError> {
            match key {
                $(ApiKey::$okey => {
                    let request: $orequest = decode_frame(body, version)?;
                    match handlers::$omodule::handle(shard, request, version, order).await {
                        Some(response) => encode(&response, version, shard, out).map(|()| true),
                        None => Ok(false),
                    }
                })*
                $(ApiKey::$key => {
                    order.release();
                    let request: $request = decode_frame(body, version)?;
                    match handlers::$module::handle(shard, request, version).await {
                        Some(response) => encode(&response, version, shard, out).map(|()| true),
                        None => Ok(false),
                    }
                })*
                _ => Err(DispatchError::UnsupportedVersion { key, version }),
            }
        }
    };
}

registry! {
    ordered {
        Produce => produce (ProduceRequest) [3 ..= 9];
    }
    unordered {
        Fetch => fetch (FetchRequest) [4 ..= 12];
        ListOffsets => list_offsets (ListOffsetsRequest) [1 ..= 7];
        Metadata => metadata (MetadataRequest) [0 ..= 12];
        ApiVersions => api_versions (ApiVersionsRequest) [0 ..= 3];
        CreateTopics => create_topics (CreateTopicsRequest) [2 ..= 7];
        DeleteTopics => delete_topics (DeleteTopicsRequest) [1 ..= 6];
        DeleteRecords => delete_records (DeleteRecordsRequest) [0 ..= 2];
        DescribeConfigs => describe_configs (DescribeConfigsRequest) [1 ..= 4];
        DescribeCluster => describe_cluster (DescribeClusterRequest) [0 ..= 1];
        DescribeAcls => describe_acls (DescribeAclsRequest) [1 ..= 3];
        CreateAcls => create_acls (CreateAclsRequest) [1 ..= 3];
        DeleteAcls => delete_acls (DeleteAclsRequest) [1 ..= 3];
        DescribeLogDirs => describe_log_dirs (DescribeLogDirsRequest) [1 ..= 4];
        CreatePartitions => create_partitions (CreatePartitionsRequest) [0 ..= 3];
        AlterConfigs => alter_configs (AlterConfigsRequest) [0 ..= 2];
        IncrementalAlterConfigs => incremental_alter_configs (IncrementalAlterConfigsRequest) [0 ..= 1];
        FindCoordinator => find_coordinator (FindCoordinatorRequest) [0 ..= 4];
        JoinGroup => join_group (JoinGroupRequest) [0 ..= 7];
        SyncGroup => sync_group (SyncGroupRequest) [0 ..= 5];
        Heartbeat => heartbeat (HeartbeatRequest) [0 ..= 4];
        LeaveGroup => leave_group (LeaveGroupRequest) [0 ..= 4];
        OffsetCommit => offset_commit (OffsetCommitRequest) [2 ..= 8];
        OffsetFetch => offset_fetch (OffsetFetchRequest) [1 ..= 8];
        ListGroups => list_groups (ListGroupsRequest) [0 ..= 4];
        DescribeGroups => describe_groups (DescribeGroupsRequest) [0 ..= 5];
        DeleteGroups => delete_groups (DeleteGroupsRequest) [0 ..= 2];
        InitProducerId => init_producer_id (InitProducerIdRequest) [0 ..= 4];
        OffsetDelete => offset_delete (OffsetDeleteRequest) [0 ..= 0];
    }
}

/// The versions of `key` we serve, if any.
pub fn supported(key: ApiKey) -> Option<ApiSupport> {
    SUPPORTED.iter().find(|support| support.key == key).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_range_is_within_what_the_codec_supports() {
        for support in SUPPORTED {
            let codec = support.key.valid_versions();
            assert!(support.min_version <= support.max_version, "{:?}", support.key);
            assert!(support.min_version >= codec.min && support.max_version <= codec.max, "{:?}", support.key);
        }
    }
}
