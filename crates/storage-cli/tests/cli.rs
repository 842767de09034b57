//! Drives the compiled `storage` binary against `storage emulator` running in
//! the background: connect an account through `auth url` and `auth exchange`,
//! then every object command, refresh write-back, exit codes, and no token in
//! any output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_storage");

/// `storage emulator` as a child process; killed on drop.
struct Background {
    child: Child,
    endpoints: PathBuf,
    json: serde_json::Value,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(dir: &Path) -> Background {
    let mut child = Command::new(BIN)
        .arg("emulator")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&first).expect("the first stdout line is the endpoints json");
    let endpoints = dir.join("endpoints.json");
    std::fs::write(&endpoints, &first).unwrap();
    Background { child, endpoints, json }
}

/// Runs `storage` with the emulator's apps in the environment.
fn storage(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("STORAGE_GOOGLE_CLIENT_ID", "emulator-google-client")
        .env("STORAGE_GOOGLE_CLIENT_SECRET", "emulator-google-secret")
        .env("STORAGE_MICROSOFT_CLIENT_ID", "emulator-microsoft-client")
        .env("STORAGE_MICROSOFT_CLIENT_SECRET", "emulator-microsoft-secret")
        .env_remove("STORAGE_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Connects an account the way a person would: `auth url`, follow the
/// emulator's authorize page to its redirect, then `auth exchange`.
fn connect(emu: &Background, provider: &str, out: &Path, logs: &mut String) {
    let endpoints = emu.endpoints.to_str().unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let url = storage(
        &[
            "--endpoints",
            endpoints,
            "auth",
            "url",
            provider,
            "--redirect-uri",
            redirect,
            "--state",
            "s1",
        ],
        None,
    );
    assert!(url.status.success(), "{}", text(&url.stderr));
    let authorize = text(&url.stdout).trim().to_owned();
    let verifier = text(&url.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("verifier: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(&authorize).send().unwrap();
    assert_eq!(resp.status().as_u16(), 302, "{provider} authorize page");
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s1");
    let exchange = storage(
        &[
            "--endpoints",
            endpoints,
            "auth",
            "exchange",
            provider,
            "--code",
            &q["code"],
            "--redirect-uri",
            redirect,
            "--verifier",
            &verifier,
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(exchange.status.success(), "{}", text(&exchange.stderr));
    logs.push_str(&text(&exchange.stdout));
    logs.push_str(&text(&exchange.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(out).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

fn cred(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_command_through_the_binary_for_both_providers() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    assert!(
        emu.json["google"]["root"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let endpoints = emu.endpoints.to_str().unwrap().to_owned();
    let mut logs = String::new();
    let mut secrets = Vec::new();
    for provider in ["gdrive", "onedrive"] {
        let creds = dir.path().join(format!("{provider}.json"));
        connect(&emu, provider, &creds, &mut logs);
        let c = cred(&creds);
        assert_eq!(c["provider"], provider);
        secrets.push(c["access_token"].as_str().unwrap().to_owned());
        secrets.push(c["refresh_token"].as_str().unwrap().to_owned());
        let base = [
            "--endpoints",
            endpoints.as_str(),
            "--credentials",
            creds.to_str().unwrap(),
        ];
        let run = |extra: &[&str], stdin: Option<&[u8]>, logs: &mut String| {
            let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
            let out = storage(&args, stdin);
            logs.push_str(&text(&out.stdout));
            logs.push_str(&text(&out.stderr));
            out
        };

        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, &body).unwrap();
        let put = run(
            &[
                "put",
                "--user",
                "u1",
                "--document",
                "d1",
                "--ext",
                ".pdf",
                input.to_str().unwrap(),
            ],
            None,
            &mut logs,
        );
        assert!(put.status.success(), "{}", text(&put.stderr));
        let key = text(&put.stdout).trim().to_owned();

        let output = dir.path().join("out.bin");
        let get = run(&["get", &key, "-o", output.to_str().unwrap()], None, &mut logs);
        assert!(get.status.success(), "{}", text(&get.stderr));
        assert_eq!(std::fs::read(&output).unwrap(), body, "{provider}: bytes differ");

        let stdin_put = run(
            &["put", "--user", "u1", "--document", "d2", "-"],
            Some(b"from stdin"),
            &mut logs,
        );
        assert!(stdin_put.status.success());
        let key2 = text(&stdin_put.stdout).trim().to_owned();
        let to_stdout = run(&["get", &key2], None, &mut logs);
        assert_eq!(to_stdout.stdout, b"from stdin");

        let stat = run(&["stat", &key, "--json"], None, &mut logs);
        assert!(stat.status.success());
        let meta: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
        assert_eq!(meta["size"], body.len() as u64);

        let health = run(&["health"], None, &mut logs);
        assert!(health.status.success());
        assert_eq!(text(&health.stdout).trim(), "healthy");

        let presign = run(&["presign", "get", &key, "--expires", "15m"], None, &mut logs);
        if provider == "onedrive" {
            assert!(presign.status.success(), "{}", text(&presign.stderr));
            let url = text(&presign.stdout).trim().to_owned();
            assert_eq!(
                reqwest::blocking::get(url).unwrap().bytes().unwrap().as_ref(),
                body.as_slice()
            );
        } else {
            assert_eq!(presign.status.code(), Some(1), "drive presign is unsupported");
            assert!(text(&presign.stderr).contains("not supported"));
        }

        // Force a refresh: the stored token is declared expired; the file is rewritten.
        let mut c = cred(&creds);
        let key_name = if provider == "gdrive" { "expiry" } else { "expires_at" };
        c[key_name] = serde_json::json!("2000-01-01T00:00:00Z");
        std::fs::write(&creds, c.to_string()).unwrap();
        let rm = run(&["rm", &key], None, &mut logs);
        assert!(rm.status.success(), "{}", text(&rm.stderr));
        let after = cred(&creds);
        assert_ne!(
            after["access_token"], c["access_token"],
            "{provider}: --credentials was not rewritten"
        );
        assert_ne!(after[key_name], "2000-01-01T00:00:00Z");
        secrets.push(after["access_token"].as_str().unwrap().to_owned());
        secrets.push(after["refresh_token"].as_str().unwrap().to_owned());

        let missing = run(&["stat", &key], None, &mut logs);
        assert_eq!(missing.status.code(), Some(3), "not found: {}", text(&missing.stderr));

        // A revoked grant: the refresh token is no longer valid.
        let mut revoked = cred(&creds);
        revoked["refresh_token"] = serde_json::json!("revoked-token");
        revoked[key_name] = serde_json::json!("2000-01-01T00:00:00Z");
        std::fs::write(&creds, revoked.to_string()).unwrap();
        let reauth = run(&["health"], None, &mut logs);
        assert_eq!(reauth.status.code(), Some(4), "{}", text(&reauth.stderr));
        assert!(text(&reauth.stderr).contains("re-authorisation"));
        assert_eq!(cred(&creds)["status"], "requires_reauth");
        let again = run(&["health"], None, &mut logs);
        assert_eq!(again.status.code(), Some(4));
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a token appeared in the program's output");
    }
}

#[test]
fn exit_codes_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let missing_key = dir.path().join("missing.json");
    std::fs::write(&missing_key, r#"{"provider":"gdrive","refresh_token":"SECRET-R"}"#).unwrap();
    let out = storage(&["--credentials", missing_key.to_str().unwrap(), "health"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("access_token"));
    assert!(!text(&out.stderr).contains("SECRET-R"));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let out = storage(&["--credentials", bad.to_str().unwrap(), "health"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let out = storage(
        &[
            "--credentials",
            dir.path().join("nope.json").to_str().unwrap(),
            "health",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));

    let out = storage(&["health"], None);
    assert_eq!(out.status.code(), Some(2), "no --credentials is a usage error");
    let out = storage(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = storage(&["--help"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("requires re-authorisation"));
}

/// `storage purge` and `storage disconnect`: refused without confirmation when
/// no terminal can ask, the report on stdout, the credentials file deleted and,
/// on Google, the refresh token revoked.
#[test]
fn purge_and_disconnect_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    let endpoints = emu.endpoints.to_str().unwrap().to_owned();
    let mut logs = String::new();
    for provider in ["gdrive", "onedrive"] {
        let creds = dir.path().join(format!("{provider}-purge.json"));
        connect(&emu, provider, &creds, &mut logs);
        let base = [
            "--endpoints",
            endpoints.as_str(),
            "--credentials",
            creds.to_str().unwrap(),
        ];
        let run = |extra: &[&str], stdin: Option<&[u8]>| {
            let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
            storage(&args, stdin)
        };
        let mut keys = Vec::new();
        for user in ["alice", "alice-2"] {
            let put = run(&["put", "--user", user, "--document", "d1", "-"], Some(b"12345"));
            assert!(put.status.success(), "{}", text(&put.stderr));
            keys.push(text(&put.stdout).trim().to_owned());
        }

        let refused = run(&["purge", "--user", "alice"], None);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
        assert!(text(&refused.stderr).contains("--yes"));
        assert!(run(&["stat", &keys[0]], None).status.success(), "nothing was purged");
        let hostile = run(&["purge", "--user", "..", "--yes"], None);
        assert_eq!(hostile.status.code(), Some(2));

        let purged = run(&["purge", "--user", "alice", "--yes"], None);
        assert!(purged.status.success(), "{}", text(&purged.stderr));
        assert_eq!(text(&purged.stdout).trim(), "purged user alice: 1 objects, 5 bytes");
        assert_eq!(run(&["stat", &keys[0]], None).status.code(), Some(3));
        assert_eq!(run(&["get", &keys[1]], None).stdout, b"12345");

        let saved = cred(&creds);
        let refused = run(&["disconnect", "--purge", "--user", "alice-2"], None);
        assert_eq!(refused.status.code(), Some(2));
        assert!(creds.exists());
        let done = run(&["disconnect", "--purge", "--user", "alice-2", "--yes"], None);
        assert!(done.status.success(), "{}", text(&done.stderr));
        let out = text(&done.stdout);
        assert!(out.contains("purged user alice-2: 1 objects, 5 bytes"), "{out}");
        assert!(!creds.exists(), "the credentials file is deleted");
        if provider == "gdrive" {
            assert!(out.contains("grant revoked"), "{out}");
            let refresh = reqwest::blocking::Client::new()
                .post(emu.json["google"]["token"].as_str().unwrap())
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", saved["refresh_token"].as_str().unwrap()),
                    ("client_id", saved["client_id"].as_str().unwrap()),
                    ("client_secret", saved["client_secret"].as_str().unwrap()),
                ])
                .send()
                .unwrap();
            assert_eq!(refresh.status().as_u16(), 400, "the revoked refresh token still works");
        } else {
            assert!(out.contains("account.live.com/consent/Manage"), "{out}");
        }
        let again = run(&["disconnect", "--yes"], None);
        assert!(again.status.success(), "{}", text(&again.stderr));
        assert!(text(&again.stdout).contains("already disconnected"));
        let usage = run(&["disconnect", "--purge", "--yes"], None);
        assert_eq!(usage.status.code(), Some(2), "--purge needs --user");
    }
}
