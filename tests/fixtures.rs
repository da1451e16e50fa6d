//! Replays the IdP request sequences in `scim-fixtures/` (format: scim-fixtures/README.md)
//! against the real server, each on a fresh organization and connection, on both databases.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::Value;

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn idp_sequences_replay_as_recorded(
    #[case] db: Db,
    #[values(
        "okta-user-lifecycle",
        "entra-user-lifecycle",
        "quirks-users",
        "okta-group-push",
        "entra-group-provisioning"
    )]
    fixture: &str,
) {
    let path = format!(
        "{}/scim-fixtures/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let sequence: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("fixture").await;
    let base = format!("{}/scim/v2", server.base);
    let mut variables = HashMap::from([("base".to_string(), base.clone())]);

    for (index, step) in sequence["steps"].as_array().unwrap().iter().enumerate() {
        let name = format!(
            "{fixture} step {index} ({})",
            step["name"].as_str().unwrap_or("")
        );
        let request = &step["request"];
        let expect = &step["expect"];
        let method = request["method"].as_str().unwrap();
        let target = format!(
            "{base}{}",
            substitute_text(request["path"].as_str().unwrap(), &variables)
        );

        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let mut outgoing = client
            .request(
                actix_web::http::Method::from_bytes(method.as_bytes()).unwrap(),
                target.as_str(),
            )
            .insert_header(("Authorization", format!("Bearer {}", tenant.token)));
        if let Some(headers) = request["headers"].as_object() {
            for (header, value) in headers {
                outgoing = outgoing.insert_header((
                    header.as_str(),
                    substitute_text(value.as_str().unwrap(), &variables),
                ));
            }
        }
        let body = match (&request["raw_body"], &request["body"]) {
            (Value::String(raw), _) => Some(raw.clone().into_bytes()),
            (_, Value::Null) => None,
            (_, body) => Some(substitute(body, &variables).to_string().into_bytes()),
        };
        let mut response = match body {
            Some(body) => outgoing.send_body(body).await,
            None => outgoing.send().await,
        }
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        let bytes = response.body().await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

        let status = expect["status"].as_u64().unwrap();
        assert_eq!(
            u64::from(response.status().as_u16()),
            status,
            "{name}: {text}"
        );
        if let Some(captures) = expect["capture"].as_object() {
            for (variable, pointer) in captures {
                let value = body
                    .pointer(pointer.as_str().unwrap())
                    .unwrap_or_else(|| panic!("{name}: nothing at {pointer} to capture in {text}"));
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                variables.insert(variable.clone(), value);
            }
        }
        if !expect["body"].is_null() {
            let expected = substitute(&expect["body"], &variables);
            if let Err(mismatch) = subset(&expected, &body, "") {
                panic!("{name}: {mismatch}\nexpected (subset): {expected}\nactual: {text}");
            }
        }
        for pointer in expect["absent"].as_array().into_iter().flatten() {
            let pointer = pointer.as_str().unwrap();
            assert!(
                body.pointer(pointer).is_none(),
                "{name}: {pointer} should be absent in {text}"
            );
        }
        if let Some(headers) = expect["headers"].as_object() {
            for (header, value) in headers {
                let actual = response
                    .headers()
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok());
                assert_eq!(
                    actual,
                    Some(substitute_text(value.as_str().unwrap(), &variables).as_str()),
                    "{name}: header {header}"
                );
            }
        }
    }
}

fn substitute_text(text: &str, variables: &HashMap<String, String>) -> String {
    variables
        .iter()
        .fold(text.to_string(), |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
}

fn substitute(value: &Value, variables: &HashMap<String, String>) -> Value {
    match value {
        Value::String(text) => Value::String(substitute_text(text, variables)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute(item, variables))
                .collect(),
        ),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| (key.clone(), substitute(value, variables)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every key of `expected` is in `actual` with a matching value; lists have the same length
/// and match element by element.
fn subset(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let Some(found) = actual.get(key) else {
                    return Err(format!("{at}/{key} is missing"));
                };
                subset(value, found, &format!("{at}/{key}"))?;
            }
            Ok(())
        }
        (Value::Array(expected), Value::Array(actual)) => {
            if expected.len() != actual.len() {
                return Err(format!(
                    "{at} has {} elements, expected {}",
                    actual.len(),
                    expected.len()
                ));
            }
            for (index, (expected, actual)) in expected.iter().zip(actual).enumerate() {
                subset(expected, actual, &format!("{at}/{index}"))?;
            }
            Ok(())
        }
        (expected, actual) if expected == actual => Ok(()),
        (expected, actual) => Err(format!("{at} is {actual}, expected {expected}")),
    }
}
