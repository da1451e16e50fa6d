mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::{json, Map, Value};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn discovery_describes_what_the_server_does(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();

    let config = idp.get("/ServiceProviderConfig").await;
    assert_eq!(config.status, 200, "{}", config.text);
    assert_eq!(config.header("content-type"), Some("application/scim+json"));
    assert_eq!(config.body["patch"]["supported"], true);
    assert_eq!(config.body["etag"]["supported"], true);
    assert_eq!(config.body["bulk"]["supported"], true);
    assert_eq!(config.body["bulk"]["maxOperations"], 1000);
    assert_eq!(config.body["bulk"]["maxPayloadSize"], 1_048_576);
    assert_eq!(config.body["filter"]["maxResults"], 1000);
    assert_eq!(
        config.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let types = idp.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 2);
    let user_type = &types.body["Resources"][0];
    assert_eq!(user_type["endpoint"], "/Users");
    assert_eq!(user_type["schemaExtensions"][0]["schema"], ENTERPRISE_URN);
    assert_eq!(idp.get("/ResourceTypes/User").await.body, *user_type);

    let schemas = idp.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            USER_URN,
            ENTERPRISE_URN,
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            SERVICE_PROVIDER_CONFIG_URN,
            RESOURCE_TYPE_URN,
            SCHEMA_URN,
        ]
    );
    assert_eq!(
        idp.get("/ResourceTypes/Group").await.body["endpoint"],
        "/Groups"
    );
    let user_schema = idp.get(&format!("/Schemas/{USER_URN}")).await;
    assert_eq!(user_schema.body, schemas.body["Resources"][0]);

    assert_eq!(idp.get("/Schemas/urn:nope").await.status, 404);
    // RFC 7644 §4: query parameters are ignored there, and a filter is 403.
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        &format!("/Schemas/{USER_URN}"),
    ] {
        let filtered = idp.get(&format!("{path}?filter=id%20eq%20%22x%22")).await;
        assert_eq!(filtered.status, 403, "{path}: {}", filtered.text);
        assert!(filtered.body["detail"].as_str().unwrap().contains("filter"));
        let ignored = idp
            .get(&format!("{path}?attributes=id&count=1&filter="))
            .await;
        assert_eq!(ignored.status, 200, "{path}");
        assert_eq!(ignored.body, idp.get(path).await.body, "{path}");
    }
    assert_eq!(idp.get("/ResourceTypes/Widget").await.status, 404);
    for (method, path, status) in [
        ("POST", "/Schemas", 405),
        ("PUT", "/ServiceProviderConfig", 405),
        ("GET", "/Me", 501),
        ("GET", "/Bulk", 405),
        ("POST", "/Bulk", 400),
    ] {
        let response = idp.send(method, path, Some(b"{}".to_vec()), &[]).await;
        assert_eq!(
            response.status, status,
            "{method} {path}: {}",
            response.text
        );
        assert_eq!(
            response.body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        // RFC 9110 §15.5.6: a 405 says which methods the resource takes.
        if status == 405 {
            let allowed = if path == "/Bulk" { "POST" } else { "GET" };
            assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
        }
    }
    assert_eq!(
        server
            .client(None)
            .get("/scim/v2/ServiceProviderConfig")
            .await
            .status,
        401
    );
}

/// A value of the advertised type for an attribute.
fn sample(attribute: &Value, n: usize) -> Value {
    match attribute["type"].as_str().unwrap() {
        "boolean" => json!(true),
        "integer" => json!(n),
        "decimal" => json!(n as f64 + 0.5),
        "dateTime" => json!("2026-11-23T12:00:00Z"),
        "reference" => json!(format!("https://example.test/{n}")),
        "binary" => json!("TUlJRGFqQ0NBbEtnQXdJQkFnSUpBTA=="),
        "complex" => {
            let mut object = Map::new();
            for (m, sub) in attribute["subAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                if sub["mutability"] == "readWrite" || sub["mutability"] == "immutable" {
                    object.insert(
                        sub["name"].as_str().unwrap().into(),
                        sample(sub, n * 10 + m),
                    );
                }
            }
            Value::Object(object)
        }
        _ => match attribute["canonicalValues"].as_array() {
            Some(values) => values[0].clone(),
            None => json!(format!(
                "{}-{n}@example.test",
                attribute["name"].as_str().unwrap()
            )),
        },
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn every_advertised_writable_attribute_reads_back_as_written(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    let mut user = Map::new();
    user.insert("schemas".into(), json!([USER_URN, ENTERPRISE_URN]));
    for schema_id in [USER_URN, ENTERPRISE_URN] {
        let schema = idp.get(&format!("/Schemas/{schema_id}")).await.body;
        let mut attributes = Map::new();
        for (n, attribute) in schema["attributes"].as_array().unwrap().iter().enumerate() {
            if attribute["mutability"] != "readWrite" {
                continue;
            }
            let value = sample(attribute, n);
            let value = if attribute["multiValued"] == true {
                json!([value])
            } else {
                value
            };
            attributes.insert(attribute["name"].as_str().unwrap().into(), value);
        }
        if schema_id == USER_URN {
            attributes.insert("userName".into(), json!("every.attribute@acme.test"));
            user.extend(attributes);
        } else {
            user.insert(schema_id.into(), Value::Object(attributes));
        }
    }
    let created = idp.post("/Users", Value::Object(user.clone())).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let read = idp
        .get(&format!("/Users/{}", created.body["id"].as_str().unwrap()))
        .await;
    for (name, value) in &user {
        if name == "schemas" {
            continue;
        }
        assert_eq!(
            read.body.get(name),
            Some(value),
            "{name} did not round-trip: {}",
            read.text
        );
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn search_by_post_answers_like_a_filtered_get(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    for name in ["ada", "bob", "cy"] {
        idp.post(
            "/Users",
            json!({"userName": format!("{name}@acme.test"), "title": name}),
        )
        .await;
    }
    idp.post("/Groups", json!({"displayName": "ada team"}))
        .await;
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"ada\" or userName sw \"bob\"",
        "attributes": ["userName"],
        "startIndex": 1,
        "count": 10
    });
    let users = idp.post("/Users/.search", search.clone()).await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert_eq!(users.body["totalResults"], 2);
    assert!(
        users.body["Resources"][0].get("title").is_none(),
        "attributes is honoured"
    );

    let everything = idp
        .post(
            "/.search",
            json!({"filter": "userName sw \"ada\" or displayName sw \"ada\"", "count": 1}),
        )
        .await;
    assert_eq!(everything.status, 200, "{}", everything.text);
    assert_eq!(everything.body["totalResults"], 2);
    assert_eq!(everything.body["Resources"].as_array().unwrap().len(), 1);
    let second = idp
        .post("/.search", json!({"filter": "userName sw \"ada\" or displayName sw \"ada\"", "startIndex": 2, "count": 1}))
        .await;
    assert_eq!(second.body["Resources"][0]["displayName"], "ada team");

    let groups = idp
        .post(
            "/Groups/.search",
            json!({"excludedAttributes": ["members"]}),
        )
        .await;
    assert_eq!(groups.body["totalResults"], 1);
    let bad = idp
        .post("/Users/.search", json!({"filter": "userName eq"}))
        .await;
    assert_eq!(bad.body["scimType"], "invalidFilter");
}

/// The keys of `document`, and of the objects in its complex attributes, that `schema` does
/// not define. `schemas` and `meta` are on every resource and in no schema (RFC 7643 §3).
fn undefined_keys(document: &Value, schema: &Value) -> Vec<String> {
    let named = |attributes: &Value, key: &str| -> Option<Value> {
        attributes
            .as_array()?
            .iter()
            .find(|attribute| attribute["name"] == key)
            .cloned()
    };
    let mut undefined = Vec::new();
    for (key, value) in document.as_object().unwrap() {
        if key == "schemas" || key == "meta" {
            continue;
        }
        let Some(attribute) = named(&schema["attributes"], key) else {
            undefined.push(key.clone());
            continue;
        };
        let elements = match value {
            Value::Array(elements) => elements.iter().collect(),
            single => vec![single],
        };
        for sub_key in elements
            .iter()
            .filter_map(|e| e.as_object())
            .flat_map(Map::keys)
        {
            if named(&attribute["subAttributes"], sub_key).is_none() {
                undefined.push(format!("{key}.{sub_key}"));
            }
        }
    }
    undefined
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_discovery_resources_fit_the_meta_schemas_served_after_the_resource_schemas(
    #[case] db: Db,
) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();

    let schemas = idp.get("/Schemas").await;
    assert_eq!(schemas.body["totalResults"], 6, "{}", schemas.text);
    let listed = schemas.body["Resources"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids[3..],
        [SERVICE_PROVIDER_CONFIG_URN, RESOURCE_TYPE_URN, SCHEMA_URN]
    );
    let mut meta_schemas = Vec::new();
    for (urn, listed) in ids[3..].iter().zip(&listed[3..]) {
        let found = idp.get(&format!("/Schemas/{urn}")).await;
        assert_eq!(found.status, 200, "{urn}: {}", found.text);
        assert_eq!(found.body, *listed, "{urn}");
        assert_eq!(found.body["meta"]["resourceType"], "Schema");
        assert_eq!(
            found.body["meta"]["location"],
            format!("{}/Schemas/{urn}", idp.base)
        );
        meta_schemas.push(found.body);
    }

    let config = idp.get("/ServiceProviderConfig").await;
    assert_eq!(
        undefined_keys(&config.body, &meta_schemas[0]),
        Vec::<String>::new()
    );
    let types = idp.get("/ResourceTypes").await;
    for resource_type in types.body["Resources"].as_array().unwrap() {
        assert_eq!(
            undefined_keys(resource_type, &meta_schemas[1]),
            Vec::<String>::new(),
            "{}",
            resource_type["id"]
        );
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn ordering_a_boolean_is_an_invalid_filter_wherever_users_are_listed(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let idp = server.new_organization("acme").await.scim();
    idp.post(
        "/Users",
        json!({"userName": "ada@acme.test", "active": true}),
    )
    .await;

    let listed = idp.get("/Users?filter=active%20gt%20true").await;
    assert_eq!(listed.status, 400, "{}", listed.text);
    assert_eq!(listed.body["scimType"], "invalidFilter");
    assert!(
        listed.body["detail"]
            .as_str()
            .unwrap()
            .contains("gt cannot compare active"),
        "{}",
        listed.text
    );
    for path in ["/Users/.search", "/.search"] {
        let searched = idp.post(path, json!({"filter": "active le false"})).await;
        assert_eq!(searched.status, 400, "{path}: {}", searched.text);
        assert_eq!(searched.body["scimType"], "invalidFilter", "{path}");
    }

    let compared = idp.get("/Users?filter=active%20eq%20true").await;
    assert_eq!(compared.body["totalResults"], 1, "{}", compared.text);
    // Groups have no `active`: an unknown attribute matches nothing.
    let groups = idp.get("/Groups?filter=active%20gt%20true").await;
    assert_eq!(groups.status, 200, "{}", groups.text);
    assert_eq!(groups.body["totalResults"], 0);
}
