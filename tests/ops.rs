mod common;

use common::{Db, Options, TestServer};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[case::sqlite(Db::Sqlite, "sqlite")]
#[case::postgres(Db::Postgres, "postgres")]
#[actix_rt::test]
async fn health_and_readiness_answer_without_credentials(#[case] db: Db, #[case] backend: &str) {
    let server = TestServer::start(db).await;
    let anonymous = server.client(None);
    let health = anonymous.get("/healthz").await;
    assert_eq!(health.status, 200);
    let ready = anonymous.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, json!({"status": "ready", "database": backend}));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn every_response_carries_a_request_id_and_keeps_the_caller_s(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let anonymous = server.client(None);
    let generated = anonymous.get("/healthz").await;
    assert_eq!(generated.header("x-request-id").map(str::len), Some(36));
    let kept = anonymous
        .send("GET", "/healthz", None, &[("x-request-id", "trace-42")])
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-42"));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn unknown_endpoints_and_methods_answer_in_the_surface_s_error_shape(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();

    for (response, status) in [
        (admin.get("/nowhere").await, 404),
        (admin.get("/v1/nowhere").await, 404),
        (admin.delete("/v1/organizations").await, 405),
    ] {
        assert_eq!(response.status, status, "{}", response.text);
        assert_eq!(response.body["status_code"], status);
        assert!(response.body["error_type"].is_string(), "{}", response.text);
    }

    let scim = acme.scim();
    let not_allowed = scim.delete("/Users").await;
    assert_eq!(not_allowed.header("allow"), Some("GET, POST"));
    // The methods of the surface are shown to authenticated callers only, like its paths.
    let anonymous = server.client(None).delete("/scim/v2/Users").await;
    assert_eq!(anonymous.status, 401);
    for (response, status) in [(scim.get("/Nowhere").await, 404), (not_allowed, 405)] {
        assert_eq!(response.status, status, "{}", response.text);
        assert_eq!(
            response.header("content-type"),
            Some("application/scim+json")
        );
        assert_eq!(
            response.body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(response.body["status"], status.to_string());
    }
    let trailing_slash = scim.get("/Users/").await;
    assert_eq!(trailing_slash.status, 200, "{}", trailing_slash.text);
    let list = scim.get("/Users").await;
    assert_eq!(list.body["totalResults"], 0);
    assert_eq!(list.body["startIndex"], 1);
    assert_eq!(list.body["Resources"], json!([]));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_body_over_the_limit_is_a_413_that_says_the_limit(#[case] db: Db) {
    let options = Options {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let server = TestServer::start_with(db, options).await;
    let body = json!({"organization_name": "Acme", "organization_slug": "acme", "trusted_metadata": {"x": "y".repeat(2000)}});
    let response = server.admin().post("/v1/organizations", body).await;
    assert_eq!(response.status, 413, "{}", response.text);
    assert_eq!(response.body["error_type"], "payload_too_large");
    assert!(response.body["error_message"]
        .as_str()
        .unwrap()
        .contains("1024"));
    assert_eq!(server.count_rows("organizations"), 0);
}
