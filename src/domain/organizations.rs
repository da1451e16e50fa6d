//! Organizations: the tenants. Their settings decide who may join and how.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::email::normalize_allowed_domain;
use super::events::{self, previous_values, Event};
use super::{new_id, now, Actor};
use crate::db::schema::{
    members, organization_domains, organization_oauth_tenants, organizations, scim_connections,
};
use crate::db::DbConn;
use crate::error::Error;

const ID_PREFIX: &str = "organization";
const MAX_METADATA_KEYS: usize = 20;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmailJitProvisioning {
    #[default]
    NotAllowed,
    Restricted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmailInvites {
    #[default]
    AllAllowed,
    Restricted,
    NotAllowed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SsoJitProvisioning {
    #[default]
    AllAllowed,
    Restricted,
    NotAllowed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethods {
    #[default]
    AllAllowed,
    Restricted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Sso,
    MagicLink,
    EmailOtp,
    Password,
    GoogleOauth,
    MicrosoftOauth,
    SlackOauth,
    GithubOauth,
    HubspotOauth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MfaPolicy {
    #[default]
    Optional,
    RequiredForAll,
}

/// Whether members may join through an OAuth tenant named in `allowed_oauth_tenants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OauthTenantJitProvisioning {
    #[default]
    NotAllowed,
    Restricted,
}

/// Which emails SCIM may provision: `ANY` (as Stytch), or only those on
/// `email_allowed_domains`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScimEmailDomainPolicy {
    #[default]
    Any,
    Restricted,
}

/// OAuth providers whose tenants (workspace, portal, organization, directory) can admit
/// members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OauthProvider {
    Github,
    Google,
    Hubspot,
    Microsoft,
    Slack,
}

impl OauthProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            OauthProvider::Github => "github",
            OauthProvider::Google => "google",
            OauthProvider::Hubspot => "hubspot",
            OauthProvider::Microsoft => "microsoft",
            OauthProvider::Slack => "slack",
        }
    }

    /// The auth method an OAuth login with this provider is, for `allowed_auth_methods`.
    pub fn auth_method(self) -> AuthMethod {
        match self {
            OauthProvider::Github => AuthMethod::GithubOauth,
            OauthProvider::Google => AuthMethod::GoogleOauth,
            OauthProvider::Hubspot => AuthMethod::HubspotOauth,
            OauthProvider::Microsoft => AuthMethod::MicrosoftOauth,
            OauthProvider::Slack => AuthMethod::SlackOauth,
        }
    }
}

/// Every active member whose email is on `domain` holds `role_id` (source `email_domain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRoleAssignment {
    pub domain: String,
    pub role_id: String,
}

/// The organization's rules, stored as one JSON document. `email_allowed_domains` is also
/// kept in `organization_domains`, one row a domain, so lookups by domain use an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OrganizationSettings {
    pub email_allowed_domains: Vec<String>,
    pub email_jit_provisioning: EmailJitProvisioning,
    pub email_invites: EmailInvites,
    pub sso_jit_provisioning: SsoJitProvisioning,
    pub sso_jit_provisioning_allowed_connections: Vec<String>,
    pub auth_methods: AuthMethods,
    pub allowed_auth_methods: Vec<AuthMethod>,
    pub mfa_policy: MfaPolicy,
    pub allowed_oauth_tenants: BTreeMap<OauthProvider, Vec<String>>,
    pub oauth_tenant_jit_provisioning: OauthTenantJitProvisioning,
    pub rbac_email_implicit_role_assignments: Vec<EmailRoleAssignment>,
    pub scim_email_domain_policy: ScimEmailDomainPolicy,
}

impl OrganizationSettings {
    /// Whether `domain` (lowercase) is one of `email_allowed_domains`.
    pub fn allows_domain(&self, domain: &str) -> bool {
        self.email_allowed_domains.iter().any(|d| d == domain)
    }

    /// The roles an email on `domain` (lowercase) implies.
    pub fn implicit_roles<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.rbac_email_implicit_role_assignments
            .iter()
            .filter(move |assignment| assignment.domain == domain)
            .map(|assignment| assignment.role_id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organization {
    pub organization_id: String,
    pub organization_name: String,
    pub organization_slug: String,
    #[serde(flatten)]
    pub settings: OrganizationSettings,
    pub trusted_metadata: Map<String, Value>,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub version: i64,
}

/// The fields a create or update request may carry. Absent fields keep their value (update)
/// or their default (create); `organization_name` and `organization_slug` are required on
/// create. `trusted_metadata` merges top-level keys, and a `null` value removes its key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationFields {
    pub organization_name: Option<String>,
    pub organization_slug: Option<String>,
    pub email_allowed_domains: Option<Vec<String>>,
    pub email_jit_provisioning: Option<EmailJitProvisioning>,
    pub email_invites: Option<EmailInvites>,
    pub sso_jit_provisioning: Option<SsoJitProvisioning>,
    pub sso_jit_provisioning_allowed_connections: Option<Vec<String>>,
    pub auth_methods: Option<AuthMethods>,
    pub allowed_auth_methods: Option<Vec<AuthMethod>>,
    pub mfa_policy: Option<MfaPolicy>,
    pub allowed_oauth_tenants: Option<BTreeMap<OauthProvider, Vec<String>>>,
    pub oauth_tenant_jit_provisioning: Option<OauthTenantJitProvisioning>,
    pub rbac_email_implicit_role_assignments: Option<Vec<EmailRoleAssignment>>,
    pub scim_email_domain_policy: Option<ScimEmailDomainPolicy>,
    pub trusted_metadata: Option<Map<String, Value>>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = organizations)]
// The key is never in an UPDATE's SET: on SQLite, setting a parent key (even to itself)
// makes the foreign-key check count every child row.
#[diesel(primary_key(organization_id))]
struct OrganizationRow {
    organization_id: String,
    slug: String,
    name: String,
    settings: String,
    trusted_metadata: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl OrganizationRow {
    fn into_organization(self) -> Result<Organization, Error> {
        Ok(Organization {
            settings: serde_json::from_str(&self.settings).map_err(|error| {
                Error::internal(format!(
                    "stored settings of {}: {error}",
                    self.organization_id
                ))
            })?,
            trusted_metadata: serde_json::from_str(&self.trusted_metadata).map_err(|error| {
                Error::internal(format!(
                    "stored metadata of {}: {error}",
                    self.organization_id
                ))
            })?,
            organization_id: self.organization_id,
            organization_name: self.name,
            organization_slug: self.slug,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }

    fn from_organization(organization: &Organization) -> Self {
        OrganizationRow {
            organization_id: organization.organization_id.clone(),
            slug: organization.organization_slug.clone(),
            name: organization.organization_name.clone(),
            settings: serde_json::to_string(&organization.settings).expect("settings serialize"),
            trusted_metadata: Value::Object(organization.trusted_metadata.clone()).to_string(),
            version: organization.version,
            created_at: organization.created_at,
            updated_at: organization.updated_at,
        }
    }
}

/// Creates an organization and records `organization.created`.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    fields: OrganizationFields,
) -> Result<Organization, Error> {
    let name = fields
        .organization_name
        .clone()
        .ok_or_else(|| Error::invalid("missing_field", "organization_name is required"))?;
    let slug = fields
        .organization_slug
        .clone()
        .ok_or_else(|| Error::invalid("missing_field", "organization_slug is required"))?;
    let at = now();
    let mut organization = Organization {
        organization_id: new_id(ID_PREFIX),
        organization_name: name,
        organization_slug: slug,
        settings: OrganizationSettings::default(),
        trusted_metadata: Map::new(),
        created_at: at,
        updated_at: at,
        version: 1,
    };
    apply_fields(&mut organization, fields)?;
    insert_unique_slug(conn, &organization)?;
    replace_domains(conn, &organization)?;
    replace_oauth_tenants(conn, &organization)?;
    super::roles::create_built_ins(conn, &organization.organization_id)?;
    check_email_roles_exist(conn, &organization)?;
    events::record(
        &organization.organization_id,
        actor,
        Event {
            event_type: "organization.created",
            subject_id: &organization.organization_id,
            data: to_value(&organization),
            previous: None,
        },
    )?;
    Ok(organization)
}

/// How an organization is named: by its id (`organization-…`) or by its slug (lowercased).
enum Named<'a> {
    Id(&'a str),
    Slug(String),
}

impl<'a> Named<'a> {
    fn of(id_or_slug: &'a str) -> Self {
        if id_or_slug.starts_with("organization-") {
            Named::Id(id_or_slug)
        } else {
            Named::Slug(id_or_slug.to_ascii_lowercase())
        }
    }
}

/// Finds an organization by its id (`organization-…`) or its slug.
pub fn find(conn: &mut DbConn, id_or_slug: &str) -> Result<Organization, Error> {
    let query = organizations::table.select(OrganizationRow::as_select());
    let row = match Named::of(id_or_slug) {
        Named::Id(id) => query.find(id).first(conn).optional()?,
        Named::Slug(slug) => query
            .filter(organizations::slug.eq(slug))
            .first(conn)
            .optional()?,
    };
    row.ok_or_else(|| not_found(id_or_slug))?
        .into_organization()
}

/// Holds the organization's row until the write ends (`db::hold_row`), so that an update
/// writes over what it read.
fn lock(conn: &mut DbConn, id_or_slug: &str) -> Result<(), Error> {
    match Named::of(id_or_slug) {
        Named::Id(id) => crate::db::hold_row(conn, "organizations", &[("organization_id", id)]),
        Named::Slug(slug) => crate::db::hold_row(conn, "organizations", &[("slug", &slug)]),
    }
}

/// The organization's settings alone (role derivation and provisioning rules read them on
/// every write).
pub fn settings(conn: &mut DbConn, organization_id: &str) -> Result<OrganizationSettings, Error> {
    let stored: String = organizations::table
        .find(organization_id)
        .select(organizations::settings)
        .first(conn)?;
    parse_settings(organization_id, &stored)
}

/// The organization's settings as its row stores them (`organizations.settings`).
pub fn parse_settings(organization_id: &str, stored: &str) -> Result<OrganizationSettings, Error> {
    serde_json::from_str(stored)
        .map_err(|error| Error::internal(format!("stored settings of {organization_id}: {error}")))
}

pub fn not_found(id_or_slug: &str) -> Error {
    Error::not_found(format!("no organization `{id_or_slug}`"))
}

/// A page of organizations in id order, after `after` (the last id of the previous page).
/// `only` restricts the page to one organization (an `org:` scoped caller).
pub fn list(
    conn: &mut DbConn,
    only: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Organization>, Error> {
    let mut query = organizations::table
        .select(OrganizationRow::as_select())
        .order(organizations::organization_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(organization_id) = only {
        query = query.filter(organizations::organization_id.eq(organization_id));
    }
    if let Some(after) = after {
        query = query.filter(organizations::organization_id.gt(after));
    }
    query
        .load(conn)?
        .into_iter()
        .map(OrganizationRow::into_organization)
        .collect()
}

/// Applies `fields` to the organization and records `organization.updated` with the previous
/// values of what changed. A request that changes nothing writes nothing.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    fields: OrganizationFields,
) -> Result<Organization, Error> {
    lock(conn, organization_id)?;
    let before = find(conn, organization_id)?;
    let mut after = before.clone();
    apply_fields(&mut after, fields)?;
    let before_value = to_value(&before);
    let Some(previous) = previous_values(&before_value, &to_value(&after)) else {
        return Ok(before);
    };
    after.version += 1;
    after.updated_at = now();
    diesel::update(organizations::table.find(&after.organization_id))
        .set(&OrganizationRow::from_organization(&after))
        .execute(conn)
        .map_err(|error| slug_conflict(error, &after.organization_slug))?;
    if after.settings.email_allowed_domains != before.settings.email_allowed_domains {
        replace_domains(conn, &after)?;
    }
    if after.settings.allowed_oauth_tenants != before.settings.allowed_oauth_tenants {
        replace_oauth_tenants(conn, &after)?;
    }
    let role_domains = changed_role_domains(&before.settings, &after.settings);
    if !role_domains.is_empty() {
        check_email_roles_exist(conn, &after)?;
    }
    events::record(
        &after.organization_id,
        actor,
        Event {
            event_type: "organization.updated",
            subject_id: &after.organization_id,
            data: to_value(&after),
            previous: Some(previous),
        },
    )?;
    super::member_roles::sync_email_domains(conn, actor, &after.organization_id, &role_domains)?;
    Ok(after)
}

/// The domains whose implied roles differ between two versions of the settings.
fn changed_role_domains(
    before: &OrganizationSettings,
    after: &OrganizationSettings,
) -> Vec<String> {
    let roles_of = |settings: &OrganizationSettings, domain: &str| -> Vec<String> {
        let mut roles: Vec<String> = settings
            .implicit_roles(domain)
            .map(str::to_string)
            .collect();
        roles.sort();
        roles
    };
    let mut domains: Vec<String> = before
        .rbac_email_implicit_role_assignments
        .iter()
        .chain(&after.rbac_email_implicit_role_assignments)
        .map(|assignment| assignment.domain.clone())
        .collect();
    domains.sort();
    domains.dedup();
    domains.retain(|domain| roles_of(before, domain) != roles_of(after, domain));
    domains
}

/// Drops a deleted role from the organization's email-domain assignments (the grants went
/// with the role), recording `organization.updated` when it was named there.
pub fn forget_role(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    role_id: &str,
) -> Result<(), Error> {
    let organization = find(conn, organization_id)?;
    let assignments = &organization.settings.rbac_email_implicit_role_assignments;
    if assignments
        .iter()
        .all(|assignment| assignment.role_id != role_id)
    {
        return Ok(());
    }
    let kept = assignments
        .iter()
        .filter(|assignment| assignment.role_id != role_id)
        .cloned()
        .collect();
    update(
        conn,
        actor,
        organization_id,
        OrganizationFields {
            rbac_email_implicit_role_assignments: Some(kept),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Deletes the organization and, by cascade, everything of it: its connections and their
/// tokens stop working when this commits. `organization.deleted` stays in the log.
pub fn delete(conn: &mut DbConn, actor: &Actor, organization_id: &str) -> Result<(), Error> {
    let organization = find(conn, organization_id)?;
    // Members first, then the connections, then the organization's row (its event locks
    // it, and is written now, while the row is there): the order every SCIM write takes its
    // locks in (members::count_users), so the two never deadlock on PostgreSQL.
    diesel::delete(
        members::table.filter(members::organization_id.eq(&organization.organization_id)),
    )
    .execute(conn)?;
    diesel::delete(
        scim_connections::table
            .filter(scim_connections::organization_id.eq(&organization.organization_id)),
    )
    .execute(conn)?;
    events::record_now(
        conn,
        &organization.organization_id,
        actor,
        Event {
            event_type: "organization.deleted",
            subject_id: &organization.organization_id,
            data: serde_json::json!({ "organization_id": organization.organization_id }),
            previous: None,
        },
    )?;
    diesel::delete(organizations::table.find(&organization.organization_id)).execute(conn)?;
    Ok(())
}

fn to_value(organization: &Organization) -> Value {
    serde_json::to_value(organization).expect("organization serializes")
}

/// Validates and applies every present field, then checks the rules that tie settings together.
fn apply_fields(organization: &mut Organization, fields: OrganizationFields) -> Result<(), Error> {
    if let Some(name) = fields.organization_name {
        organization.organization_name = validate_name(&name)?;
    }
    if let Some(slug) = fields.organization_slug {
        organization.organization_slug = validate_slug(&slug)?;
    }
    let settings = &mut organization.settings;
    if let Some(domains) = fields.email_allowed_domains {
        settings.email_allowed_domains = validate_domains(&domains)?;
    }
    if let Some(value) = fields.email_jit_provisioning {
        settings.email_jit_provisioning = value;
    }
    if let Some(value) = fields.email_invites {
        settings.email_invites = value;
    }
    if let Some(value) = fields.sso_jit_provisioning {
        settings.sso_jit_provisioning = value;
    }
    if let Some(connections) = fields.sso_jit_provisioning_allowed_connections {
        settings.sso_jit_provisioning_allowed_connections = validate_connection_ids(&connections)?;
    }
    if let Some(value) = fields.auth_methods {
        settings.auth_methods = value;
    }
    if let Some(methods) = fields.allowed_auth_methods {
        settings.allowed_auth_methods = first_occurrences(methods);
    }
    if let Some(value) = fields.mfa_policy {
        settings.mfa_policy = value;
    }
    if let Some(tenants) = fields.allowed_oauth_tenants {
        settings.allowed_oauth_tenants = validate_oauth_tenants(tenants)?;
    }
    if let Some(value) = fields.oauth_tenant_jit_provisioning {
        settings.oauth_tenant_jit_provisioning = value;
    }
    if let Some(assignments) = fields.rbac_email_implicit_role_assignments {
        settings.rbac_email_implicit_role_assignments = validate_email_roles(assignments)?;
    }
    if let Some(value) = fields.scim_email_domain_policy {
        settings.scim_email_domain_policy = value;
    }
    if let Some(changes) = fields.trusted_metadata {
        organization.trusted_metadata =
            merge_metadata(&organization.trusted_metadata, changes, "trusted_metadata")?;
    }
    validate_settings(&organization.settings)
}

fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "invalid_organization_name",
            format!("organization_name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Slugs are lowercase `[a-z0-9._~-]`, 2–128 characters. A slug shaped like an organization id
/// is refused so that `/v1/organizations/{id or slug}` is never ambiguous.
pub fn validate_slug(slug: &str) -> Result<String, Error> {
    let valid_chars = slug.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'~' | b'-')
    });
    if !(2..=128).contains(&slug.len()) || !valid_chars {
        return Err(Error::invalid(
            "invalid_organization_slug",
            format!(
                "organization_slug `{slug}` is not allowed: use 2 to 128 characters from lowercase \
                 letters, digits and `-` `.` `_` `~`"
            ),
        ));
    }
    if slug.starts_with("organization-") {
        return Err(Error::invalid(
            "invalid_organization_slug",
            "organization_slug may not start with `organization-`, which is how organization ids begin",
        ));
    }
    Ok(slug.to_string())
}

fn validate_domains(domains: &[String]) -> Result<Vec<String>, Error> {
    let mut normalized = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = normalize_allowed_domain(domain).map_err(|problem| {
            Error::invalid(
                "invalid_email_allowed_domains",
                format!("email_allowed_domains: {}", problem.message()),
            )
        })?;
        normalized.push(domain);
    }
    Ok(first_occurrences(normalized))
}

fn validate_connection_ids(connections: &[String]) -> Result<Vec<String>, Error> {
    if let Some(blank) = connections
        .iter()
        .find(|id| id.trim().is_empty() || id.len() > 128)
    {
        return Err(Error::invalid(
            "invalid_sso_jit_provisioning_allowed_connections",
            format!("sso_jit_provisioning_allowed_connections: `{blank}` is not a connection id (1 to 128 characters)"),
        ));
    }
    Ok(first_occurrences(connections.to_vec()))
}

/// Tenant ids per provider: trimmed, 1 to 128 characters, each listed once; a provider with
/// an empty list is dropped.
fn validate_oauth_tenants(
    tenants: BTreeMap<OauthProvider, Vec<String>>,
) -> Result<BTreeMap<OauthProvider, Vec<String>>, Error> {
    let mut valid = BTreeMap::new();
    for (provider, ids) in tenants {
        let mut kept = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.trim().to_string();
            if id.is_empty() || id.len() > 128 {
                return Err(Error::invalid(
                    "invalid_allowed_oauth_tenants",
                    format!(
                        "allowed_oauth_tenants.{}: `{id}` is not a tenant id (1 to 128 characters)",
                        provider.as_str()
                    ),
                ));
            }
            kept.push(id);
        }
        let kept = first_occurrences(kept);
        if !kept.is_empty() {
            valid.insert(provider, kept);
        }
    }
    Ok(valid)
}

/// Email-domain role assignments: valid domains (lowercased), a role id, each pair once. That
/// the roles exist is checked against the database by `check_email_roles_exist`.
fn validate_email_roles(
    assignments: Vec<EmailRoleAssignment>,
) -> Result<Vec<EmailRoleAssignment>, Error> {
    let mut valid = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let domain = normalize_allowed_domain(&assignment.domain).map_err(|problem| {
            Error::invalid(
                "invalid_rbac_email_implicit_role_assignments",
                format!(
                    "rbac_email_implicit_role_assignments: {}",
                    problem.message()
                ),
            )
        })?;
        let role_id = assignment.role_id.trim().to_string();
        if role_id == super::roles::MEMBER {
            return Err(Error::invalid(
                "invalid_rbac_email_implicit_role_assignments",
                "rbac_email_implicit_role_assignments: every active member holds `member` already; \
                 assign other roles by domain",
            ));
        }
        valid.push(EmailRoleAssignment { domain, role_id });
    }
    Ok(first_occurrences(valid))
}

/// Every role an email-domain assignment names must be a role of the organization.
fn check_email_roles_exist(conn: &mut DbConn, organization: &Organization) -> Result<(), Error> {
    for assignment in &organization.settings.rbac_email_implicit_role_assignments {
        if super::roles::find(conn, &organization.organization_id, &assignment.role_id).is_err() {
            return Err(Error::invalid(
                "invalid_rbac_email_implicit_role_assignments",
                format!(
                    "rbac_email_implicit_role_assignments: no role `{}` in this organization",
                    assignment.role_id
                ),
            ));
        }
    }
    Ok(())
}

/// Drops repeated items, keeping the first of each in its place.
fn first_occurrences<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// The rules Stytch applies between settings: a RESTRICTED policy needs the list it restricts to.
fn validate_settings(settings: &OrganizationSettings) -> Result<(), Error> {
    let no_domains = settings.email_allowed_domains.is_empty();
    if settings.email_jit_provisioning == EmailJitProvisioning::Restricted && no_domains {
        return Err(Error::invalid(
            "email_allowed_domains_required",
            "email_jit_provisioning RESTRICTED needs at least one domain in email_allowed_domains",
        ));
    }
    if settings.email_invites == EmailInvites::Restricted && no_domains {
        return Err(Error::invalid(
            "email_allowed_domains_required",
            "email_invites RESTRICTED needs at least one domain in email_allowed_domains",
        ));
    }
    if settings.sso_jit_provisioning == SsoJitProvisioning::Restricted
        && settings.sso_jit_provisioning_allowed_connections.is_empty()
    {
        return Err(Error::invalid(
            "sso_jit_provisioning_allowed_connections_required",
            "sso_jit_provisioning RESTRICTED needs at least one id in sso_jit_provisioning_allowed_connections",
        ));
    }
    if settings.oauth_tenant_jit_provisioning == OauthTenantJitProvisioning::Restricted
        && settings.allowed_oauth_tenants.is_empty()
    {
        return Err(Error::invalid(
            "allowed_oauth_tenants_required",
            "oauth_tenant_jit_provisioning RESTRICTED needs at least one tenant in allowed_oauth_tenants",
        ));
    }
    if settings.scim_email_domain_policy == ScimEmailDomainPolicy::Restricted && no_domains {
        return Err(Error::invalid(
            "email_allowed_domains_required",
            "scim_email_domain_policy RESTRICTED needs at least one domain in email_allowed_domains",
        ));
    }
    if settings.auth_methods == AuthMethods::Restricted && settings.allowed_auth_methods.is_empty()
    {
        return Err(Error::invalid(
            "allowed_auth_methods_required",
            "auth_methods RESTRICTED needs at least one method in allowed_auth_methods",
        ));
    }
    Ok(())
}

/// Merges metadata changes into `current`: each top-level key replaces its value, a `null`
/// removes the key. The result may hold at most 20 keys and 4 KB of JSON.
pub fn merge_metadata(
    current: &Map<String, Value>,
    changes: Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, Error> {
    let mut merged = current.clone();
    for (key, value) in changes {
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    if merged.len() > MAX_METADATA_KEYS {
        return Err(Error::invalid(
            "invalid_metadata",
            format!(
                "{field} may hold at most {MAX_METADATA_KEYS} top-level keys; this would make {}",
                merged.len()
            ),
        ));
    }
    let size = Value::Object(merged.clone()).to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            "invalid_metadata",
            format!(
                "{field} may be at most {MAX_METADATA_BYTES} bytes of JSON; this would make {size}"
            ),
        ));
    }
    Ok(merged)
}

/// Inserts the row; the unique index on `slug` settles races between concurrent creates.
fn insert_unique_slug(conn: &mut DbConn, organization: &Organization) -> Result<(), Error> {
    diesel::insert_into(organizations::table)
        .values(OrganizationRow::from_organization(organization))
        .execute(conn)
        .map_err(|error| slug_conflict(error, &organization.organization_slug))?;
    Ok(())
}

fn slug_conflict(error: diesel::result::Error, slug: &str) -> Error {
    match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => slug_taken(slug),
        other => other.into(),
    }
}

fn slug_taken(slug: &str) -> Error {
    Error::conflict(
        "organization_slug_taken",
        format!("organization_slug `{slug}` is already used by another organization"),
    )
}

fn replace_domains(conn: &mut DbConn, organization: &Organization) -> Result<(), Error> {
    let organization_id = organization.organization_id.as_str();
    diesel::delete(
        organization_domains::table
            .filter(organization_domains::organization_id.eq(organization_id)),
    )
    .execute(conn)?;
    let rows: Vec<_> = organization
        .settings
        .email_allowed_domains
        .iter()
        .map(|domain| {
            (
                organization_domains::organization_id.eq(organization_id),
                organization_domains::domain.eq(domain),
            )
        })
        .collect();
    if !rows.is_empty() {
        crate::on_backend!(conn, |inner| diesel::insert_into(
            organization_domains::table
        )
        .values(&rows)
        .execute(inner))?;
    }
    Ok(())
}

fn replace_oauth_tenants(conn: &mut DbConn, organization: &Organization) -> Result<(), Error> {
    let organization_id = organization.organization_id.as_str();
    diesel::delete(
        organization_oauth_tenants::table
            .filter(organization_oauth_tenants::organization_id.eq(organization_id)),
    )
    .execute(conn)?;
    let rows: Vec<_> = organization
        .settings
        .allowed_oauth_tenants
        .iter()
        .flat_map(|(provider, tenants)| {
            tenants.iter().map(move |tenant_id| {
                (
                    organization_oauth_tenants::organization_id.eq(organization_id),
                    organization_oauth_tenants::provider.eq(provider.as_str()),
                    organization_oauth_tenants::tenant_id.eq(tenant_id),
                )
            })
        })
        .collect();
    if !rows.is_empty() {
        crate::on_backend!(conn, |inner| diesel::insert_into(
            organization_oauth_tenants::table
        )
        .values(&rows)
        .execute(inner))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slugs_follow_the_documented_alphabet() {
        for ok in ["acme", "acme-inc", "a.b_c~d", "42"] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "Acme",
            "acme inc",
            "acmé",
            "acme/inc",
            &"a".repeat(129),
            "organization-x",
        ] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_merges_top_level_keys_and_null_removes() {
        let current = json!({"a": 1, "b": {"x": 1}}).as_object().unwrap().clone();
        let changes = json!({"b": {"y": 2}, "a": null, "c": "new"})
            .as_object()
            .unwrap()
            .clone();
        let merged = merge_metadata(&current, changes, "trusted_metadata").unwrap();
        assert_eq!(Value::Object(merged), json!({"b": {"y": 2}, "c": "new"}));
    }

    #[test]
    fn metadata_limits_keys_and_size() {
        let many: Map<String, Value> = (0..21).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(merge_metadata(&Map::new(), many, "trusted_metadata").is_err());
        let big: Map<String, Value> = [("k".to_string(), json!("x".repeat(4100)))]
            .into_iter()
            .collect();
        assert!(merge_metadata(&Map::new(), big, "trusted_metadata").is_err());
    }

    #[test]
    fn restricted_policies_need_their_lists() {
        let mut settings = OrganizationSettings {
            email_jit_provisioning: EmailJitProvisioning::Restricted,
            ..Default::default()
        };
        assert!(validate_settings(&settings).is_err());
        settings.email_allowed_domains = vec!["acme.com".into()];
        assert!(validate_settings(&settings).is_ok());
    }
}
