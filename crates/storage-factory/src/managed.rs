//! Managed connections: refresh, persist, retry once, and mark re-auth.
//!
//! One refresh runs at a time per connection, on a task of its own, so that a
//! caller that goes away (a request timeout, a client that hung up) cannot cut
//! it short: the new credentials are in memory before anything else is awaited,
//! and the save to the store completes whatever happens to the callers. The
//! callers retry with the new token while the store writes it, and each
//! returns once the write is done: a slow store costs the larger of its write
//! and the retry, not the sum.
//!
//! A token inside the skew window still works, so its refresh runs beside the
//! calls: none waits for the token endpoint, except that the call that started
//! the refresh returns only after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use storage_core::{
    ByteRange, ByteStream, Capabilities, ConnectionReason, ObjectKey, ObjectMeta, ObjectName, Page, PageRequest,
    PurgeReport, Quota, Result, RetryPolicy, StorageBackend, StorageError, TokenCell, Url, validate_part,
};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::credentials::Credentials;
use crate::refresh::{Http, Refresher};
use crate::store::{ConnectionStatus, CredentialStore};

/// How long a failed refresh is shared by default: see
/// [`StorageFactoryBuilder::refresh_backoff`](crate::StorageFactoryBuilder::refresh_backoff).
pub(crate) const REFRESH_BACKOFF: Duration = Duration::from_secs(10);

/// The smallest `put_stream` whose size is checked against the free space by
/// default: see [`StorageFactoryBuilder::quota_check`](crate::StorageFactoryBuilder::quota_check).
pub(crate) const QUOTA_CHECK_FROM: u64 = 8 * 1024 * 1024;

/// How a refresh sequence ended; an error is shared by every caller waiting on it.
type Outcome = std::result::Result<(), Arc<StorageError>>;

/// The refresh in flight and the last one's outcome.
#[derive(Default)]
struct Flight {
    /// The running sequence: its outcome arrives on this channel.
    running: Option<watch::Receiver<Option<Outcome>>>,
    /// How the last sequence ended, and when.
    last: Option<(Instant, Outcome)>,
}

/// What a refresh task shares with the callers of one connection.
struct Conn {
    id: String,
    provider: &'static str,
    store: Arc<dyn CredentialStore>,
    tokens: TokenCell,
    refresher: Refresher,
    http: Http,
    retry: RetryPolicy,
    skew: Duration,
    backoff: Duration,
    /// The current credentials. Replaced, together with the token cell, the
    /// moment new ones arrive; never held across an await.
    creds: Mutex<Credentials>,
    /// The credentials the store held when this connection last read or wrote
    /// it: a row that differs was written by someone else since.
    stored: Mutex<Credentials>,
    /// Bumped whenever a new access token is installed: a caller that saw an
    /// older value knows its refused token has been replaced already.
    generation: AtomicU64,
    flight: Mutex<Flight>,
    /// Serialises writes of credentials to the store, so that an older save
    /// never lands after a newer one.
    writes: tokio::sync::Mutex<()>,
    reauth: AtomicBool,
    /// Credentials the store did not take yet; the next call saves them.
    unsaved: AtomicBool,
    /// Set by [`StorageFactory::disconnect`](crate::StorageFactory::disconnect):
    /// every later call fails at once, without network traffic.
    disconnected: Arc<AtomicBool>,
}

/// A backend whose token is kept fresh; the Rust form of `_call_cloud_op`.
pub(crate) struct ManagedBackend {
    conn: Arc<Conn>,
    inner: Arc<dyn StorageBackend>,
    /// Puts of at least this many bytes check the free space first.
    quota_check: u64,
}

impl std::fmt::Debug for ManagedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedBackend")
            .field("connection", &self.conn.id)
            .field("provider", &self.conn.provider)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Everything [`ManagedBackend::new`] needs.
pub(crate) struct Parts {
    pub id: String,
    pub store: Arc<dyn CredentialStore>,
    pub inner: Arc<dyn StorageBackend>,
    pub tokens: TokenCell,
    pub refresher: Refresher,
    pub http: Http,
    pub retry: RetryPolicy,
    pub skew: Duration,
    pub backoff: Duration,
    pub quota_check: u64,
    pub creds: Credentials,
    pub disconnected: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one assignment: a poisoned value is still sound.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn reauth_error() -> StorageError {
    StorageError::CloudConnection {
        reason: ConnectionReason::InvalidGrant,
    }
}

/// The source of an error handed to several callers, as text.
#[derive(Debug)]
struct Shared(String);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Shared {}

/// A copy of a refresh failure for one more caller: same category and text,
/// its source kept as text.
fn share(e: &StorageError) -> StorageError {
    use StorageError as E;
    let source = |s: Option<&(dyn std::error::Error + 'static)>| s.map(|s| Shared(s.to_string()));
    match e {
        E::InvalidInput { message } => E::invalid_input(message.clone()),
        E::NotFound { key } => E::not_found(key.clone()),
        E::CloudConnection { reason } => E::CloudConnection { reason: *reason },
        E::RateLimited { retry_after } => E::RateLimited {
            retry_after: *retry_after,
        },
        E::QuotaExceeded => E::QuotaExceeded,
        E::AppQuotaExceeded { message } => E::AppQuotaExceeded {
            message: message.clone(),
        },
        E::PermissionDenied { message } => E::PermissionDenied {
            message: message.clone(),
        },
        E::Unsupported { operation, reason } => E::unsupported(operation, reason.clone()),
        E::Integrity { message } => E::integrity(message.clone()),
        E::FeatureDisabled { provider, feature } => E::FeatureDisabled {
            provider: provider.clone(),
            feature: feature.clone(),
        },
        E::Provider { status, code, message } => E::Provider {
            status: *status,
            code: code.clone(),
            message: message.clone(),
        },
        E::Transport { message, source: s } => E::Transport {
            message: message.clone(),
            source: source(s.as_deref().map(|s| s as _)).map(|s| Box::new(s) as _),
        },
        E::Io { message, source: s } => E::io(message.clone(), std::io::Error::new(s.kind(), s.to_string())),
        other => E::Transport {
            message: other.to_string(),
            source: None,
        },
    }
}

impl Conn {
    fn current(&self) -> Credentials {
        lock(&self.creds).clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Within the skew window before expiry (or past it).
    fn expiring(&self) -> bool {
        let skew = chrono::Duration::from_std(self.skew).unwrap_or_default();
        lock(&self.creds)
            .expires_at()
            .is_some_and(|at| at - skew <= chrono::Utc::now())
    }

    /// Not expired yet, as far as the credentials say.
    fn still_valid(&self) -> bool {
        lock(&self.creds).expires_at().is_none_or(|at| at > chrono::Utc::now())
    }

    /// Whether the store's row `theirs` was written by someone else since this
    /// connection last read or wrote it, for the same provider.
    fn written_by_another(&self, theirs: &Credentials) -> bool {
        let stored = lock(&self.stored).clone();
        theirs.provider() == self.provider && !same(theirs, &stored) && !same(theirs, &self.current())
    }

    /// Installs new credentials and their access token, without awaiting anything.
    fn adopt(&self, next: Credentials) {
        if let Some(t) = next.access_token() {
            self.tokens.set(t.clone());
        }
        *lock(&self.creds) = next;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Records that the user must authorise again; later calls fail at once.
    /// The store's write runs to its end even when the caller is dropped: no
    /// later call would make it, since they all fail at once.
    async fn mark_reauth(&self) {
        if !self.reauth.swap(true, Ordering::SeqCst) {
            tracing::warn!(connection = %self.id, provider = self.provider, "grant revoked or expired; connection requires re-authorisation");
            let (store, id) = (Arc::clone(&self.store), self.id.clone());
            let marked = storage_core::detach::run_to_end(async move {
                store.set_status(&id, ConnectionStatus::RequiresReauth).await
            });
            if let Err(e) = marked.await {
                tracing::error!(connection = %self.id, error = %e, "failed to record that the connection requires re-authorisation");
            }
        }
    }

    /// Waits for the credentials' write in progress, if any: a call that
    /// used a refreshed token returns only once the store has them (or has
    /// refused them, and the next call saves them again).
    async fn settle(&self) {
        drop(self.writes.lock().await);
    }

    /// Writes `creds` to the store, with [`writes`](Self::writes) held; on
    /// failure the next call writes again.
    async fn write(&self, creds: &Credentials) {
        match self.store.save_credentials(&self.id, &creds.to_json()).await {
            Ok(()) => {
                *lock(&self.stored) = creds.clone();
                self.unsaved.store(false, Ordering::SeqCst);
            }
            Err(e) => {
                self.unsaved.store(true, Ordering::SeqCst);
                tracing::error!(connection = %self.id, error = %e, "failed to save refreshed credentials; the next call saves them again");
            }
        }
    }

    /// Saves credentials an earlier save failed to write. The row is read
    /// first: it may hold newer credentials (another process refreshed), or a
    /// newer version that a compare-and-swap store must see before it accepts
    /// a write.
    async fn save_pending(&self) {
        if !self.unsaved.load(Ordering::SeqCst) {
            return;
        }
        let _write = self.writes.lock().await;
        if !self.unsaved.load(Ordering::SeqCst) {
            return;
        }
        let ours = self.current();
        match self.store.load(&self.id).await {
            Ok(stored) if stored.status == ConnectionStatus::RequiresReauth => {
                self.reauth.store(true, Ordering::SeqCst);
                self.unsaved.store(false, Ordering::SeqCst);
                return;
            }
            Ok(stored) => match Credentials::parse(stored.json.expose()) {
                Ok(theirs) if same(&theirs, &ours) => {
                    *lock(&self.stored) = theirs;
                    self.unsaved.store(false, Ordering::SeqCst);
                    return;
                }
                Ok(theirs) if self.written_by_another(&theirs) => {
                    tracing::info!(connection = %self.id, provider = self.provider, "another writer saved newer credentials; using them");
                    self.adopt(theirs.clone());
                    *lock(&self.stored) = theirs;
                    self.unsaved.store(false, Ordering::SeqCst);
                    return;
                }
                _ => {}
            },
            Err(e) => {
                tracing::warn!(connection = %self.id, error = %e, "failed to read the connection before saving it again");
            }
        }
        self.write(&ours).await;
    }

    /// Gets a token newer than the one installed at `seen`: at once when one
    /// is, by joining the refresh in flight, or by starting one. Every caller
    /// waiting on a sequence gets its outcome, success or failure; a failure
    /// is returned without a new token request for the back-off that follows it.
    async fn refresh(self: &Arc<Self>, seen: u64) -> Result<()> {
        // Joining a sequence that began before the refused call can end with
        // nothing newer than `seen`; then one more round. Bounded all the same.
        for _ in 0..4 {
            if self.generation() != seen {
                return Ok(());
            }
            let (rx, own) = self.join_or_start()?;
            match outcome(rx).await {
                Err(e) => return Err(share(&e)),
                Ok(()) if own => return Ok(()),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// Starts a refresh for a token that still works, unless one is running,
    /// the last one failed less than its back-off ago, or the grant is gone:
    /// the caller goes on with the current token, and only the one that
    /// started the refresh gets its outcome to wait for.
    fn refresh_beside(self: &Arc<Self>, seen: u64) -> Option<watch::Receiver<Option<Outcome>>> {
        if self.generation() != seen {
            return None;
        }
        match self.join_or_start() {
            Ok((rx, true)) => Some(rx),
            _ => None,
        }
    }

    /// The running sequence's outcome to wait for (`false`: joined), or a new
    /// sequence's (`true`: started); the last failure while its back-off (or
    /// the provider's `Retry-After`) lasts, or the re-auth error, instead of
    /// starting one.
    fn join_or_start(self: &Arc<Self>) -> Result<(watch::Receiver<Option<Outcome>>, bool)> {
        let mut flight = lock(&self.flight);
        if let Some(rx) = flight.running.clone().filter(|rx| rx.has_changed().is_ok()) {
            return Ok((rx, false));
        }
        if let Some((at, Err(e))) = &flight.last
            && at.elapsed() < self.backoff.max(e.retry_after().unwrap_or_default())
        {
            return Err(share(e));
        }
        if self.reauth.load(Ordering::SeqCst) {
            return Err(reauth_error());
        }
        Ok((self.launch(&mut flight), true))
    }

    /// Starts a sequence on a task of its own, with `flight` locked by the
    /// caller; its outcome arrives on the receiver returned.
    fn launch(self: &Arc<Self>, flight: &mut Flight) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        flight.running = Some(rx.clone());
        let conn = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = conn.sequence(&tx).await.map_err(Arc::new);
            if tx.borrow().is_none() {
                conn.finish(&tx, outcome);
            }
        });
        rx
    }

    /// Publishes how a sequence ended to everyone waiting on it.
    fn finish(&self, tx: &watch::Sender<Option<Outcome>>, outcome: Outcome) {
        {
            let mut flight = lock(&self.flight);
            flight.running = None;
            flight.last = Some((Instant::now(), outcome.clone()));
        }
        tx.send_replace(Some(outcome));
    }

    /// One refresh: under the store's refresh lock, use what another process
    /// refreshed, or ask the token endpoint; then install, release the callers
    /// waiting on `tx`, and save.
    async fn sequence(&self, tx: &watch::Sender<Option<Outcome>>) -> Result<()> {
        let _lock = self.store.lock_refresh(&self.id).await?;
        // Another process sharing the store may have refreshed already, or
        // rotated the refresh token: what it wrote is the place to start from.
        if let Ok(stored) = self.store.load(&self.id).await {
            if stored.status == ConnectionStatus::RequiresReauth {
                self.reauth.store(true, Ordering::SeqCst);
                return Err(reauth_error());
            }
            if let Ok(theirs) = Credentials::parse(stored.json.expose())
                && self.written_by_another(&theirs)
            {
                self.adopt(theirs.clone());
                *lock(&self.stored) = theirs;
                self.unsaved.store(false, Ordering::SeqCst);
                if !self.expiring() {
                    tracing::info!(connection = %self.id, provider = self.provider, "using a token another process refreshed");
                    return Ok(());
                }
            }
        }
        let current = self.current();
        let started = Instant::now();
        match self.refresher.refresh(&self.http, self.retry, &current).await {
            Ok(next) => {
                // Installed before anything else is awaited: Microsoft's rotated
                // refresh token is never forgotten once it arrived.
                self.adopt(next.clone());
                tracing::info!(connection = %self.id, provider = self.provider, duration_ms = started.elapsed().as_millis() as u64, "refreshed the access token");
                // The callers retry while the store writes: the write lock is
                // taken before they are released, and each waits for it before
                // returning (`settle`), so no call returns before the save.
                let _write = self.writes.lock().await;
                self.finish(tx, Ok(()));
                self.write(&next).await;
                Ok(())
            }
            Err(e) => {
                if e.connection_reason() == Some(ConnectionReason::InvalidGrant) {
                    self.mark_reauth().await;
                } else {
                    tracing::warn!(connection = %self.id, provider = self.provider, error = %e, "token refresh failed");
                }
                Err(e)
            }
        }
    }
}

/// How the sequence behind `rx` ended.
async fn outcome(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(o) => o.clone().unwrap_or(Ok(())),
        Err(_) => Err(Arc::new(StorageError::Transport {
            message: "the refresh ended without an outcome".into(),
            source: None,
        })),
    }
}

/// Equal as the store holds them: expiry times are written to the second.
fn same(a: &Credentials, b: &Credentials) -> bool {
    a.to_json() == b.to_json()
}

impl ManagedBackend {
    /// Refuses a put of `size` bytes that the drive reports no room for. The
    /// check is skipped below the configured size, for backends that report no
    /// quota, and when the quota cannot be read (the put then fails or not on
    /// its own).
    async fn check_space(&self, size: u64) -> Result<()> {
        if size < self.quota_check {
            return Ok(());
        }
        match self.quota().await {
            Ok(Quota {
                remaining: Some(free), ..
            }) if size > free => Err(StorageError::InsufficientStorage { needed: size, free }),
            Err(e @ StorageError::CloudConnection { .. }) => Err(e),
            _ => Ok(()),
        }
    }

    /// A streamed put (`create`: only when the name is free), checked against
    /// the free space first, its body lent to each attempt.
    async fn put_lent(
        &self,
        op: &'static str,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
        create: bool,
    ) -> Result<ObjectKey> {
        self.check_space(size).await?;
        let slot = lend(body);
        self.run(op, Some(size), || {
            let slot = slot.clone();
            async move {
                let body = borrow(&slot)?;
                if create {
                    self.inner.put_stream_if_absent(name, body, size, content_type).await
                } else {
                    self.inner.put_stream(name, body, size, content_type).await
                }
            }
        })
        .await
    }

    pub fn new(p: Parts) -> Self {
        Self {
            inner: p.inner,
            quota_check: p.quota_check,
            conn: Arc::new(Conn {
                id: p.id,
                provider: p.creds.provider(),
                store: p.store,
                tokens: p.tokens,
                refresher: p.refresher,
                http: p.http,
                retry: p.retry,
                skew: p.skew,
                backoff: p.backoff,
                stored: Mutex::new(p.creds.clone()),
                creds: Mutex::new(p.creds),
                generation: AtomicU64::new(0),
                flight: Mutex::new(Flight::default()),
                writes: tokio::sync::Mutex::new(()),
                reauth: AtomicBool::new(false),
                unsaved: AtomicBool::new(false),
                disconnected: p.disconnected,
            }),
        }
    }

    /// Runs `op` with a fresh token: refresh first when the token has expired,
    /// beside `op` when it is about to, and once more (then retry once) when
    /// the provider refuses it.
    async fn run<T, F, Fut>(&self, op: &'static str, bytes: Option<u64>, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let conn = &self.conn;
        let span = tracing::info_span!(
            "storage",
            provider = conn.provider,
            op,
            connection = %conn.id,
            attempt = tracing::field::Empty,
            bytes = bytes,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = async {
            if conn.reauth.load(Ordering::SeqCst) || conn.disconnected.load(Ordering::SeqCst) {
                return Err(reauth_error());
            }
            conn.save_pending().await;
            if conn.reauth.load(Ordering::SeqCst) {
                return Err(reauth_error());
            }
            let before = conn.generation();
            let mut beside = None;
            if conn.expiring() {
                if conn.still_valid() {
                    // Inside the skew window the current token still works: the
                    // call uses it while the refresh runs, and a failed refresh
                    // is tried again after the back-off.
                    beside = conn.refresh_beside(before);
                } else {
                    conn.refresh(before).await?;
                }
            }
            let seen = conn.generation();
            tracing::Span::current().record("attempt", 1);
            let first = match beside {
                // The call that started the refresh returns after it, so that a
                // process that ends with its last call never cuts a refresh
                // short (Microsoft's rotated refresh token would be lost).
                Some(rx) => futures::join!(f(), outcome(rx)).0,
                None => f().await,
            };
            let result = match first {
                Err(e) if e.connection_reason() == Some(ConnectionReason::TokenExpired) => {
                    conn.refresh(seen).await?;
                    tracing::Span::current().record("attempt", 2);
                    f().await
                }
                other => other,
            };
            if conn.generation() != before {
                conn.settle().await;
            }
            if let Err(e) = &result
                && e.connection_reason() == Some(ConnectionReason::InvalidGrant)
            {
                conn.mark_reauth().await;
            }
            result
        }
        .instrument(span.clone())
        .await;
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        let _enter = span.enter();
        match &result {
            Ok(_) => tracing::info!("operation succeeded"),
            Err(e) => tracing::info!(error = %e, "operation failed"),
        }
        result
    }
}

/// A put's body, lent to one attempt at a time.
fn lend(body: ByteStream) -> Arc<std::sync::Mutex<Lent>> {
    Arc::new(std::sync::Mutex::new(Lent {
        stream: body,
        pulled: false,
    }))
}

/// The body for the next attempt, or the refusal that ends the retries when an
/// earlier attempt consumed some of it.
fn borrow(slot: &Arc<std::sync::Mutex<Lent>>) -> Result<ByteStream> {
    if lent(slot).pulled {
        return Err(StorageError::CloudConnection {
            reason: ConnectionReason::TokenExpired,
        });
    }
    Ok(Box::pin(Lend(slot.clone())))
}

/// A stream lent to one attempt at a time; it remembers whether any of it was read.
struct Lent {
    stream: ByteStream,
    pulled: bool,
}

struct Lend(Arc<std::sync::Mutex<Lent>>);

fn lent(slot: &std::sync::Mutex<Lent>) -> std::sync::MutexGuard<'_, Lent> {
    lock(slot)
}

impl futures::Stream for Lend {
    type Item = Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let mut lent = lent(&self.0);
        let polled = lent.stream.as_mut().poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(Some(_))) {
            lent.pulled = true;
        }
        polled
    }
}

#[async_trait]
impl StorageBackend for ManagedBackend {
    async fn put_object(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        self.run("put_object", Some(body.len() as u64), || {
            self.inner.put_object(name, body.clone(), content_type)
        })
        .await
    }

    /// A stream cannot be replayed, so the retry after a refresh happens only
    /// when the refused attempt consumed none of it (the usual case: the token
    /// is checked when the upload session starts). A large put is first checked
    /// against the free space ([`StorageFactoryBuilder::quota_check`](crate::StorageFactoryBuilder::quota_check)).
    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        self.put_lent("put_stream", name, body, size, content_type, false).await
    }

    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        self.put_lent("put_stream_if_absent", name, body, size, content_type, true)
            .await
    }

    async fn put_object_if_absent(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        self.run("put_object_if_absent", Some(body.len() as u64), || {
            self.inner.put_object_if_absent(name, body.clone(), content_type)
        })
        .await
    }

    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        self.run("get_range", None, || self.inner.get_range(key, range)).await
    }

    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        validate_part("user_id", user_id)?;
        self.run("list_user", None, || self.inner.list_user(user_id, page))
            .await
    }

    async fn quota(&self) -> Result<Quota> {
        self.run("quota", None, || self.inner.quota()).await
    }

    async fn account_name(&self) -> Result<Option<String>> {
        self.run("account_name", None, || self.inner.account_name()).await
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        self.run("get_object", None, || self.inner.get_object(key)).await
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        self.run("get_stream", None, || self.inner.get_stream(key)).await
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        self.run("delete_object", None, || self.inner.delete_object(key)).await
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        self.run("stat_object", None, || self.inner.stat_object(key)).await
    }

    async fn presigned_get_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url> {
        self.run("presigned_get_url", None, || {
            self.inner.presigned_get_url(key, expires_in)
        })
        .await
    }

    async fn generate_presigned_put_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url> {
        self.run("generate_presigned_put_url", None, || {
            self.inner.generate_presigned_put_url(key, expires_in)
        })
        .await
    }

    async fn health_check(&self) -> Result<()> {
        self.run("health_check", None, || self.inner.health_check()).await
    }

    /// Forwarded with the same refresh and retry as every other call; the user
    /// id is checked before any of it, so a bad id never causes a refresh.
    async fn purge_user(&self, user_id: &str) -> Result<PurgeReport> {
        validate_part("user_id", user_id)?;
        self.run("purge_user", None, || self.inner.purge_user(user_id)).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
