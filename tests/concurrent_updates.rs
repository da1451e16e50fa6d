//! Management API updates read a row, apply the fields given, and write the row back. Two at
//! once must each keep what the other changed: here another writer changes one field and
//! holds the row while the API updates another, and both changes must survive, on every
//! resource updated that way.

mod common;

use common::{while_held, Client, Db, Response, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

/// `admin`'s PATCH of `body` to `path` while `other` holds its change (`while_held`).
async fn patch_while_held(
    other: diesel::r2d2::PooledConnection<scimd::db::Manager>,
    admin: Client,
    path: String,
    body: Value,
) -> (bool, Response) {
    while_held(other, async move { admin.patch(&path, body).await }).await
}

/// What a held change and the API's update of another field leave behind.
fn assert_both_kept(waited: bool, updated: &Response, resource: &str, kept: (&str, Value)) {
    assert!(waited, "the update waits for the other writer");
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body[resource][kept.0], kept.1, "{}", updated.text);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_keeps_a_rename_made_during_an_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let acme = server.new_organization("acme").await;
    let id = acme.organization_id.clone();
    let other = server.begin_changing(&format!(
        "UPDATE organizations SET name = 'Acme Renamed' WHERE organization_id = '{id}'"
    ));
    let path = format!("/v1/organizations/{id}");
    let domains = json!({"email_allowed_domains": ["acme.io"]});
    let (waited, updated) = patch_while_held(other, admin.clone(), path.clone(), domains).await;
    let renamed = ("organization_name", json!("Acme Renamed"));
    assert_both_kept(waited, &updated, "organization", renamed);
    let organization = &admin.get(&path).await.body["organization"];
    assert_eq!(organization["organization_name"], "Acme Renamed");
    assert_eq!(organization["email_allowed_domains"], json!(["acme.io"]));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_scim_connection_keeps_a_rename_made_during_an_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let other = server.begin_changing(&format!(
        "UPDATE scim_connections SET display_name = 'Renamed' WHERE connection_id = '{}'",
        acme.connection_id
    ));
    let path = format!(
        "/v1/organizations/{}/scim-connections/{}",
        acme.organization_id, acme.connection_id
    );
    let provider = json!({"identity_provider": "okta"});
    let (waited, updated) = patch_while_held(other, server.admin(), path, provider).await;
    assert_both_kept(
        waited,
        &updated,
        "connection",
        ("display_name", json!("Renamed")),
    );
    assert_eq!(updated.body["connection"]["identity_provider"], "okta");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_role_keeps_a_description_changed_during_an_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let acme = server.new_organization("acme").await;
    let roles = format!("/v1/organizations/{}/roles", acme.organization_id);
    let created = admin
        .post(&roles, json!({"role_id": "billing", "description": "Pays"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let other = server.begin_changing(&format!(
        "UPDATE roles SET description = 'Pays invoices' \
         WHERE organization_id = '{}' AND role_id = 'billing'",
        acme.organization_id
    ));
    let permissions = json!({"permissions": [{"resource_id": "invoices", "actions": ["read"]}]});
    let path = format!("{roles}/billing");
    let (waited, updated) = patch_while_held(other, admin, path, permissions).await;
    let described = ("description", json!("Pays invoices"));
    assert_both_kept(waited, &updated, "role", described);
    assert_eq!(
        updated.body["role"]["permissions"],
        json!([{"resource_id": "invoices", "actions": ["read"]}])
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_webhook_keeps_a_new_url_set_during_an_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let acme = server.new_organization("acme").await;
    let created = admin
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/a", "organization_id": acme.organization_id}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["webhook"]["webhook_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = server.begin_changing(&format!(
        "UPDATE webhooks SET url = 'http://127.0.0.1:9/b' WHERE webhook_id = '{id}'"
    ));
    let types = json!({"event_types": ["member.*"]});
    let path = format!("/v1/webhooks/{id}");
    let (waited, updated) = patch_while_held(other, admin, path, types).await;
    let moved = ("url", json!("http://127.0.0.1:9/b"));
    assert_both_kept(waited, &updated, "webhook", moved);
    assert_eq!(updated.body["webhook"]["event_types"], json!(["member.*"]));
}
