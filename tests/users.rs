mod common;

use common::{Db, Response, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

fn user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true,
        "password": "correct horse battery staple"
    })
}

fn patch(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn twenty_parallel_posts_of_one_user_name_create_exactly_one_user(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let idp = idp.clone();
            // The same userName in different cases: uniqueness is case-insensitive.
            let name = if n % 2 == 0 {
                "ada@acme.test"
            } else {
                "ADA@acme.test"
            };
            actix_rt::spawn(async move { idp.post("/Users", user(name)).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        let response = attempt.await.unwrap();
        match response.status {
            201 => created += 1,
            409 => assert_eq!(response.body["scimType"], "uniqueness", "{}", response.text),
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(server.count_rows("members"), 1);
    assert_eq!(idp.get("/Users").await.body["totalResults"], 1);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn parallel_posts_of_one_email_create_one_member_and_leave_nothing_of_the_others(
    #[case] db: Db,
) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let attempts: Vec<_> = (0..12)
        .map(|n| {
            let idp = idp.clone();
            let body = json!({
                "userName": format!("user{n}"),
                "emails": [{"value": "Shared@acme.test", "type": "work", "primary": true},
                           {"value": format!("own{n}@acme.test"), "type": "home"}],
            });
            actix_rt::spawn(async move { idp.post("/Users", body).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        let response = attempt.await.unwrap();
        match response.status {
            201 => created += 1,
            409 => {
                assert_eq!(response.body["scimType"], "uniqueness", "{}", response.text);
                let detail = response.body["detail"].as_str().unwrap();
                assert!(
                    detail.to_lowercase().contains("shared@acme.test"),
                    "{detail}"
                );
            }
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(server.count_rows("members"), 1);
    // The refused writes left no email rows and no count behind them.
    assert_eq!(server.count_rows("member_emails"), 2);
    assert_eq!(idp.get("/Users").await.body["totalResults"], 1);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn concurrent_patches_with_if_match_never_lose_an_update(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let id = idp.post("/Users", user("ada@acme.test")).await.id();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let idp = idp.clone();
            let path = format!("/Users/{id}");
            actix_rt::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let current = idp.get(&path).await;
                    let etag = current.header("etag").unwrap().to_string();
                    let mut entitlements = current.body["entitlements"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    entitlements.push(json!({"value": format!("e{writer}")}));
                    let body = patch(
                        json!([{"op": "replace", "path": "entitlements", "value": entitlements}]),
                    );
                    let response = idp
                        .send(
                            "PATCH",
                            &path,
                            Some(body.to_string().into_bytes()),
                            &[("If-Match", &etag)],
                        )
                        .await;
                    match response.status {
                        200 => return conflicts,
                        412 => conflicts += 1,
                        other => panic!("unexpected {other}: {}", response.text),
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let user = idp.get(&format!("/Users/{id}")).await;
    let mut values: Vec<&str> = user.body["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"]);
    assert_eq!(user.body["meta"]["version"], "W/\"9\"");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn no_id_filter_or_list_ever_crosses_a_connection(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let mut connections = Vec::new();
    for slug in ["acme", "globex"] {
        let tenant = server.new_organization(slug).await;
        let second = server
            .admin()
            .post(
                &format!(
                    "/v1/organizations/{}/scim-connections",
                    tenant.organization_id
                ),
                json!({"identity_provider": "microsoft-entra"}),
            )
            .await;
        let second_token = second.body["bearer_token"].as_str().unwrap().to_string();
        connections.push(tenant.scim());
        connections.push(tenant.scim().with_bearer(&second_token));
    }
    let mut ids = Vec::new();
    for (n, idp) in connections.iter().enumerate() {
        let created = idp
            .post("/Users", user(&format!("user{n}@tenant{n}.test")))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        ids.push(created.id());
    }
    for (n, idp) in connections.iter().enumerate() {
        let listed = idp.get("/Users").await;
        assert_eq!(listed.body["totalResults"], 1);
        assert_eq!(listed.body["Resources"][0]["id"], ids[n].as_str());
        for (m, other) in ids.iter().enumerate().filter(|(m, _)| *m != n) {
            let path = format!("/Users/{other}");
            assert_eq!(idp.get(&path).await.status, 404);
            assert_eq!(
                idp.put(&path, user(&format!("user{m}@tenant{m}.test")))
                    .await
                    .status,
                404
            );
            assert_eq!(
                idp.patch(
                    &path,
                    patch(json!([{"op": "replace", "path": "title", "value": "x"}]))
                )
                .await
                .status,
                404
            );
            assert_eq!(idp.delete(&path).await.status, 404);
            let filtered = idp
                .get(&format!(
                    "/Users?filter=userName%20eq%20%22user{m}@tenant{m}.test%22"
                ))
                .await;
            assert_eq!(filtered.body["totalResults"], 0);
            let by_id = idp
                .get(&format!("/Users?filter=id%20eq%20%22{other}%22"))
                .await;
            assert_eq!(by_id.body["totalResults"], 0);
        }
    }
    // Nothing above changed another tenant's user.
    for (n, idp) in connections.iter().enumerate() {
        let mine = idp.get(&format!("/Users/{}", ids[n])).await;
        assert_eq!(mine.body["meta"]["version"], "W/\"1\"");
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_lifecycle_writes_one_event_per_change_and_none_for_no_change(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let created = idp.post("/Users", user("ada@acme.test")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.header("location"),
        created.body["meta"]["location"].as_str()
    );
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());

    let same = idp
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "name.givenName", "value": "Ada"}])),
        )
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(
        same.body["meta"]["version"], "W/\"1\"",
        "a change to nothing keeps the version"
    );
    idp.patch(
        &path,
        patch(json!([{"op": "replace", "path": "title", "value": "Countess"}])),
    )
    .await;
    idp.patch(
        &path,
        patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
    )
    .await;
    let inactive = idp.get(&path).await;
    assert_eq!(inactive.body["active"], json!(false));
    idp.patch(
        &path,
        patch(json!([{"op": "replace", "value": {"active": true}}])),
    )
    .await;
    assert_eq!(idp.delete(&path).await.status, 204);
    assert_eq!(idp.get(&path).await.status, 404);
    assert_eq!(idp.delete(&path).await.status, 404);

    let events = server.events(&tenant.organization_id);
    let types: Vec<&str> = events
        .iter()
        .map(|(_, kind, _, _)| kind.as_str())
        .skip(2)
        .collect();
    assert_eq!(
        types,
        [
            "member.created",
            "member.updated",
            "member.deactivated",
            "member.reactivated",
            "member.deleted"
        ]
    );
    let (_, _, data, previous) = &events[3];
    assert_eq!(data["scim_registration"]["attributes"]["title"], "Countess");
    assert_eq!(
        previous.as_ref().unwrap()["scim_registration"]["attributes"].get("title"),
        None
    );
    assert_eq!(events[4].3.as_ref().unwrap()["status"], "active");
    assert_eq!(events[4].2["status"], "inactive");
    for (_, _, data, previous) in &events {
        assert!(
            !data.to_string().contains("battery"),
            "a password reached the event log"
        );
        assert!(!previous
            .as_ref()
            .is_some_and(|p| p.to_string().contains("battery")));
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn etags_make_stale_writers_fail_and_unchanged_reads_cheap(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let created = idp.post("/Users", user("ada@acme.test")).await;
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let etag = created.header("etag").unwrap().to_string();
    assert_eq!(etag, "W/\"1\"");

    let unchanged = idp
        .send("GET", &path, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(unchanged.status, 304);
    idp.patch(
        &path,
        patch(json!([{"op": "add", "path": "title", "value": "Countess"}])),
    )
    .await;
    let changed = idp
        .send("GET", &path, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(changed.status, 200);

    let mut stale_body = user("ada@acme.test");
    stale_body["title"] = json!("Overwritten");
    let stale = idp
        .send(
            "PUT",
            &path,
            Some(stale_body.to_string().into_bytes()),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(idp.get(&path).await.body["title"], "Countess");
    let stale_delete = idp
        .send("DELETE", &path, None, &[("If-Match", &etag)])
        .await;
    assert_eq!(stale_delete.status, 412);
    let current = idp
        .send("DELETE", &path, None, &[("If-Match", "W/\"2\"")])
        .await;
    assert_eq!(current.status, 204);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn member_emails_are_unique_per_organization_and_freed_by_delete(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let ada = idp.post("/Users", user("ada@acme.test")).await;
    assert_eq!(ada.status, 201);

    let mut same_email = user("ada-alias");
    same_email["emails"] = json!([{"value": "ADA@acme.test", "type": "work"}]);
    let conflict = idp.post("/Users", same_email.clone()).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.body["scimType"], "uniqueness");
    assert!(conflict.body["detail"]
        .as_str()
        .unwrap()
        .contains("already belongs"));

    let bob = idp.post("/Users", user("bob@acme.test")).await;
    let taken = idp
        .patch(
            &format!("/Users/{}", bob.body["id"].as_str().unwrap()),
            patch(json!([{"op": "replace", "path": "userName", "value": "Ada@Acme.test"}])),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.text);

    assert_eq!(
        idp.delete(&format!("/Users/{}", ada.body["id"].as_str().unwrap()))
            .await
            .status,
        204
    );
    let again = idp.post("/Users", user("ada@acme.test")).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_ne!(
        again.body["id"], ada.body["id"],
        "a deleted member stays a tombstone; a new one is made"
    );
    assert_eq!(idp.post("/Users", same_email).await.status, 409);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_member_no_idp_manages_is_adopted_and_another_connections_member_is_a_conflict(
    #[case] db: Db,
) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let admin = server.admin();
    let connections = format!(
        "/v1/organizations/{}/scim-connections",
        tenant.organization_id
    );
    let entra = admin
        .post(
            &connections,
            json!({"identity_provider": "microsoft-entra"}),
        )
        .await;
    let entra_id = entra.body["connection"]["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let entra = tenant
        .scim()
        .with_bearer(entra.body["bearer_token"].as_str().unwrap());
    let okta = tenant.scim();

    let first = entra.post("/Users", user("ada@acme.test")).await;
    let member_id = first.id();
    let conflict = okta.post("/Users", user("ada@acme.test")).await;
    assert_eq!(conflict.status, 409);
    assert!(
        conflict.body["detail"]
            .as_str()
            .unwrap()
            .contains("another SCIM connection"),
        "{}",
        conflict.text
    );

    // Deleting the Entra connection leaves its members in the organization, managed by no IdP.
    assert_eq!(
        admin
            .delete(&format!("{connections}/{entra_id}"))
            .await
            .status,
        200
    );
    let adopted = okta.post("/Users", user("Ada@acme.test")).await;
    assert_eq!(adopted.status, 201, "{}", adopted.text);
    assert_eq!(
        adopted.body["id"],
        member_id.as_str(),
        "adoption keeps the member id"
    );
    assert_eq!(okta.get(&format!("/Users/{member_id}")).await.status, 200);
    assert_eq!(
        server.event_types(&tenant.organization_id).last().unwrap(),
        "member.scim_linked"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn passwords_are_accepted_and_never_stored_or_returned(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let created = idp.post("/Users", user("ada@acme.test")).await;
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    idp.patch(
        &path,
        patch(json!([{"op": "replace", "value": {"password": "battery two"}}])),
    )
    .await;
    idp.patch(
        &path,
        patch(json!([{"op": "replace", "path": "password", "value": "battery three"}])),
    )
    .await;
    let mut replaced = user("ada@acme.test");
    replaced["password"] = json!("battery four");
    idp.put(&path, replaced).await;
    for response in [created, idp.get(&path).await, idp.get("/Users").await] {
        assert!(!response.text.contains("battery"), "{}", response.text);
    }
    #[derive(diesel::QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Text)]
        everything: String,
    }
    use diesel::RunQueryDsl;
    let stored: Vec<Stored> = diesel::sql_query(
        "SELECT COALESCE(scim_attributes, '') || name || email_address AS everything FROM members",
    )
    .load(&mut server.pool.get().unwrap())
    .unwrap();
    assert!(stored.iter().all(|row| !row.everything.contains("battery")));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn lists_page_by_start_index_and_count_in_a_stable_order(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(
            idp.post("/Users", user(&format!("user{n}@acme.test")))
                .await
                .body["id"]
                .clone(),
        );
    }
    let mut seen = Vec::new();
    for start in [1, 4, 7] {
        let page = idp.get(&format!("/Users?startIndex={start}&count=3")).await;
        assert_eq!(page.body["totalResults"], 7);
        assert_eq!(page.body["startIndex"], start);
        assert_eq!(
            page.body["itemsPerPage"],
            page.body["Resources"].as_array().unwrap().len()
        );
        seen.extend(
            page.body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone()),
        );
    }
    assert_eq!(
        seen, ids,
        "pages follow creation order, without gaps or repeats"
    );
    let counted = idp.get("/Users?count=0").await;
    assert_eq!(counted.body["totalResults"], 7);
    assert_eq!(counted.body["Resources"], json!([]));
    let filtered = idp
        .get("/Users?filter=userName%20sw%20%22user1%22&count=10")
        .await;
    assert_eq!(filtered.body["totalResults"], 1);
    let bad = idp.get("/Users?startIndex=abc").await;
    assert_eq!(bad.status, 400);
    let malformed = idp.get("/Users?filter=userName%20eq").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["scimType"], "invalidFilter");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn write_responses_honour_attributes_and_excluded_attributes(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let created = idp
        .post("/Users?attributes=userName", user("ada@acme.test"))
        .await;
    assert_eq!(created.status, 201);
    let keys: Vec<&String> = created.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["schemas", "id", "userName"]);
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let patched = idp
        .patch(
            &format!("{path}?excludedAttributes=emails,name"),
            patch(json!([{"op": "add", "path": "title", "value": "Countess"}])),
        )
        .await;
    assert_eq!(patched.body["title"], "Countess");
    assert!(patched.body.get("emails").is_none() && patched.body.get("name").is_none());
    assert!(patched.body.get("id").is_some());
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn bad_input_is_a_scim_error_with_the_right_type_and_writes_nothing(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let cases = [
        (
            json!({"name": {"givenName": "x"}}),
            "invalidValue",
            "userName is required",
        ),
        (
            json!({"userName": "nobody"}),
            "invalidValue",
            "needs an email",
        ),
        (
            json!({"userName": "a@acme.test", "active": 7}),
            "invalidValue",
            "active",
        ),
        (
            json!({"userName": "a@acme.test", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]}),
            "invalidSyntax",
            "schemas",
        ),
        (json!(["not", "an", "object"]), "invalidSyntax", "object"),
    ];
    for (body, scim_type, mentions) in cases {
        let response = idp.post("/Users", body.clone()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert_eq!(
            response.body["scimType"], scim_type,
            "{body}: {}",
            response.text
        );
        assert_eq!(response.body["status"], "400");
        assert!(
            response.body["detail"].as_str().unwrap().contains(mentions),
            "{}",
            response.text
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/scim+json")
        );
    }
    let created = idp.post("/Users", user("ada@acme.test")).await;
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let atomic = idp
        .patch(
            &path,
            patch(json!([
                {"op": "replace", "path": "title", "value": "Applied?"},
                {"op": "replace", "path": "emails[type eq", "value": "x"}
            ])),
        )
        .await;
    assert_eq!(atomic.status, 400);
    assert_eq!(atomic.body["scimType"], "invalidPath");
    let read_only = idp
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "meta.created", "value": "x"}])),
        )
        .await;
    assert_eq!(
        read_only.body["scimType"], "mutability",
        "{}",
        read_only.text
    );
    let no_target = idp.patch(&path, patch(json!([{"op": "remove"}]))).await;
    assert_eq!(no_target.body["scimType"], "noTarget");
    let after = idp.get(&path).await;
    assert!(
        after.body.get("title").is_none(),
        "a failed PATCH applies nothing"
    );
    assert_eq!(after.body["meta"]["version"], "W/\"1\"");
    assert_eq!(server.count_rows("members"), 1);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn concurrent_patches_without_if_match_all_succeed_and_all_apply(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let id = idp.post("/Users", user("ada@acme.test")).await.id();
    let writers: Vec<_> = (0..12)
        .map(|writer| {
            let idp = idp.clone();
            let path = format!("/Users/{id}");
            actix_rt::spawn(async move {
                let body = patch(json!([{"op": "add", "path": "entitlements", "value": [{"value": format!("e{writer:02}")}]}]));
                idp.patch(&path, body).await
            })
        })
        .collect();
    for writer in writers {
        let response = writer.await.unwrap();
        assert_eq!(
            response.status, 200,
            "no If-Match, so no 412: {}",
            response.text
        );
    }
    let user = idp.get(&format!("/Users/{id}")).await;
    let mut values: Vec<&str> = user.body["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    values.sort();
    let expected: Vec<String> = (0..12).map(|n| format!("e{n:02}")).collect();
    assert_eq!(values, expected);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn hostile_values_are_400s_not_500s(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let long_name = format!("{}@acme.test", "漢".repeat(2000));
    for body in [
        json!({"userName": "nul\u{0}@acme.test"}),
        json!({"userName": long_name}),
        json!({"userName": "ok@acme.test", "externalId": "x".repeat(600)}),
    ] {
        let response = idp.post("/Users", body).await;
        assert_eq!(response.status, 400, "{}", response.text);
        assert_eq!(response.body["scimType"], "invalidValue");
    }
    for path in ["/Users/abc%00", "/Users?filter=userName%20eq%20%22a%00b%22"] {
        let response = idp.get(path).await;
        assert!(
            matches!(response.status, 200 | 400 | 404),
            "{path}: {}",
            response.text
        );
    }
    // A long list is normalised in linear time, and duplicates (ignoring case) collapse.
    let emails: Vec<Value> = (0..20_000)
        .map(|n| json!({"value": format!("e{n}@acme.test")}))
        .collect();
    let mut many = json!({"userName": "many@acme.test", "emails": emails});
    many["emails"]
        .as_array_mut()
        .unwrap()
        .push(json!({"value": "e1@acme.test"}));
    let created = idp.post("/Users?attributes=userName", many).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let duplicate = idp
        .patch(
            &path,
            patch(json!([{"op": "add", "path": "emails", "value": [{"value": "E2@ACME.test"}]}])),
        )
        .await;
    assert_eq!(duplicate.body["emails"].as_array().unwrap().len(), 20_000);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn if_match_accepts_any_tag_of_a_list(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let created = idp.post("/Users", user("ada@acme.test")).await;
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
    let body = patch(json!([{"op": "add", "path": "title", "value": "Countess"}]))
        .to_string()
        .into_bytes();
    let stale = idp
        .send(
            "PATCH",
            &path,
            Some(body.clone()),
            &[("If-Match", "W/\"7\", W/\"8\"")],
        )
        .await;
    assert_eq!(stale.status, 412);
    let listed = idp
        .send(
            "PATCH",
            &path,
            Some(body),
            &[("If-Match", "W/\"0\", W/\"1\"")],
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_filter_no_index_answers_is_evaluated_across_every_batch(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    // More users than one scan batch (500), every seventh one an engineer.
    let mut engineers = Vec::new();
    for n in 0..1_100 {
        let title = if n % 7 == 0 { "Engineer" } else { "Analyst" };
        let created = idp
            .post(
                "/Users",
                json!({"userName": format!("u{n:04}@acme.test"), "title": title}),
            )
            .await;
        if n % 7 == 0 {
            engineers.push(created.body["id"].clone());
        }
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let page = idp
            .get(&format!("/Users?filter=title%20eq%20%22engineer%22&startIndex={start}&count=50&attributes=id"))
            .await;
        assert_eq!(page.body["totalResults"], engineers.len(), "{}", page.text);
        let resources = page.body["Resources"].as_array().unwrap();
        if resources.is_empty() {
            break;
        }
        seen.extend(resources.iter().map(|r| r["id"].clone()));
        start += resources.len();
    }
    assert_eq!(seen, engineers, "every match once, in creation order");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn cursor_paging_reads_every_user_once_both_ways_and_refuses_foreign_cursors(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let mut ids = Vec::new();
    for n in 0..9 {
        let title = if n % 2 == 0 { "even" } else { "odd" };
        let created = idp
            .post(
                "/Users",
                json!({"userName": format!("u{n}@acme.test"), "title": title}),
            )
            .await;
        ids.push(created.body["id"].clone());
    }
    for (filter, expected) in [
        ("", ids.clone()),
        (
            "&filter=title%20eq%20%22even%22",
            ids.iter().step_by(2).cloned().collect::<Vec<_>>(),
        ),
    ] {
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut cursor = String::new();
        let ids = |page: &Response| -> Vec<Value> {
            page.body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone())
                .collect()
        };
        let back = loop {
            let page = idp
                .get(&format!("/Users?count=2&cursor={cursor}{filter}"))
                .await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert_eq!(page.body["totalResults"], expected.len());
            assert!(
                page.body.get("startIndex").is_none(),
                "cursor paging has no startIndex"
            );
            // RFC 9865: previousCursor on every page but the first.
            assert_eq!(page.body["previousCursor"].is_string(), !pages.is_empty());
            pages.push(ids(&page));
            match page.body["nextCursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break page.body["previousCursor"].as_str().map(str::to_owned),
            }
        };
        assert_eq!(pages.concat(), expected, "filter {filter:?}");
        // And back again: the same pages, in reverse.
        let mut index = pages.len() - 1;
        let mut back = back;
        while let Some(cursor) = back {
            index -= 1;
            let page = idp
                .get(&format!("/Users?count=2&cursor={cursor}{filter}"))
                .await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert_eq!(ids(&page), pages[index], "filter {filter:?}, page {index}");
            assert!(page.body["nextCursor"].is_string());
            back = page.body["previousCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(index, 0, "previousCursor leads back to the first page");
    }
    let forged = idp.get("/Users?cursor=not-a-cursor").await;
    assert_eq!(forged.status, 400);
    assert_eq!(forged.body["scimType"], "invalidCursor");
    let searched = idp
        .post("/Users/.search", json!({"cursor": "", "count": 5}))
        .await;
    assert_eq!(searched.body["Resources"].as_array().unwrap().len(), 5);
    assert!(searched.body["nextCursor"].is_string());
    let groups = idp.get("/Groups?cursor=&count=10").await;
    assert_eq!(groups.status, 200);
    assert_eq!(groups.body["totalResults"], 0);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_user_renamed_to_a_taken_user_name_is_refused_and_to_its_own_in_another_case_is_not(
    #[case] db: Db,
) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let named = |user_name: &str, email: &str| {
        let mut body = user(user_name);
        body["emails"] = json!([{"value": email, "type": "work", "primary": true}]);
        body
    };
    let ada = idp.post("/Users", named("ada", "ada@acme.test")).await;
    let bob = idp.post("/Users", named("bob", "bob@acme.test")).await;
    let (ada, bob) = (
        format!("/Users/{}", ada.body["id"].as_str().unwrap()),
        format!("/Users/{}", bob.body["id"].as_str().unwrap()),
    );
    let rename = |user_name: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "userName", "value": user_name}]})
    };

    for refused in [
        idp.patch(&bob, rename("ADA")).await,
        idp.put(&bob, named("Ada", "bob@acme.test")).await,
    ] {
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert_eq!(refused.body["scimType"], "uniqueness");
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains("already taken by another user"), "{detail}");
    }
    assert_eq!(idp.get(&bob).await.body["userName"], "bob");

    let recased = idp.patch(&ada, rename("ADA")).await;
    assert_eq!(recased.status, 200, "{}", recased.text);
    assert_eq!(recased.body["userName"], "ADA");
    let found = idp.get("/Users?filter=userName%20eq%20%22ada%22").await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.text);
}

/// The ids of the users `filter` finds, URL-encoded into the query.
async fn found_by(idp: &common::Client, filter: &str) -> Vec<String> {
    let query: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let response = idp.get(&format!("/Users?filter={query}")).await;
    assert_eq!(response.status, 200, "{filter}: {}", response.text);
    response.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["id"].as_str().unwrap().to_string())
        .collect()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn filters_on_emails_follow_every_change_to_a_user_s_emails(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let mut body = user("ada@acme.test");
    body["emails"] = json!([
        {"value": "ada@acme.test", "type": "work", "primary": true},
        {"value": "ada@home.test", "type": "home"}
    ]);
    let created = idp.post("/Users", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.id();
    let path = format!("/Users/{id}");
    let changes = [
        // As many emails as before: the work address changes in place.
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "lovelace@acme.test"}]),
        // Its type and primary flag, and the other address, in one request.
        json!([
            {"op": "replace", "path": "emails[value eq \"lovelace@acme.test\"].type", "value": "other"},
            {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "ada@garden.test"}
        ]),
        // One more, then one fewer, then none.
        json!([{"op": "add", "path": "emails", "value": [{"value": "countess@lovelace.test", "type": "work"}]}]),
        json!([{"op": "remove", "path": "emails[value eq \"ada@garden.test\"]"}]),
        json!([{"op": "remove", "path": "emails"}]),
        json!([{"op": "add", "path": "emails", "value": [{"value": "ada@acme.test", "type": "work"}]}]),
    ];
    let probes = [
        "ada@acme.test",
        "ada@home.test",
        "lovelace@acme.test",
        "ada@garden.test",
        "countess@lovelace.test",
    ];
    for change in changes {
        let patched = idp.patch(&path, patch(change.clone())).await;
        assert_eq!(patched.status, 200, "{change}: {}", patched.text);
        let emails = patched.body["emails"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for probe in probes {
            let held = emails.iter().find(|email| email["value"] == probe);
            let expected = held.map(|_| vec![id.clone()]).unwrap_or_default();
            assert_eq!(
                found_by(&idp, &format!("emails.value eq \"{probe}\"")).await,
                expected,
                "after {change}: {probe}"
            );
            let Some(held) = held else { continue };
            let typed = format!(
                "emails[type eq \"{}\" and value eq \"{probe}\"]",
                held["type"].as_str().unwrap()
            );
            assert_eq!(
                found_by(&idp, &typed).await,
                expected,
                "after {change}: {typed}"
            );
        }
    }
}

/// A user's PATCH and PUT answer with its groups as they are once the write holds the user:
/// on PostgreSQL the groups are read by the member's UPDATE, whose snapshot is taken after the
/// row's lock is granted. Here another transaction adds the user to a group and holds on (on
/// PostgreSQL its foreign key check locks the user's row; on SQLite it holds the write lock);
/// the PATCH waits for it, and must answer with that group.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_patch_that_waited_for_a_group_add_answers_with_that_group(#[case] db: Db) {
    use diesel::connection::SimpleConnection;

    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let id = idp.post("/Users", user("ada@acme.test")).await.id();
    let group = idp
        .post("/Groups", json!({"displayName": "Engineering"}))
        .await
        .id();
    let mut other = server.pool.get().unwrap();
    other
        .batch_execute(match db {
            Db::Sqlite => "BEGIN IMMEDIATE",
            Db::Postgres => "BEGIN",
        })
        .unwrap();
    // Ids are UUIDs: nothing to quote.
    other
        .batch_execute(&format!(
            "INSERT INTO group_members (group_id, member_id) VALUES ('{group}', '{id}')"
        ))
        .unwrap();
    let patching = {
        let idp = idp.clone();
        let path = format!("/Users/{id}");
        actix_rt::spawn(async move {
            let body = patch(json!([{"op": "replace", "path": "name.givenName", "value": "Ava"}]));
            idp.patch(&path, body).await
        })
    };
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !patching.is_finished(),
        "the PATCH waits for the other write"
    );
    other.batch_execute("COMMIT").unwrap();
    let patched = patching.await.unwrap();
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["name"]["givenName"], "Ava");
    assert_eq!(
        patched.body["groups"][0]["value"], group,
        "{}",
        patched.text
    );
    assert_eq!(patched.body["groups"][0]["display"], "Engineering");
}

/// A PATCH or PUT that changes nothing writes nothing, and still answers with the user's
/// groups.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_write_that_changes_nothing_answers_with_the_users_groups(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let created = idp.post("/Users", user("ada@acme.test")).await;
    let id = created.id();
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "Engineering", "members": [{"value": id}]}),
        )
        .await
        .id();
    let version = idp.get(&format!("/Users/{id}")).await.body["meta"]["version"].clone();
    let unchanged = patch(json!([{"op": "replace", "path": "name.givenName", "value": "Ada"}]));
    let patched = idp.patch(&format!("/Users/{id}"), unchanged).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        patched.body["meta"]["version"], version,
        "nothing was written"
    );
    assert_eq!(
        patched.body["groups"][0]["value"], group,
        "{}",
        patched.text
    );
    let put = idp
        .put(&format!("/Users/{id}"), user("ada@acme.test"))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["meta"]["version"], version, "nothing was written");
    assert_eq!(put.body["groups"][0]["value"], group, "{}", put.text);
}

/// A connection deleted while another scimd still holds its token in cache: that server's
/// writes reach the database and are refused there with 401, writing nothing (a POST finds
/// the connection gone in the statement that checks the userName; a PATCH, finding no user).
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_deleted_connections_cached_token_writes_nothing_on_another_server(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let id = tenant
        .scim()
        .post("/Users", user("ada@acme.test"))
        .await
        .id();
    let sibling = server
        .sibling(common::Options {
            token_cache_ttl: std::time::Duration::from_secs(3600),
            ..Default::default()
        })
        .await;
    let cached = sibling.client(Some(&tenant.token));
    let cached = common::Client {
        base: format!("{}/scim/v2", cached.base),
        ..cached
    };
    assert_eq!(
        cached.get("/Users").await.status,
        200,
        "the token is cached"
    );
    let deleted = server
        .admin()
        .delete(&format!(
            "/v1/organizations/{}/scim-connections/{}",
            tenant.organization_id, tenant.connection_id
        ))
        .await;
    assert!(deleted.status < 300, "{}", deleted.text);
    let members = server.count_rows("members");
    let events = server.count_rows("events");
    let created = cached.post("/Users", user("bob@acme.test")).await;
    assert_eq!(created.status, 401, "{}", created.text);
    let patched = cached
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": "name.givenName", "value": "Ava"}])),
        )
        .await;
    assert_eq!(patched.status, 401, "{}", patched.text);
    assert_eq!(server.count_rows("members"), members);
    assert_eq!(server.count_rows("events"), events);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_total_of_users_follows_creates_deactivations_and_deletes(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let total = || async { idp.get("/Users?count=1").await.body["totalResults"].clone() };
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            idp.post("/Users", user(&format!("u{n}@acme.test")))
                .await
                .id(),
        );
    }
    assert_eq!(total().await, 3);
    let deactivated = idp
        .patch(
            &format!("/Users/{}", ids[0]),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(deactivated.status, 200, "{}", deactivated.text);
    assert_eq!(total().await, 3, "an inactive user is still a user");
    assert_eq!(idp.delete(&format!("/Users/{}", ids[1])).await.status, 204);
    assert_eq!(total().await, 2);
    assert_eq!(idp.delete(&format!("/Users/{}", ids[0])).await.status, 204);
    assert_eq!(total().await, 1);
    assert_eq!(idp.delete(&format!("/Users/{}", ids[0])).await.status, 404);
    assert_eq!(total().await, 1);
    // The deleted users' email rows (what email filters read) went with them.
    assert_eq!(server.count_rows("member_emails"), 1);
}
