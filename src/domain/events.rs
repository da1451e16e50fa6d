//! The outbox. Every change records its event through `record`, inside the change's own
//! transaction, so the log never disagrees with the data: an event exists if and only if its
//! change committed.

use diesel::prelude::*;
use serde_json::{Map, Value};

use super::{new_id, now, Actor};
use crate::db::schema::{events, organizations};
use crate::db::DbConn;
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
}

/// Records `event` for `organization_id` and returns its sequence number.
///
/// The number comes from the organization's row, incremented in this transaction: the update
/// holds that row's lock until commit (PostgreSQL) or the database's write lock (SQLite), so
/// sequence numbers of one organization are gap-free and in commit order.
pub fn record(
    conn: &mut DbConn,
    organization_id: &str,
    actor: &Actor,
    event: Event<'_>,
) -> Result<i64, Error> {
    let sequence: i64 = diesel::update(organizations::table.find(organization_id))
        .set(organizations::event_sequence.eq(organizations::event_sequence + 1))
        .returning(organizations::event_sequence)
        .get_result(conn)?;
    diesel::insert_into(events::table)
        .values(NewEventRow {
            event_id: new_id("event"),
            organization_id,
            sequence,
            event_type: event.event_type,
            source: actor.source.as_str(),
            actor: &actor.id,
            subject_id: event.subject_id,
            data: event.data.to_string(),
            previous: event.previous.map(|previous| previous.to_string()),
            occurred_at: now(),
        })
        .execute(conn)?;
    Ok(sequence)
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
