//! SCIM Users of a connection are members of its organization. This module maps one onto the
//! other: which member a User is, its email, its status, and what the IdP may see.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use serde_json::{Map, Value};

use super::connections::Tenant;
use super::filter_sql::{self, unknown_column, Sql};
use super::member_roles;
use super::members::{self, lookup_key, Member, MemberRow, MemberStatus, ScimRegistration};
use super::scim_groups;
use super::{list_window, new_id, now, Actor, Listed, Read, Window};
use crate::db::lower;
use crate::db::schema::members as members_table;
use crate::db::{DbConn, Prepared, PreparedIf, Replanned};
use crate::error::{Error, ScimType};
use crate::scim::filter::Filter;
use crate::scim::list::{mentions, plan, Column, Columns, Condition};
use crate::scim::patch::{self, PatchRequest};
use crate::scim::resource::{self, check_required, Attributes, Meta, ResourceRules};
use crate::scim::schema::USER_RESOURCE;
use crate::scim::sort::Sort;
use crate::{instant_sql, text_sql};

/// A group a user belongs to: (group id, displayName).
pub type UserGroup = (String, String);

/// Users' groups, by member id.
pub type GroupsOf = HashMap<String, Vec<UserGroup>>;

/// The SCIM User a member is, as its connection sees it; `groups` is read-only and derived
/// from group membership.
pub fn render(member: &Member, groups: &[UserGroup], base_url: &str) -> Value {
    let mut attributes = scim_attributes(member);
    if !groups.is_empty() {
        let groups = groups
            .iter()
            .map(|(group_id, display_name)| {
                serde_json::json!({
                    "value": group_id,
                    "$ref": scim_groups::location(base_url, group_id),
                    "display": display_name,
                    "type": "direct",
                })
            })
            .collect();
        attributes.insert("groups".into(), Value::Array(groups));
    }
    let meta = Meta {
        created: member.created_at,
        last_modified: member.updated_at,
        location: location(base_url, &member.member_id),
        version: member.version,
    };
    resource::render(&USER_RESOURCE, &member.member_id, &attributes, &meta)
}

/// The User's attributes as its IdP sees them. `active` tells the member's status: shown
/// whenever the IdP set it, and always when the member is inactive (a deprovisioned user stays
/// visible as `active: false`); an IdP that removed it reads it back unassigned.
fn scim_attributes(member: &Member) -> Attributes {
    let mut attributes = member
        .scim_registration
        .as_ref()
        .map(|registration| registration.attributes.clone())
        .unwrap_or_default();
    let inactive = member.status == MemberStatus::Inactive;
    if attributes.contains_key("active") || inactive {
        attributes.insert("active".into(), Value::Bool(!inactive));
    }
    attributes
}

/// The groups of each of these members, by member id.
pub fn groups_of(conn: &mut DbConn, members: &[Member]) -> Result<GroupsOf, Error> {
    let ids: Vec<&str> = members
        .iter()
        .map(|member| member.member_id.as_str())
        .collect();
    let mut groups: GroupsOf = HashMap::new();
    for (member_id, group_id, display_name) in scim_groups::groups_of(conn, &ids)? {
        groups
            .entry(member_id)
            .or_default()
            .push((group_id, display_name));
    }
    Ok(groups)
}

pub fn location(base_url: &str, member_id: &str) -> String {
    format!("{base_url}/scim/v2/Users/{member_id}")
}

/// What a User document says of the member it maps to.
struct UserFields {
    user_name: String,
    external_id: Option<String>,
    email: String,
    name: String,
    /// `None` when the document does not say (PUT without `active` keeps the status).
    active: Option<bool>,
    attributes: Attributes,
}

/// The longest userName, externalId, displayName, name part and email, in bytes: they are
/// indexed, and an index entry has a size limit (PostgreSQL's is 2,704 bytes).
pub const MAX_INDEXED_BYTES: usize = 512;

fn user_fields(attributes: Attributes) -> Result<UserFields, Error> {
    check_required(&USER_RESOURCE, &attributes)?;
    for key in ["userName", "externalId", "displayName"] {
        check_indexed_length(key, attributes.get(key))?;
    }
    let name = attributes.get("name");
    for key in ["givenName", "familyName"] {
        check_indexed_length(&format!("name.{key}"), name.and_then(|name| name.get(key)))?;
    }
    for email in attributes
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check_indexed_length("an emails value", email.get("value"))?;
        check_indexed_length("an emails type", email.get("type"))?;
    }
    let active = attributes.get("active").and_then(Value::as_bool);
    let text = |key: &str| {
        attributes
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let user_name = text("userName").unwrap_or_default();
    let email = member_email(&user_name, &attributes).ok_or_else(|| {
        Error::scim(
            ScimType::InvalidValue,
            format!(
                "userName \"{user_name}\" is not an email address and emails has none: a user needs an \
                 email to be a member of the organization"
            ),
        )
    })?;
    check_indexed_length("the email", Some(&Value::String(email.clone())))?;
    Ok(UserFields {
        external_id: text("externalId"),
        name: display_name(&attributes),
        user_name,
        email,
        active,
        attributes,
    })
}

pub fn check_indexed_length(name: &str, value: Option<&Value>) -> Result<(), Error> {
    match value.and_then(Value::as_str) {
        Some(text) if text.len() > MAX_INDEXED_BYTES => Err(Error::scim(
            ScimType::InvalidValue,
            format!(
                "{name} is {} bytes long; the limit is {MAX_INDEXED_BYTES}",
                text.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// The member's email: `userName` when it is an address, else the primary entry of `emails`,
/// else the first work entry, else the first.
fn member_email(user_name: &str, attributes: &Attributes) -> Option<String> {
    if super::email::is_email_address(user_name) {
        return Some(user_name.to_string());
    }
    let emails: Vec<&Map<String, Value>> = attributes
        .get("emails")
        .and_then(Value::as_array)
        .map(|emails| emails.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    fn value<'a>(email: &&'a Map<String, Value>) -> Option<&'a str> {
        email
            .get("value")
            .and_then(Value::as_str)
            .filter(|v| super::email::is_email_address(v))
    }
    let by = |predicate: &dyn Fn(&Map<String, Value>) -> bool| {
        emails.iter().filter(|e| predicate(e)).find_map(value)
    };
    by(&|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            by(&|e| {
                e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| by(&|_| true))
        .map(str::to_string)
}

/// The member's name: `displayName`, else `name.formatted`, else given and family names.
fn display_name(attributes: &Attributes) -> String {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    let name = attributes.get("name");
    text(attributes.get("displayName"))
        .or_else(|| text(name.and_then(|n| n.get("formatted"))))
        .unwrap_or_else(|| {
            [
                name.and_then(|n| n.get("givenName")),
                name.and_then(|n| n.get("familyName")),
            ]
            .into_iter()
            .filter_map(|part| part.and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ")
        })
}

/// POST /Users: a new member, or the adoption of an existing member of the organization that no
/// IdP manages yet (invited, created by API or JIT): same member id, now this connection's.
pub fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    input: &Value,
) -> Result<Member, Error> {
    let fields = user_fields(resource::normalize(&USER_RESOURCE, input)?)?;
    let (settings, holder) = creation_context(conn, tenant, &fields.user_name, &fields.email)?;
    super::provisioning::check_scim_email(&settings, &fields.email)?;
    let user = NewUser::of(tenant, fields);
    match holder {
        None => {
            let member = user.into_member(tenant);
            members::insert(conn, actor, &member, "member.created")?;
            if !settings.rbac_email_implicit_role_assignments.is_empty() {
                // A member this moment new: no grants, no groups yet.
                let known = member_roles::Known {
                    grants: Some(Vec::new()),
                    groups: Some(Vec::new()),
                    settings: Some(settings),
                };
                member_roles::sync_written(conn, actor, &member, known)?;
            }
            Ok(member)
        }
        Some(existing) => match &existing.scim_registration {
            None => {
                let adopted = Member {
                    email_address: user.email,
                    status: user.status,
                    name: user.name,
                    scim_registration: Some(user.registration),
                    ..existing.clone()
                };
                let groups = groups_column(conn);
                let updated =
                    members::update_with(conn, actor, &existing, adopted, "member.scim_linked", groups)?;
                let known = match updated.read {
                    Some((known, groups)) => member_roles::Known {
                        groups: Some(parse_groups(groups)?),
                        settings: Some(settings),
                        ..known
                    },
                    None => member_roles::Known {
                        settings: Some(settings),
                        ..member_roles::Known::default()
                    },
                };
                member_roles::sync_written(conn, actor, &updated.member, known)?;
                Ok(updated.member)
            }
            Some(other) if other.connection_id == tenant.connection_id => Err(Error::conflict(
                "email_taken",
                format!(
                    "the email {} already belongs to user \"{}\" of this connection",
                    user.email, other.user_name
                ),
            )),
            Some(_) => Err(Error::conflict(
                "email_taken",
                format!(
                    "the email {} belongs to a member that another SCIM connection of this organization manages",
                    user.email
                ),
            )),
        },
    }
}

/// What a User document makes of the member it maps to, new or adopted.
struct NewUser {
    email: String,
    name: String,
    status: MemberStatus,
    registration: ScimRegistration,
}

impl NewUser {
    fn of(tenant: &Tenant, fields: UserFields) -> Self {
        NewUser {
            email: fields.email,
            name: fields.name,
            status: if fields.active.unwrap_or(true) {
                MemberStatus::Active
            } else {
                MemberStatus::Inactive
            },
            registration: ScimRegistration {
                connection_id: tenant.connection_id.clone(),
                user_name: fields.user_name,
                external_id: fields.external_id,
                attributes: fields.attributes,
            },
        }
    }

    fn into_member(self, tenant: &Tenant) -> Member {
        let at = now();
        Member {
            member_id: new_id("member"),
            organization_id: tenant.organization_id.clone(),
            email_address: self.email,
            email_address_verified: false,
            status: self.status,
            name: self.name,
            is_breakglass: false,
            trusted_metadata: Map::new(),
            untrusted_metadata: Map::new(),
            scim_registration: Some(self.registration),
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }
}

/// `create` for each of `inputs` (`scimd connection import-users`), each outcome as if they
/// ran one after another, each in its own savepoint; but the users whose userName and email
/// are new to the connection, the organization and the batch are inserted together in a few
/// multi-row statements. The others (an adoption, a conflict, a repeat within the batch) then
/// go through `create` one by one, in their order, so their events follow the batch's.
pub fn create_many(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    inputs: &[Value],
) -> Result<Vec<Result<Member, Error>>, Error> {
    super::connections::ensure_exists(conn, tenant)?;
    let settings = super::organizations::settings(conn, &tenant.organization_id)?;
    let mut outcomes: Vec<Option<Result<Member, Error>>> = Vec::with_capacity(inputs.len());
    let mut fresh: Vec<(usize, Member)> = Vec::new();
    let mut one_by_one: Vec<usize> = Vec::new();
    let (mut user_names, mut emails) = (HashSet::new(), HashSet::new());
    for (index, input) in inputs.iter().enumerate() {
        let fields = resource::normalize(&USER_RESOURCE, input)
            .and_then(user_fields)
            .and_then(|fields| {
                super::provisioning::check_scim_email(&settings, &fields.email)?;
                Ok(fields)
            });
        match fields {
            Err(error) => outcomes.push(Some(Err(error))),
            Ok(fields) => {
                outcomes.push(None);
                let new_user_name = user_names.insert(lookup_key(&fields.user_name));
                let new_email = emails.insert(lookup_key(&fields.email));
                if new_user_name && new_email {
                    fresh.push((index, NewUser::of(tenant, fields).into_member(tenant)));
                } else {
                    one_by_one.push(index);
                }
            }
        }
    }
    let (taken_user_names, taken_emails) = taken_keys(conn, tenant, &user_names, &emails)?;
    let (fresh, known): (Vec<_>, Vec<_>) = fresh.into_iter().partition(|(_, member)| {
        let registration = member.scim_registration.as_ref().expect("a SCIM user");
        !taken_user_names.contains(&lookup_key(&registration.user_name))
            && !taken_emails.contains(&lookup_key(&member.email_address))
    });
    one_by_one.extend(known.into_iter().map(|(index, _)| index));
    let (indexes, members): (Vec<usize>, Vec<Member>) = fresh.into_iter().unzip();
    let inserted = crate::db::savepoint(conn, |savepoint| {
        members::insert_many(savepoint, actor, &members, "member.created")
    });
    match inserted {
        Ok(()) => {
            if !settings.rbac_email_implicit_role_assignments.is_empty() {
                let ids: Vec<String> = members.iter().map(|m| m.member_id.clone()).collect();
                member_roles::sync_all(conn, actor, &ids)?;
            }
            for (index, member) in indexes.into_iter().zip(members) {
                outcomes[index] = Some(Ok(member));
            }
        }
        // Taken since `taken_keys` read (another writer, on PostgreSQL): learn which, one by one.
        Err(Error::Conflict { .. }) => one_by_one.extend(indexes),
        Err(error) => return Err(error),
    }
    one_by_one.sort_unstable();
    for index in one_by_one {
        outcomes[index] = Some(crate::db::savepoint(conn, |savepoint| {
            create(savepoint, tenant, actor, &inputs[index])
        }));
    }
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every input has its outcome"))
        .collect())
}

/// Which of these userName keys the connection already has, and which of these email keys the
/// organization's members already have; planned afresh each batch (`db::Replanned`), since
/// the first batches meet an empty table.
fn taken_keys(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_names: &HashSet<String>,
    emails: &HashSet<String>,
) -> Result<(HashSet<String>, HashSet<String>), Error> {
    let (mut taken_user_names, mut taken_emails) = (HashSet::new(), HashSet::new());
    let user_names: Vec<&String> = user_names.iter().collect();
    for chunk in user_names.chunks(1_000) {
        taken_user_names.extend(
            Replanned(
                members_table::table
                    .filter(members_table::scim_connection_id.eq(&tenant.connection_id))
                    .filter(members_table::scim_user_name_key.eq_any(chunk))
                    .select(members_table::scim_user_name_key.assume_not_null()),
            )
            .load::<String>(conn)?,
        );
    }
    let emails: Vec<&String> = emails.iter().collect();
    for chunk in emails.chunks(1_000) {
        taken_emails.extend(
            Replanned(
                members_table::table
                    .filter(members_table::organization_id.eq(&tenant.organization_id))
                    .filter(members_table::email_key.eq_any(chunk))
                    .select(members_table::email_key.assume_not_null()),
            )
            .load::<String>(conn)?,
        );
    }
    Ok((taken_user_names, taken_emails))
}

fn ensure_user_name_free(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_name: &str,
    except: Option<&str>,
) -> Result<(), Error> {
    let holder: Option<String> = members_table::table
        .filter(members_table::scim_connection_id.eq(&tenant.connection_id))
        .filter(members_table::scim_user_name_key.eq(lookup_key(user_name)))
        .select(members_table::member_id)
        .first(conn)
        .optional()?;
    match holder {
        Some(holder) if Some(holder.as_str()) != except => Err(user_name_taken(user_name)),
        _ => Ok(()),
    }
}

fn user_name_taken(user_name: &str) -> Error {
    Error::conflict(
        "user_name_taken",
        format!("userName \"{user_name}\" is already taken by another user of this connection"),
    )
}

/// What creating a user of the connection must know first, in one statement where it was
/// four: that the connection still exists (else 401: its token went with it), that no user
/// of it holds `user_name` (else 409), the organization's settings, and the live member of
/// the organization with `email`, if any (to adopt, or to refuse).
fn creation_context(
    conn: &mut DbConn,
    tenant: &Tenant,
    user_name: &str,
    email: &str,
) -> Result<(super::organizations::OrganizationSettings, Option<Member>), Error> {
    use crate::db::schema::{organizations, scim_connections};
    let connection_exists = diesel::dsl::exists(
        scim_connections::table
            .find(&tenant.connection_id)
            .filter(scim_connections::organization_id.eq(&tenant.organization_id)),
    );
    // The user of the connection that holds `user_name` (in any case), if one does; an alias,
    // for the statement reads `members` by email too.
    let holders = diesel::alias!(members_table as holders);
    let holder = holders
        .filter(
            holders
                .field(members_table::scim_connection_id)
                .eq(&tenant.connection_id),
        )
        .filter(
            holders
                .field(members_table::scim_user_name_key)
                .eq(lookup_key(user_name)),
        )
        .select(holders.field(members_table::member_id))
        .limit(1)
        .single_value();
    // `members_email` is unique on (organization_id, email_key): one member at most.
    let with_email = members_table::organization_id
        .eq(organizations::organization_id)
        .and(members_table::email_key.eq(lookup_key(email)));
    let row: Option<(String, bool, Option<String>, Option<MemberRow>)> = organizations::table
        .left_join(members_table::table.on(with_email))
        .filter(organizations::organization_id.eq(&tenant.organization_id))
        .select((
            organizations::settings,
            connection_exists,
            holder,
            Option::<MemberRow>::as_select(),
        ))
        .first(conn)
        .optional()?;
    match row {
        // The organization went, and its connections with it.
        None | Some((_, false, _, _)) => Err(super::connections::gone()),
        Some((_, true, Some(_), _)) => Err(user_name_taken(user_name)),
        Some((stored, true, None, member)) => Ok((
            super::organizations::parse_settings(&tenant.organization_id, &stored)?,
            member.map(MemberRow::into_member).transpose()?,
        )),
    }
}

/// The live member `id` registered to this connection; anything else is 404, exactly alike.
pub fn get(conn: &mut DbConn, tenant: &Tenant, id: &str) -> Result<Member, Error> {
    found(
        id,
        live_user(&tenant.connection_id, id)
            .select(MemberRow::as_select())
            .first(conn)
            .optional()?,
    )
}

#[diesel::dsl::auto_type(no_type_alias)]
fn live_user<'a>(connection_id: &'a str, id: &'a str) -> _ {
    let deleted: &'static str = MemberStatus::Deleted.as_str();
    members_table::table
        .find(id)
        .filter(members_table::scim_connection_id.eq(connection_id))
        .filter(members_table::status.ne(deleted))
}

fn found(id: &str, row: Option<MemberRow>) -> Result<Member, Error> {
    row.ok_or_else(|| Error::not_found(format!("no User {id}")))?
        .into_member()
}

/// `get`, holding the member's row until the write commits, so that a concurrent writer
/// waits instead of changing it between this read and this write: on PostgreSQL the read
/// is `FOR UPDATE` (see `members::lock`), in the one statement.
///
/// A member found proves the tenant's connection exists, and keeps it until the commit:
/// the member's `scim_connection_id` references it, and deleting the connection sets that
/// to NULL (`ON DELETE SET NULL`), which waits for the member's row (on SQLite, for the one
/// write lock). So only a member not found asks whether the connection is gone (401, not
/// 404: `connections::ensure_exists`).
fn get_for_write(conn: &mut DbConn, tenant: &Tenant, id: &str) -> Result<Member, Error> {
    let row = match conn {
        DbConn::Postgres(pg) => live_user(&tenant.connection_id, id)
            .select(MemberRow::as_select())
            .for_update()
            .first(pg)
            .optional()?,
        DbConn::Sqlite(sqlite) => live_user(&tenant.connection_id, id)
            .select(MemberRow::as_select())
            .first(sqlite)
            .optional()?,
    };
    if row.is_none() {
        super::connections::ensure_exists(conn, tenant)?;
    }
    found(id, row)
}

/// PUT /Users/{id}: replaces every attribute the IdP may write. Returns the user with its
/// groups, for the answer.
pub fn replace(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
    input: &Value,
) -> Result<(Member, Vec<UserGroup>), Error> {
    let fields = user_fields(resource::normalize(&USER_RESOURCE, input)?)?;
    let before = get_for_write(conn, tenant, id)?;
    super::check_version(before.version, expected)?;
    save(conn, tenant, actor, before, fields)
}

/// PATCH /Users/{id}: the operations apply to the resource as the IdP sees it, atomically.
/// Returns the user with its groups, for the answer.
pub fn patch(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
    request: &PatchRequest,
) -> Result<(Member, Vec<UserGroup>), Error> {
    let before = get_for_write(conn, tenant, id)?;
    super::check_version(before.version, expected)?;
    let current = scim_attributes(&before);
    let patched = patch::apply(&USER_RESOURCE, &current, request, &before.member_id)?;
    let fields = user_fields(patched)?;
    save(conn, tenant, actor, before, fields)
}

fn save(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    before: Member,
    fields: UserFields,
) -> Result<(Member, Vec<UserGroup>), Error> {
    // The connection exists: `before` was found by it (`get_for_write`).
    // A userName the user keeps (in any case) is its own: its row holds that key.
    let held = before
        .scim_registration
        .as_ref()
        .map(|r| lookup_key(&r.user_name));
    if held != Some(lookup_key(&fields.user_name)) {
        ensure_user_name_free(conn, tenant, &fields.user_name, Some(&before.member_id))?;
    }
    let email_changed = lookup_key(&fields.email) != lookup_key(&before.email_address);
    if email_changed {
        let settings = super::organizations::settings(conn, &tenant.organization_id)?;
        super::provisioning::check_scim_email(&settings, &fields.email)?;
        if let Some(holder) = members::find_by_email(conn, &tenant.organization_id, &fields.email)?
        {
            if holder.member_id != before.member_id {
                return Err(Error::conflict(
                    "email_taken",
                    format!(
                        "the email {} already belongs to another member of this organization",
                        fields.email
                    ),
                ));
            }
        }
    }
    let status = match fields.active {
        Some(true) => MemberStatus::Active,
        Some(false) => MemberStatus::Inactive,
        None => before.status,
    };
    let after = Member {
        email_address: fields.email,
        // A new address is unproven until its owner authenticates with it.
        email_address_verified: before.email_address_verified && !email_changed,
        status,
        name: fields.name,
        scim_registration: Some(ScimRegistration {
            connection_id: tenant.connection_id.clone(),
            user_name: fields.user_name,
            external_id: fields.external_id,
            attributes: fields.attributes,
        }),
        ..before.clone()
    };
    // Deactivation revokes every role, and its event lists them (`members::update_with`);
    // reactivation re-derives group and email-domain roles. The grants the member's UPDATE
    // read are still its own when its roles are synced: writing the member leaves them alone.
    let groups = groups_column(conn);
    let updated = members::update_with(conn, actor, &before, after, "member.updated", groups)?;
    let saved = updated.member;
    let Some((mut known, groups)) = updated.read else {
        // Nothing changed, and the UPDATE that would have read the groups did not run.
        let groups = groups_of(conn, std::slice::from_ref(&saved))?
            .remove(&saved.member_id)
            .unwrap_or_default();
        return Ok((saved, groups));
    };
    let groups = parse_groups(groups)?;
    let domain_changed =
        members::email_domain(&saved.email_address) != members::email_domain(&before.email_address);
    if saved.status != before.status || domain_changed {
        known.groups = Some(groups.clone());
        member_roles::sync_written(conn, actor, &saved, known)?;
    }
    Ok((saved, groups))
}

/// DELETE /Users/{id}: the member becomes a tombstone, gone from SCIM, its email and userName
/// free again.
pub fn delete(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
) -> Result<(), Error> {
    scim_groups::lock_groups_of(conn, tenant, id)?;
    let before = get_for_write(conn, tenant, id)?;
    super::check_version(before.version, expected)?;
    let after = Member {
        status: MemberStatus::Deleted,
        ..before.clone()
    };
    let nothing = diesel::dsl::sql("NULL");
    let updated = members::update_with(conn, actor, &before, after, "member.deleted", nothing)?;
    scim_groups::remove_from_all_groups(conn, actor, &tenant.organization_id, &before.member_id)?;
    // A deleted member holds no roles: every grant its UPDATE read goes.
    let known = updated.read.map(|(known, _)| known).unwrap_or_default();
    member_roles::sync_written(conn, actor, &updated.member, known)?;
    Ok(())
}

/// The page `window` asks for of the connection's users that match `filter`, in creation
/// order or as `sort` says, with how many match in all. What the filter asks of the columns
/// of [`USER_COLUMNS`] is answered by SQL on indexes; when that is all it asks, SQL answers it
/// alone, counts included. Anything else is evaluated on the rows SQL leaves, in batches.
pub fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    base_url: &str,
    filter: Option<&Filter>,
    window: &Window,
    sort: Option<&Sort>,
) -> Result<Listed<Member>, Error> {
    let rules = ResourceRules(&USER_RESOURCE);
    let (condition, residual) = planned(filter);
    let users = || filtered_users(tenant, condition.as_ref(), sort);
    let fetch = |conn: &mut DbConn, read: Read| -> Result<Vec<Member>, Error> {
        crate::keyset_read!(
            users()?,
            read,
            members_table::created_at,
            members_table::member_id
        )
        .select(MemberRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MemberRow::into_member)
        .collect()
    };
    let position = |member: &Member| (member.created_at, member.member_id.clone());
    let needs_groups = residual.is_some_and(|filter| mentions(filter, "groups"))
        || sort.is_some_and(|sort| sort.path.is("groups"));
    list_window(
        conn,
        window,
        residual,
        sort,
        &rules,
        |conn| match condition {
            None => members::user_count(conn, &tenant.connection_id),
            Some(_) => Ok(users()?.count().get_result::<i64>(conn)? as u64),
        },
        |conn, sort, skip, count| {
            let ordered = match sort {
                None => Some(in_creation_order(users()?)),
                Some(sort) => order_users(users()?, sort),
            };
            ordered
                .map(|query| page_of(conn, query, skip, count))
                .transpose()
        },
        fetch,
        position,
        |conn, member| {
            // A user's groups are read only when the filter or the sort looks at them.
            let groups = if needs_groups {
                groups_of(conn, std::slice::from_ref(member))?
                    .remove(&member.member_id)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok(render(member, &groups, base_url))
        },
    )
}

/// The whole answer to a list request from one statement, when it has one: the first page
/// (`startIndex` 1) of a filter SQL answers alone, unsorted, read with one row more than its
/// `count`, holds every match when that row is not there, so its length is `totalResults`.
/// That is how IdPs look a user up (`userName eq`, `externalId eq`: none or one, whatever
/// the `count`), and it needs neither the count beside the page nor the read transaction
/// that keeps the two in agreement: on PostgreSQL one round trip instead of five, the users'
/// groups read in the same statement ([`groups_column`]). `None`: the request needs `list`,
/// in a `db::read`; a filtered first page with more matches than its count is then read
/// twice. Without a filter the count is the connection's counter: never tried here, so a
/// full listing's first page is read once.
pub fn list_short(
    conn: &mut DbConn,
    tenant: &Tenant,
    filter: Option<&Filter>,
    window: &Window,
    sort: Option<&Sort>,
) -> Result<Option<(Listed<Member>, GroupsOf)>, Error> {
    let Window::Index { start_index, count } = *window else {
        return Ok(None);
    };
    let (condition, residual) = planned(filter);
    if filter.is_none() || start_index > 1 || count == 0 || residual.is_some() || sort.is_some() {
        return Ok(None);
    }
    let groups = groups_column(conn);
    // Kept prepared, by its text, as diesel keeps the same query without the column: while
    // such statements have few shapes (filter_sql::kept).
    let kept = condition
        .as_ref()
        .is_none_or(|condition| filter_sql::kept(condition, None));
    let rows: Vec<(MemberRow, Option<String>)> = PreparedIf(
        in_creation_order(filtered_users(tenant, condition.as_ref(), None)?)
            .limit(count as i64 + 1)
            .select((MemberRow::as_select(), groups)),
        kept,
    )
    .load(conn)?;
    if rows.len() as u64 > count {
        return Ok(None);
    }
    let mut groups = HashMap::new();
    let mut members = Vec::with_capacity(rows.len());
    for (row, of_member) in rows {
        let member = row.into_member()?;
        groups.insert(member.member_id.clone(), parse_groups(of_member)?);
        members.push(member);
    }
    Ok(Some((
        Listed::indexed(members.len() as u64, members),
        groups,
    )))
}

/// The user `id` and its groups, in one statement.
pub fn get_with_groups(
    conn: &mut DbConn,
    tenant: &Tenant,
    id: &str,
) -> Result<(Member, Vec<UserGroup>), Error> {
    let groups = groups_column(conn);
    let row: Option<(MemberRow, Option<String>)> = Prepared(
        live_user(&tenant.connection_id, id)
            .select((MemberRow::as_select(), groups))
            .limit(1),
    )
    .get_result(conn)
    .optional()?;
    let (row, groups) = row.unzip();
    Ok((found(id, row)?, parse_groups(groups.flatten())?))
}

/// A user's groups (of its connection) as a column of its own row's read: `[[id, displayName], …]` in the order
/// of `scim_groups::groups_of` (displayName, then id), NULL or `[]` for none. A read of a
/// user and its groups is one statement where it was two. diesel would prepare a statement
/// with this literal afresh at every execution: wrap it in `Prepared`.
fn groups_column(
    conn: &DbConn,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Text>> {
    diesel::dsl::sql(match conn {
        DbConn::Postgres(_) => {
            "(SELECT json_agg(json_build_array(g.group_id, g.display_name) \
                 ORDER BY g.display_name_key, g.group_id)::text \
             FROM group_members gm JOIN scim_groups g ON g.group_id = gm.group_id \
             WHERE gm.member_id = members.member_id \
                 AND g.connection_id = members.scim_connection_id)"
        }
        DbConn::Sqlite(_) => {
            "(SELECT json_group_array(json_array(group_id, display_name)) FROM ( \
                 SELECT g.group_id, g.display_name \
                 FROM group_members gm JOIN scim_groups g ON g.group_id = gm.group_id \
                 WHERE gm.member_id = members.member_id \
                     AND g.connection_id = members.scim_connection_id \
                 ORDER BY g.display_name_key, g.group_id))"
        }
    })
}

fn parse_groups(column: Option<String>) -> Result<Vec<UserGroup>, Error> {
    match column {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|error| Error::internal(format!("a user's groups as read: {error}"))),
    }
}

/// What of `filter` SQL answers (the condition), and what is left to test on each rendered
/// user (the filter itself, unless SQL answers it exactly).
fn planned(filter: Option<&Filter>) -> (Option<Condition>, Option<&Filter>) {
    let plan = filter.map(|filter| plan(filter, &USER_COLUMNS, &ResourceRules(&USER_RESOURCE)));
    let exact = plan.as_ref().is_some_and(|plan| plan.exact);
    (
        plan.and_then(|plan| plan.condition),
        filter.filter(|_| !exact),
    )
}

/// The connection's live users that `condition` holds for.
fn filtered_users<'a>(
    tenant: &'a Tenant,
    condition: Option<&Condition>,
    sort: Option<&Sort>,
) -> Result<members_table::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>, Error> {
    let query = live_users(tenant);
    Ok(match condition {
        Some(condition) => query.filter(user_sql(condition, sort, tenant)?),
        None => query,
    })
}

fn in_creation_order(
    query: members_table::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend>,
) -> members_table::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend> {
    query.order((
        members_table::created_at.asc(),
        members_table::member_id.asc(),
    ))
}

/// The columns User filters are answered from (scim::list::plan): each kept by
/// `members::MemberRow` or `member_emails`, lowercased where the attribute compares
/// ignoring case.
const USER_COLUMNS: Columns = Columns {
    columns: &[
        ("id", Column::Text { lowercased: false }),
        ("userName", Column::Text { lowercased: true }),
        ("externalId", Column::Text { lowercased: false }),
        ("displayName", Column::Text { lowercased: true }),
        ("name.givenName", Column::Text { lowercased: true }),
        ("name.familyName", Column::Text { lowercased: true }),
        ("active", Column::Status),
        ("meta.created", Column::Instant),
        ("meta.lastModified", Column::Instant),
        ("emails.value", Column::Text { lowercased: true }),
        ("emails.type", Column::Text { lowercased: true }),
        ("emails.primary", Column::Flag),
        // Group ids are lowercase as made (domain::new_id), so an id is its own key.
        ("groups.value", Column::Text { lowercased: true }),
    ],
    elements: &["emails", "groups"],
    stored_elsewhere: &["id", "meta", "groups", "schemas"],
};

/// A planned User filter condition as SQL over the connection's members.
fn user_sql(
    condition: &Condition,
    sort: Option<&Sort>,
    tenant: &Tenant,
) -> Result<Sql<members_table::table>, Error> {
    use crate::db::schema::{group_members, member_emails};
    use members_table as m;
    filter_sql::listing(condition, sort, &|leaf| {
        Ok(match leaf {
            Condition::Text { column, test } => match *column {
                "id" => text_sql!(m::member_id.nullable(), test),
                "userName" => text_sql!(m::scim_user_name_key, test),
                "externalId" => text_sql!(m::scim_external_id, test),
                "displayName" => text_sql!(m::scim_display_name_key, test),
                "name.givenName" => text_sql!(m::scim_given_name_key, test),
                "name.familyName" => text_sql!(m::scim_family_name_key, test),
                _ => return Err(unknown_column(leaf)),
            },
            Condition::Instant { column, op, at } => match *column {
                "meta.created" => instant_sql!(m::created_at, op, at),
                "meta.lastModified" => instant_sql!(m::updated_at, op, at),
                _ => return Err(unknown_column(leaf)),
            },
            Condition::Flag {
                column: "active",
                value,
            } => {
                let status = if *value {
                    MemberStatus::Active
                } else {
                    MemberStatus::Inactive
                };
                Box::new(m::status.eq(status.as_str()))
            }
            Condition::Contains(text) => Box::new(
                m::scim_attributes.is_not_null().and(
                    lower(m::scim_attributes.assume_not_null())
                        .like(crate::db::contains_pattern(text))
                        .escape('\\'),
                ),
            ),
            Condition::Element {
                attribute: "emails",
                condition,
            } => {
                use member_emails as e;
                let element = filter_sql::condition::<e::table>(condition, &|leaf| {
                    Ok(match leaf {
                        Condition::Text { column, test } => match *column {
                            "emails.value" => text_sql!(e::value_key, test),
                            "emails.type" => text_sql!(e::type_key, test),
                            _ => return Err(unknown_column(leaf)),
                        },
                        Condition::Flag {
                            column: "emails.primary",
                            value,
                        } => Box::new(
                            e::is_primary
                                .is_not_null()
                                .and(e::is_primary.assume_not_null().eq(*value)),
                        ),
                        _ => return Err(unknown_column(leaf)),
                    })
                })?;
                let rows = e::table
                    .into_boxed()
                    .filter(e::connection_id.eq(tenant.connection_id.clone()))
                    .filter(element);
                if filter_sql::finds_by_value(condition, "emails.value") {
                    Box::new(filter_sql::in_subquery(
                        m::member_id,
                        rows.select(e::member_id),
                    ))
                } else {
                    // Correlated with the member being tested: names of our own schema only.
                    Box::new(filter_sql::exists(
                        rows.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                            "member_emails.member_id = members.member_id",
                        ))
                        .select(e::member_id),
                    ))
                }
            }
            Condition::Element {
                attribute: "groups",
                condition,
            } => {
                use group_members as g;
                let element = filter_sql::condition::<g::table>(condition, &|leaf| match leaf {
                    Condition::Text {
                        column: "groups.value",
                        test,
                    } => Ok(text_sql!(g::group_id.nullable(), test)),
                    _ => Err(unknown_column(leaf)),
                })?;
                Box::new(filter_sql::in_subquery(
                    m::member_id,
                    g::table.into_boxed().filter(element).select(g::member_id),
                ))
            }
            _ => return Err(unknown_column(leaf)),
        })
    })
}

/// `count` users of `query` (ordered) after skipping `skip`.
fn page_of(
    conn: &mut DbConn,
    query: members_table::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend>,
    skip: u64,
    count: u64,
) -> Result<Vec<Member>, Error> {
    query
        .offset(skip as i64)
        .limit(count as i64)
        .select(MemberRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MemberRow::into_member)
        .collect()
}

/// The users ordered by a sort the database can do (an attribute with a column), ties in
/// creation order; `None` for any other attribute.
fn order_users<'a>(
    query: members_table::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>,
    sort: &Sort,
) -> Option<members_table::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>> {
    use members_table as m;
    let d = sort.descending;
    Some(if sort.is("userName", None) {
        crate::order_by!(query, d, m::scim_user_name_key, m::created_at, m::member_id)
    } else if sort.is("id", None) {
        crate::order_by!(query, d, m::member_id, m::created_at)
    } else if sort.is("externalId", None) {
        // Unassigned last when ascending, first when descending.
        let (unassigned, key) = (m::scim_external_id.is_null(), m::scim_external_id);
        if d {
            query.order((
                unassigned.desc(),
                key.desc(),
                m::created_at.asc(),
                m::member_id.asc(),
            ))
        } else {
            query.order((
                unassigned.asc(),
                key.asc(),
                m::created_at.asc(),
                m::member_id.asc(),
            ))
        }
    } else if sort.is("meta", Some("created")) {
        crate::order_by!(query, d, m::created_at, m::member_id)
    } else if sort.is("meta", Some("lastModified")) {
        crate::order_by!(query, d, m::updated_at, m::created_at, m::member_id)
    } else {
        return None;
    })
}

/// The connection's users that are not deleted.
fn live_users(
    tenant: &Tenant,
) -> members_table::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend> {
    members_table::table
        .filter(members_table::scim_connection_id.eq(tenant.connection_id.as_str()))
        .filter(members_table::status.ne(MemberStatus::Deleted.as_str()))
        .into_boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(value: Value) -> Attributes {
        resource::normalize(&USER_RESOURCE, &value).unwrap()
    }

    #[test]
    fn the_email_is_the_user_name_when_it_is_an_address() {
        let fields = user_fields(attributes(
            json!({"userName": "Ada@Acme.test", "emails": [{"value": "x@y.test"}]}),
        ))
        .unwrap();
        assert_eq!(fields.email, "Ada@Acme.test");
    }

    #[test]
    fn otherwise_primary_then_work_then_first() {
        let emails = |list: Value| {
            member_email(
                "ada",
                &attributes(json!({"userName": "ada", "emails": list})),
            )
        };
        assert_eq!(
            emails(
                json!([{"value": "a@x.test"}, {"value": "w@x.test", "type": "work"}, {"value": "p@x.test", "primary": true}])
            ),
            Some("p@x.test".into())
        );
        assert_eq!(
            emails(json!([{"value": "a@x.test"}, {"value": "w@x.test", "type": "Work"}])),
            Some("w@x.test".into())
        );
        assert_eq!(
            emails(json!([{"value": "a@x.test"}])),
            Some("a@x.test".into())
        );
        assert_eq!(emails(json!([{"value": "not-an-email"}])), None);
    }

    #[test]
    fn a_user_without_any_email_is_refused() {
        let error = user_fields(attributes(json!({"userName": "ada"})))
            .err()
            .unwrap();
        assert_eq!(error.scim_type(), Some(ScimType::InvalidValue));
        assert!(error.to_string().contains("needs an email"));
    }

    #[test]
    fn the_name_comes_from_display_name_or_name_parts() {
        assert_eq!(
            display_name(&attributes(
                json!({"userName": "a", "displayName": "Ada L"})
            )),
            "Ada L"
        );
        assert_eq!(
            display_name(&attributes(
                json!({"userName": "a", "name": {"givenName": "Ada", "familyName": "Lovelace"}})
            )),
            "Ada Lovelace"
        );
    }
}
