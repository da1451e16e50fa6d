//! Member and organization search, in Stytch's query shape:
//! `{"operator": "AND"|"OR", "operands": [{"filter_name": …, "filter_value": …}]}`.
//! Every filter becomes a parameterised SQL condition; results page by id with a cursor.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use serde::Deserialize;

use super::member_roles::{self, Grant};
use super::members::{lookup_key, Member, MemberRow, MemberStatus};
use super::organizations::{self, Organization};
use super::roles;
use crate::db::schema::{
    member_roles as member_roles_table, members, organization_domains,
    organizations as organizations_table,
};
use crate::db::{lower, DbConn};
use crate::error::Error;

type Backend = <DbConn as diesel::Connection>::Backend;
type Condition<T> = Box<dyn BoxableExpression<T, Backend, SqlType = Nullable<Bool>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Operator {
    #[default]
    #[serde(rename = "AND")]
    And,
    #[serde(rename = "OR")]
    Or,
}

/// A query over items of kind `F` (one filter each operand).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query<F> {
    pub operator: Operator,
    pub operands: Vec<F>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "filter_name",
    content = "filter_value",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum MemberFilter {
    MemberIds(Vec<String>),
    MemberEmails(Vec<String>),
    MemberEmailFuzzy(String),
    MemberEmailDomains(Vec<String>),
    Statuses(Vec<MemberStatus>),
    Roles(Vec<String>),
    IsBreakglass(bool),
    ScimConnectionIds(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "filter_name",
    content = "filter_value",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum OrganizationFilter {
    OrganizationIds(Vec<String>),
    OrganizationSlugs(Vec<String>),
    OrganizationNameFuzzy(String),
    AllowedDomains(Vec<String>),
    MemberEmails(Vec<String>),
}

/// A list filter needs at least one value; a fuzzy one at least one character.
fn non_empty<T>(name: &str, values: &[T]) -> Result<(), Error> {
    if values.is_empty() {
        return Err(Error::invalid(
            "invalid_query",
            format!("filter {name}: filter_value must list at least one value"),
        ));
    }
    Ok(())
}

/// `%text%` for LIKE, lowercased, with LIKE's wildcards in the text escaped.
fn contains_pattern(name: &str, text: &str) -> Result<String, Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid(
            "invalid_query",
            format!("filter {name}: filter_value must not be empty"),
        ));
    }
    Ok(crate::db::contains_pattern(&text.to_lowercase()))
}

/// Joins conditions with the query's operator (a macro: diesel's boolean operators on boxed
/// expressions resolve per table, not generically).
macro_rules! combine {
    ($operator:expr, $conditions:expr) => {
        $conditions.into_iter().reduce(|acc, next| match $operator {
            Operator::And => Box::new(acc.and(next)),
            Operator::Or => Box::new(acc.or(next)),
        })
    };
}

fn member_condition(filter: &MemberFilter) -> Result<Condition<members::table>, Error> {
    Ok(match filter {
        MemberFilter::MemberIds(ids) => {
            non_empty("member_ids", ids)?;
            Box::new(members::member_id.eq_any(ids.clone()).nullable())
        }
        MemberFilter::MemberEmails(emails) => {
            non_empty("member_emails", emails)?;
            let keys: Vec<String> = emails.iter().map(|e| lookup_key(e.trim())).collect();
            Box::new(lower(members::email_address).eq_any(keys).nullable())
        }
        MemberFilter::MemberEmailFuzzy(text) => {
            let pattern = contains_pattern("member_email_fuzzy", text)?;
            Box::new(
                lower(members::email_address)
                    .like(pattern)
                    .escape('\\')
                    .nullable(),
            )
        }
        MemberFilter::MemberEmailDomains(domains) => {
            non_empty("member_email_domains", domains)?;
            let domains: Vec<String> = domains.iter().map(|d| d.trim().to_lowercase()).collect();
            Box::new(members::email_domain.eq_any(domains).nullable())
        }
        MemberFilter::Statuses(statuses) => {
            non_empty("statuses", statuses)?;
            let statuses: Vec<&'static str> = statuses.iter().map(|s| s.as_str()).collect();
            Box::new(members::status.eq_any(statuses).nullable())
        }
        MemberFilter::Roles(role_ids) => {
            non_empty("roles", role_ids)?;
            let holders = member_roles_table::table
                .filter(member_roles_table::role_id.eq_any(role_ids.clone()))
                .select(member_roles_table::member_id);
            let granted = members::member_id.eq_any(holders).nullable();
            if role_ids.iter().any(|role| role == roles::MEMBER) {
                // Every active member holds `member`.
                Box::new(granted.or(members::status.eq(MemberStatus::Active.as_str()).nullable()))
            } else {
                Box::new(granted)
            }
        }
        MemberFilter::IsBreakglass(value) => Box::new(members::is_breakglass.eq(*value).nullable()),
        MemberFilter::ScimConnectionIds(ids) => {
            non_empty("scim_connection_ids", ids)?;
            Box::new(members::scim_connection_id.eq_any(ids.clone()))
        }
    })
}

/// Where a member search looks: one organization, several, or all (an admin's search).
pub enum Scope {
    Organizations(Vec<String>),
    All,
}

/// A page of members.
pub struct Found<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// The last id of this page when more follow.
    pub next: Option<String>,
}

/// The members matching `query` in `scope`, in id order after `after`. Deleted members are
/// left out unless the query asks for the `deleted` status.
pub fn members(
    conn: &mut DbConn,
    scope: &Scope,
    query: Option<&Query<MemberFilter>>,
    after: Option<&str>,
    limit: i64,
) -> Result<Found<Member>, Error> {
    let asks_deleted = query.is_some_and(|query| {
        query.operands.iter().any(|filter| {
            matches!(filter, MemberFilter::Statuses(statuses) if statuses.contains(&MemberStatus::Deleted))
        })
    });
    let base = || -> Result<members::BoxedQuery<'static, Backend>, Error> {
        let mut base = members::table.into_boxed();
        if let Scope::Organizations(ids) = scope {
            base = base.filter(members::organization_id.eq_any(ids.clone()));
        }
        if !asks_deleted {
            base = base.filter(members::status.ne(MemberStatus::Deleted.as_str()));
        }
        if let Some(query) = query {
            let conditions = query
                .operands
                .iter()
                .map(member_condition)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(condition) = combine!(query.operator, conditions) {
                base = base.filter(condition);
            }
        }
        Ok(base)
    };
    let total: i64 = base()?.count().get_result(conn)?;
    let mut page = base()?
        .order(members::member_id.asc())
        .limit(limit + 1)
        .select(MemberRow::as_select());
    if let Some(after) = after {
        page = page.filter(members::member_id.gt(after.to_string()));
    }
    let mut items = page
        .load(conn)?
        .into_iter()
        .map(MemberRow::into_member)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|member| member.member_id.clone())
    });
    Ok(Found {
        items,
        total,
        next: next.flatten(),
    })
}

/// The grants of each of these members, by member id, in one query.
pub fn grants_of(
    conn: &mut DbConn,
    found: &[Member],
) -> Result<HashMap<String, Vec<Grant>>, Error> {
    let ids: Vec<&str> = found.iter().map(|m| m.member_id.as_str()).collect();
    let mut by_member: HashMap<String, Vec<Grant>> = HashMap::new();
    let rows: Vec<(String, String, String, String)> = member_roles_table::table
        .filter(member_roles_table::member_id.eq_any(ids))
        .select((
            member_roles_table::member_id,
            member_roles_table::role_id,
            member_roles_table::source,
            member_roles_table::source_ref,
        ))
        .load(conn)?;
    for (member_id, role_id, source, source_ref) in rows {
        by_member.entry(member_id).or_default().push(Grant {
            role_id,
            source,
            source_ref,
        });
    }
    Ok(by_member)
}

fn organization_condition(
    filter: &OrganizationFilter,
) -> Result<Condition<organizations_table::table>, Error> {
    Ok(match filter {
        OrganizationFilter::OrganizationIds(ids) => {
            non_empty("organization_ids", ids)?;
            Box::new(
                organizations_table::organization_id
                    .eq_any(ids.clone())
                    .nullable(),
            )
        }
        OrganizationFilter::OrganizationSlugs(slugs) => {
            non_empty("organization_slugs", slugs)?;
            let slugs: Vec<String> = slugs
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            Box::new(organizations_table::slug.eq_any(slugs).nullable())
        }
        OrganizationFilter::OrganizationNameFuzzy(text) => {
            let pattern = contains_pattern("organization_name_fuzzy", text)?;
            Box::new(
                lower(organizations_table::name)
                    .like(pattern)
                    .escape('\\')
                    .nullable(),
            )
        }
        OrganizationFilter::AllowedDomains(domains) => {
            non_empty("allowed_domains", domains)?;
            let domains: Vec<String> = domains.iter().map(|d| d.trim().to_lowercase()).collect();
            let claiming = organization_domains::table
                .filter(organization_domains::domain.eq_any(domains))
                .select(organization_domains::organization_id);
            Box::new(
                organizations_table::organization_id
                    .eq_any(claiming)
                    .nullable(),
            )
        }
        OrganizationFilter::MemberEmails(emails) => {
            non_empty("member_emails", emails)?;
            let keys: Vec<Option<String>> =
                emails.iter().map(|e| Some(lookup_key(e.trim()))).collect();
            let with_member = members::table
                .filter(members::email_key.eq_any(keys))
                .select(members::organization_id);
            Box::new(
                organizations_table::organization_id
                    .eq_any(with_member)
                    .nullable(),
            )
        }
    })
}

/// The organizations matching `query` (within `only` for an `org:` scoped caller), in id
/// order after `after`.
pub fn organizations(
    conn: &mut DbConn,
    only: Option<&str>,
    query: Option<&Query<OrganizationFilter>>,
    after: Option<&str>,
    limit: i64,
) -> Result<Found<Organization>, Error> {
    let base = || -> Result<organizations_table::BoxedQuery<'static, Backend>, Error> {
        let mut base = organizations_table::table.into_boxed();
        if let Some(only) = only {
            base = base.filter(organizations_table::organization_id.eq(only.to_string()));
        }
        if let Some(query) = query {
            let conditions = query
                .operands
                .iter()
                .map(organization_condition)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(condition) = combine!(query.operator, conditions) {
                base = base.filter(condition);
            }
        }
        Ok(base)
    };
    let total: i64 = base()?.count().get_result(conn)?;
    let mut page = base()?
        .order(organizations_table::organization_id.asc())
        .limit(limit + 1)
        .select(organizations_table::organization_id);
    if let Some(after) = after {
        page = page.filter(organizations_table::organization_id.gt(after.to_string()));
    }
    let ids: Vec<String> = page.load(conn)?;
    let more = ids.len() as i64 > limit;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids.iter().take(limit as usize) {
        items.push(organizations::find(conn, id)?);
    }
    let next = more
        .then(|| {
            items
                .last()
                .map(|o: &Organization| o.organization_id.clone())
        })
        .flatten();
    Ok(Found { items, total, next })
}

/// The member's roles with their sources, from already loaded grants.
pub fn roles_view(member: &Member, grants: Vec<Grant>) -> serde_json::Value {
    member_roles::roles_view(member.status, grants)
}
