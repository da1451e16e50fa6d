//! scimd-bench: a load generator that replays what identity providers do against a running
//! SCIM server (scimd, or any peer), bounded in requests and time. Blocking keep-alive
//! connections, one thread each: lean enough to share two cores with the server.
//!
//! ```text
//! scimd-bench --url http://127.0.0.1:8080/scim/v2 --token … --scenario entra-sync --users 10000
//! ```
//! Scenarios: `entra-sync` (per user: `filter=userName eq`, then POST), `lookup` (filter by
//! userName or GET by id, at random), `patch` (Entra-style PATCH), `group-growth` (one group
//! gains every user one PATCH at a time), `paging` (startIndex and cursor, count=100),
//! `mixed` (70% lookup, 20% patch, 10% create). `--json-out` writes the figures for machines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    EntraSync,
    Lookup,
    Patch,
    GroupGrowth,
    Paging,
    Mixed,
}

#[derive(Debug, Parser)]
#[command(
    name = "scimd-bench",
    about = "Replays IdP traffic against a SCIM server"
)]
struct Args {
    /// The SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2 (127.0.0.1 only).
    #[arg(long)]
    url: String,
    /// The bearer token of the SCIM connection.
    #[arg(long, env = "SCIMD_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Users to create (entra-sync), to use (lookup, patch, mixed, paging), or to add to the
    /// group (group-growth).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Concurrent keep-alive connections (group-growth and paging always use one).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Upper bound on the scenario's run time; lookup, patch and mixed run for this long.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// A prefix for the userNames this run creates (default: `bench` and a random suffix,
    /// so that runs against one database never collide).
    #[arg(long)]
    prefix: Option<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

/// Latencies per request kind, and failures.
#[derive(Default)]
struct Recorder {
    latencies: Mutex<BTreeMap<&'static str, Vec<f64>>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Recorder {
    fn record(&self, kind: &'static str, started: Instant) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.latencies
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .push(ms);
    }

    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert(what);
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    fn new(args: &Args) -> Self {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            base: args.url.trim_end_matches('/').to_string(),
            auth: format!("Bearer {}", args.token),
        }
    }

    /// Sends one request, records its latency under `kind`, and returns the body when the
    /// status is the one expected.
    fn call(
        &self,
        recorder: &Recorder,
        kind: &'static str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        expected: &[u16],
    ) -> Option<Value> {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/scim+json");
        let started = Instant::now();
        let response = match body {
            Some(body) => request.send_string(&body.to_string()),
            None => request.call(),
        };
        recorder.record(kind, started);
        match response {
            Ok(response) if expected.contains(&response.status()) => {
                let text = response.into_string().unwrap_or_default();
                Some(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Ok(response) => {
                recorder.fail(format!(
                    "{kind}: {method} {path}: status {}",
                    response.status()
                ));
                None
            }
            Err(ureq::Error::Status(status, _)) => {
                recorder.fail(format!("{kind}: {method} {path}: status {status}"));
                None
            }
            Err(error) => {
                recorder.fail(format!("{kind}: {method} {path}: {error}"));
                None
            }
        }
    }
}

/// A small, fast pseudo-random sequence (xorshift), seeded from the OS.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Random(u64::from_le_bytes(seed) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": user_name,
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true
    })
}

fn user_filter(user_name: &str) -> String {
    format!("/Users?filter=userName%20eq%20%22{user_name}%22")
}

fn entra_patch(n: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "name.givenName", "value": format!("Given {n}")},
            {"op": "Replace", "path": "active", "value": if n.is_multiple_of(2) { "True" } else { "False" }},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": format!("patched-{n}@bench.test")}
        ]
    })
}

/// Runs `work(thread, client)` on `threads` threads at once.
fn on_threads(args: &Args, threads: usize, work: impl Fn(usize, &Client) + Sync) {
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let work = &work;
            scope.spawn(move || work(thread, &Client::new(args)));
        }
    });
}

/// The users of the connection, (id, userName), up to `limit`, by cursor.
fn existing_users(args: &Args, recorder: &Recorder, limit: usize) -> Vec<(String, String)> {
    let client = Client::new(args);
    // Cursor paging where the server offers it (RFC 9865), else startIndex paging (a peer
    // server without cursors); the probe is not counted as a failure.
    let cursors = Recorder::default();
    let probe = client.call(
        &cursors,
        "probe",
        "GET",
        "/Users?count=1&cursor=",
        None,
        &[200],
    );
    let by_cursor = probe.is_some_and(|page| {
        page.get("nextCursor").is_some() || page["totalResults"].as_u64() <= Some(1)
    });
    let mut users = Vec::new();
    let mut cursor = String::new();
    while users.len() < limit {
        let path = if by_cursor {
            format!("/Users?count=1000&attributes=userName&cursor={cursor}")
        } else {
            format!(
                "/Users?count=1000&attributes=userName&startIndex={}",
                users.len() + 1
            )
        };
        let Some(page) = client.call(recorder, "seed: list", "GET", &path, None, &[200]) else {
            break;
        };
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        for user in &resources {
            users.push((
                user["id"].as_str().unwrap_or_default().to_string(),
                user["userName"].as_str().unwrap_or_default().to_string(),
            ));
        }
        if by_cursor {
            match page["nextCursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = next.to_string(),
                _ => break,
            }
        } else if resources.is_empty() {
            break;
        }
    }
    users.truncate(limit);
    users
}

/// Makes sure at least `users` users exist, creating the missing ones.
fn ensure_users(args: &Args, recorder: &Recorder) -> Vec<(String, String)> {
    let have = existing_users(args, recorder, args.users);
    if have.len() < args.users {
        let missing = args.users - have.len();
        let next = AtomicUsize::new(0);
        on_threads(args, args.connections, |thread, client| loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= missing {
                return;
            }
            let name = format!("{}-seed-{thread}-{n}@bench.test", prefix(args));
            client.call(
                recorder,
                "seed: create",
                "POST",
                "/Users",
                Some(&user_body(&name)),
                &[201],
            );
        });
        return existing_users(args, recorder, args.users);
    }
    have
}

fn main() {
    let mut args = Args::parse();
    if args.prefix.is_none() {
        args.prefix = Some(format!("bench{:x}", Random::new().below(1 << 32)));
    }
    let loopback = url::Url::parse(&args.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .is_some_and(|host| matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]"));
    if !loopback {
        eprintln!(
            "--url must point at 127.0.0.1 (benchmarks stay on this machine): {}",
            args.url
        );
        std::process::exit(1);
    }
    let recorder = Recorder::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    let mut extra = serde_json::Map::new();
    let measured_from = match args.scenario {
        Scenario::EntraSync => {
            let next = AtomicUsize::new(0);
            on_threads(&args, args.connections, |thread, client| {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= args.users {
                        return;
                    }
                    let name = format!("{}-{thread}-{n}@bench.test", prefix(&args));
                    client.call(
                        &recorder,
                        "lookup userName",
                        "GET",
                        &user_filter(&name),
                        None,
                        &[200],
                    );
                    client.call(
                        &recorder,
                        "create",
                        "POST",
                        "/Users",
                        Some(&user_body(&name)),
                        &[201],
                    );
                }
            });
            started
        }
        Scenario::Lookup | Scenario::Patch | Scenario::Mixed => {
            let users = ensure_users(&args, &recorder);
            if users.is_empty() {
                eprintln!("no users to work on");
                std::process::exit(1);
            }
            let begin = Instant::now();
            let deadline = begin + Duration::from_secs(args.duration_s);
            let created = AtomicUsize::new(0);
            // `--prefix` names the users to work on, imported or seeded by an earlier run; the
            // users this run creates carry a nonce besides, so that runs against one database
            // never collide (409 on a userName an earlier run created).
            let run = Random::new().below(1 << 32);
            on_threads(&args, args.connections, |thread, client| {
                let mut random = Random::new();
                while Instant::now() < deadline {
                    let roll = random.below(100);
                    let (id, name) = &users[random.below(users.len())];
                    let kind = match args.scenario {
                        Scenario::Lookup if roll < 50 => "lookup userName",
                        Scenario::Lookup => "get by id",
                        Scenario::Patch => "patch",
                        _ if roll < 70 => "lookup userName",
                        _ if roll < 90 => "patch",
                        _ => "create",
                    };
                    match kind {
                        "lookup userName" => {
                            client.call(&recorder, kind, "GET", &user_filter(name), None, &[200]);
                        }
                        "get by id" => {
                            client.call(
                                &recorder,
                                kind,
                                "GET",
                                &format!("/Users/{id}"),
                                None,
                                &[200],
                            );
                        }
                        "patch" => {
                            let body = entra_patch(roll);
                            client.call(
                                &recorder,
                                kind,
                                "PATCH",
                                &format!("/Users/{id}"),
                                Some(&body),
                                &[200, 204],
                            );
                        }
                        _ => {
                            let n = created.fetch_add(1, Ordering::Relaxed);
                            let name =
                                format!("{}-mixed-{run:x}-{thread}-{n}@bench.test", prefix(&args));
                            client.call(
                                &recorder,
                                kind,
                                "POST",
                                "/Users",
                                Some(&user_body(&name)),
                                &[201],
                            );
                        }
                    }
                }
            });
            begin
        }
        Scenario::GroupGrowth => {
            let users = ensure_users(&args, &recorder);
            let client = Client::new(&args);
            let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                               "displayName": format!("{}-growth-{}", prefix(&args), Random::new().below(1 << 30))});
            let Some(group) = client.call(
                &recorder,
                "seed: group",
                "POST",
                "/Groups",
                Some(&group),
                &[201],
            ) else {
                eprintln!("could not create the group");
                std::process::exit(1);
            };
            let path = format!("/Groups/{}", group["id"].as_str().unwrap_or_default());
            let begin = Instant::now();
            let mut latencies = Vec::with_capacity(users.len());
            for (id, _) in &users {
                if Instant::now() >= deadline {
                    break;
                }
                let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
                let at = Instant::now();
                client.call(
                    &recorder,
                    "add one member",
                    "PATCH",
                    &path,
                    Some(&body),
                    &[200, 204],
                );
                latencies.push(at.elapsed().as_secs_f64() * 1000.0);
            }
            let tenth = (latencies.len() / 10).max(1);
            let first = summary(&latencies[..tenth.min(latencies.len())]);
            let last = summary(&latencies[latencies.len().saturating_sub(tenth)..]);
            let ratio = |key: &str| {
                last[key].as_f64().unwrap_or(0.0) / first[key].as_f64().unwrap_or(1.0).max(1e-9)
            };
            let ratios =
                json!({"p50": ratio("p50_ms"), "p99": ratio("p99_ms"), "mean": ratio("mean_ms")});
            extra.insert("members_added".into(), json!(latencies.len()));
            extra.insert("first_tenth".into(), first);
            extra.insert("last_tenth".into(), last);
            extra.insert("last_over_first".into(), ratios);
            client.call(
                &recorder,
                "get group, excludedAttributes=members",
                "GET",
                &format!("{path}?excludedAttributes=members"),
                None,
                &[200],
            );
            begin
        }
        Scenario::Paging => {
            ensure_users(&args, &recorder);
            let client = Client::new(&args);
            let begin = Instant::now();
            let mut cursor_pages = Vec::new();
            let mut cursor = String::new();
            loop {
                let at = Instant::now();
                let page = client.call(
                    &recorder,
                    "page by cursor",
                    "GET",
                    &format!("/Users?count=100&cursor={cursor}"),
                    None,
                    &[200],
                );
                cursor_pages.push(at.elapsed().as_secs_f64() * 1000.0);
                match page.as_ref().and_then(|p| p["nextCursor"].as_str()) {
                    Some(next) if !next.is_empty() && Instant::now() < deadline => {
                        cursor = next.to_string()
                    }
                    _ => break,
                }
            }
            let mut index_pages = Vec::new();
            let mut start = 1;
            while start <= args.users && Instant::now() < deadline {
                let at = Instant::now();
                client.call(
                    &recorder,
                    "page by startIndex",
                    "GET",
                    &format!("/Users?count=100&startIndex={start}"),
                    None,
                    &[200],
                );
                index_pages.push(at.elapsed().as_secs_f64() * 1000.0);
                start += 100;
            }
            for (name, pages) in [("cursor", &cursor_pages), ("startIndex", &index_pages)] {
                let ends = (pages.len() / 10).max(1).min(pages.len());
                extra.insert(
                    format!("{name}_first_pages_mean_ms"),
                    json!(mean(&pages[..ends])),
                );
                extra.insert(
                    format!("{name}_last_pages_mean_ms"),
                    json!(mean(&pages[pages.len() - ends..])),
                );
            }
            begin
        }
    };
    report(&args, &recorder, measured_from.elapsed(), extra);
}

fn prefix(args: &Args) -> &str {
    args.prefix.as_deref().unwrap_or("bench")
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    json!({
        "requests": sorted.len(),
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": sorted.last().copied().unwrap_or(0.0),
        "mean_ms": mean(&sorted),
    })
}

fn report(
    args: &Args,
    recorder: &Recorder,
    elapsed: Duration,
    extra: serde_json::Map<String, Value>,
) {
    let latencies = recorder.latencies.lock().unwrap();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut kinds = serde_json::Map::new();
    let mut measured = 0usize;
    println!(
        "scenario {:?}, {} connections, {:.1} s",
        args.scenario, args.connections, seconds
    );
    for (kind, values) in latencies.iter() {
        let figures = summary(values);
        if !kind.starts_with("seed") {
            measured += values.len();
        }
        println!(
            "  {kind:<40} {:>8} req  {:>9.1}/s  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  max {:>8.1}",
            values.len(),
            values.len() as f64 / seconds,
            figures["p50_ms"].as_f64().unwrap_or(0.0),
            figures["p90_ms"].as_f64().unwrap_or(0.0),
            figures["p99_ms"].as_f64().unwrap_or(0.0),
            figures["max_ms"].as_f64().unwrap_or(0.0),
        );
        kinds.insert((*kind).to_string(), figures);
    }
    for (key, value) in &extra {
        println!("  {key}: {value}");
    }
    let errors = recorder.errors.load(Ordering::Relaxed);
    if let Some(first) = recorder.first_error.lock().unwrap().as_ref() {
        println!("  first error: {first}");
    }
    println!(
        "summary: {:?} {:.0} req/s, {errors} errors, {measured} requests in {seconds:.1} s",
        args.scenario,
        measured as f64 / seconds
    );
    if let Some(path) = &args.json_out {
        let document = json!({
            "scenario": format!("{:?}", args.scenario),
            "connections": args.connections,
            "seconds": seconds,
            "requests": measured,
            "throughput": measured as f64 / seconds,
            "errors": errors,
            "kinds": kinds,
            "extra": extra,
        });
        std::fs::write(path, serde_json::to_string_pretty(&document).unwrap())
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }
    if errors > 0 {
        std::process::exit(2);
    }
}
