//! `/scim/v2`: the IdP-facing surface, authenticated by the connection's bearer token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::auth::ScimTenant;
use super::{base_url, body_bytes, with_db, with_write};
use crate::db;
use crate::domain::members::Member;
use crate::domain::scim_groups::{self, Group};
use crate::domain::scim_users::{self, UserGroup};
use crate::domain::{decode_cursor, encode_cursor, Seek, Window};
use crate::error::{Error, ScimType, SCIM_CONTENT_TYPE};
use crate::scim::bulk;
use crate::scim::discovery;
use crate::scim::filter::Filter;
use crate::scim::patch::PatchRequest;
use crate::scim::resource::{etag, parse_selectors, project, ResourceRules, Selector};
use crate::scim::schema::{ResourceType, GROUP_RESOURCE, USER_RESOURCE};
use crate::scim::sort::Sort;
use crate::scim::ListResponse;
use crate::AppState;

/// Page size when the client asks for none, and the most one page may hold.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;
/// The longest filter accepted, in bytes.
const MAX_FILTER_BYTES: usize = 8192;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    cfg.service(
        web::scope("/scim/v2")
            .wrap(actix_web::middleware::from_fn(super::scim_errors))
            // Before `/Users/{id}`, which would otherwise take `.search` for an id.
            .service(taking(
                web::resource("/Users/.search"),
                [(Method::POST, web::to(search_users))],
            ))
            .service(taking(
                web::resource("/Groups/.search"),
                [(Method::POST, web::to(search_groups))],
            ))
            .service(taking(
                web::resource("/.search"),
                [(Method::POST, web::to(search_all))],
            ))
            .service(taking(
                web::resource(["/Users", "/Users/"]),
                [
                    (Method::GET, web::to(list_users)),
                    (Method::POST, web::to(create_user)),
                ],
            ))
            .service(taking(
                web::resource(["/Users/{id}", "/Users/{id}/"]),
                [
                    (Method::GET, web::to(get_user)),
                    (Method::PUT, web::to(replace_user)),
                    (Method::PATCH, web::to(patch_user)),
                    (Method::DELETE, web::to(delete_user)),
                ],
            ))
            .service(taking(
                web::resource(["/Groups", "/Groups/"]),
                [
                    (Method::GET, web::to(list_groups)),
                    (Method::POST, web::to(create_group)),
                ],
            ))
            .service(taking(
                web::resource(["/Groups/{id}", "/Groups/{id}/"]),
                [
                    (Method::GET, web::to(get_group)),
                    (Method::PUT, web::to(replace_group)),
                    (Method::PATCH, web::to(patch_group)),
                    (Method::DELETE, web::to(delete_group)),
                ],
            ))
            .service(taking(
                web::resource(["/ServiceProviderConfig", "/ServiceProviderConfig/"]),
                [(Method::GET, web::to(service_provider_config))],
            ))
            .service(taking(
                web::resource(["/ResourceTypes", "/ResourceTypes/"]),
                [(Method::GET, web::to(list_resource_types))],
            ))
            .service(taking(
                web::resource(["/ResourceTypes/{name}", "/ResourceTypes/{name}/"]),
                [(Method::GET, web::to(get_resource_type))],
            ))
            .service(taking(
                web::resource(["/Schemas", "/Schemas/"]),
                [(Method::GET, web::to(list_schemas))],
            ))
            .service(taking(
                web::resource(["/Schemas/{urn}", "/Schemas/{urn}/"]),
                [(Method::GET, web::to(get_schema))],
            ))
            .service(web::resource(["/Me", "/Me/{rest:.*}"]).to(me))
            .service(taking(
                web::resource(["/Bulk", "/Bulk/"]),
                [(Method::POST, web::to(bulk))],
            ))
            .default_service(web::to(authenticated_not_found)),
    );
}

/// `resource` with its `routes`, each a method and its handler. Any other method is 405
/// with those methods in `Allow` (RFC 9110 §15.5.6), which is made from the same list, so
/// it cannot drift from what the resource takes — after authentication, like an unknown
/// path.
fn taking<const N: usize>(
    resource: actix_web::Resource,
    routes: [(actix_web::http::Method, actix_web::Route); N],
) -> actix_web::Resource {
    let methods = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let allow = header::HeaderValue::from_str(&methods).expect("method names are header-safe");
    let resource = routes
        .into_iter()
        .fold(resource, |resource, (method, route)| {
            resource.route(route.method(method))
        });
    resource.default_service(web::to(move |_tenant: ScimTenant, req: HttpRequest| {
        let (allow, methods) = (allow.clone(), methods.clone());
        async move {
            let mut response = Error::MethodNotAllowed(format!(
                "{} is not a method of {}: it takes {methods}",
                req.method(),
                req.path()
            ))
            .scim_response();
            response.headers_mut().insert(header::ALLOW, allow);
            Ok::<_, Error>(response)
        }
    }))
}

/// A SCIM request body: any JSON, whatever the Content-Type says (`application/scim+json`,
/// `application/json`, or none: IDP-QUIRKS 10).
pub struct ScimJson(pub Value);

impl FromRequest for ScimJson {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = body_bytes(req, payload);
        Box::pin(async move {
            let body = body.await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(Error::scim(
                    ScimType::InvalidSyntax,
                    "the request needs a JSON body",
                ));
            }
            serde_json::from_slice(&body)
                .map(ScimJson)
                .map_err(|error| {
                    Error::scim(
                        ScimType::InvalidSyntax,
                        format!("the request body is not valid JSON: {error}"),
                    )
                })
        })
    }
}

/// `If-Match`: the versions the client accepts (RFC 7232 §3.1: a list, any of which may
/// match). `*` or no header means any version.
pub struct IfMatch(pub Option<Vec<i64>>);

impl FromRequest for IfMatch {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req.headers().get(header::IF_MATCH).and_then(|value| {
            let value = value.to_str().unwrap_or_default();
            // Tags that are not ours can never match, and are left out.
            let tags: Vec<&str> = value.split(',').map(str::trim).collect();
            (!tags.contains(&"*")).then(|| tags.into_iter().filter_map(parse_etag).collect())
        });
        std::future::ready(Ok(IfMatch(expected)))
    }
}

fn parse_etag(tag: &str) -> Option<i64> {
    tag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

/// The query parameters every read and write response honours.
#[derive(Clone)]
struct Projection {
    include: Vec<Selector>,
    exclude: Vec<Selector>,
}

#[derive(Clone)]
struct ListQuery {
    filter: Option<Filter>,
    window: Window,
    projection: Projection,
    sort: Option<Sort>,
}

type QueryPairs = web::Query<Vec<(String, String)>>;

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn projection(pairs: &[(String, String)]) -> Projection {
    Projection {
        include: param(pairs, "attributes")
            .map(parse_selectors)
            .unwrap_or_default(),
        exclude: param(pairs, "excludedAttributes")
            .map(parse_selectors)
            .unwrap_or_default(),
    }
}

/// The list parameters of a GET, or of a SearchRequest turned into pairs; `searched` are the
/// resource types whose schemas the filter must fit.
fn list_query(
    pairs: &[(String, String)],
    searched: &[&'static ResourceType],
) -> Result<ListQuery, Error> {
    let number = |name: &str| -> Result<Option<i64>, Error> {
        param(pairs, name)
            .map(|value| {
                value.trim().parse::<i64>().map_err(|_| {
                    Error::scim(
                        ScimType::InvalidValue,
                        format!("{name} must be an integer, not \"{value}\""),
                    )
                })
            })
            .transpose()
    };
    let filter = match param(pairs, "filter")
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(filter) if filter.len() > MAX_FILTER_BYTES => {
            return Err(Error::scim(
                ScimType::InvalidFilter,
                format!("the filter is longer than {MAX_FILTER_BYTES} bytes"),
            ))
        }
        Some(filter) => {
            let filter = Filter::parse(filter)?;
            for resource_type in searched {
                ResourceRules(resource_type).check_ordering(&filter)?;
            }
            Some(filter)
        }
        None => None,
    };
    Ok(ListQuery {
        filter,
        // RFC 7644 §3.4.2.4: a startIndex below 1 is 1; a negative count is 0.
        window: {
            let count = number("count")?.map_or(DEFAULT_PAGE_SIZE, |count| {
                (count.max(0) as u64).min(MAX_PAGE_SIZE)
            });
            match param(pairs, "cursor") {
                // RFC 9865: an empty cursor asks for the first page.
                Some("") => Window::Cursor {
                    seek: Seek::After(None),
                    count,
                },
                Some(cursor) => Window::Cursor {
                    seek: decode_cursor(cursor).ok_or_else(|| {
                        Error::scim(
                            ScimType::InvalidCursor,
                            "cursor is not one this server handed out: pass nextCursor or previousCursor as it came, or an empty cursor to start",
                        )
                    })?,
                    count,
                },
                None => Window::Index {
                    start_index: number("startIndex")?.unwrap_or(1).max(1) as u64,
                    count,
                },
            }
        },
        projection: projection(pairs),
        sort: Sort::parse(param(pairs, "sortBy"), param(pairs, "sortOrder"))?,
    })
}

fn scim_response(mut builder: actix_web::HttpResponseBuilder, body: &Value) -> HttpResponse {
    builder.content_type(SCIM_CONTENT_TYPE).json(body)
}

impl Projection {
    /// Whether the response shows this attribute (by name, without sub-attributes).
    fn shows(&self, name: &str) -> bool {
        let named = |selectors: &[Selector]| selectors.iter().any(|s| s.names(name));
        if self.include.is_empty() {
            !named(&self.exclude)
        } else {
            named(&self.include)
        }
    }
}

/// A resource as the response shows it: projected, with its ETag.
fn resource_response(
    mut builder: actix_web::HttpResponseBuilder,
    resource_type: &ResourceType,
    rendered: Value,
    version: i64,
    projection: &Projection,
) -> HttpResponse {
    builder.insert_header((header::ETAG, etag(version)));
    let body = project(
        resource_type,
        rendered,
        &projection.include,
        &projection.exclude,
    );
    scim_response(builder, &body)
}

/// 304 when `If-None-Match` names the current version.
fn not_modified(req: &HttpRequest, version: i64) -> Option<HttpResponse> {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == "*" || parse_etag(tag) == Some(version))
        });
    matches.then(|| {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(version)))
            .finish()
    })
}

/// A ListResponse for one page: `startIndex` in index paging, `nextCursor` in cursor paging.
fn list_body(resources: Vec<Value>, page: &PageOf, window: &Window) -> Result<HttpResponse, Error> {
    let start_index = match window {
        Window::Index { start_index, .. } => Some(*start_index),
        Window::Cursor { .. } => None,
    };
    let body = serde_json::to_value(ListResponse::new(
        resources,
        page.total,
        start_index,
        page.next.as_ref().map(encode_cursor),
        page.previous.as_ref().map(encode_cursor),
    ))
    .map_err(Error::internal)?;
    Ok(scim_response(HttpResponse::Ok(), &body))
}

/// A user and its groups, as a handler renders them.
type UserView = (Member, Vec<UserGroup>);

fn user_response(
    builder: actix_web::HttpResponseBuilder,
    (member, groups): &UserView,
    base: &str,
    projection: &Projection,
) -> HttpResponse {
    let rendered = scim_users::render(member, groups, base);
    resource_response(
        builder,
        &USER_RESOURCE,
        rendered,
        member.version,
        projection,
    )
}

/// The two collections a list or a search reads.
#[derive(Clone, Copy)]
enum Collection {
    Users,
    Groups,
}

impl Collection {
    async fn page(
        self,
        state: &AppState,
        req: &HttpRequest,
        tenant: ScimTenant,
        query: ListQuery,
    ) -> Result<(PageOf, Vec<Value>), Error> {
        match self {
            Collection::Users => user_page(state, req, tenant, query).await,
            Collection::Groups => group_page(state, req, tenant, query).await,
        }
    }

    /// The ListResponse for `query`, from query parameters (GET) or a SearchRequest (POST).
    async fn respond(
        self,
        state: &AppState,
        req: &HttpRequest,
        tenant: ScimTenant,
        query: ListQuery,
    ) -> Result<HttpResponse, Error> {
        let window = query.window.clone();
        let (page, resources) = self.page(state, req, tenant, query).await?;
        list_body(resources, &page, &window)
    }
}

async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    let query = list_query(&query, &[&USER_RESOURCE])?;
    Collection::Users.respond(&state, &req, tenant, query).await
}

async fn list_groups(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    let query = list_query(&query, &[&GROUP_RESOURCE])?;
    Collection::Groups
        .respond(&state, &req, tenant, query)
        .await
}

async fn search_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let query = search_query(&body.0, &[&USER_RESOURCE])?;
    Collection::Users.respond(&state, &req, tenant, query).await
}

async fn search_groups(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let query = search_query(&body.0, &[&GROUP_RESOURCE])?;
    Collection::Groups
        .respond(&state, &req, tenant, query)
        .await
}

/// How many match in all, and where the pages beside it lie (cursor paging).
struct PageOf {
    total: u64,
    next: Option<Seek>,
    previous: Option<Seek>,
}

/// One page of users, rendered and projected.
async fn user_page(
    state: &AppState,
    req: &HttpRequest,
    tenant: ScimTenant,
    query: ListQuery,
) -> Result<(PageOf, Vec<Value>), Error> {
    let base = base_url(state, req);
    let list_base = base.clone();
    let (filter, window, sort) = (query.filter, query.window, query.sort);
    let (listed, mut groups) = with_db(state, move |conn| {
        // A lookup's answer (none or one user) and its users' groups are one statement; a
        // longer list, its count and its groups are read in one snapshot.
        let short =
            scim_users::list_short(conn, &tenant.0, filter.as_ref(), &window, sort.as_ref())?;
        if let Some(short) = short {
            return Ok(short);
        }
        db::read(conn, |tx| {
            let listed = scim_users::list(
                tx,
                &tenant.0,
                &list_base,
                filter.as_ref(),
                &window,
                sort.as_ref(),
            )?;
            let groups = scim_users::groups_of(tx, &listed.items)?;
            Ok((listed, groups))
        })
    })
    .await?;
    let resources = listed
        .items
        .iter()
        .map(|member| {
            let groups = groups.remove(&member.member_id).unwrap_or_default();
            let rendered = scim_users::render(member, &groups, &base);
            project(
                &USER_RESOURCE,
                rendered,
                &query.projection.include,
                &query.projection.exclude,
            )
        })
        .collect();
    Ok((
        PageOf {
            total: listed.total,
            next: listed.next,
            previous: listed.previous,
        },
        resources,
    ))
}

async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    // A user new to the connection, or adopted by it, is in none of its groups yet: a group
    // admits only the connection's own users.
    let user = with_write(&state, move |tx| {
        scim_users::create(tx, &tenant.0, &actor, &body.0)
    })
    .await
    .map(|member| (member, Vec::new()))?;
    let base = base_url(&state, &req);
    let mut created = HttpResponse::Created();
    created.insert_header((
        header::LOCATION,
        scim_users::location(&base, &user.0.member_id),
    ));
    Ok(user_response(created, &user, &base, &projection(&query)))
}

async fn get_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    // One statement: the user's groups are a column of its row's read.
    let user = with_db(&state, move |conn| {
        scim_users::get_with_groups(conn, &tenant.0, &id)
    })
    .await?;
    if let Some(unchanged) = not_modified(&req, user.0.version) {
        return Ok(unchanged);
    }
    Ok(user_response(
        HttpResponse::Ok(),
        &user,
        &base_url(&state, &req),
        &projection(&query),
    ))
}

async fn replace_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    let user = with_write(&state, move |tx| {
        scim_users::replace(tx, &tenant.0, &actor, &id, if_match.0.as_deref(), &body.0)
    })
    .await?;
    Ok(user_response(
        HttpResponse::Ok(),
        &user,
        &base_url(&state, &req),
        &projection(&query),
    ))
}

async fn patch_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let request = PatchRequest::parse(&body.0)?;
    let actor = tenant.actor();
    let user = with_write(&state, move |tx| {
        scim_users::patch(tx, &tenant.0, &actor, &id, if_match.0.as_deref(), &request)
    })
    .await?;
    Ok(user_response(
        HttpResponse::Ok(),
        &user,
        &base_url(&state, &req),
        &projection(&query),
    ))
}

async fn delete_user(
    state: web::Data<AppState>,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    with_write(&state, move |tx| {
        scim_users::delete(tx, &tenant.0, &actor, &id, if_match.0.as_deref())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A group and, when the response shows them, its members.
type GroupView = (Group, Option<Vec<String>>);

fn with_members(tx: &mut db::DbConn, group: Group, load: bool) -> Result<GroupView, Error> {
    let members = load
        .then(|| scim_groups::members_of(tx, &group.group_id))
        .transpose()?;
    Ok((group, members))
}

fn group_response(
    builder: actix_web::HttpResponseBuilder,
    (group, members): &GroupView,
    base: &str,
    projection: &Projection,
) -> HttpResponse {
    let rendered = scim_groups::render(group, members.as_deref(), base);
    resource_response(
        builder,
        &GROUP_RESOURCE,
        rendered,
        group.version,
        projection,
    )
}

/// One page of groups, rendered and projected (members read only when shown).
async fn group_page(
    state: &AppState,
    req: &HttpRequest,
    tenant: ScimTenant,
    query: ListQuery,
) -> Result<(PageOf, Vec<Value>), Error> {
    let base = base_url(state, req);
    let list_base = base.clone();
    let load_members = query.projection.shows("members");
    let (filter, window, sort) = (query.filter, query.window, query.sort);
    let (listed, groups) = with_db(state, move |conn| {
        db::read(conn, |tx| {
            let listed = scim_groups::list(
                tx,
                &tenant.0,
                &list_base,
                filter.as_ref(),
                &window,
                sort.as_ref(),
            )?;
            let crate::domain::Listed {
                total,
                items,
                next,
                previous,
            } = listed;
            let groups = items
                .into_iter()
                .map(|group| with_members(tx, group, load_members))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                PageOf {
                    total,
                    next,
                    previous,
                },
                groups,
            ))
        })
    })
    .await?;
    let resources = groups
        .iter()
        .map(|(group, members)| {
            let rendered = scim_groups::render(group, members.as_deref(), &base);
            project(
                &GROUP_RESOURCE,
                rendered,
                &query.projection.include,
                &query.projection.exclude,
            )
        })
        .collect();
    Ok((listed, resources))
}

/// A SearchRequest body (RFC 7644 §3.4.3): the query parameters of a GET, as JSON.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    excluded_attributes: Vec<String>,
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    cursor: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

/// The same pairs a GET would carry, so both go through one `list_query`.
fn search_query(body: &Value, searched: &[&'static ResourceType]) -> Result<ListQuery, Error> {
    let lowered: serde_json::Map<String, Value> = match body {
        Value::Object(object) => object
            .iter()
            .map(|(key, value)| {
                let known = [
                    "attributes",
                    "excludedAttributes",
                    "filter",
                    "startIndex",
                    "count",
                    "sortBy",
                    "sortOrder",
                    "schemas",
                ]
                .into_iter()
                .find(|name| name.eq_ignore_ascii_case(key))
                .unwrap_or(key);
                (known.to_string(), value.clone())
            })
            .collect(),
        _ => {
            return Err(Error::scim(
                ScimType::InvalidSyntax,
                "a search request must be a JSON object",
            ))
        }
    };
    let request: SearchRequest =
        serde_json::from_value(Value::Object(lowered)).map_err(|error| {
            Error::scim(
                ScimType::InvalidSyntax,
                format!("the search request is malformed: {error}"),
            )
        })?;
    let mut pairs = Vec::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push((name.to_string(), value));
        }
    };
    push(
        "attributes",
        (!request.attributes.is_empty()).then(|| request.attributes.join(",")),
    );
    push(
        "excludedAttributes",
        (!request.excluded_attributes.is_empty()).then(|| request.excluded_attributes.join(",")),
    );
    push("filter", request.filter);
    push("startIndex", request.start_index.map(|n| n.to_string()));
    push("count", request.count.map(|n| n.to_string()));
    push("cursor", request.cursor);
    push("sortBy", request.sort_by);
    push("sortOrder", request.sort_order);
    list_query(&pairs, searched)
}

/// `POST /.search` across resource types: users first, then groups, paged as one list by
/// `startIndex` (a cursor names a place in one resource type's order, not in both).
async fn search_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let users_query = search_query(&body.0, discovery::RESOURCE_TYPES)?;
    let Window::Index { start_index, count } = users_query.window else {
        return Err(Error::scim(
            ScimType::InvalidValue,
            "POST /.search pages by startIndex; for cursor paging search /Users/.search or /Groups/.search",
        ));
    };
    let groups_query = users_query.clone();
    let window = users_query.window.clone();
    let (users, mut resources) = Collection::Users
        .page(&state, &req, ScimTenant(tenant.0.clone()), users_query)
        .await?;
    let groups_query = ListQuery {
        window: Window::Index {
            start_index: start_index.saturating_sub(users.total).max(1),
            count: count - resources.len() as u64,
        },
        ..groups_query
    };
    let (groups, group_resources) = Collection::Groups
        .page(&state, &req, tenant, groups_query)
        .await?;
    resources.extend(group_resources);
    let page = PageOf {
        total: users.total + groups.total,
        next: None,
        previous: None,
    };
    list_body(resources, &page, &window)
}

async fn create_group(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    let projection = projection(&query);
    let load_members = projection.shows("members");
    let group = with_write(&state, move |tx| {
        let group = scim_groups::create(tx, &tenant.0, &actor, &body.0)?;
        with_members(tx, group, load_members)
    })
    .await?;
    let base = base_url(&state, &req);
    let mut created = HttpResponse::Created();
    created.insert_header((
        header::LOCATION,
        scim_groups::location(&base, &group.0.group_id),
    ));
    Ok(group_response(created, &group, &base, &projection))
}

async fn get_group(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    let projection = projection(&query);
    let load_members = projection.shows("members");
    let group = with_db(&state, move |conn| {
        db::read(conn, |tx| {
            let group = scim_groups::get(tx, &tenant.0, &id)?;
            with_members(tx, group, load_members)
        })
    })
    .await?;
    if let Some(unchanged) = not_modified(&req, group.0.version) {
        return Ok(unchanged);
    }
    Ok(group_response(
        HttpResponse::Ok(),
        &group,
        &base_url(&state, &req),
        &projection,
    ))
}

async fn replace_group(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    let projection = projection(&query);
    let load_members = projection.shows("members");
    let group = with_write(&state, move |tx| {
        let group =
            scim_groups::replace(tx, &tenant.0, &actor, &id, if_match.0.as_deref(), &body.0)?;
        with_members(tx, group, load_members)
    })
    .await?;
    Ok(group_response(
        HttpResponse::Ok(),
        &group,
        &base_url(&state, &req),
        &projection,
    ))
}

/// A group PATCH answers 204 (RFC 7644 §3.5.2 allows it; Microsoft asks for it), or, when the
/// request names `attributes` or `excludedAttributes`, 200 with what it asked for: a
/// membership change then costs the same in a group of 10 or of 200,000 (README: Groups).
async fn patch_group(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
    query: QueryPairs,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let request = PatchRequest::parse(&body.0)?;
    let actor = tenant.actor();
    let projection = projection(&query);
    let answer = !projection.include.is_empty() || !projection.exclude.is_empty();
    let load_members = answer && projection.shows("members");
    let group = with_write(&state, move |tx| {
        let group =
            scim_groups::patch(tx, &tenant.0, &actor, &id, if_match.0.as_deref(), &request)?;
        with_members(tx, group, load_members)
    })
    .await?;
    if !answer {
        return Ok(HttpResponse::NoContent()
            .insert_header((header::ETAG, etag(group.0.version)))
            .finish());
    }
    Ok(group_response(
        HttpResponse::Ok(),
        &group,
        &base_url(&state, &req),
        &projection,
    ))
}

async fn delete_group(
    state: web::Data<AppState>,
    tenant: ScimTenant,
    id: web::Path<String>,
    if_match: IfMatch,
) -> Result<HttpResponse, Error> {
    let actor = tenant.actor();
    with_write(&state, move |tx| {
        scim_groups::delete(tx, &tenant.0, &actor, &id, if_match.0.as_deref())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn scim_base(state: &AppState, req: &HttpRequest) -> String {
    format!("{}/scim/v2", base_url(state, req))
}

async fn service_provider_config(
    state: web::Data<AppState>,
    req: HttpRequest,
    _tenant: ScimTenant,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    refuse_filter(&query)?;
    let body = discovery::service_provider_config(
        &scim_base(&state, &req),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        MAX_BULK_OPERATIONS,
        state.max_body_bytes,
    );
    Ok(scim_response(HttpResponse::Ok(), &body))
}

async fn list_resource_types(
    state: web::Data<AppState>,
    req: HttpRequest,
    _tenant: ScimTenant,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    refuse_filter(&query)?;
    let base = scim_base(&state, &req);
    let resources: Vec<Value> = discovery::RESOURCE_TYPES
        .iter()
        .map(|resource_type| discovery::resource_type(resource_type, &base))
        .collect();
    Ok(list_response(resources))
}

async fn get_resource_type(
    state: web::Data<AppState>,
    req: HttpRequest,
    _tenant: ScimTenant,
    name: web::Path<String>,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    refuse_filter(&query)?;
    let resource_type = discovery::RESOURCE_TYPES
        .iter()
        .find(|resource_type| resource_type.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| Error::not_found(format!("no resource type {name}")))?;
    Ok(scim_response(
        HttpResponse::Ok(),
        &discovery::resource_type(resource_type, &scim_base(&state, &req)),
    ))
}

async fn list_schemas(
    state: web::Data<AppState>,
    req: HttpRequest,
    _tenant: ScimTenant,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    refuse_filter(&query)?;
    let base = scim_base(&state, &req);
    Ok(list_response(
        discovery::schemas()
            .into_iter()
            .map(|schema| discovery::schema(schema, &base))
            .collect(),
    ))
}

async fn get_schema(
    state: web::Data<AppState>,
    req: HttpRequest,
    _tenant: ScimTenant,
    urn: web::Path<String>,
    query: QueryPairs,
) -> Result<HttpResponse, Error> {
    refuse_filter(&query)?;
    let schema = discovery::schemas()
        .into_iter()
        .find(|schema| schema.id.eq_ignore_ascii_case(&urn))
        .ok_or_else(|| Error::not_found(format!("no schema {urn}")))?;
    Ok(scim_response(
        HttpResponse::Ok(),
        &discovery::schema(schema, &scim_base(&state, &req)),
    ))
}

/// RFC 7644 §4: the discovery endpoints ignore query parameters, and a `filter` there
/// SHOULD be 403, so that no client takes what comes back for what matched.
fn refuse_filter(query: &QueryPairs) -> Result<(), Error> {
    // An empty filter is no filter, as on the lists.
    match param(query, "filter").filter(|filter| !filter.trim().is_empty()) {
        Some(_) => Err(Error::Forbidden {
            error_type: "filter_not_supported",
            message: "the discovery endpoints are not filtered (RFC 7644 §4): drop `filter` and \
                      pick what you need from the whole answer"
                .into(),
        }),
        None => Ok(()),
    }
}

fn list_response(resources: Vec<Value>) -> HttpResponse {
    let total = resources.len() as u64;
    let body = serde_json::to_value(ListResponse::new(resources, total, Some(1), None, None))
        .expect("list responses serialize");
    scim_response(HttpResponse::Ok(), &body)
}

/// RFC 7644 §3.11: `/Me` is the authenticated subject's own resource. A token here belongs to
/// a connection, not to a user, so there is no such resource.
async fn me(_tenant: ScimTenant) -> Result<HttpResponse, Error> {
    Err(Error::NotImplemented(
        "/Me is not supported: SCIM tokens belong to connections, not to users".into(),
    ))
}

/// The most operations one bulk request may carry (ServiceProviderConfig
/// `bulk.maxOperations`).
const MAX_BULK_OPERATIONS: usize = 1000;

/// `POST /Bulk` (RFC 7644 §3.7): each operation runs in its own transaction, as the single
/// request would, in the order sent except that an operation waits for the POSTs whose
/// bulkIds it references. `failOnErrors` stops after that many failures; the response lists
/// what ran, in request order.
async fn bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: ScimTenant,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let request = bulk::parse(&body.0, MAX_BULK_OPERATIONS)?;
    let base = base_url(&state, &req);
    let mut created: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(request.operations.len());
    let mut errors = 0u64;
    for n in bulk::order(&request) {
        if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let operation = &request.operations[n];
        let missing = bulk::references(operation)
            .into_iter()
            .find(|bulk_id| !created.contains_key(bulk_id));
        let outcome = match missing {
            Some(bulk_id) => Err(Error::scim(
                ScimType::InvalidValue,
                format!(
                    "bulkId:{bulk_id} names no POST of this request that succeeded before this \
                     operation"
                ),
            )),
            None => {
                let resolved = bulk::resolve(operation, &created);
                run_bulk_operation(&state, &tenant, &base, resolved).await
            }
        };
        let result = match outcome {
            Ok(done) => {
                if let (bulk::Method::Post, Some(bulk_id)) = (operation.method, &operation.bulk_id)
                {
                    created.insert(bulk_id.clone(), done.id);
                }
                bulk::OperationResult {
                    method: operation.method.as_str(),
                    bulk_id: operation.bulk_id.clone(),
                    version: done.version.map(etag),
                    location: done.location,
                    status: done.status.to_string(),
                    response: None,
                }
            }
            Err(error) => {
                errors += 1;
                error.log_cause();
                bulk::OperationResult {
                    method: operation.method.as_str(),
                    bulk_id: operation.bulk_id.clone(),
                    version: None,
                    location: None,
                    status: actix_web::ResponseError::status_code(&error)
                        .as_u16()
                        .to_string(),
                    response: Some(error.scim_body()),
                }
            }
        };
        results.push((n, result));
    }
    results.sort_by_key(|(n, _)| *n);
    let operations: Vec<bulk::OperationResult> =
        results.into_iter().map(|(_, result)| result).collect();
    let body = json!({ "schemas": [bulk::BULK_RESPONSE_URN], "Operations": operations });
    Ok(scim_response(HttpResponse::Ok(), &body))
}

/// What a bulk operation did: the resource, its new version, and the status a single request
/// would have answered.
struct BulkDone {
    id: String,
    version: Option<i64>,
    location: Option<String>,
    status: u16,
}

async fn run_bulk_operation(
    state: &AppState,
    tenant: &ScimTenant,
    base: &str,
    operation: bulk::Operation,
) -> Result<BulkDone, Error> {
    use bulk::{Collection as Kind, Method};
    // `version` is an If-Match: a tag that is not ours never matches.
    let expected: Option<Vec<i64>> = operation
        .version
        .as_deref()
        .map(|tag| parse_etag(tag).into_iter().collect());
    let (tenant_of, actor) = (tenant.0.clone(), tenant.actor());
    let kind = operation.collection;
    let (id, version, status) = with_write(state, move |tx| {
        let t = &tenant_of;
        let id = operation.id.clone().unwrap_or_default();
        let expected = expected.as_deref();
        let data = &operation.data;
        Ok(match (kind, operation.method) {
            (Kind::Users, Method::Post) => {
                let member = scim_users::create(tx, t, &actor, data)?;
                (member.member_id, Some(member.version), 201)
            }
            (Kind::Users, Method::Put) => {
                let (member, _) = scim_users::replace(tx, t, &actor, &id, expected, data)?;
                (member.member_id, Some(member.version), 200)
            }
            (Kind::Users, Method::Patch) => {
                let request = PatchRequest::parse(data)?;
                let (member, _) = scim_users::patch(tx, t, &actor, &id, expected, &request)?;
                (member.member_id, Some(member.version), 200)
            }
            (Kind::Users, Method::Delete) => {
                scim_users::delete(tx, t, &actor, &id, expected)?;
                (id, None, 204)
            }
            (Kind::Groups, Method::Post) => {
                let group = scim_groups::create(tx, t, &actor, data)?;
                (group.group_id, Some(group.version), 201)
            }
            (Kind::Groups, Method::Put) => {
                let group = scim_groups::replace(tx, t, &actor, &id, expected, data)?;
                (group.group_id, Some(group.version), 200)
            }
            (Kind::Groups, Method::Patch) => {
                let request = PatchRequest::parse(data)?;
                let group = scim_groups::patch(tx, t, &actor, &id, expected, &request)?;
                (group.group_id, Some(group.version), 200)
            }
            (Kind::Groups, Method::Delete) => {
                scim_groups::delete(tx, t, &actor, &id, expected)?;
                (id, None, 204)
            }
        })
    })
    .await?;
    let location = (status != 204).then(|| match kind {
        Kind::Users => scim_users::location(base, &id),
        Kind::Groups => scim_groups::location(base, &id),
    });
    Ok(BulkDone {
        id,
        version,
        location,
        status,
    })
}

/// Unknown paths answer 404 — after authentication, so that the surface is not mapped
/// anonymously.
async fn authenticated_not_found(_tenant: ScimTenant) -> Result<HttpResponse, Error> {
    Err(Error::not_found("no such SCIM endpoint"))
}
