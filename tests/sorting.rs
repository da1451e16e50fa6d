//! `sortBy` and `sortOrder` on Users and Groups, by the database and in Rust, on both
//! databases.

mod common;

use common::{Client, Db, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

fn field(list: &Value, pointer: &str) -> Vec<Value> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources in {list}"))
        .iter()
        .map(|resource| resource.pointer(pointer).cloned().unwrap_or(Value::Null))
        .collect()
}

async fn listed(scim: &Client, query: &str) -> Value {
    let response = scim.get(&format!("/Users?{query}")).await;
    assert_eq!(response.status, 200, "{query}: {}", response.text);
    response.body
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn users_sort_by_any_attribute_either_way(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let scim = tenant.scim();
    // (userName, externalId, familyName), created in this order.
    for (user_name, external_id, family) in [
        ("carol@acme.test", Some("E3"), "Zeta"),
        ("Alice@acme.test", None, "beta"),
        ("bob@acme.test", Some("E1"), "Alpha"),
        ("dave@acme.test", Some("E2"), ""),
    ] {
        let mut user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": user_name});
        if let Some(external_id) = external_id {
            user["externalId"] = json!(external_id);
        }
        if !family.is_empty() {
            user["name"] = json!({"familyName": family});
        }
        assert_eq!(scim.post("/Users", user).await.status, 201);
    }
    let names = |list: &Value| field(list, "/userName");
    let strings = |items: &[&str]| items.iter().map(|s| json!(s)).collect::<Vec<_>>();

    // By the database: userName ignoring case, either way, paged.
    assert_eq!(
        names(&listed(&scim, "sortBy=userName").await),
        strings(&[
            "Alice@acme.test",
            "bob@acme.test",
            "carol@acme.test",
            "dave@acme.test"
        ])
    );
    let page = listed(
        &scim,
        "sortBy=userName&sortOrder=descending&startIndex=2&count=2",
    )
    .await;
    assert_eq!(names(&page), strings(&["carol@acme.test", "bob@acme.test"]));
    assert_eq!(page["totalResults"], 4);
    assert_eq!(page["startIndex"], 2);
    // externalId: unassigned last when ascending, first when descending.
    assert_eq!(
        field(&listed(&scim, "sortBy=externalId").await, "/externalId"),
        [json!("E1"), json!("E2"), json!("E3"), Value::Null]
    );
    assert_eq!(
        field(
            &listed(&scim, "sortBy=externalId&sortOrder=DESCENDING").await,
            "/externalId"
        ),
        [Value::Null, json!("E3"), json!("E2"), json!("E1")]
    );
    assert_eq!(
        names(&listed(&scim, "sortBy=meta.created&sortOrder=descending").await),
        strings(&[
            "dave@acme.test",
            "bob@acme.test",
            "Alice@acme.test",
            "carol@acme.test"
        ])
    );

    // In Rust: an attribute without a column, and any filtered list.
    assert_eq!(
        names(&listed(&scim, "sortBy=name.familyName").await),
        strings(&[
            "bob@acme.test",
            "Alice@acme.test",
            "carol@acme.test",
            "dave@acme.test"
        ])
    );
    assert_eq!(
        names(&listed(&scim, "sortBy=urn:ietf:params:scim:schemas:core:2.0:User:name.familyName&sortOrder=descending").await),
        strings(&["dave@acme.test", "carol@acme.test", "Alice@acme.test", "bob@acme.test"])
    );
    let filtered = listed(
        &scim,
        "filter=externalId+pr&sortBy=userName&sortOrder=descending&count=2",
    )
    .await;
    assert_eq!(
        names(&filtered),
        strings(&["dave@acme.test", "carol@acme.test"])
    );
    assert_eq!(filtered["totalResults"], 3);
    // A POST search sorts the same way.
    let searched = scim
        .post(
            "/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "sortBy": "userName", "sortOrder": "descending", "count": 1}),
        )
        .await;
    assert_eq!(searched.status, 200, "{}", searched.text);
    assert_eq!(names(&searched.body), strings(&["dave@acme.test"]));

    // Bad sort parameters, and sorting with a cursor, are refused.
    for query in [
        "sortBy=userName&sortOrder=sideways",
        "sortBy=name..x",
        "sortBy=userName&cursor=",
    ] {
        let refused = scim.get(&format!("/Users?{query}")).await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.text);
    }
    let config = scim.get("/ServiceProviderConfig").await;
    assert_eq!(config.body["sort"]["supported"], true);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn groups_sort_by_display_name(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let scim = tenant.scim();
    for name in ["sales", "Engineering", "ops"] {
        let created = scim
            .post(
                "/Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
            )
            .await;
        assert_eq!(created.status, 201);
    }
    let list = scim
        .get("/Groups?sortBy=displayName&excludedAttributes=members")
        .await;
    assert_eq!(
        field(&list.body, "/displayName"),
        [json!("Engineering"), json!("ops"), json!("sales")]
    );
    let filtered = scim
        .get("/Groups?filter=displayName+ne+%22ops%22&sortBy=displayName&sortOrder=descending")
        .await;
    assert_eq!(
        field(&filtered.body, "/displayName"),
        [json!("sales"), json!("Engineering")]
    );
}
