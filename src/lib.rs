//! scimd: a multi-tenant SCIM 2.0 provisioning server. `server` builds the one actix App that
//! both `scimd serve` and the integration tests run.

pub mod api;
pub mod config;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod scim;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Logger};
use actix_web::{web, App, HttpServer};

use api::auth::{JwtVerifier, TokenCache};

/// What every request handler can reach.
pub struct AppState {
    pub pool: db::Pool,
    pub backend: db::Backend,
    pub public_url: Option<String>,
    /// `None` when no JWT key is configured: the management API then refuses every call.
    pub jwt: Option<JwtVerifier>,
    pub tokens: TokenCache,
    pub max_body_bytes: usize,
    /// Wakes long-polling readers of /v1/events when this process commits events.
    pub events: api::events::EventBell,
    /// Events older than this are pruned in the background; `None` keeps them forever.
    pub event_retention: Option<std::time::Duration>,
    /// Which webhook URLs the API accepts.
    pub webhook_urls: domain::webhooks::UrlPolicy,
    /// The webhook delivery threads, stopped when the state is dropped; `None`: this process
    /// delivers nothing (others sharing the database may).
    pub delivery: Option<delivery::Delivery>,
}

/// How often old events are pruned, and planner statistics refreshed.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Refreshes planner statistics every hour where nothing else does (db::refresh_statistics:
/// SQLite, and PostgreSQL without autovacuum; `scimd serve` does it once before serving), for
/// as long as the server runs: a database that grows while it serves (an IdP's first sync) is
/// planned by its present size.
async fn refresh_statistics(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        if let Err(error) = api::with_db(&state, db::refresh_statistics).await {
            log::warn!("refreshing planner statistics: {error}");
        }
    }
}

/// Deletes events older than `retention` now and every hour, for as long as the server runs.
async fn prune_events(state: web::Data<AppState>, retention: std::time::Duration) {
    loop {
        let Some(cutoff) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|retention| domain::now().checked_sub_signed(retention))
        else {
            return;
        };
        let pruned = api::with_write(&state, move |tx| domain::events::prune(tx, cutoff)).await;
        match pruned {
            Ok(0) => {}
            Ok(count) => log::info!("pruned {count} events older than {cutoff}"),
            Err(error) => log::warn!("pruning events: {error}"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// One log line a request: request id, peer, method, path (never the query, which may carry
/// filter values), status, size, latency.
const ACCESS_LOG_FORMAT: &str = r#"%{x-request-id}o %a "%{method}xi %U" %s %bB %Dms"#;

/// Serves the app on `listener` until SIGINT or SIGTERM, then drains in-flight requests.
pub fn server(
    state: web::Data<AppState>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    let max_body_bytes = state.max_body_bytes;
    if let Some(retention) = state.event_retention {
        actix_web::rt::spawn(prune_events(state.clone(), retention));
    }
    actix_web::rt::spawn(refresh_statistics(state.clone()));
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(max_body_bytes))
            .configure(api::routes)
            .default_service(web::to(api::no_such_endpoint))
            .wrap(from_fn(api::request_id))
            .wrap(
                Logger::new(ACCESS_LOG_FORMAT)
                    .custom_request_replace("method", |req| req.method().to_string()),
            )
    })
    .workers(workers)
    .shutdown_timeout(30)
    .listen(listener)?
    .run())
}
