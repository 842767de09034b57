//! Drives the compiled `storage` binary against `storage emulator` running in
//! the background: connect an account through `auth url` and `auth exchange`,
//! then every object command, refresh write-back, exit codes, and no token in
//! any output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use storage_tests::postgres::{database_ca, database_url, require_tls, unique_id};

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
    storage_env(args, stdin, &[])
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

        let range = run(&["get", &key, "--range", "1000-1999"], None, &mut logs);
        assert!(range.status.success(), "{}", text(&range.stderr));
        assert_eq!(range.stdout, &body[1000..2000], "{provider}: --range bytes differ");
        let tail = run(&["get", &key, "--range", "-10"], None, &mut logs);
        assert_eq!(tail.stdout, &body[body.len() - 10..]);
        let past = run(&["get", &key, "--range", "9999999-"], None, &mut logs);
        assert_eq!(past.status.code(), Some(2), "a range past the end is bad input");
        assert!(
            text(&past.stderr).contains(&format!("{} bytes", body.len())),
            "{}",
            text(&past.stderr)
        );

        let ls = run(&["ls", "--user", "u1", "--page-size", "1", "--json"], None, &mut logs);
        assert!(ls.status.success(), "{}", text(&ls.stderr));
        let listed: Vec<serde_json::Value> = text(&ls.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut documents: Vec<&str> = listed.iter().map(|v| v["document"].as_str().unwrap()).collect();
        documents.sort_unstable();
        assert_eq!(documents, ["d1", "d2"], "{provider}: {listed:?}");
        let d1 = listed.iter().find(|v| v["document"] == "d1").unwrap();
        assert_eq!(
            (d1["key"].as_str(), d1["extension"].as_str()),
            (Some(key.as_str()), Some(".pdf"))
        );
        assert_eq!(d1["size"], body.len() as u64);

        let quota = run(&["quota", "--json"], None, &mut logs);
        assert!(quota.status.success(), "{}", text(&quota.stderr));
        let q: serde_json::Value = serde_json::from_slice(&quota.stdout).unwrap();
        assert!(
            q["total"].as_u64().unwrap() > 0 && q["used"].as_u64().unwrap() >= body.len() as u64,
            "{q}"
        );

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
        let got = run(&["get", &keys[1]], None);
        assert_eq!(got.stdout, b"12345", "{provider}: {}", text(&got.stderr));

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

/// Two sealing keys in `STORAGE_SEAL_KEYS` form: `k2` seals, `k1` opens.
const SEAL_KEYS: &str =
    "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Runs `storage` with extra environment variables.
fn storage_env(args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("STORAGE_GOOGLE_CLIENT_ID", "emulator-google-client")
        .env("STORAGE_GOOGLE_CLIENT_SECRET", "emulator-google-secret")
        .env("STORAGE_MICROSOFT_CLIENT_ID", "emulator-microsoft-client")
        .env("STORAGE_MICROSOFT_CLIENT_SECRET", "emulator-microsoft-secret")
        .env_remove("STORAGE_LOG")
        .env_remove("STORAGE_STORE")
        .env_remove("STORAGE_SEAL_KEYS")
        .env_remove("STORAGE_LOCAL_BASE")
        .env_remove("STORAGE_STORE_CA")
        .envs(envs.iter().copied())
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

/// The row of `id` as the database holds it, read without any sealing key.
fn raw_row(url: &str, id: &str) -> Option<storage_factory::StoredCredentials> {
    use storage_factory::CredentialStore as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = storage_factory::PostgresCredentialStore::connect(url).await.unwrap();
        match store.load(id).await {
            Ok(row) => Some(row),
            Err(storage_core::StorageError::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    })
}

/// Every object command through `--store postgres://… --connection ID`, plain
/// and sealed: refreshed tokens land in the row, `connections list` shows the
/// connections and no token, and `disconnect` removes the row.
#[test]
fn object_commands_through_a_postgresql_store() {
    let Some(url) = database_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    let endpoints = emu.endpoints.to_str().unwrap().to_owned();
    let mut logs = String::new();
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for (provider, seal) in [("onedrive", ""), ("gdrive", SEAL_KEYS)] {
        let id = unique_id(&format!("cli-{provider}"));
        ids.push(id.clone());
        let creds = dir.path().join(format!("{provider}-pg.json"));
        connect(&emu, provider, &creds, &mut logs);
        let c = cred(&creds);
        for k in ["access_token", "refresh_token", "client_secret"] {
            if let Some(s) = c[k].as_str() {
                secrets.push(s.to_owned());
            }
        }
        let envs: Vec<(&str, &str)> = if seal.is_empty() {
            Vec::new()
        } else {
            vec![("STORAGE_SEAL_KEYS", seal)]
        };
        let base = [
            "--endpoints",
            endpoints.as_str(),
            "--store",
            url.as_str(),
            "--connection",
            id.as_str(),
        ];
        let run = |extra: &[&str], stdin: Option<&[u8]>, logs: &mut String| {
            let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
            let out = storage_env(&args, stdin, &envs);
            logs.push_str(&text(&out.stdout));
            logs.push_str(&text(&out.stderr));
            out
        };

        let import = run(&["connections", "import", creds.to_str().unwrap()], None, &mut logs);
        assert!(import.status.success(), "{}", text(&import.stderr));
        let again = run(&["connections", "import", creds.to_str().unwrap()], None, &mut logs);
        assert_eq!(again.status.code(), Some(2), "an existing connection needs --replace");
        let row = raw_row(&url, &id).unwrap();
        if seal.is_empty() {
            assert!(row.json.expose().contains(c["access_token"].as_str().unwrap()));
        } else {
            assert!(
                row.json.expose().starts_with(r#"{"sealed":"v1","kid":"k2""#),
                "the row is sealed"
            );
        }

        let put = run(
            &["put", "--user", "u1", "--document", "d1", "-"],
            Some(b"through the store"),
            &mut logs,
        );
        assert!(put.status.success(), "{}", text(&put.stderr));
        let key = text(&put.stdout).trim().to_owned();
        let get = run(&["get", &key], None, &mut logs);
        assert!(get.status.success(), "{}", text(&get.stderr));
        assert_eq!(get.stdout, b"through the store");
        let stat = run(&["stat", &key, "--json"], None, &mut logs);
        assert!(stat.status.success(), "{}", text(&stat.stderr));
        let meta: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
        assert_eq!(meta["size"], 17);

        // Force a refresh: the row's token is declared expired; the refreshed one is written back.
        let mut expired = cred(&creds);
        let key_name = if provider == "gdrive" { "expiry" } else { "expires_at" };
        expired[key_name] = serde_json::json!("2000-01-01T00:00:00Z");
        std::fs::write(&creds, expired.to_string()).unwrap();
        let replace = run(
            &["connections", "import", "--replace", creds.to_str().unwrap()],
            None,
            &mut logs,
        );
        assert!(replace.status.success(), "{}", text(&replace.stderr));
        let rm = run(&["rm", &key], None, &mut logs);
        assert!(rm.status.success(), "{}", text(&rm.stderr));
        let row = raw_row(&url, &id).unwrap();
        let after: serde_json::Value = if seal.is_empty() {
            serde_json::from_str(row.json.expose()).unwrap()
        } else {
            assert!(
                !row.json.expose().contains("access_token"),
                "the refreshed row is sealed"
            );
            let keys = storage_factory::SealingKeys::new((
                "k2",
                storage_factory::SealingKey::from_base64("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").unwrap(),
            ))
            .unwrap();
            let opener = storage_factory::SealedStore::new(storage_factory::MemoryCredentialStore::new(), keys);
            serde_json::from_str(opener.unseal(&id, &row.json).unwrap().expose()).unwrap()
        };
        assert_ne!(
            after["access_token"], expired["access_token"],
            "{provider}: the row was not refreshed"
        );
        assert_ne!(after[key_name], "2000-01-01T00:00:00Z");
        secrets.push(after["access_token"].as_str().unwrap().to_owned());
        secrets.push(after["refresh_token"].as_str().unwrap().to_owned());
        let missing = run(&["stat", &key], None, &mut logs);
        assert_eq!(missing.status.code(), Some(3), "{}", text(&missing.stderr));

        // A revoked grant: the row is marked and the listing says so.
        let mut revoked = after.clone();
        revoked["refresh_token"] = serde_json::json!("revoked-token");
        revoked[key_name] = serde_json::json!("2000-01-01T00:00:00Z");
        let revoked_file = dir.path().join(format!("{provider}-revoked.json"));
        std::fs::write(&revoked_file, revoked.to_string()).unwrap();
        let id2 = format!("{id}-revoked");
        ids.push(id2.clone());
        let args = ["--store", url.as_str(), "--connection", id2.as_str()];
        let import = storage_env(
            &[&args[..], &["connections", "import", revoked_file.to_str().unwrap()]].concat(),
            None,
            &envs,
        );
        assert!(import.status.success(), "{}", text(&import.stderr));
        let reauth = storage_env(
            &[&["--endpoints", endpoints.as_str()], &args[..], &["health"]].concat(),
            None,
            &envs,
        );
        assert_eq!(reauth.status.code(), Some(4), "{}", text(&reauth.stderr));
        logs.push_str(&text(&reauth.stderr));

        let list = storage_env(&["--store", url.as_str(), "connections", "list"], None, &envs);
        assert!(list.status.success(), "{}", text(&list.stderr));
        let listing = text(&list.stdout);
        logs.push_str(&listing);
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(line.contains(provider) && line.contains("active"), "{line}");
        assert!(line.contains("T") && line.ends_with('Z'), "an expiry: {line}");
        let line2 = listing.lines().find(|l| l.starts_with(&id2)).unwrap();
        assert!(line2.contains("requires_reauth"), "{line2}");
        let json = storage_env(&["--store", url.as_str(), "connections", "list", "--json"], None, &envs);
        assert!(json.status.success(), "{}", text(&json.stderr));
        logs.push_str(&text(&json.stdout));
        let items: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let item = items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap();
        assert_eq!(item["provider"], provider);
        assert_eq!(item["status"], "active");
        assert_eq!(item["access_token_expires_at"], after[key_name]);
        if !seal.is_empty() {
            // Without the keys the sealed rows are listed, unread.
            let blind = storage(&["--store", url.as_str(), "connections", "list"], None);
            assert!(blind.status.success(), "{}", text(&blind.stderr));
            let listing = text(&blind.stdout);
            let line = listing.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap();
            assert!(line.contains("sealed: set STORAGE_SEAL_KEYS"), "{line}");
            // A wrong key is an integrity failure, not a crash.
            let wrong = storage_env(
                &[&base[..], &["health"]].concat(),
                None,
                &[("STORAGE_SEAL_KEYS", "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")],
            );
            assert_eq!(wrong.status.code(), Some(6), "{}", text(&wrong.stderr));
            assert!(
                text(&wrong.stderr).contains("failed authentication"),
                "{}",
                text(&wrong.stderr)
            );
        }

        let gone = run(&["disconnect", "--yes"], None, &mut logs);
        assert!(gone.status.success(), "{}", text(&gone.stderr));
        assert!(
            text(&gone.stdout).contains(&format!("deleted connection {id}")),
            "{}",
            text(&gone.stdout)
        );
        assert!(raw_row(&url, &id).is_none(), "disconnect deleted the row");
        let args = [
            "--endpoints",
            endpoints.as_str(),
            "--store",
            url.as_str(),
            "--connection",
            id2.as_str(),
            "disconnect",
            "--yes",
        ];
        let gone = storage_env(&args, None, &envs);
        assert!(gone.status.success(), "{}", text(&gone.stderr));
        assert!(
            raw_row(&url, &id2).is_none(),
            "disconnect deleted the row marked requires_reauth"
        );
    }
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a token or secret appeared in the program's output"
        );
    }
}

/// `--store file:DIR`: a directory of connections, sealed at rest, through the
/// local provider (no emulator, no database).
#[test]
fn a_directory_store_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let conns = dir.path().join("conns");
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&conns).unwrap();
    std::fs::create_dir_all(&objects).unwrap();
    let creds = dir.path().join("local.json");
    std::fs::write(
        &creds,
        serde_json::json!({"provider": "local", "root": objects.to_str().unwrap()}).to_string(),
    )
    .unwrap();
    let spec = format!("file:{}", conns.display());
    let envs = [("STORAGE_SEAL_KEYS", SEAL_KEYS)];
    // A local connection opens only under the directory --local-base allows.
    let base = [
        "--store",
        spec.as_str(),
        "--connection",
        "c1",
        "--local-base",
        dir.path().to_str().unwrap(),
    ];
    let run = |extra: &[&str], stdin: Option<&[u8]>| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        storage_env(&args, stdin, &envs)
    };
    let import = run(&["connections", "import", creds.to_str().unwrap()], None);
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(text(&import.stdout).trim(), "imported connection c1 (local), sealed");
    let stored = std::fs::read_to_string(conns.join("c1.json")).unwrap();
    assert!(stored.contains(r#""sealed":"v1""#), "{stored}");
    assert!(!stored.contains("objects"), "the root is sealed: {stored}");

    let refused = storage_env(&["--store", spec.as_str(), "--connection", "c1", "health"], None, &envs);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("--local-base"),
        "{}",
        text(&refused.stderr)
    );
    let put = run(&["put", "--user", "u1", "--document", "d1", "-"], Some(b"local bytes"));
    assert!(put.status.success(), "{}", text(&put.stderr));
    let key = text(&put.stdout).trim().to_owned();
    assert_eq!(run(&["get", &key], None).stdout, b"local bytes");
    assert!(run(&["rm", &key], None).status.success());

    let list = storage_env(
        &["--store", conns.to_str().unwrap(), "connections", "list"],
        None,
        &envs,
    );
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listing = text(&list.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("c1 ") && l.contains("local") && l.contains("active")),
        "{listing}"
    );

    // Without the keys nothing opens.
    let blind = storage(&["--store", spec.as_str(), "--connection", "c1", "health"], None);
    assert_eq!(blind.status.code(), Some(2), "{}", text(&blind.stderr));
    assert!(
        text(&blind.stderr).contains("sealed: set STORAGE_SEAL_KEYS"),
        "{}",
        text(&blind.stderr)
    );
}

/// A tampered `local` row cannot open the machine's filesystem: without
/// --local-base no local row opens, and with it only roots under that directory.
#[test]
fn a_tampered_local_row_cannot_read_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("tampered.json");
    let allowed = dir.path().join("objects");
    for (root, local_base) in [("/", None), ("/", Some(&allowed)), ("/etc", Some(&allowed))] {
        std::fs::write(
            &creds,
            serde_json::json!({"provider": "local", "root": root}).to_string(),
        )
        .unwrap();
        let mut args = vec!["--credentials", creds.to_str().unwrap()];
        if let Some(b) = local_base {
            args.extend(["--local-base", b.to_str().unwrap()]);
        }
        args.extend(["get", "etc/passwd"]);
        let out = storage(&args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{root} {local_base:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing was read");
    }
    let out = storage(
        &[
            "--credentials",
            creds.to_str().unwrap(),
            "--local-base",
            "relative",
            "health",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_of_the_store_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, r#"{"provider":"memory"}"#).unwrap();
    let pg = "postgres://nobody@127.0.0.1:1/none";
    let dir_spec = dir.path().to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &[
            "--store",
            pg,
            "--connection",
            "c1",
            "--credentials",
            file.to_str().unwrap(),
            "health",
        ],
        &["--store", pg, "health"],
        &["--store", dir_spec, "stat", "k"],
        &["--connection", "c1", "health"],
        &["connections", "list"],
        &["--store", dir_spec, "connections", "import", file.to_str().unwrap()],
        &["--store", "/no/such/dir", "--connection", "c1", "health"],
    ];
    for args in cases {
        let out = storage(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("usage") || text(&out.stderr).contains("cannot be used with"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A bad sealing key is a usage error that does not repeat the key.
    let out = storage_env(
        &["--store", dir_spec, "--connection", "c1", "health"],
        None,
        &[("STORAGE_SEAL_KEYS", "k1:bm90LWEta2V5LVNFQ1JFVA==")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("bm90LWEta2V5LVNFQ1JFVA"),
        "{}",
        text(&out.stderr)
    );
    let out = storage_env(
        &["--store", dir_spec, "connections", "list"],
        None,
        &[("STORAGE_SEAL_KEYS", "no-colon")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_postgresql_store_over_tls_trusts_only_the_given_ca() {
    let Some(url) = database_url() else { return };
    let Some(ca) = database_ca() else { return };
    let tls = require_tls(&url);
    let list = ["--store", tls.as_str(), "connections", "list"];
    let out = storage_env(&list, None, &[("STORAGE_STORE_CA", ca.as_str())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The Mozilla roots do not vouch for the test CA.
    let out = storage_env(&list, None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for bad in [junk.clone(), dir.path().join("missing.pem")] {
        let out = storage_env(&list, None, &[("STORAGE_STORE_CA", bad.to_str().unwrap())]);
        assert_eq!(out.status.code(), Some(2), "{}: {}", bad.display(), text(&out.stderr));
    }
}

/// An emulator in this test's process, for the grant states and faults a test
/// sets; its endpoints JSON is written to `dir`.
struct InProcess {
    emu: storage_emulator::EmulatorHandle,
    endpoints: PathBuf,
    // Serves the emulator; dropped last.
    _rt: tokio::runtime::Runtime,
}

fn in_process(dir: &Path) -> InProcess {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(storage_emulator::Emulator::start()).unwrap();
    let endpoints = dir.join("endpoints.json");
    std::fs::write(&endpoints, serde_json::to_string(emu.endpoints()).unwrap()).unwrap();
    InProcess {
        emu,
        endpoints,
        _rt: rt,
    }
}

/// Microsoft's "sign in again" answers (`interaction_required`,
/// `consent_required` …) end with the re-authorisation exit code, mark the
/// credentials file, name the AADSTS code in the log, and make no further
/// token request.
#[test]
fn sign_in_again_answers_exit_with_the_re_authorisation_code() {
    for why in storage_emulator::SignInRequired::ALL {
        let dir = tempfile::tempdir().unwrap();
        let emu = in_process(dir.path());
        let mut json = emu.emu.microsoft_grant();
        assert!(emu.emu.require_sign_in(json["refresh_token"].as_str().unwrap(), why));
        // Declared expired: the next command refreshes first.
        json["expires_at"] = serde_json::json!("2000-01-01T00:00:00Z");
        let creds = dir.path().join("creds.json");
        std::fs::write(&creds, json.to_string()).unwrap();
        let args = [
            "--endpoints",
            emu.endpoints.to_str().unwrap(),
            "--credentials",
            creds.to_str().unwrap(),
            "health",
        ];
        let out = storage(&args, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "AADSTS{}: {stderr}", why.code());
        assert!(stderr.contains("re-authorisation"), "{stderr}");
        assert!(
            stderr.contains(&why.code().to_string()),
            "the log names the code: {stderr}"
        );
        assert_eq!(cred(&creds)["status"], "requires_reauth");
        emu.emu.clear_journal();
        let again = storage(&args, None);
        assert_eq!(again.status.code(), Some(4));
        assert!(
            emu.emu.journal().token_requests().is_empty(),
            "AADSTS{}: a marked connection asked for a token again",
            why.code()
        );
    }
}

/// Drive's `dailyLimitExceeded` is the application's request quota, not the
/// user's storage: the two have their own messages and exit codes.
#[test]
fn the_apps_daily_quota_and_a_full_drive_exit_differently() {
    use storage_emulator::{FaultAction, FaultRule};
    let dir = tempfile::tempdir().unwrap();
    let emu = in_process(dir.path());
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, emu.emu.google_grant().to_string()).unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"hello").unwrap();
    let put = [
        "--endpoints",
        emu.endpoints.to_str().unwrap(),
        "--credentials",
        creds.to_str().unwrap(),
        "put",
        "--user",
        "u1",
        "--document",
        "d1",
        input.to_str().unwrap(),
    ];
    let rule = emu
        .emu
        .faults()
        .add(FaultRule::new(FaultAction::google_error(403, "dailyLimitExceeded")).path("/upload/*"));
    let daily = storage(&put, None);
    let daily_err = text(&daily.stderr);
    emu.emu.faults().remove(rule);
    emu.emu
        .faults()
        .add(FaultRule::new(FaultAction::google_error(403, "storageQuotaExceeded")).path("/upload/*"));
    let full = storage(&put, None);
    let full_err = text(&full.stderr);
    assert_eq!(daily.status.code(), Some(8), "{daily_err}");
    assert_eq!(full.status.code(), Some(7), "{full_err}");
    assert!(daily_err.contains("application"), "{daily_err}");
    assert!(full_err.contains("storage is full"), "{full_err}");
    assert_ne!(daily_err, full_err);
}
