//! The management API (`/v1`), authenticated by JWT. An `org:` scoped caller sees its own
//! organization only; any other answers 404, exactly as if it did not exist.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Principal;
use super::{base_url, with_db, with_write, ApiJson};
use crate::db::{self, DbConn};
use crate::domain::connections::{self, Connection, ConnectionFields, Issued, Tenant};
use crate::domain::member_roles::{self, AssignmentFields};
use crate::domain::organizations::{self, Organization, OrganizationFields};
use crate::domain::roles::{self, RoleFields};
use crate::error::Error;
use crate::AppState;

const DEFAULT_PAGE_SIZE: i64 = 100;
const MAX_PAGE_SIZE: i64 = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let organization = "/organizations/{organization}";
    let connection = "/organizations/{organization}/scim-connections/{connection}";
    cfg.service(
        web::scope("/v1")
            .wrap(actix_web::middleware::from_fn(super::api_errors))
            // Member routes first: their fixed paths (`/organizations/search`) must win over
            // `/organizations/{organization}`.
            .configure(super::members::routes)
            .configure(super::events::routes)
            .configure(super::webhooks::routes)
            .service(
                web::resource("/organizations")
                    .post(create_organization)
                    .get(list_organizations),
            )
            .service(
                web::resource(organization)
                    .get(get_organization)
                    .put(update_organization)
                    .patch(update_organization)
                    .delete(delete_organization),
            )
            .service(
                web::resource(format!("{organization}/scim-connections"))
                    .post(create_connection)
                    .get(list_connections),
            )
            .service(
                web::resource(connection)
                    .get(get_connection)
                    .put(update_connection)
                    .patch(update_connection)
                    .delete(delete_connection),
            )
            .service(
                web::resource(format!("{organization}/roles"))
                    .get(list_roles)
                    .post(create_role),
            )
            .service(
                web::resource(format!("{organization}/roles/{{role_id}}"))
                    .get(get_role)
                    .put(update_role)
                    .patch(update_role)
                    .delete(delete_role),
            )
            .service(
                web::resource(format!("{organization}/roles/{{role_id}}/members"))
                    .get(role_members),
            )
            .service(
                web::resource(format!("{connection}/group-role-assignments"))
                    .get(list_assignments)
                    .post(create_assignments),
            )
            .service(
                web::resource(format!(
                    "{connection}/group-role-assignments/{{assignment_id}}"
                ))
                .delete(delete_assignment),
            )
            .service(web::resource(format!("{connection}/rotate/start")).post(start_rotation))
            .service(web::resource(format!("{connection}/rotate/complete")).post(complete_rotation))
            .service(web::resource(format!("{connection}/rotate/cancel")).post(cancel_rotation))
            .default_service(web::to(super::no_such_endpoint)),
    );
}

/// The organization named by id or slug, if this caller may see it; otherwise 404.
pub(super) fn accessible(
    tx: &mut DbConn,
    principal: &Principal,
    id_or_slug: &str,
) -> Result<Organization, Error> {
    let organization = organizations::find(tx, id_or_slug)?;
    if !principal.may_access(&organization.organization_id) {
        return Err(organizations::not_found(id_or_slug));
    }
    Ok(organization)
}

async fn create_organization(
    state: web::Data<AppState>,
    principal: Principal,
    fields: ApiJson<OrganizationFields>,
) -> Result<HttpResponse, Error> {
    principal.require_admin()?;
    let actor = principal.actor();
    let organization = with_write(&state, move |tx| {
        organizations::create(tx, &actor, fields.0)
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({ "organization": organization })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    pub(super) limit: Option<i64>,
    pub(super) cursor: Option<String>,
}

async fn list_organizations(
    state: web::Data<AppState>,
    principal: Principal,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, Error> {
    let limit = page_size(page.limit)?;
    let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let only = principal.organization_scope().map(str::to_owned);
    let organizations = with_db(&state, move |conn| {
        organizations::list(conn, only.as_deref(), after.as_deref(), limit + 1)
    })
    .await?;
    let (organizations, next_cursor) = paginate(organizations, limit, |o| &o.organization_id);
    Ok(HttpResponse::Ok().json(json!({
        "organizations": organizations,
        "next_cursor": next_cursor,
    })))
}

async fn get_organization(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let organization = with_db(&state, move |conn| accessible(conn, &principal, &path)).await?;
    Ok(HttpResponse::Ok().json(json!({ "organization": organization })))
}

async fn update_organization(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<OrganizationFields>,
) -> Result<HttpResponse, Error> {
    let organization = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        organizations::update(
            tx,
            &principal.actor(),
            &organization.organization_id,
            fields.0,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "organization": organization })))
}

async fn delete_organization(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    principal.require_admin()?;
    let organization_id = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        organizations::delete(tx, &principal.actor(), &organization.organization_id)?;
        Ok(organization.organization_id)
    })
    .await?;
    state.tokens.forget_organization(&organization_id);
    Ok(HttpResponse::Ok().json(json!({ "organization_id": organization_id, "deleted": true })))
}

/// A connection as the API shows it: with the SCIM base URL to paste into the IdP.
#[derive(Serialize)]
pub struct ConnectionView<'a> {
    #[serde(flatten)]
    pub connection: &'a Connection,
    pub base_url: String,
}

impl<'a> ConnectionView<'a> {
    pub fn new(connection: &'a Connection, base: &str) -> Self {
        ConnectionView {
            connection,
            base_url: format!("{base}/scim/v2"),
        }
    }
}

/// The body answering a create or a rotation start: the only time the token is shown.
pub fn issued_body(issued: &Issued, base: &str, token_field: &str) -> serde_json::Value {
    json!({
        "connection": ConnectionView::new(&issued.connection, base),
        token_field: issued.token.expose(),
    })
}

async fn create_connection(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<ConnectionFields>,
) -> Result<HttpResponse, Error> {
    let issued = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        connections::create(
            tx,
            &principal.actor(),
            &organization.organization_id,
            fields.0,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(issued_body(
        &issued,
        &base_url(&state, &req),
        "bearer_token",
    )))
}

async fn list_connections(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let connections = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &path)?;
            connections::list(tx, &organization.organization_id)
        })
    })
    .await?;
    let base = base_url(&state, &req);
    let views: Vec<_> = connections
        .iter()
        .map(|c| ConnectionView::new(c, &base))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "connections": views })))
}

async fn get_connection(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let connection = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &organization)?;
            connections::find(tx, &organization.organization_id, &connection_id)
        })
    })
    .await?;
    connection_response(&state, &req, &connection)
}

async fn update_connection(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
    fields: ApiJson<ConnectionFields>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let connection = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        connections::update(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &connection_id,
            fields.0,
        )
    })
    .await?;
    connection_response(&state, &req, &connection)
}

async fn delete_connection(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let deleted = connection_id.clone();
    with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        connections::delete(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &connection_id,
        )
    })
    .await?;
    state.tokens.forget_connection(&deleted);
    Ok(HttpResponse::Ok().json(json!({ "connection_id": deleted, "deleted": true })))
}

async fn start_rotation(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let issued = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        connections::start_rotation(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &connection_id,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(issued_body(
        &issued,
        &base_url(&state, &req),
        "next_bearer_token",
    )))
}

async fn complete_rotation(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let connection = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        connections::complete_rotation(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &connection_id,
        )
    })
    .await?;
    state.tokens.forget_connection(&connection.connection_id);
    connection_response(&state, &req, &connection)
}

async fn cancel_rotation(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let connection = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        connections::cancel_rotation(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &connection_id,
        )
    })
    .await?;
    state.tokens.forget_connection(&connection.connection_id);
    connection_response(&state, &req, &connection)
}

async fn list_roles(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let roles = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &path)?;
            roles::list(tx, &organization.organization_id)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "roles": roles })))
}

async fn create_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<RoleFields>,
) -> Result<HttpResponse, Error> {
    let role = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        roles::create(
            tx,
            &principal.actor(),
            &organization.organization_id,
            fields.0,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({ "role": role })))
}

async fn get_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, role_id) = path.into_inner();
    let role = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &organization)?;
            roles::find(tx, &organization.organization_id, &role_id)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "role": role })))
}

async fn update_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    fields: ApiJson<RoleFields>,
) -> Result<HttpResponse, Error> {
    let (organization, role_id) = path.into_inner();
    let role = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        roles::update(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &role_id,
            fields.0,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "role": role })))
}

async fn delete_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, role_id) = path.into_inner();
    let deleted = role_id.clone();
    with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        roles::delete(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &role_id,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "role_id": deleted, "deleted": true })))
}

/// The connection of an accessible organization, as the SCIM tenant it is.
fn accessible_tenant(
    tx: &mut DbConn,
    principal: &Principal,
    organization: &str,
    connection_id: &str,
) -> Result<Tenant, Error> {
    let organization = accessible(tx, principal, organization)?;
    let connection = connections::find(tx, &organization.organization_id, connection_id)?;
    Ok(Tenant {
        organization_id: connection.organization_id,
        connection_id: connection.connection_id,
    })
}

async fn list_assignments(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let assignments = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let tenant = accessible_tenant(tx, &principal, &organization, &connection_id)?;
            member_roles::list_assignments(tx, &tenant)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "group_role_assignments": assignments })))
}

async fn create_assignments(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    fields: ApiJson<AssignmentFields>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id) = path.into_inner();
    let assignments = with_write(&state, move |tx| {
        let tenant = accessible_tenant(tx, &principal, &organization, &connection_id)?;
        member_roles::assign(tx, &principal.actor(), &tenant, fields.0)
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({ "group_role_assignments": assignments })))
}

async fn delete_assignment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, connection_id, assignment_id) = path.into_inner();
    let deleted = assignment_id.clone();
    with_write(&state, move |tx| {
        let tenant = accessible_tenant(tx, &principal, &organization, &connection_id)?;
        member_roles::unassign(tx, &principal.actor(), &tenant, &assignment_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "assignment_id": deleted, "deleted": true })))
}

/// The members a role is granted to (the implicit `member` role excepted), by cursor.
async fn role_members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, Error> {
    let (organization, role_id) = path.into_inner();
    let limit = page_size(page.limit)?;
    let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let member_ids = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &organization)?;
            roles::find(tx, &organization.organization_id, &role_id)?;
            member_roles::holders(
                tx,
                &organization.organization_id,
                &role_id,
                after.as_deref(),
                limit + 1,
            )
        })
    })
    .await?;
    let (member_ids, next_cursor) = paginate(member_ids, limit, |id| id.as_str());
    Ok(HttpResponse::Ok().json(json!({ "member_ids": member_ids, "next_cursor": next_cursor })))
}

fn connection_response(
    state: &AppState,
    req: &HttpRequest,
    connection: &Connection,
) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok()
        .json(json!({ "connection": ConnectionView::new(connection, &base_url(state, req)) })))
}

pub(super) fn page_size(limit: Option<i64>) -> Result<i64, Error> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(limit) => Err(Error::invalid(
            "invalid_limit",
            format!("limit {limit} is out of range: use 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Splits a page fetched with one extra row into the page and the cursor to the next one.
pub(super) fn paginate<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = has_more
        .then(|| rows.last().map(|row| encode_cursor(key(row))))
        .flatten();
    (rows, next)
}

/// The cursor to the page after the row whose key this is.
pub(super) fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub(super) fn decode_cursor(cursor: &str) -> Result<String, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Error::invalid(
                "invalid_cursor",
                "cursor is not one this API returned: pass next_cursor as it came",
            )
        })
}
