//! `StorageFactory`: credential JSON in, a backend out.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
#[cfg(feature = "memory")]
use storage_core::MemoryBackend;
use storage_core::{Result, RetryPolicy, StorageBackend, StorageError, TokenCell};

use crate::credentials::Credentials;
use crate::managed::{Managed, Parts};
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
    pub microsoft: Option<storage_onedrive::GraphEndpoints>,
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
/// let factory = StorageFactory::builder().build()?;
/// let backend = factory.open(r#"{"provider":"memory"}"#)?;
/// # let _ = backend;
/// # Ok::<(), storage_core::StorageError>(())
/// ```
pub struct StorageFactory {
    #[cfg(feature = "gdrive")]
    google_app: Option<storage_gdrive::GoogleApp>,
    #[cfg(feature = "onedrive")]
    microsoft_app: Option<storage_onedrive::MicrosoftApp>,
    endpoints: Endpoints,
    pub(crate) http: Http,
    pub(crate) retry: RetryPolicy,
    /// Which managed connections `disconnect` has ended.
    pub(crate) connections: Arc<crate::disconnect::Connections>,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    connect_timeout: Duration,
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    read_timeout: Duration,
    refresh_skew: Duration,
    refresh_backoff: Duration,
    /// What `{"provider":"memory"}` opens: one store per factory.
    #[cfg(feature = "memory")]
    memory: MemoryBackend,
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
    retry: Option<RetryPolicy>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    refresh_skew: Option<Duration>,
    refresh_backoff: Option<Duration>,
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

    /// One HTTP client shared by every backend the factory opens. It must not
    /// follow redirects or send a `Referer`; the default one does neither.
    #[cfg(any(feature = "gdrive", feature = "onedrive"))]
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Retries of throttled and failed calls, for backends and refreshes.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Connect and read timeouts: 10 s and 60 s by default.
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = Some(connect);
        self.read_timeout = Some(read);
        self
    }

    /// How long before expiry a managed connection refreshes: 60 s by default.
    #[must_use]
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.refresh_skew = Some(skew);
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

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for invalid endpoints or a zero timeout.
    pub fn build(self) -> Result<StorageFactory> {
        let connect_timeout = self.connect_timeout.unwrap_or(Duration::from_secs(10));
        let read_timeout = self.read_timeout.unwrap_or(Duration::from_secs(60));
        if connect_timeout.is_zero() || read_timeout.is_zero() {
            return Err(StorageError::invalid_input("timeouts must be above zero"));
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
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .read_timeout(read_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .build()
                .map_err(|e| StorageError::transport("failed to build the http client", e))?,
        };
        #[cfg(not(any(feature = "gdrive", feature = "onedrive")))]
        let http = Http;
        #[cfg(feature = "gdrive")]
        let drive_pool = {
            let mut o = storage_gdrive::DriveOptions::default();
            o.connect_timeout = connect_timeout;
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
            retry: self.retry.unwrap_or_default(),
            connections: Arc::default(),
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            connect_timeout,
            #[cfg(any(feature = "gdrive", feature = "onedrive"))]
            read_timeout,
            refresh_skew: self.refresh_skew.unwrap_or(Duration::from_secs(60)),
            refresh_backoff: self.refresh_backoff.unwrap_or(crate::managed::REFRESH_BACKOFF),
            #[cfg(feature = "memory")]
            memory: MemoryBackend::new(),
        })
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
    /// [`StorageError::InvalidInput`] for bad JSON or a refused `token_uri`;
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
        Ok(Arc::new(Managed::new(Parts {
            id: connection_id.to_owned(),
            store,
            inner,
            tokens,
            refresher,
            http: self.http.clone(),
            retry: self.retry,
            skew: self.refresh_skew,
            backoff: self.refresh_backoff,
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
    fn graph_endpoints(&self) -> storage_onedrive::GraphEndpoints {
        self.endpoints.microsoft.clone().unwrap_or_default()
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
                options.retry = self.retry;
                options.connect_timeout = self.connect_timeout;
                options.read_timeout = self.read_timeout;
                let b = storage_gdrive::GoogleDriveBackend::builder(tokens)
                    .endpoints(endpoints)
                    .options(options)
                    .http_client(self.http.clone())
                    .pool(self.drive_pool.clone())
                    .build()?;
                Ok(Arc::new(b))
            }
            #[cfg(feature = "onedrive")]
            Credentials::Onedrive(_) => {
                let mut options = storage_onedrive::OneDriveOptions::default();
                options.retry = self.retry;
                options.connect_timeout = self.connect_timeout;
                options.read_timeout = self.read_timeout;
                let b = storage_onedrive::OneDriveBackend::builder(tokens)
                    .endpoints(self.graph_endpoints())
                    .options(options)
                    .http_client(self.http.clone())
                    .pool(self.graph_pool.clone())
                    .build()?;
                Ok(Arc::new(b))
            }
            #[cfg(feature = "local")]
            Credentials::Local { root } => Ok(Arc::new(storage_core::LocalBackend::new(root)?)),
            #[cfg(feature = "memory")]
            Credentials::Memory => Ok(Arc::new(self.memory.clone())),
            // Reached for each provider whose feature is off.
            #[allow(unreachable_patterns)]
            other => Err(disabled(other.provider())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in every feature set `cargo xtask ci` tests: what is compiled in
    /// opens, what is compiled out is `FeatureDisabled` naming its feature.
    #[test]
    fn providers_follow_the_cargo_features() {
        let dir = tempfile::tempdir().unwrap();
        let factory = StorageFactory::builder().build().unwrap();
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
