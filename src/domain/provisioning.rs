//! How members arrive other than by SCIM, and the organization's rules on who may join:
//! manual provisioning through the management API, invites, and just-in-time provisioning
//! when the application reports an authentication. SCIM's own rule (`scim_email_domain_policy`)
//! lives here too, so that every rule about emails and domains is in one place.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::member_roles;
use super::members::{self, email_domain, Member, MemberStatus};
use super::organizations::{
    merge_metadata, AuthMethod, AuthMethods, EmailInvites, EmailJitProvisioning, OauthProvider,
    OauthTenantJitProvisioning, Organization, OrganizationSettings, ScimEmailDomainPolicy,
    SsoJitProvisioning,
};
use super::scim_users::MAX_INDEXED_BYTES;
use super::{new_id, now, Actor};
use crate::db::DbConn;
use crate::error::{Error, ScimType};

const MAX_NAME_CHARS: usize = 256;

/// SCIM may provision `email` only on an allowed domain when the organization restricts it.
/// The detail names the domain and the setting, so the IdP's provisioning log tells the admin
/// what to fix.
pub fn check_scim_email(settings: &OrganizationSettings, email: &str) -> Result<(), Error> {
    let domain = email_domain(email);
    if settings.scim_email_domain_policy == ScimEmailDomainPolicy::Restricted
        && !settings.allows_domain(&domain)
    {
        return Err(Error::scim(
            ScimType::InvalidValue,
            format!(
                "the email {email} is on {domain}, which is not in this organization's \
                 email_allowed_domains ({}), and its scim_email_domain_policy is RESTRICTED: \
                 provision the user with an address on an allowed domain, or add {domain} to \
                 the organization's email_allowed_domains",
                settings.email_allowed_domains.join(", ")
            ),
        ));
    }
    Ok(())
}

/// What the management API may set on a member. Absent fields keep their value (update) or
/// their default (create); metadata merges top-level keys, `null` removing one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFields {
    pub email_address: Option<String>,
    pub name: Option<String>,
    pub trusted_metadata: Option<Map<String, Value>>,
    pub untrusted_metadata: Option<Map<String, Value>>,
    pub is_breakglass: Option<bool>,
    /// The member's direct roles, replacing those it had.
    pub roles: Option<Vec<String>>,
    /// Create only: the member starts `pending` instead of `active`.
    pub create_member_as_pending: Option<bool>,
}

/// An email address as a member's: trimmed, with a local part and a dotted domain.
fn valid_email(input: &str) -> Result<String, Error> {
    let email = input.trim();
    if !super::email::is_email_address(email) || email.len() > MAX_INDEXED_BYTES {
        return Err(Error::invalid(
            "invalid_email_address",
            format!(
                "`{email}` is not an email address (name@domain.tld, at most {MAX_INDEXED_BYTES} bytes)"
            ),
        ));
    }
    Ok(email.to_string())
}

fn valid_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(Error::invalid(
            "invalid_name",
            format!("name must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// A member the management API may not change: an IdP owns its email and status.
fn scim_managed(member: &Member, what: &str) -> Error {
    let connection = member
        .scim_registration
        .as_ref()
        .map_or("", |registration| registration.connection_id.as_str());
    Error::conflict(
        "scim_managed_member",
        format!(
            "member {} is managed by SCIM connection {connection}: its {what} can only be \
             changed by that identity provider",
            member.member_id
        ),
    )
}

/// A new member with nothing but its email and status.
fn new_member(organization_id: &str, email: String, status: MemberStatus) -> Member {
    let at = now();
    Member {
        member_id: new_id("member"),
        organization_id: organization_id.to_string(),
        email_address: email,
        email_address_verified: false,
        status,
        name: String::new(),
        is_breakglass: false,
        trusted_metadata: Map::new(),
        untrusted_metadata: Map::new(),
        scim_registration: None,
        created_at: at,
        updated_at: at,
        version: 1,
    }
}

/// Applies name, metadata and breakglass from `fields` to `member`.
fn apply_profile(member: &mut Member, fields: &MemberFields) -> Result<(), Error> {
    if let Some(name) = &fields.name {
        member.name = valid_name(name)?;
    }
    if let Some(changes) = &fields.trusted_metadata {
        member.trusted_metadata = merge_metadata(
            &member.trusted_metadata,
            changes.clone(),
            "trusted_metadata",
        )?;
    }
    if let Some(changes) = &fields.untrusted_metadata {
        member.untrusted_metadata = merge_metadata(
            &member.untrusted_metadata,
            changes.clone(),
            "untrusted_metadata",
        )?;
    }
    if let Some(is_breakglass) = fields.is_breakglass {
        member.is_breakglass = is_breakglass;
    }
    Ok(())
}

/// Refuses an email that a live member of the organization already has.
fn ensure_email_free(conn: &mut DbConn, organization_id: &str, email: &str) -> Result<(), Error> {
    if let Some(holder) = members::find_by_email(conn, organization_id, email)? {
        return Err(Error::conflict(
            "email_taken",
            format!(
                "the email {email} already belongs to member {} ({}) of this organization",
                holder.member_id,
                holder.status.as_str()
            ),
        ));
    }
    Ok(())
}

/// Manual provisioning: a new `active` (or `pending`) member, with its direct roles and the
/// roles its email domain implies.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    fields: MemberFields,
) -> Result<Member, Error> {
    let email = valid_email(
        fields
            .email_address
            .as_deref()
            .ok_or_else(|| Error::invalid("missing_field", "email_address is required"))?,
    )?;
    ensure_email_free(conn, organization_id, &email)?;
    let status = if fields.create_member_as_pending == Some(true) {
        MemberStatus::Pending
    } else {
        MemberStatus::Active
    };
    let mut member = new_member(organization_id, email, status);
    apply_profile(&mut member, &fields)?;
    members::insert(conn, actor, &member, "member.created")?;
    settle_roles(conn, actor, &member, fields.roles.as_deref())?;
    Ok(member)
}

/// Direct roles as asked (an active member's only), then every derived role.
fn settle_roles(
    conn: &mut DbConn,
    actor: &Actor,
    member: &Member,
    direct: Option<&[String]>,
) -> Result<(), Error> {
    if let Some(role_ids) = direct {
        if member.status != MemberStatus::Active && !role_ids.is_empty() {
            return Err(Error::conflict(
                "member_not_active",
                format!(
                    "member {} is {}: only active members hold roles",
                    member.member_id,
                    member.status.as_str()
                ),
            ));
        }
        member_roles::set_direct(
            conn,
            actor,
            &member.organization_id,
            &member.member_id,
            role_ids,
        )?;
    }
    member_roles::sync(conn, actor, &member.member_id)?;
    Ok(())
}

/// The member, unless deleted: a tombstone can only be reactivated.
fn find_live(conn: &mut DbConn, organization_id: &str, member_id: &str) -> Result<Member, Error> {
    members::lock(conn, member_id)?;
    let member = members::find(conn, organization_id, member_id)?;
    if member.status == MemberStatus::Deleted {
        return Err(Error::conflict(
            "member_deleted",
            format!("member {member_id} is deleted: reactivate it first"),
        ));
    }
    Ok(member)
}

/// Updates profile, email and direct roles. A SCIM-managed member's email belongs to its IdP.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
    fields: MemberFields,
) -> Result<Member, Error> {
    if fields.create_member_as_pending.is_some() {
        return Err(Error::invalid(
            "invalid_field",
            "create_member_as_pending applies only when creating a member",
        ));
    }
    let before = find_live(conn, organization_id, member_id)?;
    let mut after = before.clone();
    apply_profile(&mut after, &fields)?;
    if let Some(email) = &fields.email_address {
        let email = valid_email(email)?;
        if email != before.email_address {
            if before.scim_registration.is_some() {
                return Err(scim_managed(&before, "email address"));
            }
            if members::lookup_key(&email) != members::lookup_key(&before.email_address) {
                ensure_email_free(conn, organization_id, &email)?;
                after.email_address_verified = false;
            }
            after.email_address = email;
        }
    }
    let saved = members::update(conn, actor, &before, after, "member.updated")?;
    let domain_changed = email_domain(&saved.email_address) != email_domain(&before.email_address);
    if fields.roles.is_some() || domain_changed {
        settle_roles(conn, actor, &saved, fields.roles.as_deref())?;
    }
    Ok(saved)
}

/// Deletes a member the API manages: a tombstone, its roles gone, its email free.
pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
) -> Result<(), Error> {
    let before = find_live(conn, organization_id, member_id)?;
    if before.scim_registration.is_some() {
        return Err(scim_managed(&before, "status (deprovision it in the IdP)"));
    }
    let after = Member {
        status: MemberStatus::Deleted,
        ..before.clone()
    };
    members::update(conn, actor, &before, after, "member.deleted")?;
    member_roles::sync(conn, actor, member_id)?;
    Ok(())
}

/// Brings an inactive or deleted member back to `active`, with the roles its email domain
/// implies (direct roles are not restored). Its email must be free again.
pub fn reactivate(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
) -> Result<Member, Error> {
    members::lock(conn, member_id)?;
    let before = members::find(conn, organization_id, member_id)?;
    if before.scim_registration.is_some() {
        return Err(scim_managed(
            &before,
            "status (its IdP reactivates it with active=true)",
        ));
    }
    if !matches!(
        before.status,
        MemberStatus::Inactive | MemberStatus::Deleted
    ) {
        return Err(Error::conflict(
            "member_not_inactive",
            format!(
                "member {member_id} is {}: only inactive or deleted members are reactivated",
                before.status.as_str()
            ),
        ));
    }
    if before.status == MemberStatus::Deleted {
        ensure_email_free(conn, organization_id, &before.email_address)?;
    }
    let after = Member {
        status: MemberStatus::Active,
        ..before.clone()
    };
    let saved = members::update(conn, actor, &before, after, "member.reactivated")?;
    member_roles::sync(conn, actor, member_id)?;
    Ok(saved)
}

/// An invitation: who to invite, and who invites.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteFields {
    pub email_address: String,
    pub name: Option<String>,
    pub trusted_metadata: Option<Map<String, Value>>,
    pub untrusted_metadata: Option<Map<String, Value>>,
    pub is_breakglass: Option<bool>,
    /// The member (or anyone the application names) who sent the invite, for the email.
    pub invited_by: Option<String>,
}

/// Invites a person as `email_invites` allows: a new `invited` member, or the same invited
/// (or pending) member invited again. `member.invited` carries what the application needs to
/// send the email; scimd sends none.
pub fn invite(
    conn: &mut DbConn,
    actor: &Actor,
    organization: &Organization,
    fields: InviteFields,
) -> Result<Member, Error> {
    let email = valid_email(&fields.email_address)?;
    let settings = &organization.settings;
    match settings.email_invites {
        EmailInvites::NotAllowed => {
            return Err(Error::refused(
                "invites_not_allowed",
                "this organization's email_invites is NOT_ALLOWED: members join only by SSO, \
                 SCIM, JIT or the API",
            ))
        }
        EmailInvites::Restricted if !settings.allows_domain(&email_domain(&email)) => {
            return Err(Error::refused(
                "domain_not_allowed",
                format!(
                    "{email} is not on one of this organization's email_allowed_domains ({}), \
                     and its email_invites is RESTRICTED",
                    settings.email_allowed_domains.join(", ")
                ),
            ))
        }
        _ => {}
    }
    let profile = MemberFields {
        name: fields.name.clone(),
        trusted_metadata: fields.trusted_metadata.clone(),
        untrusted_metadata: fields.untrusted_metadata.clone(),
        is_breakglass: fields.is_breakglass,
        ..MemberFields::default()
    };
    let organization_id = &organization.organization_id;
    let invited = match members::find_by_email(conn, organization_id, &email)? {
        None => {
            let mut member = new_member(organization_id, email, MemberStatus::Invited);
            apply_profile(&mut member, &profile)?;
            members::insert(conn, actor, &member, "member.created")?;
            member
        }
        Some(existing) => match existing.status {
            MemberStatus::Invited | MemberStatus::Pending => {
                members::lock(conn, &existing.member_id)?;
                let mut after = existing.clone();
                after.status = MemberStatus::Invited;
                apply_profile(&mut after, &profile)?;
                members::update(conn, actor, &existing, after, "member.updated")?
            }
            status => {
                return Err(Error::conflict(
                    "member_exists",
                    format!(
                        "{email} is already member {} of this organization ({}): there is \
                         nothing to invite",
                        existing.member_id,
                        status.as_str()
                    ),
                ))
            }
        },
    };
    members::record_event(
        actor,
        "member.invited",
        &invited,
        Some((
            "invite",
            json!({
                "organization_name": organization.organization_name,
                "organization_slug": organization.organization_slug,
                "invited_by": fields.invited_by,
            }),
        )),
    )?;
    Ok(invited)
}

/// The invitee authenticated: the invited member becomes `active`, its email proven.
pub fn accept_invite(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
) -> Result<Member, Error> {
    let before = find_live(conn, organization_id, member_id)?;
    if before.status != MemberStatus::Invited {
        return Err(Error::conflict(
            "member_not_invited",
            format!(
                "member {member_id} is {}: only an invited member accepts an invite",
                before.status.as_str()
            ),
        ));
    }
    let after = Member {
        status: MemberStatus::Active,
        email_address_verified: true,
        ..before.clone()
    };
    let saved = members::update(conn, actor, &before, after, "member.updated")?;
    member_roles::sync(conn, actor, member_id)?;
    Ok(saved)
}

/// How the person authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitMethod {
    Sso,
    Oauth,
    EmailMagicLink,
    EmailOtp,
}

/// A successful authentication the application reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitRequest {
    pub email: String,
    pub email_verified: bool,
    pub method: JitMethod,
    pub sso_connection_id: Option<String>,
    pub oauth_provider: Option<OauthProvider>,
    pub oauth_tenant_id: Option<String>,
}

/// What `jit` did.
pub struct JitOutcome {
    pub member: Member,
    pub created: bool,
}

impl JitRequest {
    /// The auth method this is, as `allowed_auth_methods` names it.
    fn auth_method(&self) -> Result<AuthMethod, Error> {
        Ok(match self.method {
            JitMethod::Sso => AuthMethod::Sso,
            JitMethod::EmailMagicLink => AuthMethod::MagicLink,
            JitMethod::EmailOtp => AuthMethod::EmailOtp,
            JitMethod::Oauth => self
                .oauth_provider
                .ok_or_else(|| {
                    Error::invalid(
                        "missing_field",
                        "oauth_provider is required when method is oauth",
                    )
                })?
                .auth_method(),
        })
    }
}

/// A person authenticated into the organization: answers with their member, activating an
/// invited or pending one, or creates one when the organization's rules allow it, or refuses
/// with the reason.
pub fn jit(
    conn: &mut DbConn,
    actor: &Actor,
    organization: &Organization,
    request: JitRequest,
) -> Result<JitOutcome, Error> {
    let email = valid_email(&request.email)?;
    let method = request.auth_method()?;
    if request.method == JitMethod::Sso && request.sso_connection_id.is_none() {
        return Err(Error::invalid(
            "missing_field",
            "sso_connection_id is required when method is sso",
        ));
    }
    let settings = &organization.settings;
    let organization_id = &organization.organization_id;
    let existing = members::find_by_email(conn, organization_id, &email)?;
    let breakglass = existing.as_ref().is_some_and(|member| member.is_breakglass);
    if settings.auth_methods == AuthMethods::Restricted
        && !settings.allowed_auth_methods.contains(&method)
        && !breakglass
    {
        return Err(Error::refused(
            "auth_method_not_allowed",
            format!(
                "this organization allows only {} (auth_methods RESTRICTED), not {}",
                names(&settings.allowed_auth_methods),
                names(&[method])
            ),
        ));
    }
    if let Some(member) = existing {
        return admit_existing(conn, actor, member, &request);
    }
    may_join(settings, &email, &request)?;
    let mut member = new_member(organization_id, email, MemberStatus::Active);
    member.email_address_verified = request.email_verified;
    members::insert(conn, actor, &member, "member.created")?;
    member_roles::sync(conn, actor, &member.member_id)?;
    Ok(JitOutcome {
        member,
        created: true,
    })
}

fn names(methods: &[AuthMethod]) -> String {
    methods
        .iter()
        .map(|method| serde_json::to_value(method).map_or(String::new(), |v| v.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
        .replace('"', "")
}

/// An existing member authenticated: an inactive one stays out (only its IdP or an admin
/// brings it back); an invited or pending one becomes active; a verified email is recorded.
fn admit_existing(
    conn: &mut DbConn,
    actor: &Actor,
    member: Member,
    request: &JitRequest,
) -> Result<JitOutcome, Error> {
    if member.status == MemberStatus::Inactive {
        return Err(Error::refused(
            "member_inactive",
            format!(
                "member {} is inactive (deprovisioned): signing in does not reactivate it",
                member.member_id
            ),
        ));
    }
    let mut after = member.clone();
    if matches!(member.status, MemberStatus::Invited | MemberStatus::Pending) {
        if !request.email_verified && request.method != JitMethod::Sso {
            return Err(Error::refused(
                "email_not_verified",
                format!(
                    "member {} is {}: it becomes active only with a verified email",
                    member.member_id,
                    member.status.as_str()
                ),
            ));
        }
        after.status = MemberStatus::Active;
    }
    after.email_address_verified |= request.email_verified;
    if after == member {
        return Ok(JitOutcome {
            member,
            created: false,
        });
    }
    members::lock(conn, &member.member_id)?;
    let saved = members::update(conn, actor, &member, after, "member.updated")?;
    if saved.status != member.status {
        member_roles::sync(conn, actor, &saved.member_id)?;
    }
    Ok(JitOutcome {
        member: saved,
        created: false,
    })
}

/// Whether a person with no member may join by this authentication, from the seeds' rules:
/// SSO by `sso_jit_provisioning`; OAuth through an allowed tenant, else as email; email by
/// `email_jit_provisioning` RESTRICTED with a verified address on an allowed domain.
fn may_join(
    settings: &OrganizationSettings,
    email: &str,
    request: &JitRequest,
) -> Result<(), Error> {
    match request.method {
        JitMethod::Sso => {
            let connection = request.sso_connection_id.as_deref().unwrap_or_default();
            return match settings.sso_jit_provisioning {
                SsoJitProvisioning::AllAllowed => Ok(()),
                SsoJitProvisioning::Restricted
                    if settings
                        .sso_jit_provisioning_allowed_connections
                        .iter()
                        .any(|allowed| allowed == connection) =>
                {
                    Ok(())
                }
                SsoJitProvisioning::Restricted => Err(Error::refused(
                    "jit_not_allowed",
                    format!(
                        "SSO connection {connection} is not in this organization's \
                         sso_jit_provisioning_allowed_connections (sso_jit_provisioning RESTRICTED)"
                    ),
                )),
                SsoJitProvisioning::NotAllowed => Err(Error::refused(
                    "jit_not_allowed",
                    "this organization's sso_jit_provisioning is NOT_ALLOWED: invite the person \
                     or provision them by SCIM",
                )),
            };
        }
        JitMethod::Oauth => {
            if let (Some(provider), Some(tenant)) =
                (request.oauth_provider, request.oauth_tenant_id.as_deref())
            {
                let admitted = settings.oauth_tenant_jit_provisioning
                    == OauthTenantJitProvisioning::Restricted
                    && settings
                        .allowed_oauth_tenants
                        .get(&provider)
                        .is_some_and(|tenants| tenants.iter().any(|t| t == tenant));
                if admitted {
                    return Ok(());
                }
            }
        }
        JitMethod::EmailMagicLink | JitMethod::EmailOtp => {}
    }
    if settings.email_jit_provisioning != EmailJitProvisioning::Restricted {
        return Err(Error::refused(
            "jit_not_allowed",
            "this organization's email_jit_provisioning is NOT_ALLOWED (and no allowed OAuth \
             tenant admits this login): invite the person instead",
        ));
    }
    if !request.email_verified {
        return Err(Error::refused(
            "email_not_verified",
            format!("{email} is not verified: only a verified email may join by its domain"),
        ));
    }
    let domain = email_domain(email);
    if !settings.allows_domain(&domain) {
        return Err(Error::refused(
            "domain_not_allowed",
            format!(
                "{domain} is not one of this organization's email_allowed_domains ({})",
                settings.email_allowed_domains.join(", ")
            ),
        ));
    }
    Ok(())
}
