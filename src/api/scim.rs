//! `/scim/v2`: the IdP-facing surface, authenticated by the connection's bearer token.

use actix_web::{web, HttpResponse};

use super::auth::ScimTenant;
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::scim::ListResponse;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2")
            .wrap(actix_web::middleware::from_fn(super::scim_errors))
            .service(web::resource(["/Users", "/Users/"]).get(list_users))
            .default_service(web::to(authenticated_not_found)),
    );
}

/// Users arrive with the Users issue; until then a connection has none, and says so honestly.
async fn list_users(_tenant: ScimTenant) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .json(ListResponse::new(Vec::new(), 0, 1)))
}

/// Unknown paths answer 404 — after authentication, so that the surface is not mapped
/// anonymously.
async fn authenticated_not_found(_tenant: ScimTenant) -> Result<HttpResponse, Error> {
    Err(Error::not_found("no such SCIM endpoint"))
}
