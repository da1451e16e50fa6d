//! One error type for every surface. It renders as a JSON error on `/v1` and the operations
//! routes, and as a SCIM Error (RFC 7644 §3.12) under `/scim/v2`, where a middleware
//! re-renders whatever error a request produced (see `api::scim_errors`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const SCIM_ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// The `scimType` values of RFC 7644 §3.12 that a 400 or 409 can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
    TooLarge,
    /// RFC 9865: a cursor this server did not hand out.
    InvalidCursor,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::TooLarge => "tooLarge",
            ScimType::InvalidCursor => "invalidCursor",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or breaks a rule; `error_type` names the rule for `/v1`.
    #[error("{message}")]
    Invalid {
        error_type: &'static str,
        scim_type: ScimType,
        message: String,
    },
    /// 401: no credentials, or credentials that prove nothing.
    #[error("{message}")]
    Unauthorized {
        error_type: &'static str,
        message: String,
    },
    /// 403: valid credentials that do not allow this.
    #[error("{message}")]
    Forbidden {
        error_type: &'static str,
        message: String,
    },
    /// 403: the organization's rules refuse this person (JIT, invites); `reason` is
    /// machine-readable and also the `error_type`.
    #[error("{message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
    /// 404. Resources of another tenant answer this too, exactly as if absent.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: a unique value is taken, or the resource is in a state that forbids this.
    #[error("{message}")]
    Conflict {
        error_type: &'static str,
        message: String,
    },
    /// 412: `If-Match` named a version that is no longer current.
    #[error("the resource changed; its current version is W/\"{0}\"")]
    PreconditionFailed(i64),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 501.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the database could not be reached in time. Worth a retry.
    #[error("the database is unavailable right now; retry shortly")]
    Unavailable(String),
    /// 500. The cause is logged, never shown to the caller.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// A management-API validation error: `error_type` is machine-readable, `message` says
    /// what to fix.
    pub fn invalid(error_type: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            error_type,
            scim_type: ScimType::InvalidValue,
            message: message.into(),
        }
    }

    /// A SCIM validation error with its `scimType`.
    pub fn scim(scim_type: ScimType, message: impl Into<String>) -> Self {
        let error_type = if scim_type == ScimType::InvalidSyntax {
            "invalid_syntax"
        } else {
            "invalid_value"
        };
        Error::Invalid {
            error_type,
            scim_type,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    pub fn refused(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Refused {
            reason,
            message: message.into(),
        }
    }

    pub fn conflict(error_type: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            error_type,
            message: message.into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    /// The error for a status that actix produced on its own (no route, wrong method, a
    /// body it could not read), so that those answers carry our shape too.
    pub fn from_status(status: StatusCode, detail: Option<String>) -> Self {
        let detail = detail.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        });
        match status.as_u16() {
            400 => Error::scim(ScimType::InvalidSyntax, detail),
            401 => Error::Unauthorized {
                error_type: "unauthorized",
                message: detail,
            },
            403 => Error::Forbidden {
                error_type: "forbidden",
                message: detail,
            },
            404 => Error::NotFound("no such resource or endpoint".into()),
            405 => Error::MethodNotAllowed(format!(
                "{detail}: this endpoint does not take that method"
            )),
            409 => Error::conflict("conflict", detail),
            413 => Error::PayloadTooLarge(detail),
            501 => Error::NotImplemented(detail),
            503 => Error::Unavailable(detail),
            _ => Error::Internal(detail),
        }
    }

    /// The machine-readable kind shown as `error_type` on `/v1`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Invalid { error_type, .. }
            | Error::Unauthorized { error_type, .. }
            | Error::Forbidden { error_type, .. }
            | Error::Conflict { error_type, .. } => error_type,
            Error::Refused { reason, .. } => reason,
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::PreconditionFailed(_) => "precondition_failed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::NotImplemented(_) => "not_implemented",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    pub fn scim_type(&self) -> Option<ScimType> {
        match self {
            Error::Invalid { scim_type, .. } => Some(*scim_type),
            Error::Conflict { .. } => Some(ScimType::Uniqueness),
            Error::PayloadTooLarge(_) => Some(ScimType::TooLarge),
            _ => None,
        }
    }

    /// The error as RFC 7644 §3.12 renders it: `status` is a string, `scimType` only where
    /// the RFC defines one.
    /// (The error was logged when it was first rendered; this only reshapes it.)
    pub fn scim_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scimd\""));
        }
        response
            .content_type(SCIM_CONTENT_TYPE)
            .json(self.scim_body())
    }

    /// The SCIM Error document alone, as a bulk operation's `response` carries it.
    pub fn scim_body(&self) -> serde_json::Value {
        serde_json::to_value(ScimErrorBody {
            schemas: [SCIM_ERROR_URN],
            status: self.status_code().as_u16().to_string(),
            scim_type: self.scim_type().map(ScimType::as_str),
            detail: self.to_string(),
        })
        .expect("errors serialize")
    }

    /// Logs what the caller is not shown (internal and unavailable causes).
    pub fn log_cause(&self) {
        self.log();
    }

    fn log(&self) {
        if let Error::Internal(cause) | Error::Unavailable(cause) = self {
            log::error!("{}: {cause}", self.error_type());
        }
    }
}

#[derive(Serialize)]
struct ScimErrorBody {
    schemas: [&'static str; 1],
    status: String,
    #[serde(rename = "scimType", skip_serializing_if = "Option::is_none")]
    scim_type: Option<&'static str>,
    detail: String,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    status_code: u16,
    error_type: &'a str,
    error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } | Error::Refused { .. } => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scimd\""));
        }
        response.json(ApiErrorBody {
            status_code: status.as_u16(),
            error_type: self.error_type(),
            error_message: self.to_string(),
            reason: match self {
                Error::Refused { reason, .. } => Some(reason),
                _ => None,
            },
        })
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as Diesel};
        match error {
            Diesel::NotFound => Error::NotFound("no such resource".into()),
            // Callers that expect a particular unique index map this to a precise message
            // first; reaching here means a race that the index settled.
            Diesel::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => Error::conflict(
                "uniqueness",
                format!("a unique value is already taken ({})", info.message()),
            ),
            Diesel::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                Error::Unavailable("serialization failure".into())
            }
            // A concurrent change removed what this write refers to (a connection deleted
            // mid-request): the request can no longer succeed as sent.
            Diesel::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => Error::conflict(
                "conflict",
                "something this request refers to was deleted while it ran",
            ),
            // PostgreSQL broke a deadlock by aborting this transaction: a retry will succeed.
            Diesel::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                Error::Unavailable(format!("database: {}", info.message()))
            }
            // PostgreSQL refuses NUL characters in text (SQLSTATE 22021), e.g. in an id taken
            // from the URL.
            Diesel::DatabaseError(_, info) if info.message().contains("invalid byte sequence") => {
                Error::scim(
                    ScimType::InvalidValue,
                    "the request holds a NUL character, which no value may contain",
                )
            }
            // SQLite's busy timeout ran out under write contention: a retry will succeed.
            Diesel::DatabaseError(_, info) if info.message().contains("database is locked") => {
                Error::Unavailable(format!("database: {}", info.message()))
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Error::Unavailable(format!("connection pool: {error}"))
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Error::Internal(format!("blocking task: {error}"))
    }
}
