//! The rules of scimd and their persistence. Every path that changes data (SCIM, the
//! management API, the CLI) calls these functions inside `db::write`, so the same rules and
//! the same events apply whichever way a change arrives.

pub mod connections;
pub mod discovery;
pub mod email;
pub mod events;
pub mod filter_sql;
pub mod member_roles;
pub mod members;
pub mod organizations;
pub mod provisioning;
pub mod roles;
pub mod scim_groups;
pub mod scim_users;
pub mod search;
pub mod webhooks;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// The current time as stored: UTC, whole microseconds (what PostgreSQL keeps), so a value
/// reads back exactly as it was written on both backends.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// Renders a stored timestamp as RFC 3339 in UTC (`2026-11-23T12:00:00.123456Z`).
pub fn rfc3339(at: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(at, Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Serde adapter for timestamps in API bodies.
pub mod timestamp {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*at))
    }
}

/// Who made a change, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub source: Source,
    /// The JWT subject, the SCIM connection id, or `cli`.
    pub id: String,
}

impl Actor {
    pub fn cli() -> Self {
        Actor {
            source: Source::Cli,
            id: "cli".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Scim,
    Api,
    Jit,
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scim => "scim",
            Source::Api => "api",
            Source::Jit => "jit",
            Source::Cli => "cli",
        }
    }
}

/// `If-Match`: fails with 412 unless `current` is one of the versions the client accepts
/// (`None`: any).
pub fn check_version(current: i64, expected: Option<&[i64]>) -> Result<(), crate::error::Error> {
    match expected {
        Some(versions) if !versions.contains(&current) => {
            Err(crate::error::Error::PreconditionFailed(current))
        }
        _ => Ok(()),
    }
}

/// A place in creation order: (created_at, id), the order SCIM lists page through.
pub type Position = (NaiveDateTime, String);

/// Rows read per batch when a filter must be evaluated in Rust.
pub const SCAN_BATCH: i64 = 500;

/// Which part of a list a request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// RFC 7644 §3.4.2.4: `count` items from the 1-based `start_index`.
    Index { start_index: u64, count: u64 },
    /// RFC 9865: `count` items after a position (`None`: from the start).
    After {
        position: Option<Position>,
        count: u64,
    },
}

/// One page of a list: its items, how many match in all, and, in cursor paging, where the
/// next page starts.
#[derive(Debug)]
pub struct Listed<T> {
    pub total: u64,
    pub items: Vec<T>,
    pub next: Option<Position>,
}

/// Whether a scan goes on after a row.
enum Flow {
    Continue,
    Stop,
}

/// Reads rows in creation order, a batch at a time, each batch resuming after the last row
/// of the one before, from `start` until a batch comes back short or `visit` stops. Memory
/// stays one batch, whatever the table's size.
fn scan_in_order<T>(
    conn: &mut crate::db::DbConn,
    start: Option<Position>,
    fetch: &mut impl FnMut(
        &mut crate::db::DbConn,
        Option<&Position>,
    ) -> Result<Vec<T>, crate::error::Error>,
    position: &impl Fn(&T) -> Position,
    mut visit: impl FnMut(&mut crate::db::DbConn, T) -> Result<Flow, crate::error::Error>,
) -> Result<(), crate::error::Error> {
    let mut after = start;
    loop {
        let batch = fetch(conn, after.as_ref())?;
        let exhausted = (batch.len() as i64) < SCAN_BATCH;
        for row in batch {
            after = Some(position(&row));
            if let Flow::Stop = visit(conn, row)? {
                return Ok(());
            }
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// The rows of a filtered list that `window` asks for, found by scanning in creation order
/// and keeping those `matches` accepts; every match is counted for `totalResults`. In cursor
/// paging the page itself is read from the cursor on, and the scan stops once it is full.
pub fn scan_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    mut fetch: impl FnMut(
        &mut crate::db::DbConn,
        Option<&Position>,
    ) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    mut matches: impl FnMut(&mut crate::db::DbConn, &T) -> Result<bool, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    let mut total = 0u64;
    let mut items = Vec::new();
    match window {
        Window::Index { start_index, count } => {
            let skip = start_index.saturating_sub(1);
            scan_in_order(conn, None, &mut fetch, &position, |conn, row| {
                if matches(conn, &row)? {
                    total += 1;
                    if total > skip && (items.len() as u64) < *count {
                        items.push(row);
                    }
                }
                Ok(Flow::Continue)
            })?;
            Ok(Listed {
                total,
                items,
                next: None,
            })
        }
        Window::After {
            position: start,
            count,
        } => {
            scan_in_order(conn, None, &mut fetch, &position, |conn, row| {
                total += u64::from(matches(conn, &row)?);
                Ok(Flow::Continue)
            })?;
            page_after(conn, total, start.clone(), *count, fetch, position, matches)
        }
    }
}

/// The page `window` asks for of an unfiltered list of `total` rows: an index page by
/// `offset_page` (skip, count), a cursor page by the keyset `fetch`.
pub fn unfiltered_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    total: u64,
    fetch: impl FnMut(&mut crate::db::DbConn, Option<&Position>) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    offset_page: impl FnOnce(&mut crate::db::DbConn, u64, u64) -> Result<Vec<T>, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    match window {
        Window::Index { start_index, count } => Ok(Listed {
            total,
            items: offset_page(conn, start_index.saturating_sub(1), *count)?,
            next: None,
        }),
        Window::After {
            position: start,
            count,
        } => page_after(
            conn,
            total,
            start.clone(),
            *count,
            fetch,
            position,
            |_, _| Ok(true),
        ),
    }
}

/// A cursor page: the first `count` rows `matches` accepts after `start`. One row more is
/// read to learn whether a next page exists.
pub fn page_after<T>(
    conn: &mut crate::db::DbConn,
    total: u64,
    start: Option<Position>,
    count: u64,
    mut fetch: impl FnMut(
        &mut crate::db::DbConn,
        Option<&Position>,
    ) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    mut matches: impl FnMut(&mut crate::db::DbConn, &T) -> Result<bool, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    let mut items = Vec::new();
    scan_in_order(conn, start, &mut fetch, &position, |conn, row| {
        if matches(conn, &row)? {
            items.push(row);
        }
        Ok(if items.len() as u64 > count {
            Flow::Stop
        } else {
            Flow::Continue
        })
    })?;
    let next = if items.len() as u64 > count {
        items.truncate(count as usize);
        items.last().map(&position)
    } else {
        None
    };
    Ok(Listed { total, items, next })
}

/// The most resources a sort evaluated in Rust (an attribute without a column, or a filtered
/// list) considers; more is `tooMany`. Sorts by a column of an unfiltered list are done by
/// the database, at any size.
pub const MAX_SORTED: usize = 20_000;

/// The page of a sorted list that `window` asks for (index paging only): every match is read
/// in creation order, then sorted by `key`, ties keeping creation order.
pub fn sorted_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    sort: &crate::scim::sort::Sort,
    mut fetch: impl FnMut(
        &mut crate::db::DbConn,
        Option<&Position>,
    ) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    mut matches: impl FnMut(&mut crate::db::DbConn, &T) -> Result<bool, crate::error::Error>,
    mut key: impl FnMut(
        &mut crate::db::DbConn,
        &T,
    ) -> Result<crate::scim::sort::SortKey, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    use crate::error::{Error, ScimType};
    let Window::Index { start_index, count } = window else {
        return Err(unsorted_cursor());
    };
    let mut rows = Vec::new();
    scan_in_order(conn, None, &mut fetch, &position, |conn, row| {
        if matches(conn, &row)? {
            if rows.len() == MAX_SORTED {
                return Err(Error::scim(
                    ScimType::TooMany,
                    format!(
                        "sorting by {} considers at most {MAX_SORTED} resources here: narrow the \
                         filter, or sort an unfiltered list by id, userName (displayName for \
                         groups), externalId, meta.created or meta.lastModified",
                        sort.path
                    ),
                ));
            }
            let key = key(conn, &row)?;
            rows.push((key, row));
        }
        Ok(Flow::Continue)
    })?;
    rows.sort_by(|a, b| a.0.compare(&b.0, sort));
    let total = rows.len() as u64;
    let items = rows
        .into_iter()
        .skip(start_index.saturating_sub(1) as usize)
        .take(*count as usize)
        .map(|(_, row)| row)
        .collect();
    Ok(Listed {
        total,
        items,
        next: None,
    })
}

/// The page `window` asks for of a collection (Users or Groups): unfiltered and unsorted, or
/// sorted by a column, by the database (`count_all` and `offset_page`, which answers `None`
/// for a sort it cannot do); otherwise by scanning in creation order (`fetch`), keeping what
/// `filter` matches and sorting in memory when asked. `render` gives the resource a filter or
/// a sort looks at.
#[allow(clippy::too_many_arguments)]
pub fn list_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    filter: Option<&crate::scim::filter::Filter>,
    sort: Option<&crate::scim::sort::Sort>,
    rules: &dyn crate::scim::filter::AttributeRules,
    count_all: impl Fn(&mut crate::db::DbConn) -> Result<u64, crate::error::Error>,
    offset_page: impl Fn(
        &mut crate::db::DbConn,
        Option<&crate::scim::sort::Sort>,
        u64,
        u64,
    ) -> Result<Option<Vec<T>>, crate::error::Error>,
    fetch: impl FnMut(&mut crate::db::DbConn, Option<&Position>) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    render: impl Fn(&mut crate::db::DbConn, &T) -> Result<serde_json::Value, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    if filter.is_none() {
        match (sort, window) {
            (None, _) => {
                let total = count_all(conn)?;
                return unfiltered_window(
                    conn,
                    window,
                    total,
                    fetch,
                    position,
                    |conn, skip, count| {
                        Ok(offset_page(conn, None, skip, count)?.unwrap_or_default())
                    },
                );
            }
            (Some(_), Window::After { .. }) => return Err(unsorted_cursor()),
            (Some(sort), Window::Index { start_index, count }) => {
                let skip = start_index.saturating_sub(1);
                if let Some(items) = offset_page(conn, Some(sort), skip, *count)? {
                    return Ok(Listed {
                        total: count_all(conn)?,
                        items,
                        next: None,
                    });
                }
            }
        }
    }
    let matches = |conn: &mut crate::db::DbConn, item: &T| match filter {
        Some(filter) => Ok(filter.matches(&render(conn, item)?, rules)),
        None => Ok(true),
    };
    match sort {
        Some(sort) => sorted_window(
            conn,
            window,
            sort,
            fetch,
            position,
            matches,
            |conn, item| {
                Ok(crate::scim::sort::SortKey::of(
                    &render(conn, item)?,
                    sort,
                    rules,
                ))
            },
        ),
        None => scan_window(conn, window, fetch, position, matches),
    }
}

/// Sorting and cursors do not mix: a cursor is a place in creation order.
pub fn unsorted_cursor() -> crate::error::Error {
    crate::error::Error::scim(
        crate::error::ScimType::InvalidValue,
        "sortBy works with startIndex paging; cursor paging follows creation order",
    )
}

/// Orders a boxed query by `key` the way `descending` says, then by the ties, ascending.
#[macro_export]
macro_rules! order_by {
    ($query:expr, $descending:expr, $key:expr, $($tie:expr),+) => {
        if $descending {
            $query.order(($key.desc(), $($tie.asc()),+))
        } else {
            $query.order(($key.asc(), $($tie.asc()),+))
        }
    };
}

/// A cursor is the position of the last item of a page, opaque to clients.
pub fn encode_cursor((created_at, id): &Position) -> String {
    use base64::Engine;
    let micros = created_at.and_utc().timestamp_micros();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{micros}:{id}"))
}

/// The position a cursor names; `None` for anything this server did not hand out.
pub fn decode_cursor(cursor: &str) -> Option<Position> {
    use base64::Engine;
    let text = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?,
    )
    .ok()?;
    let (micros, id) = text.split_once(':')?;
    let created_at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    (!id.is_empty()).then(|| (created_at, id.to_string()))
}

/// New identifiers have Stytch's shape: a kind prefix and a random UUID.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
