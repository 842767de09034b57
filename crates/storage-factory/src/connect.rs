//! The web connect flow: [`StorageFactory::begin_connect`] before the redirect
//! to the provider, [`StorageFactory::finish_connect`] in the callback.
//!
//! Between the two the application keeps a [`PendingConnect`]: the provider,
//! `state`, the PKCE verifier, the redirect URI and the time, sealed
//! (XChaCha20-Poly1305, under the factory's [`SealingKeys`]) into one opaque
//! string that can live in a cookie or a session row. The callback is checked
//! against it (state in constant time, expiry, single use), the code is
//! exchanged, the grant is checked to be usable (a refresh token, every scope
//! asked for), and the credentials are stored in one write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use storage_core::oauth::{Pkce, random_token};
use storage_core::{Quota, Result, Secret, StorageBackend, StorageError, Url};

use crate::factory::StorageFactory;
use crate::sealed::{SealingKeys, open_text, seal_text};
use crate::store::CredentialStore;

/// The associated data every pending connect is sealed under: a pending
/// connect never opens as a stored credential, nor the other way round.
const CONTEXT: &str = "storage-factory pending connect v1";
/// How long a pending connect lives by default.
pub const DEFAULT_CONNECT_TTL: Duration = Duration::from_secs(10 * 60);
/// The scope a Microsoft grant must hold (offline access shows as the refresh token).
#[cfg(feature = "onedrive")]
const MICROSOFT_FILES_SCOPE: &str = "Files.ReadWrite";

/// Settings of one connect.
///
/// ```
/// use std::time::Duration;
/// use storage_factory::ConnectOptions;
/// let options = ConnectOptions::default().expires_after(Duration::from_secs(300));
/// assert_eq!(options.ttl(), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    ttl: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_CONNECT_TTL,
        }
    }
}

impl ConnectOptions {
    /// How long the user has between `begin_connect` and the callback (10
    /// minutes by default; Google's codes live about as long).
    #[must_use]
    pub fn expires_after(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The pending connect's lifetime.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// What the application keeps across the redirect: sealed and opaque, safe in
/// a cookie (base64url, no `;`, `,` or quotes). It holds the PKCE verifier, so
/// it is as sensitive as a one-time password for ten minutes; its `Debug`
/// shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingConnect(String);

impl PendingConnect {
    /// A pending connect as the application stored it.
    pub fn from_sealed(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text to store (in a cookie or a session row).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PendingConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingConnect([sealed])")
    }
}

/// What `begin_connect` returns: where to send the user, and what to keep.
#[derive(Debug, Clone)]
pub struct BegunConnect {
    /// The provider's authorize URL, with `state`, the PKCE challenge, offline
    /// access and consent.
    pub authorize_url: Url,
    /// What to keep until the callback.
    pub pending: PendingConnect,
}

/// What the account reports once connected, where it is cheap to ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountInfo {
    /// The account's email address or display name.
    pub name: Option<String>,
    /// The drive's storage figures.
    pub quota: Option<Quota>,
}

/// A finished connect: the managed connection, and what the account reports.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The managed connection, as [`StorageFactory::connect`] gives it.
    pub backend: Arc<dyn StorageBackend>,
    /// The account's name and quota, where the provider reports them.
    pub account: AccountInfo,
}

/// Why a connect did not finish. Nothing was stored, except for
/// [`ConnectError::Storage`] raised by the store itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The pending connect does not open: it was changed, or sealed under keys
    /// this factory does not hold.
    #[error("the pending connect was altered or sealed under other keys")]
    Tampered,
    /// The user came back after the pending connect's lifetime.
    #[error("the pending connect expired; start the connect again")]
    Expired,
    /// The pending connect was used once already.
    #[error("the pending connect was used already")]
    Replayed,
    /// The callback's `state` is missing or differs: a forged or mixed-up callback.
    #[error("the callback's state does not match the pending connect")]
    StateMismatch,
    /// The user clicked "Cancel" on the consent screen (`error=access_denied`).
    #[error("the user declined the consent")]
    AccessDenied,
    /// The provider answered the callback with another error.
    #[error("the provider refused the authorization: {error}")]
    Callback {
        /// The `error` value (RFC 6749 §4.1.2.1).
        error: String,
        /// `error_description`, when given.
        description: Option<String>,
    },
    /// The callback carries neither a code nor an error.
    #[error("the callback carries no authorization code")]
    MissingCode,
    /// The grant has no refresh token, so the connection would end with its
    /// first access token.
    #[error("the provider granted no refresh token")]
    MissingRefreshToken,
    /// The user unticked a scope the library needs.
    #[error("the user did not grant the scope `{scope}`")]
    ScopeNotGranted {
        /// The scope that is missing.
        scope: String,
    },
    /// The code exchange, the store or the backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a pending connect seals.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// Identifies the pending connect for the replay check.
    id: String,
    provider: String,
    state: String,
    verifier: String,
    redirect_uri: String,
    /// Unix seconds.
    created: i64,
    /// Seconds.
    ttl: u64,
}

/// The pending connects this factory has finished, until they expire.
#[derive(Debug, Default)]
pub(crate) struct UsedConnects(Mutex<HashMap<String, i64>>);

impl UsedConnects {
    /// Records `id` (which expires at `until`); `false` when it was recorded already.
    fn first_use(&self, id: &str, until: i64, now: i64) -> bool {
        let mut used = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        used.retain(|_, expires| *expires >= now);
        used.insert(id.to_owned(), until).is_none()
    }
}

/// Equal in time that does not depend on where the bytes first differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The query parameters of a callback URL, or of its query string.
fn callback_params(callback: &str) -> HashMap<String, String> {
    let query = match Url::parse(callback) {
        Ok(url) => url.query().unwrap_or_default().to_owned(),
        Err(_) => callback.trim_start_matches('?').to_owned(),
    };
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// Whether `granted` (space-separated) holds `wanted`, written as is or after
/// a resource (`https://graph.microsoft.com/Files.ReadWrite`).
fn holds_scope(granted: &str, wanted: &str, ignore_case: bool) -> bool {
    granted.split(' ').any(|s| {
        let tail = s.rsplit('/').next().unwrap_or(s);
        if ignore_case {
            s.eq_ignore_ascii_case(wanted) || tail.eq_ignore_ascii_case(wanted)
        } else {
            s == wanted
        }
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl StorageFactory {
    fn connect_keys(&self) -> Result<&SealingKeys> {
        self.connect_keys.as_ref().ok_or_else(|| {
            StorageError::invalid_input("the connect flow needs sealing keys: call connect_keys on the factory builder")
        })
    }

    /// Starts connecting `provider` (`gdrive` or `onedrive`): the authorize URL
    /// to redirect the user to, and the [`PendingConnect`] to keep until the
    /// callback at `redirect_uri`.
    ///
    /// # Errors
    /// `InvalidInput` without sealing keys ([`StorageFactoryBuilder::connect_keys`](crate::StorageFactoryBuilder::connect_keys)),
    /// without the provider's app, or for an unknown provider;
    /// `FeatureDisabled` for a provider whose feature is off.
    pub fn begin_connect(&self, provider: &str, redirect_uri: &str, options: &ConnectOptions) -> Result<BegunConnect> {
        let keys = self.connect_keys()?;
        Url::parse(redirect_uri).map_err(|_| StorageError::invalid_input("the redirect uri is not a url"))?;
        let pkce = Pkce::generate()?;
        let state = random_token(32)?;
        let authorize_url = self.authorize_url(provider, redirect_uri, &state, &pkce)?;
        let payload = Payload {
            id: random_token(16)?,
            provider: provider.to_owned(),
            state,
            verifier: pkce.verifier().expose().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            created: now(),
            ttl: options.ttl.as_secs(),
        };
        let json = serde_json::to_string(&payload)
            .map(Secret::new)
            .map_err(|_| StorageError::invalid_input("failed to encode a pending connect"))?;
        let sealed = seal_text(keys, CONTEXT, &json)?;
        let pending = PendingConnect(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed.expose()));
        Ok(BegunConnect { authorize_url, pending })
    }

    /// The Google app both sides of a connect need.
    #[cfg(feature = "gdrive")]
    fn connect_google_app(&self) -> Result<&storage_gdrive::GoogleApp> {
        self.google_app
            .as_ref()
            .ok_or_else(|| StorageError::invalid_input("no google app: call google_app on the factory builder"))
    }

    /// The Microsoft app both sides of a connect need.
    #[cfg(feature = "onedrive")]
    fn connect_microsoft_app(&self) -> Result<&storage_onedrive::MicrosoftApp> {
        self.microsoft_app
            .as_ref()
            .ok_or_else(|| StorageError::invalid_input("no microsoft app: call microsoft_app on the factory builder"))
    }

    fn authorize_url(&self, provider: &str, redirect_uri: &str, state: &str, pkce: &Pkce) -> Result<Url> {
        match provider {
            #[cfg(feature = "gdrive")]
            "gdrive" => {
                let app = self.connect_google_app()?;
                Ok(storage_gdrive::oauth::authorize_url(
                    &self.google_endpoints(),
                    app,
                    redirect_uri,
                    state,
                    pkce,
                ))
            }
            #[cfg(feature = "onedrive")]
            "onedrive" => {
                let app = self.connect_microsoft_app()?;
                storage_onedrive::oauth::authorize_url(&self.graph_endpoints(), app, redirect_uri, state, pkce)
            }
            other => Err(crate::factory::unknown_or_disabled(other)),
        }
    }

    /// Finishes a connect in the callback: checks the callback (`callback` is
    /// the whole callback URL or its query) against `pending`, exchanges the
    /// code, checks the grant, stores the credentials under `connection_id` in
    /// one write ([`CredentialStore::store_connection`], sealed when `store` is
    /// a [`SealedStore`](crate::SealedStore)), and returns the managed
    /// connection with what the account reports.
    ///
    /// Reconnecting a connection that requires re-authorisation is the same
    /// call: its credentials are replaced and its status made `Active` at once.
    ///
    /// A pending connect is finished once per factory; a second use is
    /// [`ConnectError::Replayed`], and in another process the provider refuses
    /// the used code (`invalid_grant`).
    ///
    /// # Errors
    /// [`ConnectError`], which says what went wrong before anything was stored.
    pub async fn finish_connect(
        &self,
        pending: &PendingConnect,
        callback: &str,
        store: Arc<dyn CredentialStore>,
        connection_id: &str,
    ) -> std::result::Result<Connected, ConnectError> {
        let keys = self.connect_keys()?;
        let payload = open_pending(keys, pending)?;
        let now = now();
        let until = payload
            .created
            .saturating_add(i64::try_from(payload.ttl).unwrap_or(i64::MAX));
        if now > until {
            return Err(ConnectError::Expired);
        }
        let params = callback_params(callback);
        match params.get("state") {
            Some(state) if same(state, &payload.state) => {}
            _ => return Err(ConnectError::StateMismatch),
        }
        if let Some(error) = params.get("error") {
            if error == "access_denied" {
                return Err(ConnectError::AccessDenied);
            }
            return Err(ConnectError::Callback {
                error: error.chars().take(100).collect(),
                description: params.get("error_description").map(|d| d.chars().take(300).collect()),
            });
        }
        let code = params.get("code").ok_or(ConnectError::MissingCode)?;
        if !self.used_connects.first_use(&payload.id, until, now) {
            return Err(ConnectError::Replayed);
        }
        let json = self.exchange(&payload, code).await?;
        store
            .store_connection(connection_id, &Secret::new(json.to_string()))
            .await?;
        let backend = self.connect(connection_id, store).await?;
        let account = AccountInfo {
            name: backend.account_name().await.ok().flatten(),
            quota: backend.quota().await.ok(),
        };
        Ok(Connected { backend, account })
    }

    /// The code exchange of a checked callback, and the checks of its grant.
    async fn exchange(&self, payload: &Payload, code: &str) -> std::result::Result<serde_json::Value, ConnectError> {
        let pkce = Pkce::from_verifier(payload.verifier.clone());
        let redirect = payload.redirect_uri.as_str();
        // The grant, and the scope it must hold (written as is on Google, in any
        // case and perhaps after the resource on Microsoft).
        let (exchanged, wanted, ignore_case) = match payload.provider.as_str() {
            #[cfg(feature = "gdrive")]
            "gdrive" => {
                let app = self.connect_google_app()?;
                let endpoints = self.google_endpoints();
                let exchanged = storage_gdrive::oauth::exchange_code_with_scopes(
                    &self.token_http,
                    &endpoints,
                    app,
                    code,
                    redirect,
                    &pkce,
                )
                .await;
                (exchanged, storage_gdrive::oauth::SCOPE_DRIVE_FILE, false)
            }
            #[cfg(feature = "onedrive")]
            "onedrive" => {
                let app = self.connect_microsoft_app()?;
                let endpoints = self.graph_endpoints();
                let exchanged = storage_onedrive::oauth::exchange_code_with_scopes(
                    &self.token_http,
                    &endpoints,
                    app,
                    code,
                    redirect,
                    &pkce,
                )
                .await;
                (exchanged, MICROSOFT_FILES_SCOPE, true)
            }
            other => return Err(ConnectError::Storage(crate::factory::unknown_or_disabled(other))),
        };
        let (json, scope) = exchanged.map_err(|e| match e {
            StorageError::Provider { code: Some(c), .. } if c == "missingRefreshToken" => {
                ConnectError::MissingRefreshToken
            }
            other => ConnectError::Storage(other),
        })?;
        // RFC 6749 §5.1: `scope` may be left out when it is what was asked for.
        if scope.is_some_and(|s| !holds_scope(&s, wanted, ignore_case)) {
            return Err(ConnectError::ScopeNotGranted {
                scope: wanted.to_owned(),
            });
        }
        Ok(json)
    }
}

fn open_pending(keys: &SealingKeys, pending: &PendingConnect) -> std::result::Result<Payload, ConnectError> {
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(pending.as_str())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ConnectError::Tampered)?;
    let json = open_text(keys, CONTEXT, &Secret::new(sealed)).map_err(|_| ConnectError::Tampered)?;
    serde_json::from_str(json.expose()).map_err(|_| ConnectError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_comparison_and_scopes() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(holds_scope(
            "a https://www.googleapis.com/auth/drive.file",
            "https://www.googleapis.com/auth/drive.file",
            false
        ));
        assert!(!holds_scope(
            "https://www.googleapis.com/auth/drive.readonly",
            "https://www.googleapis.com/auth/drive.file",
            false
        ));
        assert!(holds_scope(
            "https://graph.microsoft.com/files.readwrite User.Read",
            "Files.ReadWrite",
            true
        ));
        assert!(!holds_scope("User.Read", "Files.ReadWrite", true));
    }

    #[test]
    fn callbacks_parse_as_urls_or_queries() {
        let p = callback_params("https://app.example/cb?code=c1&state=s%201");
        assert_eq!((p["code"].as_str(), p["state"].as_str()), ("c1", "s 1"));
        let q = callback_params("?error=access_denied&state=x");
        assert_eq!(q["error"], "access_denied");
        assert_eq!(callback_params("code=c2")["code"], "c2");
    }

    #[test]
    fn a_pending_connect_is_used_once() {
        let used = UsedConnects::default();
        assert!(used.first_use("a", 100, 10));
        assert!(!used.first_use("a", 100, 20));
        // Expired entries are forgotten.
        assert!(used.first_use("a", 100, 101));
    }
}
