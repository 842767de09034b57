//! Managed connections when the token endpoint, the store or the caller fails:
//! one refresh attempt sequence for every waiting caller, a still-valid token
//! used when a proactive refresh fails, and a rotated refresh token that a
//! dropped caller cannot lose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use storage_core::{ConnectionReason, RetryPolicy, Secret, StorageBackend};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, SignInRequired};
use storage_factory::{
    ConnectionStatus, CredentialStore, MemoryCredentialStore, PostgresCredentialStore, RefreshLock, StorageFactory,
    StoredCredentials, async_trait,
};
use storage_tests::emulator::{factory_builder, grant};
use storage_tests::postgres::{database_url, unique_id};

const PROVIDERS: [&str; 2] = ["gdrive", "onedrive"];
/// Attempts of one refresh sequence.
const ATTEMPTS: u32 = 3;
const READ_TIMEOUT: Duration = Duration::from_millis(300);

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(20))
}

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu)
        .retry(policy())
        .timeouts(Duration::from_secs(1), READ_TIMEOUT)
        .build()
        .unwrap()
}

fn token_requests(emu: &EmulatorHandle) -> usize {
    emu.journal().token_requests().len()
}

fn token_endpoint(action: FaultAction) -> FaultRule {
    FaultRule::new(action).method("POST").path("*token")
}

async fn connect(
    factory: &StorageFactory,
    json: &serde_json::Value,
) -> (Arc<dyn StorageBackend>, Arc<MemoryCredentialStore>) {
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("c1", json.to_string());
    (factory.connect("c1", store.clone()).await.unwrap(), store)
}

/// A factory whose timeouts outlast a token endpoint delayed by seconds.
fn patient_factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu)
        .retry(policy())
        .timeouts(Duration::from_secs(5), Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A health check on a task of its own, to watch while it runs.
fn spawn_health_check(backend: &Arc<dyn StorageBackend>) -> tokio::task::JoinHandle<storage_core::Result<()>> {
    let backend = backend.clone();
    tokio::spawn(async move { backend.health_check().await })
}

/// Polls until `ready` holds; fails with `what` after `limit`.
async fn wait_until(what: &str, limit: Duration, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// 50 concurrent calls whose token the provider refuses, against a token
/// endpoint that answers 503 or never answers: one retry sequence of token
/// requests serves them all, and all fail within about one sequence's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_refresh_sequence_serves_every_waiting_caller() {
    for (fault, action) in [
        ("503", FaultAction::status(503)),
        ("hang", FaultAction::Delay { millis: 60_000 }),
    ] {
        for provider in PROVIDERS {
            let emu = Emulator::start().await.unwrap();
            let factory = factory(&emu);
            let (backend, _store) = connect(&factory, &grant(&emu, provider)).await;
            emu.expire_access_tokens();
            emu.faults().add(token_endpoint(action.clone()));
            emu.clear_journal();
            let started = Instant::now();
            let calls = (0..50).map(|_| backend.health_check());
            let results = tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(calls))
                .await
                .unwrap_or_else(|_| panic!("{provider} {fault}: the calls hung"));
            let took = started.elapsed();
            for r in results {
                let e = r.expect_err("the token endpoint fails");
                assert!(e.is_retryable(), "{provider} {fault}: {e:?}");
            }
            let requests = token_requests(&emu);
            assert!(
                requests <= ATTEMPTS as usize,
                "{provider} {fault}: {requests} token requests for 50 callers, more than one sequence of {ATTEMPTS}"
            );
            // One sequence: 3 attempts of at most 300 ms, 40 ms of backoff.
            assert!(took < Duration::from_secs(3), "{provider} {fault}: took {took:?}");
            emu.shutdown().await;
        }
    }
}

/// After a failed sequence, calls that would refresh get its error at once for
/// the back-off, without a token request; after it, a refresh is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_shared_for_the_backoff_then_tried_again() {
    // Long enough that the second call, which first has its token refused,
    // reaches the refresh inside it on a busy machine.
    const BACKOFF: Duration = Duration::from_millis(1_500);
    for provider in PROVIDERS {
        let emu = Emulator::start().await.unwrap();
        let factory = factory_builder(&emu)
            .retry(policy())
            .refresh_backoff(BACKOFF)
            .build()
            .unwrap();
        let (backend, _store) = connect(&factory, &grant(&emu, provider)).await;
        emu.expire_access_tokens();
        // Exactly one sequence's worth of failures.
        emu.faults()
            .add(token_endpoint(FaultAction::status(503)).times(ATTEMPTS));
        emu.clear_journal();
        let first = backend.health_check().await.unwrap_err();
        assert!(first.is_retryable(), "{provider}: {first:?}");
        assert_eq!(token_requests(&emu), ATTEMPTS as usize, "{provider}");
        let shared = backend.health_check().await.unwrap_err();
        assert_eq!(shared.to_string(), first.to_string(), "{provider}: the same failure");
        assert_eq!(
            token_requests(&emu),
            ATTEMPTS as usize,
            "{provider}: no token request inside the back-off"
        );
        tokio::time::sleep(BACKOFF + Duration::from_millis(100)).await;
        backend
            .health_check()
            .await
            .unwrap_or_else(|e| panic!("{provider}: after the back-off the refresh is tried again: {e}"));
        assert_eq!(token_requests(&emu), ATTEMPTS as usize + 1, "{provider}");
        emu.shutdown().await;
    }
}

/// Credential JSON whose access token expires `secs` from now.
fn expiring_in(mut json: serde_json::Value, secs: i64) -> serde_json::Value {
    let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
    let at = serde_json::json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    if json["provider"] == "gdrive" {
        json["expiry"] = at;
    } else {
        json["expires_at"] = at;
    }
    json
}

/// Inside the 60 s skew window, a refresh that fails with anything but
/// `InvalidGrant` leaves the call to the still-valid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_proactive_refresh_uses_the_still_valid_token() {
    for provider in PROVIDERS {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let (backend, store) = connect(&factory, &expiring_in(grant(&emu, provider), 30)).await;
        emu.faults().add(token_endpoint(FaultAction::status(503)));
        emu.clear_journal();
        backend
            .health_check()
            .await
            .unwrap_or_else(|e| panic!("{provider}: the token is still valid, yet {e}"));
        assert!(token_requests(&emu) >= 1, "{provider}: a refresh was tried");
        assert_eq!(store.get("c1").unwrap().status, ConnectionStatus::Active);
        emu.shutdown().await;
    }
}

/// Inside the skew window no call waits for the token endpoint: the call that
/// starts the refresh goes on the still-valid token beside it (and returns
/// once the new credentials are saved), and calls made meanwhile neither wait
/// nor ask for another token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_inside_the_skew_window_do_not_wait_for_the_refresh() {
    for provider in PROVIDERS {
        let emu = Emulator::start().await.unwrap();
        let factory = patient_factory(&emu);
        let json = expiring_in(grant(&emu, provider), 30);
        let old = json["access_token"].as_str().unwrap().to_owned();
        let (backend, store) = connect(&factory, &json).await;
        emu.faults().add(token_endpoint(FaultAction::Delay { millis: 3_000 }));
        emu.clear_journal();
        let starter = spawn_health_check(&backend);
        let started = format!("{provider}: no refresh started");
        wait_until(&started, Duration::from_secs(2), || token_requests(&emu) > 0).await;
        let others = futures::future::join_all((0..20).map(|_| backend.health_check())).await;
        for r in others {
            r.unwrap_or_else(|e| panic!("{provider}: {e}"));
        }
        assert!(
            !starter.is_finished(),
            "{provider}: the calls made during the refresh waited for it"
        );
        assert_eq!(access_token(&store.get("c1").unwrap()), old, "{provider}");
        assert_eq!(token_requests(&emu), 1, "{provider}: one refresh");
        starter.await.unwrap().unwrap_or_else(|e| panic!("{provider}: {e}"));
        let new = access_token(&store.get("c1").unwrap());
        assert_ne!(new, old, "{provider}: the starter returned with the new token saved");
        backend.health_check().await.unwrap();
        assert_eq!(
            emu.journal().with_bearer(&new).len(),
            1,
            "{provider}: the next call uses the new token"
        );
        assert_eq!(token_requests(&emu), 1, "{provider}");
        emu.shutdown().await;
    }
}

/// The refresh that runs beside a call in the skew window outlives that call:
/// dropped while the token request is in flight, it still saves Microsoft's
/// rotated refresh token, which the emulator requires from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_beside_a_dropped_call_still_saves_the_rotated_token() {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let factory = patient_factory(&emu);
    let original = expiring_in(grant(&emu, "onedrive"), 30);
    let (backend, store) = connect(&factory, &original).await;
    emu.faults()
        .add(token_endpoint(FaultAction::Delay { millis: 500 }).times(1));
    let dropped = tokio::time::timeout(Duration::from_millis(200), backend.health_check()).await;
    assert!(dropped.is_err(), "the call was meant to be dropped during the refresh");
    // The refresh was started before the call was dropped; on a busy machine
    // its request may still be on its way to the emulator.
    wait_until("the refresh had not started", Duration::from_secs(2), || {
        token_requests(&emu) > 0
    })
    .await;
    assert_eq!(token_requests(&emu), 1, "one refresh");
    wait_until("the refresh was not saved", Duration::from_secs(5), || {
        access_token(&store.get("c1").unwrap()) != original["access_token"].as_str().unwrap()
    })
    .await;
    let saved: serde_json::Value = serde_json::from_str(store.get("c1").unwrap().json.expose()).unwrap();
    assert_ne!(
        saved["refresh_token"], original["refresh_token"],
        "the rotated token was saved"
    );
    // A new connection from the store refreshes with the rotated token.
    let again = factory.connect("c1", store.clone()).await.unwrap();
    emu.expire_access_tokens();
    again
        .health_check()
        .await
        .expect("the saved refresh token is the current one");
    assert_eq!(store.get("c1").unwrap().status, ConnectionStatus::Active);
    emu.shutdown().await;
}

/// A store whose saves take `save`, and, once `hold` is set, wait until the
/// test lets one through its gate.
#[derive(Debug)]
struct SlowStore {
    inner: MemoryCredentialStore,
    save: Duration,
    hold: AtomicBool,
    gate: tokio::sync::Semaphore,
}

impl SlowStore {
    fn new(save: Duration) -> Self {
        Self {
            inner: MemoryCredentialStore::new(),
            save,
            hold: AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
        }
    }

    fn inner_arc(&self) -> Arc<MemoryCredentialStore> {
        let copy = MemoryCredentialStore::new();
        let row = self.inner.get("c1").unwrap();
        copy.insert("c1", row.json);
        Arc::new(copy)
    }
}

#[async_trait]
impl CredentialStore for SlowStore {
    async fn load(&self, id: &str) -> storage_core::Result<StoredCredentials> {
        self.inner.load(id).await
    }
    async fn save_credentials(&self, id: &str, json: &Secret) -> storage_core::Result<()> {
        tokio::time::sleep(self.save).await;
        if self.hold.load(Ordering::SeqCst) {
            self.gate.acquire().await.expect("the gate stays open").forget();
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

/// Microsoft rotates the refresh token on every refresh, and the emulator is
/// told to refuse a rotated-out one: a caller dropped while the rotated token
/// is being saved (1 s) must not make the connection forget it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_caller_never_loses_the_rotated_refresh_token() {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let factory = factory(&emu);
    let store = Arc::new(SlowStore::new(Duration::from_secs(1)));
    let original = grant(&emu, "onedrive");
    store.inner.insert("c1", original.to_string());
    let backend = factory.connect("c1", store.clone()).await.unwrap();
    emu.expire_access_tokens();
    // Dropped once the token request has gone out: by then the refresh is
    // under way, and the save that follows takes 1 s, so the call cannot have
    // returned (a fixed timeout could fire before the refused call even came
    // back, on a busy machine).
    let call = spawn_health_check(&backend);
    wait_until("the call never refreshed", Duration::from_secs(5), || {
        token_requests(&emu) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!call.is_finished(), "the call was meant to be dropped during the save");
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(token_requests(&emu), 1, "one refresh before the drop");
    // The next call needs another refresh, which only the rotated token can do.
    emu.expire_access_tokens();
    backend
        .health_check()
        .await
        .unwrap_or_else(|e| panic!("the next call lost the rotated refresh token: {e}"));
    assert_eq!(token_requests(&emu), 2);
    assert_eq!(
        store.inner.get("c1").unwrap().status,
        ConnectionStatus::Active,
        "no re-authorisation was needed"
    );
    // Both saves complete, the last one with the current refresh token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let saved: serde_json::Value = serde_json::from_str(store.inner.get("c1").unwrap().json.expose()).unwrap();
    assert_ne!(saved["refresh_token"], original["refresh_token"]);
    let again = factory.connect("c1", store.inner_arc()).await.unwrap();
    emu.expire_access_tokens();
    again
        .health_check()
        .await
        .expect("the saved refresh token is the current one");
    emu.shutdown().await;
}

/// A slow store costs the larger of its write and the retry, not their sum:
/// the call whose token was refused retries with the new token while the
/// store still writes it, and returns only once the store has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_goes_out_while_the_new_credentials_are_saved_and_the_call_returns_after() {
    for provider in PROVIDERS {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let store = Arc::new(SlowStore::new(Duration::ZERO));
        let original = grant(&emu, provider);
        let old = original["access_token"].as_str().unwrap().to_owned();
        store.inner.insert("c1", original.to_string());
        let backend = factory.connect("c1", store.clone()).await.unwrap();
        store.hold.store(true, Ordering::SeqCst);
        emu.expire_access_tokens();
        emu.clear_journal();
        let call = spawn_health_check(&backend);
        let fresh = || {
            emu.journal()
                .filter(|e| e.bearer_token().is_some_and(|t| t != old))
                .first()
                .and_then(|e| e.bearer_token().map(str::to_owned))
        };
        let held = format!("{provider}: no retry with a new token while the store held the save");
        wait_until(&held, Duration::from_secs(10), || fresh().is_some()).await;
        let retried = fresh().unwrap();
        assert_eq!(token_requests(&emu), 1, "{provider}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!call.is_finished(), "{provider}: the call returned before the save");
        assert_eq!(access_token(&store.inner.get("c1").unwrap()), old, "{provider}");
        store.gate.add_permits(1);
        call.await.unwrap().unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert_eq!(
            access_token(&store.inner.get("c1").unwrap()),
            retried,
            "{provider}: the call returned with the store holding the token it retried with"
        );
        emu.shutdown().await;
    }
}

/// A PostgreSQL store into which another process writes between this
/// connection's read and its first save, as a second replica would.
#[derive(Debug)]
struct Interleaved {
    inner: Arc<PostgresCredentialStore>,
    other: PostgresCredentialStore,
    armed: AtomicBool,
}

#[async_trait]
impl CredentialStore for Interleaved {
    async fn load(&self, id: &str) -> storage_core::Result<StoredCredentials> {
        self.inner.load(id).await
    }
    async fn save_credentials(&self, id: &str, json: &Secret) -> storage_core::Result<()> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.other.load(id).await?;
            self.other.set_status(id, ConnectionStatus::Active).await?;
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

fn access_token(stored: &StoredCredentials) -> String {
    let v: serde_json::Value = serde_json::from_str(stored.json.expose()).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// The refreshed credentials meet a compare-and-swap conflict (another writer
/// changed the row's version); the next call reads the row again and saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_conflict_is_followed_by_a_successful_save_on_the_next_call() {
    let Some(url) = database_url() else {
        return;
    };
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let id = unique_id("conflict");
    let original = grant(&emu, "onedrive");
    let pg = Arc::new(PostgresCredentialStore::connect(&url).await.unwrap());
    pg.create(&id, &Secret::new(original.to_string())).await.unwrap();
    let store = Arc::new(Interleaved {
        inner: pg.clone(),
        other: PostgresCredentialStore::connect(&url).await.unwrap(),
        armed: AtomicBool::new(true),
    });
    let backend = factory.connect(&id, store.clone()).await.unwrap();
    emu.expire_access_tokens();
    backend
        .health_check()
        .await
        .expect("a failed save does not fail the call");
    let observer = PostgresCredentialStore::connect(&url).await.unwrap();
    assert_eq!(
        access_token(&observer.load(&id).await.unwrap()),
        original["access_token"].as_str().unwrap(),
        "the first save met the conflict"
    );
    backend.health_check().await.unwrap();
    let row = observer.load(&id).await.unwrap();
    assert_ne!(
        access_token(&row),
        original["access_token"].as_str().unwrap(),
        "the next call saved the refreshed credentials"
    );
    assert_eq!(row.status, ConnectionStatus::Active);
    assert_eq!(token_requests(&emu), 1);
    // The saved refresh token is the current one: a new connection refreshes with it.
    let again = factory.connect(&id, pg.clone()).await.unwrap();
    emu.expire_access_tokens();
    again.health_check().await.unwrap();
    pg.delete(&id).await.unwrap();
    emu.shutdown().await;
}

/// Microsoft's "the user must sign in again" answers (`interaction_required`,
/// `consent_required`, and the `invalid_grant` codes of the same kind) are a
/// revoked grant to the caller: `InvalidGrant`, the connection marked, and no
/// further token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_in_again_answer_marks_the_connection_for_re_authorisation() {
    for why in SignInRequired::ALL {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let json = grant(&emu, "onedrive");
        let (backend, store) = connect(&factory, &json).await;
        assert!(emu.require_sign_in(json["refresh_token"].as_str().unwrap(), why));
        emu.expire_access_tokens();
        let err = backend.health_check().await.unwrap_err();
        assert_eq!(
            err.connection_reason(),
            Some(ConnectionReason::InvalidGrant),
            "{} AADSTS{}: {err:?}",
            why.error(),
            why.code()
        );
        assert_eq!(
            store.get("c1").unwrap().status,
            ConnectionStatus::RequiresReauth,
            "AADSTS{}",
            why.code()
        );
        assert_eq!(token_requests(&emu), 1, "AADSTS{}: one token request", why.code());
        emu.clear_journal();
        for _ in 0..3 {
            let again = backend.health_check().await.unwrap_err();
            assert_eq!(again.connection_reason(), Some(ConnectionReason::InvalidGrant));
        }
        assert!(
            emu.journal().is_empty(),
            "AADSTS{}: a marked connection reached the network",
            why.code()
        );
        emu.shutdown().await;
    }
}
