mod common;

use common::{Client, Db, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

fn patch(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

async fn new_user(idp: &Client, user_name: &str) -> String {
    let created = idp
        .post(
            "/Users",
            json!({"userName": user_name, "displayName": user_name.split('@').next().unwrap()}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["id"].as_str().unwrap().to_string()
}

async fn member_ids(idp: &Client, group: &str) -> Vec<String> {
    let read = idp.get(&format!("/Groups/{group}")).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let mut ids: Vec<String> = read.body["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn okta_style_membership_changes_apply_in_one_request(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let bob = new_user(&idp, "bob@acme.test").await;
    let cy = new_user(&idp, "cy@acme.test").await;

    let created = idp
        .post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": [{"value": ada}, bob]}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.header("location"),
        created.body["meta"]["location"].as_str()
    );
    let group = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["members"].as_array().unwrap().len(), 2);
    assert_eq!(created.body["members"][0]["type"], "User");

    let patched = idp
        .patch(
            &format!("/Groups/{group}"),
            patch(json!([
                {"op": "replace", "value": {"id": group, "displayName": "Engineering"}},
                {"op": "Remove", "path": format!("members[value eq \"{ada}\"]")},
                {"op": "Add", "path": "members", "value": [{"value": cy}]}
            ])),
        )
        .await;
    assert_eq!(patched.status, 204, "{}", patched.text);
    assert_eq!(patched.header("etag"), Some("W/\"2\""));
    assert_eq!(member_ids(&idp, &group).await, sorted(&[&bob, &cy]));

    let ada_groups = idp.get(&format!("/Users/{ada}")).await;
    assert!(ada_groups.body.get("groups").is_none());
    let cy_groups = idp.get(&format!("/Users/{cy}")).await;
    assert_eq!(
        cy_groups.body["groups"],
        json!([{
            "value": group, "$ref": format!("{}/Groups/{group}", idp.base), "display": "Engineering", "type": "direct"
        }])
    );

    let events = server.event_types(&tenant.organization_id);
    let group_events: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("group."))
        .collect();
    assert_eq!(
        group_events,
        [
            "group.created",
            "group.members_added",
            "group.members_added",
            "group.members_removed"
        ]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn removing_members_by_a_value_list_removes_only_those(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let ids = [
        new_user(&idp, "a@acme.test").await,
        new_user(&idp, "b@acme.test").await,
        new_user(&idp, "c@acme.test").await,
    ];
    let group = idp
        .post("/Groups", json!({"displayName": "Sales", "members": ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = idp
        .patch(
            &format!("/Groups/{group}"),
            patch(json!([{"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}])),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(
        member_ids(&idp, &group).await,
        sorted(&[&ids[1], &ids[2]]),
        "never empties the group"
    );

    idp.patch(
        &format!("/Groups/{group}"),
        patch(json!([{"op": "remove", "path": "members"}])),
    )
    .await;
    assert_eq!(member_ids(&idp, &group).await, Vec::<String>::new());
    idp.patch(
        &format!("/Groups/{group}"),
        patch(json!([{"op": "replace", "path": "members", "value": [ids[2].clone()]}])),
    )
    .await;
    assert_eq!(member_ids(&idp, &group).await, sorted(&[&ids[2]]));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn unknown_deleted_and_foreign_member_ids_are_skipped_alike(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let idp = acme.scim();
    let foreign = new_user(&globex.scim(), "spy@globex.test").await;
    let deleted = new_user(&idp, "gone@acme.test").await;
    idp.delete(&format!("/Users/{deleted}")).await;
    let real = new_user(&idp, "real@acme.test").await;
    let unknown = "member-00000000-0000-0000-0000-000000000000".to_string();

    let created = idp
        .post("/Groups", json!({"displayName": "Mixed", "members": [{"value": foreign}, {"value": deleted}, {"value": unknown}, {"value": real}]}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let group = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(member_ids(&idp, &group).await, vec![real.clone()]);

    let (_, kind, data, _) = server.events(&acme.organization_id).pop().unwrap();
    assert_eq!(kind, "group.members_added");
    assert_eq!(data["member_ids"], json!([real]));
    let mut skipped = vec![foreign.clone(), deleted.clone(), unknown.clone()];
    skipped.sort();
    assert_eq!(data["skipped_member_ids"], json!(skipped));

    let removal = idp
        .patch(
            &format!("/Groups/{group}"),
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{foreign}\"]")}])),
        )
        .await;
    assert_eq!(removal.status, 204);
    assert_eq!(
        removal.header("etag"),
        created.body["meta"]["version"].as_str(),
        "a no-op keeps the version"
    );
    assert_eq!(
        globex.scim().get(&format!("/Groups/{group}")).await.status,
        404
    );
    assert_eq!(globex.scim().get("/Groups").await.body["totalResults"], 0);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn members_are_shown_unless_excluded_and_filters_find_groups(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "Ops", "externalId": "a1b2", "members": [ada.clone()]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    idp.post("/Groups", json!({"displayName": "Empty"})).await;

    let without = idp
        .get(&format!("/Groups/{group}?excludedAttributes=members"))
        .await;
    assert!(without.body.get("members").is_none());
    assert_eq!(without.body["displayName"], "Ops");
    let only = idp
        .get(&format!("/Groups/{group}?attributes=members"))
        .await;
    assert_eq!(only.body["members"][0]["value"], ada.as_str());
    assert!(only.body.get("displayName").is_none());
    let asked = idp
        .patch(
            &format!("/Groups/{group}?attributes=members,displayName"),
            patch(json!([{"op": "add", "path": "externalId", "value": "zz"}])),
        )
        .await;
    assert_eq!(asked.body["members"][0]["value"], ada.as_str());

    for filter in [
        "displayName%20eq%20%22ops%22".to_string(),
        "externalId%20eq%20%22zz%22".to_string(),
        format!("members%5Bvalue%20eq%20%22{ada}%22%5D"),
        format!("members.value%20eq%20%22{ada}%22"),
        "displayName%20sw%20%22O%22%20and%20members%20pr".to_string(),
    ] {
        let found = idp
            .get(&format!(
                "/Groups?filter={filter}&excludedAttributes=members"
            ))
            .await;
        assert_eq!(found.status, 200, "{filter}: {}", found.text);
        assert_eq!(found.body["totalResults"], 1, "{filter}: {}", found.text);
        assert_eq!(found.body["Resources"][0]["id"], group.as_str());
        assert!(found.body["Resources"][0].get("members").is_none());
    }
    assert_eq!(
        idp.get("/Groups?filter=externalId%20eq%20%22ZZ%22")
            .await
            .body["totalResults"],
        0,
        "externalId is exact"
    );
    let listed = idp.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(listed.body["totalResults"], 2);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn display_names_are_unique_per_connection_ignoring_case(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    assert_eq!(
        idp.post("/Groups", json!({"displayName": "Engineering"}))
            .await
            .status,
        201
    );
    let other = idp
        .post("/Groups", json!({"displayName": "Sales"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let duplicate = idp
        .post("/Groups", json!({"displayName": "ENGINEERING"}))
        .await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["scimType"], "uniqueness");
    let rename = idp
        .patch(
            &format!("/Groups/{other}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": "engineering"}])),
        )
        .await;
    assert_eq!(rename.status, 409, "{}", rename.text);
    let missing = idp.post("/Groups", json!({"members": []})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["scimType"], "invalidValue");

    // Another connection of the same organization has its own namespace.
    let second = server
        .admin()
        .post(
            &format!(
                "/v1/organizations/{}/scim-connections",
                tenant.organization_id
            ),
            json!({}),
        )
        .await;
    let entra = idp.with_bearer(second.body["bearer_token"].as_str().unwrap());
    assert_eq!(
        entra
            .post("/Groups", json!({"displayName": "Engineering"}))
            .await
            .status,
        201
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn deleting_a_user_or_a_group_removes_the_memberships(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let bob = new_user(&idp, "bob@acme.test").await;
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "G", "members": [ada.clone(), bob.clone()]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(idp.delete(&format!("/Users/{ada}")).await.status, 204);
    assert_eq!(member_ids(&idp, &group).await, vec![bob.clone()]);

    assert_eq!(idp.delete(&format!("/Groups/{group}")).await.status, 204);
    assert_eq!(idp.get(&format!("/Groups/{group}")).await.status, 404);
    assert_eq!(idp.delete(&format!("/Groups/{group}")).await.status, 404);
    assert!(idp
        .get(&format!("/Users/{bob}"))
        .await
        .body
        .get("groups")
        .is_none());
    assert_eq!(server.count_rows("group_members"), 0);
    assert_eq!(
        server.event_types(&tenant.organization_id).last().unwrap(),
        "group.deleted"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn membership_changes_work_in_batches_beyond_one_statement(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let mut ids = Vec::new();
    for n in 0..620 {
        ids.push(new_user(&idp, &format!("u{n}@acme.test")).await);
    }
    let group = idp
        .post("/Groups", json!({"displayName": "Everyone"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let values: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let added = idp
        .patch(
            &format!("/Groups/{group}"),
            patch(json!([{"op": "add", "path": "members", "value": values}])),
        )
        .await;
    assert_eq!(added.status, 204, "{}", added.text);
    assert_eq!(member_ids(&idp, &group).await.len(), 620);
    let half: Vec<Value> = ids[..310].iter().map(|id| json!({"value": id})).collect();
    let replaced = idp
        .put(
            &format!("/Groups/{group}"),
            json!({"displayName": "Everyone", "members": half}),
        )
        .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body["members"].as_array().unwrap().len(), 310);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_member_s_value_cannot_be_rewritten(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "G", "members": [ada.clone()]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rewrite = idp
        .patch(
            &format!("/Groups/{group}"),
            patch(json!([{"op": "replace", "path": format!("members[value eq \"{ada}\"].value"), "value": "member-x"}])),
        )
        .await;
    assert_eq!(rewrite.status, 400);
    assert_eq!(rewrite.body["scimType"], "mutability");
    assert_eq!(member_ids(&idp, &group).await, vec![ada]);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn every_answer_with_a_user_lists_its_groups_alike(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let bob = new_user(&idp, "bob@acme.test").await;
    let mut groups = Vec::new();
    // Created out of displayName order, one with JSON's special characters in its name.
    for name in ["Zeta \"quoted\" \\ team", "alpha", "Mid"] {
        let created = idp
            .post(
                "/Groups",
                json!({"displayName": name, "members": [{"value": ada}]}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        groups.push(created.body["id"].as_str().unwrap().to_string());
    }
    let read = idp.get(&format!("/Users/{ada}")).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let listed = read.body["groups"].clone();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["display"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"Zeta \"quoted\" \\ team"), "{names:?}");
    let path = format!("/Users/{ada}");
    let patched = idp
        .patch(
            &path,
            patch(json!([{"op": "replace", "path": "title", "value": "Countess"}])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["groups"], listed, "PATCH");
    let mut body = read.body.clone();
    body["title"] = json!("Analyst");
    let replaced = idp.put(&path, body).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["groups"], listed, "PUT");
    let found = idp
        .get("/Users?filter=userName%20eq%20%22ada%40acme.test%22")
        .await;
    assert_eq!(found.body["Resources"][0]["groups"], listed, "lookup");
    let all = idp.get("/Users?count=1").await;
    assert_eq!(all.body["Resources"][0]["groups"], listed, "a full page");
    // A user in no group has no `groups`, wherever it is read.
    for read in [
        idp.get(&format!("/Users/{bob}")).await,
        idp.patch(
            &format!("/Users/{bob}"),
            patch(json!([{"op": "replace", "path": "title", "value": "Clerk"}])),
        )
        .await,
    ] {
        assert_eq!(read.status, 200, "{}", read.text);
        assert!(read.body.get("groups").is_none(), "{}", read.text);
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn membership_events_name_only_real_changes(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let bob = new_user(&idp, "bob@acme.test").await;
    let created = idp
        .post(
            "/Groups",
            json!({"displayName": "Eng", "members": [{"value": ada}]}),
        )
        .await;
    let group = created.id();
    let path = format!("/Groups/{group}");
    let version = |body: &Value| body["meta"]["version"].clone();
    let before = idp.get(&path).await;

    // Adding a member already there (twice over, in one operation) changes nothing.
    let again =
        patch(json!([{"op": "add", "path": "members", "value": [{"value": ada}, {"value": ada}]}]));
    assert_eq!(idp.patch(&path, again).await.status, 204);
    assert_eq!(version(&idp.get(&path).await.body), version(&before.body));
    let added_events = || {
        server
            .events(&tenant.organization_id)
            .into_iter()
            .filter(|(_, kind, _, _)| kind == "group.members_added")
            .map(|(_, _, data, _)| data)
            .collect::<Vec<_>>()
    };
    assert_eq!(added_events().len(), 1, "only the creation's");

    // A new member, a present one and an unknown id in one add: one added, one skipped.
    let mixed = patch(json!([{"op": "add", "path": "members",
        "value": [{"value": ada}, {"value": bob}, {"value": "member-unknown"}]}]));
    assert_eq!(idp.patch(&path, mixed).await.status, 204);
    let last = added_events().pop().unwrap();
    assert_eq!(last["member_ids"], json!([bob]));
    assert_eq!(last["skipped_member_ids"], json!(["member-unknown"]));

    // Removed and added back in one request: no net change, no event.
    let count = server.events(&tenant.organization_id).len();
    let back = patch(json!([
        {"op": "remove", "path": format!("members[value eq \"{bob}\"]")},
        {"op": "add", "path": "members", "value": [{"value": bob}]}
    ]));
    assert_eq!(idp.patch(&path, back).await.status, 204);
    assert_eq!(server.events(&tenant.organization_id).len(), count);
    assert_eq!(member_ids(&idp, &group).await, sorted(&[&ada, &bob]));
}

/// A user deleted while a group add of it waits on the user's row is skipped, not made a
/// member as a tombstone: the add re-reads the row it waited for.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_group_add_that_waited_for_the_users_deletion_skips_it(#[case] db: Db) {
    use diesel::connection::SimpleConnection;

    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let group = idp
        .post("/Groups", json!({"displayName": "Eng"}))
        .await
        .id();
    let mut other = server.begin_deleting_user(&ada);
    let adding = {
        let idp = idp.clone();
        let path = format!("/Groups/{group}");
        actix_rt::spawn(async move {
            let body = patch(json!([{"op": "add", "path": "members", "value": [{"value": ada}]}]));
            idp.patch(&path, body).await
        })
    };
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!adding.is_finished(), "the add waits for the other write");
    other.batch_execute("COMMIT").unwrap();
    let added = adding.await.unwrap();
    assert_eq!(added.status, 204, "{}", added.text);
    assert_eq!(member_ids(&idp, &group).await, Vec::<String>::new());
    assert_eq!(server.count_rows("group_members"), 0);
}

/// A user's deletion takes it out of its groups, and each of them changed: a new version
/// (an If-None-Match with the old ETag gets the group, not 304), a later lastModified, and a
/// `group.members_removed` naming the user. A group it was not in keeps its version.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn deleting_a_user_changes_each_group_it_leaves(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let bob = new_user(&idp, "bob@acme.test").await;
    let mut groups = Vec::new();
    for (name, members) in [
        ("Eng", vec![&ada, &bob]),
        ("Ops", vec![&ada]),
        ("HR", vec![&bob]),
    ] {
        let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
        let created = idp
            .post("/Groups", json!({"displayName": name, "members": members}))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        groups.push(created);
    }
    let paths: Vec<String> = groups
        .iter()
        .map(|g| format!("/Groups/{}", g.id()))
        .collect();
    let etags: Vec<String> = groups
        .iter()
        .map(|g| g.header("etag").expect("an ETag").to_string())
        .collect();

    assert_eq!(idp.delete(&format!("/Users/{ada}")).await.status, 204);

    for (n, changed) in [(0, true), (1, true), (2, false)] {
        let read = idp
            .send(
                "GET",
                &paths[n],
                None,
                &[("If-None-Match", etags[n].as_str())],
            )
            .await;
        if changed {
            assert_eq!(read.status, 200, "{}: {}", paths[n], read.text);
            assert_ne!(read.header("etag"), Some(etags[n].as_str()));
            assert!(
                read.body["meta"]["lastModified"].as_str().unwrap()
                    >= groups[n].body["meta"]["lastModified"].as_str().unwrap()
            );
        } else {
            assert_eq!(read.status, 304, "{}: {}", paths[n], read.text);
        }
    }
    assert_eq!(member_ids(&idp, &groups[0].id()).await, vec![bob.clone()]);
    assert_eq!(
        member_ids(&idp, &groups[1].id()).await,
        Vec::<String>::new()
    );

    let mut removed: Vec<(String, Value)> = server
        .events(&tenant.organization_id)
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "group.members_removed")
        .map(|(_, _, data, _)| (data["group_id"].as_str().unwrap().to_string(), data))
        .collect();
    removed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, Value)> = [&groups[0], &groups[1]]
        .iter()
        .map(|g| {
            let id = g.id();
            (id.clone(), json!({"group_id": id, "member_ids": [ada]}))
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(removed, expected);
}

/// A group's write holds its group, then takes the rows of the members it adds or removes; a
/// user's deletion takes the user's groups before the user, the same order, so the two wait
/// for each other instead of deadlocking (PostgreSQL would fail one with 503).
#[rstest]
#[case::postgres(Db::Postgres)]
#[case::sqlite(Db::Sqlite)]
#[actix_rt::test]
async fn a_users_deletion_waits_for_a_write_holding_its_group(#[case] db: Db) {
    use diesel::connection::SimpleConnection;

    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let idp = tenant.scim();
    let ada = new_user(&idp, "ada@acme.test").await;
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "Eng", "members": [{"value": ada}]}),
        )
        .await;
    let group_id = group.id();
    // Another writer holds the group, as a group's PATCH does from its start ...
    // (On SQLite the write lock holds everything.)
    let mut other = server.begin_changing(&match db {
        Db::Sqlite => "SELECT 1".to_string(),
        Db::Postgres => {
            format!("SELECT group_id FROM scim_groups WHERE group_id = '{group_id}' FOR UPDATE")
        }
    });
    let deleting = {
        let idp = idp.clone();
        let path = format!("/Users/{ada}");
        actix_rt::spawn(async move { idp.delete(&path).await })
    };
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let waited = !deleting.is_finished();
    // ... and then takes the user's row, as its add or removal of the user would: the
    // deletion has not taken it yet, so this does not wait for it. (Asserted once the other
    // transaction is over: until then a failed test would hang on it.)
    let outcome = match db {
        Db::Sqlite => Ok(()),
        Db::Postgres => other.batch_execute(&format!(
            "SELECT member_id FROM members WHERE member_id = '{ada}' FOR KEY SHARE"
        )),
    };
    other.batch_execute("COMMIT").unwrap();
    assert!(waited, "the deletion waits for the group");
    assert!(outcome.is_ok(), "{outcome:?}");
    let deleted = deleting.await.unwrap();
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(member_ids(&idp, &group_id).await, Vec::<String>::new());
}
