//! The management API of members: manual provisioning, invites, JIT, discovery and search.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Principal;
use super::v1::{accessible, decode_cursor, encode_cursor, page_size};
use super::{with_db, with_write, ApiJson};
use crate::db::{self, DbConn};
use crate::domain::discovery::{self, DiscoveryRequest};
use crate::domain::member_roles;
use crate::domain::members::{self, Member};
use crate::domain::provisioning::{self, InviteFields, JitRequest, MemberFields};
use crate::domain::search::{self, MemberFilter, OrganizationFilter, Query, Scope};
use crate::domain::{Actor, Source};
use crate::error::Error;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let members = "/organizations/{organization}/members";
    // Fixed paths before `{member_id}`, which would otherwise take them.
    cfg.service(web::resource("/organizations/search").post(search_organizations))
        .service(web::resource("/members/search").post(search_all_members))
        .service(web::resource("/discovery").post(discover))
        .service(web::resource("/organizations/{organization}/jit").post(jit))
        .service(web::resource(members).post(create_member))
        .service(web::resource(format!("{members}/search")).post(search_members))
        .service(web::resource(format!("{members}/invite")).post(invite_member))
        .service(
            web::resource(format!("{members}/{{member_id}}"))
                .get(get_member)
                .put(update_member)
                .patch(update_member)
                .delete(delete_member),
        )
        .service(
            web::resource(format!("{members}/{{member_id}}/reactivate"))
                .put(reactivate_member)
                .post(reactivate_member),
        )
        .service(web::resource(format!("{members}/{{member_id}}/accept")).post(accept_invite));
}

/// A member as the API shows it: with its roles and where each comes from.
fn member_body(conn: &mut DbConn, member: &Member) -> Result<Value, Error> {
    let mut body = member.to_value();
    body["roles"] = member_roles::roles_with_sources(conn, &member.member_id, member.status)?;
    Ok(body)
}

/// Runs `work` on the organization the path names, in one write transaction, and answers
/// with the member it returns.
async fn member_write(
    state: web::Data<AppState>,
    principal: Principal,
    organization: String,
    created: bool,
    work: impl FnOnce(&mut DbConn, &Actor, &str) -> Result<Member, Error> + Send + 'static,
) -> Result<HttpResponse, Error> {
    let body = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        let member = work(tx, &principal.actor(), &organization.organization_id)?;
        member_body(tx, &member)
    })
    .await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(json!({ "member": body })))
}

async fn create_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<MemberFields>,
) -> Result<HttpResponse, Error> {
    member_write(
        state,
        principal,
        path.into_inner(),
        true,
        move |tx, actor, org| provisioning::create(tx, actor, org, fields.0),
    )
    .await
}

async fn get_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, member_id) = path.into_inner();
    let body = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let organization = accessible(tx, &principal, &organization)?;
            let member = members::find(tx, &organization.organization_id, &member_id)?;
            member_body(tx, &member)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "member": body })))
}

async fn update_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    fields: ApiJson<MemberFields>,
) -> Result<HttpResponse, Error> {
    let (organization, member_id) = path.into_inner();
    member_write(
        state,
        principal,
        organization,
        false,
        move |tx, actor, org| provisioning::update(tx, actor, org, &member_id, fields.0),
    )
    .await
}

async fn delete_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (organization, member_id) = path.into_inner();
    let deleted = member_id.clone();
    with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &organization)?;
        provisioning::delete(
            tx,
            &principal.actor(),
            &organization.organization_id,
            &member_id,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "member_id": deleted, "deleted": true })))
}

/// A state change of one member (reactivate, accept an invite), answered with the member.
async fn member_action(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    action: fn(&mut DbConn, &Actor, &str, &str) -> Result<Member, Error>,
) -> Result<HttpResponse, Error> {
    let (organization, member_id) = path.into_inner();
    member_write(
        state,
        principal,
        organization,
        false,
        move |tx, actor, org| action(tx, actor, org, &member_id),
    )
    .await
}

async fn reactivate_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    member_action(state, principal, path, provisioning::reactivate).await
}

async fn invite_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    fields: ApiJson<InviteFields>,
) -> Result<HttpResponse, Error> {
    let body = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        let member = provisioning::invite(tx, &principal.actor(), &organization, fields.0)?;
        member_body(tx, &member)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "member": body })))
}

async fn accept_invite(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    member_action(state, principal, path, provisioning::accept_invite).await
}

/// The application reports an authentication; the answer says whether the person is in.
async fn jit(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    request: ApiJson<JitRequest>,
) -> Result<HttpResponse, Error> {
    let (body, created) = with_write(&state, move |tx| {
        let organization = accessible(tx, &principal, &path)?;
        let actor = Actor {
            source: Source::Jit,
            id: principal.subject.clone(),
        };
        let outcome = provisioning::jit(tx, &actor, &organization, request.0)?;
        Ok((member_body(tx, &outcome.member)?, outcome.created))
    })
    .await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(json!({ "member": body, "member_created": created })))
}

/// Every organization a person could enter: it reads across organizations, so admin only.
async fn discover(
    state: web::Data<AppState>,
    principal: Principal,
    request: ApiJson<DiscoveryRequest>,
) -> Result<HttpResponse, Error> {
    principal.require_admin()?;
    let email = request.0.email.trim().to_string();
    let found = with_db(&state, move |conn| {
        db::read(conn, |tx| discovery::discover(tx, &request.0))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "email_address": email,
        "discovered_organizations": found,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSearch {
    query: Option<Query<MemberFilter>>,
    cursor: Option<String>,
    limit: Option<i64>,
    /// Cross-organization search only: restricts it to these organizations.
    #[serde(default)]
    organization_ids: Option<Vec<String>>,
}

async fn search_members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    search: ApiJson<MemberSearch>,
) -> Result<HttpResponse, Error> {
    if search.0.organization_ids.is_some() {
        return Err(Error::invalid(
            "invalid_field",
            "organization_ids belongs to POST /v1/members/search; this search is of one organization",
        ));
    }
    run_member_search(state, principal, Some(path.into_inner()), search.0).await
}

async fn search_all_members(
    state: web::Data<AppState>,
    principal: Principal,
    search: ApiJson<MemberSearch>,
) -> Result<HttpResponse, Error> {
    principal.require_admin()?;
    run_member_search(state, principal, None, search.0).await
}

async fn run_member_search(
    state: web::Data<AppState>,
    principal: Principal,
    organization: Option<String>,
    search: MemberSearch,
) -> Result<HttpResponse, Error> {
    let limit = page_size(search.limit)?;
    let after = search.cursor.as_deref().map(decode_cursor).transpose()?;
    let body = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let scope = match (organization, search.organization_ids) {
                (Some(organization), _) => Scope::Organizations(vec![
                    accessible(tx, &principal, &organization)?.organization_id,
                ]),
                (None, Some(ids)) => Scope::Organizations(ids),
                (None, None) => Scope::All,
            };
            let found =
                search::members(tx, &scope, search.query.as_ref(), after.as_deref(), limit)?;
            let mut grants = search::grants_of(tx, &found.items)?;
            let members: Vec<Value> = found
                .items
                .iter()
                .map(|member| {
                    let mut body = member.to_value();
                    body["roles"] = member_roles::roles_view(
                        member.status,
                        grants.remove(&member.member_id).unwrap_or_default(),
                    );
                    body
                })
                .collect();
            Ok(json!({
                "members": members,
                "results_metadata": {
                    "total": found.total,
                    "next_cursor": found.next.as_deref().map(encode_cursor),
                },
            }))
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationSearch {
    query: Option<Query<OrganizationFilter>>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn search_organizations(
    state: web::Data<AppState>,
    principal: Principal,
    search: ApiJson<OrganizationSearch>,
) -> Result<HttpResponse, Error> {
    let search = search.0;
    let limit = page_size(search.limit)?;
    let after = search.cursor.as_deref().map(decode_cursor).transpose()?;
    let only = principal.organization_scope().map(str::to_owned);
    let found = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            search::organizations(
                tx,
                only.as_deref(),
                search.query.as_ref(),
                after.as_deref(),
                limit,
            )
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "organizations": found.items,
        "results_metadata": {
            "total": found.total,
            "next_cursor": found.next.as_deref().map(encode_cursor),
        },
    })))
}
