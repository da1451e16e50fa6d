//! The outbox. Every change records its event through `record`, inside the change's own
//! transaction, so the log never disagrees with the data: an event exists if and only if its
//! change committed.

use std::cell::Cell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{new_id, now, Actor};
use crate::db::schema::{event_log, events, organizations};
use crate::db::{DbConn, Prepared};
use crate::error::Error;

/// An event about to be recorded.
pub struct Event<'a> {
    pub event_type: &'static str,
    pub subject_id: &'a str,
    /// The full object after the change; only its id on deletes.
    pub data: Value,
    /// The old values of what changed, on updates.
    pub previous: Option<Value>,
}

#[derive(Insertable)]
#[diesel(table_name = events)]
struct NewEventRow<'a> {
    event_id: String,
    organization_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    source: &'a str,
    actor: &'a str,
    subject_id: &'a str,
    data: String,
    previous: Option<String>,
    occurred_at: chrono::NaiveDateTime,
    log_position: i64,
}

thread_local! {
    /// Whether this thread recorded an event since `take_recorded` last asked: the API wakes
    /// long-polling readers after a write that recorded one commits.
    static RECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Whether events were recorded on this thread since the last call (and forgets it).
pub fn take_recorded() -> bool {
    RECORDED.with(|recorded| recorded.replace(false))
}

/// Takes the organization's next `count` sequence numbers and their events' positions in the
/// feed, in one step under the organization's row lock. SQLite (one writer, holding the write
/// lock) numbers positions one after another. PostgreSQL uses the writing transaction's id,
/// raised to the position of the organization's previous event, so that positions never go
/// down along an organization's sequence (see `read` for why ids make a safe order); every
/// event of one transaction has that one position.
fn next_numbers(
    conn: &mut DbConn,
    organization_id: &str,
    count: i64,
) -> Result<Vec<(i64, i64)>, Error> {
    match conn {
        DbConn::Postgres(pg) => {
            let (last, position): (i64, i64) = Prepared(
                diesel::update(organizations::table.find(organization_id))
                    .set((
                        organizations::event_sequence.eq(organizations::event_sequence + count),
                        organizations::event_log_position.eq(sql::<BigInt>(
                            "GREATEST(event_log_position, pg_current_xact_id()::text::bigint)",
                        )),
                    ))
                    .returning((
                        organizations::event_sequence,
                        organizations::event_log_position,
                    )),
            )
            .get_result(pg)?;
            Ok((last - count + 1..=last).map(|n| (n, position)).collect())
        }
        DbConn::Sqlite(sqlite) => {
            let last: i64 = Prepared(
                diesel::update(organizations::table.find(organization_id))
                    .set(organizations::event_sequence.eq(organizations::event_sequence + count))
                    .returning(organizations::event_sequence),
            )
            .get_result(sqlite)?;
            let last_position: i64 = Prepared(
                diesel::update(event_log::table.find(1))
                    .set(event_log::last_position.eq(event_log::last_position + count))
                    .returning(event_log::last_position),
            )
            .get_result(sqlite)?;
            Ok((0..count)
                .map(|k| (last - count + 1 + k, last_position - count + 1 + k))
                .collect())
        }
    }
}

/// Records `event` for `organization_id` and returns its place in the feed.
///
/// The number comes from the organization's row, incremented in this transaction: the update
/// holds that row's lock until commit (PostgreSQL) or the database's write lock (SQLite), so
/// sequence numbers of one organization are gap-free and in commit order.
pub fn record(
    conn: &mut DbConn,
    organization_id: &str,
    actor: &Actor,
    event: Event<'_>,
) -> Result<FeedCursor, Error> {
    let row = numbered(conn, organization_id, actor, vec![event])?
        .pop()
        .expect("one event, one row");
    let (sequence, log_position) = (row.sequence, row.log_position);
    // Kept prepared (its text varies only with `previous` being set or not), and so run as a
    // query that returns a row: see `Prepared`.
    crate::on_backend!(conn, |inner| Prepared(
        diesel::insert_into(events::table)
            .values(&row)
            .returning(events::sequence)
    )
    .get_result::<i64>(inner))?;
    Ok(FeedCursor {
        log_position,
        organization_id: organization_id.to_string(),
        sequence,
    })
}

/// Records `events` for `organization_id`, in this order, as `record` would one after
/// another: one numbering step and a multi-row `INSERT` for them all (an import).
pub fn record_many(
    conn: &mut DbConn,
    organization_id: &str,
    actor: &Actor,
    events: Vec<Event<'_>>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = numbered(conn, organization_id, actor, events)?;
    // In chunks: a statement takes at most 65,535 parameters on PostgreSQL.
    for chunk in rows.chunks(1_000) {
        crate::on_backend!(conn, |inner| diesel::insert_into(events::table)
            .values(chunk)
            .execute(inner))?;
    }
    Ok(())
}

/// `events` as rows to insert, numbered.
fn numbered<'a>(
    conn: &mut DbConn,
    organization_id: &'a str,
    actor: &'a Actor,
    events: Vec<Event<'a>>,
) -> Result<Vec<NewEventRow<'a>>, Error> {
    let numbers = next_numbers(conn, organization_id, events.len() as i64)?;
    let occurred_at = now();
    RECORDED.with(|recorded| recorded.set(true));
    Ok(numbers
        .into_iter()
        .zip(events)
        .map(|((sequence, log_position), event)| NewEventRow {
            event_id: new_id("event"),
            organization_id,
            sequence,
            event_type: event.event_type,
            source: actor.source.as_str(),
            actor: &actor.id,
            subject_id: event.subject_id,
            data: event.data.to_string(),
            previous: event.previous.map(|previous| previous.to_string()),
            occurred_at,
            log_position,
        })
        .collect())
}

/// A place in the feed: after the event at (`log_position`, organization, `sequence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor {
    pub log_position: i64,
    pub organization_id: String,
    pub sequence: i64,
}

impl FeedCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            self.log_position, self.sequence, self.organization_id
        ))
    }

    pub fn decode(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::invalid(
                "invalid_cursor",
                "after is not a cursor this API returned: pass next_cursor as it came",
            )
        };
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)?;
        let mut parts = decoded.splitn(3, ':');
        let mut number = || parts.next().and_then(|part| part.parse::<i64>().ok());
        let (Some(log_position), Some(sequence)) = (number(), number()) else {
            return Err(invalid());
        };
        let organization_id = parts.next().ok_or_else(invalid)?.to_string();
        Ok(FeedCursor {
            log_position,
            organization_id,
            sequence,
        })
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    pub organization_id: Option<String>,
    pub after: Option<FeedCursor>,
    /// Exact types (`member.created`) or prefixes (`member.*`); empty: every type.
    pub types: Vec<String>,
    pub limit: i64,
}

/// An event as the feed shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub event_id: String,
    pub organization_id: String,
    pub sequence: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub actor: String,
    pub subject_id: String,
    #[serde(with = "super::timestamp")]
    pub occurred_at: NaiveDateTime,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
    #[serde(skip)]
    pub cursor: FeedCursor,
}

/// Validates `types` patterns: event type characters, `*` only as a whole last label.
pub fn parse_types(text: &str) -> Result<Vec<String>, Error> {
    let mut types = Vec::new();
    for pattern in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let body = pattern.strip_suffix(".*").unwrap_or(pattern);
        let valid = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
        if !valid {
            return Err(Error::invalid(
                "invalid_types",
                format!(
                    "types: `{pattern}` is not an event type (`member.created`) or a prefix \
                     (`member.*`)"
                ),
            ));
        }
        types.push(pattern.to_string());
    }
    Ok(types)
}

/// The events after the query's cursor, in feed order: (log_position, organization,
/// sequence). On SQLite positions follow commit order. On PostgreSQL a position is at least
/// the writing transaction's id, which is taken when the transaction first writes, not when
/// it commits; so only events below the snapshot's xmin — the oldest transaction id still
/// running — are returned. Every event that commits after this read has a position at or
/// above its own transaction id, which is at or above that xmin: it stands after everything
/// this read returned, so a reader following `next_cursor` misses nothing. A long writing
/// transaction holds the feed back until it ends rather than letting it skip ahead. Call
/// inside `db::read`, so that the horizon and the rows come from one snapshot.
pub fn read(conn: &mut DbConn, query: &FeedQuery) -> Result<Vec<FeedEvent>, Error> {
    let mut rows = events::table
        .select((
            events::event_id,
            events::organization_id,
            events::sequence,
            events::event_type,
            events::source,
            events::actor,
            events::subject_id,
            events::occurred_at,
            events::data,
            events::previous,
            events::log_position,
        ))
        .order((
            events::log_position.asc(),
            events::organization_id.asc(),
            events::sequence.asc(),
        ))
        .limit(query.limit)
        .into_boxed();
    if let Some(horizon) = horizon(conn)? {
        rows = rows.filter(events::log_position.lt(horizon));
    }
    if let Some(organization_id) = &query.organization_id {
        rows = rows.filter(events::organization_id.eq(organization_id.clone()));
    }
    if let Some(after) = &query.after {
        rows = rows.filter(
            events::log_position
                .gt(after.log_position)
                .or(events::log_position.eq(after.log_position).and(
                    events::organization_id
                        .gt(after.organization_id.clone())
                        .or(events::organization_id
                            .eq(after.organization_id.clone())
                            .and(events::sequence.gt(after.sequence))),
                )),
        );
    }
    if !query.types.is_empty() {
        let mut matches: Box<
            dyn BoxableExpression<
                events::table,
                <DbConn as diesel::Connection>::Backend,
                SqlType = diesel::sql_types::Bool,
            >,
        > = Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("1 = 0"));
        for pattern in &query.types {
            matches = match pattern.strip_suffix('*') {
                Some(prefix) => {
                    let like = format!("{}%", prefix.replace('_', "\\_"));
                    Box::new(matches.or(events::event_type.like(like).escape('\\')))
                }
                None => Box::new(matches.or(events::event_type.eq(pattern.clone()))),
            };
        }
        rows = rows.filter(matches);
    }
    type Row = (
        String,
        String,
        i64,
        String,
        String,
        String,
        String,
        NaiveDateTime,
        String,
        Option<String>,
        i64,
    );
    let json = |text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|error| Error::internal(format!("stored event data: {error}")))
    };
    rows.load::<Row>(conn)?
        .into_iter()
        .map(
            |(
                id,
                organization_id,
                sequence,
                kind,
                source,
                actor,
                subject,
                at,
                data,
                previous,
                position,
            )| {
                Ok(FeedEvent {
                    cursor: FeedCursor {
                        log_position: position,
                        organization_id: organization_id.clone(),
                        sequence,
                    },
                    event_id: id,
                    organization_id,
                    sequence,
                    event_type: kind,
                    source,
                    actor,
                    subject_id: subject,
                    occurred_at: at,
                    data: json(&data)?,
                    previous: previous.as_deref().map(json).transpose()?,
                })
            },
        )
        .collect()
}

/// The position readers stop before: on PostgreSQL the snapshot's xmin (see `read`); SQLite
/// needs none.
pub fn horizon(conn: &mut DbConn) -> Result<Option<i64>, Error> {
    match conn {
        DbConn::Postgres(pg) => Ok(Some(
            diesel::select(sql::<BigInt>(
                "pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            ))
            .get_result(pg)?,
        )),
        DbConn::Sqlite(_) => Ok(None),
    }
}

/// Deletes the events that occurred before `cutoff`; returns how many.
pub fn prune(conn: &mut DbConn, cutoff: NaiveDateTime) -> Result<usize, Error> {
    Ok(diesel::delete(events::table.filter(events::occurred_at.lt(cutoff))).execute(conn)?)
}

/// The old values of the top-level fields that differ between `before` and `after` (a field
/// absent before is `null`), or `None` when nothing changed.
pub fn previous_values(before: &Value, after: &Value) -> Option<Value> {
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return (before != after).then(|| before.clone());
    };
    let mut previous = Map::new();
    for (key, new_value) in after {
        let old_value = before.get(key).unwrap_or(&Value::Null);
        if old_value != new_value {
            previous.insert(key.clone(), old_value.clone());
        }
    }
    for (key, old_value) in before {
        if !after.contains_key(key) {
            previous.insert(key.clone(), old_value.clone());
        }
    }
    (!previous.is_empty()).then_some(Value::Object(previous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previous_values_lists_only_what_changed() {
        let before = json!({"name": "Acme", "slug": "acme", "gone": 1});
        let after = json!({"name": "Acme Inc", "slug": "acme", "new": true});
        assert_eq!(
            previous_values(&before, &after),
            Some(json!({"name": "Acme", "new": null, "gone": 1}))
        );
    }

    #[test]
    fn previous_values_of_an_unchanged_object_is_none() {
        let same = json!({"name": "Acme"});
        assert_eq!(previous_values(&same, &same), None);
    }
}
