//! ApiVersions: generated from the registry, never written by hand.
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::kafka::errors;
use crate::kafka::registry::RequestContext;
use crate::kafka::registry::SUPPORTED;

pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|support| {
            ApiVersion::default()
                .with_api_key(support.key as i16)
                .with_min_version(support.min_version)
                .with_max_version(support.max_version)
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

pub async fn handle(
    _context: &RequestContext,
    _request: ApiVersionsRequest,
    _version: i16,
) -> Option<ApiVersionsResponse> {
    Some(response(errors::NONE))
}
