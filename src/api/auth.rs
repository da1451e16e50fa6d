//! Who is calling: SCIM bearer tokens (→ connection → organization) and management JWTs
//! (→ admin, or one organization).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtArgs;
use crate::domain::connections::{self, token_digest, Tenant};
use crate::domain::{Actor, Source};
use crate::error::Error;
use crate::AppState;

/// At most this many verified tokens are remembered; past it the cache starts over.
const TOKEN_CACHE_CAPACITY: usize = 10_000;
const MIN_SECRET_BYTES: usize = 32;

/// Verified SCIM tokens, by digest, for a short time. Entries are dropped at once when this
/// process deletes or rotates the token's connection or organization.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Tenant, Instant)>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Tenant> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(digest)
            .filter(|(_, verified_at)| verified_at.elapsed() < self.ttl)
            .map(|(tenant, _)| tenant.clone())
    }

    fn put(&self, digest: [u8; 32], tenant: Tenant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(digest, (tenant, Instant::now()));
    }

    pub fn forget_connection(&self, connection_id: &str) {
        self.forget(|tenant| tenant.connection_id == connection_id);
    }

    pub fn forget_organization(&self, organization_id: &str) {
        self.forget(|tenant| tenant.organization_id == organization_id);
    }

    fn forget(&self, matches: impl Fn(&Tenant) -> bool) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, (tenant, _)| !matches(tenant));
    }
}

/// The bearer credential of a request, if it has one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|credential| !credential.is_empty())
}

/// The SCIM connection a request speaks for, from its bearer token.
pub struct ScimTenant(pub Tenant);

impl ScimTenant {
    pub fn actor(&self) -> Actor {
        Actor {
            source: Source::Scim,
            id: self.0.connection_id.clone(),
        }
    }
}

impl FromRequest for ScimTenant {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| Error::internal("application state is missing"))?;
            let token = token.ok_or_else(|| Error::Unauthorized {
                error_type: "missing_token",
                message: "send the connection's SCIM token as `Authorization: Bearer <token>`"
                    .into(),
            })?;
            let digest = token_digest(&token);
            if let Some(tenant) = state.tokens.get(&digest) {
                return Ok(ScimTenant(tenant));
            }
            let pool = state.pool.clone();
            let found = web::block(move || {
                let mut conn = pool.get()?;
                connections::authenticate(&mut conn, &token)
            })
            .await??;
            let tenant = found.ok_or_else(|| Error::Unauthorized {
                error_type: "invalid_token",
                message: "the bearer token is not valid for any SCIM connection: it may have been \
                          rotated or its connection deleted"
                    .into(),
            })?;
            state.tokens.put(digest, tenant.clone());
            Ok(ScimTenant(tenant))
        })
    }
}

/// What a management JWT allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Admin,
    /// One organization, by id.
    Organization(String),
}

/// A verified management caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub scope: Scope,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            source: Source::Api,
            id: self.subject.clone(),
        }
    }

    pub fn require_admin(&self) -> Result<(), Error> {
        match self.scope {
            Scope::Admin => Ok(()),
            Scope::Organization(_) => Err(Error::Forbidden {
                error_type: "admin_scope_required",
                message: "this needs a JWT with scope `admin`; an `org:` scope manages only its own organization".into(),
            }),
        }
    }

    /// The one organization this caller is confined to, if any.
    pub fn organization_scope(&self) -> Option<&str> {
        match &self.scope {
            Scope::Admin => None,
            Scope::Organization(organization_id) => Some(organization_id),
        }
    }

    pub fn may_access(&self, organization_id: &str) -> bool {
        self.organization_scope()
            .is_none_or(|scoped| scoped == organization_id)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Checks management JWTs against one configured key and algorithm. Tokens signed with any
/// other algorithm — `none`, or HS256 against a public key — are refused.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtVerifier({:?})", self.validation.algorithms)
    }
}

impl JwtVerifier {
    /// The verifier the arguments describe; `None` when no key is configured, in which case
    /// the management API refuses every request.
    pub fn from_args(args: &JwtArgs) -> Result<Option<Self>, String> {
        let (key, algorithm) = match (&args.secret, &args.public_key_file) {
            (Some(_), Some(_)) => {
                return Err("set SCIMD_JWT_SECRET or SCIMD_JWT_PUBLIC_KEY_FILE, not both".into())
            }
            (None, None) => return Ok(None),
            (Some(secret), None) => {
                check_secret(secret)?;
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                match DecodingKey::from_rsa_pem(&pem) {
                    Ok(key) => (key, Algorithm::RS256),
                    Err(_) => (
                        DecodingKey::from_ec_pem(&pem).map_err(|error| {
                            format!(
                                "{} holds neither an RSA nor an EC public key in PEM: {error}",
                                path.display()
                            )
                        })?,
                        Algorithm::ES256,
                    ),
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp"]);
        match &args.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &args.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Some(JwtVerifier { key, validation }))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, Error> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| {
                let (error_type, message) = match error.kind() {
                    ErrorKind::ExpiredSignature => (
                        "token_expired",
                        "the JWT has expired: issue a new one".to_string(),
                    ),
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => (
                        "invalid_token",
                        format!(
                            "the JWT must be signed with {:?}",
                            self.validation.algorithms[0]
                        ),
                    ),
                    ErrorKind::MissingRequiredClaim(claim) => (
                        "invalid_token",
                        format!("the JWT lacks the required `{claim}` claim"),
                    ),
                    ErrorKind::InvalidIssuer => (
                        "invalid_token",
                        "the JWT's `iss` is not the configured issuer".into(),
                    ),
                    ErrorKind::InvalidAudience => (
                        "invalid_token",
                        "the JWT's `aud` is not the configured audience".into(),
                    ),
                    ErrorKind::InvalidSignature => (
                        "invalid_token",
                        "the JWT's signature does not verify".into(),
                    ),
                    _ => (
                        "invalid_token",
                        format!("the bearer credential is not a valid JWT ({error})"),
                    ),
                };
                Error::Unauthorized {
                    error_type,
                    message,
                }
            })?
            .claims;
        let scope = claims.scope.as_deref().map(parse_scope).unwrap_or(Err(
            "the JWT has no `scope` claim: use `admin` or `org:<organization_id>`",
        ));
        let scope = scope.map_err(|message| Error::Forbidden {
            error_type: "invalid_scope",
            message: message.into(),
        })?;
        Ok(Principal {
            subject: claims.sub.unwrap_or_else(|| "unknown".into()),
            scope,
        })
    }
}

/// `admin` or `org:<organization_id>`; a space-separated list may carry other scopes beside one
/// of these, which are ignored.
fn parse_scope(scope: &str) -> Result<Scope, &'static str> {
    let mut granted = None;
    for item in scope.split_ascii_whitespace() {
        if item == "admin" {
            return Ok(Scope::Admin);
        }
        if let Some(organization_id) = item.strip_prefix("org:") {
            if organization_id.is_empty() {
                return Err("`org:` in the JWT's `scope` needs an organization id after it");
            }
            if granted.is_some() {
                return Err("the JWT names more than one organization in `scope`; use one");
            }
            granted = Some(Scope::Organization(organization_id.to_string()));
        }
    }
    granted.ok_or("the JWT's `scope` grants nothing here: use `admin` or `org:<organization_id>`")
}

fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "SCIMD_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (try `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

/// Signs an HS256 management JWT, for `scimd jwt` and tests.
pub fn issue_jwt(
    args: &JwtArgs,
    scope: &str,
    subject: &str,
    ttl: Duration,
) -> Result<String, String> {
    let secret = args
        .secret
        .as_deref()
        .ok_or("set SCIMD_JWT_SECRET (or --jwt-secret) to sign management JWTs")?;
    check_secret(secret)?;
    parse_scope(scope).map_err(str::to_string)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_secs();
    let claims = Claims {
        sub: Some(subject.to_string()),
        scope: Some(scope.to_string()),
        exp: now + ttl.as_secs(),
        iat: Some(now),
        iss: args.issuer.clone(),
        aud: args.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|error| error.to_string())
}

impl FromRequest for Principal {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(principal(req))
    }
}

fn principal(req: &HttpRequest) -> Result<Principal, Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Error::internal("application state is missing"))?;
    let verifier = state.jwt.as_ref().ok_or_else(|| Error::Unauthorized {
        error_type: "management_api_disabled",
        message: "the management API has no JWT key configured: set SCIMD_JWT_SECRET or SCIMD_JWT_PUBLIC_KEY_FILE".into(),
    })?;
    let token = bearer(req).ok_or_else(|| Error::Unauthorized {
        error_type: "missing_authorization",
        message: "send a management JWT as `Authorization: Bearer <jwt>`".into(),
    })?;
    verifier.verify(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        assert_eq!(parse_scope("admin"), Ok(Scope::Admin));
        assert_eq!(
            parse_scope("read org:organization-1"),
            Ok(Scope::Organization("organization-1".into()))
        );
        assert!(parse_scope("org:a org:b").is_err());
        assert!(parse_scope("members:read").is_err());
    }
}
