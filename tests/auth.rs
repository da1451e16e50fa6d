mod common;

use std::time::Duration;

use common::{Db, Options, TestServer, JWT_SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rstest::rstest;
use scimd::config::JwtArgs;
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).unwrap()
}

fn hs256(claims: serde_json::Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        claims,
    )
}

fn key_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn management_requests_without_a_valid_jwt_are_refused_with_a_reason(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let valid = json!({"sub": "ops", "scope": "admin", "exp": now() + 600});
    let cases = [
        (None, 401, "missing_authorization"),
        (Some("not-a-jwt".to_string()), 401, "invalid_token"),
        (
            Some(hs256(
                json!({"sub": "ops", "scope": "admin", "exp": now() - 3600}),
            )),
            401,
            "token_expired",
        ),
        (
            Some(hs256(json!({"sub": "ops", "scope": "admin"}))),
            401,
            "invalid_token",
        ),
        (
            Some(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-another-secret-0123456789"),
                valid.clone(),
            )),
            401,
            "invalid_token",
        ),
        (
            Some(hs256(json!({"sub": "ops", "exp": now() + 600}))),
            403,
            "invalid_scope",
        ),
        (
            Some(hs256(
                json!({"sub": "ops", "scope": "members:read", "exp": now() + 600}),
            )),
            403,
            "invalid_scope",
        ),
    ];
    for (token, status, error_type) in cases {
        let response = server
            .client(token.as_deref())
            .get("/v1/organizations")
            .await;
        assert_eq!(response.status, status, "{token:?}: {}", response.text);
        assert_eq!(
            response.body["error_type"], error_type,
            "{token:?}: {}",
            response.text
        );
        assert!(response.body["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if status == 401 {
            assert!(response
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")));
        }
    }
    assert_eq!(
        server
            .client(Some(&hs256(valid)))
            .get("/v1/organizations")
            .await
            .status,
        200
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_unsigned_jwt_is_refused(#[case] db: Db) {
    let server = TestServer::start(db).await;
    use base64::Engine;
    let encode = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        encode(json!({"alg": "none", "typ": "JWT"})),
        encode(json!({"sub": "attacker", "scope": "admin", "exp": now() + 600}))
    );
    let response = server
        .client(Some(&unsigned))
        .get("/v1/organizations")
        .await;
    assert_eq!(response.status, 401, "{}", response.text);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn with_an_rsa_public_key_only_rs256_is_accepted(#[case] db: Db) {
    let options = Options {
        jwt: JwtArgs {
            public_key_file: Some(key_file("rsa_public.pem")),
            issuer: Some("https://auth.example".into()),
            audience: Some("scimd".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with(db, options).await;
    let private =
        EncodingKey::from_rsa_pem(&std::fs::read(key_file("rsa_private.pem")).unwrap()).unwrap();
    let claims = json!({"sub": "app", "scope": "admin", "exp": now() + 600, "iss": "https://auth.example", "aud": "scimd"});

    let good = server
        .client(Some(&sign(Algorithm::RS256, &private, claims.clone())))
        .get("/v1/organizations")
        .await;
    assert_eq!(good.status, 200, "{}", good.text);

    // Algorithm confusion: an HS256 token "signed" with the public key's bytes.
    let public_pem = std::fs::read(key_file("rsa_public.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        claims.clone(),
    );
    assert_eq!(
        server
            .client(Some(&confused))
            .get("/v1/organizations")
            .await
            .status,
        401
    );

    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://evil.example");
    let response = server
        .client(Some(&sign(Algorithm::RS256, &private, wrong_issuer)))
        .get("/v1/organizations")
        .await;
    assert_eq!(response.status, 401);
    assert!(response.body["error_message"]
        .as_str()
        .unwrap()
        .contains("iss"));

    let mut wrong_audience = claims;
    wrong_audience["aud"] = json!("someone-else");
    let response = server
        .client(Some(&sign(Algorithm::RS256, &private, wrong_audience)))
        .get("/v1/organizations")
        .await;
    assert_eq!(response.status, 401);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn with_an_ec_public_key_es256_is_accepted(#[case] db: Db) {
    let options = Options {
        jwt: JwtArgs {
            public_key_file: Some(key_file("ec_public.pem")),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with(db, options).await;
    let private =
        EncodingKey::from_ec_pem(&std::fs::read(key_file("ec_private.pem")).unwrap()).unwrap();
    let token = sign(
        Algorithm::ES256,
        &private,
        json!({"sub": "app", "scope": "admin", "exp": now() + 600}),
    );
    let response = server.client(Some(&token)).get("/v1/organizations").await;
    assert_eq!(response.status, 200, "{}", response.text);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn without_a_configured_key_the_management_api_says_how_to_enable_it(#[case] db: Db) {
    let options = Options {
        jwt: JwtArgs::default(),
        ..Default::default()
    };
    let server = TestServer::start_with(db, options).await;
    let response = server
        .client(Some(&server.jwt("admin")))
        .get("/v1/organizations")
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.body["error_type"], "management_api_disabled");
    assert!(response.body["error_message"]
        .as_str()
        .unwrap()
        .contains("SCIMD_JWT_SECRET"));
}

#[test]
fn weak_or_ambiguous_jwt_settings_are_refused_at_startup() {
    use scimd::api::auth::JwtVerifier;
    let short = JwtArgs {
        secret: Some("short".into()),
        ..Default::default()
    };
    assert!(JwtVerifier::from_args(&short)
        .unwrap_err()
        .contains("at least 32 bytes"));
    let both = JwtArgs {
        secret: Some(JWT_SECRET.into()),
        public_key_file: Some(key_file("rsa_public.pem")),
        ..Default::default()
    };
    assert!(JwtVerifier::from_args(&both).is_err());
    let garbage = JwtArgs {
        public_key_file: Some(key_file("../common/mod.rs")),
        ..Default::default()
    };
    assert!(JwtVerifier::from_args(&garbage).is_err());
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn scim_requests_need_a_live_token_and_fail_with_a_scim_error(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let scim = acme.scim();
    let forged = format!("scimd_{}", "0".repeat(64));
    for bearer in [
        None,
        Some(forged.as_str()),
        Some("garbage"),
        Some(server.jwt("admin").as_str()),
    ] {
        let client = match bearer {
            Some(token) => scim.with_bearer(token),
            None => common::Client {
                bearer: None,
                ..scim.clone()
            },
        };
        let response = client.get("/Users").await;
        assert_eq!(response.status, 401, "{bearer:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/scim+json")
        );
        assert!(response
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
        assert_eq!(
            response.body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(response.body["status"], "401");
        assert!(!response.body["detail"].as_str().unwrap().is_empty());
    }
    let lowercase_scheme = scim
        .send(
            "GET",
            "/Users",
            None,
            &[("Authorization", &format!("bearer {}", acme.token))],
        )
        .await;
    assert_eq!(
        lowercase_scheme.status, 200,
        "the auth scheme is case-insensitive (RFC 7235)"
    );
    assert_eq!(scim.get("/Users").await.status, 200);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn with_the_token_cache_off_every_request_asks_the_database(#[case] db: Db) {
    let options = Options {
        token_cache_ttl: Duration::ZERO,
        ..Default::default()
    };
    let server = TestServer::start_with(db, options).await;
    let acme = server.new_organization("acme").await;
    assert_eq!(acme.scim().get("/Users").await.status, 200);
    assert_eq!(acme.scim().get("/Users").await.status, 200);
}
