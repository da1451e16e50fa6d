//! The outbox. Every change records its events through `record`, inside the change's own
//! transaction, so the log never disagrees with the data: an event exists if and only if its
//! change committed.
//!
//! Recorded events wait in an [`Outbox`] until the change is done, and are written as its last
//! statement, just before its commit. Numbering an event locks its organization's row until
//! that commit (PostgreSQL), so writes of one organization queue on that lock: every
//! statement between the numbering and the commit was time all the others waited. Under
//! `patch` on PostgreSQL that lock was most of a request's wait (BENCHMARKS.md, "The
//! organization's lock, taken last"), so on PostgreSQL the events' statement travels with the
//! `COMMIT` itself ([`Outbox::write_and_commit`]).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
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

/// An event recorded and not yet written.
struct Recorded {
    organization_id: String,
    event_type: &'static str,
    source: &'static str,
    actor: String,
    subject_id: String,
    data: String,
    previous: Option<String>,
    occurred_at: NaiveDateTime,
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
    data: &'a str,
    previous: Option<&'a str>,
    occurred_at: NaiveDateTime,
    log_position: i64,
}

thread_local! {
    /// The events this thread's running change recorded, in order, until its outbox writes
    /// them.
    static RECORDED_EVENTS: RefCell<Vec<Recorded>> = const { RefCell::new(Vec::new()) };
    /// Where each outbox open on this thread begins in `RECORDED_EVENTS`, innermost last: an
    /// event recorded with none open would wait for some later, unrelated change.
    static OPEN_OUTBOXES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// How many of them are a savepoint's (`Outbox::behind_savepoint`).
    static OPEN_SAVEPOINTS: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread recorded an event since `take_recorded` last asked: the API wakes
    /// long-polling readers after a write that recorded one commits.
    static RECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Whether events were recorded on this thread since the last call (and forgets it).
pub fn take_recorded() -> bool {
    RECORDED.with(|recorded| recorded.replace(false))
}

/// The events a change records, from when it opens to when it is written: `db::write` opens
/// one around each change and writes it after the change returns, as the change's last
/// statement (on PostgreSQL together with the `COMMIT`). Dropped unwritten (the change
/// failed, or panicked), it discards them. Opened around a savepoint and
/// [`kept`](Outbox::keep) when that is released, it leaves them to the enclosing change's
/// outbox.
pub struct Outbox {
    /// How many events were waiting when it opened: they are not its own.
    mark: usize,
    /// Whether it is a savepoint's.
    savepoint: bool,
    /// The events live on this thread.
    _thread: PhantomData<*const ()>,
}

impl Outbox {
    pub fn open() -> Outbox {
        let mark = RECORDED_EVENTS.with(|recorded| recorded.borrow().len());
        OPEN_OUTBOXES.with(|open| open.borrow_mut().push(mark));
        Outbox {
            mark,
            savepoint: false,
            _thread: PhantomData,
        }
    }

    /// An outbox for a savepoint inside a change (`db::savepoint`), which `record_now`
    /// refuses to write behind; `None` outside a change, where nothing would write what it
    /// kept.
    pub fn behind_savepoint() -> Option<Outbox> {
        if OPEN_OUTBOXES.with(|open| open.borrow().is_empty()) {
            return None;
        }
        OPEN_SAVEPOINTS.with(|open| open.set(open.get() + 1));
        let mut outbox = Outbox::open();
        outbox.savepoint = true;
        Some(outbox)
    }

    /// Writes the events recorded since it opened, in the order they were recorded.
    pub fn write(self, conn: &mut DbConn) -> diesel::QueryResult<()> {
        write_recorded(conn, self.take()).map(drop)
    }

    /// The events recorded since it opened, taken from the thread's, in recorded order.
    fn take(self) -> Vec<Recorded> {
        RECORDED_EVENTS.with(|recorded| {
            let mut recorded = recorded.borrow_mut();
            let mark = self.mark.min(recorded.len());
            recorded.split_off(mark)
        })
    }

    /// Writes the events recorded since it opened and commits the transaction, on PostgreSQL
    /// in one round trip (`db::write`): a call of the numbering function for each
    /// organization (`numbering_function`), the values written into its text, and `COMMIT`,
    /// sent together. PostgreSQL runs them in order and stops at the first that fails, which
    /// leaves the transaction to be rolled back; a `COMMIT` that fails ends it.
    ///
    /// A change with many events (a group's deletion re-deriving the roles of 100,000 members
    /// records one each) writes them with bound values and commits apart, as SQLite does:
    /// their values written out as text would make a statement of tens of megabytes for
    /// PostgreSQL to parse, where bound arrays cost what their values do.
    pub fn write_and_commit(self, conn: &mut DbConn) -> diesel::QueryResult<()> {
        let events = self.take();
        let pg = match conn {
            DbConn::Postgres(pg) if events.len() <= EVENTS_SENT_WITH_THE_COMMIT => pg,
            _ => {
                write_recorded(conn, events)?;
                return <DbConn as Connection>::TransactionManager::commit_transaction(conn);
            }
        };
        let mut statements = String::new();
        for of_one in by_organization(events).chunk_by(same_organization) {
            statements.push_str(&numbering_with_values(of_one));
            statements.push_str("; ");
        }
        statements.push_str("COMMIT");
        pg.batch_execute(&statements)
    }

    /// Leaves its events to the outbox around it.
    pub fn keep(mut self) {
        self.mark = usize::MAX;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        OPEN_OUTBOXES.with(|open| open.borrow_mut().pop());
        if self.savepoint {
            OPEN_SAVEPOINTS.with(|open| open.set(open.get() - 1));
        }
        RECORDED_EVENTS.with(|recorded| {
            let mut recorded = recorded.borrow_mut();
            if self.mark < recorded.len() {
                recorded.truncate(self.mark);
            }
        });
    }
}

/// Records `event` for `organization_id`: it is written with the change, as its last
/// statement, and takes the organization's next sequence number then. Fails outside a write.
pub fn record(organization_id: &str, actor: &Actor, event: Event<'_>) -> Result<(), Error> {
    if OPEN_OUTBOXES.with(|open| open.borrow().is_empty()) {
        return Err(Error::internal("an event was recorded outside a write"));
    }
    let recorded = Recorded {
        organization_id: organization_id.to_string(),
        event_type: event.event_type,
        source: actor.source.as_str(),
        actor: actor.id.clone(),
        subject_id: event.subject_id.to_string(),
        data: event.data.to_string(),
        previous: event.previous.map(|previous| previous.to_string()),
        occurred_at: now(),
    };
    RECORDED_EVENTS.with(|events| events.borrow_mut().push(recorded));
    // Set here, not when written: `api::with_write` asks right after the change returns,
    // before its outbox writes. A savepoint's events rolled back make a needless wake only.
    RECORDED.with(|recorded| recorded.set(true));
    Ok(())
}

/// Records `events` for `organization_id`, in this order, as `record` would one after
/// another.
pub fn record_many(
    organization_id: &str,
    actor: &Actor,
    events: Vec<Event<'_>>,
) -> Result<(), Error> {
    events
        .into_iter()
        .try_for_each(|event| record(organization_id, actor, event))
}

/// Records `event` and writes it at once, with every event still waiting on this thread
/// before it, and returns its place in the feed: for a change that needs that place
/// (`webhook.created`), or that deletes the organization's row the numbering needs. The
/// organization's row stays locked from here to the commit. Refused behind a
/// `db::savepoint`: the events it writes early include the enclosing change's, which that
/// savepoint's rollback would take with it.
pub fn record_now(
    conn: &mut DbConn,
    organization_id: &str,
    actor: &Actor,
    event: Event<'_>,
) -> Result<FeedCursor, Error> {
    if OPEN_SAVEPOINTS.with(Cell::get) > 0 {
        return Err(Error::internal(
            "an event was written early behind a savepoint",
        ));
    }
    record(organization_id, actor, event)?;
    // The events of the innermost outbox, the change's own: an enclosing one's are written
    // by it (the writer's group around a change has written the group's earlier changes').
    let mark = OPEN_OUTBOXES.with(|open| open.borrow().last().copied().unwrap_or(0));
    let events = RECORDED_EVENTS.with(|recorded| {
        let mut recorded = recorded.borrow_mut();
        let mark = mark.min(recorded.len());
        recorded.split_off(mark)
    });
    let written = write_recorded(conn, events)?;
    let (_, (log_position, sequence)) = written
        .into_iter()
        .find(|(organization, _)| organization == organization_id)
        .expect("the event just recorded was written");
    Ok(FeedCursor {
        log_position,
        organization_id: organization_id.to_string(),
        sequence,
    })
}

/// Writes `events`: each organization's take its next sequence numbers, in the order they
/// were recorded. Returns each organization's last (position, sequence).
fn write_recorded(
    conn: &mut DbConn,
    events: Vec<Recorded>,
) -> diesel::QueryResult<Vec<(String, (i64, i64))>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let events = by_organization(events);
    let mut written = Vec::new();
    for of_one in events.chunk_by(same_organization) {
        let organization_id = &of_one[0].organization_id;
        let last = match conn {
            DbConn::Postgres(pg) => write_numbered_postgres(pg, organization_id, of_one)?,
            DbConn::Sqlite(sqlite) => write_numbered_sqlite(sqlite, organization_id, of_one)?,
        };
        written.push((organization_id.clone(), last));
    }
    Ok(written)
}

/// The most events `Outbox::write_and_commit` sends with the `COMMIT`, their values in the
/// statement's text; more are bound. IdPs' writes record one to a few.
pub const EVENTS_SENT_WITH_THE_COMMIT: usize = 64;

/// `events` in the order organizations are locked in to number them: by id, whatever the
/// order they were recorded in, so that two changes that both record for two organizations
/// cannot deadlock on them. The sort is stable: each organization's stay in recorded order.
fn by_organization(mut events: Vec<Recorded>) -> Vec<Recorded> {
    events.sort_by(|a, b| a.organization_id.cmp(&b.organization_id));
    events
}

fn same_organization(a: &Recorded, b: &Recorded) -> bool {
    a.organization_id == b.organization_id
}

/// The statement that numbers one organization's events and inserts them, with `values`
/// standing for, in order: the organization, how many events, and arrays of their ids, types,
/// sources, actors, subjects, data, previous values and times. If the organization's row is
/// gone, every event gets no sequence number, which the column refuses: the statement fails
/// (organization deletions write their own event first, through `record_now`).
fn numbering_statement(values: [&str; 10]) -> String {
    let [organization, count, ids, types, sources, actors, subjects, data, previous, times] =
        values;
    format!(
        "WITH numbered AS ( \
             UPDATE organizations \
             SET event_sequence = event_sequence + {count}, \
                 event_log_position = \
                     GREATEST(event_log_position, pg_current_xact_id()::text::bigint) \
             WHERE organization_id = {organization} \
             RETURNING event_sequence - {count} AS before, event_log_position) \
         INSERT INTO events (event_id, organization_id, sequence, event_type, source, \
             actor, subject_id, data, previous, occurred_at, log_position) \
         SELECT e.event_id, {organization}, numbered.before + e.n, e.event_type, e.source, \
             e.actor, e.subject_id, e.data, e.previous, e.occurred_at, \
             numbered.event_log_position \
         FROM unnest({ids}, {types}, {sources}, {actors}, {subjects}, {data}, {previous}, \
                 {times}) WITH ORDINALITY \
             AS e(event_id, event_type, source, actor, subject_id, data, previous, \
                  occurred_at, n) \
             LEFT JOIN numbered ON true"
    )
}

/// The PostgreSQL function that runs `numbering_statement` with its arguments, so that the
/// statement sent with the `COMMIT` is a call with the values written out, and the plan of
/// what it runs is PL/pgSQL's, made once a connection. Sent as a statement of its own, the
/// same text was parsed and planned at every write: about 200 µs of PostgreSQL's CPU, and
/// `patch` 15–25% slower (BENCHMARKS.md, "The commit sent with the events").
///
/// It lives beside the schema, not in `migrations/` (those run on SQLite too): `db::migrate`
/// creates or replaces it after the migrations, under their lock. Its name carries a version,
/// to be raised whenever its arguments or what it does change, so that processes of two
/// versions sharing a database each call their own.
pub fn numbering_function() -> String {
    let parameters = [
        "p_organization",
        "p_count",
        "p_ids",
        "p_types",
        "p_sources",
        "p_actors",
        "p_subjects",
        "p_data",
        "p_previous",
        "p_times",
    ];
    format!(
        "CREATE OR REPLACE FUNCTION {NUMBERING_FUNCTION}( \
             p_organization text, p_count bigint, p_ids text[], p_types text[], \
             p_sources text[], p_actors text[], p_subjects text[], p_data text[], \
             p_previous text[], p_times timestamp[]) \
         RETURNS void LANGUAGE plpgsql AS $numbering$ BEGIN {}; END $numbering$",
        numbering_statement(parameters)
    )
}

const NUMBERING_FUNCTION: &str = "scimd_number_events_v1";

/// The call of the numbering function for one organization's `events`, their values in its
/// text (see `Outbox::write_and_commit`).
fn numbering_with_values(events: &[Recorded]) -> String {
    let literal = |text: &str| crate::db::postgres_literal(text);
    let array = |of: &dyn Fn(&Recorded) -> String, sql_type: &str| {
        let values: Vec<String> = events.iter().map(of).collect();
        format!("ARRAY[{}]::{sql_type}[]", values.join(", "))
    };
    let arguments = [
        literal(&events[0].organization_id),
        events.len().to_string(),
        array(&|_| literal(&new_id("event")), "text"),
        array(&|e| literal(e.event_type), "text"),
        array(&|e| literal(e.source), "text"),
        array(&|e| literal(&e.actor), "text"),
        array(&|e| literal(&e.subject_id), "text"),
        array(&|e| literal(&e.data), "text"),
        array(
            &|e| e.previous.as_deref().map_or_else(|| "NULL".into(), literal),
            "text",
        ),
        array(
            &|e| literal(&e.occurred_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
            "timestamp",
        ),
    ];
    format!("SELECT {NUMBERING_FUNCTION}({})", arguments.join(", "))
}

/// `numbering_statement` with its values bound, returning each event's place.
static NUMBERING_BOUND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let values = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10"];
    numbering_statement(values) + " RETURNING log_position, sequence"
});

/// One statement numbers the organization's events and inserts them: the organization's row
/// is locked from it to the commit, a round trip instead of two. A position is the writing
/// transaction's id, raised to the position of the organization's previous event, so that
/// positions never go down along an organization's sequence (see `read` for why ids make a
/// safe order); every event of one transaction has that one position.
fn write_numbered_postgres(
    pg: &mut diesel::pg::PgConnection,
    organization_id: &str,
    events: &[Recorded],
) -> diesel::QueryResult<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Numbered {
        #[diesel(sql_type = BigInt)]
        log_position: i64,
        #[diesel(sql_type = BigInt)]
        sequence: i64,
    }
    let column = |of: fn(&Recorded) -> String| events.iter().map(of).collect::<Vec<_>>();
    let numbered: Vec<Numbered> = Prepared(
        diesel::sql_query(NUMBERING_BOUND.as_str())
            .bind::<Text, _>(organization_id)
            .bind::<BigInt, _>(events.len() as i64)
            .bind::<Array<Text>, _>(column(|_| new_id("event")))
            .bind::<Array<Text>, _>(column(|e| e.event_type.to_string()))
            .bind::<Array<Text>, _>(column(|e| e.source.to_string()))
            .bind::<Array<Text>, _>(column(|e| e.actor.clone()))
            .bind::<Array<Text>, _>(column(|e| e.subject_id.clone()))
            .bind::<Array<Text>, _>(column(|e| e.data.clone()))
            .bind::<Array<Nullable<Text>>, _>(
                events
                    .iter()
                    .map(|e| e.previous.clone())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Timestamp>, _>(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>()),
    )
    .load(pg)?;
    // No row: the organization is gone (its deletion records with `record_now` first).
    numbered
        .into_iter()
        .map(|row| (row.log_position, row.sequence))
        .max_by_key(|&(_, sequence)| sequence)
        .ok_or(diesel::result::Error::NotFound)
}

/// SQLite has one writer, holding the write lock: numbers are taken one after another from
/// the organization's counter and the feed's, then the events inserted.
fn write_numbered_sqlite(
    sqlite: &mut diesel::sqlite::SqliteConnection,
    organization_id: &str,
    events: &[Recorded],
) -> diesel::QueryResult<(i64, i64)> {
    let count = events.len() as i64;
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
    let rows: Vec<NewEventRow<'_>> = events
        .iter()
        .zip(0..)
        .map(|(event, k)| NewEventRow {
            event_id: new_id("event"),
            organization_id,
            sequence: last - count + 1 + k,
            event_type: event.event_type,
            source: event.source,
            actor: &event.actor,
            subject_id: &event.subject_id,
            data: &event.data,
            previous: event.previous.as_deref(),
            occurred_at: event.occurred_at,
            log_position: last_position - count + 1 + k,
        })
        .collect();
    match rows.as_slice() {
        // Kept prepared (its text varies only with `previous` being set or not), and so run
        // as a query that returns a row: see `Prepared`.
        [row] => {
            Prepared(
                diesel::insert_into(events::table)
                    .values(row)
                    .returning(events::sequence),
            )
            .get_result::<i64>(sqlite)?;
        }
        // In chunks: SQLite takes at most 32,766 parameters a statement.
        rows => {
            for chunk in rows.chunks(1_000) {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(sqlite)?;
            }
        }
    }
    Ok((last_position, last))
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
