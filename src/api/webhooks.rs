//! Webhook endpoints through the management API. An `org:` scoped caller manages its own
//! organization's endpoints; endpoints of every organization are an admin's.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Principal;
use super::v1::{accessible, decode_cursor, page_size, paginate, PageQuery};
use super::{with_db, with_write, ApiJson};
use crate::db;
use crate::domain::events::FeedCursor;
use crate::domain::webhooks::{self, WebhookFields};
use crate::error::Error;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .post(create_webhook)
            .get(list_webhooks),
    )
    .service(
        web::resource("/webhooks/{webhook_id}")
            .get(get_webhook)
            .put(update_webhook)
            .patch(update_webhook)
            .delete(delete_webhook),
    )
    .service(web::resource("/webhooks/{webhook_id}/deliveries").get(list_deliveries))
    .service(web::resource("/webhooks/{webhook_id}/replay").post(replay));
}

async fn create_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    fields: ApiJson<WebhookFields>,
) -> Result<HttpResponse, Error> {
    let mut fields = fields.0;
    if fields.organization_id.is_none() {
        fields.organization_id = principal.organization_scope().map(str::to_owned);
    }
    let policy = state.webhook_urls;
    let (webhook, secret) = with_write(&state, move |tx| {
        if let Some(organization) = &fields.organization_id {
            fields.organization_id =
                Some(accessible(tx, &principal, organization)?.organization_id);
        }
        webhooks::create(tx, &principal.actor(), &policy, fields.clone())
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({ "webhook": webhook, "secret": secret })))
}

async fn list_webhooks(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let found = with_db(&state, move |conn| {
        db::read(conn, |tx| webhooks::list(tx, only.as_deref()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "webhooks": found })))
}

async fn get_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let webhook = with_db(&state, move |conn| {
        db::read(conn, |tx| webhooks::find(tx, &path, only.as_deref()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "webhook": webhook })))
}

async fn update_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<WebhookFields>,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let policy = state.webhook_urls;
    let webhook = with_write(&state, move |tx| {
        webhooks::update(
            tx,
            &principal.actor(),
            &policy,
            &path,
            only.as_deref(),
            fields.0.clone(),
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "webhook": webhook })))
}

async fn delete_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let webhook_id = path.into_inner();
    let deleted = webhook_id.clone();
    with_write(&state, move |tx| {
        webhooks::delete(tx, &principal.actor(), &webhook_id, only.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "webhook_id": deleted, "deleted": true })))
}

/// Delivery attempts, newest first; `next_cursor` pages to older ones.
async fn list_deliveries(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let limit = page_size(page.limit)?;
    let before = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let found = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            webhooks::deliveries(tx, &path, only.as_deref(), before.as_deref(), limit + 1)
        })
    })
    .await?;
    let (found, next_cursor) = paginate(found, limit, |delivery| &delivery.delivery_id);
    Ok(HttpResponse::Ok().json(json!({ "deliveries": found, "next_cursor": next_cursor })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// A cursor of /v1/events (or a webhook's `delivered_through`); absent: from the oldest
    /// event kept.
    after: Option<String>,
}

/// Delivers again every event after `after`.
async fn replay(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    request: ApiJson<ReplayRequest>,
) -> Result<HttpResponse, Error> {
    let only = principal.organization_scope().map(str::to_owned);
    let after = request
        .0
        .after
        .as_deref()
        .map(FeedCursor::decode)
        .transpose()?;
    let webhook = with_write(&state, move |tx| {
        webhooks::replay(
            tx,
            &principal.actor(),
            &path,
            only.as_deref(),
            after.clone(),
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "webhook": webhook })))
}
