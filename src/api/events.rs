//! The event feed: `GET /v1/events`, by cursor, with long-polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use super::auth::Principal;
use super::v1::{accessible, page_size};
use super::with_db;
use crate::db;
use crate::domain::events::{self, FeedCursor, FeedQuery};
use crate::error::Error;
use crate::AppState;

/// The longest a reader may wait for new events.
const MAX_WAIT_SECONDS: u64 = 30;
/// How often a waiting reader looks again even without a wake-up: events that other scimd
/// processes commit reach it within this time; this process's own commits wake it at once.
const RECHECK: Duration = Duration::from_millis(500);

/// Rung after a write that recorded events commits, waking long-polling readers.
#[derive(Debug, Default, Clone)]
pub struct EventBell(Arc<Notify>);

impl EventBell {
    pub fn ring(&self) {
        self.0.notify_waiters();
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").get(read_events));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedParams {
    after: Option<String>,
    limit: Option<i64>,
    organization_id: Option<String>,
    types: Option<String>,
    wait: Option<u64>,
}

/// Events in feed order after `after`. An `org:` scoped caller reads its own organization's
/// only. With `wait`, an empty answer is held until an event arrives or `wait` seconds pass.
async fn read_events(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<FeedParams>,
) -> Result<HttpResponse, Error> {
    let params = params.into_inner();
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(Error::invalid(
            "invalid_wait",
            format!("wait {wait} is too long: use 0 to {MAX_WAIT_SECONDS} seconds"),
        ));
    }
    let after = params
        .after
        .as_deref()
        .map(FeedCursor::decode)
        .transpose()?;
    let organization_id = match (&params.organization_id, principal.organization_scope()) {
        (Some(asked), _) => Some(asked.clone()),
        (None, scoped) => scoped.map(str::to_owned),
    };
    if let Some(organization_id) = &organization_id {
        let principal = principal.clone();
        let organization_id = organization_id.clone();
        with_db(&state, move |conn| {
            db::read(conn, |tx| accessible(tx, &principal, &organization_id))
        })
        .await?;
    }
    let query = FeedQuery {
        organization_id,
        after: after.clone(),
        types: events::parse_types(params.types.as_deref().unwrap_or(""))?,
        limit: page_size(params.limit)?,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let page = loop {
        // Listen before reading, so that a commit between the read and the wait still wakes us.
        let rung = state.events.0.notified();
        tokio::pin!(rung);
        rung.as_mut().enable();
        let query = query.clone();
        let page = with_db(&state, move |conn| {
            db::read(conn, |tx| events::read(tx, &query))
        })
        .await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !page.is_empty() || left.is_zero() {
            break page;
        }
        let _ = tokio::time::timeout(left.min(RECHECK), rung).await;
    };
    let next_cursor = page
        .last()
        .map(|event| event.cursor.encode())
        .or_else(|| after.map(|cursor| cursor.encode()));
    Ok(HttpResponse::Ok().json(json!({ "events": page, "next_cursor": next_cursor })))
}
