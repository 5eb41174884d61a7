//! InitProducerId: idempotent producers get a producer id from the metadata context (persisted
//! in the manifest, never reused). Transactions are not supported.
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::errors::KafkaError;
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::{ShardRequest, ShardResponse};
use crate::runtime::routing::METADATA_SHARD;

const TRANSACTIONS_UNSUPPORTED: i16 = kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code();

pub async fn handle(
    context: &RequestContext,
    request: InitProducerIdRequest,
    _version: i16,
) -> Option<InitProducerIdResponse> {
    if request.transactional_id.as_ref().is_some_and(|id| !id.0.is_empty()) {
        return Some(
            InitProducerIdResponse::default()
                .with_error_code(TRANSACTIONS_UNSUPPORTED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
    }
    // KIP-360: a producer that already has an id asks for its epoch to be bumped.
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        let epoch = request.producer_epoch.checked_add(1);
        if let Some(epoch) = epoch {
            return Some(
                InitProducerIdResponse::default().with_producer_id(request.producer_id).with_producer_epoch(epoch),
            );
        }
    }
    match context.call(METADATA_SHARD, ShardRequest::AllocateProducerId).await {
        ShardResponse::ProducerId(Ok(id)) => {
            Some(InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0))
        }
        ShardResponse::ProducerId(Err(error)) => Some(
            InitProducerIdResponse::default()
                .with_error_code(KafkaError::from(&error).code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        _ => unreachable!("AllocateProducerId answers with ProducerId"),
    }
}
