//! Discovery: every organization a person could enter, and how. Everything is found through
//! indexes (members by email, organizations by claimed domain and by OAuth tenant), so the
//! answer costs the same with ten organizations or ten thousand.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::members::{self, email_domain, Member, MemberStatus};
use super::organizations::{
    self, EmailJitProvisioning, OauthProvider, OauthTenantJitProvisioning, Organization,
};
use crate::db::schema::{
    members as members_table, organization_domains, organization_oauth_tenants,
};
use crate::db::DbConn;
use crate::error::Error;

/// Who is asking: an email the application authenticated (or not), and the OAuth tenant the
/// login came through, if any.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryRequest {
    pub email: String,
    pub email_verified: bool,
    pub oauth_provider: Option<OauthProvider>,
    pub oauth_tenant_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DiscoveredOrganization {
    pub organization: OrganizationSummary,
    pub membership: Membership,
}

#[derive(Debug, Serialize)]
pub struct OrganizationSummary {
    pub organization_id: String,
    pub organization_name: String,
    pub organization_slug: String,
}

#[derive(Debug, Serialize)]
pub struct Membership {
    /// `active_member`, `invited_member`, `pending_member`,
    /// `eligible_to_join_by_email_domain` or `eligible_to_join_by_oauth_tenant`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The member, for the first three.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    /// The domain or tenant that makes the person eligible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

const ACTIVE: &str = "active_member";
const INVITED: &str = "invited_member";
const PENDING: &str = "pending_member";

fn summary(organization: &Organization) -> OrganizationSummary {
    OrganizationSummary {
        organization_id: organization.organization_id.clone(),
        organization_name: organization.organization_name.clone(),
        organization_slug: organization.organization_slug.clone(),
    }
}

/// The organizations this person belongs to (active, invited or pending; never where they
/// are inactive), then those they may join: by email domain, only with a verified email and
/// only where an active member already verified an address on that domain (so that claiming
/// a domain alone does not make an organization a phishing target for it); by OAuth tenant,
/// where the organization admits that tenant.
pub fn discover(
    conn: &mut DbConn,
    request: &DiscoveryRequest,
) -> Result<Vec<DiscoveredOrganization>, Error> {
    let email = request.email.trim();
    let mut found = Vec::new();
    // Organizations the person has a member in, whatever its status: none is "eligible" there.
    let mut known: Vec<String> = Vec::new();
    for member in members::find_all_by_email(conn, email)? {
        known.push(member.organization_id.clone());
        let kind = match member.status {
            MemberStatus::Active => ACTIVE,
            MemberStatus::Invited => INVITED,
            MemberStatus::Pending => PENDING,
            MemberStatus::Inactive | MemberStatus::Deleted => continue,
        };
        let organization = organizations::find(conn, &member.organization_id)?;
        found.push(DiscoveredOrganization {
            organization: summary(&organization),
            membership: Membership {
                kind,
                member: Some(member),
                details: None,
            },
        });
    }
    // Where the person is already in first, then invited, then pending; by name within each.
    found.sort_by(|a, b| {
        let rank = |d: &DiscoveredOrganization| {
            [ACTIVE, INVITED, PENDING]
                .iter()
                .position(|k| *k == d.membership.kind)
        };
        (rank(a), &a.organization.organization_name)
            .cmp(&(rank(b), &b.organization.organization_name))
    });
    let domain = email_domain(email);
    if request.email_verified && !domain.is_empty() {
        let claiming: Vec<String> = organization_domains::table
            .filter(organization_domains::domain.eq(&domain))
            .select(organization_domains::organization_id)
            .order(organization_domains::organization_id.asc())
            .load(conn)?;
        for organization_id in claiming {
            if known.contains(&organization_id) {
                continue;
            }
            let organization = organizations::find(conn, &organization_id)?;
            if organization.settings.email_jit_provisioning != EmailJitProvisioning::Restricted
                || !has_verified_member_on(conn, &organization_id, &domain)?
            {
                continue;
            }
            known.push(organization_id);
            found.push(DiscoveredOrganization {
                organization: summary(&organization),
                membership: Membership {
                    kind: "eligible_to_join_by_email_domain",
                    member: None,
                    details: Some(serde_json::json!({ "domain": domain })),
                },
            });
        }
    }
    if let (Some(provider), Some(tenant_id)) =
        (request.oauth_provider, request.oauth_tenant_id.as_deref())
    {
        let admitting: Vec<String> = organization_oauth_tenants::table
            .filter(organization_oauth_tenants::provider.eq(provider.as_str()))
            .filter(organization_oauth_tenants::tenant_id.eq(tenant_id))
            .select(organization_oauth_tenants::organization_id)
            .order(organization_oauth_tenants::organization_id.asc())
            .load(conn)?;
        for organization_id in admitting {
            if known.contains(&organization_id) {
                continue;
            }
            let organization = organizations::find(conn, &organization_id)?;
            if organization.settings.oauth_tenant_jit_provisioning
                != OauthTenantJitProvisioning::Restricted
            {
                continue;
            }
            known.push(organization_id);
            found.push(DiscoveredOrganization {
                organization: summary(&organization),
                membership: Membership {
                    kind: "eligible_to_join_by_oauth_tenant",
                    member: None,
                    details: Some(serde_json::json!({
                        "provider": provider.as_str(),
                        "tenant_id": tenant_id,
                    })),
                },
            });
        }
    }
    Ok(found)
}

/// Whether an active member of the organization has a verified email on `domain`.
fn has_verified_member_on(
    conn: &mut DbConn,
    organization_id: &str,
    domain: &str,
) -> Result<bool, Error> {
    Ok(members_table::table
        .filter(members_table::organization_id.eq(organization_id))
        .filter(members_table::email_domain.eq(domain))
        .filter(members_table::status.eq(MemberStatus::Active.as_str()))
        .filter(members_table::email_address_verified.eq(true))
        .select(members_table::member_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}
