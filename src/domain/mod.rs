//! The rules of scimd and their persistence. Every path that changes data (SCIM, the
//! management API, the CLI) calls these functions inside `db::write`, so the same rules and
//! the same events apply whichever way a change arrives.

pub mod connections;
pub mod discovery;
pub mod email;
pub mod events;
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
