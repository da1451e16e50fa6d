//! Webhook endpoints and their delivery state. Each endpoint follows the event feed with its
//! own cursor: the last event it acknowledged. Whoever holds an endpoint's lease delivers the
//! events after the cursor one at a time, in feed order, and moves the cursor only when the
//! receiver answered 2xx, so delivery is at least once, in order, and resumes wherever the
//! previous holder stopped — even if that process died mid-delivery.

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::events::{self, Event, FeedCursor, FeedEvent};
use super::{new_id, now, Actor};
use crate::db::schema::{events as events_table, webhook_deliveries, webhooks};
use crate::db::DbConn;
use crate::error::Error;

const SECRET_PREFIX: &str = "whsec_";
const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    Enabled,
    Disabled,
}

impl WebhookStatus {
    fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Enabled => "enabled",
            WebhookStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub webhook_id: String,
    /// `None`: every organization's events.
    pub organization_id: Option<String>,
    pub url: String,
    pub event_types: Vec<String>,
    pub status: WebhookStatus,
    /// Failed attempts at the next event, and when the next try is due.
    pub attempts: i32,
    #[serde(with = "super::timestamp")]
    pub next_attempt_at: NaiveDateTime,
    #[serde(serialize_with = "optional_timestamp")]
    pub failing_since: Option<NaiveDateTime>,
    /// The feed cursor of the last event delivered (an `after` for /v1/events).
    pub delivered_through: String,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub cursor: FeedCursor,
}

fn optional_timestamp<S: serde::Serializer>(
    at: &Option<NaiveDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&super::rfc3339(*at)),
        None => serializer.serialize_none(),
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webhooks)]
struct WebhookRow {
    webhook_id: String,
    organization_id: Option<String>,
    url: String,
    event_types: String,
    secret: String,
    status: String,
    cursor_position: i64,
    cursor_organization_id: String,
    cursor_sequence: i64,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    failing_since: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl WebhookRow {
    fn into_webhook(self) -> Result<Webhook, Error> {
        let cursor = FeedCursor {
            log_position: self.cursor_position,
            organization_id: self.cursor_organization_id,
            sequence: self.cursor_sequence,
        };
        Ok(Webhook {
            event_types: serde_json::from_str(&self.event_types)
                .map_err(|error| Error::internal(format!("stored event_types: {error}")))?,
            status: if self.status == "disabled" {
                WebhookStatus::Disabled
            } else {
                WebhookStatus::Enabled
            },
            delivered_through: cursor.encode(),
            webhook_id: self.webhook_id,
            organization_id: self.organization_id,
            url: self.url,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
            secret: self.secret,
            cursor,
        })
    }
}

/// Which URLs an endpoint may have: http or https, and no private, loopback or link-local
/// address unless the operator allows them (`--webhook-allow-private`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

impl UrlPolicy {
    /// Validates `input` as an endpoint URL.
    pub fn check(&self, input: &str) -> Result<String, Error> {
        let invalid = |why: &str| {
            Error::invalid(
                "invalid_url",
                format!("url `{input}` {why}: use an http or https URL that reaches your receiver"),
            )
        };
        if input.len() > MAX_URL_BYTES {
            return Err(invalid("is too long"));
        }
        let url = url::Url::parse(input.trim()).map_err(|_| invalid("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("is not http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("carries credentials"));
        }
        let private = match url.host() {
            None => return Err(invalid("has no host")),
            Some(url::Host::Domain(domain)) => {
                domain.eq_ignore_ascii_case("localhost") || domain.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        };
        if private && !self.allow_private {
            return Err(invalid(
                "points at a private, loopback or link-local address, which this server does not \
                 deliver to (--webhook-allow-private)",
            ));
        }
        Ok(url.to_string())
    }

    /// Whether delivering to an address this host name resolved to is allowed.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        self.allow_private || !is_private(ip)
    }
}

/// Loopback, private (RFC 1918, unique local), link-local, unspecified or carrier-grade NAT.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// What a create or update may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFields {
    pub url: Option<String>,
    /// Create only; an `org:` scoped caller's own organization by default.
    pub organization_id: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Update only: `enabled` turns a disabled endpoint back on.
    pub status: Option<WebhookStatus>,
}

fn check_types(types: &[String]) -> Result<Vec<String>, Error> {
    events::parse_types(&types.join(","))
}

/// A new signing secret: `whsec_` and 32 random bytes, base64.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The Standard Webhooks signature of a delivery: `v1,` and the base64 HMAC-SHA256, keyed
/// with the secret's bytes, of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches(SECRET_PREFIX))
        .unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The last event of the feed (of one organization, or of all) that readers can see now: a
/// new endpoint starts after it.
fn feed_end(conn: &mut DbConn, organization_id: Option<&str>) -> Result<FeedCursor, Error> {
    let mut query = events_table::table
        .select((
            events_table::log_position,
            events_table::organization_id,
            events_table::sequence,
        ))
        .order((
            events_table::log_position.desc(),
            events_table::organization_id.desc(),
            events_table::sequence.desc(),
        ))
        .into_boxed();
    if let Some(horizon) = events::horizon(conn)? {
        query = query.filter(events_table::log_position.lt(horizon));
    }
    if let Some(organization_id) = organization_id {
        query = query.filter(events_table::organization_id.eq(organization_id.to_string()));
    }
    let last: Option<(i64, String, i64)> = query.first(conn).optional()?;
    Ok(last.map_or(
        FeedCursor {
            log_position: 0,
            organization_id: String::new(),
            sequence: 0,
        },
        |(log_position, organization_id, sequence)| FeedCursor {
            log_position,
            organization_id,
            sequence,
        },
    ))
}

/// Creates an endpoint that receives the events committed from now on; returns it and its
/// secret (shown this once).
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    policy: &UrlPolicy,
    fields: WebhookFields,
) -> Result<(Webhook, String), Error> {
    if fields.status.is_some() {
        return Err(Error::invalid(
            "invalid_field",
            "status applies to an existing webhook; a new one starts enabled",
        ));
    }
    let url = policy.check(
        fields
            .url
            .as_deref()
            .ok_or_else(|| Error::invalid("missing_field", "url is required"))?,
    )?;
    let event_types = check_types(&fields.event_types.unwrap_or_default())?;
    let organization_id = fields.organization_id;
    if let Some(organization_id) = &organization_id {
        super::organizations::find(conn, organization_id)?;
    }
    let cursor = feed_end(conn, organization_id.as_deref())?;
    let secret = new_secret();
    let at = now();
    let webhook_id = new_id("webhook");
    diesel::insert_into(webhooks::table)
        .values((
            webhooks::webhook_id.eq(&webhook_id),
            webhooks::organization_id.eq(&organization_id),
            webhooks::url.eq(&url),
            webhooks::event_types.eq(Value::from(event_types.clone()).to_string()),
            webhooks::secret.eq(&secret),
            webhooks::status.eq(WebhookStatus::Enabled.as_str()),
            webhooks::cursor_position.eq(cursor.log_position),
            webhooks::cursor_organization_id.eq(&cursor.organization_id),
            webhooks::cursor_sequence.eq(cursor.sequence),
            webhooks::attempts.eq(0),
            webhooks::next_attempt_at.eq(at),
            webhooks::created_at.eq(at),
            webhooks::updated_at.eq(at),
        ))
        .execute(conn)?;
    let webhook = find(conn, &webhook_id, None)?;
    if let Some(created) = record(conn, actor, &webhook, "webhook.created", None)? {
        // An organization's endpoint starts at its own `webhook.created`: every event of the
        // organization before it is older, every one after newer. On PostgreSQL, feed_end
        // sees only events below the horizon, so it may stand before events that committed
        // just before this one, which the endpoint would then receive.
        diesel::update(webhooks::table.find(&webhook_id))
            .set((
                webhooks::cursor_position.eq(created.log_position),
                webhooks::cursor_sequence.eq(created.sequence - 1),
                webhooks::cursor_organization_id.eq(&created.organization_id),
            ))
            .execute(conn)?;
        return Ok((find(conn, &webhook_id, None)?, secret));
    }
    Ok((webhook, secret))
}

/// The endpoint; one of another organization (for an `org:` scoped caller, `only`) is 404.
pub fn find(conn: &mut DbConn, webhook_id: &str, only: Option<&str>) -> Result<Webhook, Error> {
    let webhook = webhooks::table
        .find(webhook_id)
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?
        .map(WebhookRow::into_webhook)
        .transpose()?
        .filter(|webhook| only.is_none() || webhook.organization_id.as_deref() == only)
        .ok_or_else(|| Error::not_found(format!("no webhook `{webhook_id}`")))?;
    Ok(webhook)
}

/// Every endpoint (of one organization, for an `org:` scoped caller), oldest first.
pub fn list(conn: &mut DbConn, only: Option<&str>) -> Result<Vec<Webhook>, Error> {
    let mut query = webhooks::table
        .select(WebhookRow::as_select())
        .order((webhooks::created_at.asc(), webhooks::webhook_id.asc()))
        .into_boxed();
    if let Some(organization_id) = only {
        query = query.filter(webhooks::organization_id.eq(organization_id.to_string()));
    }
    query
        .load(conn)?
        .into_iter()
        .map(WebhookRow::into_webhook)
        .collect()
}

/// Changes the URL, the event types or the status. Re-enabling clears the failure streak and
/// retries at once, from where delivery stopped.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    policy: &UrlPolicy,
    webhook_id: &str,
    only: Option<&str>,
    fields: WebhookFields,
) -> Result<Webhook, Error> {
    // An organization's caller holds only its own organization's webhook.
    let mut key = vec![("webhook_id", webhook_id)];
    key.extend(only.map(|organization_id| ("organization_id", organization_id)));
    crate::db::hold_row(conn, "webhooks", &key)?;
    let before = find(conn, webhook_id, only)?;
    if fields.organization_id.is_some() {
        return Err(Error::invalid(
            "invalid_field",
            "organization_id cannot change: create another webhook",
        ));
    }
    let url = fields
        .url
        .as_deref()
        .map(|url| policy.check(url))
        .transpose()?;
    let types = fields.event_types.as_deref().map(check_types).transpose()?;
    let at = now();
    diesel::update(webhooks::table.find(webhook_id))
        .set((
            webhooks::url.eq(url.unwrap_or(before.url.clone())),
            webhooks::event_types
                .eq(Value::from(types.unwrap_or(before.event_types.clone())).to_string()),
            webhooks::version.eq(webhooks::version + 1),
            webhooks::updated_at.eq(at),
        ))
        .execute(conn)?;
    if fields.status == Some(WebhookStatus::Enabled) && before.status == WebhookStatus::Disabled {
        diesel::update(webhooks::table.find(webhook_id))
            .set((
                webhooks::status.eq(WebhookStatus::Enabled.as_str()),
                webhooks::attempts.eq(0),
                webhooks::failing_since.eq(None::<NaiveDateTime>),
                webhooks::next_attempt_at.eq(at),
            ))
            .execute(conn)?;
    } else if fields.status == Some(WebhookStatus::Disabled) {
        diesel::update(webhooks::table.find(webhook_id))
            .set(webhooks::status.eq(WebhookStatus::Disabled.as_str()))
            .execute(conn)?;
    }
    let after = find(conn, webhook_id, only)?;
    record(conn, actor, &after, "webhook.updated", None)?;
    Ok(after)
}

pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    webhook_id: &str,
    only: Option<&str>,
) -> Result<(), Error> {
    let webhook = find(conn, webhook_id, only)?;
    diesel::delete(webhooks::table.find(webhook_id)).execute(conn)?;
    record(conn, actor, &webhook, "webhook.deleted", None)?;
    Ok(())
}

/// Delivers again everything after `after` (a cursor of /v1/events; `None`: every event
/// still kept).
pub fn replay(
    conn: &mut DbConn,
    actor: &Actor,
    webhook_id: &str,
    only: Option<&str>,
    after: Option<FeedCursor>,
) -> Result<Webhook, Error> {
    find(conn, webhook_id, only)?;
    let cursor = after.unwrap_or(FeedCursor {
        log_position: 0,
        organization_id: String::new(),
        sequence: 0,
    });
    diesel::update(webhooks::table.find(webhook_id))
        .set((
            webhooks::cursor_position.eq(cursor.log_position),
            webhooks::cursor_organization_id.eq(&cursor.organization_id),
            webhooks::cursor_sequence.eq(cursor.sequence),
            webhooks::attempts.eq(0),
            webhooks::next_attempt_at.eq(now()),
            webhooks::updated_at.eq(now()),
        ))
        .execute(conn)?;
    let webhook = find(conn, webhook_id, only)?;
    record(conn, actor, &webhook, "webhook.replayed", None)?;
    Ok(webhook)
}

/// Records an organization's webhook event and returns its place in the feed; a global
/// endpoint's changes are logged instead (the event log is per organization).
fn record(
    conn: &mut DbConn,
    actor: &Actor,
    webhook: &Webhook,
    event_type: &'static str,
    details: Option<Value>,
) -> Result<Option<FeedCursor>, Error> {
    let Some(organization_id) = &webhook.organization_id else {
        log::info!("{event_type} {} ({})", webhook.webhook_id, actor.id);
        return Ok(None);
    };
    let mut data = serde_json::to_value(webhook).map_err(Error::internal)?;
    if let (Some(details), Value::Object(object)) = (details, &mut data) {
        object.insert("reason".into(), details);
    }
    events::record_now(
        conn,
        organization_id,
        actor,
        Event {
            event_type,
            subject_id: &webhook.webhook_id,
            data,
            previous: None,
        },
    )
    .map(Some)
}

/// One delivery attempt, as the log shows it.
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    pub delivery_id: String,
    pub event_id: String,
    pub attempt: i32,
    pub succeeded: bool,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    #[serde(with = "super::timestamp")]
    pub attempted_at: NaiveDateTime,
}

/// The endpoint's delivery attempts, newest first, before `before` (a delivery id).
pub fn deliveries(
    conn: &mut DbConn,
    webhook_id: &str,
    only: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, Error> {
    find(conn, webhook_id, only)?;
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .order((
            webhook_deliveries::attempted_at.desc(),
            webhook_deliveries::delivery_id.desc(),
        ))
        .limit(limit)
        .select(Delivery::as_select())
        .into_boxed();
    if let Some(before) = before {
        let at: Option<NaiveDateTime> = webhook_deliveries::table
            .find(before)
            .select(webhook_deliveries::attempted_at)
            .first(conn)
            .optional()?;
        let at = at.ok_or_else(|| {
            Error::invalid("invalid_cursor", "cursor names no delivery of this webhook")
        })?;
        query = query.filter(
            webhook_deliveries::attempted_at
                .lt(at)
                .or(webhook_deliveries::attempted_at
                    .eq(at)
                    .and(webhook_deliveries::delivery_id.lt(before.to_string()))),
        );
    }
    Ok(query.load(conn)?)
}

// The delivery side: leases, attempts, cursor moves. `crate::delivery` runs them.

/// The enabled endpoints that are due, not leased, and have events to deliver: read-only, so
/// idle delivery threads never take the write lock.
pub fn due(conn: &mut DbConn) -> Result<Vec<String>, Error> {
    let at = now();
    let candidates: Vec<String> = webhooks::table
        .filter(webhooks::status.eq(WebhookStatus::Enabled.as_str()))
        .filter(webhooks::next_attempt_at.le(at))
        .filter(
            webhooks::lease_until
                .is_null()
                .or(webhooks::lease_until.lt(at)),
        )
        .order(webhooks::next_attempt_at.asc())
        .select(webhooks::webhook_id)
        .limit(20)
        .load(conn)?;
    let mut due = Vec::new();
    for webhook_id in candidates {
        let webhook = find(conn, &webhook_id, None)?;
        if !pending(conn, &webhook, 1)?.is_empty() {
            due.push(webhook_id);
        }
    }
    Ok(due)
}

/// Takes the lease of the first of these endpoints still free and enabled, if any.
pub fn claim(
    conn: &mut DbConn,
    candidates: &[String],
    owner: &str,
    lease: Duration,
) -> Result<Option<Webhook>, Error> {
    let at = now();
    let until = at + chrono::Duration::from_std(lease).map_err(Error::internal)?;
    for webhook_id in candidates {
        let taken = diesel::update(webhooks::table.find(webhook_id))
            .filter(
                webhooks::lease_until
                    .is_null()
                    .or(webhooks::lease_until.lt(at)),
            )
            .filter(webhooks::status.eq(WebhookStatus::Enabled.as_str()))
            .set((
                webhooks::lease_owner.eq(owner),
                webhooks::lease_until.eq(until),
            ))
            .execute(conn)?;
        if taken == 1 {
            return Ok(Some(find(conn, webhook_id, None)?));
        }
    }
    Ok(None)
}

/// The events after the endpoint's cursor that it subscribes to, in feed order.
pub fn pending(conn: &mut DbConn, webhook: &Webhook, limit: i64) -> Result<Vec<FeedEvent>, Error> {
    events::read(
        conn,
        &events::FeedQuery {
            organization_id: webhook.organization_id.clone(),
            after: Some(webhook.cursor.clone()),
            types: webhook.event_types.clone(),
            limit,
        },
    )
}

/// Gives the lease back.
pub fn release(conn: &mut DbConn, webhook_id: &str, owner: &str) -> Result<(), Error> {
    diesel::update(webhooks::table.find(webhook_id))
        .filter(webhooks::lease_owner.eq(owner))
        .set((
            webhooks::lease_owner.eq(None::<String>),
            webhooks::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
            && self
                .status_code
                .is_some_and(|code| (200..300).contains(&code))
    }
}

/// When retries are due and when an endpoint gives up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first retry's delay; each further one doubles it, up to `max_delay`, ±20 % jitter.
    pub base: Duration,
    pub max_delay: Duration,
    /// An endpoint failing for this long is disabled, with `webhook.disabled`.
    pub disable_after: Duration,
}

impl RetryPolicy {
    fn delay(&self, attempts: i32) -> Duration {
        let doubled = self
            .base
            .saturating_mul(2u32.saturating_pow(attempts.clamp(1, 30) as u32 - 1))
            .min(self.max_delay);
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).expect("the operating system's random source is available");
        let jitter = 0.8 + 0.4 * (u16::from_le_bytes(random) as f64 / u16::MAX as f64);
        doubled.mul_f64(jitter)
    }
}

/// Records an attempt at `event` by the lease holder `owner`: a success moves the cursor past
/// the event; a failure schedules the retry and, after failing for too long, disables the
/// endpoint. Returns whether to go on with the next event: false after a failure, and when
/// the lease was lost (another process took over).
pub fn record_attempt(
    conn: &mut DbConn,
    webhook: &Webhook,
    event: &FeedEvent,
    owner: &str,
    outcome: &Outcome,
    retry: &RetryPolicy,
) -> Result<bool, Error> {
    let held: Option<(i32, Option<NaiveDateTime>)> = webhooks::table
        .find(&webhook.webhook_id)
        .filter(webhooks::lease_owner.eq(owner))
        .select((webhooks::attempts, webhooks::failing_since))
        .first(conn)
        .optional()?;
    let Some((attempts, failing_since)) = held else {
        return Ok(false);
    };
    let at = now();
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::delivery_id.eq(new_id("delivery")),
            webhook_deliveries::webhook_id.eq(&webhook.webhook_id),
            webhook_deliveries::event_id.eq(&event.event_id),
            webhook_deliveries::attempt.eq(attempts + 1),
            webhook_deliveries::succeeded.eq(outcome.succeeded()),
            webhook_deliveries::status_code.eq(outcome.status_code),
            webhook_deliveries::error.eq(&outcome.error),
            webhook_deliveries::duration_ms.eq(outcome.duration_ms),
            webhook_deliveries::attempted_at.eq(at),
        ))
        .execute(conn)?;
    if outcome.succeeded() {
        diesel::update(webhooks::table.find(&webhook.webhook_id))
            .set((
                webhooks::cursor_position.eq(event.cursor.log_position),
                webhooks::cursor_organization_id.eq(&event.cursor.organization_id),
                webhooks::cursor_sequence.eq(event.cursor.sequence),
                webhooks::attempts.eq(0),
                webhooks::failing_since.eq(None::<NaiveDateTime>),
                webhooks::next_attempt_at.eq(at),
            ))
            .execute(conn)?;
        return Ok(true);
    }
    let failing_since = failing_since.unwrap_or(at);
    let give_up = (at - failing_since)
        .to_std()
        .is_ok_and(|failing| failing >= retry.disable_after);
    let next =
        at + chrono::Duration::from_std(retry.delay(attempts + 1)).map_err(Error::internal)?;
    diesel::update(webhooks::table.find(&webhook.webhook_id))
        .set((
            webhooks::attempts.eq(attempts + 1),
            webhooks::failing_since.eq(Some(failing_since)),
            webhooks::next_attempt_at.eq(next),
            webhooks::status.eq(if give_up {
                WebhookStatus::Disabled.as_str()
            } else {
                WebhookStatus::Enabled.as_str()
            }),
        ))
        .execute(conn)?;
    if give_up {
        let disabled = find(conn, &webhook.webhook_id, None)?;
        record(
            conn,
            &Actor {
                source: super::Source::Api,
                id: "scimd".into(),
            },
            &disabled,
            "webhook.disabled",
            Some(json!(format!(
                "failing since {} ({} attempts; last: {})",
                super::rfc3339(failing_since),
                attempts + 1,
                outcome
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("HTTP {}", outcome.status_code.unwrap_or(0)))
            ))),
        )?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn private_addresses_need_the_operator_s_consent() {
        let strict = UrlPolicy::default();
        for refused in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://100.64.0.1/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(strict.check(refused).is_err(), "{refused}");
        }
        assert!(strict.check("https://hooks.example.com/scimd").is_ok());
        let relaxed = UrlPolicy {
            allow_private: true,
        };
        assert!(relaxed.check("http://127.0.0.1:8080/hook").is_ok());
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter() {
        let retry = RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            disable_after: Duration::from_secs(3600),
        };
        for (attempt, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)] {
            let delay = retry.delay(attempt).as_secs_f64();
            assert!(
                delay >= nominal * 0.8 && delay <= nominal * 1.2,
                "{attempt}: {delay}"
            );
        }
    }
}
