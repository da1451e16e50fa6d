//! HTTP: extract, call one domain function, render. No rules live here.

pub mod auth;
pub mod events;
mod members;
pub mod ops;
pub mod scim;
pub mod v1;
mod webhooks;

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

use crate::db::DbConn;
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    ops::routes(cfg);
    v1::routes(cfg);
    scim::routes(cfg);
}

/// Runs database work on the blocking pool, with a pooled connection.
pub async fn with_db<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let pool = state.pool.clone();
    let (value, recorded) = web::block(move || recording(|| work(&mut *pool.get()?))).await??;
    ring_if_recorded(&state.events, recorded);
    Ok(value)
}

/// Runs `change` as one write (`db::Pool::write_async`). On SQLite it runs on the writer's
/// thread, so whether it recorded an event travels with its result. Readers waiting for
/// events are told once it has committed, also when the request was cancelled meanwhile.
pub async fn with_write<T: Send + 'static>(
    state: &AppState,
    change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let bell = state.events.clone();
    let written = state.pool.write_async(
        move |tx| recording(|| change(tx)),
        move |&(_, recorded)| ring_if_recorded(&bell, recorded),
    );
    Ok(written.await?.0)
}

/// `work`'s value, and whether it recorded an event on this thread.
fn recording<T>(work: impl FnOnce() -> Result<T, Error>) -> Result<(T, bool), Error> {
    crate::domain::events::take_recorded();
    let value = work()?;
    Ok((value, crate::domain::events::take_recorded()))
}

/// Tells readers waiting for events to look again, when the work just committed recorded one.
fn ring_if_recorded(bell: &events::EventBell, recorded: bool) {
    if recorded {
        bell.ring();
    }
}

/// The base URL links are built from: `--public-url`, else the request's scheme and Host.
pub fn base_url(state: &AppState, req: &HttpRequest) -> String {
    let info = req.connection_info();
    crate::config::base_url(state.public_url.as_deref(), info.scheme(), info.host())
}

/// A JSON body for the management API. Errors name the field at fault
/// (`email_invites: unknown variant …`), and a body over the limit is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = body_bytes(req, payload);
        Box::pin(async move { parse_json(&body.await?).map(ApiJson) })
    }
}

/// The request body, at most `--max-body-bytes` long.
pub fn body_bytes(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, Error>> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.max_body_bytes)
        .unwrap_or_default();
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        bytes.await.map_err(|error| {
            let status = error.as_response_error().status_code();
            if status.as_u16() == 413 {
                Error::PayloadTooLarge(format!(
                    "the request body is larger than the {limit}-byte limit"
                ))
            } else {
                Error::invalid(
                    "invalid_request_body",
                    format!("the request body could not be read: {error}"),
                )
            }
        })
    }
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid(
            "invalid_request_body",
            "the request needs a JSON body",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let cause = error.into_inner();
        let message = if path == "." {
            format!("request body: {cause}")
        } else {
            format!("{path}: {cause}")
        };
        Error::invalid("invalid_request_body", message)
    })
}

/// Gives every response an `x-request-id` (the caller's, when it sent a sane one), which the
/// request log line carries too.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    const HEADER: HeaderName = HeaderName::from_static("x-request-id");
    let id = req
        .headers()
        .get(&HEADER)
        .filter(|value| {
            value.len() <= 64
                && value
                    .to_str()
                    .is_ok_and(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value")
        });
    let mut response = next.call(req).await?;
    response.headers_mut().insert(HEADER, id);
    Ok(response)
}

/// Under `/scim/v2`, every error — ours, or one actix produced (no route, wrong method,
/// unreadable body) — leaves as a SCIM Error (RFC 7644 §3.12).
pub async fn scim_errors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    render_errors(req, next, |error| error.scim_response(), true).await
}

/// Under `/v1` and the operations routes, errors actix produced get our JSON shape too.
pub async fn api_errors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    render_errors(req, next, |error| error.error_response(), false).await
}

async fn render_errors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
    render: impl Fn(&Error) -> HttpResponse,
    rerender_own: bool,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let response = next.call(req).await?;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response.map_into_left_body());
    }
    let rendered = match response.response().error() {
        Some(error) => match error.as_error::<Error>() {
            Some(_) if !rerender_own => return Ok(response.map_into_left_body()),
            Some(own) => render(own),
            None => render(&Error::from_status(status, Some(error.to_string()))),
        },
        None if is_scim_json(&response) || !rerender_own && is_json(&response) => {
            return Ok(response.map_into_left_body())
        }
        None => render(&Error::from_status(status, None)),
    };
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, rendered).map_into_right_body())
}

fn content_type<B>(response: &ServiceResponse<B>) -> &str {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

fn is_scim_json<B>(response: &ServiceResponse<B>) -> bool {
    content_type(response).starts_with(SCIM_CONTENT_TYPE)
}

fn is_json<B>(response: &ServiceResponse<B>) -> bool {
    content_type(response).starts_with("application/json")
}

/// The fallback route of a scope: an unknown path is a 404 in the scope's error shape.
pub async fn no_such_endpoint() -> Result<HttpResponse, Error> {
    Err(Error::not_found("no such endpoint"))
}
