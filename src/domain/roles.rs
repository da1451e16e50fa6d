//! Roles of an organization: the built-in `member` and `admin`, and custom roles with
//! permissions. Who holds which role, and why, is domain::member_roles.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::{self, previous_values, Event};
use super::{now, Actor};
use crate::db::schema::roles;
use crate::db::DbConn;
use crate::error::Error;

/// Held by every active member.
pub const MEMBER: &str = "member";
/// Administers the organization.
pub const ADMIN: &str = "admin";

const MAX_ROLE_ID_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;
const MAX_RESOURCE_ID_CHARS: usize = 128;

/// What a role allows: `actions` on `resource_id`; `*` as an action allows every action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub resource_id: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    pub role_id: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub built_in: bool,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub organization_id: String,
}

/// The fields a create or update may carry; `role_id` only on create.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFields {
    pub role_id: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<Permission>>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = roles)]
// The key is never in an UPDATE's SET: on SQLite, setting a parent key (even to itself)
// makes the foreign-key check count every child row.
#[diesel(primary_key(organization_id, role_id))]
struct RoleRow {
    organization_id: String,
    role_id: String,
    description: String,
    permissions: String,
    built_in: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl RoleRow {
    fn into_role(self) -> Result<Role, Error> {
        Ok(Role {
            permissions: serde_json::from_str(&self.permissions).map_err(|error| {
                Error::internal(format!("stored permissions of {}: {error}", self.role_id))
            })?,
            role_id: self.role_id,
            description: self.description,
            built_in: self.built_in,
            created_at: self.created_at,
            updated_at: self.updated_at,
            organization_id: self.organization_id,
        })
    }

    fn from_role(role: &Role) -> Self {
        RoleRow {
            organization_id: role.organization_id.clone(),
            role_id: role.role_id.clone(),
            description: role.description.clone(),
            permissions: serde_json::to_string(&role.permissions).expect("permissions serialize"),
            built_in: role.built_in,
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// Gives a new organization its built-in roles.
pub fn create_built_ins(conn: &mut DbConn, organization_id: &str) -> Result<(), Error> {
    let at = now();
    let built_in = |role_id: &str, description: &str, permissions: Vec<Permission>| Role {
        role_id: role_id.into(),
        description: description.into(),
        permissions,
        built_in: true,
        created_at: at,
        updated_at: at,
        organization_id: organization_id.into(),
    };
    for role in [
        built_in(
            MEMBER,
            "Held by every active member of the organization.",
            Vec::new(),
        ),
        built_in(
            ADMIN,
            "Administers the organization.",
            vec![Permission {
                resource_id: "*".into(),
                actions: vec!["*".into()],
            }],
        ),
    ] {
        diesel::insert_into(roles::table)
            .values(RoleRow::from_role(&role))
            .execute(conn)?;
    }
    Ok(())
}

/// Every role of the organization, built-in first, then by id.
pub fn list(conn: &mut DbConn, organization_id: &str) -> Result<Vec<Role>, Error> {
    roles::table
        .filter(roles::organization_id.eq(organization_id))
        .order((roles::built_in.desc(), roles::role_id.asc()))
        .select(RoleRow::as_select())
        .load(conn)?
        .into_iter()
        .map(RoleRow::into_role)
        .collect()
}

pub fn find(conn: &mut DbConn, organization_id: &str, role_id: &str) -> Result<Role, Error> {
    roles::table
        .find((organization_id, role_id))
        .select(RoleRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("no role `{role_id}` in this organization")))?
        .into_role()
}

/// Creates a custom role and records `role.created`.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    fields: RoleFields,
) -> Result<Role, Error> {
    let role_id = validate_role_id(
        fields
            .role_id
            .as_deref()
            .ok_or_else(|| Error::invalid("missing_field", "role_id is required"))?,
    )?;
    let at = now();
    let role = Role {
        role_id,
        description: validate_description(fields.description.as_deref().unwrap_or(""))?,
        permissions: validate_permissions(fields.permissions.unwrap_or_default())?,
        built_in: false,
        created_at: at,
        updated_at: at,
        organization_id: organization_id.into(),
    };
    diesel::insert_into(roles::table)
        .values(RoleRow::from_role(&role))
        .execute(conn)
        .map_err(|error| match error {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Error::conflict(
                "role_id_taken",
                format!(
                    "role_id `{}` already exists in this organization",
                    role.role_id
                ),
            ),
            other => other.into(),
        })?;
    record(actor, &role, "role.created", to_value(&role), None)?;
    Ok(role)
}

/// Changes a role's description or permissions; built-in roles too.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    role_id: &str,
    fields: RoleFields,
) -> Result<Role, Error> {
    let key = [("organization_id", organization_id), ("role_id", role_id)];
    crate::db::hold_row(conn, "roles", &key)?;
    let before = find(conn, organization_id, role_id)?;
    if fields
        .role_id
        .as_deref()
        .is_some_and(|new_id| new_id != role_id)
    {
        return Err(Error::invalid(
            "immutable_field",
            "role_id cannot change: create a new role instead",
        ));
    }
    let mut after = before.clone();
    if let Some(description) = fields.description {
        after.description = validate_description(&description)?;
    }
    if let Some(permissions) = fields.permissions {
        after.permissions = validate_permissions(permissions)?;
    }
    let Some(previous) = previous_values(&to_value(&before), &to_value(&after)) else {
        return Ok(before);
    };
    after.updated_at = now();
    diesel::update(roles::table.find((organization_id, role_id)))
        .set(RoleRow::from_role(&after))
        .execute(conn)?;
    record(
        actor,
        &after,
        "role.updated",
        to_value(&after),
        Some(previous),
    )?;
    Ok(after)
}

/// Deletes a custom role; built-in roles stay.
pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    role_id: &str,
) -> Result<(), Error> {
    let role = find(conn, organization_id, role_id)?;
    if role.built_in {
        return Err(Error::conflict(
            "built_in_role",
            format!("`{role_id}` is a built-in role and cannot be deleted"),
        ));
    }
    // The role disappears from every member (its grants and group mappings go by cascade),
    // and each member's loss is recorded.
    let lost = super::member_roles::grants_of_role(conn, organization_id, role_id)?;
    diesel::delete(roles::table.find((organization_id, role_id))).execute(conn)?;
    super::member_roles::record_role_deleted(actor, organization_id, lost)?;
    super::organizations::forget_role(conn, actor, organization_id, role_id)?;
    record(
        actor,
        &role,
        "role.deleted",
        serde_json::json!({ "role_id": role_id }),
        None,
    )
}

fn to_value(role: &Role) -> Value {
    serde_json::to_value(role).expect("roles serialize")
}

fn record(
    actor: &Actor,
    role: &Role,
    event_type: &'static str,
    data: Value,
    previous: Option<Value>,
) -> Result<(), Error> {
    events::record(
        &role.organization_id,
        actor,
        Event {
            event_type,
            subject_id: &role.role_id,
            data,
            previous,
        },
    )?;
    Ok(())
}

/// 1–64 characters from lowercase letters, digits, `_`, `-`, `.` and `:`.
fn validate_role_id(role_id: &str) -> Result<String, Error> {
    let valid = !role_id.is_empty()
        && role_id.chars().count() <= MAX_ROLE_ID_CHARS
        && role_id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        });
    if !valid {
        return Err(Error::invalid(
            "invalid_role_id",
            format!(
                "role_id `{role_id}` is not allowed: use 1 to {MAX_ROLE_ID_CHARS} characters from lowercase letters, \
                 digits and `_` `-` `.` `:`"
            ),
        ));
    }
    Ok(role_id.to_string())
}

fn validate_description(description: &str) -> Result<String, Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "invalid_description",
            format!("description may be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(description.to_string())
}

/// Every permission names a resource and at least one action; duplicates merge.
fn validate_permissions(permissions: Vec<Permission>) -> Result<Vec<Permission>, Error> {
    let mut merged: Vec<Permission> = Vec::new();
    for (index, permission) in permissions.into_iter().enumerate() {
        let resource_id = permission.resource_id.trim();
        if resource_id.is_empty() || resource_id.chars().count() > MAX_RESOURCE_ID_CHARS {
            return Err(Error::invalid(
                "invalid_permissions",
                format!("permissions[{index}].resource_id must be 1 to {MAX_RESOURCE_ID_CHARS} characters"),
            ));
        }
        let actions: Vec<String> = permission
            .actions
            .iter()
            .map(|a| a.trim().to_string())
            .collect();
        if actions.is_empty() || actions.iter().any(String::is_empty) {
            return Err(Error::invalid(
                "invalid_permissions",
                format!("permissions[{index}].actions must name at least one action (`*` allows every action), none empty"),
            ));
        }
        match merged
            .iter_mut()
            .find(|existing| existing.resource_id == resource_id)
        {
            Some(existing) => existing.actions.extend(actions),
            None => merged.push(Permission {
                resource_id: resource_id.to_string(),
                actions,
            }),
        }
    }
    for permission in &mut merged {
        permission.actions.sort();
        permission.actions.dedup();
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_ids_follow_the_documented_alphabet() {
        for ok in ["billing_admin", "reader", "org:viewer", "a"] {
            assert!(validate_role_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Billing", "has space", &"a".repeat(65)] {
            assert!(validate_role_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn permissions_need_a_resource_and_actions_and_merge_duplicates() {
        let permission = |resource: &str, actions: &[&str]| Permission {
            resource_id: resource.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        };
        assert!(validate_permissions(vec![permission(" ", &["read"])]).is_err());
        assert!(validate_permissions(vec![permission("docs", &[])]).is_err());
        let merged = validate_permissions(vec![
            permission("docs", &["write", "read"]),
            permission("docs", &["read"]),
        ])
        .unwrap();
        assert_eq!(merged, vec![permission("docs", &["read", "write"])]);
    }
}
