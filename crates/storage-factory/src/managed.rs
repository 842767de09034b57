//! Managed connections: refresh, persist, retry once, and mark re-auth.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use storage_core::{
    ByteStream, Capabilities, ConnectionReason, ObjectKey, ObjectMeta, ObjectName, PurgeReport, Result, RetryPolicy,
    StorageBackend, StorageError, TokenCell, Url, validate_part,
};
use tokio::sync::Mutex;
use tracing::Instrument as _;

use crate::credentials::Credentials;
use crate::refresh::{Http, Refresher};
use crate::store::{ConnectionStatus, CredentialStore};

/// The refreshable state of one connection.
struct State {
    creds: Credentials,
}

/// A backend whose token is kept fresh; the Rust form of `_call_cloud_op`.
pub(crate) struct Managed {
    pub id: String,
    pub provider: &'static str,
    pub store: Arc<dyn CredentialStore>,
    pub inner: Arc<dyn StorageBackend>,
    pub tokens: TokenCell,
    pub refresher: Refresher,
    pub http: Http,
    pub retry: RetryPolicy,
    pub skew: Duration,
    state: Mutex<State>,
    /// Bumped by every refresh; a caller that saw an older value knows its
    /// failure predates the current token.
    generation: AtomicU64,
    reauth: AtomicBool,
    /// A refreshed credential the store refused; saved again on the next call.
    unsaved: AtomicBool,
    /// Set by [`StorageFactory::disconnect`](crate::StorageFactory::disconnect):
    /// every later call fails at once, without network traffic.
    disconnected: Arc<AtomicBool>,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedBackend")
            .field("connection", &self.id)
            .field("provider", &self.provider)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Everything [`Managed::new`] needs.
pub(crate) struct Parts {
    pub id: String,
    pub store: Arc<dyn CredentialStore>,
    pub inner: Arc<dyn StorageBackend>,
    pub tokens: TokenCell,
    pub refresher: Refresher,
    pub http: Http,
    pub retry: RetryPolicy,
    pub skew: Duration,
    pub creds: Credentials,
    pub disconnected: Arc<AtomicBool>,
}

impl Managed {
    pub fn new(p: Parts) -> Self {
        Self {
            id: p.id,
            provider: p.creds.provider(),
            store: p.store,
            inner: p.inner,
            tokens: p.tokens,
            refresher: p.refresher,
            http: p.http,
            retry: p.retry,
            skew: p.skew,
            state: Mutex::new(State { creds: p.creds }),
            generation: AtomicU64::new(0),
            reauth: AtomicBool::new(false),
            unsaved: AtomicBool::new(false),
            disconnected: p.disconnected,
        }
    }

    fn reauth_error() -> StorageError {
        StorageError::CloudConnection {
            reason: ConnectionReason::InvalidGrant,
        }
    }

    /// Records that the user must authorise again; later calls fail at once.
    async fn mark_reauth(&self) {
        if !self.reauth.swap(true, Ordering::SeqCst) {
            tracing::warn!(connection = %self.id, provider = self.provider, "grant revoked or expired; connection requires re-authorisation");
            if let Err(e) = self.store.set_status(&self.id, ConnectionStatus::RequiresReauth).await {
                tracing::error!(connection = %self.id, error = %e, "failed to record that the connection requires re-authorisation");
            }
        }
    }

    async fn expiring(&self) -> bool {
        let st = self.state.lock().await;
        st.creds
            .expires_at()
            .is_some_and(|at| at - chrono::Duration::from_std(self.skew).unwrap_or_default() <= chrono::Utc::now())
    }

    async fn save(&self, creds: &Credentials) {
        match self.store.save_credentials(&self.id, &creds.to_json()).await {
            Ok(()) => self.unsaved.store(false, Ordering::SeqCst),
            Err(e) => {
                self.unsaved.store(true, Ordering::SeqCst);
                tracing::error!(connection = %self.id, error = %e, "failed to save refreshed credentials; the next call saves them again");
            }
        }
    }

    async fn save_pending(&self) {
        if self.unsaved.load(Ordering::SeqCst) {
            let st = self.state.lock().await;
            self.save(&st.creds).await;
        }
    }

    /// Refreshes unless another caller already did since `seen`: one token
    /// request for any number of concurrent callers.
    async fn refresh(&self, seen: u64) -> Result<()> {
        let mut st = self.state.lock().await;
        if self.generation.load(Ordering::SeqCst) != seen {
            return Ok(());
        }
        if self.reauth.load(Ordering::SeqCst) {
            return Err(Self::reauth_error());
        }
        let _lock = self.store.lock_refresh(&self.id).await?;
        // Another process sharing the store may have refreshed already.
        if let Ok(stored) = self.store.load(&self.id).await {
            if stored.status == ConnectionStatus::RequiresReauth {
                drop(st);
                self.reauth.store(true, Ordering::SeqCst);
                return Err(Self::reauth_error());
            }
            if let Ok(theirs) = Credentials::parse(stored.json.expose()) {
                let newer = theirs.access_token() != st.creds.access_token();
                let fresh = theirs.expires_at().is_some_and(|at| {
                    at - chrono::Duration::from_std(self.skew).unwrap_or_default() > chrono::Utc::now()
                });
                if newer && fresh && theirs.provider() == st.creds.provider() {
                    if let Some(t) = theirs.access_token() {
                        self.tokens.set(t.clone());
                    }
                    st.creds = theirs;
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(connection = %self.id, provider = self.provider, "using a token another process refreshed");
                    return Ok(());
                }
            }
        }
        let started = Instant::now();
        match self.refresher.refresh(&self.http, self.retry, &st.creds).await {
            Ok(next) => {
                if let Some(t) = next.access_token() {
                    self.tokens.set(t.clone());
                }
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!(connection = %self.id, provider = self.provider, duration_ms = started.elapsed().as_millis() as u64, "refreshed the access token");
                self.save(&next).await;
                st.creds = next;
                Ok(())
            }
            Err(e) => {
                drop(st);
                if e.connection_reason() == Some(ConnectionReason::InvalidGrant) {
                    self.mark_reauth().await;
                } else {
                    tracing::warn!(connection = %self.id, provider = self.provider, error = %e, "token refresh failed");
                }
                Err(e)
            }
        }
    }

    /// Runs `op` with a fresh token: refresh first when the token is about to
    /// expire, and once more (then retry once) when the provider refuses it.
    async fn run<T, F, Fut>(&self, op: &'static str, bytes: Option<u64>, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let span = tracing::info_span!(
            "storage",
            provider = self.provider,
            op,
            connection = %self.id,
            attempt = tracing::field::Empty,
            bytes = bytes,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = async {
            if self.reauth.load(Ordering::SeqCst) || self.disconnected.load(Ordering::SeqCst) {
                return Err(Self::reauth_error());
            }
            self.save_pending().await;
            if self.expiring().await {
                self.refresh(self.generation.load(Ordering::SeqCst)).await?;
            }
            let seen = self.generation.load(Ordering::SeqCst);
            tracing::Span::current().record("attempt", 1);
            let first = f().await;
            let result = match first {
                Err(e) if e.connection_reason() == Some(ConnectionReason::TokenExpired) => {
                    self.refresh(seen).await?;
                    tracing::Span::current().record("attempt", 2);
                    f().await
                }
                other => other,
            };
            if let Err(e) = &result
                && e.connection_reason() == Some(ConnectionReason::InvalidGrant)
            {
                self.mark_reauth().await;
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

/// A stream lent to one attempt at a time; it remembers whether any of it was read.
struct Lent {
    stream: ByteStream,
    pulled: bool,
}

struct Lend(Arc<std::sync::Mutex<Lent>>);

fn lock(slot: &std::sync::Mutex<Lent>) -> std::sync::MutexGuard<'_, Lent> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl futures::Stream for Lend {
    type Item = Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let mut lent = lock(&self.0);
        let polled = lent.stream.as_mut().poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(Some(_))) {
            lent.pulled = true;
        }
        polled
    }
}

#[async_trait]
impl StorageBackend for Managed {
    async fn put_object(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        self.run("put_object", Some(body.len() as u64), || {
            self.inner.put_object(name, body.clone(), content_type)
        })
        .await
    }

    /// A stream cannot be replayed, so the retry after a refresh happens only
    /// when the refused attempt consumed none of it (the usual case: the token
    /// is checked when the upload session starts).
    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        let slot = Arc::new(std::sync::Mutex::new(Lent {
            stream: body,
            pulled: false,
        }));
        self.run("put_stream", Some(size), || {
            let slot = slot.clone();
            async move {
                if lock(&slot).pulled {
                    return Err(StorageError::CloudConnection {
                        reason: ConnectionReason::TokenExpired,
                    });
                }
                self.inner
                    .put_stream(name, Box::pin(Lend(slot)), size, content_type)
                    .await
            }
        })
        .await
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
