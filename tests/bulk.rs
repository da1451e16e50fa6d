//! `POST /Bulk` (RFC 7644 §3.7) on both databases: bulkId references in any order, per
//! operation results, failOnErrors, versions, limits and tenancy.

mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn bulk_runs_each_operation_and_resolves_bulk_ids(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let scim = tenant.scim();
    // The group comes first and names users created later in the request (RFC 7644 §3.7.2).
    let response = scim
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Groups", "bulkId": "team",
                 "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                          "displayName": "Team", "members": [{"value": "bulkId:ada"}, {"value": "bulkId:bob"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "ada", "data": user("ada@acme.test")},
                {"method": "POST", "path": "/Users", "bulkId": "bob", "data": user("bob@acme.test")},
                {"method": "PATCH", "path": "/Users/bulkId:bob", "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]}},
                {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("ADA@acme.test")},
                {"method": "DELETE", "path": "/Users/member-nope"},
            ]}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.header("content-type"),
        Some("application/scim+json")
    );
    assert_eq!(
        response.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let results = response.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "201", "200", "409", "404"]);
    assert_eq!(results[0]["bulkId"], "team");
    assert_eq!(results[0]["method"], "POST");
    assert!(results[1]["location"]
        .as_str()
        .unwrap()
        .contains("/scim/v2/Users/member-"));
    assert_eq!(results[3]["version"], "W/\"2\"");
    assert_eq!(results[4]["response"]["scimType"], "uniqueness");
    assert_eq!(results[5]["response"]["status"], "404");

    let group_id = results[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let group = scim.get(&format!("/Groups/{group_id}")).await;
    let mut members: Vec<&str> = group.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort();
    let mut created: Vec<&str> = results[1..3]
        .iter()
        .map(|r| r["location"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    created.sort();
    assert_eq!(members, created);
    let bob = scim
        .get(
            results[2]["location"]
                .as_str()
                .unwrap()
                .split("/scim/v2")
                .nth(1)
                .unwrap(),
        )
        .await;
    assert_eq!(bob.body["active"], false);
    // Each operation wrote its own events, as single requests do.
    let types = server.event_types(&tenant.organization_id);
    assert_eq!(types.iter().filter(|t| *t == "member.created").count(), 2);
    assert!(types.contains(&"member.deactivated".to_string()));
    assert!(types.contains(&"group.members_added".to_string()));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn bulk_stops_after_fail_on_errors_and_checks_versions(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let scim = tenant.scim();
    let ada = scim.post("/Users", user("ada@acme.test")).await;
    let id = ada.body["id"].as_str().unwrap().to_string();

    let response = scim
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
                {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"7\"", "data": user("ada@acme.test")},
                {"method": "POST", "path": "/Users", "bulkId": "never", "data": user("never@acme.test")},
            ]}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let results = response.body["Operations"].as_array().unwrap();
    assert_eq!(
        results.len(),
        1,
        "failOnErrors 1 stops after the first failure"
    );
    assert_eq!(results[0]["status"], "412");
    assert_eq!(
        scim.get("/Users?filter=userName+eq+%22never@acme.test%22")
            .await
            .body["totalResults"],
        0
    );

    // A reference to a POST that failed fails too; the right version passes.
    let response = scim
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "Operations": [
                {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"1\"",
                 "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@acme.test", "displayName": "Ada"}},
                {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}},
                {"method": "DELETE", "path": "/Users/bulkId:bad"},
            ]}),
        )
        .await;
    let results = response.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["200", "400", "400"]);
    assert!(results[2]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("bulkId:bad"));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn bulk_requests_are_bounded_and_tenant_scoped(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let ours = server.new_organization("ours").await;
    let theirs = server.new_organization("theirs").await;
    let their_user = theirs.scim().post("/Users", user("x@theirs.test")).await;
    let their_id = their_user.body["id"].as_str().unwrap();

    let operations: Vec<Value> = (0..1001)
        .map(|n| json!({"method": "DELETE", "path": format!("/Users/u{n}")}))
        .collect();
    let too_many = ours
        .scim()
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "Operations": operations}),
        )
        .await;
    assert_eq!(too_many.status, 413, "{}", too_many.text);
    for malformed in [
        json!([]),
        json!({"Operations": "x"}),
        json!({"Operations": [{"method": "GET", "path": "/Users"}]}),
    ] {
        let refused = ours.scim().post("/Bulk", malformed.clone()).await;
        assert_eq!(refused.status, 400, "{malformed}: {}", refused.text);
    }
    // Another organization's user is not found, exactly like an unknown one, and stays.
    let response = ours
        .scim()
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "Operations": [
                {"method": "DELETE", "path": format!("/Users/{their_id}")},
                {"method": "PATCH", "path": format!("/Users/{their_id}"), "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]}},
            ]}),
        )
        .await;
    let statuses: Vec<&str> = response.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["404", "404"]);
    let still = theirs.scim().get(&format!("/Users/{their_id}")).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body.get("active"), None);
}
