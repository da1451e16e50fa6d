//! Webhooks against a real receiver on 127.0.0.1: signed, in order, retried, disabled after
//! failing too long, replayed, resumed after a holder dies, and shared by two servers on one
//! database.

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{Db, Options, Tenant, TestServer};
use rstest::rstest;
use scimd::delivery::DeliverySettings;
use scimd::domain::webhooks::{RetryPolicy, UrlPolicy};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    accepted: bool,
}

/// A webhook receiver that fails (503) its first `fail_first` requests, or every request
/// while `failing` is set.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
    failing: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = self.clone();
        let server = HttpServer::new(move || {
            let receiver = receiver.clone();
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let receiver = receiver.clone();
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let fail = receiver.failing.load(Ordering::SeqCst) > 0
                            || receiver
                                .fail_first
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                        receiver.received.lock().unwrap().push(Received {
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signature: header("webhook-signature"),
                            body: body.to_vec(),
                            accepted: !fail,
                        });
                        if fail {
                            HttpResponse::ServiceUnavailable().finish()
                        } else {
                            HttpResponse::NoContent().finish()
                        }
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_rt::spawn(server);
        url
    }

    /// The events accepted (2xx), in the order they arrived.
    fn accepted(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.accepted)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    /// Waits until `done` holds of the accepted events (at most 30 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {accepted:?}"
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn fast_delivery(disable_after: Duration) -> DeliverySettings {
    DeliverySettings {
        workers: 2,
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            disable_after,
        },
        timeout: Duration::from_secs(5),
        urls: UrlPolicy {
            allow_private: true,
        },
        idle: Duration::from_millis(50),
        lease: Duration::from_secs(20),
    }
}

fn with_delivery(disable_after: Duration) -> Options {
    Options {
        delivery: Some(fast_delivery(disable_after)),
        ..Options::default()
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

/// The organization's events as the feed has them, after the webhook was created.
fn sequences(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect()
}

async fn create_webhook(server: &TestServer, tenant: &Tenant, url: &str) -> (String, String) {
    let created = server
        .admin()
        .post(
            "/v1/webhooks",
            json!({"url": url, "organization_id": tenant.organization_id}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    (
        created.body["webhook"]["webhook_id"]
            .as_str()
            .unwrap()
            .to_string(),
        created.body["secret"].as_str().unwrap().to_string(),
    )
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn deliveries_are_signed_in_order_and_retried_until_accepted(#[case] db: Db) {
    let server = TestServer::start_with(db, with_delivery(Duration::from_secs(3600))).await;
    let tenant = server.new_organization("acme").await;
    let receiver = Receiver::default();
    receiver.fail_first.store(3, Ordering::SeqCst);
    let url = receiver.start();
    let (webhook_id, secret) = create_webhook(&server, &tenant, &url).await;
    assert!(secret.starts_with("whsec_"));

    for n in 0..6 {
        let created = tenant
            .scim()
            .post("/Users", user(&format!("u{n}@acme.test")))
            .await;
        assert_eq!(created.status, 201);
    }
    // webhook.created, then six member.created.
    let accepted = receiver
        .wait_for("seven events", |accepted| accepted.len() >= 7)
        .await;
    assert_eq!(
        accepted.len(),
        7,
        "an event was delivered twice after acceptance"
    );
    let first = accepted[0]["sequence"].as_i64().unwrap();
    assert_eq!(sequences(&accepted), (first..first + 7).collect::<Vec<_>>());
    assert_eq!(accepted[0]["type"], "webhook.created");
    assert!(accepted[1..].iter().all(|e| e["type"] == "member.created"));
    // What arrived is exactly what the feed has.
    let feed = server
        .admin()
        .get(&format!(
            "/v1/events?organization_id={}",
            tenant.organization_id
        ))
        .await;
    let feed_tail: Vec<Value> = feed.body["events"].as_array().unwrap()[2..].to_vec();
    assert_eq!(accepted, feed_tail);

    // Every request is signed the Standard Webhooks way, with the id of its event.
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 10, "3 refused attempts and 7 accepted");
    for request in &received {
        let timestamp: i64 = request.timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
        assert_eq!(
            request.signature,
            scimd::domain::webhooks::sign(&secret, &request.id, timestamp, &request.body)
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["event_id"], request.id.as_str());
    }
    // The first event was refused three times, then accepted.
    assert!(received[..4].iter().all(|r| r.id == received[0].id));

    let admin = server.admin();
    let log = admin
        .get(&format!("/v1/webhooks/{webhook_id}/deliveries?limit=100"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let log = log.body["deliveries"].as_array().unwrap().clone();
    assert_eq!(log.len(), 10);
    let failures: Vec<&Value> = log.iter().filter(|d| d["succeeded"] == false).collect();
    assert_eq!(failures.len(), 3);
    assert!(failures.iter().all(|d| d["status_code"] == 503));
    assert_eq!(
        failures
            .iter()
            .map(|d| d["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let webhook = admin.get(&format!("/v1/webhooks/{webhook_id}")).await;
    assert_eq!(webhook.body["webhook"]["attempts"], 0);
    assert_eq!(webhook.body["webhook"]["failing_since"], Value::Null);
    assert!(webhook.body["webhook"].get("secret").is_none());
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_endpoint_failing_too_long_is_disabled_then_enabled_and_replayed(#[case] db: Db) {
    let server = TestServer::start_with(db, with_delivery(Duration::from_millis(300))).await;
    let tenant = server.new_organization("acme").await;
    let receiver = Receiver::default();
    receiver.failing.store(1, Ordering::SeqCst);
    let url = receiver.start();
    let (webhook_id, _) = create_webhook(&server, &tenant, &url).await;
    tenant.scim().post("/Users", user("ada@acme.test")).await;

    let admin = server.admin();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let webhook = admin.get(&format!("/v1/webhooks/{webhook_id}")).await;
        if webhook.body["webhook"]["status"] == "disabled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never disabled: {}",
            webhook.text
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server
        .event_types(&tenant.organization_id)
        .contains(&"webhook.disabled".to_string()));
    let attempts = receiver.received.lock().unwrap().len();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received.lock().unwrap().len(),
        attempts,
        "a disabled endpoint got requests"
    );

    // The receiver recovers; enabling the endpoint delivers what it missed, in order.
    receiver.failing.store(0, Ordering::SeqCst);
    let enabled = admin
        .patch(
            &format!("/v1/webhooks/{webhook_id}"),
            json!({"status": "enabled"}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let accepted = receiver
        .wait_for("the missed events", |a| {
            a.iter().any(|e| e["type"] == "webhook.updated")
        })
        .await;
    let kinds: Vec<&str> = accepted
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "webhook.created",
            "member.created",
            "webhook.disabled",
            "webhook.updated"
        ]
    );

    // Replay from the start delivers every kept event again.
    let replayed = admin
        .post(&format!("/v1/webhooks/{webhook_id}/replay"), json!({}))
        .await;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    let all = receiver
        .wait_for("the replay", |a| {
            a.iter()
                .filter(|e| e["type"] == "organization.created")
                .count()
                == 1
                && a.iter().any(|e| e["type"] == "webhook.replayed")
        })
        .await;
    assert_eq!(all[4]["type"], "organization.created");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_dead_holder_s_lease_runs_out_and_nothing_is_lost(#[case] db: Db) {
    // This server delivers nothing: it plays the process that died holding the lease.
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let receiver = Receiver::default();
    let url = receiver.start();
    let (webhook_id, _) = create_webhook(&server, &tenant, &url).await;
    for n in 0..5 {
        tenant
            .scim()
            .post("/Users", user(&format!("u{n}@acme.test")))
            .await;
    }
    {
        use diesel::prelude::*;
        use scimd::db::schema::webhooks;
        let mut conn = server.pool.get().unwrap();
        let until = scimd::domain::now() + chrono::Duration::milliseconds(1500);
        diesel::update(webhooks::table.find(&webhook_id))
            .set((
                webhooks::lease_owner.eq("a-dead-process"),
                webhooks::lease_until.eq(until),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let started = Instant::now();
    let survivor = server
        .sibling(with_delivery(Duration::from_secs(3600)))
        .await;
    let accepted = receiver.wait_for("every event", |a| a.len() >= 6).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the lease was not respected"
    );
    assert_eq!(accepted.len(), 6);
    let first = accepted[0]["sequence"].as_i64().unwrap();
    assert_eq!(sequences(&accepted), (first..first + 6).collect::<Vec<_>>());
    survivor.stop().await;
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn two_servers_on_one_database_deliver_each_event(#[case] db: Db) {
    let first = TestServer::start_with(db, with_delivery(Duration::from_secs(3600))).await;
    let second = first
        .sibling(with_delivery(Duration::from_secs(3600)))
        .await;
    let tenants = [
        first.new_organization("acme").await,
        first.new_organization("beta").await,
    ];
    let receiver = Receiver::default();
    let url = receiver.start();
    let global = first
        .admin()
        .post(
            "/v1/webhooks",
            json!({"url": url, "event_types": ["member.*"]}),
        )
        .await;
    assert_eq!(global.status, 201, "{}", global.text);
    for n in 0..20 {
        let tenant = &tenants[n % 2];
        let via = if n % 3 == 0 { &second } else { &first };
        let scim = common::Client {
            base: format!("{}/scim/v2", via.base),
            bearer: Some(tenant.token.clone()),
        };
        assert_eq!(
            scim.post("/Users", user(&format!("u{n}@example.test")))
                .await
                .status,
            201
        );
    }
    let accepted = receiver
        .wait_for("20 distinct events", |a| {
            a.iter()
                .map(|e| e["event_id"].as_str().unwrap())
                .collect::<HashSet<_>>()
                .len()
                == 20
        })
        .await;
    let duplicates = accepted.len() - 20;
    println!("duplicates: {duplicates}");
    assert!(duplicates <= 2, "{duplicates} duplicate deliveries");
    assert!(accepted.iter().all(|e| e["type"] == "member.created"));
    // In order per organization (first deliveries).
    let mut seen = HashSet::new();
    for tenant in &tenants {
        let ours: Vec<i64> = accepted
            .iter()
            .filter(|e| e["organization_id"] == tenant.organization_id.as_str())
            .filter(|e| seen.insert(e["event_id"].as_str().unwrap().to_string()))
            .map(|e| e["sequence"].as_i64().unwrap())
            .collect();
        let mut sorted = ours.clone();
        sorted.sort();
        assert_eq!(ours, sorted);
    }
    second.stop().await;
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn endpoints_belong_to_their_organization(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let ours = server.new_organization("ours").await;
    let theirs = server.new_organization("theirs").await;
    let receiver = Receiver::default();
    let url = receiver.start();
    let (their_hook, _) = create_webhook(&server, &theirs, &url).await;
    let scoped = server.client(Some(&server.jwt(&format!("org:{}", ours.organization_id))));

    // Created for our organization whatever the body says, never for theirs.
    let mine = scoped.post("/v1/webhooks", json!({"url": url})).await;
    assert_eq!(mine.status, 201, "{}", mine.text);
    assert_eq!(
        mine.body["webhook"]["organization_id"],
        ours.organization_id.as_str()
    );
    let foreign = scoped
        .post(
            "/v1/webhooks",
            json!({"url": url, "organization_id": theirs.organization_id}),
        )
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    let listed = scoped.get("/v1/webhooks").await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 1);
    for attempt in [
        scoped.get(&format!("/v1/webhooks/{their_hook}")).await,
        scoped
            .patch(&format!("/v1/webhooks/{their_hook}"), json!({"url": url}))
            .await,
        scoped.delete(&format!("/v1/webhooks/{their_hook}")).await,
        scoped
            .get(&format!("/v1/webhooks/{their_hook}/deliveries"))
            .await,
        scoped
            .post(&format!("/v1/webhooks/{their_hook}/replay"), json!({}))
            .await,
    ] {
        assert_eq!(attempt.status, 404, "{}", attempt.text);
    }
    let admin = server.admin();
    for bad in [
        json!({"url": "ftp://example.com/"}),
        json!({"url": "not a url"}),
        json!({}),
        json!({"url": url, "event_types": ["Member.*"]}),
        json!({"url": url, "status": "disabled"}),
    ] {
        let refused = admin.post("/v1/webhooks", bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
    }
}
