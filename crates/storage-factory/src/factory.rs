//! `StorageFactory`: credential JSON in, a backend out.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
#[cfg(feature = "memory")]
use storage_core::MemoryBackend;
use storage_core::{Result, RetryPolicy, StorageBackend, StorageError, TokenCell};

use crate::credentials::Credentials;
use crate::managed::{ManagedBackend, Parts};
use crate::refresh::{Http, Refresher};
use crate::store::{ConnectionStatus, CredentialStore};

/// Every provider's endpoints, in the JSON shape `storage emulator` prints;
/// sections for providers that are compiled out are ignored.
///
/// ```
/// let e = storage_factory::Endpoints::from_json(r#"{"unknown": 1}"#)?;
/// # let _ = e;
/// # Ok::<(), storage_core::StorageError>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Endpoints {
    /// Google's; production when absent.
    #[cfg(feature = "gdrive")]
    #[serde(default)]
    pub google: Option<storage_gdrive::GoogleEndpoints>,
    /// Microsoft's; production when absent.
    #[cfg(feature = "onedrive")]
    #[serde(default)]
    pub microsoft: Option<storage_onedrive::MicrosoftEndpoints>,
}

impl Endpoints {
    /// Production everywhere.
    pub fn production() -> Self {
        Self::default()
    }

    /// Reads the JSON `storage emulator` prints.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] when it does not parse or a URL is refused.
    pub fn from_json(json: &str) -> Result<Self> {
        let e: Self =
            serde_json::from_str(json).map_err(|_| StorageError::invalid_input("endpoints json does not parse"))?;
        #[cfg(feature = "gdrive")]
        if let Some(g) = &e.google {
            g.validate()?;
        }
        #[cfg(feature = "onedrive")]
        if let Some(m) = &e.microsoft {
            m.validate()?;
        }
        Ok(e)
    }
}

/// Opens backends from credential JSON; one per application.
///
/// ```
/// use storage_factory::StorageFactory;
/// let factory = StorageFactory::builder().allow_memory().build()?;
/// let backend = factory.open(r#"{"provider":"memory"}"#)?;
/// # let _ = backend;
/// # Ok::<(), storage_core::StorageError>(())
/// ```
pub struct StorageFactory {
    #[cfg(feature = "gdrive")]
    pub(crate) google_app: Option<storage_gdrive::GoogleApp>,
    #[cfg(feature = "onedrive")]
    pub(crate) microsoft_app: Option<storage_onedrive::MicrosoftApp>,
    endpoints: Endpoints,
    /// What pending connects are sealed under.
    #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
    pub(crate) connect_keys: Option<crate::SealingKeys>,
    /// The pending connects finished here, for the replay check.
    #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
    pub(crate) used_connects: crate::connect::UsedConnects,
    /// What the backends send with: no deadline, they apply the idle timeout.
    #[cfg_attr(not(any(feature = "gdrive", feature = "onedrive")), allow(dead_code))]
    pub(crate) http: Http,
    /// What resumable chunks, upload fragments and ranged reads go with.
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    transfer: Http,
    /// What API calls speak.
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    http_version: storage_core::protocol::HttpVersion,
    /// What token and revocation requests are sent with.
    pub(crate) token_http: Http,
    pub(crate) retry: RetryPolicy,
    /// Which managed connections `disconnect` has ended.
    pub(crate) connections: Arc<crate::handles::Connections>,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    connect_timeout: Duration,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    read_timeout: Duration,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    upload_memory_budget: Option<usize>,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    parallel_download: Option<storage_core::download::Parallel>,
    refresh_skew: Duration,
    refresh_backoff: Duration,
    /// Puts of at least this many bytes check the free space first.
    quota_check: u64,
    /// What `{"provider":"memory"}` opens: one store per factory, when enabled.
    #[cfg(feature = "memory")]
    memory: Option<MemoryBackend>,
    /// Where `{"provider":"local"}` roots must lie, when enabled.
    #[cfg_attr(not(feature = "local"), allow(dead_code))]
    local_base: Option<std::path::PathBuf>,
    /// One Drive connection pool for every Drive backend the factory opens.
    #[cfg(feature = "gdrive")]
    drive_pool: storage_gdrive::DrivePool,
    /// One Graph client and pool for every OneDrive backend the factory opens.
    #[cfg(feature = "onedrive")]
    graph_pool: storage_onedrive::GraphPool,
}

impl std::fmt::Debug for StorageFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("StorageFactory");
        #[cfg(feature = "gdrive")]
        d.field("google_app", &self.google_app);
        #[cfg(feature = "onedrive")]
        d.field("microsoft_app", &self.microsoft_app);
        d.field("endpoints", &self.endpoints)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`StorageFactory`].
#[derive(Debug, Default)]
pub struct StorageFactoryBuilder {
    #[cfg(feature = "gdrive")]
    google_app: Option<storage_gdrive::GoogleApp>,
    #[cfg(feature = "onedrive")]
    microsoft_app: Option<storage_onedrive::MicrosoftApp>,
    endpoints: Endpoints,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    http: Option<reqwest::Client>,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    http_version: storage_core::protocol::HttpVersion,
    retry: Option<RetryPolicy>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    upload_memory_budget: Option<usize>,
    parallel_download: Option<storage_core::download::Parallel>,
    refresh_skew: Option<Duration>,
    refresh_backoff: Option<Duration>,
    quota_check: Option<u64>,
    #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
    connect_keys: Option<crate::SealingKeys>,
    local_base: Option<std::path::PathBuf>,
    #[cfg_attr(not(feature = "memory"), allow(dead_code))]
    memory: bool,
}

impl StorageFactoryBuilder {
    /// The Google OAuth client, used when credential JSON carries none.
    #[cfg(feature = "gdrive")]
    #[must_use]
    pub fn google_app(mut self, app: storage_gdrive::GoogleApp) -> Self {
        self.google_app = Some(app);
        self
    }

    /// The Microsoft application (id, secret, tenant); OneDrive JSON never carries it.
    #[cfg(feature = "onedrive")]
    #[must_use]
    pub fn microsoft_app(mut self, app: storage_onedrive::MicrosoftApp) -> Self {
        self.microsoft_app = Some(app);
        self
    }

    /// Where the providers live; production by default.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// One HTTP client shared by every backend the factory opens, and by its
    /// token and revocation requests. It must not follow redirects or send a
    /// `Referer`. Give it a connect timeout but neither `timeout` nor
    /// `read_timeout`: those are deadlines for a whole request, an upload's
    /// body included, while the backends apply the idle timeout of
    /// [`timeouts`](Self::timeouts) themselves. The default client is built so,
    /// and a second one, with `read_timeout` bounding each small token request,
    /// serves the refreshes.
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// What the API calls and token requests of the clients the factory
    /// builds speak: [`HttpVersion::Negotiated`](storage_core::protocol::HttpVersion::Negotiated)
    /// (HTTP/2 where TLS negotiates it) by default,
    /// [`HttpVersion::H2c`](storage_core::protocol::HttpVersion::H2c) for an
    /// emulator that speaks HTTP/2 without TLS. Transfers always go on
    /// HTTP/1.1 connections of their own (see [`storage_core::protocol`]).
    /// Without effect on a client given to [`http_client`](Self::http_client).
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    #[must_use]
    pub fn http_version(mut self, version: storage_core::protocol::HttpVersion) -> Self {
        self.http_version = version;
        self
    }

    /// Retries of throttled and failed calls, for backends and refreshes.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The connect timeout, and the idle timeout of every request: 10 s and
    /// 60 s by default. A request fails when nothing of it moves for the idle
    /// timeout (no byte of its body sent, no answer, no byte of the answer's
    /// body), however long it takes as a whole, so a big upload over a slow
    /// link goes through and a stalled one does not hang.
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = Some(connect);
        self.read_timeout = Some(read);
        self
    }

    /// The most body bytes one Drive or OneDrive upload holds at once: 64 MiB
    /// by default. Chunks and fragments grow up to it on a fast link (fewer
    /// round trips, less idle link time), within each provider's rules.
    #[must_use]
    pub fn upload_memory_budget(mut self, bytes: usize) -> Self {
        self.upload_memory_budget = Some(bytes);
        self
    }

    /// How large Drive and OneDrive objects are read: by default four ranged
    /// requests at once, of 8 MiB each, for objects of 32 MiB or more
    /// ([`Parallel::single`](storage_core::download::Parallel::single) turns
    /// it off).
    #[must_use]
    pub fn parallel_download(mut self, plan: storage_core::download::Parallel) -> Self {
        self.parallel_download = Some(plan);
        self
    }

    /// How long before expiry a managed connection refreshes: 60 s by default.
    /// Calls in that window go on the still-valid token while the refresh runs.
    #[must_use]
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.refresh_skew = Some(skew);
        self
    }

    /// Lets credential JSON open `{"provider":"local","root":…}` connections,
    /// whose root must lie under `base` (an absolute path without `..`): a
    /// relative root is taken inside `base`, an absolute one must start with it.
    /// Off by default, because a credential row can be tampered with, and a
    /// `local` row would otherwise open any directory of the server
    /// (`"root":"/"`). A root that leaves `base` (by `..`, by another absolute
    /// path, or through a symbolic link under `base`) is `InvalidInput`.
    #[cfg(feature = "local")]
    #[must_use]
    pub fn allow_local(mut self, base: impl Into<std::path::PathBuf>) -> Self {
        self.local_base = Some(base.into());
        self
    }

    /// Lets credential JSON open `{"provider":"memory"}` connections: one
    /// in-process store, shared by every such connection of the factory. Off by
    /// default: a tampered row would otherwise read and write that shared store.
    #[cfg(feature = "memory")]
    #[must_use]
    pub fn allow_memory(mut self) -> Self {
        self.memory = true;
        self
    }

    /// How long a failed refresh is shared: 10 s by default. Every call that
    /// waited on the failed attempt sequence gets its error, and for this long
    /// after it, calls that would refresh get the same error at once, without
    /// a token request (a call whose token is only about to expire uses it
    /// instead). A `Retry-After` from the token endpoint lengthens it. A revoked
    /// grant is not retried at all: the connection is marked for re-authorisation.
    #[must_use]
    pub fn refresh_backoff(mut self, backoff: Duration) -> Self {
        self.refresh_backoff = Some(backoff);
        self
    }

    /// Whether a managed connection checks the drive's free space before a
    /// `put_stream` of at least `min_size` bytes, and refuses one that cannot fit
    /// with [`StorageError::InsufficientStorage`] before a byte is sent. On by
    /// default, from 8 MiB: below that the extra `quota` request would cost
    /// more than it saves. `None` turns it off. A drive that reports no
    /// remaining space (unlimited, or unknown) is never refused.
    #[must_use]
    pub fn quota_check(mut self, min_size: Option<u64>) -> Self {
        self.quota_check = Some(min_size.unwrap_or(u64::MAX));
        self
    }

    /// The keys that seal a [`PendingConnect`](crate::PendingConnect) between
    /// `begin_connect` and `finish_connect`. Use keys of their own, not the
    /// ones of a [`SealedStore`](crate::SealedStore): a pending connect is
    /// sealed under its own associated data either way, so it never opens as a
    /// stored credential.
    #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
    #[must_use]
    pub fn connect_keys(mut self, keys: crate::SealingKeys) -> Self {
        self.connect_keys = Some(keys);
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for invalid endpoints, a zero timeout, or a
    /// base directory for `local` connections that is relative or holds `..`.
    pub fn build(self) -> Result<StorageFactory> {
        if let Some(base) = &self.local_base
            && (!base.is_absolute() || base.components().any(|c| c == std::path::Component::ParentDir))
        {
            return Err(StorageError::invalid_input(
                "the base directory of local connections must be an absolute path without `..`",
            ));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(Duration::from_secs(10));
        let read_timeout = self.read_timeout.unwrap_or(Duration::from_secs(60));
        if connect_timeout.is_zero() || read_timeout.is_zero() {
            return Err(StorageError::invalid_input("timeouts must be above zero"));
        }
        // One OneDrive fragment unit, the larger of the two providers' units.
        if self.upload_memory_budget.is_some_and(|b| b < 320 * 1024) {
            return Err(StorageError::invalid_input(
                "the upload memory budget must hold at least 320 KiB",
            ));
        }
        if let Some(plan) = &self.parallel_download {
            plan.validate()?;
        }
        #[cfg(feature = "gdrive")]
        if let Some(g) = &self.endpoints.google {
            g.validate()?;
        }
        #[cfg(feature = "onedrive")]
        if let Some(m) = &self.endpoints.microsoft {
            m.validate()?;
        }
        #[cfg(any(feature = "gdrive", feature = "onedrive"))]
        let (http, transfer, token_http) = {
            let builder = || {
                reqwest::Client::builder()
                    .connect_timeout(connect_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .referer(false)
            };
            let failed = |e| StorageError::transport("failed to build the http client", e);
            match self.http {
                Some(h) => (h.clone(), h.clone(), h),
                None => {
                    let (api, transfer) =
                        storage_core::protocol::clients(self.http_version, builder).map_err(failed)?;
                    // A token request and its answer are small: the wait for the
                    // headers is idle time, and reqwest's `read_timeout` bounds it.
                    let token = self
                        .http_version
                        .api_client(builder().read_timeout(read_timeout))
                        .build()
                        .map_err(failed)?;
                    (api, transfer, token)
                }
            }
        };
        #[cfg(not(any(feature = "gdrive", feature = "onedrive")))]
        let (http, token_http) = (Http, Http);
        #[cfg(feature = "gdrive")]
        let drive_pool = {
            let mut o = storage_gdrive::DriveOptions::default();
            o.connect_timeout = connect_timeout;
            o.read_timeout = read_timeout;
            o.http = self.http_version;
            storage_gdrive::DrivePool::new(&o)
        };
        #[cfg(feature = "onedrive")]
        let graph_pool = {
            let mut o = storage_onedrive::OneDriveOptions::default();
            o.connect_timeout = connect_timeout;
            o.read_timeout = read_timeout;
            storage_onedrive::GraphPool::new(&self.endpoints.microsoft.clone().unwrap_or_default(), &o)?
        };
        Ok(StorageFactory {
            #[cfg(feature = "gdrive")]
            drive_pool,
            #[cfg(feature = "onedrive")]
            graph_pool,
            #[cfg(feature = "gdrive")]
            google_app: self.google_app,
            #[cfg(feature = "onedrive")]
            microsoft_app: self.microsoft_app,
            endpoints: self.endpoints,
            http,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            transfer,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            http_version: self.http_version,
            token_http,
            retry: self.retry.unwrap_or_default(),
            connections: Arc::default(),
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            connect_timeout,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            read_timeout,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            upload_memory_budget: self.upload_memory_budget,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            parallel_download: self.parallel_download,
            refresh_skew: self.refresh_skew.unwrap_or(Duration::from_secs(60)),
            refresh_backoff: self.refresh_backoff.unwrap_or(crate::managed::REFRESH_BACKOFF),
            quota_check: self.quota_check.unwrap_or(crate::managed::QUOTA_CHECK_FROM),
            #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
            connect_keys: self.connect_keys,
            #[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
            used_connects: crate::connect::UsedConnects::default(),
            #[cfg(feature = "memory")]
            memory: self.memory.then(MemoryBackend::new),
            local_base: self.local_base,
        })
    }
}

/// The error for a provider this factory cannot connect: its feature is off,
/// or it is no cloud provider at all.
#[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
pub(crate) fn unknown_or_disabled(provider: &str) -> StorageError {
    if matches!(provider, "gdrive" | "onedrive") {
        disabled(provider)
    } else {
        StorageError::invalid_input("the connect flow takes the provider `gdrive` or `onedrive`")
    }
}

fn disabled(provider: &str) -> StorageError {
    StorageError::FeatureDisabled {
        provider: provider.to_owned(),
        feature: provider.to_owned(),
    }
}

impl StorageFactory {
    /// A builder with production endpoints and no apps configured.
    pub fn builder() -> StorageFactoryBuilder {
        StorageFactoryBuilder::default()
    }

    /// A backend for `json`, using its access token as it is (no refresh).
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for bad JSON, a refused `token_uri`, a
    /// `local` or `memory` row the application did not allow
    /// ([`allow_local`](StorageFactoryBuilder::allow_local),
    /// [`allow_memory`](StorageFactoryBuilder::allow_memory)), or a `local` root
    /// outside the allowed base directory, all before any I/O;
    /// [`StorageError::FeatureDisabled`] for a provider compiled out.
    pub fn open(&self, json: &str) -> Result<Arc<dyn StorageBackend>> {
        let creds = Credentials::parse(json)?;
        let tokens = creds
            .access_token()
            .map(|t| TokenCell::new(t.clone()))
            .unwrap_or_default();
        self.backend_for(&creds, tokens)
    }

    /// A managed backend for connection `connection_id` of `store`: it refreshes
    /// the token 60 s before expiry or when the provider refuses it, saves the
    /// new credentials through the store and retries once; a revoked grant marks
    /// the connection [`ConnectionStatus::RequiresReauth`], after which every
    /// call fails at once.
    ///
    /// - One refresh attempt sequence (the retry policy's attempts) serves every
    ///   caller waiting on it, whether it succeeds or fails; a failure is then
    ///   shared for the [`refresh_backoff`](StorageFactoryBuilder::refresh_backoff)
    ///   without another token request.
    /// - A refresh before expiry that fails (with anything but a revoked grant)
    ///   leaves the call to the token that is still valid.
    /// - The refresh runs on a task of its own: a caller dropped halfway (a
    ///   timeout, a client gone) never loses the new credentials, Microsoft's
    ///   rotated refresh token included. They are in memory before the save
    ///   starts, and a save that fails is retried by the next call, after reading
    ///   the row again (another process may have written newer credentials, and a
    ///   compare-and-swap store needs the current version).
    ///
    /// # Errors
    /// `NotFound` for an unknown connection; `CloudConnection` with
    /// `InvalidGrant` for one already marked; as [`open`](Self::open) otherwise.
    pub async fn connect(
        &self,
        connection_id: &str,
        store: Arc<dyn CredentialStore>,
    ) -> Result<Arc<dyn StorageBackend>> {
        let stored = store.load(connection_id).await?;
        if stored.status == ConnectionStatus::RequiresReauth {
            return Err(StorageError::CloudConnection {
                reason: storage_core::ConnectionReason::InvalidGrant,
            });
        }
        let creds = Credentials::parse(stored.json.expose())?;
        let tokens = creds
            .access_token()
            .map(|t| TokenCell::new(t.clone()))
            .unwrap_or_default();
        let inner = self.backend_for(&creds, tokens.clone())?;
        let refresher = self.refresher_for(&creds)?;
        if matches!(refresher, Refresher::Nothing) {
            return Ok(inner);
        }
        Ok(Arc::new(ManagedBackend::new(Parts {
            id: connection_id.to_owned(),
            store,
            inner,
            tokens,
            refresher,
            http: self.token_http.clone(),
            retry: self.retry,
            skew: self.refresh_skew,
            backoff: self.refresh_backoff,
            quota_check: self.quota_check,
            creds,
            disconnected: self.connections.flag(connection_id),
        })))
    }

    fn refresher_for(&self, creds: &Credentials) -> Result<Refresher> {
        match creds {
            #[cfg(feature = "gdrive")]
            Credentials::Gdrive(g) => {
                let app = match (&g.client_id, &g.client_secret) {
                    (Some(id), Some(secret)) => storage_gdrive::GoogleApp::new(id.clone(), secret.clone()),
                    _ => self.google_app.clone().ok_or_else(|| {
                        StorageError::invalid_input(
                            "no google client id and secret: configure google_app or keep them in the credential json",
                        )
                    })?,
                };
                Ok(Refresher::Google {
                    app,
                    token_uri: self.google_endpoints().token,
                })
            }
            #[cfg(feature = "onedrive")]
            Credentials::Onedrive(_) => Ok(Refresher::Microsoft {
                app: self.microsoft_app.clone().ok_or_else(|| {
                    StorageError::invalid_input(
                        "no microsoft application configured: call microsoft_app on the factory builder",
                    )
                })?,
                endpoints: self.graph_endpoints(),
            }),
            _ => Ok(Refresher::Nothing),
        }
    }

    #[cfg(feature = "gdrive")]
    pub(crate) fn google_endpoints(&self) -> storage_gdrive::GoogleEndpoints {
        self.endpoints.google.clone().unwrap_or_default()
    }

    #[cfg(feature = "onedrive")]
    pub(crate) fn graph_endpoints(&self) -> storage_onedrive::MicrosoftEndpoints {
        self.endpoints.microsoft.clone().unwrap_or_default()
    }

    /// The backend of a `local` row: its root checked against the base
    /// directory by text first, before any I/O, and then once more where it
    /// resolves, so that a symbolic link under the base cannot lead out.
    #[cfg(feature = "local")]
    fn local_backend(&self, root: &str) -> Result<storage_core::LocalBackend> {
        let Some(base) = &self.local_base else {
            return Err(StorageError::invalid_input(
                "local connections are not enabled on this factory: the application calls allow_local on the builder",
            ));
        };
        let path = local_root(base, root)?;
        let outside =
            || StorageError::invalid_input("a local root must lie under the base directory the application allowed");
        let io = |e| StorageError::io("failed to resolve the base directory of local connections", e);
        std::fs::create_dir_all(base).map_err(io)?;
        let real_base = base.canonicalize().map_err(io)?;
        // The deepest part of the root that exists already must resolve under the
        // base before anything is created below it.
        let existing = path.ancestors().find(|p| p.exists()).unwrap_or(base);
        if !existing.canonicalize().map_err(io)?.starts_with(&real_base) {
            return Err(outside());
        }
        let backend = storage_core::LocalBackend::new(&path)?;
        if !backend.root().starts_with(&real_base) {
            return Err(outside());
        }
        Ok(backend)
    }

    fn backend_for(&self, creds: &Credentials, tokens: TokenCell) -> Result<Arc<dyn StorageBackend>> {
        let _ = &tokens;
        match creds {
            #[cfg(feature = "gdrive")]
            Credentials::Gdrive(g) => {
                let endpoints = self.google_endpoints();
                // A tampered row must not send its refresh token elsewhere.
                if let Some(uri) = &g.token_uri
                    && url::Url::parse(uri).ok().as_ref() != Some(&endpoints.token)
                {
                    return Err(StorageError::invalid_input(
                        "credential token_uri differs from the configured google token endpoint",
                    ));
                }
                let mut options = storage_gdrive::DriveOptions::default();
                options.http = self.http_version;
                options.retry = self.retry;
                options.connect_timeout = self.connect_timeout;
                options.read_timeout = self.read_timeout;
                if let Some(budget) = self.upload_memory_budget {
                    options.limit_upload_memory(budget);
                }
                if let Some(plan) = self.parallel_download {
                    options.parallel_download = plan;
                }
                let b = storage_gdrive::GoogleDriveBackend::builder(tokens)
                    .endpoints(endpoints)
                    .options(options)
                    .http_client(self.http.clone())
                    .transfer_client(self.transfer.clone())
                    .pool(self.drive_pool.clone())
                    .build()?;
                Ok(Arc::new(b))
            }
            #[cfg(feature = "onedrive")]
            Credentials::Onedrive(_) => {
                let mut options = storage_onedrive::OneDriveOptions::default();
                options.http = self.http_version;
                options.retry = self.retry;
                options.connect_timeout = self.connect_timeout;
                options.read_timeout = self.read_timeout;
                if let Some(budget) = self.upload_memory_budget {
                    options.limit_upload_memory(budget);
                }
                if let Some(plan) = self.parallel_download {
                    options.parallel_download = plan;
                }
                let b = storage_onedrive::OneDriveBackend::builder(tokens)
                    .endpoints(self.graph_endpoints())
                    .options(options)
                    .http_client(self.http.clone())
                    .transfer_client(self.transfer.clone())
                    .pool(self.graph_pool.clone())
                    .build()?;
                Ok(Arc::new(b))
            }
            #[cfg(feature = "local")]
            Credentials::Local { root } => Ok(Arc::new(self.local_backend(root)?)),
            #[cfg(feature = "memory")]
            Credentials::Memory => match &self.memory {
                Some(m) => Ok(Arc::new(m.clone())),
                None => Err(StorageError::invalid_input(
                    "memory connections are not enabled on this factory: the application calls allow_memory on the builder",
                )),
            },
            // Reached for each provider whose feature is off.
            #[allow(unreachable_patterns)]
            other => Err(disabled(other.provider())),
        }
    }
}

/// Where a `local` row's `root` points, by text alone: inside `base`, with no
/// `..`. A relative root is taken inside `base`.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
fn local_root(base: &std::path::Path, root: &str) -> Result<std::path::PathBuf> {
    use std::path::{Component, Path};
    let root = Path::new(root);
    if root.as_os_str().is_empty() {
        return Err(StorageError::invalid_input("a local root must not be empty"));
    }
    if root.components().any(|c| c == Component::ParentDir) {
        return Err(StorageError::invalid_input("a local root must not contain `..`"));
    }
    let path = if root.is_absolute() {
        root.to_path_buf()
    } else {
        base.join(root)
    };
    if !path.starts_with(base) {
        return Err(StorageError::invalid_input(
            "a local root must lie under the base directory the application allowed",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_roots_are_checked_by_text() {
        let base = std::path::Path::new("/srv/app/objects");
        assert_eq!(local_root(base, "tenant-1").unwrap(), base.join("tenant-1"));
        assert_eq!(local_root(base, "/srv/app/objects/t").unwrap(), base.join("t"));
        assert_eq!(local_root(base, "/srv/app/objects").unwrap(), base);
        for (root, rule) in [
            ("/", "under the base"),
            ("/srv/app", "under the base"),
            ("/srv/app/objects-evil", "under the base"),
            ("/etc", "under the base"),
            ("../x", "`..`"),
            ("/srv/app/objects/../../etc", "`..`"),
            ("", "empty"),
        ] {
            let e = local_root(base, root).unwrap_err();
            assert!(e.to_string().contains(rule), "{root}: {e}");
        }
    }

    /// Runs in every feature set `cargo xtask ci` tests: what is compiled in
    /// opens, what is compiled out is `FeatureDisabled` naming its feature.
    #[test]
    fn providers_follow_the_cargo_features() {
        let dir = tempfile::tempdir().unwrap();
        let builder = StorageFactory::builder();
        #[cfg(feature = "local")]
        let builder = builder.allow_local(dir.path());
        #[cfg(feature = "memory")]
        let builder = builder.allow_memory();
        let factory = builder.build().unwrap();
        let local = serde_json::json!({"provider": "local", "root": dir.path()}).to_string();
        let cases = [
            (
                "gdrive",
                r#"{"provider":"gdrive","access_token":"a","refresh_token":"r"}"#.to_owned(),
                cfg!(feature = "gdrive"),
            ),
            (
                "onedrive",
                r#"{"provider":"onedrive","access_token":"a","refresh_token":"r"}"#.to_owned(),
                cfg!(feature = "onedrive"),
            ),
            ("local", local, cfg!(feature = "local")),
            (
                "memory",
                r#"{"provider":"memory"}"#.to_owned(),
                cfg!(feature = "memory"),
            ),
        ];
        for (provider, json, enabled) in cases {
            match factory.open(&json) {
                Ok(_) => assert!(enabled, "{provider} opened although its feature is off"),
                Err(StorageError::FeatureDisabled { provider: p, feature }) => {
                    assert!(!enabled, "{provider} is compiled in");
                    assert_eq!((p.as_str(), feature.as_str()), (provider, provider));
                }
                Err(e) => panic!("{provider}: {e}"),
            }
        }
    }
}
