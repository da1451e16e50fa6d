//! The rules of scimd and their persistence. Every path that changes data (SCIM, the
//! management API, the CLI) calls these functions inside `db::write`, so the same rules and
//! the same events apply whichever way a change arrives.

pub mod connections;
pub mod email;
pub mod events;
pub mod members;
pub mod organizations;
pub mod scim_groups;
pub mod scim_users;

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

/// Reads rows in creation order, a batch at a time, each batch resuming after the last row
/// of the one before, until a batch comes back short; `visit` sees every row. Memory stays
/// one batch, whatever the table's size.
pub fn scan_in_order<T>(
    conn: &mut crate::db::DbConn,
    mut fetch: impl FnMut(
        &mut crate::db::DbConn,
        Option<&Position>,
    ) -> Result<Vec<T>, crate::error::Error>,
    position: impl Fn(&T) -> Position,
    mut visit: impl FnMut(&mut crate::db::DbConn, T) -> Result<(), crate::error::Error>,
) -> Result<(), crate::error::Error> {
    let mut after: Option<Position> = None;
    loop {
        let batch = fetch(conn, after.as_ref())?;
        let exhausted = (batch.len() as i64) < SCAN_BATCH;
        for row in batch {
            after = Some(position(&row));
            visit(conn, row)?;
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// New identifiers have Stytch's shape: a kind prefix and a random UUID.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
