//! Credential stores shared by several OS processes: one token request for a
//! fleet that finds a token expired at once, compare-and-swap writes, and a
//! refresh lock that a killed holder gives back.
//!
//! The emulator runs in the test process; the "processes" are this test binary
//! started again with [`CHILD`] set, which runs only `fleet_child`.
//!
//! The PostgreSQL tests need `STORAGE_TEST_DATABASE_URL` (`cargo xtask ci`
//! starts a throwaway cluster and sets it). Without it they print why they
//! skip, except under CI (`CI=true`), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_core::{Secret, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule};
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{
    CredentialStore, Endpoints, FileCredentialStore, PostgresCredentialStore, StorageFactory, StoredCredentials,
};
use storage_tests::postgres::{database_url, unique_id};

/// Set in a child process: what it does (`ops` or `hold-lock`).
const CHILD: &str = "STORAGE_TEST_FLEET_CHILD";
/// The child's store: `file:{dir}` or `postgres:{url}`.
const STORE: &str = "STORAGE_TEST_FLEET_STORE";
const CONNECTION: &str = "STORAGE_TEST_FLEET_CONNECTION";
const ENDPOINTS: &str = "STORAGE_TEST_FLEET_ENDPOINTS";
const APP_ID: &str = "STORAGE_TEST_FLEET_APP_ID";
const APP_SECRET: &str = "STORAGE_TEST_FLEET_APP_SECRET";
const OPS: &str = "STORAGE_TEST_FLEET_OPS";

const PROCESSES: usize = 4;
const OPS_PER_PROCESS: usize = 50;

async fn open_store(spec: &str) -> Arc<dyn CredentialStore> {
    match spec.split_once(':') {
        Some(("file", dir)) => Arc::new(FileCredentialStore::in_dir(dir)),
        Some(("postgres", url)) => Arc::new(PostgresCredentialStore::connect(url).await.unwrap()),
        _ => panic!("unknown store spec {spec}"),
    }
}

fn factory_from(endpoints: &str, app_id: &str, app_secret: &str) -> StorageFactory {
    StorageFactory::builder()
        .endpoints(Endpoints::from_json(endpoints).unwrap())
        .microsoft_app(MicrosoftApp::new(app_id, app_secret))
        .build()
        .unwrap()
}

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    let m = emu.microsoft_app();
    factory_from(
        &serde_json::to_string(emu.endpoints()).unwrap(),
        &m.client_id,
        m.client_secret.as_str(),
    )
}

fn token_requests(emu: &EmulatorHandle) -> usize {
    emu.journal().token_requests().len()
}

fn refresh_token(stored: &StoredCredentials) -> String {
    let json: serde_json::Value = serde_json::from_str(stored.json.expose()).unwrap();
    json["refresh_token"].as_str().unwrap().to_owned()
}

/// Runs only as a child of the tests below (with [`CHILD`] set); in a plain
/// test run it does nothing.
#[test]
fn fleet_child() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open_store(&env(STORE)).await;
        let id = env(CONNECTION);
        let mut out = std::io::stdout();
        if role == "hold-lock" {
            let _lock = store.lock_refresh(&id).await.unwrap();
            writeln!(out, "fleet: ready").unwrap();
            out.flush().unwrap();
            tokio::time::sleep(Duration::from_secs(120)).await;
            return;
        }
        let factory = factory_from(&env(ENDPOINTS), &env(APP_ID), &env(APP_SECRET));
        let backend = factory.connect(&id, store).await.unwrap();
        let ops: usize = env(OPS).parse().unwrap();
        // One round per `go` line, until stdin closes.
        let mut stdin = std::io::stdin().lock();
        loop {
            writeln!(out, "fleet: ready").unwrap();
            out.flush().unwrap();
            let mut go = String::new();
            if stdin.read_line(&mut go).unwrap() == 0 {
                return;
            }
            let results = futures::future::join_all((0..ops).map(|_| {
                let backend = backend.clone();
                async move {
                    let t = Instant::now();
                    backend.health_check().await.map(|()| t.elapsed())
                }
            }))
            .await;
            let mut micros = Vec::new();
            for r in results {
                micros.push(r.unwrap().as_micros().to_string());
            }
            writeln!(out, "fleet: latencies_us {}", micros.join(" ")).unwrap();
        }
    });
}

fn spawn_child(role: &str, store: &str, id: &str, emu: Option<&EmulatorHandle>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "fleet_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(STORE, store)
        .env(CONNECTION, id)
        .env(OPS, OPS_PER_PROCESS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(emu) = emu {
        let m = emu.microsoft_app();
        cmd.env(ENDPOINTS, serde_json::to_string(emu.endpoints()).unwrap())
            .env(APP_ID, &m.client_id)
            .env(APP_SECRET, m.client_secret.as_str());
    }
    cmd.spawn().unwrap()
}

/// Reads the child's stdout up to its `fleet: ready` line.
fn wait_ready(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut reader, "fleet: ready");
    reader
}

/// 4 processes × 50 concurrent calls on one connection whose access token
/// the emulator has expired, `rounds` times over: one token request per round
/// between them, every call succeeds, and the store keeps the refresh token the
/// last request issued (the emulator invalidates rotated ones, so a lost one
/// would fail the next round or the last check).
async fn fleet_refreshes_once_per_round(
    store_spec: String,
    id: String,
    seed: Arc<dyn CredentialStore>,
    rounds: usize,
    token_delay_ms: u64,
) {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let grant = emu.microsoft_grant();
    let original = grant["refresh_token"].as_str().unwrap().to_owned();
    seed.save_credentials(&id, &Secret::new(grant.to_string()))
        .await
        .unwrap();
    // A slow token endpoint: every process finds the token expired while the
    // first refresh is still in flight, so only the lock can keep it to one.
    emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: token_delay_ms })
            .method("POST")
            .path("*/oauth2/v2.0/token"),
    );

    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_child("ops", &store_spec, &id, Some(&emu)))
        .collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    let mut micros: Vec<u64> = Vec::new();
    for round in 0..rounds {
        readers = tokio::task::spawn_blocking(move || {
            for r in &mut readers {
                wait_line(r, "fleet: ready");
            }
            readers
        })
        .await
        .unwrap();
        emu.expire_access_tokens();
        for child in &mut children {
            child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
            child.stdin.as_mut().unwrap().flush().unwrap();
        }
        let (back, lines) = tokio::task::spawn_blocking(move || {
            let lines: Vec<String> = readers
                .iter_mut()
                .map(|r| wait_line(r, "fleet: latencies_us "))
                .collect();
            (readers, lines)
        })
        .await
        .unwrap();
        readers = back;
        for line in lines {
            micros.extend(line.split_whitespace().map(|n| n.parse::<u64>().unwrap()));
        }
        assert_eq!(
            token_requests(&emu),
            round + 1,
            "the fleet made one token request in round {round}"
        );
    }
    for child in &mut children {
        drop(child.stdin.take());
    }
    let statuses =
        tokio::task::spawn_blocking(move || children.iter_mut().map(|c| c.wait().unwrap()).collect::<Vec<_>>())
            .await
            .unwrap();
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    assert_eq!(
        micros.len(),
        rounds * PROCESSES * OPS_PER_PROCESS,
        "every call reported"
    );
    micros.sort_unstable();
    eprintln!(
        "fleet ({store_spec:.8}…): {} calls, p50 {} µs, p99 {} µs ({token_delay_ms} ms token endpoint, debug build; not a benchmark)",
        micros.len(),
        micros[micros.len() / 2],
        micros[micros.len() * 99 / 100]
    );

    let stored = seed.load(&id).await.unwrap();
    assert_ne!(refresh_token(&stored), original, "the rotated refresh token was stored");
    // The old refresh tokens are invalid now: only the last one issued can refresh again.
    emu.faults().clear();
    let managed = factory(&emu).connect(&id, seed.clone()).await.unwrap();
    emu.expire_access_tokens();
    managed.health_check().await.unwrap();
    assert_eq!(token_requests(&emu), rounds + 1);
    emu.shutdown().await;
}

/// Reads lines until one contains `marker` (libtest may have written
/// `test fleet_child ... ` before it); returns what follows the marker.
fn wait_line(reader: &mut BufReader<std::process::ChildStdout>, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "a child ended early");
        if let Some((_, rest)) = line.split_once(marker) {
            return rest.trim_end().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_sharing_a_file_store_make_one_token_request() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file:{}", dir.path().display());
    let seed = Arc::new(FileCredentialStore::in_dir(dir.path()));
    fleet_refreshes_once_per_round(spec, "c1".into(), seed, 1, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_sharing_postgresql_make_one_token_request() {
    let Some(url) = database_url() else { return };
    let seed = Arc::new(PostgresCredentialStore::connect(&url).await.unwrap());
    fleet_refreshes_once_per_round(format!("postgres:{url}"), unique_id("fleet"), seed, 1, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_writes_are_compare_and_swap() {
    let Some(url) = database_url() else { return };
    // Two stores connecting at once both run (or skip) the migration.
    let (a, b) = tokio::join!(
        PostgresCredentialStore::connect(&url),
        PostgresCredentialStore::connect(&url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let id = unique_id("cas");
    let v1 = Secret::new(r#"{"provider":"memory","n":1}"#);
    a.create(&id, &v1).await.unwrap();
    let err = b.create(&id, &v1).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Provider { status: 409, code: Some(c), .. } if c == "conflict"),
        "{err:?}"
    );

    b.load(&id).await.unwrap();
    a.save_credentials(&id, &Secret::new(r#"{"provider":"memory","n":2}"#))
        .await
        .unwrap();
    // b read version 1; a wrote version 2 since: b's write changes nothing.
    let err = b
        .save_credentials(&id, &Secret::new(r#"{"provider":"memory","n":3}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Provider { status: 409, code: Some(c), .. } if c == "conflict"),
        "{err:?}"
    );
    assert!(err.to_string().contains("load it again"), "{err}");
    let err = b
        .set_status(&id, storage_factory::ConnectionStatus::RequiresReauth)
        .await
        .unwrap_err();
    assert!(matches!(&err, StorageError::Provider { status: 409, .. }), "{err:?}");
    assert!(a.load(&id).await.unwrap().json.expose().contains(r#""n":2"#));

    // After reading again, b's write goes through.
    b.load(&id).await.unwrap();
    b.save_credentials(&id, &Secret::new(r#"{"provider":"memory","n":3}"#))
        .await
        .unwrap();
    let stored = a.load(&id).await.unwrap();
    assert!(stored.json.expose().contains(r#""n":3"#));
    assert_eq!(stored.status, storage_factory::ConnectionStatus::Active);

    a.delete(&id).await.unwrap();
    assert!(matches!(b.load(&id).await, Err(StorageError::NotFound { .. })));
    let debug = format!("{a:?}");
    assert!(!debug.contains(&url), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_refresh_lock_excludes_others_until_dropped() {
    let Some(url) = database_url() else { return };
    let a = PostgresCredentialStore::connect(&url).await.unwrap();
    let b = Arc::new(PostgresCredentialStore::connect(&url).await.unwrap());
    let id = unique_id("lock");
    let held = a.lock_refresh(&id).await.unwrap();
    let waiter = {
        let b = b.clone();
        let id = id.clone();
        tokio::spawn(async move { b.lock_refresh(&id).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a second lock on the same connection waited");
    // Another connection's lock is independent.
    b.lock_refresh(&unique_id("other")).await.unwrap();
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the lock was released when its guard dropped")
        .unwrap()
        .unwrap();
}

/// A process killed (SIGKILL) while it holds the refresh lock gives it back.
async fn a_killed_holder_releases_the_lock(store_spec: String, store: Arc<dyn CredentialStore>, id: String) {
    let mut child = spawn_child("hold-lock", &store_spec, &id, None);
    let child = tokio::task::spawn_blocking(move || {
        wait_ready(&mut child);
        child
    })
    .await
    .unwrap();
    let waiter = {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move { store.lock_refresh(&id).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the child held the lock");
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the killed holder's lock was released")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_holding_the_postgresql_lock_releases_it() {
    let Some(url) = database_url() else { return };
    let store = Arc::new(PostgresCredentialStore::connect(&url).await.unwrap());
    a_killed_holder_releases_the_lock(format!("postgres:{url}"), store, unique_id("kill")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_holding_the_file_lock_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileCredentialStore::in_dir(dir.path()));
    a_killed_holder_releases_the_lock(format!("file:{}", dir.path().display()), store, "c1".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rounds_of_rotation_across_four_processes_lose_no_file_connection() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file:{}", dir.path().display());
    let seed = Arc::new(FileCredentialStore::in_dir(dir.path()));
    fleet_refreshes_once_per_round(spec, "c1".into(), seed, 20, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rounds_of_rotation_across_four_processes_lose_no_postgresql_connection() {
    let Some(url) = database_url() else { return };
    let seed = Arc::new(PostgresCredentialStore::connect(&url).await.unwrap());
    fleet_refreshes_once_per_round(format!("postgres:{url}"), unique_id("rounds"), seed, 20, 50).await;
}
