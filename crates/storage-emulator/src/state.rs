//! The state one emulator instance shares between its listeners and handlers.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use url::Url;

use crate::endpoints::{AppCredentials, Endpoints};
use crate::faults::FaultController;
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

impl Config {
    /// The Google client with this id, if the emulator knows it.
    pub(crate) fn google_client(&self, client_id: &str) -> Option<&AppCredentials> {
        std::iter::once(&self.google_app)
            .chain(&self.extra_google_apps)
            .find(|a| a.client_id == client_id)
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
}
