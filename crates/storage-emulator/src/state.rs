//! The state one emulator instance shares between its listeners and handlers.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use serde_json::{Value, json};
use url::Url;

use crate::endpoints::{Announcement, AppCredentials, Clients, Endpoints, OAuthEndpoints, Origins, ProviderOAuth};
use crate::faults::{FaultController, Provider};
use crate::google::store::DriveStore;
use crate::grants::Grants;
use crate::journal::JournalLog;
use crate::microsoft::store::GraphStore;

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub lenient: bool,
    pub token_lifetime: chrono::Duration,
    pub google_app: AppCredentials,
    /// Further Google clients the token endpoint accepts (for `unauthorized_client` tests).
    pub extra_google_apps: Vec<AppCredentials>,
    pub microsoft_app: AppCredentials,
    /// Further Microsoft clients the identity endpoints accept.
    pub extra_microsoft_apps: Vec<AppCredentials>,
    /// Accept any client id (and any secret) that is not registered, for probing.
    pub any_client: bool,
    /// Whether the control API answers under [`crate::control::PREFIX`].
    pub control: bool,
    /// How long a Graph download URL works.
    pub download_url_lifetime: chrono::Duration,
    pub upload_session_lifetime: chrono::Duration,
    pub invalidate_rotated_refresh_tokens: bool,
    pub reject_auth_on_download_url: bool,
    /// `None`: unlimited.
    pub drive_quota_bytes: Option<u64>,
    /// `None`: no quota facet, nothing enforced.
    pub graph_quota_bytes: Option<u64>,
    /// Whether the authorize endpoints show a consent page instead of answering at once.
    pub consent_page: bool,
    /// The most items a listing page holds, whatever was asked.
    pub max_page_size: Option<usize>,
    pub graph_session_conflict_default: String,
    pub log_requests: bool,
}

/// How a client id and secret fare at a token or authorize endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientCheck {
    /// No such client is registered.
    Unknown,
    /// The client is registered, with another secret.
    WrongSecret,
    /// A registered client with its secret, or any client when any is accepted.
    Accepted,
}

impl Config {
    /// The Google clients the emulator accepts, the primary one first.
    pub(crate) fn google_clients(&self) -> Vec<AppCredentials> {
        std::iter::once(&self.google_app)
            .chain(&self.extra_google_apps)
            .cloned()
            .collect()
    }

    /// The Microsoft clients the emulator accepts, the primary one first.
    pub(crate) fn microsoft_clients(&self) -> Vec<AppCredentials> {
        std::iter::once(&self.microsoft_app)
            .chain(&self.extra_microsoft_apps)
            .cloned()
            .collect()
    }

    /// Checks a Google client; `secret` is `None` at the authorize endpoint,
    /// which sees only the id.
    pub(crate) fn check_google(&self, client_id: &str, secret: Option<&str>) -> ClientCheck {
        let known = std::iter::once(&self.google_app).chain(&self.extra_google_apps);
        check(known, self.any_client, client_id, secret)
    }

    /// Checks a Microsoft client, as [`Config::check_google`] does.
    pub(crate) fn check_microsoft(&self, client_id: &str, secret: Option<&str>) -> ClientCheck {
        let known = std::iter::once(&self.microsoft_app).chain(&self.extra_microsoft_apps);
        check(known, self.any_client, client_id, secret)
    }
}

fn check<'a>(
    mut known: impl Iterator<Item = &'a AppCredentials>,
    any: bool,
    client_id: &str,
    secret: Option<&str>,
) -> ClientCheck {
    match known.find(|a| a.client_id == client_id) {
        // A registered client keeps its secret even when any other is accepted.
        Some(app) => match secret {
            Some(s) if s != app.client_secret => ClientCheck::WrongSecret,
            _ => ClientCheck::Accepted,
        },
        None if any => ClientCheck::Accepted,
        None => ClientCheck::Unknown,
    }
}

/// Everything a request handler can reach.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub endpoints: Endpoints,
    /// Base URL of the second listener (`http://127.0.0.1:Q/`).
    pub content_base: Url,
    pub drive: Mutex<DriveStore>,
    pub graph: Mutex<GraphStore>,
    pub grants: Mutex<Grants>,
    /// What the user answers on the next consent screens.
    pub consent: Mutex<crate::consent::Consent>,
    pub faults: FaultController,
    pub journal: JournalLog,
    pub next_connection: AtomicU64,
    /// The emulated network link, if any.
    pub link: crate::link::Link,
}

impl Shared {
    /// A URL on the second listener.
    pub(crate) fn content_url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.content_base.as_str(),
            path_and_query.trim_start_matches('/')
        )
    }

    /// Issues a Google grant to the primary client; its credential JSON.
    pub(crate) fn google_grant(&self) -> Value {
        let app = &self.config.google_app;
        let issued = self.grants.lock().issue(
            Provider::Google,
            &app.client_id,
            "https://www.googleapis.com/auth/drive.file",
            true,
            self.config.token_lifetime,
        );
        json!({
            "provider": "gdrive",
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expiry": issued.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "token_uri": self.endpoints.google.token.as_str(),
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        })
    }

    /// Issues a Microsoft grant to the primary client; its credential JSON.
    pub(crate) fn microsoft_grant(&self) -> Value {
        let app = &self.config.microsoft_app;
        let issued = self.grants.lock().issue(
            Provider::Microsoft,
            &app.client_id,
            "Files.ReadWrite offline_access",
            true,
            self.config.token_lifetime,
        );
        json!({
            "provider": "onedrive",
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_at": issued.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// The announcement: endpoints, origins, clients and the control URL.
    pub(crate) fn announcement(&self) -> Announcement {
        let e = &self.endpoints;
        let api = e.google.root.clone();
        Announcement {
            endpoints: e.clone(),
            origins: Origins {
                api: api.clone(),
                content: self.content_base.clone(),
            },
            oauth: OAuthEndpoints {
                google: ProviderOAuth {
                    authorize: e.google.authorize.clone(),
                    token: e.google.token.clone(),
                    revoke: Some(e.google.revoke.clone()),
                },
                microsoft: ProviderOAuth {
                    authorize: e.microsoft.authorize("common"),
                    token: e.microsoft.token("common"),
                    revoke: None,
                },
            },
            clients: Clients {
                google: self.config.google_clients(),
                microsoft: self.config.microsoft_clients(),
                any_client: self.config.any_client,
            },
            control: self
                .config
                .control
                .then(|| api.join(crate::control::PREFIX.trim_start_matches('/')).ok())
                .flatten(),
        }
    }

    /// Forgets every Drive file and Graph item, and every upload session.
    pub(crate) fn reset_drives(&self) {
        *self.drive.lock() = DriveStore::new();
        *self.graph.lock() = GraphStore::new(self.config.download_url_lifetime);
    }
}
