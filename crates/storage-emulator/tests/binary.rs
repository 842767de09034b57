//! The `storage-emulator` binary: endpoints JSON on the first stdout line, fault rules from a file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use storage_emulator::Endpoints;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_storage-emulator");

#[tokio::test]
async fn prints_endpoints_then_serves_with_fault_rules() {
    let dir = std::env::temp_dir().join(format!("emu-bin-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("faults.json");
    std::fs::write(
        &rules,
        r#"[{"provider":"google","path":"/drive/v3/about","times":1,"action":{"kind":"respond","status":418,"body":"teapot"}}]"#,
    )
    .unwrap();
    let mut child = Command::new(EXE)
        .args(["--lenient", "--faults"])
        .arg(&rules)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let endpoints: Endpoints = serde_json::from_str(&first).unwrap();
    let value: serde_json::Value = serde_json::from_str(&first).unwrap();
    // The keys readers already knew, and the announcement's own beside them.
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["clients", "control", "google", "microsoft", "oauth", "origins"]);
    assert_eq!(value["clients"]["google"][0]["client_id"], "emulator-google-client");
    assert_eq!(
        value["clients"]["microsoft"][0]["client_id"],
        "emulator-microsoft-client"
    );
    assert_eq!(value["clients"]["any_client"], false);
    let control = value["control"].as_str().unwrap();
    assert!(control.ends_with("/__emulator/"), "{control}");
    assert_eq!(value["origins"]["api"], endpoints.google.root.as_str());
    assert_ne!(value["origins"]["content"], value["origins"]["api"]);
    assert_eq!(
        value["oauth"]["microsoft"]["token"],
        endpoints.microsoft.token("common").as_str()
    );
    let index: serde_json::Value = reqwest::get(control).await.unwrap().json().await.unwrap();
    assert_eq!(index["announcement"], value, "the control api announces the same");
    assert!(endpoints.google.api.as_str().ends_with("/drive/v3/"));
    assert!(endpoints.google.token.as_str().ends_with("/token"));
    assert!(endpoints.microsoft.graph.as_str().ends_with("/v1.0/"));
    assert_eq!(endpoints.google.root, endpoints.microsoft.login);

    let client = reqwest::Client::new();
    let about = format!("{}about?fields=user", endpoints.google.api);
    let resp = client.get(&about).send().await.unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.text().await.unwrap(), "teapot");
    // the rule was limited to one match: now the real answer (401 without a token)
    assert_eq!(client.get(&about).send().await.unwrap().status(), 401);
    let resp = client
        .post(endpoints.microsoft.token("common"))
        .form(&[
            ("client_id", "emulator-microsoft-client"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // one log line per request on stderr
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let wanted = "GET /drive/v3/about -> 418";
    let found = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains(wanted) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found, "no log line containing {wanted}");

    child.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bad_arguments_exit_with_usage() {
    let out = Command::new(EXE).arg("--bogus").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    assert!(out.stdout.is_empty());
    let out = Command::new(EXE)
        .args(["--faults", "/nonexistent/rules.json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
