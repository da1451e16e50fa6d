//! The README's bootstrap, through the built binary: migrate, create an organization and a
//! connection, mint a JWT, serve, and shut down gracefully.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Client, Db, TestDatabase, JWT_SECRET};
use rstest::rstest;
use serde_json::Value;

fn scimd(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scimd"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SCIMD_JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "info");
    command
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn the_readme_bootstrap_works_end_to_end(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let url = database.url.as_str();

    let migrated = json_of(&scimd(url).arg("migrate").output().unwrap());
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(
        migrated["applied_migrations"].as_array().unwrap().len(),
        migrations
    );
    let again = json_of(&scimd(url).arg("migrate").output().unwrap());
    assert_eq!(again["applied_migrations"], serde_json::json!([]));

    let organization = json_of(
        &scimd(url)
            .args([
                "org", "create", "--name", "Acme", "--slug", "acme", "--domain", "acme.com",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(
        organization["organization"]["email_allowed_domains"],
        serde_json::json!(["acme.com"])
    );
    let connection = json_of(
        &scimd(url)
            .args([
                "connection",
                "create",
                "--org",
                "acme",
                "--idp",
                "okta",
                "--name",
                "Okta (staff)",
            ])
            .output()
            .unwrap(),
    );
    let token = connection["bearer_token"].as_str().unwrap().to_string();
    assert_eq!(connection["connection"]["display_name"], "Okta (staff)");
    assert_eq!(
        connection["connection"]["base_url"],
        "http://127.0.0.1:8080/scim/v2"
    );
    let jwt = json_of(
        &scimd(url)
            .args(["jwt", "--scope", "admin", "--ttl-s", "60"])
            .output()
            .unwrap(),
    );
    let jwt = jwt["token"].as_str().unwrap().to_string();

    let mut server = scimd(url)
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let address = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("scimd logs where it listens");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };

    let idp = Client {
        base: format!("{address}/scim/v2"),
        bearer: Some(token.clone()),
    };
    assert_eq!(idp.get("/Users").await.status, 200);
    assert_eq!(
        Client {
            bearer: None,
            ..idp.clone()
        }
        .get("/Users")
        .await
        .status,
        401
    );
    let listed = Client {
        base: address.clone(),
        bearer: Some(jwt),
    }
    .get("/v1/organizations/acme")
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "SIGTERM shuts down cleanly: {status:?}");
    let log: Vec<String> = lines.try_iter().collect();
    assert!(
        log.iter()
            .any(|line| line.contains("\"GET /scim/v2/Users\" 200")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|line| line.contains(&token[6..])),
        "the token must never be logged"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn bootstrap_mistakes_fail_with_a_message_and_write_nothing(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let url = database.url.as_str();
    let bad_slug = scimd(url)
        .args(["org", "create", "--name", "Acme", "--slug", "Acme Corp"])
        .output()
        .unwrap();
    assert!(!bad_slug.status.success());
    assert!(String::from_utf8_lossy(&bad_slug.stderr).contains("organization_slug"));

    let webmail = scimd(url)
        .args([
            "org",
            "create",
            "--name",
            "Acme",
            "--slug",
            "acme",
            "--domain",
            "gmail.com",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&webmail.stderr).contains("webmail"));

    let no_org = scimd(url)
        .args(["connection", "create", "--org", "acme"])
        .output()
        .unwrap();
    assert!(!no_org.status.success());
    assert!(String::from_utf8_lossy(&no_org.stderr).contains("no organization `acme`"));

    let bad_idp = scimd(url)
        .args(["connection", "create", "--org", "acme", "--idp", "azure"])
        .output()
        .unwrap();
    assert!(!bad_idp.status.success());

    let unsigned = scimd(url)
        .env_remove("SCIMD_JWT_SECRET")
        .args(["jwt", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("SCIMD_JWT_SECRET"));

    let listed = scimd(url)
        .args(["org", "create", "--name", "Acme", "--slug", "acme"])
        .output()
        .unwrap();
    let organization = json_of(&listed);
    assert_eq!(organization["organization"]["organization_slug"], "acme");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn users_import_in_batches_and_bad_ones_are_skipped(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let url = database.url.as_str();
    json_of(
        &scimd(url)
            .args(["org", "create", "--name", "Acme", "--slug", "acme"])
            .output()
            .unwrap(),
    );
    let connection = json_of(
        &scimd(url)
            .args(["connection", "create", "--org", "acme", "--idp", "okta"])
            .output()
            .unwrap(),
    );
    let id = connection["connection"]["connection_id"].as_str().unwrap();

    let generated = json_of(
        &scimd(url)
            .args(["connection", "import-users", "--connection", id])
            .args(["--generate", "250", "--batch", "100"])
            .output()
            .unwrap(),
    );
    assert_eq!(generated["imported"], 250);
    assert_eq!(generated["failed"], 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"userName\": \"ada@acme.test\"}\n",
            "not json\n",
            "\n",
            "{\"userName\": \"no-email\"}\n",
            "{\"userName\": \"import-7@bench.test\"}\n",
            "{\"userName\": \"bob@acme.test\", \"active\": false}\n",
        ),
    )
    .unwrap();
    let imported = json_of(
        &scimd(url)
            .args([
                "connection",
                "import-users",
                "--connection",
                id,
                "--batch",
                "2",
            ])
            .arg("--file")
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(imported["imported"], 2, "{imported}");
    assert_eq!(imported["failed"], 3, "{imported}");
    let errors = imported["first_errors"].to_string();
    assert!(
        errors.contains("not JSON") && errors.contains("already taken"),
        "{errors}"
    );

    let unknown = scimd(url)
        .args([
            "connection",
            "import-users",
            "--connection",
            "scim-connection-nope",
            "--generate",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}
