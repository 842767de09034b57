//! The factory and managed connections against the emulator: every backend
//! through `open` and `connect`, single-flight refresh, rotation, re-auth,
//! failing stores, and secrets kept out of logs and `Debug`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use storage_core::testkit::run_conformance;
use storage_core::{ConnectionReason, ObjectName, Secret, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule};
use storage_factory::{
    ConnectionStatus, CredentialStore, FileCredentialStore, MemoryCredentialStore, RefreshLock, StorageFactory,
    StoredCredentials, async_trait,
};
use storage_tests::emulator::{factory_builder, grant, quick_retry};

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu).retry(quick_retry()).build().unwrap()
}

fn token_requests(emu: &EmulatorHandle) -> usize {
    emu.journal().token_requests().len()
}

fn name(doc: &str) -> ObjectName {
    ObjectName::new("user-7", doc, ".pdf").unwrap()
}

fn stored_json(store: &MemoryCredentialStore, id: &str) -> serde_json::Value {
    serde_json::from_str(store.get(id).unwrap().json.expose()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_passes_the_kit_through_open_and_connect() {
    let emu = Emulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let factory = factory_builder(&emu)
        .retry(quick_retry())
        .allow_local(dir.path())
        .allow_memory()
        .build()
        .unwrap();
    let local = serde_json::json!({"provider": "local", "root": dir.path()});
    for json in [
        grant(&emu, "gdrive"),
        grant(&emu, "onedrive"),
        local,
        serde_json::json!({"provider": "memory"}),
    ] {
        let provider = json["provider"].as_str().unwrap().to_owned();
        let opened = factory.open(&json.to_string()).unwrap();
        let report = run_conformance(opened.as_ref()).await;
        assert!(report.failures.is_empty(), "open {provider}: {report}");
        let store = Arc::new(MemoryCredentialStore::new());
        store.insert("c1", json.to_string());
        let managed = factory.connect("c1", store).await.unwrap();
        let report = run_conformance(managed.as_ref()).await;
        assert!(report.failures.is_empty(), "connect {provider}: {report}");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_refreshed_once_for_100_concurrent_calls() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let store = Arc::new(MemoryCredentialStore::new());
        let original = grant(&emu, provider);
        store.insert("c1", original.to_string());
        let backend = factory.connect("c1", store.clone()).await.unwrap();
        let key = backend
            .put_object(&name("d"), Bytes::from_static(b"hello"), "application/pdf")
            .await
            .unwrap();
        emu.expire_access_tokens();
        emu.clear_journal();
        let calls = (0..100).map(|_| backend.stat_object(&key));
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap().size, 5, "{provider}");
        }
        assert_eq!(token_requests(&emu), 1, "{provider}: one refresh for 100 callers");
        let saved = stored_json(&store, "c1");
        assert_ne!(
            saved["access_token"], original["access_token"],
            "{provider}: the new token was saved"
        );
        emu.shutdown().await;
    }
}

/// Inside the skew window the call goes on the still-valid token while the
/// refresh runs, and returns with the new credentials saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_about_to_expire_is_refreshed_beside_the_call() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    let mut json = grant(&emu, "gdrive");
    json["expiry"] = serde_json::json!((chrono_like_now_plus(30)));
    store.insert("c1", json.to_string());
    let backend = factory.connect("c1", store.clone()).await.unwrap();
    // The token request is held long enough that the call, which starts
    // beside it, reads the token before the refresh can replace it; without
    // the delay a busy machine may let the refresh finish first (the call is
    // then right to use the new token, and this test would prove nothing).
    emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: 1_000 })
            .method("POST")
            .path("*token")
            .times(1),
    );
    emu.clear_journal();
    backend.health_check().await.unwrap();
    assert_eq!(token_requests(&emu), 1);
    let calls = emu.journal().filter(|e| e.path.starts_with("/drive/")).len();
    assert_eq!(calls, 1, "one call, none refused");
    assert_eq!(
        emu.journal().with_bearer(json["access_token"].as_str().unwrap()).len(),
        1,
        "the call used the still-valid token"
    );
    assert_ne!(
        stored_json(&store, "c1")["access_token"],
        json["access_token"],
        "the new token was saved before the call returned"
    );
    emu.shutdown().await;
}

/// An RFC 3339 time `secs` from now, without a date crate.
fn chrono_like_now_plus(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    let unix = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (unix / 86_400, unix % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm, public domain facts).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotated_microsoft_refresh_token_is_persisted_and_the_old_one_never_reused() {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    let original = grant(&emu, "onedrive");
    store.insert("c1", original.to_string());
    let backend = factory.connect("c1", store.clone()).await.unwrap();
    let mut seen = vec![original["refresh_token"].as_str().unwrap().to_owned()];
    for round in 0..3 {
        emu.expire_access_tokens();
        backend
            .health_check()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let rt = stored_json(&store, "c1")["refresh_token"].as_str().unwrap().to_owned();
        assert!(!seen.contains(&rt), "round {round}: the refresh token did not rotate");
        seen.push(rt);
    }
    assert_eq!(token_requests(&emu), 3);
    // A fresh connection from the store works too: what was saved is current.
    let again = factory.connect("c1", store.clone()).await.unwrap();
    emu.expire_access_tokens();
    again.health_check().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_marks_reauth_and_then_nothing_reaches_the_network() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let store = Arc::new(MemoryCredentialStore::new());
        store.insert("c1", grant(&emu, provider).to_string());
        let backend = factory.connect("c1", store.clone()).await.unwrap();
        emu.revoke_grants();
        emu.expire_access_tokens();
        let err = backend.health_check().await.unwrap_err();
        assert_eq!(
            err.connection_reason(),
            Some(ConnectionReason::InvalidGrant),
            "{provider}"
        );
        assert_eq!(store.get("c1").unwrap().status, ConnectionStatus::RequiresReauth);
        emu.clear_journal();
        for _ in 0..3 {
            let err = backend.health_check().await.unwrap_err();
            assert_eq!(err.connection_reason(), Some(ConnectionReason::InvalidGrant));
        }
        let err = factory.connect("c1", store.clone()).await.unwrap_err();
        assert_eq!(err.connection_reason(), Some(ConnectionReason::InvalidGrant));
        assert!(
            emu.journal().is_empty(),
            "{provider}: a marked connection touched the network"
        );
        emu.shutdown().await;
    }
}

/// A store whose first `fail` saves fail.
#[derive(Debug)]
struct FlakyStore {
    inner: MemoryCredentialStore,
    fail: AtomicU32,
}

#[async_trait]
impl CredentialStore for FlakyStore {
    async fn load(&self, id: &str) -> storage_core::Result<StoredCredentials> {
        self.inner.load(id).await
    }
    async fn save_credentials(&self, id: &str, json: &Secret) -> storage_core::Result<()> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Err(StorageError::io("database is down", std::io::Error::other("down")));
        }
        self.inner.save_credentials(id, json).await
    }
    async fn set_status(&self, id: &str, status: ConnectionStatus) -> storage_core::Result<()> {
        self.inner.set_status(id, status).await
    }
    async fn lock_refresh(&self, id: &str) -> storage_core::Result<RefreshLock> {
        self.inner.lock_refresh(id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_does_not_lose_the_refreshed_token() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(FlakyStore {
        inner: MemoryCredentialStore::new(),
        fail: AtomicU32::new(1),
    });
    let original = grant(&emu, "onedrive");
    store.inner.insert("c1", original.to_string());
    let backend = factory.connect("c1", store.clone()).await.unwrap();
    emu.expire_access_tokens();
    backend
        .health_check()
        .await
        .expect("the operation completes although the save failed");
    assert_eq!(
        stored_json(&store.inner, "c1")["access_token"],
        original["access_token"],
        "the first save failed"
    );
    backend.health_check().await.unwrap();
    let saved = stored_json(&store.inner, "c1");
    assert_ne!(
        saved["access_token"], original["access_token"],
        "the next call saved the refreshed token"
    );
    assert_ne!(
        saved["refresh_token"], original["refresh_token"],
        "with the rotated refresh token"
    );
    assert_eq!(token_requests(&emu), 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_file_store_make_one_token_request() {
    let emu = Emulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = grant(&emu, "gdrive");
    FileCredentialStore::in_dir(dir.path())
        .save_credentials("c1", &Secret::new(json.to_string()))
        .await
        .unwrap();
    // Two factories and two stores stand in for two processes.
    let (fa, fb) = (factory(&emu), factory(&emu));
    let a = fa
        .connect("c1", Arc::new(FileCredentialStore::in_dir(dir.path())))
        .await
        .unwrap();
    let b = fb
        .connect("c1", Arc::new(FileCredentialStore::in_dir(dir.path())))
        .await
        .unwrap();
    emu.expire_access_tokens();
    emu.clear_journal();
    let (ra, rb) = tokio::join!(a.health_check(), b.health_check());
    ra.unwrap();
    rb.unwrap();
    assert_eq!(token_requests(&emu), 1, "the second process used the first one's token");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_token_uri_is_refused() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let mut json = grant(&emu, "gdrive");
    json["token_uri"] = serde_json::json!("https://attacker.example/token");
    let err = factory.open(&json.to_string()).unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("token_uri"));
    emu.shutdown().await;
}

/// Everything written to the captured log.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_reaches_a_log_or_a_debug_string() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut debug = String::new();
    let mut secrets: Vec<String> = Vec::new();
    rt.block_on(async {
        let emu = Emulator::start().await.unwrap();
        secrets.push(emu.google_app().client_secret.clone());
        secrets.push(emu.microsoft_app().client_secret.clone());
        let factory = factory(&emu);
        debug += &format!("{factory:?}");
        for provider in ["gdrive", "onedrive"] {
            let store = Arc::new(MemoryCredentialStore::new());
            let json = grant(&emu, provider);
            secrets.push(json["access_token"].as_str().unwrap().to_owned());
            secrets.push(json["refresh_token"].as_str().unwrap().to_owned());
            store.insert("c1", json.to_string());
            let backend = factory.connect("c1", store.clone()).await.unwrap();
            debug += &format!("{backend:?}{store:?}");
            let key = backend
                .put_object(&name("s"), Bytes::from_static(b"x"), "text/plain")
                .await
                .unwrap();
            emu.expire_access_tokens();
            backend.get_object(&key).await.unwrap();
            let saved = stored_json(&store, "c1");
            secrets.push(saved["access_token"].as_str().unwrap().to_owned());
            secrets.push(saved["refresh_token"].as_str().unwrap().to_owned());
            debug += &format!("{:?}", storage_factory::Credentials::parse(&saved.to_string()).unwrap());
            emu.revoke_grants();
            emu.expire_access_tokens();
            let err = backend.get_object(&key).await.unwrap_err();
            debug += &format!("{err:?} {err}");
        }
        emu.shutdown().await;
    });
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("refreshed the access token"),
        "the run must have logged: {log}"
    );
    assert!(log.contains("connection=c1"), "spans carry the connection id: {log}");
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(!log.contains(s.as_str()), "a secret reached the log");
        assert!(!debug.contains(s.as_str()), "a secret reached a Debug string");
    }
}

#[tokio::test]
async fn connections_opened_by_one_factory_share_one_pool() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let backends: Vec<_> = (0..3)
            .map(|_| factory.open(&grant(&emu, provider).to_string()).unwrap())
            .collect();
        emu.clear_journal();
        for b in &backends {
            for _ in 0..3 {
                b.health_check().await.unwrap();
                // hyper hands a finished HTTP/1 connection back to its pool from a task
                // of its own; a call issued in the very same instant can miss it and dial
                // again. On one thread that task runs during the pause, whatever the load
                // (on two, a busy machine could hold it back longer than the pause).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let journal = emu.journal();
        assert_eq!(journal.len(), 9);
        assert_eq!(journal.connection_count(), 1, "{provider}: three connections, one pool");
        emu.shutdown().await;
    }
}
