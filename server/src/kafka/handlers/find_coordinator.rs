//! FindCoordinator: this broker coordinates every group (on the context `routing::coordinator`
//! picks, which clients never see), so the answer is always this broker's address.
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::metadata::BROKER_ID;
use super::str_bytes;
use crate::kafka::registry::RequestContext;

pub async fn handle(
    context: &RequestContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> Option<FindCoordinatorResponse> {
    let listen = context.config.kafka_listen;
    let host = if listen.ip().is_unspecified() { "localhost".to_string() } else { listen.ip().to_string() };
    let port = i32::from(listen.port());
    if version < 4 {
        return Some(
            FindCoordinatorResponse::default()
                .with_node_id(BrokerId(BROKER_ID))
                .with_host(str_bytes(&host))
                .with_port(port),
        );
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(BROKER_ID))
                .with_host(str_bytes(&host))
                .with_port(port)
        })
        .collect();
    Some(FindCoordinatorResponse::default().with_coordinators(coordinators))
}
