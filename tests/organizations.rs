mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::json;

fn acme() -> serde_json::Value {
    json!({
        "organization_name": "Acme",
        "organization_slug": "acme",
        "email_allowed_domains": ["Acme.com", "acme.co.uk"],
        "email_jit_provisioning": "RESTRICTED",
        "trusted_metadata": {"plan": "enterprise"}
    })
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_is_created_read_by_id_and_slug_updated_and_deleted(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();

    let created = admin.post("/v1/organizations", acme()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let organization = &created.body["organization"];
    let id = organization["organization_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("organization-"));
    assert_eq!(
        organization["email_allowed_domains"],
        json!(["acme.com", "acme.co.uk"])
    );
    assert_eq!(organization["email_invites"], "ALL_ALLOWED");
    assert_eq!(organization["mfa_policy"], "OPTIONAL");

    let by_id = admin.get(&format!("/v1/organizations/{id}")).await;
    let by_slug = admin.get("/v1/organizations/acme").await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body, by_slug.body);
    assert_eq!(by_id.body["organization"], *organization);

    let updated = admin
        .put(
            &format!("/v1/organizations/{id}"),
            json!({"organization_name": "Acme Inc", "trusted_metadata": {"plan": null, "tier": 2}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(
        updated.body["organization"]["organization_name"],
        "Acme Inc"
    );
    assert_eq!(
        updated.body["organization"]["trusted_metadata"],
        json!({"tier": 2})
    );
    assert_eq!(updated.body["organization"]["organization_slug"], "acme");

    let deleted = admin.delete("/v1/organizations/acme").await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(
        admin.get(&format!("/v1/organizations/{id}")).await.status,
        404
    );

    let events = server.events(&id);
    let summary: Vec<(i64, &str)> = events
        .iter()
        .map(|(n, kind, _, _)| (*n, kind.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "organization.created"),
            (2, "organization.updated"),
            (3, "organization.deleted")
        ]
    );
    assert_eq!(
        events[1].3,
        Some(json!({"organization_name": "Acme", "trusted_metadata": {"plan": "enterprise"}})),
        "an update records the previous values of what changed"
    );
    assert_eq!(events[2].2, json!({"organization_id": id}));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_update_that_changes_nothing_writes_no_event(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let created = admin.post("/v1/organizations", acme()).await;
    let id = created.body["organization"]["organization_id"]
        .as_str()
        .unwrap();

    let same = admin
        .patch(
            &format!("/v1/organizations/{id}"),
            json!({"organization_name": "Acme"}),
        )
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(
        same.body["organization"]["updated_at"],
        created.body["organization"]["updated_at"]
    );
    assert_eq!(server.event_types(id), ["organization.created"]);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn bad_input_is_a_400_that_names_the_field_and_writes_nothing(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let with = |change: serde_json::Value| {
        let mut body = acme();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        body
    };
    let cases = [
        (
            with(json!({"organization_slug": "Acme Corp"})),
            "invalid_organization_slug",
            "organization_slug",
        ),
        (
            with(json!({"organization_slug": "a"})),
            "invalid_organization_slug",
            "2 to 128",
        ),
        (
            with(json!({"email_allowed_domains": ["gmail.com"]})),
            "invalid_email_allowed_domains",
            "webmail",
        ),
        (
            with(json!({"email_allowed_domains": ["not a domain"]})),
            "invalid_email_allowed_domains",
            "not a valid domain",
        ),
        (
            with(json!({"email_allowed_domains": []})),
            "email_allowed_domains_required",
            "email_jit_provisioning RESTRICTED",
        ),
        (
            with(json!({"email_invites": "SOMETIMES"})),
            "invalid_request_body",
            "email_invites",
        ),
        (
            with(json!({"mfa_policy": 3})),
            "invalid_request_body",
            "mfa_policy",
        ),
        (
            with(json!({"unexpected": true})),
            "invalid_request_body",
            "unknown field `unexpected`",
        ),
        (
            with(json!({"organization_name": "   "})),
            "invalid_organization_name",
            "organization_name",
        ),
        (
            json!({"organization_slug": "acme"}),
            "missing_field",
            "organization_name is required",
        ),
        (
            with(
                json!({"trusted_metadata": (0..21).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
            ),
            "invalid_metadata",
            "at most 20",
        ),
        (
            with(json!({"trusted_metadata": {"blob": "x".repeat(5000)}})),
            "invalid_metadata",
            "4096 bytes",
        ),
    ];
    for (body, error_type, mentions) in cases {
        let response = admin.post("/v1/organizations", body.clone()).await;
        assert_eq!(response.status, 400, "{body} → {}", response.text);
        assert_eq!(
            response.body["error_type"], error_type,
            "{body} → {}",
            response.text
        );
        let message = response.body["error_message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{message:?} should mention {mentions:?}"
        );
    }

    let malformed = admin
        .send(
            "POST",
            "/v1/organizations",
            Some(b"{\"organization_name\": ".to_vec()),
            &[],
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["error_type"], "invalid_request_body");
    let empty = admin.send("POST", "/v1/organizations", None, &[]).await;
    assert_eq!(empty.status, 400);

    assert_eq!(server.count_rows("organizations"), 0);
    assert_eq!(server.count_rows("events"), 0);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_taken_slug_is_a_409_on_create_and_on_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    assert_eq!(admin.post("/v1/organizations", acme()).await.status, 201);
    let second = admin
        .post(
            "/v1/organizations",
            json!({"organization_name": "Other", "organization_slug": "other"}),
        )
        .await;

    let again = admin.post("/v1/organizations", acme()).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error_type"], "organization_slug_taken");

    let other_id = second.body["organization"]["organization_id"]
        .as_str()
        .unwrap();
    let rename = admin
        .put(
            &format!("/v1/organizations/{other_id}"),
            json!({"organization_slug": "acme"}),
        )
        .await;
    assert_eq!(rename.status, 409, "{}", rename.text);
    assert_eq!(admin.get("/v1/organizations/other").await.status, 200);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn concurrent_creates_of_one_slug_give_exactly_one_organization(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let attempts = (0..10).map(|_| {
        let admin = admin.clone();
        async move { admin.post("/v1/organizations", acme()).await.status }
    });
    let mut statuses = futures_statuses(attempts).await;
    statuses.sort();
    assert_eq!(statuses[0], 201);
    assert!(
        statuses[1..].iter().all(|status| *status == 409),
        "{statuses:?}"
    );
    assert_eq!(server.count_rows("organizations"), 1);
    assert_eq!(server.count_rows("events"), 1);
}

async fn futures_statuses(
    attempts: impl Iterator<Item = impl std::future::Future<Output = u16> + 'static>,
) -> Vec<u16> {
    let handles: Vec<_> = attempts.map(actix_rt::spawn).collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    statuses
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_list_pages_with_a_cursor_until_every_organization_was_seen(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    for n in 0..5 {
        let body = json!({"organization_name": format!("Org {n}"), "organization_slug": format!("org-{n}")});
        assert_eq!(admin.post("/v1/organizations", body).await.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/organizations?limit=2".to_string();
    loop {
        let page = admin.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let organizations = page.body["organizations"].as_array().unwrap();
        assert!(organizations.len() <= 2);
        seen.extend(
            organizations
                .iter()
                .map(|o| o["organization_slug"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/organizations?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["org-0", "org-1", "org-2", "org-3", "org-4"]);

    assert_eq!(
        admin.get("/v1/organizations?limit=0").await.body["error_type"],
        "invalid_limit"
    );
    assert_eq!(admin.get("/v1/organizations?cursor=%%%").await.status, 400);
    assert_eq!(admin.get("/v1/organizations?limit=abc").await.status, 400);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_org_scoped_jwt_reaches_its_own_organization_and_nothing_else(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let scoped = server.client(Some(&server.jwt(&format!("org:{}", acme.organization_id))));

    let listed = scoped.get("/v1/organizations").await;
    assert_eq!(listed.status, 200);
    let ids: Vec<&str> = listed.body["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["organization_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [acme.organization_id.as_str()]);
    assert_eq!(scoped.get("/v1/organizations/acme").await.status, 200);

    for path in [
        format!("/v1/organizations/{}", globex.organization_id),
        "/v1/organizations/globex".to_string(),
        format!(
            "/v1/organizations/{}/scim-connections",
            globex.organization_id
        ),
        format!(
            "/v1/organizations/{}/scim-connections/{}",
            globex.organization_id, globex.connection_id
        ),
    ] {
        let response = scoped.get(&path).await;
        assert_eq!(response.status, 404, "{path}: {}", response.text);
        assert!(!response.text.contains(&globex.connection_id));
    }
    let rename = scoped
        .put(
            &format!("/v1/organizations/{}", globex.organization_id),
            json!({"organization_name": "Mine"}),
        )
        .await;
    assert_eq!(rename.status, 404);
    let steal = scoped
        .post(
            &format!(
                "/v1/organizations/{}/scim-connections",
                globex.organization_id
            ),
            json!({}),
        )
        .await;
    assert_eq!(steal.status, 404);

    let create = scoped
        .post(
            "/v1/organizations",
            json!({"organization_name": "New", "organization_slug": "new"}),
        )
        .await;
    assert_eq!(create.status, 403);
    assert_eq!(create.body["error_type"], "admin_scope_required");
    assert_eq!(scoped.delete("/v1/organizations/acme").await.status, 403);
    assert_eq!(
        server.event_types(&globex.organization_id),
        ["organization.created", "scim_connection.created"]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn deleting_an_organization_stops_its_scim_tokens_at_once(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let idp = acme.scim();
    assert_eq!(idp.get("/Users").await.status, 200);

    assert_eq!(
        server.admin().delete("/v1/organizations/acme").await.status,
        200
    );
    let after = idp.get("/Users").await;
    assert_eq!(after.status, 401, "{}", after.text);
    assert_eq!(server.count_rows("scim_connections"), 0);
    assert_eq!(server.count_rows("scim_tokens"), 0);
    assert_eq!(server.count_rows("organization_domains"), 0);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn allowed_domains_are_indexed_and_follow_updates(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let created = admin.post("/v1/organizations", acme()).await;
    let id = created.body["organization"]["organization_id"]
        .as_str()
        .unwrap();
    assert_eq!(server.count_rows("organization_domains"), 2);
    let updated = admin
        .put(
            &format!("/v1/organizations/{id}"),
            json!({"email_allowed_domains": ["acme.io", "ACME.io"]}),
        )
        .await;
    assert_eq!(
        updated.body["organization"]["email_allowed_domains"],
        json!(["acme.io"])
    );
    assert_eq!(server.count_rows("organization_domains"), 1);
}
