mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_token_is_shown_once_and_never_again(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let org = &acme.organization_id;

    assert!(acme.token.starts_with("scimd_"));
    assert_eq!(acme.token.len(), 6 + 64);
    let one = admin
        .get(&format!(
            "/v1/organizations/{org}/scim-connections/{}",
            acme.connection_id
        ))
        .await;
    let all = admin
        .get(&format!("/v1/organizations/{org}/scim-connections"))
        .await;
    for response in [&one, &all] {
        assert_eq!(response.status, 200, "{}", response.text);
        assert!(
            !response.text.contains(&acme.token[6..]),
            "the token leaked: {}",
            response.text
        );
    }
    let connection = &one.body["connection"];
    assert_eq!(
        connection["bearer_token_last_four"],
        acme.token[acme.token.len() - 4..]
    );
    assert_eq!(connection["identity_provider"], "okta");
    assert_eq!(connection["display_name"], "Okta");
    assert_eq!(connection["base_url"], format!("{}/scim/v2", server.base));
    assert_eq!(all.body["connections"][0], *connection);

    let events = server.events(org);
    assert_eq!(events[1].1, "scim_connection.created");
    assert!(
        !events[1].2.to_string().contains(&acme.token[6..]),
        "the event carries the token"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn rotation_has_two_live_tokens_until_it_is_completed_or_cancelled(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let connection = format!(
        "/v1/organizations/{}/scim-connections/{}",
        acme.organization_id, acme.connection_id
    );
    let old = acme.scim();

    let nothing_to_complete = admin
        .post(&format!("{connection}/rotate/complete"), json!({}))
        .await;
    assert_eq!(nothing_to_complete.status, 409);
    assert_eq!(nothing_to_complete.body["error_type"], "no_token_rotation");

    let started = admin
        .post(&format!("{connection}/rotate/start"), json!({}))
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    let next_token = started.body["next_bearer_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        started.body["connection"]["next_bearer_token_last_four"],
        next_token[next_token.len() - 4..]
    );
    let new = old.with_bearer(&next_token);
    assert_eq!(old.get("/Users").await.status, 200);
    assert_eq!(new.get("/Users").await.status, 200);

    let twice = admin
        .post(&format!("{connection}/rotate/start"), json!({}))
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.body["error_type"], "token_rotation_in_progress");

    let completed = admin
        .post(&format!("{connection}/rotate/complete"), json!({}))
        .await;
    assert_eq!(completed.status, 200, "{}", completed.text);
    assert_eq!(
        completed.body["connection"]["next_bearer_token_last_four"],
        json!(null)
    );
    assert_eq!(
        completed.body["connection"]["bearer_token_last_four"],
        next_token[next_token.len() - 4..]
    );
    assert_eq!(
        old.get("/Users").await.status,
        401,
        "the old token dies at once"
    );
    assert_eq!(new.get("/Users").await.status, 200);

    let restarted = admin
        .post(&format!("{connection}/rotate/start"), json!({}))
        .await;
    let abandoned = old.with_bearer(restarted.body["next_bearer_token"].as_str().unwrap());
    assert_eq!(abandoned.get("/Users").await.status, 200);
    let cancelled = admin
        .post(&format!("{connection}/rotate/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(
        abandoned.get("/Users").await.status,
        401,
        "the cancelled token dies at once"
    );
    assert_eq!(new.get("/Users").await.status, 200);

    assert_eq!(
        server.event_types(&acme.organization_id)[2..],
        [
            "scim_connection.token_rotation_started",
            "scim_connection.token_rotation_completed",
            "scim_connection.token_rotation_started",
            "scim_connection.token_rotation_cancelled",
        ]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_deleted_connection_s_token_stops_working_at_once(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let idp = acme.scim();
    assert_eq!(idp.get("/Users").await.status, 200);

    let path = format!(
        "/v1/organizations/{}/scim-connections/{}",
        acme.organization_id, acme.connection_id
    );
    assert_eq!(server.admin().delete(&path).await.status, 200);
    assert_eq!(idp.get("/Users").await.status, 401);
    assert_eq!(server.admin().get(&path).await.status, 404);
    assert_eq!(server.admin().delete(&path).await.status, 404);
    assert_eq!(server.count_rows("scim_tokens"), 0);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn connections_are_renamed_and_bad_fields_are_refused(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let path = format!(
        "/v1/organizations/{}/scim-connections/{}",
        acme.organization_id, acme.connection_id
    );

    let renamed = admin
        .patch(
            &path,
            json!({"display_name": "Entra (contractors)", "identity_provider": "microsoft-entra"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(
        renamed.body["connection"]["display_name"],
        "Entra (contractors)"
    );
    assert_eq!(
        renamed.body["connection"]["identity_provider"],
        "microsoft-entra"
    );
    let (_, kind, _, previous) = server.events(&acme.organization_id).pop().unwrap();
    assert_eq!(kind, "scim_connection.updated");
    assert_eq!(
        previous,
        Some(json!({"display_name": "Okta", "identity_provider": "okta"}))
    );

    for (body, mentions) in [
        (json!({"identity_provider": "azure"}), "identity_provider"),
        (json!({"display_name": ""}), "display_name"),
        (
            json!({"bearer_token": "mine"}),
            "unknown field `bearer_token`",
        ),
    ] {
        let refused = admin.patch(&path, body.clone()).await;
        assert_eq!(refused.status, 400, "{body}");
        assert!(
            refused.body["error_message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{}",
            refused.text
        );
    }
    let create_refused = admin
        .post(
            &format!(
                "/v1/organizations/{}/scim-connections",
                acme.organization_id
            ),
            json!({"identity_provider": "okta", "display_name": "x".repeat(129)}),
        )
        .await;
    assert_eq!(create_refused.status, 400);
    assert_eq!(server.count_rows("scim_connections"), 1);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_connection_is_reachable_only_under_its_own_organization(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let admin = server.admin();
    let crossed = format!(
        "/v1/organizations/{}/scim-connections/{}",
        globex.organization_id, acme.connection_id
    );

    assert_eq!(admin.get(&crossed).await.status, 404);
    assert_eq!(
        admin
            .patch(&crossed, json!({"display_name": "x"}))
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .post(&format!("{crossed}/rotate/start"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(admin.delete(&crossed).await.status, 404);
    assert_eq!(acme.scim().get("/Users").await.status, 200);
    let listed = admin
        .get(&format!(
            "/v1/organizations/{}/scim-connections",
            globex.organization_id
        ))
        .await;
    assert!(!listed.text.contains(&acme.connection_id));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_may_have_several_connections_each_with_its_own_token(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let second = server
        .admin()
        .post(
            &format!(
                "/v1/organizations/{}/scim-connections",
                acme.organization_id
            ),
            json!({"identity_provider": "microsoft-entra", "display_name": "Entra (contractors)"}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let token = second.body["bearer_token"].as_str().unwrap();
    assert_ne!(token, acme.token);
    assert_eq!(
        acme.scim().with_bearer(token).get("/Users").await.status,
        200
    );
    let listed = server
        .admin()
        .get(&format!(
            "/v1/organizations/{}/scim-connections",
            acme.organization_id
        ))
        .await;
    assert_eq!(listed.body["connections"].as_array().unwrap().len(), 2);
}
