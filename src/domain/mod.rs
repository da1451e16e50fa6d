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
    /// RFC 9865: `count` items on one side of a place in creation order.
    Cursor { seek: Seek, count: u64 },
}

/// Where a cursor page lies (RFC 9865): the items right after a place in creation order
/// (from the start when `None`), or, for `previousCursor`, the items right before one (up to
/// the end when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seek {
    After(Option<Position>),
    Before(Option<Position>),
}

/// Which way a keyset read goes through creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    fn reversed(self) -> Self {
        match self {
            Direction::Forward => Direction::Backward,
            Direction::Backward => Direction::Forward,
        }
    }
}

/// One keyset read: at most `limit` rows strictly beyond `from` in `direction` (from the
/// first or the last row when `None`), nearest first. See [`keyset_read!`](crate::keyset_read).
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    pub from: Option<&'a Position>,
    pub direction: Direction,
    pub limit: i64,
}

/// One page of a list: its items, how many match in all, and, in cursor paging, where the
/// pages beside it lie (`None` where there is none).
#[derive(Debug)]
pub struct Listed<T> {
    pub total: u64,
    pub items: Vec<T>,
    pub next: Option<Seek>,
    pub previous: Option<Seek>,
}

impl<T> Listed<T> {
    /// An index page: the neighbours are found by startIndex, not named.
    fn indexed(total: u64, items: Vec<T>) -> Self {
        Listed {
            total,
            items,
            next: None,
            previous: None,
        }
    }
}

/// Whether a scan goes on after a row.
enum Flow {
    Continue,
    Stop,
}

/// Reads rows by creation order in `direction`, `batch` at a time, each read resuming beyond
/// the last row of the one before, from `start` until a read comes back short or `visit`
/// stops. Memory stays one batch, whatever the table's size.
fn scan_in_order<T>(
    conn: &mut crate::db::DbConn,
    start: Option<Position>,
    direction: Direction,
    batch: i64,
    fetch: &mut impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
    position: &impl Fn(&T) -> Position,
    mut visit: impl FnMut(&mut crate::db::DbConn, T) -> Result<Flow, crate::error::Error>,
) -> Result<(), crate::error::Error> {
    let mut from = start;
    loop {
        let rows = fetch(
            conn,
            Read {
                from: from.as_ref(),
                direction,
                limit: batch,
            },
        )?;
        let exhausted = (rows.len() as i64) < batch;
        for row in rows {
            from = Some(position(&row));
            if let Flow::Stop = visit(conn, row)? {
                return Ok(());
            }
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// Reads every row in creation order, a batch at a time (see [`scan_in_order`]).
fn scan_all<T>(
    conn: &mut crate::db::DbConn,
    fetch: &mut impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
    position: &impl Fn(&T) -> Position,
    visit: impl FnMut(&mut crate::db::DbConn, T) -> Result<Flow, crate::error::Error>,
) -> Result<(), crate::error::Error> {
    scan_in_order(
        conn,
        None,
        Direction::Forward,
        SCAN_BATCH,
        fetch,
        position,
        visit,
    )
}

/// The rows of a filtered list that `window` asks for, found by scanning in creation order
/// and keeping those `matches` accepts; every match is counted for `totalResults`. In cursor
/// paging the page itself is read from the cursor on, and the scan stops once it is full.
pub fn scan_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    mut fetch: impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    mut matches: impl FnMut(&mut crate::db::DbConn, &T) -> Result<bool, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    let mut total = 0u64;
    let mut items = Vec::new();
    match window {
        Window::Index { start_index, count } => {
            let skip = start_index.saturating_sub(1);
            scan_all(conn, &mut fetch, &position, |conn, row| {
                if matches(conn, &row)? {
                    total += 1;
                    if total > skip && (items.len() as u64) < *count {
                        items.push(row);
                    }
                }
                Ok(Flow::Continue)
            })?;
            Ok(Listed::indexed(total, items))
        }
        Window::Cursor { seek, count } => {
            scan_all(conn, &mut fetch, &position, |conn, row| {
                total += u64::from(matches(conn, &row)?);
                Ok(Flow::Continue)
            })?;
            let page = CursorPage {
                total,
                count: *count,
                exact: false,
            };
            page.read(conn, seek, fetch, position, matches)
        }
    }
}

/// The page `window` asks for of an unfiltered list of `total` rows: an index page by
/// `offset_page` (skip, count), a cursor page by the keyset `fetch`.
pub fn unfiltered_window<T>(
    conn: &mut crate::db::DbConn,
    window: &Window,
    total: u64,
    fetch: impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    offset_page: impl FnOnce(&mut crate::db::DbConn, u64, u64) -> Result<Vec<T>, crate::error::Error>,
) -> Result<Listed<T>, crate::error::Error> {
    match window {
        Window::Index { start_index, count } => Ok(Listed::indexed(
            total,
            offset_page(conn, start_index.saturating_sub(1), *count)?,
        )),
        Window::Cursor { seek, count } => {
            let page = CursorPage {
                total,
                count: *count,
                exact: true,
            };
            page.read(conn, seek, fetch, position, |_, _| Ok(true))
        }
    }
}

/// A cursor page of `count` items of a list `total` long. `exact` when every row read
/// matches (SQL answered the filter), so that a read of `count + 1` rows fills the page.
struct CursorPage {
    total: u64,
    count: u64,
    exact: bool,
}

impl CursorPage {
    /// The `count` rows `matches` accepts nearest `seek`'s place on its side, in creation
    /// order, and the cursors to the pages beside them: one more match is looked for to learn
    /// whether a page lies beyond, and one on the other side whether a page lies behind.
    fn read<T>(
        &self,
        conn: &mut crate::db::DbConn,
        seek: &Seek,
        mut fetch: impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
        position: impl Fn(&T) -> Position,
        mut matches: impl FnMut(&mut crate::db::DbConn, &T) -> Result<bool, crate::error::Error>,
    ) -> Result<Listed<T>, crate::error::Error> {
        let (from, direction) = match seek {
            Seek::After(from) => (from, Direction::Forward),
            Seek::Before(from) => (from, Direction::Backward),
        };
        let mut items = Vec::new();
        if self.count > 0 {
            let batch = self.batch(self.count + 1);
            scan_in_order(
                conn,
                from.clone(),
                direction,
                batch,
                &mut fetch,
                &position,
                |conn, row| {
                    if matches(conn, &row)? {
                        items.push(row);
                    }
                    Ok(if items.len() as u64 > self.count {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    })
                },
            )?;
        }
        let beyond = items.len() as u64 > self.count;
        items.truncate(self.count as usize);
        // Nearest first was the order of the reading; the page is in creation order.
        let (last, nearest) = (items.last().map(&position), items.first().map(&position));
        let behind = match (from, self.count) {
            // A page from the start (or to the end) has nothing behind it; neither does a
            // page of nothing.
            (None, _) | (_, 0) => false,
            // Behind the page: past its nearest item, or, on an empty page, past its place
            // (which the list's far end stands for, so that the page behind is the whole
            // way back).
            (Some(_), _) => {
                let batch = self.batch(1);
                let mut found = false;
                scan_in_order(
                    conn,
                    nearest.clone(),
                    direction.reversed(),
                    batch,
                    &mut fetch,
                    &position,
                    |conn, row| {
                        found = matches(conn, &row)?;
                        Ok(if found { Flow::Stop } else { Flow::Continue })
                    },
                )?;
                found
            }
        };
        let (far, near) = (beyond.then(|| last.clone()), behind.then_some(nearest));
        Ok(match direction {
            Direction::Forward => Listed {
                total: self.total,
                items,
                next: far.map(Seek::After),
                previous: near.map(Seek::Before),
            },
            Direction::Backward => {
                items.reverse();
                Listed {
                    total: self.total,
                    items,
                    next: near.map(Seek::After),
                    previous: far.map(Seek::Before),
                }
            }
        })
    }

    /// Rows a read asks for when `wanted` matches would do: that many when every row read
    /// matches (at most a page and one, so bounded by the largest page), else a batch.
    fn batch(&self, wanted: u64) -> i64 {
        if self.exact {
            (wanted as i64).max(1)
        } else {
            SCAN_BATCH
        }
    }
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
    mut fetch: impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
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
    scan_all(conn, &mut fetch, &position, |conn, row| {
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
    Ok(Listed::indexed(total, items))
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
    fetch: impl FnMut(&mut crate::db::DbConn, Read) -> Result<Vec<T>, crate::error::Error>,
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
            (Some(_), Window::Cursor { .. }) => return Err(unsorted_cursor()),
            (Some(sort), Window::Index { start_index, count }) => {
                let skip = start_index.saturating_sub(1);
                if let Some(items) = offset_page(conn, Some(sort), skip, *count)? {
                    return Ok(Listed::indexed(count_all(conn)?, items));
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

/// A boxed query narrowed to one keyset [`Read`] through creation order `($created, $id)`:
/// the rows strictly beyond `read.from` in `read.direction`, nearest first, `read.limit` of
/// them. The bound is written `>= t and (> t or id >)` rather than `> t or (= t and id >)`:
/// PostgreSQL range-scans the listing index for the first form and filters every row for the
/// second.
#[macro_export]
macro_rules! keyset_read {
    ($query:expr, $read:expr, $created:expr, $id:expr) => {{
        let read: $crate::domain::Read = $read;
        let query = $query.limit(read.limit);
        match (read.direction, read.from) {
            ($crate::domain::Direction::Forward, None) => query.order(($created.asc(), $id.asc())),
            ($crate::domain::Direction::Forward, Some((created, id))) => {
                query.order(($created.asc(), $id.asc())).filter(
                    $created
                        .ge(*created)
                        .and($created.gt(*created).or($id.gt(id.clone()))),
                )
            }
            ($crate::domain::Direction::Backward, None) => {
                query.order(($created.desc(), $id.desc()))
            }
            ($crate::domain::Direction::Backward, Some((created, id))) => {
                query.order(($created.desc(), $id.desc())).filter(
                    $created
                        .le(*created)
                        .and($created.lt(*created).or($id.lt(id.clone()))),
                )
            }
        }
    }};
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

/// A cursor names where a page lies, opaque to clients: after a place (the last item of the
/// page before), before one (the first item of the page after; `<` in front), or the two ends
/// (`^` the start, `$` the end, for pages beside an empty one).
pub fn encode_cursor(seek: &Seek) -> String {
    use base64::Engine;
    let place =
        |(created_at, id): &Position| format!("{}:{id}", created_at.and_utc().timestamp_micros());
    let text = match seek {
        Seek::After(Some(position)) => place(position),
        Seek::Before(Some(position)) => format!("<{}", place(position)),
        Seek::After(None) => "^".to_string(),
        Seek::Before(None) => "$".to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// The page a cursor names; `None` for anything this server did not hand out.
pub fn decode_cursor(cursor: &str) -> Option<Seek> {
    use base64::Engine;
    let text = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?,
    )
    .ok()?;
    let place = |text: &str| -> Option<Position> {
        let (micros, id) = text.split_once(':')?;
        let created_at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        (!id.is_empty()).then(|| (created_at, id.to_string()))
    };
    match text.as_str() {
        "^" => Some(Seek::After(None)),
        "$" => Some(Seek::Before(None)),
        _ => match text.strip_prefix('<') {
            Some(before) => Some(Seek::Before(Some(place(before)?))),
            None => Some(Seek::After(Some(place(&text)?))),
        },
    }
}

/// New identifiers have Stytch's shape: a kind prefix and a random UUID.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
