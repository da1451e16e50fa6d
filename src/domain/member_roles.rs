//! Which roles a member holds, and why. Group-derived roles follow the member's SCIM groups
//! and the connection's group→role assignments exactly; inactive and deleted members hold
//! none. Every change of a member's roles records `member.roles_changed`.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::connections::{self, Tenant};
use super::events::{self, Event};
use super::members::{email_domain, lookup_key, Member, MemberStatus};
use super::{new_id, now, organizations, roles, Actor};
use crate::db::schema::{
    group_members, group_role_assignments, member_roles, members, scim_groups,
};
use crate::db::DbConn;
use crate::error::Error;

pub const DIRECT: &str = "direct";
pub const EMAIL_DOMAIN: &str = "email_domain";
pub const SCIM_GROUP: &str = "scim_group";

/// One reason a member holds a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role_id: String,
    pub source: String,
    /// The group id for `scim_group`, the domain for `email_domain`, empty for `direct`.
    pub source_ref: String,
}

/// Makes the member's stored grants what its status, groups and the assignments say: group
/// grants are derived afresh; an inactive or deleted member loses every grant (direct ones
/// too, and they do not come back). Returns what was removed and added, after recording
/// `member.roles_changed` when anything was.
pub fn sync(
    conn: &mut DbConn,
    actor: &Actor,
    member_id: &str,
) -> Result<(Vec<Grant>, Vec<Grant>), Error> {
    let facts = Facts::read(conn, member_id, true)?;
    sync_member(conn, actor, member_id, facts, Known::default())
}

/// What a write has read already, in its transaction and after the member's lock, of what the
/// member's grants follow from: [`sync_written`] reads only what is `None` here.
#[derive(Default)]
pub struct Known {
    /// The grants the member holds ([`grants`], [`grants_column`]).
    pub grants: Option<Vec<Grant>>,
    /// The member's groups of its connection: id and display name.
    pub groups: Option<Vec<(String, String)>>,
    /// Its organization's settings.
    pub settings: Option<organizations::OrganizationSettings>,
}

/// `sync` for a member as it was just written, without reading it back, nor what `known`
/// holds.
pub fn sync_written(
    conn: &mut DbConn,
    actor: &Actor,
    member: &Member,
    known: Known,
) -> Result<(Vec<Grant>, Vec<Grant>), Error> {
    let facts = Facts {
        organization_id: member.organization_id.clone(),
        status: member.status.as_str().to_string(),
        connection_id: member
            .scim_registration
            .as_ref()
            .map(|registration| registration.connection_id.clone()),
        email_domain: email_domain(&member.email_address),
    };
    sync_member(conn, actor, &member.member_id, facts, known)
}

/// What a member's grants follow from: its organization, status, connection and email domain,
/// as its row stores them.
struct Facts {
    organization_id: String,
    status: String,
    connection_id: Option<String>,
    email_domain: String,
}

impl Facts {
    /// With `lock`, on PostgreSQL, the row is locked `FOR KEY SHARE` (as a grant's foreign key
    /// would lock it anyway): a sync that waits for the member's deletion or deactivation
    /// (which hold the row `FOR UPDATE`) then reads the row as that left it. Without the lock
    /// it read the member active before the wait and granted its roles after, to a member
    /// that no longer held any.
    fn read(conn: &mut DbConn, member_id: &str, lock: bool) -> Result<Self, Error> {
        let query = members::table.find(member_id).select((
            members::organization_id,
            members::status,
            members::scim_connection_id,
            members::email_domain,
        ));
        let (organization_id, status, connection_id, email_domain) = match conn {
            DbConn::Postgres(pg) if lock => query.for_key_share().first(pg)?,
            _ => query.first(conn)?,
        };
        Ok(Facts {
            organization_id,
            status,
            connection_id,
            email_domain,
        })
    }
}

/// `sync`, reading what `known` does not hold: the member's grants, its groups and its
/// organization's settings (the last two only for an active member).
fn sync_member(
    conn: &mut DbConn,
    actor: &Actor,
    member_id: &str,
    facts: Facts,
    known: Known,
) -> Result<(Vec<Grant>, Vec<Grant>), Error> {
    let Facts {
        organization_id,
        status,
        connection_id,
        email_domain,
    } = facts;
    let held = match known.grants {
        Some(held) => held,
        None => grants(conn, member_id)?,
    };
    let current: BTreeSet<Grant> = held.into_iter().collect();
    let active = status == MemberStatus::Active.as_str();
    let mut wanted: BTreeSet<Grant> = if active {
        current
            .iter()
            .filter(|grant| grant.source == DIRECT)
            .cloned()
            .collect()
    } else {
        BTreeSet::new()
    };
    if active {
        if let Some(connection_id) = connection_id {
            wanted.extend(group_grants(conn, member_id, &connection_id, known.groups)?);
        }
        let settings = match known.settings {
            Some(settings) => settings,
            None => organizations::settings(conn, &organization_id)?,
        };
        wanted.extend(settings.implicit_roles(&email_domain).map(|role_id| Grant {
            role_id: role_id.to_string(),
            source: EMAIL_DOMAIN.into(),
            source_ref: email_domain.clone(),
        }));
    }
    apply(conn, actor, &organization_id, member_id, &current, &wanted)
}

/// Makes the member's direct grants exactly `role_ids` (an active member's; `member` is
/// implicit and every role must exist), recording `member.roles_changed` when they changed.
pub fn set_direct(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
    role_ids: &[String],
) -> Result<(), Error> {
    let mut direct = BTreeSet::new();
    for role_id in role_ids {
        if role_id == roles::MEMBER {
            return Err(Error::invalid(
                "invalid_roles",
                "roles: every active member holds `member` implicitly; list other roles",
            ));
        }
        roles::find(conn, organization_id, role_id).map_err(|_| {
            Error::invalid(
                "invalid_roles",
                format!("roles: no role `{role_id}` in this organization"),
            )
        })?;
        direct.insert(Grant {
            role_id: role_id.clone(),
            source: DIRECT.into(),
            source_ref: String::new(),
        });
    }
    let current: BTreeSet<Grant> = grants(conn, member_id)?.into_iter().collect();
    let wanted: BTreeSet<Grant> = current
        .iter()
        .filter(|grant| grant.source != DIRECT)
        .cloned()
        .chain(direct)
        .collect();
    apply(conn, actor, organization_id, member_id, &current, &wanted)?;
    Ok(())
}

/// Writes the difference between the member's `current` and `wanted` grants and records it.
fn apply(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
    current: &BTreeSet<Grant>,
    wanted: &BTreeSet<Grant>,
) -> Result<(Vec<Grant>, Vec<Grant>), Error> {
    let removed: Vec<Grant> = current.difference(wanted).cloned().collect();
    let added: Vec<Grant> = wanted.difference(current).cloned().collect();
    for grant in &removed {
        diesel::delete(member_roles::table.find((
            member_id,
            &grant.role_id,
            &grant.source,
            &grant.source_ref,
        )))
        .execute(conn)?;
    }
    for grant in &added {
        diesel::insert_into(member_roles::table)
            .values((
                member_roles::member_id.eq(member_id),
                member_roles::organization_id.eq(organization_id),
                member_roles::role_id.eq(&grant.role_id),
                member_roles::source.eq(&grant.source),
                member_roles::source_ref.eq(&grant.source_ref),
            ))
            .execute(conn)?;
    }
    if !removed.is_empty() || !added.is_empty() {
        events::record(
            organization_id,
            actor,
            Event {
                event_type: "member.roles_changed",
                subject_id: member_id,
                data: json!({ "member_id": member_id, "added": added, "removed": removed }),
                previous: None,
            },
        )?;
    }
    Ok((removed, added))
}

/// Records that deleting `role_id` took these grants from their members (the rows went with
/// the role, by cascade).
pub fn record_role_deleted(
    actor: &Actor,
    organization_id: &str,
    lost: Vec<(String, Grant)>,
) -> Result<(), Error> {
    let mut by_member: std::collections::BTreeMap<String, Vec<Grant>> =
        std::collections::BTreeMap::new();
    for (member_id, grant) in lost {
        by_member.entry(member_id).or_default().push(grant);
    }
    for (member_id, removed) in by_member {
        events::record(
            organization_id,
            actor,
            Event {
                event_type: "member.roles_changed",
                subject_id: &member_id,
                data: json!({ "member_id": member_id, "added": [], "removed": removed }),
                previous: None,
            },
        )?;
    }
    Ok(())
}

/// Every grant of a role in the organization, by member.
pub fn grants_of_role(
    conn: &mut DbConn,
    organization_id: &str,
    role_id: &str,
) -> Result<Vec<(String, Grant)>, Error> {
    Ok(member_roles::table
        .filter(member_roles::organization_id.eq(organization_id))
        .filter(member_roles::role_id.eq(role_id))
        .select((
            member_roles::member_id,
            member_roles::source,
            member_roles::source_ref,
        ))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(member_id, source, source_ref)| {
            (
                member_id,
                Grant {
                    role_id: role_id.to_string(),
                    source,
                    source_ref,
                },
            )
        })
        .collect())
}

/// `sync` for the organization's active members on these email domains (their implied roles
/// changed).
pub fn sync_email_domains(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    domains: &[String],
) -> Result<(), Error> {
    if domains.is_empty() {
        return Ok(());
    }
    let member_ids: Vec<String> = members::table
        .filter(members::organization_id.eq(organization_id))
        .filter(members::email_domain.eq_any(domains))
        .filter(members::status.eq(MemberStatus::Active.as_str()))
        .select(members::member_id)
        .load(conn)?;
    sync_all(conn, actor, &member_ids)
}

/// Whether any of the connection's groups grants a role (by id or by displayName): when none
/// does, membership changes cannot change anyone's roles.
pub fn connection_maps_groups(conn: &mut DbConn, connection_id: &str) -> Result<bool, Error> {
    Ok(group_role_assignments::table
        .filter(group_role_assignments::connection_id.eq(connection_id))
        .select(group_role_assignments::assignment_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// `sync` for each of these members, their rows locked as `sync` locks them.
pub fn sync_all(conn: &mut DbConn, actor: &Actor, member_ids: &[String]) -> Result<(), Error> {
    sync_many(conn, actor, member_ids, true)
}

/// `sync_all` for the members a group's membership change touched, their rows not locked.
/// The group write holds the membership rows it changed, and a member's deletion (holding the
/// member's row) waits for those: locking the member here would deadlock with it. The members
/// the write added are locked already (`scim_groups`), and for one it removed the sync only
/// takes grants away, which its deletion does too.
pub fn sync_after_membership_change(
    conn: &mut DbConn,
    actor: &Actor,
    member_ids: &[String],
) -> Result<(), Error> {
    sync_many(conn, actor, member_ids, false)
}

fn sync_many(
    conn: &mut DbConn,
    actor: &Actor,
    member_ids: &[String],
    lock: bool,
) -> Result<(), Error> {
    // Read once for the members of one organization (they usually all are), if one is active.
    let mut read: Option<(String, organizations::OrganizationSettings)> = None;
    for member_id in member_ids {
        let facts = Facts::read(conn, member_id, lock)?;
        let active = facts.status == MemberStatus::Active.as_str();
        if active
            && read
                .as_ref()
                .is_none_or(|(of, _)| *of != facts.organization_id)
        {
            let settings = organizations::settings(conn, &facts.organization_id)?;
            read = Some((facts.organization_id.clone(), settings));
        }
        let settings = read
            .as_ref()
            .filter(|(of, _)| *of == facts.organization_id)
            .map(|(_, settings)| settings.clone());
        let known = Known {
            settings,
            ..Known::default()
        };
        sync_member(conn, actor, member_id, facts, known)?;
    }
    Ok(())
}

/// Every grant the member holds now.
pub fn grants(conn: &mut DbConn, member_id: &str) -> Result<Vec<Grant>, Error> {
    Ok(member_roles::table
        .filter(member_roles::member_id.eq(member_id))
        .select((
            member_roles::role_id,
            member_roles::source,
            member_roles::source_ref,
        ))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(role_id, source, source_ref)| Grant {
            role_id,
            source,
            source_ref,
        })
        .collect())
}

/// A member's grants as a column of a statement on its row (`members`): a JSON array of
/// [`Grant`] objects in key order, NULL for none. A member's UPDATE reads them after the row's
/// lock this way (`members::update_with`) instead of in a statement of their own. diesel
/// would prepare a statement with this literal afresh at every execution: wrap it in
/// `Prepared`.
pub fn grants_column(conn: &DbConn) -> diesel::expression::SqlLiteral<Nullable<Text>> {
    diesel::dsl::sql(match conn {
        DbConn::Postgres(_) => {
            "(SELECT json_agg(json_build_object('role_id', r.role_id, 'source', r.source, \
                 'source_ref', r.source_ref) ORDER BY r.role_id, r.source, r.source_ref)::text \
             FROM member_roles r WHERE r.member_id = members.member_id)"
        }
        DbConn::Sqlite(_) => {
            "(SELECT json_group_array(json_object('role_id', role_id, 'source', source, \
                 'source_ref', source_ref)) FROM ( \
                 SELECT r.role_id, r.source, r.source_ref FROM member_roles r \
                 WHERE r.member_id = members.member_id \
                 ORDER BY r.role_id, r.source, r.source_ref))"
        }
    })
}

/// The grants [`grants_column`] read.
pub fn parse_grants(column: Option<String>) -> Result<Vec<Grant>, Error> {
    match column {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|error| Error::internal(format!("a member's grants as read: {error}"))),
    }
}

/// The grants the member's groups earn it through the connection's assignments.
/// `groups`, when known, are the member's groups of the connection (id and display name).
fn group_grants(
    conn: &mut DbConn,
    member_id: &str,
    connection_id: &str,
    groups: Option<Vec<(String, String)>>,
) -> Result<Vec<Grant>, Error> {
    let groups: Vec<(String, String)> = match groups {
        Some(groups) => groups
            .into_iter()
            .map(|(group_id, display_name)| (group_id, lookup_key(&display_name)))
            .collect(),
        None => group_members::table
            .inner_join(scim_groups::table)
            .filter(group_members::member_id.eq(member_id))
            .filter(scim_groups::connection_id.eq(connection_id))
            .select((scim_groups::group_id, scim_groups::display_name_key))
            .load(conn)?,
    };
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let assignments: Vec<(Option<String>, Option<String>, String)> = group_role_assignments::table
        .filter(group_role_assignments::connection_id.eq(connection_id))
        .select((
            group_role_assignments::group_id,
            group_role_assignments::group_display_name_key,
            group_role_assignments::role_id,
        ))
        .load(conn)?;
    let mut grants = Vec::new();
    for (group_id, display_name_key) in &groups {
        for (assigned_id, assigned_name, role_id) in &assignments {
            let names_group = assigned_id.as_deref() == Some(group_id.as_str())
                || (assigned_id.is_none()
                    && assigned_name.as_deref() == Some(display_name_key.as_str()));
            if names_group {
                grants.push(Grant {
                    role_id: role_id.clone(),
                    source: SCIM_GROUP.into(),
                    source_ref: group_id.clone(),
                });
            }
        }
    }
    Ok(grants)
}

/// A member's roles with their sources; every active member holds `member` implicitly.
pub fn roles_with_sources(
    conn: &mut DbConn,
    member_id: &str,
    status: MemberStatus,
) -> Result<Value, Error> {
    Ok(roles_view(status, grants(conn, member_id)?))
}

/// Roles with their sources, from a member's status and grants.
pub fn roles_view(status: MemberStatus, grants: Vec<Grant>) -> Value {
    let mut roles: Vec<(String, Vec<Value>)> = Vec::new();
    if status == MemberStatus::Active {
        roles.push((roles::MEMBER.into(), vec![json!({"type": "implicit"})]));
    }
    for grant in grants {
        let source = match grant.source.as_str() {
            SCIM_GROUP => json!({"type": SCIM_GROUP, "group_id": grant.source_ref}),
            EMAIL_DOMAIN => json!({"type": EMAIL_DOMAIN, "domain": grant.source_ref}),
            other => json!({"type": other}),
        };
        match roles
            .iter_mut()
            .find(|(role_id, _)| *role_id == grant.role_id)
        {
            Some((_, sources)) => sources.push(source),
            None => roles.push((grant.role_id, vec![source])),
        }
    }
    Value::Array(
        roles
            .into_iter()
            .map(|(role_id, sources)| json!({"role_id": role_id, "sources": sources}))
            .collect(),
    )
}

/// The members holding a role (explicitly granted), in id order after `after`.
pub fn holders(
    conn: &mut DbConn,
    organization_id: &str,
    role_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let mut query = member_roles::table
        .filter(member_roles::organization_id.eq(organization_id))
        .filter(member_roles::role_id.eq(role_id))
        .select(member_roles::member_id)
        .distinct()
        .order(member_roles::member_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(member_roles::member_id.gt(after.to_string()));
    }
    Ok(query.load(conn)?)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub assignment_id: String,
    pub connection_id: String,
    pub group_id: Option<String>,
    /// Compared with groups' displayNames ignoring case; kept lowercased.
    pub group_display_name: Option<String>,
    pub role_id: String,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
}

/// A new mapping: a group (by id, or by displayName before the IdP pushed it) to roles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentFields {
    pub group_id: Option<String>,
    pub group_display_name: Option<String>,
    pub role_ids: Vec<String>,
}

/// Maps the group to each role and re-derives the roles of the group's members.
pub fn assign(
    conn: &mut DbConn,
    actor: &Actor,
    tenant: &Tenant,
    fields: AssignmentFields,
) -> Result<Vec<Assignment>, Error> {
    connections::ensure_exists(conn, tenant)?;
    let (group_id, display_name) = match (fields.group_id, fields.group_display_name) {
        (Some(group_id), None) => {
            let exists = scim_groups::table
                .find(&group_id)
                .filter(scim_groups::connection_id.eq(&tenant.connection_id))
                .count()
                .get_result::<i64>(conn)?
                > 0;
            if !exists {
                return Err(Error::invalid(
                    "invalid_group_id",
                    format!("group_id `{group_id}` names no group of this SCIM connection"),
                ));
            }
            (Some(group_id), None)
        }
        (None, Some(name)) if !name.trim().is_empty() => (None, Some(name.trim().to_string())),
        _ => {
            return Err(Error::invalid(
                "invalid_group",
                "give exactly one of group_id and group_display_name",
            ))
        }
    };
    if fields.role_ids.is_empty() {
        return Err(Error::invalid(
            "invalid_role_ids",
            "role_ids must name at least one role",
        ));
    }
    let mut created = Vec::new();
    for role_id in &fields.role_ids {
        if role_id == roles::MEMBER {
            return Err(Error::invalid(
                "invalid_role_ids",
                "every active member holds `member` already: map groups to other roles",
            ));
        }
        roles::find(conn, &tenant.organization_id, role_id).map_err(|_| {
            Error::invalid(
                "invalid_role_ids",
                format!("role_ids: no role `{role_id}` in this organization"),
            )
        })?;
        let assignment = Assignment {
            assignment_id: new_id("group-role-assignment"),
            connection_id: tenant.connection_id.clone(),
            group_id: group_id.clone(),
            group_display_name: display_name.as_deref().map(lookup_key),
            role_id: role_id.clone(),
            created_at: now(),
        };
        diesel::insert_into(group_role_assignments::table)
            .values((
                group_role_assignments::assignment_id.eq(&assignment.assignment_id),
                group_role_assignments::organization_id.eq(&tenant.organization_id),
                group_role_assignments::connection_id.eq(&assignment.connection_id),
                group_role_assignments::group_id.eq(&assignment.group_id),
                group_role_assignments::group_display_name_key
                    .eq(display_name.as_deref().map(lookup_key)),
                group_role_assignments::role_id.eq(&assignment.role_id),
                group_role_assignments::created_at.eq(assignment.created_at),
            ))
            .execute(conn)?;
        created.push(assignment);
    }
    let reached =
        members_of_mapped_groups(conn, tenant, group_id.as_deref(), display_name.as_deref())?;
    sync_all(conn, actor, &reached)?;
    Ok(created)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = group_role_assignments)]
struct AssignmentRow {
    assignment_id: String,
    connection_id: String,
    group_id: Option<String>,
    group_display_name_key: Option<String>,
    role_id: String,
    created_at: NaiveDateTime,
}

pub fn list_assignments(conn: &mut DbConn, tenant: &Tenant) -> Result<Vec<Assignment>, Error> {
    let rows: Vec<AssignmentRow> = group_role_assignments::table
        .filter(group_role_assignments::connection_id.eq(&tenant.connection_id))
        .order((
            group_role_assignments::created_at.asc(),
            group_role_assignments::assignment_id.asc(),
        ))
        .select(AssignmentRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| Assignment {
            assignment_id: row.assignment_id,
            connection_id: row.connection_id,
            group_id: row.group_id,
            group_display_name: row.group_display_name_key,
            role_id: row.role_id,
            created_at: row.created_at,
        })
        .collect())
}

/// Removes a mapping and re-derives the roles of the members it reached.
pub fn unassign(
    conn: &mut DbConn,
    actor: &Actor,
    tenant: &Tenant,
    assignment_id: &str,
) -> Result<(), Error> {
    let found: Option<(Option<String>, Option<String>)> = group_role_assignments::table
        .find(assignment_id)
        .filter(group_role_assignments::connection_id.eq(&tenant.connection_id))
        .select((
            group_role_assignments::group_id,
            group_role_assignments::group_display_name_key,
        ))
        .first(conn)
        .optional()?;
    let (group_id, display_name_key) = found.ok_or_else(|| {
        Error::not_found(format!(
            "no group-role assignment `{assignment_id}` in this connection"
        ))
    })?;
    diesel::delete(group_role_assignments::table.find(assignment_id)).execute(conn)?;
    let reached = members_of_mapped_groups(
        conn,
        tenant,
        group_id.as_deref(),
        display_name_key.as_deref(),
    )?;
    sync_all(conn, actor, &reached)
}

/// Members of the connection's groups an assignment names (by id, or by displayName).
fn members_of_mapped_groups(
    conn: &mut DbConn,
    tenant: &Tenant,
    group_id: Option<&str>,
    display_name: Option<&str>,
) -> Result<Vec<String>, Error> {
    let mut query = group_members::table
        .inner_join(scim_groups::table)
        .filter(scim_groups::connection_id.eq(&tenant.connection_id))
        .select(group_members::member_id)
        .distinct()
        .into_boxed();
    query = match (group_id, display_name) {
        (Some(group_id), _) => query.filter(scim_groups::group_id.eq(group_id.to_string())),
        (None, Some(name)) => query.filter(scim_groups::display_name_key.eq(lookup_key(name))),
        (None, None) => return Ok(Vec::new()),
    };
    Ok(query.load(conn)?)
}
