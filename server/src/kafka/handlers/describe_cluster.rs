//! DescribeCluster: the cluster id, the controller and the brokers, as in Metadata (one broker,
//! this one, which is also the controller). What librdkafka's `DescribeCluster` admin call and
//! `kafka-cluster.sh cluster-id` ask; there is no authorizer, so no authorized operations are
//! reported. Asked for controllers (`endpoint_type` 2, for KRaft controller clients), the
//! broker answers UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker does.
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::metadata::{advertised, BROKER_ID, CLUSTER_ID};
use super::str_bytes;
use crate::kafka::registry::RequestContext;

/// `endpoint_type` for brokers (1) and for controllers (2).
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(
    context: &RequestContext,
    request: DescribeClusterRequest,
    _version: i16,
) -> Option<DescribeClusterResponse> {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(CLUSTER_ID))
        .with_controller_id(BrokerId(BROKER_ID));
    if request.endpoint_type != ENDPOINT_BROKERS {
        let error = ResponseError::UnsupportedEndpointType;
        return Some(
            response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes("this broker describes brokers only (endpoint type 1)")))
                .with_controller_id(BrokerId(-1)),
        );
    }
    let (host, port) = advertised(context);
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(BROKER_ID))
        .with_host(str_bytes(&host))
        .with_port(port);
    Some(response.with_brokers(vec![broker]))
}
