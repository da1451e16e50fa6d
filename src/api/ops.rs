//! Operations routes: no authentication, no tenant data.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::with_db;
use crate::error::Error;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The process is up and serving.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers: a load balancer may send traffic.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    with_db(&state, |conn| {
        use diesel::connection::SimpleConnection;
        conn.batch_execute("SELECT 1")
            .map_err(|error| Error::Unavailable(format!("readiness probe: {error}")))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": state.backend.as_str() })))
}
