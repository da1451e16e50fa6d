//! The SCIM protocol (RFC 7643/7644): resources, lists and errors. Nothing here knows HTTP
//! or diesel.

use serde::Serialize;
use serde_json::Value;

pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A ListResponse (RFC 7644 §3.4.2). Paging fields are integers, `startIndex` is 1-based;
/// in cursor paging (RFC 9865) there is no `startIndex`, `nextCursor` leads on and
/// `previousCursor` back.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    pub schemas: [&'static str; 1],
    #[serde(rename = "totalResults")]
    pub total_results: u64,
    #[serde(rename = "startIndex", skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(rename = "previousCursor", skip_serializing_if = "Option::is_none")]
    pub previous_cursor: Option<String>,
    #[serde(rename = "Resources")]
    pub resources: Vec<Value>,
}

impl ListResponse {
    pub fn new(
        resources: Vec<Value>,
        total_results: u64,
        start_index: Option<u64>,
        next_cursor: Option<String>,
        previous_cursor: Option<String>,
    ) -> Self {
        ListResponse {
            schemas: [LIST_RESPONSE_URN],
            total_results,
            start_index,
            items_per_page: resources.len() as u64,
            next_cursor,
            previous_cursor,
            resources,
        }
    }
}

pub mod bulk;
pub mod discovery;
pub mod filter;
pub mod list;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod sort;
