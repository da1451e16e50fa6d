//! Flags and environment → settings. Every flag has an environment fallback, so the same
//! binary is configured by a container's environment or by hand.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// SQLite path (the embedded default) or a postgres:// URL.
    #[arg(long, env = "DATABASE_URL", default_value = "scimd.db", global = true)]
    pub database_url: String,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PublicUrlArgs {
    /// The URL IdPs reach scimd at, e.g. https://scim.example.com; used for SCIM `location`
    /// and the base URL shown for connections. Without it, each request's Host is used.
    #[arg(long, env = "SCIMD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct JwtArgs {
    /// HS256 secret for management JWTs (at least 32 bytes).
    #[arg(
        long = "jwt-secret",
        env = "SCIMD_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub secret: Option<String>,
    /// PEM file with an RS256 or ES256 public key for management JWTs (instead of a secret).
    #[arg(
        long = "jwt-public-key-file",
        env = "SCIMD_JWT_PUBLIC_KEY_FILE",
        global = true
    )]
    pub public_key_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    #[arg(long = "jwt-issuer", env = "SCIMD_JWT_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long = "jwt-audience", env = "SCIMD_JWT_AUDIENCE", global = true)]
    pub audience: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIMD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SCIMD_WORKERS")]
    pub workers: Option<usize>,
    /// Database connections in the pool.
    #[arg(long, env = "SCIMD_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "SCIMD_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,
    /// How long a process may reuse a verified SCIM token without asking the database again.
    /// Deleting or rotating a token takes effect at once in the process that did it, and
    /// within this time in other processes sharing the database. 0 disables the cache.
    #[arg(long, env = "SCIMD_TOKEN_CACHE_TTL_MS", default_value_t = 2000)]
    pub token_cache_ttl_ms: u64,
    /// Days an event stays readable in /v1/events before it is pruned; 0 keeps every event.
    #[arg(long, env = "SCIMD_EVENT_RETENTION_DAYS", default_value_t = 30)]
    pub event_retention_days: u64,
    /// Threads delivering webhooks in this process; 0 leaves delivery to other processes.
    #[arg(long, env = "SCIMD_WEBHOOK_WORKERS", default_value_t = 2)]
    pub webhook_workers: usize,
    /// Delay before the first retry of a failed delivery; each further retry doubles it (up
    /// to an hour), with jitter.
    #[arg(long, env = "SCIMD_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,
    /// An endpoint that keeps failing this long is disabled (event webhook.disabled).
    #[arg(long, env = "SCIMD_WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = 72)]
    pub webhook_disable_after_hours: u64,
    /// How long a receiver has to answer a delivery.
    #[arg(long, env = "SCIMD_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Allow webhook URLs on private, loopback and link-local addresses.
    #[arg(long, env = "SCIMD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
}

impl ServeArgs {
    pub fn webhook_urls(&self) -> crate::domain::webhooks::UrlPolicy {
        crate::domain::webhooks::UrlPolicy {
            allow_private: self.webhook_allow_private,
        }
    }

    pub fn delivery(&self) -> crate::delivery::DeliverySettings {
        let timeout = Duration::from_millis(self.webhook_timeout_ms.max(1));
        crate::delivery::DeliverySettings {
            workers: self.webhook_workers,
            retry: crate::domain::webhooks::RetryPolicy {
                base: Duration::from_millis(self.webhook_retry_base_ms.max(1)),
                max_delay: Duration::from_secs(3600),
                disable_after: Duration::from_secs(self.webhook_disable_after_hours * 3600),
            },
            timeout,
            urls: self.webhook_urls(),
            idle: Duration::from_millis(500),
            lease: timeout * 3 + Duration::from_secs(30),
        }
    }

    pub fn event_retention(&self) -> Option<Duration> {
        (self.event_retention_days > 0)
            .then(|| Duration::from_secs(self.event_retention_days * 86_400))
    }

    pub fn token_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.token_cache_ttl_ms)
    }
}

/// The base URL for links: the configured public URL, else the request's scheme and host.
pub fn base_url(public_url: Option<&str>, request_scheme: &str, request_host: &str) -> String {
    match public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("{request_scheme}://{request_host}"),
    }
}
