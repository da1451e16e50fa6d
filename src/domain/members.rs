//! Members: the people of an organization, however they arrived (SCIM, API, invite, JIT).
//! This module owns their persistence and the events of their lifecycle.

use chrono::NaiveDateTime;
use diesel::expression::SqlLiteral;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::events::{self, previous_values, Event};
use super::member_roles;
use super::organizations;
use super::Actor;
use crate::db::schema::{member_emails, members};
use crate::db::{DbConn, Prepared, Together};
use crate::error::Error;
use crate::scim::resource::Attributes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Invited,
    Pending,
    Inactive,
    Deleted,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Invited => "invited",
            MemberStatus::Pending => "pending",
            MemberStatus::Inactive => "inactive",
            MemberStatus::Deleted => "deleted",
        }
    }

    fn parse(stored: &str) -> Result<Self, Error> {
        serde_json::from_value(Value::String(stored.to_string()))
            .map_err(|_| Error::internal(format!("stored member status `{stored}`")))
    }
}

/// How an IdP manages a member: which connection, under which userName.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScimRegistration {
    pub connection_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    /// The SCIM resource in canonical form, without id, meta, groups and password; `active`
    /// as the IdP last set it (the member's status is the truth: scim_users::scim_attributes).
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub member_id: String,
    pub organization_id: String,
    pub email_address: String,
    /// Whether the member proved the address is theirs: an authentication reported to /jit
    /// with a verified email, or an accepted invite.
    pub email_address_verified: bool,
    pub status: MemberStatus,
    pub name: String,
    pub is_breakglass: bool,
    pub trusted_metadata: Map<String, Value>,
    pub untrusted_metadata: Map<String, Value>,
    pub scim_registration: Option<ScimRegistration>,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub version: i64,
}

impl Member {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("members serialize")
    }
}

/// Case-insensitive comparison key of an email address or userName.
pub fn lookup_key(text: &str) -> String {
    text.to_lowercase()
}

/// The domain of an email address, lowercased: what follows its last `@`.
pub fn email_domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain)
        .to_lowercase()
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = members, treat_none_as_null = true)]
// NULL, not DEFAULT, for `None` (no nullable column has another default): the INSERT's text
// stays the same, so it can be kept prepared.
#[diesel(treat_none_as_default_value = false)]
// The key is never in an UPDATE's SET: on SQLite, setting a parent key (even to itself)
// makes the foreign-key check count every child row.
#[diesel(primary_key(member_id))]
pub(crate) struct MemberRow {
    member_id: String,
    organization_id: String,
    email_address: String,
    email_key: Option<String>,
    email_domain: String,
    email_address_verified: bool,
    status: String,
    name: String,
    is_breakglass: bool,
    trusted_metadata: String,
    untrusted_metadata: String,
    scim_connection_id: Option<String>,
    scim_user_name: Option<String>,
    scim_user_name_key: Option<String>,
    scim_external_id: Option<String>,
    scim_attributes: Option<String>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    scim_display_name_key: Option<String>,
    scim_given_name_key: Option<String>,
    scim_family_name_key: Option<String>,
}

impl MemberRow {
    pub(crate) fn into_member(self) -> Result<Member, Error> {
        let json = |text: &str, what: &str| -> Result<Map<String, Value>, Error> {
            serde_json::from_str(text).map_err(|error| {
                Error::internal(format!("stored {what} of {}: {error}", self.member_id))
            })
        };
        let scim_registration = match (&self.scim_connection_id, &self.scim_user_name) {
            (Some(connection_id), Some(user_name)) => Some(ScimRegistration {
                connection_id: connection_id.clone(),
                user_name: user_name.clone(),
                external_id: self.scim_external_id.clone(),
                attributes: json(
                    self.scim_attributes.as_deref().unwrap_or("{}"),
                    "SCIM attributes",
                )?,
            }),
            _ => None,
        };
        Ok(Member {
            trusted_metadata: json(&self.trusted_metadata, "trusted_metadata")?,
            untrusted_metadata: json(&self.untrusted_metadata, "untrusted_metadata")?,
            status: MemberStatus::parse(&self.status)?,
            member_id: self.member_id,
            organization_id: self.organization_id,
            email_address: self.email_address,
            email_address_verified: self.email_address_verified,
            name: self.name,
            is_breakglass: self.is_breakglass,
            scim_registration,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }

    fn from_member(member: &Member) -> Self {
        let live = member.status != MemberStatus::Deleted;
        let scim = member.scim_registration.as_ref();
        // The attributes filters find users by (scim::list::plan), as they compare.
        let key = |path: &[&str]| {
            let attributes = &scim?.attributes;
            let (first, rest) = path.split_first()?;
            rest.iter()
                .try_fold(attributes.get(*first)?, |value, key| value.get(key))?
                .as_str()
                .map(lookup_key)
        };
        MemberRow {
            scim_display_name_key: key(&["displayName"]),
            scim_given_name_key: key(&["name", "givenName"]),
            scim_family_name_key: key(&["name", "familyName"]),
            member_id: member.member_id.clone(),
            organization_id: member.organization_id.clone(),
            email_address: member.email_address.clone(),
            email_key: live.then(|| lookup_key(&member.email_address)),
            email_domain: email_domain(&member.email_address),
            email_address_verified: member.email_address_verified,
            status: member.status.as_str().to_string(),
            name: member.name.clone(),
            is_breakglass: member.is_breakglass,
            trusted_metadata: Value::Object(member.trusted_metadata.clone()).to_string(),
            untrusted_metadata: Value::Object(member.untrusted_metadata.clone()).to_string(),
            scim_connection_id: scim.map(|s| s.connection_id.clone()),
            scim_user_name: scim.map(|s| s.user_name.clone()),
            scim_user_name_key: scim.filter(|_| live).map(|s| lookup_key(&s.user_name)),
            scim_external_id: scim.and_then(|s| s.external_id.clone()),
            scim_attributes: scim.map(|s| Value::Object(s.attributes.clone()).to_string()),
            version: member.version,
            created_at: member.created_at,
            updated_at: member.updated_at,
        }
    }
}

/// The columns of a member's row that a change sets. On SQLite only those whose value
/// changes: it rewrites the entries of every index on a column an UPDATE sets, even to the
/// same value, and a member row has a dozen indexes (email, userName, externalId, filters,
/// listing). On PostgreSQL all of them (see `update_with`).
#[derive(AsChangeset)]
#[diesel(table_name = members)]
struct MemberChanges {
    email_address: Option<String>,
    email_key: Option<Option<String>>,
    email_domain: Option<String>,
    email_address_verified: Option<bool>,
    status: Option<String>,
    name: Option<String>,
    is_breakglass: Option<bool>,
    trusted_metadata: Option<String>,
    untrusted_metadata: Option<String>,
    scim_connection_id: Option<Option<String>>,
    scim_user_name: Option<Option<String>>,
    scim_user_name_key: Option<Option<String>>,
    scim_external_id: Option<Option<String>>,
    scim_attributes: Option<Option<String>>,
    version: Option<i64>,
    updated_at: Option<NaiveDateTime>,
    scim_display_name_key: Option<Option<String>>,
    scim_given_name_key: Option<Option<String>>,
    scim_family_name_key: Option<Option<String>>,
}

impl MemberChanges {
    /// The columns that differ between `before` and `after`; every column without `before`.
    fn between(before: Option<&MemberRow>, after: &MemberRow) -> Self {
        macro_rules! changed {
            ($($field:ident),*) => {
                MemberChanges {
                    $($field: before
                        .is_none_or(|before| before.$field != after.$field)
                        .then(|| after.$field.clone()),)*
                }
            };
        }
        changed!(
            email_address,
            email_key,
            email_domain,
            email_address_verified,
            status,
            name,
            is_breakglass,
            trusted_metadata,
            untrusted_metadata,
            scim_connection_id,
            scim_user_name,
            scim_user_name_key,
            scim_external_id,
            scim_attributes,
            version,
            updated_at,
            scim_display_name_key,
            scim_given_name_key,
            scim_family_name_key
        )
    }
}

/// One element of a SCIM user's `emails`, as `member_emails` keeps it for filters.
#[derive(Debug, PartialEq, Insertable)]
#[diesel(table_name = member_emails, treat_none_as_default_value = false)]
struct MemberEmailRow {
    member_id: String,
    position: i32,
    connection_id: String,
    value_key: Option<String>,
    type_key: Option<String>,
    is_primary: Option<bool>,
}

/// The `member_emails` rows of a member: one an element of its `emails`, while it is a live
/// SCIM user; none otherwise.
fn email_rows(member: &Member) -> Vec<MemberEmailRow> {
    let Some(scim) = member
        .scim_registration
        .as_ref()
        .filter(|_| member.status != MemberStatus::Deleted)
    else {
        return Vec::new();
    };
    let text =
        |element: &Value, key: &str| element.get(key).and_then(Value::as_str).map(lookup_key);
    scim.attributes
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|element| element.is_object())
        .enumerate()
        .map(|(position, element)| MemberEmailRow {
            member_id: member.member_id.clone(),
            position: position as i32,
            connection_id: scim.connection_id.clone(),
            value_key: text(element, "value"),
            type_key: text(element, "type"),
            is_primary: element.get("primary").and_then(Value::as_bool),
        })
        .collect()
}

/// Keeps `member_emails` true across a change from `before` to `after`: rewritten only when
/// the rows differ. As many emails as before (an IdP changing an address): each changed row
/// is updated in place, one statement kept prepared, where deleting and inserting them all
/// took two, one of them of varying text. Otherwise all are rewritten.
fn index_emails(conn: &mut DbConn, before: Option<&Member>, after: &Member) -> Result<(), Error> {
    let rows = email_rows(after);
    let Some(before) = before else {
        return insert_email_rows(conn, &rows);
    };
    let held = email_rows(before);
    if held == rows {
        return Ok(());
    }
    if held.len() == rows.len() {
        for (held, row) in held.iter().zip(&rows) {
            if held != row && !update_email_row(conn, row)? {
                // Not there to update (stored before migration 000012 and not yet indexed).
                insert_email_rows(conn, std::slice::from_ref(row))?;
            }
        }
        return Ok(());
    }
    diesel::delete(member_emails::table.filter(member_emails::member_id.eq(&after.member_id)))
        .execute(conn)?;
    insert_email_rows(conn, &rows)
}

/// Writes `row` over the member's row at its position; false when there is none.
fn update_email_row(conn: &mut DbConn, row: &MemberEmailRow) -> Result<bool, Error> {
    let updated = crate::on_backend!(conn, |inner| email_row_change(row)
        .get_result::<i32>(inner)
        .optional())?;
    Ok(updated.is_some())
}

/// The statement of [`update_email_row`], returning the row's position; kept prepared.
fn email_row_change(
    row: &MemberEmailRow,
) -> Prepared<
    impl QueryFragment<Pg> + QueryFragment<Sqlite> + Query<SqlType = Integer> + QueryId + '_,
> {
    Prepared(
        diesel::update(member_emails::table.find((&row.member_id, row.position)))
            .set((
                member_emails::connection_id.eq(&row.connection_id),
                member_emails::value_key.eq(&row.value_key),
                member_emails::type_key.eq(&row.type_key),
                member_emails::is_primary.eq(row.is_primary),
            ))
            .returning(member_emails::position),
    )
}

/// What a change from `before` to `after` does to the member's `member_emails` rows, in the
/// cases a member's UPDATE statement takes along on PostgreSQL (`update_with`).
enum EmailsChange {
    Unchanged,
    /// One row rewritten in place, none added or removed (an IdP changing an address).
    OneInPlace(MemberEmailRow),
    /// Every row gone (a user deleted).
    AllGone,
    /// Anything else: `index_emails` writes it.
    Other,
}

fn emails_change(before: &Member, after: &Member) -> EmailsChange {
    let (held, rows) = (email_rows(before), email_rows(after));
    if held == rows {
        return EmailsChange::Unchanged;
    }
    if rows.is_empty() {
        return EmailsChange::AllGone;
    }
    if held.len() != rows.len() {
        return EmailsChange::Other;
    }
    let mut changed = held
        .into_iter()
        .zip(rows)
        .filter(|(held, row)| held != row)
        .map(|(_, row)| row);
    match (changed.next(), changed.next()) {
        (Some(row), None) => EmailsChange::OneInPlace(row),
        _ => EmailsChange::Other,
    }
}

/// A new member with at most this many emails is inserted in one statement kept prepared
/// (`insert`): one prepared statement for each count up to it.
const EMAILS_KEPT_PREPARED: usize = 4;

fn insert_email_rows(conn: &mut DbConn, rows: &[MemberEmailRow]) -> Result<(), Error> {
    // In chunks: a statement takes at most 65,535 parameters on PostgreSQL.
    for chunk in rows.chunks(1_000) {
        crate::on_backend!(conn, |inner| diesel::insert_into(member_emails::table)
            .values(chunk)
            .execute(inner))?;
    }
    Ok(())
}

/// Fills the filter columns and `member_emails` of the SCIM users after `after` (by id) that
/// were stored before they existed (migration 000012), one batch; returns the last id done,
/// `None` once none is left.
pub fn index_stored_users(conn: &mut DbConn, after: &str) -> Result<Option<String>, Error> {
    let batch: Vec<MemberRow> = members::table
        .filter(members::scim_connection_id.is_not_null())
        .filter(members::member_id.gt(after))
        .order(members::member_id.asc())
        .limit(super::SCAN_BATCH)
        .select(MemberRow::as_select())
        .load(conn)?;
    let last = batch.last().map(|row| row.member_id.clone());
    for row in batch {
        let member = row.into_member()?;
        diesel::update(members::table.find(&member.member_id))
            .set(MemberRow::from_member(&member))
            .execute(conn)?;
        index_emails(conn, None, &member)?;
    }
    Ok(last)
}

/// The member `member_id` of the organization; another organization's answers 404.
pub fn find(conn: &mut DbConn, organization_id: &str, member_id: &str) -> Result<Member, Error> {
    members::table
        .find(member_id)
        .filter(members::organization_id.eq(organization_id))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("no member `{member_id}` in this organization")))?
        .into_member()
}

/// The live (not deleted) member of the organization with this email, if any.
pub fn find_by_email(
    conn: &mut DbConn,
    organization_id: &str,
    email: &str,
) -> Result<Option<Member>, Error> {
    members::table
        .filter(members::organization_id.eq(organization_id))
        .filter(members::email_key.eq(lookup_key(email)))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?
        .map(MemberRow::into_member)
        .transpose()
}

/// The live members with this email, in every organization, by organization id.
pub fn find_all_by_email(conn: &mut DbConn, email: &str) -> Result<Vec<Member>, Error> {
    members::table
        .filter(members::email_key.eq(lookup_key(email)))
        .order(members::organization_id.asc())
        .select(MemberRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MemberRow::into_member)
        .collect()
}

/// Locks the member's row until the transaction ends (PostgreSQL `FOR UPDATE`); a writer that
/// reads, decides and writes then never works from a stale read. On SQLite the write
/// transaction already holds the database's only write lock.
pub fn lock(conn: &mut DbConn, member_id: &str) -> Result<(), Error> {
    if let DbConn::Postgres(pg) = conn {
        members::table
            .find(member_id)
            .select(members::member_id)
            .for_update()
            .execute(pg)?;
    }
    Ok(())
}

/// Inserts a new member and records `event_type` (`member.created`, …).
pub fn insert(
    conn: &mut DbConn,
    actor: &Actor,
    member: &Member,
    event_type: &'static str,
) -> Result<(), Error> {
    let row = MemberRow::from_member(member);
    let emails = email_rows(member);
    match conn {
        // One statement where it was three: the member, its emails (whose key refers to the
        // member: checked after the statement) and its connection's user count. An email a
        // one-row INSERT: the statement's text varies only with how many, so it is kept
        // prepared, for a user of the few emails IdPs send.
        DbConn::Postgres(pg) if emails.len() <= EMAILS_KEPT_PREPARED => {
            let mut before: Vec<Box<dyn QueryFragment<Pg>>> = emails
                .iter()
                .map(|email| {
                    Box::new(diesel::insert_into(member_emails::table).values(email))
                        as Box<dyn QueryFragment<Pg>>
                })
                .collect();
            if let Some(connection_id) = counted_by(member) {
                before.push(Box::new(user_count_change(
                    connection_id,
                    1,
                    &member.member_id,
                )));
            }
            let main = diesel::insert_into(members::table)
                .values(&row)
                .returning(members::member_id);
            Prepared(Together { before, main })
                .get_result::<String>(pg)
                .map_err(|error| uniqueness(error, member))?;
        }
        _ => {
            diesel::insert_into(members::table)
                .values(row)
                .execute(conn)
                .map_err(|error| uniqueness(error, member))?;
            index_emails(conn, None, member)?;
            count_users(conn, None, Some(member))?;
        }
    }
    record(actor, event_type, member, None, None)
}

/// Inserts new members of one organization and records `event_type` for each, in this
/// order, as `insert` would one after another, in a handful of multi-row statements (an
/// import). A taken userName or email fails them all with the conflict: run it in a savepoint
/// and fall back to `insert` one by one to learn which.
pub fn insert_many(
    conn: &mut DbConn,
    actor: &Actor,
    new_members: &[Member],
    event_type: &'static str,
) -> Result<(), Error> {
    let Some(first) = new_members.first() else {
        return Ok(());
    };
    let organization_id = &first.organization_id;
    if new_members
        .iter()
        .any(|member| &member.organization_id != organization_id)
    {
        return Err(Error::internal(
            "insert_many: members of more than one organization",
        ));
    }
    let rows: Vec<MemberRow> = new_members.iter().map(MemberRow::from_member).collect();
    // In chunks: a statement takes at most 65,535 parameters on PostgreSQL.
    for chunk in rows.chunks(1_000) {
        crate::on_backend!(conn, |inner| diesel::insert_into(members::table)
            .values(chunk)
            .execute(inner))
        .map_err(|error| match error {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Error::conflict(
                "taken",
                "a userName or an email of these members is already taken",
            ),
            other => other.into(),
        })?;
    }
    let emails: Vec<MemberEmailRow> = new_members.iter().flat_map(email_rows).collect();
    insert_email_rows(conn, &emails)?;
    let mut counted: Vec<(&str, i64)> = Vec::new();
    for connection_id in new_members.iter().filter_map(counted_by) {
        match counted.iter_mut().find(|(id, _)| *id == connection_id) {
            Some((_, count)) => *count += 1,
            None => counted.push((connection_id, 1)),
        }
    }
    let spread = new_members
        .first()
        .map_or("", |member| member.member_id.as_str());
    for (connection_id, count) in counted {
        add_users(conn, connection_id, count, spread)?;
    }
    let data: Vec<Value> = new_members.iter().map(Member::to_value).collect();
    let events = new_members
        .iter()
        .zip(data)
        .map(|(member, data)| Event {
            event_type,
            subject_id: &member.member_id,
            data,
            previous: None,
        })
        .collect();
    events::record_many(organization_id, actor, events)
}

/// The connection whose user count includes the member: its IdP's, unless it is deleted.
fn counted_by(member: &Member) -> Option<&str> {
    member
        .scim_registration
        .as_ref()
        .filter(|_| member.status != MemberStatus::Deleted)
        .map(|registration| registration.connection_id.as_str())
}

/// Keeps the connection's user count true across a change from `before` to `after`. Every
/// write takes its locks in one order: the member's row, a shard of its connection's count,
/// then, as its last statement, its organization's row (the events, `events::Outbox`).
fn count_users(
    conn: &mut DbConn,
    before: Option<&Member>,
    after: Option<&Member>,
) -> Result<(), Error> {
    let member_id = after
        .or(before)
        .map_or("", |member| member.member_id.as_str());
    for (connection_id, delta) in count_changes(before, after) {
        add_users(conn, connection_id, delta, member_id)?;
    }
    Ok(())
}

/// What [`count_users`] adds to which connection's count.
fn count_changes<'a>(before: Option<&'a Member>, after: Option<&'a Member>) -> Vec<(&'a str, i64)> {
    let (was, is) = (before.and_then(counted_by), after.and_then(counted_by));
    if was == is {
        return Vec::new();
    }
    [(was, -1), (is, 1)]
        .into_iter()
        .filter_map(|(connection_id, delta)| Some((connection_id?, delta)))
        .collect()
}

/// How many rows a connection's user count is kept in (migration 000013).
const USER_COUNT_SHARDS: u64 = 16;

/// Adds `delta` to the connection's user count, in the shard `member_id` falls in: writers
/// of different members mostly lock different rows, where one row made every create of a
/// connection wait for the one before to commit.
fn add_users(
    conn: &mut DbConn,
    connection_id: &str,
    delta: i64,
    member_id: &str,
) -> Result<(), Error> {
    crate::on_backend!(conn, |inner| user_count_change(
        connection_id,
        delta,
        member_id
    )
    .get_result::<i64>(inner))?;
    Ok(())
}

/// The statement of [`add_users`], returning the shard's new count; kept prepared.
fn user_count_change<'a>(
    connection_id: &'a str,
    delta: i64,
    member_id: &str,
) -> Prepared<impl QueryFragment<Pg> + QueryFragment<Sqlite> + Query<SqlType = BigInt> + QueryId + 'a>
{
    use crate::db::schema::scim_connection_user_counts as counts;
    // FNV-1a: a spread that does not change with the Rust release.
    let hash = member_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let shard = (hash % USER_COUNT_SHARDS) as i32;
    Prepared(
        diesel::insert_into(counts::table)
            .values((
                counts::connection_id.eq(connection_id),
                counts::shard.eq(shard),
                counts::user_count.eq(delta),
            ))
            .on_conflict((counts::connection_id, counts::shard))
            .do_update()
            .set(
                counts::user_count
                    .eq(counts::user_count + diesel::upsert::excluded(counts::user_count)),
            )
            .returning(counts::user_count),
    )
}

/// How many users the connection has (members not deleted), as `count_users` keeps it: at
/// most 16 rows read instead of a count over every user.
pub fn user_count(conn: &mut DbConn, connection_id: &str) -> Result<u64, Error> {
    use crate::db::schema::scim_connection_user_counts as counts;
    let shards: Vec<i64> = counts::table
        .filter(counts::connection_id.eq(connection_id))
        .select(counts::user_count)
        .load(conn)?;
    Ok(shards.iter().sum::<i64>().max(0) as u64)
}

/// Writes `after` over `before`, bumping the version, and records one event: the lifecycle
/// event when the status changed this way, else `event_type`; a deactivation's lists the
/// roles the member held (`roles_revoked`). Returns `before` untouched when nothing changed:
/// no write, no event, same version.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    before: &Member,
    after: Member,
    event_type: &'static str,
) -> Result<Member, Error> {
    let nothing = diesel::dsl::sql::<Nullable<Text>>("NULL");
    Ok(update_with(conn, actor, before, after, event_type, nothing)?.member)
}

/// A member as [`update_with`] wrote it, and what its UPDATE read beside the row.
pub struct Updated {
    pub member: Member,
    /// Read by the UPDATE statement itself, after the row's lock, so as the rest of the write
    /// finds them: the member's grants (and its organization's settings when the member is
    /// active after a change of status or email domain: its derived roles follow them), and
    /// the caller's column. `None` when nothing changed and no statement ran.
    pub read: Option<(member_roles::Known, Option<String>)>,
}

/// `update`, whose UPDATE also returns the member's grants, what re-deriving them needs, and
/// `column` (an expression on the `members` row: `scim_users` reads the user's groups for its
/// answer), each a read fewer. On PostgreSQL the UPDATE's snapshot is taken with the row's
/// lock held (the caller read it `FOR UPDATE`), so what it reads is as fresh as a statement
/// after it would find.
pub fn update_with(
    conn: &mut DbConn,
    actor: &Actor,
    before: &Member,
    mut after: Member,
    event_type: &'static str,
    column: SqlLiteral<Nullable<Text>>,
) -> Result<Updated, Error> {
    let Some(previous) = previous_values(&before.to_value(), &after.to_value()) else {
        return Ok(Updated {
            member: before.clone(),
            read: None,
        });
    };
    after.version = before.version + 1;
    after.updated_at = super::now();
    let written = MemberRow::from_member(&after);
    let unchanged_since_read = diesel::update(members::table.find(&before.member_id))
        .filter(members::version.eq(before.version));
    let grants = member_roles::grants_column(conn);
    let rederived = after.status == MemberStatus::Active
        && (before.status != after.status
            || email_domain(&before.email_address) != email_domain(&after.email_address));
    let settings = diesel::dsl::sql::<Nullable<Text>>(match rederived {
        true => {
            "(SELECT o.settings FROM organizations o \
             WHERE o.organization_id = members.organization_id)"
        }
        false => "NULL",
    });
    // On PostgreSQL the member's UPDATE statement takes along what the change does to its
    // email rows, when that is one of the usual (one address changed, or all gone), and to
    // its connection's user count: a round trip each. It returns how many rows an email
    // row's UPDATE found.
    let emails = match conn {
        DbConn::Postgres(_) => emails_change(before, &after),
        DbConn::Sqlite(_) => EmailsChange::Other,
    };
    let emails_updated = diesel::dsl::sql::<Nullable<BigInt>>(match emails {
        // `Together` names its first statement w0.
        EmailsChange::OneInPlace(_) => "(SELECT count(*) FROM w0)",
        _ => "NULL",
    });
    type Read = (Option<String>, Option<String>, Option<String>, Option<i64>);
    let row: Option<Read> = match conn {
        // Every column, in one statement kept prepared: PostgreSQL writes a new entry in
        // every index of the row whatever the SET list, since `updated_at` is indexed and no
        // update of a member can be HOT; and it would plan a statement of varying text
        // afresh every time. It returns the reads too: a round trip each.
        DbConn::Postgres(pg) => {
            let mut parts: Vec<Box<dyn QueryFragment<Pg>>> = Vec::new();
            match &emails {
                EmailsChange::OneInPlace(row) => parts.push(Box::new(email_row_change(row))),
                EmailsChange::AllGone => parts.push(Box::new(diesel::delete(
                    member_emails::table.filter(member_emails::member_id.eq(&before.member_id)),
                ))),
                EmailsChange::Unchanged | EmailsChange::Other => {}
            }
            for (connection_id, delta) in count_changes(Some(before), Some(&after)) {
                parts.push(Box::new(user_count_change(
                    connection_id,
                    delta,
                    &before.member_id,
                )));
            }
            let main = unchanged_since_read
                .set(MemberChanges::between(None, &written))
                .returning((grants, settings, column, emails_updated));
            Prepared(Together {
                before: parts,
                main,
            })
            .get_result(pg)
            .optional()
        }
        // The columns that change: SQLite rewrites the index entries of every column an
        // UPDATE sets. Its SET list varies, so diesel keeps one statement per list, and one
        // with a literal (the reads) never: SQLite would compile the UPDATE at every PATCH
        // (20% of `patch`). It reads after, in a statement of its own, kept; in-process,
        // that costs no round trip.
        DbConn::Sqlite(sqlite) => unchanged_since_read
            .set(MemberChanges::between(
                Some(&MemberRow::from_member(before)),
                &written,
            ))
            .execute(sqlite)
            .and_then(|updated| match updated {
                0 => Ok(None),
                _ => Prepared(members::table.find(&before.member_id).select((
                    grants,
                    settings,
                    column,
                    emails_updated,
                )))
                .get_result(sqlite)
                .map(Some),
            }),
    }
    .map_err(|error| uniqueness(error, &after))?;
    let Some((grants, settings, column, emails_updated)) = row else {
        // Another writer got in between our read and this write (PostgreSQL READ COMMITTED).
        // The statement's email update, if any, goes with the transaction this fails.
        return Err(Error::PreconditionFailed(before.version));
    };
    let grants = member_roles::parse_grants(grants)?;
    let settings = settings
        .map(|stored| organizations::parse_settings(&after.organization_id, &stored))
        .transpose()?;
    match emails {
        // Not there to update (as `index_emails` allows for).
        EmailsChange::OneInPlace(row) if emails_updated == Some(0) => {
            insert_email_rows(conn, std::slice::from_ref(&row))?
        }
        EmailsChange::Other => index_emails(conn, Some(before), &after)?,
        EmailsChange::OneInPlace(_) | EmailsChange::AllGone | EmailsChange::Unchanged => {}
    }
    if let DbConn::Sqlite(_) = conn {
        count_users(conn, Some(before), Some(&after))?;
    }
    // A status change is the news of a plain update; an adoption (member.scim_linked) stays
    // one, its previous values showing the status it had.
    let event_type = match (event_type, before.status, after.status) {
        ("member.updated", from, MemberStatus::Inactive) if from != MemberStatus::Inactive => {
            "member.deactivated"
        }
        ("member.updated", MemberStatus::Inactive, MemberStatus::Active) => "member.reactivated",
        (_, from, MemberStatus::Deleted) if from != MemberStatus::Deleted => "member.deleted",
        _ => event_type,
    };
    // Deactivation revokes every role (group, email-domain and direct, as Stytch does): its
    // event lists them, as held until now.
    let details = match event_type {
        "member.deactivated" => Some((
            "roles_revoked",
            serde_json::to_value(&grants).map_err(Error::internal)?,
        )),
        _ => None,
    };
    let previous = (event_type != "member.deleted").then_some(previous);
    record(actor, event_type, &after, previous, details)?;
    let known = member_roles::Known {
        grants: Some(grants),
        groups: None,
        settings,
    };
    Ok(Updated {
        member: after,
        read: Some((known, column)),
    })
}

/// Records an event about the member outside an insert or update (`member.invited`), with
/// `details` added to its data.
pub fn record_event(
    actor: &Actor,
    event_type: &'static str,
    member: &Member,
    details: Option<(&'static str, Value)>,
) -> Result<(), Error> {
    record(actor, event_type, member, None, details)
}

fn record(
    actor: &Actor,
    event_type: &'static str,
    member: &Member,
    previous: Option<Value>,
    details: Option<(&'static str, Value)>,
) -> Result<(), Error> {
    let mut data = if event_type == "member.deleted" {
        serde_json::json!({ "member_id": member.member_id })
    } else {
        member.to_value()
    };
    if let (Some((key, value)), Value::Object(object)) = (details, &mut data) {
        object.insert(key.to_string(), value);
    }
    events::record(
        &member.organization_id,
        actor,
        Event {
            event_type,
            subject_id: &member.member_id,
            data,
            previous,
        },
    )?;
    Ok(())
}

/// A unique index refused the write: say which value is taken.
fn uniqueness(error: diesel::result::Error, member: &Member) -> Error {
    use diesel::result::{DatabaseErrorKind, Error as Diesel};
    match error {
        Diesel::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let detail = format!(
                "{} {}",
                info.message(),
                info.constraint_name().unwrap_or_default()
            );
            if detail.contains("user_name") {
                let user_name = member
                    .scim_registration
                    .as_ref()
                    .map_or("", |s| s.user_name.as_str());
                Error::conflict(
                    "user_name_taken",
                    format!("userName \"{user_name}\" is already taken by another user of this connection"),
                )
            } else {
                Error::conflict(
                    "email_taken",
                    format!(
                        "the email {} already belongs to another member of this organization",
                        member.email_address
                    ),
                )
            }
        }
        other => other.into(),
    }
}
