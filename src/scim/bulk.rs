//! Bulk requests (RFC 7644 §3.7): parsing, `bulkId` references and the order operations run
//! in. Running an operation is the caller's: this module knows nothing of HTTP or storage.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, ScimType};

pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Users,
    Groups,
}

/// One operation as the client sent it.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    pub bulk_id: Option<String>,
    /// The ETag the client expects (`version`), as an If-Match.
    pub version: Option<String>,
    pub collection: Collection,
    /// The resource id for PUT, PATCH and DELETE; may be a `bulkId:` reference.
    pub id: Option<String>,
    pub data: Value,
}

#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// Stop after this many errors (`failOnErrors`); `None`: run every operation.
    pub fail_on_errors: Option<u64>,
    pub operations: Vec<Operation>,
}

fn syntax(message: impl Into<String>) -> Error {
    Error::scim(ScimType::InvalidSyntax, message)
}

/// Reads a BulkRequest. Keys and methods are matched case-insensitively; more than
/// `max_operations` operations is 413 (RFC 7644 §3.7.4).
pub fn parse(body: &Value, max_operations: usize) -> Result<BulkRequest, Error> {
    let Value::Object(object) = body else {
        return Err(syntax(
            "a bulk request must be a JSON object with \"Operations\"",
        ));
    };
    let get = |object: &Map<String, Value>, key: &str| -> Option<Value> {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.clone())
    };
    let fail_on_errors = match get(object, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
        Some(other) => {
            return Err(Error::scim(
                ScimType::InvalidValue,
                format!("failOnErrors must be a positive integer, not {other}"),
            ))
        }
    };
    let Some(Value::Array(operations)) = get(object, "Operations") else {
        return Err(syntax("a bulk request needs \"Operations\", a list"));
    };
    if operations.len() > max_operations {
        return Err(Error::PayloadTooLarge(format!(
            "the bulk request has {} operations; the limit is {max_operations} \
             (ServiceProviderConfig bulk.maxOperations)",
            operations.len()
        )));
    }
    let mut parsed = Vec::with_capacity(operations.len());
    let mut bulk_ids = Vec::new();
    for (n, operation) in operations.iter().enumerate() {
        let at = |what: String| syntax(format!("Operations[{n}]: {what}"));
        let Value::Object(operation) = operation else {
            return Err(at("an operation must be an object".into()));
        };
        let text = |key: &str| -> Result<Option<String>, Error> {
            match get(operation, key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text)),
                Some(other) => Err(at(format!("{key} must be a string, not {other}"))),
            }
        };
        let method = match text("method")?
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("PATCH") => Method::Patch,
            Some("DELETE") => Method::Delete,
            Some(other) => {
                return Err(at(format!(
                    "method \"{other}\" is not POST, PUT, PATCH or DELETE"
                )))
            }
            None => return Err(at("method is required".into())),
        };
        let bulk_id = text("bulkId")?;
        if method == Method::Post && bulk_id.is_none() {
            return Err(at("a POST needs a bulkId (RFC 7644 §3.7)".into()));
        }
        if let Some(bulk_id) = &bulk_id {
            if bulk_ids.contains(bulk_id) {
                return Err(at(format!("bulkId \"{bulk_id}\" is used twice")));
            }
            bulk_ids.push(bulk_id.clone());
        }
        let path = text("path")?.ok_or_else(|| at("path is required".into()))?;
        let (collection, id) = parse_path(&path).ok_or_else(|| {
            Error::scim(
                ScimType::InvalidPath,
                format!("Operations[{n}]: path \"{path}\" is not /Users, /Groups, /Users/{{id}} or /Groups/{{id}}"),
            )
        })?;
        match (method, &id) {
            (Method::Post, Some(_)) => {
                return Err(at(format!("a POST goes to /Users or /Groups, not {path}")))
            }
            (Method::Put | Method::Patch | Method::Delete, None) => {
                return Err(at(format!(
                    "a {} needs a resource: {path}/{{id}}",
                    method.as_str()
                )))
            }
            _ => {}
        }
        let data = get(operation, "data").unwrap_or(Value::Null);
        if matches!(method, Method::Post | Method::Put | Method::Patch) && !data.is_object() {
            return Err(at(format!("a {} needs data, an object", method.as_str())));
        }
        parsed.push(Operation {
            method,
            bulk_id,
            version: text("version")?,
            collection,
            id,
            data,
        });
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations: parsed,
    })
}

fn parse_path(path: &str) -> Option<(Collection, Option<String>)> {
    let mut segments = path.trim().trim_start_matches('/').split('/');
    let collection = match segments.next()? {
        name if name.eq_ignore_ascii_case("Users") => Collection::Users,
        name if name.eq_ignore_ascii_case("Groups") => Collection::Groups,
        _ => return None,
    };
    let id = match segments.next() {
        None | Some("") => None,
        Some(id) => Some(id.to_string()),
    };
    segments.next().is_none().then_some((collection, id))
}

/// The `bulkId:` references an operation makes, in its path and anywhere in its data.
pub fn references(operation: &Operation) -> Vec<String> {
    fn collect(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::String(text) => {
                if let Some(bulk_id) = text.strip_prefix(BULK_ID_PREFIX) {
                    found.push(bulk_id.to_string());
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
            Value::Object(members) => members.values().for_each(|item| collect(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Some(id) = &operation.id {
        collect(&Value::String(id.clone()), &mut found);
    }
    collect(&operation.data, &mut found);
    found
}

/// The operation with every `bulkId:` reference replaced by the id it created.
pub fn resolve(operation: &Operation, created: &HashMap<String, String>) -> Operation {
    fn replace(value: &Value, created: &HashMap<String, String>) -> Value {
        match value {
            Value::String(text) => match text.strip_prefix(BULK_ID_PREFIX) {
                Some(bulk_id) => created
                    .get(bulk_id)
                    .map_or_else(|| value.clone(), |id| Value::String(id.clone())),
                None => value.clone(),
            },
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| replace(i, created)).collect())
            }
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, item)| (key.clone(), replace(item, created)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    Operation {
        id: operation
            .id
            .as_ref()
            .map(|id| match replace(&Value::String(id.clone()), created) {
                Value::String(id) => id,
                _ => id.clone(),
            }),
        data: replace(&operation.data, created),
        ..operation.clone()
    }
}

/// The order to run operations in: as sent, except that an operation waits for the POSTs
/// whose bulkIds it references (RFC 7644 §3.7.2: a group may name users created later in the
/// request). Operations caught in a cycle keep their place; their references fail then.
pub fn order(request: &BulkRequest) -> Vec<usize> {
    let posted: HashMap<&str, usize> = request
        .operations
        .iter()
        .enumerate()
        .filter_map(|(n, op)| op.bulk_id.as_deref().map(|id| (id, n)))
        .collect();
    let references: Vec<Vec<String>> = request.operations.iter().map(references).collect();
    let mut done = vec![false; request.operations.len()];
    let mut order = Vec::with_capacity(request.operations.len());
    // Each step runs the first operation, in the order sent, whose references are ready.
    while order.len() < request.operations.len() {
        let ready = (0..request.operations.len()).find(|&n| {
            !done[n]
                && references[n].iter().all(|bulk_id| {
                    posted
                        .get(bulk_id.as_str())
                        .is_none_or(|&other| other == n || done[other])
                })
        });
        match ready {
            Some(n) => {
                done[n] = true;
                order.push(n);
            }
            None => {
                // A cycle: run what is left as sent; unresolved references fail one by one.
                order.extend((0..request.operations.len()).filter(|&n| !done[n]));
            }
        }
    }
    order
}

/// One operation's outcome in the BulkResponse.
#[derive(Debug, Clone, Serialize)]
pub struct OperationResult {
    pub method: &'static str,
    #[serde(rename = "bulkId", skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The HTTP status, as a string (RFC 7644 §3.7.3).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(operations: Value) -> BulkRequest {
        parse(
            &json!({"schemas": [BULK_REQUEST_URN], "Operations": operations}),
            100,
        )
        .unwrap()
    }

    #[test]
    fn a_group_waits_for_the_users_it_references() {
        let bulk = request(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "x",
             "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
            {"method": "post", "path": "/Users", "bulkId": "u1", "data": {"userName": "a"}},
            {"method": "POST", "path": "/Users/", "bulkId": "u2", "data": {"userName": "b"}},
            {"method": "DELETE", "path": "/Users/bulkId:u1"},
        ]));
        assert_eq!(order(&bulk), [1, 2, 0, 3]);
        assert_eq!(references(&bulk.operations[3]), ["u1"]);
        let created: HashMap<String, String> = [("u1".to_string(), "member-1".to_string())]
            .into_iter()
            .collect();
        let resolved = resolve(&bulk.operations[0], &created);
        assert_eq!(resolved.data["members"][0]["value"], "member-1");
        assert_eq!(resolved.data["members"][1]["value"], "bulkId:u2");
        assert_eq!(
            resolve(&bulk.operations[3], &created).id.as_deref(),
            Some("member-1")
        );
    }

    #[test]
    fn a_cycle_keeps_the_order_sent() {
        let bulk = request(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {"members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"members": [{"value": "bulkId:a"}]}},
        ]));
        assert_eq!(order(&bulk), [0, 1]);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let bad = |operations: Value| {
            parse(&json!({"Operations": operations}), 2)
                .err()
                .unwrap_or_else(|| panic!("accepted {operations}"))
        };
        bad(json!([{"method": "POST", "path": "/Users", "data": {}}]));
        bad(json!([{"method": "GET", "path": "/Users"}]));
        bad(json!([{"method": "POST", "path": "/Users/x", "bulkId": "a", "data": {}}]));
        bad(json!([{"method": "DELETE", "path": "/Users"}]));
        bad(json!([{"method": "PUT", "path": "/Users/x"}]));
        bad(json!([{"method": "DELETE", "path": "/Widgets/x"}]));
        bad(json!([
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}}
        ]));
        let too_many = bad(json!([{}, {}, {}]));
        assert!(matches!(too_many, Error::PayloadTooLarge(_)));
        assert!(parse(&json!({"Operations": [], "failOnErrors": 0}), 2).is_err());
    }
}
