//! The scimd command line: serve, migrate, and the bootstrap commands operators and scripts
//! use without a JWT. Commands print JSON on stdout.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::web;
use clap::{Parser, Subcommand};
use serde_json::json;

use scimd::api::auth::{issue_jwt, JwtVerifier, TokenCache};
use scimd::api::v1::issued_body;
use scimd::config::{base_url, DatabaseArgs, JwtArgs, PublicUrlArgs, ServeArgs};
use scimd::db;
use scimd::delivery::Delivery;
use scimd::domain::connections::{self, ConnectionFields, IdentityProvider};
use scimd::domain::organizations::{self, OrganizationFields};
use scimd::domain::scim_users;
use scimd::domain::Actor;
use scimd::error::Error;
use scimd::AppState;

#[derive(Parser)]
#[command(
    name = "scimd",
    version,
    about = "Multi-tenant SCIM 2.0 provisioning server"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    public_url: PublicUrlArgs,
    #[command(flatten)]
    jwt: JwtArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrating the database first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// SCIM connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Print a management JWT signed with SCIMD_JWT_SECRET (HS256), for development and scripts.
    Jwt {
        /// `admin`, or `org:<organization_id>`.
        #[arg(long)]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_s: u64,
        /// The `sub` claim: who the event log names as the actor.
        #[arg(long, default_value = "cli")]
        subject: String,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        /// An email domain the organization owns (repeatable).
        #[arg(long = "domain")]
        domains: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Create a SCIM connection; prints its bearer token, which is shown this one time only.
    Create {
        /// The organization's id or slug.
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "generic", value_parser = clap::builder::PossibleValuesParser::new(IdentityProvider::NAMES))]
        idp: String,
        /// Display name (default: the identity provider's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Provision users into a connection as its IdP would (POST /Users), many to a
    /// transaction: from a file of SCIM User documents, one JSON object a line, or
    /// generated (`--generate`, for benchmarks). Same rules and events as SCIM; a user that
    /// fails is reported and skipped.
    ImportUsers {
        /// The connection's id.
        #[arg(long)]
        connection: String,
        /// JSON lines of SCIM User documents (`-` for standard input).
        #[arg(
            long,
            conflicts_with = "generate",
            required_unless_present = "generate"
        )]
        file: Option<std::path::PathBuf>,
        /// Generate this many users `<prefix>-<n>@bench.test` instead.
        #[arg(long)]
        generate: Option<u64>,
        #[arg(long, default_value = "import")]
        prefix: String,
        /// Users per transaction; the new ones of a batch are inserted together.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(ref args) => serve(&cli, args),
        Command::Migrate => db::connect(&cli.database.database_url, 1).and_then(|pool| {
            let applied = db::migrate(&mut *pool.get()?)?;
            Ok(json!({ "applied_migrations": applied }))
        }),
        Command::Org(OrgCommand::Create {
            ref name,
            ref slug,
            ref domains,
        }) => {
            let fields = OrganizationFields {
                organization_name: Some(name.clone()),
                organization_slug: Some(slug.clone()),
                email_allowed_domains: Some(domains.clone()),
                ..Default::default()
            };
            run_write(&cli, |tx| organizations::create(tx, &Actor::cli(), fields))
                .map(|organization| json!({ "organization": organization }))
        }
        Command::Connection(ConnectionCommand::Create {
            ref org,
            ref idp,
            ref name,
        }) => {
            IdentityProvider::parse(idp).and_then(|identity_provider| {
                let fields = ConnectionFields {
                    display_name: name.clone(),
                    identity_provider: Some(identity_provider),
                };
                let issued = run_write(&cli, |tx| {
                    let organization = organizations::find(tx, org)?;
                    connections::create(tx, &Actor::cli(), &organization.organization_id, fields)
                })?;
                // The server's default address, unless told where IdPs will reach it.
                let base = base_url(
                    cli.public_url.public_url.as_deref(),
                    "http",
                    "127.0.0.1:8080",
                );
                Ok(issued_body(&issued, &base, "bearer_token"))
            })
        }
        Command::Connection(ConnectionCommand::ImportUsers {
            ref connection,
            ref file,
            generate,
            ref prefix,
            batch,
        }) => import_users(&cli, connection, file.as_deref(), generate, prefix, batch),
        Command::Jwt {
            ref scope,
            ttl_s,
            ref subject,
        } => issue_jwt(&cli.jwt, scope, subject, Duration::from_secs(ttl_s))
            .map(|token| json!({ "token": token, "scope": scope, "expires_in": ttl_s }))
            .map_err(|message| Error::invalid("invalid_jwt_request", message)),
    };
    match outcome {
        Ok(output) if output.is_null() => ExitCode::SUCCESS,
        Ok(output) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&output).expect("JSON serializes")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("scimd: {error}");
            ExitCode::FAILURE
        }
    }
}

fn open(database: &DatabaseArgs, pool_size: u32) -> Result<db::Pool, Error> {
    let pool = db::connect(&database.database_url, pool_size)?;
    db::migrate(&mut *pool.get()?)?;
    Ok(pool)
}

/// `scimd connection import-users`: documents in batches of `batch`, one transaction each;
/// one bad document costs only itself (`scim_users::create_many`).
fn import_users(
    cli: &Cli,
    connection: &str,
    file: Option<&std::path::Path>,
    generate: Option<u64>,
    prefix: &str,
    batch: usize,
) -> Result<serde_json::Value, Error> {
    use std::io::BufRead;
    let pool = open(&cli.database, 1)?;
    let mut conn = pool.get()?;
    let tenant = connections::tenant_of(&mut conn, connection)?;
    let documents: Box<dyn Iterator<Item = Result<serde_json::Value, String>>> =
        match (file, generate) {
            (_, Some(count)) => Box::new((0..count).map(move |n| {
                let name = format!("{prefix}-{n}@bench.test");
                Ok(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name, "externalId": name,
                    "name": {"givenName": "Bench", "familyName": format!("User {n}")},
                    "emails": [{"value": name, "type": "work", "primary": true}],
                    "active": true
                }))
            })),
            (Some(path), None) => {
                let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
                    Box::new(std::io::stdin().lock())
                } else {
                    Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(
                        |error| {
                            Error::invalid("invalid_file", format!("{}: {error}", path.display()))
                        },
                    )?))
                };
                Box::new(
                    reader
                        .lines()
                        .filter(|line| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
                        .map(|line| {
                            let line = line.map_err(|error| error.to_string())?;
                            serde_json::from_str(&line).map_err(|error| error.to_string())
                        }),
                )
            }
            (None, None) => {
                return Err(Error::invalid("missing_field", "give --file or --generate"))
            }
        };
    let actor = Actor::cli();
    let started = std::time::Instant::now();
    let (mut imported, mut failed, mut line) = (0u64, 0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    let mut documents = documents.peekable();
    while documents.peek().is_some() {
        let chunk: Vec<_> = documents.by_ref().take(batch.max(1)).collect();
        let mut documents = Vec::with_capacity(chunk.len());
        let parse_errors: Vec<Option<String>> = chunk
            .into_iter()
            .map(|document| document.map(|document| documents.push(document)).err())
            .collect();
        let mut outcomes = db::write(&mut conn, |tx| {
            scim_users::create_many(tx, &tenant, &actor, &documents)
        })?
        .into_iter();
        for parse_error in parse_errors {
            line += 1;
            let outcome = match parse_error {
                Some(error) => Err(format!("not JSON: {error}")),
                None => outcomes
                    .next()
                    .expect("an outcome for every document")
                    .map(drop)
                    .map_err(|error| error.to_string()),
            };
            match outcome {
                Ok(()) => imported += 1,
                Err(error) => {
                    failed += 1;
                    if errors.len() < 10 {
                        errors.push(format!("user {line}: {error}"));
                    }
                }
            }
        }
    }
    // A large import changes the tables' shape: plan by it before anything serves from them.
    db::refresh_statistics_after_load(&mut conn)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "connection_id": connection,
        "imported": imported,
        "failed": failed,
        "first_errors": errors,
        "seconds": (seconds * 10.0).round() / 10.0,
        "users_per_second": (imported as f64 / seconds.max(1e-9)).round(),
    }))
}

fn run_write<T>(
    cli: &Cli,
    change: impl FnOnce(&mut db::DbConn) -> Result<T, Error>,
) -> Result<T, Error> {
    let pool = open(&cli.database, 1)?;
    let mut conn = pool.get()?;
    db::write(&mut conn, change)
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<serde_json::Value, Error> {
    let jwt = JwtVerifier::from_args(&cli.jwt)
        .map_err(|message| Error::invalid("invalid_configuration", message))?;
    if jwt.is_none() {
        log::warn!("no SCIMD_JWT_SECRET or SCIMD_JWT_PUBLIC_KEY_FILE: the management API (/v1) refuses every request");
    }
    let pool = open(&cli.database, args.pool_size)?;
    // Plan by the tables as they are now; server() refreshes this every hour.
    let mut conn = pool.get()?;
    if db::autovacuum_off(&mut conn)? {
        log::warn!(
            "PostgreSQL runs with autovacuum off: dead rows pile up and plans go stale; scimd \
             analyzes its tables at start and hourly, but turn autovacuum on"
        );
    }
    db::refresh_statistics(&mut conn)?;
    drop(conn);
    let backend = db::Manager::new(&cli.database.database_url).backend();
    let listener = TcpListener::bind(&args.bind).map_err(|error| {
        Error::invalid(
            "invalid_configuration",
            format!("cannot listen on {}: {error}", args.bind),
        )
    })?;
    log::info!(
        "scimd listening on http://{} ({} database)",
        listener.local_addr().map_err(Error::internal)?,
        backend.as_str()
    );
    let state = web::Data::new(AppState {
        pool: pool.clone(),
        backend,
        public_url: cli.public_url.public_url.clone(),
        jwt,
        tokens: TokenCache::new(args.token_cache_ttl()),
        max_body_bytes: args.max_body_bytes,
        events: Default::default(),
        event_retention: args.event_retention(),
        webhook_urls: args.webhook_urls(),
        delivery: (args.webhook_workers > 0)
            .then(|| Delivery::start(pool.clone(), args.delivery())),
    });
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    actix_web::rt::System::new()
        .block_on(async move { scimd::server(state, listener, workers)?.await })
        .map_err(|error| Error::internal(format!("server: {error}")))?;
    log::info!("scimd stopped");
    Ok(serde_json::Value::Null)
}
