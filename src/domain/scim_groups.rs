//! SCIM Groups of a connection and their membership. Membership lives in `group_members`,
//! one row a member, so a change costs the same whatever the group's size; only reads that
//! ask for `members` load them.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use super::connections::Tenant;
use super::events::{self, previous_values, Event};
use super::filter_sql::{self, unknown_column, Sql};
use super::member_roles;
use super::members::{lookup_key, MemberStatus};
use super::scim_users::check_indexed_length;
use super::{list_window, new_id, now, Actor, Listed, Read, Window};
use crate::db::lower;
use crate::db::schema::{group_members, members, scim_groups};
use crate::db::{DbConn, Prepared, Replanned};
use crate::error::{Error, ScimType};
use crate::scim::filter::{CompareOp, Filter, Literal, PatchPath};
use crate::scim::list::{mentions, plan, Column, Columns, Condition};
use crate::scim::patch::{self, Op, Operation, PatchRequest};
use crate::scim::resource::{
    self, check_required, normalize_value, Attributes, Meta, ResourceRules,
};
use crate::scim::schema::GROUP_RESOURCE;
use crate::scim::sort::Sort;
use crate::{instant_sql, text_sql};

/// Member ids looked up or written per statement.
const ID_BATCH: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub group_id: String,
    pub organization_id: String,
    pub connection_id: String,
    /// Canonical attributes without `members`: `displayName`, `externalId`.
    pub attributes: Attributes,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = scim_groups, treat_none_as_null = true)]
// The key is never in an UPDATE's SET: on SQLite, setting a parent key (even to itself)
// makes the foreign-key check count every child row.
#[diesel(primary_key(group_id))]
struct GroupRow {
    group_id: String,
    organization_id: String,
    connection_id: String,
    display_name: String,
    display_name_key: String,
    external_id: Option<String>,
    attributes: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl GroupRow {
    fn into_group(self) -> Result<Group, Error> {
        Ok(Group {
            attributes: serde_json::from_str(&self.attributes).map_err(|error| {
                Error::internal(format!("stored attributes of {}: {error}", self.group_id))
            })?,
            group_id: self.group_id,
            organization_id: self.organization_id,
            connection_id: self.connection_id,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    fn from_group(group: &Group) -> Self {
        let text = |key: &str| {
            group
                .attributes
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let display_name = text("displayName").unwrap_or_default();
        GroupRow {
            group_id: group.group_id.clone(),
            organization_id: group.organization_id.clone(),
            connection_id: group.connection_id.clone(),
            display_name_key: lookup_key(&display_name),
            display_name,
            external_id: text("externalId"),
            attributes: Value::Object(group.attributes.clone()).to_string(),
            version: group.version,
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

impl Group {
    fn display_name(&self) -> &str {
        self.attributes
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The group as events carry it: without its members, which events name one by one.
    fn to_value(&self) -> Value {
        json!({
            "group_id": self.group_id,
            "connection_id": self.connection_id,
            "display_name": self.display_name(),
            "external_id": self.attributes.get("externalId"),
        })
    }
}

pub fn location(base_url: &str, group_id: &str) -> String {
    format!("{base_url}/scim/v2/Groups/{group_id}")
}

/// The SCIM Group; `members` only when they were loaded (RFC 7644 lets a server leave out
/// what was not asked for, and large groups are only expensive when they are read).
pub fn render(group: &Group, members: Option<&[String]>, base_url: &str) -> Value {
    let mut attributes = group.attributes.clone();
    if let Some(members) = members.filter(|members| !members.is_empty()) {
        let members = members
            .iter()
            .map(|member_id| {
                json!({
                    "value": member_id,
                    "$ref": super::scim_users::location(base_url, member_id),
                    "type": "User",
                })
            })
            .collect();
        attributes.insert("members".into(), Value::Array(members));
    }
    let meta = Meta {
        created: group.created_at,
        last_modified: group.updated_at,
        location: location(base_url, &group.group_id),
        version: group.version,
    };
    resource::render(&GROUP_RESOURCE, &group.group_id, &attributes, &meta)
}

/// What a write did to a group's membership, for its events.
#[derive(Debug, Default)]
struct MembershipChange {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
    /// Ids that name no live user of this connection: skipped, and recorded.
    skipped: BTreeSet<String>,
}

impl MembershipChange {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Splits normalised attributes into the group's own and its member ids.
fn take_member_ids(attributes: &mut Attributes) -> Vec<String> {
    match attributes.remove("members") {
        Some(Value::Array(members)) => members
            .iter()
            .filter_map(|member| {
                member
                    .get("value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Normalised group attributes, checked: `displayName` present, indexed values not too long.
fn group_attributes(input: &Value) -> Result<Attributes, Error> {
    let attributes = resource::normalize(&GROUP_RESOURCE, input)?;
    check_attributes(&attributes)?;
    Ok(attributes)
}

fn check_attributes(attributes: &Attributes) -> Result<(), Error> {
    check_required(&GROUP_RESOURCE, attributes)?;
    for key in ["displayName", "externalId"] {
        check_indexed_length(key, attributes.get(key))?;
    }
    Ok(())
}

/// POST /Groups, with or without members.
pub fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    input: &Value,
) -> Result<Group, Error> {
    let mut attributes = group_attributes(input)?;
    let member_ids = take_member_ids(&mut attributes);
    super::connections::ensure_exists(conn, tenant)?;
    let at = now();
    let group = Group {
        group_id: new_id("group"),
        organization_id: tenant.organization_id.clone(),
        connection_id: tenant.connection_id.clone(),
        attributes,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    ensure_display_name_free(conn, tenant, group.display_name(), None)?;
    diesel::insert_into(scim_groups::table)
        .values(GroupRow::from_group(&group))
        .execute(conn)
        .map_err(|error| display_name_conflict(error, group.display_name()))?;
    record(actor, &group, "group.created", group.to_value(), None)?;
    let mut change = MembershipChange::default();
    add_members(conn, tenant, &group.group_id, &member_ids, &mut change)?;
    record_membership(actor, &group, &change)?;
    sync_roles(conn, actor, &group.connection_id, &change)?;
    Ok(group)
}

/// The group `id` of this connection; anything else is 404, exactly alike.
pub fn get(conn: &mut DbConn, tenant: &Tenant, id: &str) -> Result<Group, Error> {
    found(
        id,
        connection_group(&tenant.connection_id, id)
            .select(GroupRow::as_select())
            .first(conn)
            .optional()?,
    )
}

#[diesel::dsl::auto_type(no_type_alias)]
fn connection_group<'a>(connection_id: &'a str, id: &'a str) -> _ {
    scim_groups::table
        .find(id)
        .filter(scim_groups::connection_id.eq(connection_id))
}

fn found(id: &str, row: Option<GroupRow>) -> Result<Group, Error> {
    row.ok_or_else(|| Error::not_found(format!("no Group {id}")))?
        .into_group()
}

/// `get`, holding the group's row until the write commits: on PostgreSQL the read is `FOR
/// UPDATE` (see `members::lock`), in the one statement.
fn get_for_write(conn: &mut DbConn, tenant: &Tenant, id: &str) -> Result<Group, Error> {
    match conn {
        DbConn::Postgres(pg) => found(
            id,
            connection_group(&tenant.connection_id, id)
                .select(GroupRow::as_select())
                .for_update()
                .first(pg)
                .optional()?,
        ),
        DbConn::Sqlite(_) => get(conn, tenant, id),
    }
}

/// The ids of the group's members. Members show `value`, `$ref` and `type`, no `display`:
/// reading a large group then touches the join table alone, and what a client wrote is what
/// it reads back (scim2-tester compares the two).
pub fn members_of(conn: &mut DbConn, group_id: &str) -> Result<Vec<String>, Error> {
    Ok(group_members::table
        .filter(group_members::group_id.eq(group_id))
        .order(group_members::member_id.asc())
        .select(group_members::member_id)
        .load(conn)?)
}

/// The groups a member belongs to, as (group id, displayName), for the user's `groups`.
pub fn groups_of(
    conn: &mut DbConn,
    member_ids: &[&str],
) -> Result<Vec<(String, String, String)>, Error> {
    let mut found = Vec::new();
    for chunk in member_ids.chunks(ID_BATCH) {
        let query = group_members::table
            .inner_join(scim_groups::table)
            .order((
                scim_groups::display_name_key.asc(),
                scim_groups::group_id.asc(),
            ))
            .select((
                group_members::member_id,
                scim_groups::group_id,
                scim_groups::display_name,
            ))
            .into_boxed();
        // One user's groups (every write of a user answers with them) with `=`: diesel
        // prepares an `IN` list afresh each time, but keeps this statement prepared.
        let rows: Vec<(String, String, String)> = match chunk {
            [member_id] => query.filter(group_members::member_id.eq(*member_id)),
            _ => query.filter(group_members::member_id.eq_any(chunk)),
        }
        .load(conn)?;
        found.extend(rows);
    }
    Ok(found)
}

/// PUT /Groups/{id}: replaces displayName, externalId and the whole membership.
pub fn replace(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
    input: &Value,
) -> Result<Group, Error> {
    let mut attributes = group_attributes(input)?;
    let member_ids = take_member_ids(&mut attributes);
    let before = get_for_write(conn, tenant, id)?;
    super::check_version(before.version, expected)?;
    let mut change = MembershipChange::default();
    set_members(conn, tenant, &before.group_id, &member_ids, &mut change)?;
    save(conn, tenant, actor, before, attributes, change)
}

/// PATCH /Groups/{id}. Operations on `members` run against the join table in order; the
/// others apply to the group's own attributes. All of it commits or none.
pub fn patch(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
    request: &PatchRequest,
) -> Result<Group, Error> {
    let before = get_for_write(conn, tenant, id)?;
    super::check_version(before.version, expected)?;
    let mut attribute_operations = Vec::new();
    let mut change = MembershipChange::default();
    for operation in &request.operations {
        match split_members(operation)? {
            (Some(members), rest) => {
                apply_member_operation(conn, tenant, &before.group_id, &members, &mut change)?;
                attribute_operations.extend(rest);
            }
            (None, rest) => attribute_operations.extend(rest),
        }
    }
    let attributes = patch::apply(
        &GROUP_RESOURCE,
        &before.attributes,
        &PatchRequest {
            operations: attribute_operations,
        },
        &before.group_id,
    )?;
    check_attributes(&attributes)?;
    save(conn, tenant, actor, before, attributes, change)
}

/// An operation on `members`, reduced to what the join table needs.
struct MemberOperation {
    op: Op,
    /// The filter of `members[…]`, if any.
    filter: Option<Filter>,
    value: Option<Value>,
}

/// Separates what an operation does to `members` from what it does to the rest. A pathless
/// value may carry `members` beside `displayName`.
fn split_members(
    operation: &Operation,
) -> Result<(Option<MemberOperation>, Option<Operation>), Error> {
    match &operation.path {
        Some(path) => {
            let parsed = PatchPath::parse(path)?;
            if !parsed.attr.is("members")
                || parsed
                    .attr
                    .urn
                    .as_deref()
                    .is_some_and(|urn| !urn.eq_ignore_ascii_case(GROUP_RESOURCE.core.id))
            {
                return Ok((None, Some(operation.clone())));
            }
            if parsed.sub.is_some() || parsed.attr.sub.is_some() {
                return Err(Error::scim(
                    ScimType::Mutability,
                    "a member's value and type cannot be changed: remove the member and add another",
                ));
            }
            Ok((
                Some(MemberOperation {
                    op: operation.op,
                    filter: parsed.filter,
                    value: operation.value.clone(),
                }),
                None,
            ))
        }
        None => {
            let Some(Value::Object(values)) = &operation.value else {
                return Ok((None, Some(operation.clone())));
            };
            let Some(key) = values
                .keys()
                .find(|key| key.eq_ignore_ascii_case("members"))
                .cloned()
            else {
                return Ok((None, Some(operation.clone())));
            };
            let mut rest: Map<String, Value> = values.clone();
            let members = rest.remove(&key);
            let members = MemberOperation {
                op: operation.op,
                filter: None,
                value: members,
            };
            let rest = (!rest.is_empty()).then(|| Operation {
                op: operation.op,
                path: None,
                value: Some(Value::Object(rest)),
            });
            Ok((Some(members), rest))
        }
    }
}

fn member_ids_of(value: Option<&Value>) -> Result<Vec<String>, Error> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let attribute = GROUP_RESOURCE
        .core
        .attribute("members")
        .expect("the Group schema has members");
    let mut attributes = Map::new();
    if let Some(normalized) = normalize_value(attribute, value, "members")? {
        attributes.insert("members".into(), normalized);
    }
    Ok(take_member_ids(&mut attributes))
}

fn apply_member_operation(
    conn: &mut DbConn,
    tenant: &Tenant,
    group_id: &str,
    operation: &MemberOperation,
    change: &mut MembershipChange,
) -> Result<(), Error> {
    match (operation.op, &operation.filter) {
        (Op::Add, None) => add_members(conn, tenant, group_id, &member_ids_of(operation.value.as_ref())?, change),
        (Op::Replace, None) => set_members(conn, tenant, group_id, &member_ids_of(operation.value.as_ref())?, change),
        (Op::Remove, None) => match &operation.value {
            // {"op": "remove", "path": "members", "value": [{"value": "id"}]} removes only
            // those (IDP-QUIRKS 4); without a value, every member goes.
            Some(value) => remove_members(conn, group_id, &member_ids_of(Some(value))?, change),
            None => {
                let everyone: Vec<String> = current_member_ids(conn, group_id)?;
                remove_members(conn, group_id, &everyone, change)
            }
        },
        (Op::Remove, Some(filter)) => {
            let ids = match ids_named_by(filter) {
                Some(ids) => ids,
                None => matching_member_ids(conn, group_id, filter)?,
            };
            remove_members(conn, group_id, &ids, change)
        }
        (Op::Add | Op::Replace, Some(filter)) => Err(Error::scim(
            ScimType::Mutability,
            format!("members[{filter}] cannot be added or replaced: a member's value is immutable; add or remove members instead"),
        )),
    }
}

/// The ids a `value eq "…"` filter (or an `or` of them) names, without reading anything.
fn ids_named_by(filter: &Filter) -> Option<Vec<String>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(id),
        } if path.is("value") && path.sub.is_none() => Some(vec![id.clone()]),
        Filter::Or(left, right) => {
            let mut ids = ids_named_by(left)?;
            ids.extend(ids_named_by(right)?);
            Some(ids)
        }
        _ => None,
    }
}

/// Members matching any other filter (`type eq "User"`) are found by evaluating it.
fn matching_member_ids(
    conn: &mut DbConn,
    group_id: &str,
    filter: &Filter,
) -> Result<Vec<String>, Error> {
    struct MemberRules;
    impl crate::scim::filter::AttributeRules for MemberRules {
        fn case_exact(&self, path: &crate::scim::filter::AttrPath) -> bool {
            path.is("value") || path.is("$ref")
        }
    }
    Ok(members_of(conn, group_id)?
        .into_iter()
        .filter(|member_id| {
            filter.matches(&json!({"value": member_id, "type": "User"}), &MemberRules)
        })
        .collect())
}

fn current_member_ids(conn: &mut DbConn, group_id: &str) -> Result<Vec<String>, Error> {
    Ok(group_members::table
        .filter(group_members::group_id.eq(group_id))
        .select(group_members::member_id)
        .load(conn)?)
}

/// Adds the ids that name live users of this connection; the others are skipped: a foreign id
/// behaves exactly like an unknown one.
fn add_members(
    conn: &mut DbConn,
    tenant: &Tenant,
    group_id: &str,
    ids: &[String],
    change: &mut MembershipChange,
) -> Result<(), Error> {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    for chunk in wanted.chunks(ID_BATCH) {
        if let DbConn::Postgres(pg) = conn {
            let (valid, inserted) = add_live_members_postgres(pg, tenant, group_id, chunk)?;
            for id in chunk {
                if !valid.contains(*id) {
                    change.skipped.insert(id.to_string());
                } else if inserted.contains(*id) && !change.removed.remove(*id) {
                    change.added.insert(id.to_string());
                }
            }
            continue;
        }
        let live = members::table
            .filter(members::scim_connection_id.eq(&tenant.connection_id))
            .filter(members::status.ne(MemberStatus::Deleted.as_str()))
            .select(members::member_id)
            .into_boxed();
        let valid: BTreeSet<String> = match chunk {
            [id] => live.filter(members::member_id.eq(*id)).load(conn)?,
            _ => Replanned(live.filter(members::member_id.eq_any(chunk))).load(conn)?,
        }
        .into_iter()
        .collect();
        let present = members_among(conn, group_id, chunk)?;
        let rows: Vec<_> = valid
            .iter()
            .filter(|id| !present.contains(*id))
            .map(|id| {
                (
                    group_members::group_id.eq(group_id),
                    group_members::member_id.eq(id),
                )
            })
            .collect();
        if !rows.is_empty() {
            crate::on_backend!(conn, |inner| diesel::insert_into(group_members::table)
                .values(&rows)
                .execute(inner))?;
        }
        for id in chunk {
            if !valid.contains(*id) {
                change.skipped.insert(id.to_string());
            } else if !present.contains(*id) && !change.removed.remove(*id) {
                change.added.insert(id.to_string());
            }
        }
    }
    Ok(())
}

/// `add_members`' three statements in one on PostgreSQL: which of `ids` are live users of
/// the connection, and which of those it made members (the others were already). Kept
/// prepared whatever the number of ids: each is a probe of a primary key, so no plan made
/// while the group was small can read the whole group.
///
/// The users' rows are locked `FOR KEY SHARE` (as the membership's foreign key would lock them
/// anyway), so an add that waits for a user's deletion (which holds the row `FOR UPDATE`)
/// reads the row again once it is deleted, and skips it: without the lock, the user was read
/// live before the wait and became a member after its deletion, a tombstone in the group.
fn add_live_members_postgres(
    pg: &mut diesel::pg::PgConnection,
    tenant: &Tenant,
    group_id: &str,
    ids: &[&str],
) -> Result<(BTreeSet<String>, BTreeSet<String>), Error> {
    use diesel::sql_types::{Array, Bool, Text};
    #[derive(QueryableByName)]
    struct Live {
        #[diesel(sql_type = Text)]
        member_id: String,
        #[diesel(sql_type = Bool)]
        inserted: bool,
    }
    let rows: Vec<Live> = Prepared(
        diesel::sql_query(
            "WITH live AS ( \
                 SELECT member_id FROM members \
                 WHERE member_id = ANY($3) AND scim_connection_id = $2 AND status <> $4 \
                 FOR KEY SHARE), \
             inserted AS ( \
                 INSERT INTO group_members (group_id, member_id) \
                 SELECT $1, member_id FROM live \
                 ON CONFLICT DO NOTHING \
                 RETURNING member_id) \
             SELECT live.member_id, inserted.member_id IS NOT NULL AS inserted \
             FROM live LEFT JOIN inserted ON inserted.member_id = live.member_id",
        )
        .bind::<Text, _>(group_id)
        .bind::<Text, _>(&tenant.connection_id)
        .bind::<Array<Text>, _>(ids)
        .bind::<Text, _>(MemberStatus::Deleted.as_str()),
    )
    .load(pg)?;
    let inserted = rows
        .iter()
        .filter(|row| row.inserted)
        .map(|row| row.member_id.clone())
        .collect();
    let live = rows.into_iter().map(|row| row.member_id).collect();
    Ok((live, inserted))
}

/// Which of `ids` are members of the group. One id is an `=`, kept prepared and an index probe
/// at any size of the group; more are an `ANY` list planned afresh (`db::Replanned`), since
/// PostgreSQL's generic plan for it, made while a group is small, reads the whole group.
fn members_among(
    conn: &mut DbConn,
    group_id: &str,
    ids: &[&str],
) -> Result<BTreeSet<String>, Error> {
    let query = group_members::table
        .filter(group_members::group_id.eq(group_id))
        .select(group_members::member_id)
        .into_boxed();
    let found: Vec<String> = match ids {
        [id] => query.filter(group_members::member_id.eq(*id)).load(conn)?,
        _ => Replanned(query.filter(group_members::member_id.eq_any(ids))).load(conn)?,
    };
    Ok(found.into_iter().collect())
}

/// Removes these ids from the group; ids that are not members change nothing.
fn remove_members(
    conn: &mut DbConn,
    group_id: &str,
    ids: &[String],
    change: &mut MembershipChange,
) -> Result<(), Error> {
    for chunk in ids.chunks(ID_BATCH) {
        // As in `members_among`: `=` for one id, an `ANY` list planned afresh for more.
        let removed: Vec<String> = match chunk {
            [id] => crate::on_backend!(conn, |inner| diesel::delete(
                group_members::table.find((group_id, id))
            )
            .returning(group_members::member_id)
            .load(inner))?,
            _ => crate::on_backend!(conn, |inner| Replanned(
                diesel::delete(
                    group_members::table
                        .filter(group_members::group_id.eq(group_id))
                        .filter(group_members::member_id.eq_any(chunk)),
                )
                .returning(group_members::member_id)
            )
            .load(inner))?,
        };
        for id in removed {
            if !change.added.remove(&id) {
                change.removed.insert(id);
            }
        }
    }
    Ok(())
}

/// Makes the membership exactly `ids` (the valid ones among them).
fn set_members(
    conn: &mut DbConn,
    tenant: &Tenant,
    group_id: &str,
    ids: &[String],
    change: &mut MembershipChange,
) -> Result<(), Error> {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let leaving: Vec<String> = current_member_ids(conn, group_id)?
        .into_iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .collect();
    remove_members(conn, group_id, &leaving, change)?;
    add_members(conn, tenant, group_id, ids, change)
}

fn save(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    before: Group,
    attributes: Attributes,
    change: MembershipChange,
) -> Result<Group, Error> {
    let mut after = Group {
        attributes,
        ..before.clone()
    };
    let previous = previous_values(&before.to_value(), &after.to_value());
    if previous.is_none() && after.attributes == before.attributes && change.is_empty() {
        record_membership(actor, &before, &change)?;
        return Ok(before);
    }
    if after.display_name() != before.display_name() {
        ensure_display_name_free(conn, tenant, after.display_name(), Some(&before.group_id))?;
    }
    after.version = before.version + 1;
    after.updated_at = now();
    // Every column (`treat_none_as_null`): one text, kept prepared.
    Prepared(
        diesel::update(scim_groups::table.find(&before.group_id))
            .set(GroupRow::from_group(&after))
            .returning(scim_groups::version),
    )
    .get_result::<i64>(conn)
    .map_err(|error| display_name_conflict(error, after.display_name()))?;
    if after.attributes != before.attributes {
        record(actor, &after, "group.updated", after.to_value(), previous)?;
    }
    record_membership(actor, &after, &change)?;
    let renamed = lookup_key(after.display_name()) != lookup_key(before.display_name());
    if !renamed && change.is_empty() {
        return Ok(after);
    }
    // Only group roles can change: nothing to do for a connection that maps no group.
    if !member_roles::connection_maps_groups(conn, &after.connection_id)? {
        return Ok(after);
    }
    if renamed {
        // Assignments by displayName may now reach this group, or no longer.
        let everyone = members_of(conn, &after.group_id)?;
        member_roles::sync_all(conn, actor, &everyone)?;
    }
    sync_touched(conn, actor, &change)?;
    Ok(after)
}

/// Re-derives the roles of the members a membership change touched: only group roles can
/// change, so nothing is done for a connection that maps no group to a role.
fn sync_roles(
    conn: &mut DbConn,
    actor: &Actor,
    connection_id: &str,
    change: &MembershipChange,
) -> Result<(), Error> {
    if !member_roles::connection_maps_groups(conn, connection_id)? {
        return Ok(());
    }
    sync_touched(conn, actor, change)
}

/// Re-derives the roles of the members a membership change touched.
fn sync_touched(conn: &mut DbConn, actor: &Actor, change: &MembershipChange) -> Result<(), Error> {
    let touched: Vec<String> = change
        .added
        .iter()
        .chain(&change.removed)
        .cloned()
        .collect();
    member_roles::sync_after_membership_change(conn, actor, &touched)
}

/// DELETE /Groups/{id}: the group and all its memberships.
pub fn delete(
    conn: &mut DbConn,
    tenant: &Tenant,
    actor: &Actor,
    id: &str,
    expected: Option<&[i64]>,
) -> Result<(), Error> {
    let group = get_for_write(conn, tenant, id)?;
    super::check_version(group.version, expected)?;
    let mapped = member_roles::connection_maps_groups(conn, &group.connection_id)?;
    let former_members = if mapped {
        members_of(conn, &group.group_id)?
    } else {
        Vec::new()
    };
    diesel::delete(scim_groups::table.find(&group.group_id)).execute(conn)?;
    // The memberships went with the group (cascade), their rows held by this write.
    member_roles::sync_after_membership_change(conn, actor, &former_members)?;
    record(
        actor,
        &group,
        "group.deleted",
        json!({ "group_id": group.group_id }),
        None,
    )
}

/// Locks the groups of `tenant` that `member_id` belongs to, in id order, before its deletion
/// takes the member's row. A group's write takes its group's row first, then the rows of the
/// members it adds (`FOR KEY SHARE`); a deletion that held the member and then marked its
/// groups changed ([`remove_from_all_groups`]) would take them the other way round, and the
/// two could deadlock. A group the member joins between this and the member's lock is marked
/// changed without having been locked here: the write that added the member held the
/// member's row, so it has committed by the time the deletion holds that row. On SQLite every
/// write holds the one write lock from its start: nothing to order.
pub fn lock_groups_of(conn: &mut DbConn, tenant: &Tenant, member_id: &str) -> Result<(), Error> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    let memberships = group_members::table
        .filter(group_members::member_id.eq(member_id))
        .select(group_members::group_id);
    scim_groups::table
        .filter(scim_groups::connection_id.eq(&tenant.connection_id))
        .filter(scim_groups::group_id.eq_any(memberships))
        .order(scim_groups::group_id.asc())
        .select(scim_groups::group_id)
        .for_no_key_update()
        .load::<String>(pg)?;
    Ok(())
}

/// Removes a member from every group, as its deletion requires. Each group it leaves has
/// changed: a new version (its ETag) and `meta.lastModified`, and a `group.members_removed`,
/// as a PATCH removing it would record. Call [`lock_groups_of`] before locking the member.
pub fn remove_from_all_groups(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    member_id: &str,
) -> Result<(), Error> {
    let mut left: Vec<String> =
        diesel::delete(group_members::table.filter(group_members::member_id.eq(member_id)))
            .returning(group_members::group_id)
            .get_results(conn)?;
    if left.is_empty() {
        return Ok(());
    }
    left.sort();
    diesel::update(scim_groups::table.filter(scim_groups::group_id.eq_any(&left)))
        .set((
            scim_groups::version.eq(scim_groups::version + 1),
            scim_groups::updated_at.eq(now()),
        ))
        .execute(conn)?;
    for group_id in &left {
        record_members_removed(actor, organization_id, group_id, [member_id])?;
    }
    Ok(())
}

fn ensure_display_name_free(
    conn: &mut DbConn,
    tenant: &Tenant,
    display_name: &str,
    except: Option<&str>,
) -> Result<(), Error> {
    let holder: Option<String> = scim_groups::table
        .filter(scim_groups::connection_id.eq(&tenant.connection_id))
        .filter(scim_groups::display_name_key.eq(lookup_key(display_name)))
        .select(scim_groups::group_id)
        .first(conn)
        .optional()?;
    match holder {
        Some(holder) if Some(holder.as_str()) != except => Err(display_name_taken(display_name)),
        _ => Ok(()),
    }
}

fn display_name_taken(display_name: &str) -> Error {
    Error::conflict(
        "display_name_taken",
        format!(
            "displayName \"{display_name}\" is already taken by another group of this connection"
        ),
    )
}

fn display_name_conflict(error: diesel::result::Error, display_name: &str) -> Error {
    match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => display_name_taken(display_name),
        other => other.into(),
    }
}

fn record(
    actor: &Actor,
    group: &Group,
    event_type: &'static str,
    data: Value,
    previous: Option<Value>,
) -> Result<(), Error> {
    events::record(
        &group.organization_id,
        actor,
        Event {
            event_type,
            subject_id: &group.group_id,
            data,
            previous,
        },
    )?;
    Ok(())
}

/// `group.members_added` (with the ids skipped as naming no user of this connection) and
/// `group.members_removed`, when anything was added, skipped or removed.
fn record_membership(actor: &Actor, group: &Group, change: &MembershipChange) -> Result<(), Error> {
    if !change.added.is_empty() || !change.skipped.is_empty() {
        let data = json!({
            "group_id": group.group_id,
            "member_ids": change.added,
            "skipped_member_ids": change.skipped,
        });
        record(actor, group, "group.members_added", data, None)?;
    }
    if !change.removed.is_empty() {
        let removed = &change.removed;
        record_members_removed(actor, &group.organization_id, &group.group_id, removed)?;
    }
    Ok(())
}

/// `group.members_removed`: `member_ids` left the group, by a PATCH or by their deletion.
fn record_members_removed(
    actor: &Actor,
    organization_id: &str,
    group_id: &str,
    member_ids: impl serde::Serialize,
) -> Result<(), Error> {
    events::record(
        organization_id,
        actor,
        Event {
            event_type: "group.members_removed",
            subject_id: group_id,
            data: json!({ "group_id": group_id, "member_ids": member_ids }),
            previous: None,
        },
    )?;
    Ok(())
}

/// The page `window` asks for of the connection's groups matching `filter`, in creation
/// order, with how many match. What the filter asks of the columns of [`GROUP_COLUMNS`] is
/// answered by SQL on indexes (alone, when that is all it asks); members are read only when
/// what is left of the filter looks at them.
pub fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    base_url: &str,
    filter: Option<&Filter>,
    window: &Window,
    sort: Option<&Sort>,
) -> Result<Listed<Group>, Error> {
    let rules = ResourceRules(&GROUP_RESOURCE);
    let plan = filter.map(|filter| plan(filter, &GROUP_COLUMNS, &rules));
    let exact = plan.as_ref().is_some_and(|plan| plan.exact);
    let residual = filter.filter(|_| !exact);
    let condition = plan.and_then(|plan| plan.condition);
    let groups = || -> Result<_, Error> {
        let query = scim_groups::table
            .filter(scim_groups::connection_id.eq(tenant.connection_id.as_str()))
            .into_boxed();
        Ok(match &condition {
            Some(condition) => query.filter(group_sql(condition, sort)?),
            None => query,
        })
    };
    let fetch = |conn: &mut DbConn, read: Read| -> Result<Vec<Group>, Error> {
        crate::keyset_read!(
            groups()?,
            read,
            scim_groups::created_at,
            scim_groups::group_id
        )
        .select(GroupRow::as_select())
        .load(conn)?
        .into_iter()
        .map(GroupRow::into_group)
        .collect()
    };
    let position = |group: &Group| (group.created_at, group.group_id.clone());
    let needs_members = residual.is_some_and(|filter| mentions(filter, "members"))
        || sort.is_some_and(|sort| sort.path.is("members"));
    list_window(
        conn,
        window,
        residual,
        sort,
        &rules,
        |conn| Ok(groups()?.count().get_result::<i64>(conn)? as u64),
        |conn, sort, skip, count| {
            let ordered = match sort {
                None => Some(
                    groups()?.order((scim_groups::created_at.asc(), scim_groups::group_id.asc())),
                ),
                Some(sort) => order_groups(groups()?, sort),
            };
            ordered
                .map(|query| page_of(conn, query, skip, count))
                .transpose()
        },
        fetch,
        position,
        |conn, group| {
            let members = if needs_members {
                Some(members_of(conn, &group.group_id)?)
            } else {
                None
            };
            Ok(render(group, members.as_deref(), base_url))
        },
    )
}

/// The columns Group filters are answered from (scim::list::plan).
const GROUP_COLUMNS: Columns = Columns {
    columns: &[
        ("id", Column::Text { lowercased: false }),
        ("displayName", Column::Text { lowercased: true }),
        ("externalId", Column::Text { lowercased: false }),
        ("meta.created", Column::Instant),
        ("meta.lastModified", Column::Instant),
        ("members.value", Column::Text { lowercased: false }),
    ],
    elements: &["members"],
    stored_elsewhere: &["id", "meta", "members", "schemas"],
};

/// A planned Group filter condition as SQL over the connection's groups.
fn group_sql(condition: &Condition, sort: Option<&Sort>) -> Result<Sql<scim_groups::table>, Error> {
    use scim_groups as g;
    filter_sql::listing(condition, sort, &|leaf| {
        Ok(match leaf {
            Condition::Text { column, test } => match *column {
                "id" => text_sql!(g::group_id.nullable(), test),
                "displayName" => text_sql!(g::display_name_key.nullable(), test),
                "externalId" => text_sql!(g::external_id, test),
                _ => return Err(unknown_column(leaf)),
            },
            Condition::Instant { column, op, at } => match *column {
                "meta.created" => instant_sql!(g::created_at, op, at),
                "meta.lastModified" => instant_sql!(g::updated_at, op, at),
                _ => return Err(unknown_column(leaf)),
            },
            Condition::Contains(text) => Box::new(
                lower(g::attributes)
                    .like(crate::db::contains_pattern(text))
                    .escape('\\'),
            ),
            Condition::Element {
                attribute: "members",
                condition,
            } => {
                let element =
                    filter_sql::condition::<group_members::table>(condition, &|leaf| match leaf {
                        Condition::Text {
                            column: "members.value",
                            test,
                        } => Ok(text_sql!(group_members::member_id.nullable(), test)),
                        _ => Err(unknown_column(leaf)),
                    })?;
                Box::new(filter_sql::in_subquery(
                    g::group_id,
                    group_members::table
                        .into_boxed()
                        .filter(element)
                        .select(group_members::group_id),
                ))
            }
            _ => return Err(unknown_column(leaf)),
        })
    })
}

/// `count` groups of `query` (ordered) after skipping `skip`.
fn page_of(
    conn: &mut DbConn,
    query: scim_groups::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend>,
    skip: u64,
    count: u64,
) -> Result<Vec<Group>, Error> {
    query
        .offset(skip as i64)
        .limit(count as i64)
        .select(GroupRow::as_select())
        .load(conn)?
        .into_iter()
        .map(GroupRow::into_group)
        .collect()
}

/// The groups ordered by a sort the database can do (an attribute with a column), ties in
/// creation order; `None` for any other attribute.
fn order_groups<'a>(
    query: scim_groups::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>,
    sort: &Sort,
) -> Option<scim_groups::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>> {
    use scim_groups as g;
    let d = sort.descending;
    Some(if sort.is("displayName", None) {
        crate::order_by!(query, d, g::display_name_key, g::created_at, g::group_id)
    } else if sort.is("id", None) {
        crate::order_by!(query, d, g::group_id, g::created_at)
    } else if sort.is("externalId", None) {
        // Unassigned last when ascending, first when descending.
        let (unassigned, key) = (g::external_id.is_null(), g::external_id);
        if d {
            query.order((
                unassigned.desc(),
                key.desc(),
                g::created_at.asc(),
                g::group_id.asc(),
            ))
        } else {
            query.order((
                unassigned.asc(),
                key.asc(),
                g::created_at.asc(),
                g::group_id.asc(),
            ))
        }
    } else if sort.is("meta", Some("created")) {
        crate::order_by!(query, d, g::created_at, g::group_id)
    } else if sort.is("meta", Some("lastModified")) {
        crate::order_by!(query, d, g::updated_at, g::created_at, g::group_id)
    } else {
        return None;
    })
}
