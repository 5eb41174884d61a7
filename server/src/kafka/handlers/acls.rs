//! DescribeAcls, CreateAcls, DeleteAcls: sluice has no authorizer, so each answers as a Kafka
//! broker without one does, SECURITY_DISABLED (54) with its reason, per request, creation or
//! filter. `kafka-acls.sh` and librdkafka's ACL calls then say that security is disabled,
//! instead of that the broker is too old for the API.
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::kafka::registry::RequestContext;

/// Kafka's reason when no authorizer is configured.
const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn security_disabled() -> (i16, Option<StrBytes>) {
    (ResponseError::SecurityDisabled.code(), Some(str_bytes(NO_AUTHORIZER)))
}

pub mod describe {
    use super::*;

    pub async fn handle(
        _context: &RequestContext,
        _request: DescribeAclsRequest,
        _version: i16,
    ) -> Option<DescribeAclsResponse> {
        let (code, message) = security_disabled();
        Some(DescribeAclsResponse::default().with_error_code(code).with_error_message(message))
    }
}

pub mod create {
    use super::*;

    pub async fn handle(
        _context: &RequestContext,
        request: CreateAclsRequest,
        _version: i16,
    ) -> Option<CreateAclsResponse> {
        let (code, message) = security_disabled();
        let results = request
            .creations
            .iter()
            .map(|_| AclCreationResult::default().with_error_code(code).with_error_message(message.clone()))
            .collect();
        Some(CreateAclsResponse::default().with_results(results))
    }
}

pub mod delete {
    use super::*;

    pub async fn handle(
        _context: &RequestContext,
        request: DeleteAclsRequest,
        _version: i16,
    ) -> Option<DeleteAclsResponse> {
        let (code, message) = security_disabled();
        let results = request
            .filters
            .iter()
            .map(|_| DeleteAclsFilterResult::default().with_error_code(code).with_error_message(message.clone()))
            .collect();
        Some(DeleteAclsResponse::default().with_filter_results(results))
    }
}
