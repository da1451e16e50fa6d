//! The test harness: the real server (`scimd::server`) on 127.0.0.1:0 against a fresh
//! database — its own SQLite file, or its own PostgreSQL schema — and a small HTTP client.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use diesel::prelude::*;
use serde_json::{json, Value};

use scimd::api::auth::{issue_jwt, JwtVerifier, TokenCache};
use scimd::config::JwtArgs;
use scimd::db::{self, DbConn};
use scimd::AppState;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL the tests use; `.ci/run` makes sure it is up.
///
/// Without TLS: a test binary ends with the servers' pools still about, and OpenSSL frees its
/// state at exit while a pool thread may still be using it through libpq (a known race:
/// diesel-rs/diesel#3441, sfackler/r2d2#137). It aborted one test binary once, all its tests
/// passed (`malloc_consolidate(): invalid chunk size`). Over loopback TLS tests nothing of
/// scimd's.
pub fn postgres_url() -> String {
    std::env::var("SCIMD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// A fresh, empty database of the given kind, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
}

impl TestDatabase {
    pub fn new(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = dir.path().join("scimd.db").to_string_lossy().into_owned();
                TestDatabase {
                    url,
                    _dir: Some(dir),
                    pg_schema: None,
                }
            }
            Db::Postgres => {
                let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&postgres_url()).unwrap_or_else(|error| {
                    panic!("PostgreSQL at {} must be running: {error}", postgres_url())
                });
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut admin)
                    .unwrap();
                let separator = if postgres_url().contains('?') {
                    '&'
                } else {
                    '?'
                };
                TestDatabase {
                    url: format!(
                        "{}{separator}options=-csearch_path%3D{schema}",
                        postgres_url()
                    ),
                    _dir: None,
                    pg_schema: Some(schema),
                }
            }
        }
    }
}

impl TestDatabase {
    /// A pool of `size` connections on this database, migrated.
    pub fn migrated_pool(&self, size: u32) -> db::Pool {
        let pool = db::connect(&self.url, size).expect("database opens");
        db::migrate(&mut pool.get().unwrap()).unwrap();
        pool
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(schema) = &self.pg_schema {
            if let Ok(mut admin) = PgConnection::establish(&postgres_url()) {
                let _ =
                    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin);
            }
        }
    }
}

pub struct TestServer {
    pub db: Db,
    pub base: String,
    pub pool: db::Pool,
    handle: ServerHandle,
    pub url: String,
    // Dropped last: the server's pool must be gone before the schema is dropped. A sibling
    // (another server on the same database) owns none.
    pub database: Option<TestDatabase>,
}

pub struct Options {
    pub jwt: JwtArgs,
    pub token_cache_ttl: Duration,
    pub max_body_bytes: usize,
    pub event_retention: Option<Duration>,
    /// Webhook delivery threads for this server; none by default.
    pub delivery: Option<scimd::delivery::DeliverySettings>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jwt: JwtArgs {
                secret: Some(JWT_SECRET.into()),
                ..Default::default()
            },
            token_cache_ttl: Duration::from_secs(2),
            max_body_bytes: 1_048_576,
            event_retention: None,
            delivery: None,
        }
    }
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, Options::default()).await
    }

    pub async fn start_with(db: Db, options: Options) -> Self {
        let database = TestDatabase::new(db);
        let mut server = Self::launch(db, &database.url, options).await;
        server.database = Some(database);
        server
    }

    /// Another server on this one's database, as a second scimd process would be.
    pub async fn sibling(&self, options: Options) -> Self {
        Self::launch(self.db, &self.url, options).await
    }

    async fn launch(db: Db, url: &str, options: Options) -> Self {
        let pool = db::connect(url, 4).expect("database opens");
        db::migrate(&mut pool.get().unwrap()).expect("migrations apply");
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            backend: db::Manager::new(url).backend(),
            public_url: None,
            jwt: JwtVerifier::from_args(&options.jwt).expect("JWT settings are valid"),
            tokens: TokenCache::new(options.token_cache_ttl),
            max_body_bytes: options.max_body_bytes,
            events: Default::default(),
            event_retention: options.event_retention,
            webhook_urls: scimd::domain::webhooks::UrlPolicy {
                allow_private: true,
            },
            delivery: options
                .delivery
                .map(|settings| scimd::delivery::Delivery::start(pool.clone(), settings)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = scimd::server(state, listener, 1).unwrap();
        let handle = server.handle();
        actix_rt::spawn(server);
        TestServer {
            db,
            base,
            pool,
            handle,
            url: url.to_string(),
            database: None,
        }
    }

    /// Stops the server and waits until it has (its webhook deliveries with it).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub fn jwt(&self, scope: &str) -> String {
        let args = JwtArgs {
            secret: Some(JWT_SECRET.into()),
            ..Default::default()
        };
        issue_jwt(&args, scope, "test-admin", Duration::from_secs(600)).unwrap()
    }

    pub fn admin(&self) -> Client {
        Client {
            base: self.base.clone(),
            bearer: Some(self.jwt("admin")),
        }
    }

    pub fn client(&self, bearer: Option<&str>) -> Client {
        Client {
            base: self.base.clone(),
            bearer: bearer.map(str::to_owned),
        }
    }

    /// Creates an organization with one SCIM connection; returns both and the token.
    pub async fn new_organization(&self, slug: &str) -> Tenant {
        let admin = self.admin();
        let created = admin
            .post(
                "/v1/organizations",
                json!({"organization_name": slug, "organization_slug": slug}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let organization_id = created.body["organization"]["organization_id"]
            .as_str()
            .unwrap()
            .to_string();
        let connection = admin
            .post(
                &format!("/v1/organizations/{organization_id}/scim-connections"),
                json!({"identity_provider": "okta"}),
            )
            .await;
        assert_eq!(connection.status, 201, "{}", connection.body);
        Tenant {
            organization_id,
            connection_id: connection.body["connection"]["connection_id"]
                .as_str()
                .unwrap()
                .into(),
            token: connection.body["bearer_token"].as_str().unwrap().into(),
            base: self.base.clone(),
        }
    }

    /// The organization's events, oldest first, as (sequence, type, data, previous).
    pub fn events(&self, organization_id: &str) -> Vec<(i64, String, Value, Option<Value>)> {
        use scimd::db::schema::events;
        let mut conn = self.pool.get().unwrap();
        let conn: &mut DbConn = &mut conn;
        events::table
            .filter(events::organization_id.eq(organization_id))
            .order(events::sequence.asc())
            .select((
                events::sequence,
                events::event_type,
                events::data,
                events::previous,
            ))
            .load::<(i64, String, String, Option<String>)>(conn)
            .unwrap()
            .into_iter()
            .map(|(sequence, kind, data, previous)| {
                (
                    sequence,
                    kind,
                    serde_json::from_str(&data).unwrap(),
                    previous.map(|p| serde_json::from_str(&p).unwrap()),
                )
            })
            .collect()
    }

    /// The organization's events, oldest first, as (type, source, subject).
    pub fn event_sources(&self, organization_id: &str) -> Vec<(String, String, String)> {
        use scimd::db::schema::events;
        let mut conn = self.pool.get().unwrap();
        let conn: &mut DbConn = &mut conn;
        events::table
            .filter(events::organization_id.eq(organization_id))
            .order(events::sequence.asc())
            .select((events::event_type, events::source, events::subject_id))
            .load(conn)
            .unwrap()
    }

    pub fn event_types(&self, organization_id: &str) -> Vec<String> {
        self.events(organization_id)
            .into_iter()
            .map(|(_, kind, _, _)| kind)
            .collect()
    }

    /// Begins another writer's transaction holding the user's row, as a write of the user
    /// does first (PostgreSQL `FOR UPDATE`; SQLite's write lock). Nothing is committed until
    /// the caller runs `COMMIT` on what this returns: a write that needs the row waits.
    pub fn begin_locking_user(
        &self,
        member_id: &str,
    ) -> diesel::r2d2::PooledConnection<db::Manager> {
        use diesel::connection::SimpleConnection;
        let mut other = self.pool.get().unwrap();
        // Ids are UUIDs: nothing to quote.
        let lock = match self.db {
            Db::Sqlite => "BEGIN IMMEDIATE".to_string(),
            Db::Postgres => format!(
                "BEGIN; SELECT member_id FROM members WHERE member_id = '{member_id}' FOR UPDATE"
            ),
        };
        other.batch_execute(&lock).unwrap();
        other
    }

    /// `begin_locking_user`, then the user's deletion as DELETE /Users does it: its status
    /// `deleted`, its group memberships gone, still uncommitted.
    pub fn begin_deleting_user(
        &self,
        member_id: &str,
    ) -> diesel::r2d2::PooledConnection<db::Manager> {
        use diesel::connection::SimpleConnection;
        let mut other = self.begin_locking_user(member_id);
        other
            .batch_execute(&format!(
                "UPDATE members SET status = 'deleted' WHERE member_id = '{member_id}'; \
                 DELETE FROM group_members WHERE member_id = '{member_id}'"
            ))
            .unwrap();
        other
    }

    /// Begins another writer's transaction and runs `statement` in it (an UPDATE holds the
    /// rows it changes until `COMMIT`; on SQLite the transaction holds the write lock), for a
    /// test of a write that must wait for it (`while_held`). On PostgreSQL its statements give
    /// up after 5 s rather than hang a failing test.
    pub fn begin_changing(&self, statement: &str) -> diesel::r2d2::PooledConnection<db::Manager> {
        use diesel::connection::SimpleConnection;
        let mut other = self.pool.get().unwrap();
        let begin = match self.db {
            Db::Sqlite => "BEGIN IMMEDIATE",
            Db::Postgres => "BEGIN; SET LOCAL statement_timeout = '5s'",
        };
        other
            .batch_execute(&format!("{begin}; {statement}"))
            .unwrap();
        other
    }

    pub fn count_rows(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.pool.get().unwrap();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut *conn)
            .unwrap()
            .n
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let stop = self.handle.stop(false);
        actix_rt::spawn(stop);
    }
}

/// Sends `request` while `other` holds its transaction (`TestServer::begin_changing`), commits
/// `other` 300 ms later, and returns whether the request was still waiting then, and its
/// response. The transaction ends before anything is asserted: a test failing while it is
/// open would hang on it.
pub async fn while_held(
    mut other: diesel::r2d2::PooledConnection<db::Manager>,
    request: impl std::future::Future<Output = Response> + 'static,
) -> (bool, Response) {
    use diesel::connection::SimpleConnection;
    let pending = actix_rt::spawn(request);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let waited = !pending.is_finished();
    other.batch_execute("COMMIT").unwrap();
    drop(other);
    (waited, pending.await.unwrap())
}

/// A new organization made of `fields` with one SCIM connection, straight through the domain
/// (no server): the tenant that connection's token would speak for.
pub fn organization_with_connection(
    tx: &mut DbConn,
    fields: scimd::domain::organizations::OrganizationFields,
) -> Result<scimd::domain::connections::Tenant, scimd::error::Error> {
    use scimd::domain::{connections, organizations, Actor};
    let organization = organizations::create(tx, &Actor::cli(), fields)?;
    let issued = connections::create(
        tx,
        &Actor::cli(),
        &organization.organization_id,
        connections::ConnectionFields::default(),
    )?;
    Ok(connections::Tenant {
        organization_id: organization.organization_id,
        connection_id: issued.connection.connection_id,
    })
}

pub struct Tenant {
    pub organization_id: String,
    pub connection_id: String,
    pub token: String,
    pub base: String,
}

impl Tenant {
    pub fn scim(&self) -> Client {
        Client {
            base: format!("{}/scim/v2", self.base),
            bearer: Some(self.token.clone()),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `id` of the resource the body is; panics without one.
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.text))
            .to_string()
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub bearer: Option<String>,
}

impl Client {
    pub fn with_bearer(&self, bearer: &str) -> Client {
        Client {
            base: self.base.clone(),
            bearer: Some(bearer.into()),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send("POST", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send("PUT", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send("PATCH", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None, &[]).await
    }

    /// Sends `body` as raw bytes, with extra headers; for malformed input.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Response {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = &self.bearer {
            request = request.insert_header(("Authorization", format!("Bearer {bearer}")));
        }
        if body.is_some() {
            request = request.insert_header(("Content-Type", "application/json"));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let mut response = match body {
            Some(body) => request.send_body(body).await,
            None => request.send().await,
        }
        .expect("the server answers");
        let bytes = response.body().limit(64 * 1024 * 1024).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}
