mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_has_built_in_roles_and_custom_ones_with_permissions(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let roles = format!("/v1/organizations/{}/roles", acme.organization_id);

    let listed = admin.get(&roles).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<&str> = listed.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "member"]);
    assert_eq!(listed.body["roles"][0]["built_in"], true);

    let created = admin
        .post(
            &roles,
            json!({"role_id": "billing", "description": "Pays", "permissions": [
                {"resource_id": "invoices", "actions": ["write", "read"]},
                {"resource_id": "invoices", "actions": ["read"]}
            ]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["role"]["permissions"],
        json!([{"resource_id": "invoices", "actions": ["read", "write"]}])
    );
    assert_eq!(
        admin
            .post(&roles, json!({"role_id": "billing"}))
            .await
            .status,
        409
    );

    let updated = admin
        .patch(
            &format!("{roles}/billing"),
            json!({"permissions": [{"resource_id": "*", "actions": ["*"]}]}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["role"]["description"], "Pays");
    assert_eq!(
        admin.get(&format!("{roles}/billing")).await.body,
        updated.body
    );

    for (body, error_type) in [
        (json!({"role_id": "Bad Id"}), "invalid_role_id"),
        (
            json!({"role_id": "x", "permissions": [{"resource_id": "", "actions": ["read"]}]}),
            "invalid_permissions",
        ),
        (
            json!({"role_id": "x", "permissions": [{"resource_id": "docs", "actions": []}]}),
            "invalid_permissions",
        ),
        (
            json!({"role_id": "x", "grants": []}),
            "invalid_request_body",
        ),
        (json!({"description": "no id"}), "missing_field"),
    ] {
        let refused = admin.post(&roles, body.clone()).await;
        assert_eq!(refused.status, 400, "{body}");
        assert_eq!(refused.body["error_type"], error_type, "{}", refused.text);
    }

    let built_in = admin.delete(&format!("{roles}/admin")).await;
    assert_eq!(built_in.status, 409);
    assert_eq!(built_in.body["error_type"], "built_in_role");
    assert_eq!(admin.delete(&format!("{roles}/billing")).await.status, 200);
    assert_eq!(admin.get(&format!("{roles}/billing")).await.status, 404);

    let events = server.event_types(&acme.organization_id);
    let role_events: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("role."))
        .collect();
    assert_eq!(
        role_events,
        ["role.created", "role.updated", "role.deleted"]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn roles_are_reachable_only_within_their_organization(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let admin = server.admin();
    admin
        .post(
            &format!("/v1/organizations/{}/roles", globex.organization_id),
            json!({"role_id": "secret"}),
        )
        .await;
    let scoped = server.client(Some(&server.jwt(&format!("org:{}", acme.organization_id))));
    let foreign = format!("/v1/organizations/{}/roles", globex.organization_id);
    assert_eq!(scoped.get(&foreign).await.status, 404);
    assert_eq!(scoped.get(&format!("{foreign}/secret")).await.status, 404);
    assert_eq!(
        scoped.delete(&format!("{foreign}/secret")).await.status,
        404
    );
    assert_eq!(
        admin
            .get(&format!(
                "/v1/organizations/{}/roles/secret",
                acme.organization_id
            ))
            .await
            .status,
        404
    );
    assert_eq!(
        scoped
            .post(
                &format!("/v1/organizations/{}/roles", acme.organization_id),
                json!({"role_id": "mine"})
            )
            .await
            .status,
        201
    );
}
