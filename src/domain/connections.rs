//! SCIM connections and their bearer tokens. A connection is one IdP's view into one
//! organization; its token is how the IdP proves which connection it speaks for.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::events::{self, previous_values, Event};
use super::{new_id, now, organizations, Actor};
use crate::db::schema::{scim_connections, scim_tokens};
use crate::db::DbConn;
use crate::error::Error;

const TOKEN_PREFIX: &str = "scimd_";
const MAX_DISPLAY_NAME_CHARS: usize = 128;
const CURRENT: &str = "current";
const NEXT: &str = "next";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityProvider {
    Okta,
    MicrosoftEntra,
    Onelogin,
    Jumpcloud,
    GoogleWorkspace,
    Generic,
}

impl IdentityProvider {
    pub const NAMES: &'static [&'static str] = &[
        "okta",
        "microsoft-entra",
        "onelogin",
        "jumpcloud",
        "google-workspace",
        "generic",
    ];

    pub fn parse(name: &str) -> Result<Self, Error> {
        serde_json::from_value(Value::String(name.to_string())).map_err(|_| {
            Error::invalid(
                "invalid_identity_provider",
                format!(
                    "identity_provider `{name}` is not one of {}",
                    Self::NAMES.join(", ")
                ),
            )
        })
    }

    fn default_display_name(self) -> &'static str {
        match self {
            IdentityProvider::Okta => "Okta",
            IdentityProvider::MicrosoftEntra => "Microsoft Entra ID",
            IdentityProvider::Onelogin => "OneLogin",
            IdentityProvider::Jumpcloud => "JumpCloud",
            IdentityProvider::GoogleWorkspace => "Google Workspace",
            IdentityProvider::Generic => "SCIM",
        }
    }
}

/// The organization and connection a SCIM token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub organization_id: String,
    pub connection_id: String,
}

/// A plaintext bearer token, only ever held to be shown once. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BearerToken(String);

impl BearerToken {
    /// 256 random bits from the operating system, hex-encoded behind a recognisable prefix.
    fn generate() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source is available");
        BearerToken(format!("{TOKEN_PREFIX}{}", hex::encode(secret)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn last_four(&self) -> String {
        self.0[self.0.len() - 4..].to_string()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerToken(…{})", self.last_four())
    }
}

/// The SHA-256 of a presented token: what the database keeps and what lookups use.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub connection_id: String,
    pub organization_id: String,
    pub display_name: String,
    pub identity_provider: IdentityProvider,
    pub bearer_token_last_four: String,
    /// Set while a rotation is under way: the second token that also authenticates.
    pub next_bearer_token_last_four: Option<String>,
    #[serde(with = "super::timestamp")]
    pub created_at: NaiveDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: NaiveDateTime,
}

/// A connection together with a token that was just made, to be shown this one time.
#[derive(Debug)]
pub struct Issued {
    pub connection: Connection,
    pub token: BearerToken,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFields {
    pub display_name: Option<String>,
    pub identity_provider: Option<IdentityProvider>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = scim_connections)]
struct ConnectionRow {
    connection_id: String,
    organization_id: String,
    display_name: String,
    identity_provider: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Creates a connection in the organization with its first token.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    fields: ConnectionFields,
) -> Result<Issued, Error> {
    let organization = organizations::find(conn, organization_id)?;
    let identity_provider = fields
        .identity_provider
        .unwrap_or(IdentityProvider::Generic);
    let display_name = match fields.display_name {
        Some(name) => validate_display_name(&name)?,
        None => identity_provider.default_display_name().to_string(),
    };
    let connection_id = new_id("scim-connection");
    let at = now();
    diesel::insert_into(scim_connections::table)
        .values((
            scim_connections::connection_id.eq(&connection_id),
            scim_connections::organization_id.eq(&organization.organization_id),
            scim_connections::display_name.eq(&display_name),
            scim_connections::identity_provider.eq(provider_name(identity_provider)),
            scim_connections::version.eq(1),
            scim_connections::created_at.eq(at),
            scim_connections::updated_at.eq(at),
        ))
        .execute(conn)?;
    let token = insert_token(conn, &organization.organization_id, &connection_id, CURRENT)?;
    let connection = find(conn, &organization.organization_id, &connection_id)?;
    record(actor, &connection, "scim_connection.created", None)?;
    Ok(Issued { connection, token })
}

/// The connection `connection_id` of the organization; another organization's answers 404.
pub fn find(
    conn: &mut DbConn,
    organization_id: &str,
    connection_id: &str,
) -> Result<Connection, Error> {
    let row = scim_connections::table
        .filter(scim_connections::organization_id.eq(organization_id))
        .filter(scim_connections::connection_id.eq(connection_id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            Error::not_found(format!(
                "no SCIM connection `{connection_id}` in this organization"
            ))
        })?;
    let tokens = token_last_fours(conn, &[row.connection_id.as_str()])?;
    into_connection(row, &tokens)
}

/// The tenant a connection id names (for operators' commands, which hold no token).
pub fn tenant_of(conn: &mut DbConn, connection_id: &str) -> Result<Tenant, Error> {
    let organization_id: String = scim_connections::table
        .find(connection_id)
        .select(scim_connections::organization_id)
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("no SCIM connection `{connection_id}`")))?;
    Ok(Tenant {
        organization_id,
        connection_id: connection_id.to_string(),
    })
}

/// Every connection of the organization, oldest first.
pub fn list(conn: &mut DbConn, organization_id: &str) -> Result<Vec<Connection>, Error> {
    let rows: Vec<ConnectionRow> = scim_connections::table
        .filter(scim_connections::organization_id.eq(organization_id))
        .order((
            scim_connections::created_at.asc(),
            scim_connections::connection_id.asc(),
        ))
        .select(ConnectionRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|row| row.connection_id.as_str()).collect();
    let tokens = token_last_fours(conn, &ids)?;
    rows.into_iter()
        .map(|row| into_connection(row, &tokens))
        .collect()
}

/// Changes the display name or identity provider.
pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    connection_id: &str,
    fields: ConnectionFields,
) -> Result<Connection, Error> {
    let key = [
        ("organization_id", organization_id),
        ("connection_id", connection_id),
    ];
    crate::db::hold_row(conn, "scim_connections", &key)?;
    let before = find(conn, organization_id, connection_id)?;
    let mut after = before.clone();
    if let Some(name) = fields.display_name {
        after.display_name = validate_display_name(&name)?;
    }
    if let Some(provider) = fields.identity_provider {
        after.identity_provider = provider;
    }
    let Some(previous) = previous_values(&to_value(&before), &to_value(&after)) else {
        return Ok(before);
    };
    after.updated_at = now();
    diesel::update(scim_connections::table.find(connection_id))
        .set((
            scim_connections::display_name.eq(&after.display_name),
            scim_connections::identity_provider.eq(provider_name(after.identity_provider)),
            scim_connections::version.eq(scim_connections::version + 1),
            scim_connections::updated_at.eq(after.updated_at),
        ))
        .execute(conn)?;
    record(actor, &after, "scim_connection.updated", Some(previous))?;
    Ok(after)
}

/// Deletes the connection; its tokens stop authenticating when this commits.
pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    connection_id: &str,
) -> Result<(), Error> {
    let connection = find(conn, organization_id, connection_id)?;
    // Its users stay members without a SCIM registration, and so without email rows.
    diesel::delete(
        crate::db::schema::member_emails::table
            .filter(crate::db::schema::member_emails::connection_id.eq(connection_id)),
    )
    .execute(conn)?;
    diesel::delete(scim_connections::table.find(connection_id)).execute(conn)?;
    events::record(
        organization_id,
        actor,
        Event {
            event_type: "scim_connection.deleted",
            subject_id: &connection.connection_id,
            data: serde_json::json!({ "connection_id": connection.connection_id }),
            previous: None,
        },
    )?;
    Ok(())
}

/// Starts a rotation: a second token is made and both authenticate until the rotation is
/// completed or cancelled. One rotation at a time.
pub fn start_rotation(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    connection_id: &str,
) -> Result<Issued, Error> {
    let before = find(conn, organization_id, connection_id)?;
    if before.next_bearer_token_last_four.is_some() {
        return Err(Error::conflict(
            "token_rotation_in_progress",
            "a token rotation is already under way: complete or cancel it before starting another",
        ));
    }
    let token = insert_token(conn, organization_id, connection_id, NEXT)?;
    let connection = find(conn, organization_id, connection_id)?;
    record(
        actor,
        &connection,
        "scim_connection.token_rotation_started",
        None,
    )?;
    Ok(Issued { connection, token })
}

/// Completes a rotation: the old token dies and the new one becomes the only one.
pub fn complete_rotation(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    connection_id: &str,
) -> Result<Connection, Error> {
    ensure_rotating(conn, organization_id, connection_id)?;
    diesel::delete(tokens_of(connection_id, CURRENT)).execute(conn)?;
    diesel::update(tokens_of(connection_id, NEXT))
        .set(scim_tokens::state.eq(CURRENT))
        .execute(conn)?;
    let connection = find(conn, organization_id, connection_id)?;
    record(
        actor,
        &connection,
        "scim_connection.token_rotation_completed",
        None,
    )?;
    Ok(connection)
}

/// Cancels a rotation: the new token dies and the old one stays.
pub fn cancel_rotation(
    conn: &mut DbConn,
    actor: &Actor,
    organization_id: &str,
    connection_id: &str,
) -> Result<Connection, Error> {
    ensure_rotating(conn, organization_id, connection_id)?;
    diesel::delete(tokens_of(connection_id, NEXT)).execute(conn)?;
    let connection = find(conn, organization_id, connection_id)?;
    record(
        actor,
        &connection,
        "scim_connection.token_rotation_cancelled",
        None,
    )?;
    Ok(connection)
}

/// The tenant a presented bearer token speaks for, if any.
///
/// The lookup is by the token's SHA-256, whose index position tells an attacker nothing they
/// can steer; the stored digest is then compared in constant time all the same.
pub fn authenticate(conn: &mut DbConn, presented: &str) -> Result<Option<Tenant>, Error> {
    if !presented.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let digest = token_digest(presented);
    let digest_hex = hex::encode(digest);
    let found: Option<(String, String, String)> = scim_tokens::table
        .find(&digest_hex)
        .select((
            scim_tokens::token_hash,
            scim_tokens::organization_id,
            scim_tokens::connection_id,
        ))
        .first(conn)
        .optional()?;
    Ok(found.and_then(|(stored, organization_id, connection_id)| {
        bool::from(stored.as_bytes().ct_eq(digest_hex.as_bytes())).then_some(Tenant {
            organization_id,
            connection_id,
        })
    }))
}

/// The tenant's connection must still exist: a token remembered by another process may
/// outlive it for a moment (README: token cache), and nothing may be written for a deleted
/// connection.
pub fn ensure_exists(conn: &mut DbConn, tenant: &Tenant) -> Result<(), Error> {
    let exists = scim_connections::table
        .find(&tenant.connection_id)
        .filter(scim_connections::organization_id.eq(&tenant.organization_id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !exists {
        return Err(gone());
    }
    Ok(())
}

/// The answer to a request whose token's connection was deleted since it authenticated.
pub fn gone() -> Error {
    Error::Unauthorized {
        error_type: "invalid_token",
        message: "the bearer token's SCIM connection no longer exists".into(),
    }
}

fn ensure_rotating(
    conn: &mut DbConn,
    organization_id: &str,
    connection_id: &str,
) -> Result<(), Error> {
    if find(conn, organization_id, connection_id)?
        .next_bearer_token_last_four
        .is_none()
    {
        return Err(Error::conflict(
            "no_token_rotation",
            "no token rotation is under way: start one with rotate/start",
        ));
    }
    Ok(())
}

/// The token of the connection in the given state (`current` or `next`).
#[diesel::dsl::auto_type(no_type_alias)]
fn tokens_of<'a>(connection_id: &'a str, state: &'a str) -> _ {
    scim_tokens::table
        .filter(scim_tokens::connection_id.eq(connection_id))
        .filter(scim_tokens::state.eq(state))
}

fn insert_token(
    conn: &mut DbConn,
    organization_id: &str,
    connection_id: &str,
    state: &str,
) -> Result<BearerToken, Error> {
    let token = BearerToken::generate();
    diesel::insert_into(scim_tokens::table)
        .values((
            scim_tokens::token_hash.eq(hex::encode(token_digest(token.expose()))),
            scim_tokens::connection_id.eq(connection_id),
            scim_tokens::organization_id.eq(organization_id),
            scim_tokens::last_four.eq(token.last_four()),
            scim_tokens::state.eq(state),
            scim_tokens::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(token)
}

/// (connection_id, state, last_four) of the tokens of these connections.
fn token_last_fours(
    conn: &mut DbConn,
    connection_ids: &[&str],
) -> Result<Vec<(String, String, String)>, Error> {
    Ok(scim_tokens::table
        .filter(scim_tokens::connection_id.eq_any(connection_ids))
        .select((
            scim_tokens::connection_id,
            scim_tokens::state,
            scim_tokens::last_four,
        ))
        .load(conn)?)
}

fn into_connection(
    row: ConnectionRow,
    tokens: &[(String, String, String)],
) -> Result<Connection, Error> {
    let last_four = |state: &str| {
        tokens
            .iter()
            .find(|(connection_id, token_state, _)| {
                *connection_id == row.connection_id && token_state == state
            })
            .map(|(_, _, last_four)| last_four.clone())
    };
    Ok(Connection {
        bearer_token_last_four: last_four(CURRENT).ok_or_else(|| {
            Error::internal(format!(
                "connection {} has no current token",
                row.connection_id
            ))
        })?,
        next_bearer_token_last_four: last_four(NEXT),
        identity_provider: IdentityProvider::parse(&row.identity_provider).map_err(|_| {
            Error::internal(format!(
                "stored identity provider `{}`",
                row.identity_provider
            ))
        })?,
        connection_id: row.connection_id,
        organization_id: row.organization_id,
        display_name: row.display_name,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn provider_name(provider: IdentityProvider) -> String {
    match serde_json::to_value(provider) {
        Ok(Value::String(name)) => name,
        _ => unreachable!("identity providers serialize as strings"),
    }
}

fn validate_display_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::invalid(
            "invalid_display_name",
            format!("display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

fn to_value(connection: &Connection) -> Value {
    serde_json::to_value(connection).expect("connection serializes")
}

fn record(
    actor: &Actor,
    connection: &Connection,
    event_type: &'static str,
    previous: Option<Value>,
) -> Result<(), Error> {
    events::record(
        &connection.organization_id,
        actor,
        Event {
            event_type,
            subject_id: &connection.connection_id,
            data: to_value(connection),
            previous,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_behind_the_prefix() {
        let token = BearerToken::generate();
        assert!(token.expose().starts_with("scimd_"));
        assert_eq!(token.expose().len(), "scimd_".len() + 64);
        assert_ne!(token, BearerToken::generate());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = BearerToken::generate();
        let shown = format!("{token:?}");
        assert!(!shown.contains(&token.expose()[6..20]), "{shown}");
    }

    #[test]
    fn identity_providers_parse_by_their_documented_names() {
        for name in IdentityProvider::NAMES {
            assert_eq!(provider_name(IdentityProvider::parse(name).unwrap()), *name);
        }
        assert!(IdentityProvider::parse("azure").is_err());
    }
}
