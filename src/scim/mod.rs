//! The SCIM protocol (RFC 7643/7644): resources, lists and errors. Nothing here knows HTTP
//! or diesel.

use serde::Serialize;
use serde_json::Value;

pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A ListResponse (RFC 7644 §3.4.2). Paging fields are integers, `startIndex` is 1-based.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    pub schemas: [&'static str; 1],
    #[serde(rename = "totalResults")]
    pub total_results: u64,
    #[serde(rename = "startIndex")]
    pub start_index: u64,
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[serde(rename = "Resources")]
    pub resources: Vec<Value>,
}

impl ListResponse {
    pub fn new(resources: Vec<Value>, total_results: u64, start_index: u64) -> Self {
        ListResponse {
            schemas: [LIST_RESPONSE_URN],
            total_results,
            start_index,
            items_per_page: resources.len() as u64,
            resources,
        }
    }
}

pub mod discovery;
pub mod filter;
pub mod list;
pub mod patch;
pub mod resource;
pub mod schema;
