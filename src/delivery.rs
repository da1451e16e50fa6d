//! Webhook delivery: a few threads per process, each taking the lease of an endpoint with
//! events to deliver, posting them one at a time in feed order, and recording each attempt.
//! State lives in the database (domain::webhooks), so any number of processes share the work
//! and none loses an event when another dies: a lease runs out and someone else resumes.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::db::{self, Pool};
use crate::domain::webhooks::{self, Outcome, RetryPolicy, UrlPolicy, Webhook};
use crate::error::Error;

/// How delivery behaves; `scimd serve` flags.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    pub workers: usize,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub urls: UrlPolicy,
    /// How long a worker sleeps when nothing is due.
    pub idle: Duration,
    /// How long a taken endpoint stays taken without being renewed.
    pub lease: Duration,
}

/// Events taken per lease.
const BATCH: i64 = 50;
/// The response body read from a receiver, at most (for the attempt log).
const MAX_RESPONSE_BYTES: u64 = 4096;

/// The running workers; dropping it stops them after their current delivery.
pub struct Delivery {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Delivery {
    pub fn start(pool: Pool, settings: DeliverySettings) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..settings.workers)
            .map(|n| {
                let pool = pool.clone();
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("webhooks-{n}"))
                    .spawn(move || run(pool, settings, stop))
                    .expect("a webhook delivery thread starts")
            })
            .collect();
        Delivery { stop, threads }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn run(pool: Pool, settings: DeliverySettings, stop: Arc<AtomicBool>) {
    let owner = crate::domain::new_id("deliverer");
    let agent = ureq::AgentBuilder::new()
        .timeout(settings.timeout)
        .redirects(0)
        .build();
    while !stop.load(Ordering::SeqCst) {
        match work_once(&pool, &agent, &settings, &owner, &stop) {
            Ok(true) => {}
            Ok(false) => sleep_unless_stopped(settings.idle, &stop),
            Err(error) => {
                log::warn!("webhook delivery: {error}");
                sleep_unless_stopped(settings.idle, &stop);
            }
        }
    }
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(duration));
    }
}

/// Takes one due endpoint and delivers its pending events until one fails, the batch ends or
/// the lease is lost. Returns whether there was anything to do.
fn work_once(
    pool: &Pool,
    agent: &ureq::Agent,
    settings: &DeliverySettings,
    owner: &str,
    stop: &AtomicBool,
) -> Result<bool, Error> {
    // A connection is taken for each step and given back before any HTTP request, so slow
    // receivers never hold the pool.
    let due = db::read(&mut *pool.get()?, webhooks::due)?;
    if due.is_empty() {
        return Ok(false);
    }
    let (holder, lease) = (owner.to_string(), settings.lease);
    let Some(webhook) = pool.write(move |tx| webhooks::claim(tx, &due, &holder, lease))? else {
        return Ok(false);
    };
    let taken = Instant::now();
    let events = db::read(&mut *pool.get()?, |tx| {
        webhooks::pending(tx, &webhook, BATCH)
    })?;
    for event in events {
        // Leave a safe margin before the lease runs out: the next holder starts from the
        // cursor, so stopping early costs nothing.
        if stop.load(Ordering::SeqCst) || taken.elapsed() + settings.timeout >= settings.lease {
            break;
        }
        let body = serde_json::to_vec(&event).map_err(Error::internal)?;
        let outcome = post(agent, settings, &webhook, &event.event_id, &body);
        if !outcome.succeeded() {
            log::info!(
                "webhook {} failed on {}: {}",
                webhook.webhook_id,
                event.event_id,
                outcome
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("HTTP {}", outcome.status_code.unwrap_or(0)))
            );
        }
        let (attempted, holder, retry) = (webhook.clone(), owner.to_string(), settings.retry);
        let go_on = pool.write(move |tx| {
            webhooks::record_attempt(tx, &attempted, &event, &holder, &outcome, &retry)
        })?;
        if !go_on {
            break;
        }
    }
    let holder = owner.to_string();
    pool.write(move |tx| webhooks::release(tx, &webhook.webhook_id, &holder))?;
    Ok(true)
}

/// One POST, signed the Standard Webhooks way.
fn post(
    agent: &ureq::Agent,
    settings: &DeliverySettings,
    webhook: &Webhook,
    message_id: &str,
    body: &[u8],
) -> Outcome {
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
    if let Err(error) = check_resolved(&webhook.url, &settings.urls) {
        return Outcome {
            status_code: None,
            error: Some(error),
            duration_ms: 0,
        };
    }
    let timestamp = chrono::Utc::now().timestamp();
    let signature = webhooks::sign(&webhook.secret, message_id, timestamp, body);
    let response = agent
        .post(&webhook.url)
        .set("content-type", "application/json")
        .set("user-agent", concat!("scimd/", env!("CARGO_PKG_VERSION")))
        .set("webhook-id", message_id)
        .set("webhook-timestamp", &timestamp.to_string())
        .set("webhook-signature", &signature)
        .send_bytes(body);
    match response {
        Ok(response) => {
            let status = response.status() as i32;
            drain(response);
            Outcome {
                status_code: Some(status),
                error: None,
                duration_ms: elapsed(started),
            }
        }
        Err(ureq::Error::Status(status, response)) => {
            drain(response);
            Outcome {
                status_code: Some(status as i32),
                error: None,
                duration_ms: elapsed(started),
            }
        }
        Err(ureq::Error::Transport(transport)) => Outcome {
            status_code: None,
            error: Some(transport.to_string()),
            duration_ms: elapsed(started),
        },
    }
}

/// Reads (a bounded part of) the body so that the connection can be reused.
fn drain(response: ureq::Response) {
    let mut sink = Vec::new();
    let _ = response
        .into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut sink);
}

/// Refuses a host name that resolves to a private address unless the operator allows them.
fn check_resolved(url: &str, policy: &UrlPolicy) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {host}: {error}"))?;
    for address in addresses {
        if !policy.allows_address(address.ip()) {
            return Err(format!(
                "{host} resolves to {}, a private address (--webhook-allow-private)",
                address.ip()
            ));
        }
    }
    Ok(())
}
