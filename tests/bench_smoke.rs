//! A smoke run of the load generator (`scimd-bench`) against the real server, every scenario
//! at a tiny size, so that the benchmark never rots. Figures are not checked: only that every
//! request succeeded and the report is whole.

mod common;

use std::process::Command;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::Value;

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn every_scenario_runs_clean_at_a_tiny_size(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("bench").await;
    let url = format!("{}/scim/v2", server.base);
    let dir = tempfile::tempdir().unwrap();
    for scenario in [
        "entra-sync",
        "lookup",
        "patch",
        "mixed",
        "group-growth",
        "paging",
    ] {
        let out = dir.path().join(format!("{scenario}.json"));
        let (url, token, out_arg) = (url.clone(), tenant.token.clone(), out.clone());
        let output = actix_web::rt::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_scimd-bench"))
                .args(["--url", &url, "--scenario", scenario, "--users", "40"])
                .args([
                    "--connections",
                    "2",
                    "--duration-s",
                    "2",
                    "--prefix",
                    "smoke",
                ])
                .arg("--json-out")
                .arg(&out_arg)
                .env("SCIMD_BENCH_TOKEN", token)
                .output()
        })
        .await
        .unwrap()
        .expect("scimd-bench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{scenario}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(report["errors"], 0, "{scenario}: {report}");
        assert!(
            report["requests"].as_u64().unwrap() > 0,
            "{scenario}: {report}"
        );
        assert!(stdout.contains("summary:"), "{stdout}");
    }
    // It refuses to leave this machine.
    let refused = Command::new(env!("CARGO_BIN_EXE_scimd-bench"))
        .args([
            "--url",
            "http://example.com/scim/v2",
            "--scenario",
            "lookup",
        ])
        .env("SCIMD_BENCH_TOKEN", "x")
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
