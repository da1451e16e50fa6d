//! The event feed, `GET /v1/events`: order, cursor, filters, scopes, long-polling, retention,
//! and that concurrent writers never slip an event behind a reader's cursor.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{Client, Db, Tenant, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
           "name": {"givenName": name}})
}

/// Reads the feed from `after` until it comes back empty; returns the events and the cursor.
async fn drain(
    client: &Client,
    query: &str,
    mut after: Option<String>,
) -> (Vec<Value>, Option<String>) {
    let mut events = Vec::new();
    loop {
        let cursor = after
            .as_deref()
            .map_or(String::new(), |c| format!("&after={c}"));
        let page = client
            .get(&format!("/v1/events?limit=7{query}{cursor}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let batch = page.body["events"].as_array().unwrap().clone();
        after = page.body["next_cursor"].as_str().map(str::to_owned);
        if batch.is_empty() {
            return (events, after);
        }
        events.extend(batch);
    }
}

/// `drain` until at least `expected` events came: on PostgreSQL a transaction of another test
/// (the cluster is shared) can hold the feed back for a moment.
async fn drain_expecting(
    client: &Client,
    query: &str,
    after: Option<String>,
    expected: usize,
) -> (Vec<Value>, Option<String>) {
    let (mut events, mut after) = drain(client, query, after).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < expected && Instant::now() < deadline {
        let (more, next) = drain(client, &format!("{query}&wait=1"), after.clone()).await;
        events.extend(more);
        after = next;
    }
    (events, after)
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_feed_pages_in_order_and_filters(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let beta = server.new_organization("beta").await;
    let created = acme.scim().post("/Users", user("ada@acme.test")).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    beta.scim().post("/Users", user("bo@beta.test")).await;
    acme.scim()
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    acme.scim().delete(&format!("/Users/{id}")).await;

    let admin = server.admin();
    let (all, cursor) =
        drain_expecting(&admin, "", None, server.count_rows("events") as usize).await;
    // Everything, each organization's events in its own sequence, every one once.
    assert_eq!(all.len() as i64, server.count_rows("events"));
    let mut last: HashMap<String, i64> = HashMap::new();
    for event in &all {
        let organization = event["organization_id"].as_str().unwrap().to_string();
        let sequence = event["sequence"].as_i64().unwrap();
        assert_eq!(
            sequence,
            last.get(&organization).copied().unwrap_or(0) + 1,
            "{event}"
        );
        last.insert(organization, sequence);
        for field in [
            "event_id",
            "source",
            "actor",
            "subject_id",
            "occurred_at",
            "data",
        ] {
            assert!(!event[field].is_null(), "{field} missing in {event}");
        }
    }
    let acme_events: Vec<Value> = all
        .iter()
        .filter(|e| e["organization_id"] == acme.organization_id.as_str())
        .cloned()
        .collect();
    assert_eq!(
        types(&acme_events),
        [
            "organization.created",
            "scim_connection.created",
            "member.created",
            "member.deactivated",
            "member.deleted"
        ]
    );
    let deactivated = &acme_events[3];
    assert_eq!(deactivated["source"], "scim");
    assert_eq!(deactivated["actor"], acme.connection_id.as_str());
    assert_eq!(deactivated["data"]["status"], "inactive");
    assert_eq!(deactivated["previous"]["status"], "active");
    assert_eq!(acme_events[4]["data"], json!({"member_id": id}));

    // Nothing new: the cursor stays where it was.
    let idle = admin
        .get(&format!("/v1/events?after={}", cursor.clone().unwrap()))
        .await;
    assert_eq!(idle.body["events"], json!([]));
    assert_eq!(idle.body["next_cursor"].as_str(), cursor.as_deref());

    // Filters: by organization, by type and prefix (underscores are literal).
    let (only_acme, _) = drain(
        &admin,
        &format!("&organization_id={}", acme.organization_id),
        None,
    )
    .await;
    assert_eq!(only_acme, acme_events);
    let (members, _) = drain_expecting(&admin, "&types=member.*", None, 4).await;
    assert_eq!(
        types(&members),
        [
            "member.created",
            "member.created",
            "member.deactivated",
            "member.deleted"
        ]
    );
    let (connections, _) =
        drain_expecting(&admin, "&types=scim_connection.*,member.deleted", None, 3).await;
    assert_eq!(
        types(&connections),
        [
            "scim_connection.created",
            "scim_connection.created",
            "member.deleted"
        ]
    );

    // An organization's JWT reads its own feed only.
    let scoped = server.client(Some(&server.jwt(&format!("org:{}", beta.organization_id))));
    let (own, _) = drain_expecting(&scoped, "", None, 3).await;
    assert!(own
        .iter()
        .all(|e| e["organization_id"] == beta.organization_id.as_str()));
    assert_eq!(own.len(), 3);
    let foreign = scoped
        .get(&format!(
            "/v1/events?organization_id={}",
            acme.organization_id
        ))
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);

    for bad in [
        "after=nonsense",
        "wait=31",
        "types=Member.*",
        "types=*",
        "limit=0",
        "colour=red",
    ] {
        let refused = admin.get(&format!("/v1/events?{bad}")).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_waiting_reader_wakes_when_an_event_commits(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let expected = server.count_rows("events") as usize;
    let (_, cursor) = drain_expecting(&admin, "", None, expected).await;
    let cursor = cursor.unwrap();

    let started = Instant::now();
    let reader = {
        let admin = admin.clone();
        let cursor = cursor.clone();
        actix_rt::spawn(async move {
            admin
                .get(&format!("/v1/events?wait=20&after={cursor}"))
                .await
        })
    };
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let created = acme.scim().post("/Users", user("ada@acme.test")).await;
    assert_eq!(created.status, 201);
    let woke = reader.await.unwrap();
    assert_eq!(woke.status, 200, "{}", woke.text);
    assert_eq!(
        types(woke.body["events"].as_array().unwrap()),
        ["member.created"]
    );
    // Well before the 20 s wait ran out: the commit woke it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // With nothing to report, the wait runs out and the cursor comes back unchanged.
    let next = woke.body["next_cursor"].as_str().unwrap();
    let quiet = admin.get(&format!("/v1/events?wait=1&after={next}")).await;
    assert_eq!(quiet.body["events"], json!([]));
    assert_eq!(quiet.body["next_cursor"], next);
}

/// Concurrent SCIM writes in two organizations while a reader follows the feed: the reader
/// sees every event exactly once, each organization's in sequence, and replaying the events
/// reproduces every member's current state.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn concurrent_writers_never_slip_an_event_behind_the_cursor(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenants = [
        server.new_organization("acme").await,
        server.new_organization("beta").await,
    ];
    let admin = server.admin();

    async fn writer(tenant_base: String, token: String, worker: usize) {
        let scim = Client {
            base: tenant_base,
            bearer: Some(token),
        };
        let group = scim
            .post(
                "/Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                       "displayName": format!("g{worker}")}),
            )
            .await;
        assert_eq!(group.status, 201, "{}", group.text);
        let group = format!("/Groups/{}", group.body["id"].as_str().unwrap());
        let membership = |op: &str, id: &str| {
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": op, "path": "members", "value": [{"value": id}]}]})
        };
        for n in 0..12 {
            let name = format!("w{worker}-{n}@example.test");
            let created = scim.post("/Users", user(&name)).await;
            assert_eq!(created.status, 201, "{}", created.text);
            let id = created.body["id"].as_str().unwrap().to_string();
            let added = scim.patch(&group, membership("add", &id)).await;
            assert_eq!(added.status, 204, "{}", added.text);
            let patch = |value: Value| {
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "value": value}]})
            };
            match n % 4 {
                0 => assert_eq!(
                    scim.patch(&format!("/Users/{id}"), patch(json!({"active": false})))
                        .await
                        .status,
                    200
                ),
                1 => assert_eq!(
                    scim.patch(
                        &format!("/Users/{id}"),
                        patch(json!({"displayName": format!("Renamed {n}")}))
                    )
                    .await
                    .status,
                    200
                ),
                2 => assert_eq!(scim.delete(&format!("/Users/{id}")).await.status, 204),
                _ => assert_eq!(
                    scim.patch(&group, membership("remove", &id)).await.status,
                    204
                ),
            }
        }
        let renamed = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"displayName": format!("G{worker} renamed")}}]});
        assert_eq!(scim.patch(&group, renamed).await.status, 204);
        if worker == 3 {
            assert_eq!(scim.delete(&group).await.status, 204);
        }
    }
    let writers: Vec<_> = (0..4)
        .map(|worker| {
            let tenant: &Tenant = &tenants[worker % 2];
            actix_rt::spawn(writer(
                format!("{}/scim/v2", tenant.base),
                tenant.token.clone(),
                worker,
            ))
        })
        .collect();

    // Follow the feed while they write.
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut running = true;
    while running {
        running = !writers.iter().all(|w| w.is_finished());
        let (batch, next) = drain(&admin, "", cursor.clone()).await;
        seen.extend(batch);
        cursor = next;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let missing = server.count_rows("events") as usize - seen.len();
    let (rest, _) = drain_expecting(&admin, "", cursor, missing).await;
    seen.extend(rest);

    let ids: HashSet<&str> = seen
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), seen.len(), "an event was read twice");
    assert_eq!(
        seen.len() as i64,
        server.count_rows("events"),
        "an event was missed"
    );
    let mut last: HashMap<&str, i64> = HashMap::new();
    for event in &seen {
        let organization = event["organization_id"].as_str().unwrap();
        let sequence = event["sequence"].as_i64().unwrap();
        assert_eq!(
            sequence,
            last.get(organization).copied().unwrap_or(0) + 1,
            "out of order: {event}"
        );
        last.insert(organization, sequence);
    }

    // The per-connection user count that unfiltered lists report kept up with the concurrent
    // writers: it equals a count of the users themselves.
    for tenant in &tenants {
        let counted = tenant.scim().get("/Users?count=0").await;
        let scanned = tenant.scim().get("/Users?count=0&filter=userName+pr").await;
        assert_eq!(counted.body["totalResults"], 18, "{}", counted.text);
        assert_eq!(scanned.body["totalResults"], 18, "{}", scanned.text);
    }

    // Replay: the last full picture of each member, or its deletion.
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    for event in &seen {
        let kind = event["type"].as_str().unwrap();
        if !kind.starts_with("member.") || kind == "member.roles_changed" {
            continue;
        }
        let id = event["subject_id"].as_str().unwrap().to_string();
        let state = if kind == "member.deleted" {
            json!({"status": "deleted"})
        } else {
            event["data"].clone()
        };
        replayed.insert(id, state);
    }
    assert_eq!(replayed.len(), 48);

    // Replay the groups: names, memberships, deletions (deleting a user takes it out of every
    // group, as member.deleted says).
    let mut groups: BTreeMap<String, (String, String, HashSet<String>)> = BTreeMap::new();
    for event in &seen {
        let data = &event["data"];
        let subject = event["subject_id"].as_str().unwrap().to_string();
        let ids = |data: &Value| -> Vec<String> {
            data["member_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_string())
                .collect()
        };
        match event["type"].as_str().unwrap() {
            "group.created" => {
                let organization = event["organization_id"].as_str().unwrap().to_string();
                let name = data["display_name"].as_str().unwrap().to_string();
                groups.insert(subject, (organization, name, HashSet::new()));
            }
            "group.updated" => {
                groups.get_mut(&subject).unwrap().1 = data["display_name"].as_str().unwrap().into();
            }
            "group.members_added" => groups.get_mut(&subject).unwrap().2.extend(ids(data)),
            "group.members_removed" => {
                for id in ids(data) {
                    groups.get_mut(&subject).unwrap().2.remove(&id);
                }
            }
            "group.deleted" => {
                groups.remove(&subject);
            }
            "member.deleted" => {
                for (_, _, members) in groups.values_mut() {
                    members.remove(&subject);
                }
            }
            _ => {}
        }
    }
    assert_eq!(groups.len(), 3);
    for (id, (organization, name, members)) in &groups {
        let tenant = tenants
            .iter()
            .find(|t| &t.organization_id == organization)
            .unwrap();
        let current = tenant.scim().get(&format!("/Groups/{id}")).await;
        assert_eq!(current.status, 200, "{}", current.text);
        assert_eq!(current.body["displayName"], name.as_str());
        let current_members: HashSet<String> = current.body["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(&current_members, members, "{name}");
        assert_eq!(members.len(), 6, "{name}: 12 added, 3 removed, 3 deleted");
    }
    for (id, state) in &replayed {
        let tenant = if tenants[0].organization_id
            == seen
                .iter()
                .find(|e| e["subject_id"] == id.as_str())
                .unwrap()["organization_id"]
        {
            &tenants[0]
        } else {
            &tenants[1]
        };
        let current = admin
            .get(&format!(
                "/v1/organizations/{}/members/{id}",
                tenant.organization_id
            ))
            .await;
        let member = &current.body["member"];
        assert_eq!(member["status"], state["status"], "{id}");
        if state["status"] != "deleted" {
            for field in ["email_address", "name", "version", "updated_at"] {
                assert_eq!(member[field], state[field], "{id} {field}");
            }
        }
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn old_events_are_pruned(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    acme.scim().post("/Users", user("ada@acme.test")).await;
    let admin = server.admin();
    let (before, cursor) = drain_expecting(&admin, "", None, 3).await;
    assert_eq!(before.len(), 3);

    let mut conn = server.pool.get().unwrap();
    let future = scimd::domain::now() + chrono::Duration::seconds(1);
    let pruned =
        scimd::db::write(&mut conn, |tx| scimd::domain::events::prune(tx, future)).unwrap();
    assert_eq!(pruned, 3);
    drop(conn);
    assert_eq!(server.count_rows("events"), 0);

    // The organization's numbering goes on, and a reader's cursor still works.
    let created = acme.scim().post("/Users", user("bo@acme.test")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (after, _) = drain_expecting(&admin, "", cursor, 1).await;
    assert_eq!(types(&after), ["member.created"]);
    assert_eq!(after[0]["sequence"], 4);
}
