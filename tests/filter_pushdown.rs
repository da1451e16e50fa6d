//! Filters that SQL answers or narrows before Rust evaluates the rest (scim::list::plan) answer exactly
//! what evaluating them alone would: case, JSON escapes, LIKE wildcards, value paths, `active`
//! and `meta` dates, on both databases.

mod common;

use common::{Client, Db, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

async fn user_names(scim: &Client, filter: &str) -> Vec<String> {
    let encoded: String = filter
        .chars()
        .map(|c| match c {
            ' ' => "%20".to_string(),
            '"' => "%22".to_string(),
            '%' => "%25".to_string(),
            '&' => "%26".to_string(),
            '+' => "%2B".to_string(),
            '#' => "%23".to_string(),
            '\\' => "%5C".to_string(),
            c => c.to_string(),
        })
        .collect();
    let listed = scim
        .get(&format!("/Users?count=1000&filter={encoded}"))
        .await;
    assert_eq!(listed.status, 200, "{filter}: {}", listed.text);
    let mut names: Vec<String> = listed.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(listed.body["totalResults"], names.len(), "{filter}");
    names
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn narrowed_filters_answer_exactly(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let scim = tenant.scim();
    let users: Vec<Value> = vec![
        json!({"userName": "ada@acme.test", "name": {"familyName": "O\"Hara"},
               "emails": [{"value": "ADA@Acme.TEST", "type": "work"}], "title": "50% off_sale"}),
        json!({"userName": "bob@acme.test", "name": {"familyName": "back\\slash"},
               "emails": [{"value": "bob@home.test", "type": "home"}], "title": "50 percent"}),
        json!({"userName": "cy@acme.test", "name": {"familyName": "Hara"}, "active": false,
               "emails": [{"value": "cy@acme.test", "type": "work"}]}),
    ];
    for mut user in users {
        user["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
        let created = scim.post("/Users", user).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    for (filter, expected) in [
        // Case-insensitive attributes match whatever the stored case.
        (
            r#"emails.value eq "ada@acme.test""#,
            names(&["ada@acme.test"]),
        ),
        (
            r#"emails[type eq "WORK" and value co "ACME"]"#,
            names(&["ada@acme.test", "cy@acme.test"]),
        ),
        // JSON escapes in stored text.
        (r#"name.familyName eq "o\"hara""#, names(&["ada@acme.test"])),
        (r#"name.familyName co "\\""#, names(&["bob@acme.test"])),
        (
            r#"name.familyName ew "hara""#,
            names(&["ada@acme.test", "cy@acme.test"]),
        ),
        // LIKE's wildcards are plain text in a filter.
        (r#"title co "50%""#, names(&["ada@acme.test"])),
        (r#"title co "f_s""#, names(&["ada@acme.test"])),
        (r#"title co "_""#, names(&["ada@acme.test"])),
        // A word in a key is not a value: the document holds "title", no user's title does.
        (r#"title co "title""#, names(&[])),
        // active, from the member's status.
        ("active eq false", names(&["cy@acme.test"])),
        (
            r#"active eq false and name.familyName eq "hara""#,
            names(&["cy@acme.test"]),
        ),
        // Dates.
        (
            r#"meta.created gt "2000-01-01T00:00:00Z""#,
            names(&["ada@acme.test", "bob@acme.test", "cy@acme.test"]),
        ),
        (r#"meta.lastModified lt "2000-01-01T00:00:00Z""#, names(&[])),
        // Not narrowed, still right.
        (
            r#"title co "50" and not (title co "%")"#,
            names(&["bob@acme.test"]),
        ),
        (
            r#"emails.value eq "nobody@x.test" or name.familyName eq "hara""#,
            names(&["cy@acme.test"]),
        ),
    ] {
        assert_eq!(user_names(&scim, filter).await, expected, "{filter}");
    }
    // meta.lastModified bounds around a real instant.
    let all = scim.get("/Users?sortBy=meta.lastModified").await;
    let last = all.body["Resources"][2]["meta"]["lastModified"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        user_names(&scim, &format!(r#"meta.lastModified ge "{last}""#))
            .await
            .len(),
        1
    );
    assert_eq!(
        user_names(&scim, &format!(r#"meta.lastModified lt "{last}""#))
            .await
            .len(),
        2
    );
}
