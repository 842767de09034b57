//! Starting an emulator, its endpoints, and the handle tests drive it with.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

pub use crate::endpoints::{
    Announcement, AppCredentials, Clients, Endpoints, GoogleEndpoints, MicrosoftEndpoints, OAuthEndpoints, Origins,
    ProviderOAuth,
};
use crate::faults::{FaultController, FaultRule, SignInRequired};
use crate::google::store::DriveStore;
use crate::grants::Grants;
pub use crate::info::{DriveFileInfo, GraphItemInfo};
use crate::journal::{Journal, JournalLog, Origin};
use crate::link::LinkProfile;
use crate::microsoft::store::GraphStore;
use crate::state::{Config, Shared};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not bind.
    #[error("failed to bind {address}:{port}")]
    Bind {
        /// The address asked for.
        address: IpAddr,
        /// The requested port (0 = ephemeral).
        port: u16,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The bound address did not make a URL.
    #[error("failed to build the endpoint urls")]
    Url(#[source] url::ParseError),
}

/// Entry point: [`Emulator::start`] or [`Emulator::builder`].
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Starts a strict emulator on ephemeral ports with default settings, serving on the
    /// current Tokio runtime.
    ///
    /// # Errors
    /// When a listener cannot bind.
    pub async fn start() -> Result<EmulatorHandle, StartError> {
        Self::builder().start().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Settings for a new emulator.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    lenient: bool,
    port: u16,
    content_port: u16,
    token_lifetime: Duration,
    upload_session_lifetime: Duration,
    google_app: AppCredentials,
    extra_google_apps: Vec<AppCredentials>,
    microsoft_app: AppCredentials,
    extra_microsoft_apps: Vec<AppCredentials>,
    any_client: bool,
    control: bool,
    bind: IpAddr,
    invalidate_rotated_refresh_tokens: bool,
    reject_auth_on_download_url: bool,
    drive_quota_bytes: Option<u64>,
    graph_quota_bytes: Option<u64>,
    max_page_size: Option<usize>,
    consent_page: bool,
    graph_session_conflict_default: String,
    log_requests: bool,
    download_url_lifetime: Duration,
    faults: Vec<FaultRule>,
    receive_buffer: Option<u32>,
    link: Option<LinkProfile>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            lenient: false,
            port: 0,
            content_port: 0,
            // Both providers issue access tokens for about an hour (`expires_in: 3599`):
            // https://developers.google.com/identity/protocols/oauth2 and
            // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
            token_lifetime: Duration::from_secs(3599),
            // One week: UNCONFIRMED for Drive; Street View Publish documents 7 days
            // (https://developers.google.com/streetview/publish/resumable-uploads).
            upload_session_lifetime: Duration::from_secs(7 * 24 * 3600),
            google_app: AppCredentials::new("emulator-google-client", "emulator-google-secret"),
            extra_google_apps: Vec::new(),
            microsoft_app: AppCredentials::new("emulator-microsoft-client", "emulator-microsoft-secret"),
            extra_microsoft_apps: Vec::new(),
            any_client: false,
            control: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            invalidate_rotated_refresh_tokens: false,
            reject_auth_on_download_url: false,
            drive_quota_bytes: Some(15 * 1024 * 1024 * 1024),
            graph_quota_bytes: Some(crate::microsoft::store::DRIVE_QUOTA),
            max_page_size: None,
            consent_page: false,
            // https://learn.microsoft.com/graph/api/driveitem-createuploadsession: the default
            // conflict behaviour of an upload session is `fail`.
            graph_session_conflict_default: "fail".to_owned(),
            log_requests: false,
            // "a short-lived URL … valid for 1 hour"
            // (https://learn.microsoft.com/graph/api/resources/driveitem).
            download_url_lifetime: Duration::from_secs(3600),
            faults: Vec::new(),
            receive_buffer: None,
            link: None,
        }
    }
}

impl EmulatorBuilder {
    /// Relaxes the upload rules (fragment and chunk sizes, `Authorization` on `uploadUrl`,
    /// `Content-Range` continuity) for probing clients that break them.
    #[must_use]
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// The API port (0 = ephemeral, the default).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The second port, for upload and download URLs (0 = ephemeral, the default).
    #[must_use]
    pub fn content_port(mut self, port: u16) -> Self {
        self.content_port = port;
        self
    }

    /// Lifetime of issued access tokens (default 3599 s).
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Lifetime of upload sessions (default one week).
    #[must_use]
    pub fn upload_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.upload_session_lifetime = lifetime;
        self
    }

    /// The Google OAuth client the token endpoint accepts.
    #[must_use]
    pub fn google_app(mut self, app: AppCredentials) -> Self {
        self.google_app = app;
        self
    }

    /// Another Google OAuth client the token endpoint accepts. A refresh token issued to one
    /// client and presented by another gets 401 `unauthorized_client`.
    #[must_use]
    pub fn extra_google_app(mut self, app: AppCredentials) -> Self {
        self.extra_google_apps.push(app);
        self
    }

    /// The Microsoft OAuth client the token endpoint accepts.
    #[must_use]
    pub fn microsoft_app(mut self, app: AppCredentials) -> Self {
        self.microsoft_app = app;
        self
    }

    /// Another Microsoft OAuth client the identity endpoints accept.
    #[must_use]
    pub fn extra_microsoft_app(mut self, app: AppCredentials) -> Self {
        self.extra_microsoft_apps.push(app);
        self
    }

    /// Accepts any client id that is not registered, with any secret, at the
    /// authorize and token endpoints of both providers (default: off). A
    /// registered client still needs its own secret. For probing a client
    /// whose id is fixed.
    #[must_use]
    pub fn accept_any_client(mut self, any: bool) -> Self {
        self.any_client = any;
        self
    }

    /// Serves the control API under `/__emulator/` on the API origin
    /// (default: off; the binary turns it on). It answers only loopback peers;
    /// the crate README lists its verbs.
    #[must_use]
    pub fn control_api(mut self, on: bool) -> Self {
        self.control = on;
        self
    }

    /// The address both listeners bind (default `127.0.0.1`). The URLs the
    /// emulator hands out still name `127.0.0.1`; another address lets other
    /// machines or containers reach the API, never the control API.
    #[must_use]
    pub fn bind_address(mut self, address: IpAddr) -> Self {
        self.bind = address;
        self
    }

    /// Makes a Microsoft refresh token stop working once it was rotated (default: it keeps
    /// working, as Microsoft documents that redeeming one does not revoke it).
    #[must_use]
    pub fn invalidate_rotated_refresh_tokens(mut self, invalidate: bool) -> Self {
        self.invalidate_rotated_refresh_tokens = invalidate;
        self
    }

    /// Answers 401 when a Graph download URL receives an `Authorization` header (off by
    /// default: what the real download host does is not documented).
    #[must_use]
    pub fn reject_auth_on_download_url(mut self, reject: bool) -> Self {
        self.reject_auth_on_download_url = reject;
        self
    }

    /// Drive's storage quota in bytes (default 15 GiB), reported by `about.get` and enforced
    /// on uploads.
    #[must_use]
    pub fn drive_quota_bytes(mut self, bytes: u64) -> Self {
        self.drive_quota_bytes = Some(bytes);
        self
    }

    /// Shows a consent page at the authorize endpoints, for a browser: an account
    /// chooser, a checkbox per scope (Google), "Allow" and "Cancel" (which gives
    /// `error=access_denied`). Off by default: the endpoints then answer at once,
    /// as [`EmulatorHandle::set_consent`] says, for tests without a browser.
    #[must_use]
    pub fn consent_page(mut self, show: bool) -> Self {
        self.consent_page = show;
        self
    }

    /// Drive storage without a limit: `about.get` leaves `storageQuota.limit` out, as
    /// Drive does "if the user has unlimited storage"
    /// (<https://developers.google.com/drive/api/reference/rest/v3/about>), and uploads
    /// are never refused for space.
    #[must_use]
    pub fn drive_quota_unlimited(mut self) -> Self {
        self.drive_quota_bytes = None;
        self
    }

    /// The Graph drive's `quota.total` in bytes (default 1 TiB), enforced on upload
    /// sessions; `None` leaves the `quota` facet out of the drive resource, which
    /// Graph documents as optional
    /// (<https://learn.microsoft.com/graph/api/resources/drive>), and enforces nothing.
    #[must_use]
    pub fn graph_quota_bytes(mut self, bytes: Option<u64>) -> Self {
        self.graph_quota_bytes = bytes;
        self
    }

    /// The most items one listing page holds, whatever the client asks for: Drive
    /// warns that "partial or empty result pages are possible even before the end
    /// of the files list has been reached"
    /// (<https://developers.google.com/drive/api/reference/rest/v3/files/list>), and
    /// Graph may return fewer items than `$top` (<https://learn.microsoft.com/graph/paging>).
    /// Small values make every listing of a client page.
    #[must_use]
    pub fn max_page_size(mut self, items: usize) -> Self {
        self.max_page_size = Some(items.max(1));
        self
    }

    /// Default `@microsoft.graph.conflictBehavior` of Graph upload sessions
    /// (`fail`, `replace` or `rename`; default `fail`).
    #[must_use]
    pub fn graph_session_conflict_default(mut self, behavior: &str) -> Self {
        self.graph_session_conflict_default = behavior.to_owned();
        self
    }

    /// Writes one line per request (method, path, status) to stderr (default off; the binary
    /// turns it on).
    #[must_use]
    pub fn log_requests(mut self, log: bool) -> Self {
        self.log_requests = log;
        self
    }

    /// Lifetime of Graph pre-authenticated download URLs (default one hour); an expired one
    /// gets 401.
    #[must_use]
    pub fn download_url_lifetime(mut self, lifetime: Duration) -> Self {
        self.download_url_lifetime = lifetime;
        self
    }

    /// The kernel receive buffer of every accepted connection (`SO_RCVBUF`,
    /// socket(7)); by default the system sizes it. A small one (64 KiB) makes
    /// a loopback connection hold as little in flight as a slow link does,
    /// whose bandwidth-delay product is small: with
    /// [`FaultAction::DripRequestBody`](crate::FaultAction::DripRequestBody),
    /// the client then sees its writes wait as the body drips, rather than
    /// handing megabytes to buffers on both ends at once.
    #[must_use]
    pub fn receive_buffer(mut self, bytes: u32) -> Self {
        self.receive_buffer = Some(bytes);
        self
    }

    /// Puts an emulated network link between clients and the emulator:
    /// latency, connection setup and bandwidth ([`LinkProfile`]). The control
    /// API's `PUT /__emulator/link` and [`EmulatorHandle::set_link`] change it
    /// later, for connections opened after the change.
    #[must_use]
    pub fn link(mut self, profile: LinkProfile) -> Self {
        self.link = Some(profile);
        self
    }

    /// A fault rule installed before the first request.
    #[must_use]
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    /// Binds both listeners and starts serving on the current Tokio runtime.
    ///
    /// # Errors
    /// When a listener cannot bind.
    pub async fn start(self) -> Result<EmulatorHandle, StartError> {
        let api = bind(self.bind, self.port, self.receive_buffer)?;
        let content = bind(self.bind, self.content_port, self.receive_buffer)?;
        let api_port = local_port(&api, self.bind, self.port)?;
        let content_port = local_port(&content, self.bind, self.content_port)?;
        let base = Url::parse(&format!("http://127.0.0.1:{api_port}/")).map_err(StartError::Url)?;
        let content_base = Url::parse(&format!("http://127.0.0.1:{content_port}/")).map_err(StartError::Url)?;
        let endpoints = Endpoints::for_base(&base).map_err(StartError::Url)?;
        let chrono_secs = |d: Duration| chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(365));
        let faults = FaultController::default();
        for rule in self.faults {
            faults.add(rule);
        }
        let shared = Arc::new(Shared {
            config: Config {
                lenient: self.lenient,
                token_lifetime: chrono_secs(self.token_lifetime),
                google_app: self.google_app,
                extra_google_apps: self.extra_google_apps,
                microsoft_app: self.microsoft_app,
                extra_microsoft_apps: self.extra_microsoft_apps,
                any_client: self.any_client,
                control: self.control,
                download_url_lifetime: chrono_secs(self.download_url_lifetime),
                upload_session_lifetime: chrono_secs(self.upload_session_lifetime),
                invalidate_rotated_refresh_tokens: self.invalidate_rotated_refresh_tokens,
                reject_auth_on_download_url: self.reject_auth_on_download_url,
                drive_quota_bytes: self.drive_quota_bytes,
                graph_quota_bytes: self.graph_quota_bytes,
                max_page_size: self.max_page_size,
                consent_page: self.consent_page,
                graph_session_conflict_default: self.graph_session_conflict_default,
                log_requests: self.log_requests,
            },
            endpoints: endpoints.clone(),
            content_base: content_base.clone(),
            drive: Mutex::new(DriveStore::new()),
            graph: Mutex::new(GraphStore::new(chrono_secs(self.download_url_lifetime))),
            grants: Mutex::new(Grants::default()),
            consent: parking_lot::Mutex::new(crate::consent::Consent::default()),
            faults: faults.clone(),
            journal: JournalLog::default(),
            next_connection: AtomicU64::new(0),
            link: crate::link::Link::default(),
        });
        shared.link.set(self.link);
        let (stop, stopped) = watch::channel(false);
        let api_router = crate::routes::api_router(Arc::clone(&shared));
        let content_router = crate::routes::content_router(Arc::clone(&shared));
        let tasks = vec![
            tokio::spawn(crate::server::serve(
                api,
                api_router,
                Arc::clone(&shared),
                Origin::Api,
                stopped.clone(),
            )),
            tokio::spawn(crate::server::serve(
                content,
                content_router,
                Arc::clone(&shared),
                Origin::Content,
                stopped,
            )),
        ];
        Ok(EmulatorHandle {
            shared,
            endpoints,
            content_base,
            faults,
            stop,
            tasks,
        })
    }
}

/// A listener on 127.0.0.1:`port`; a receive buffer set on it is inherited by
/// the connections it accepts, and set before `listen` so that the window the
/// handshake announces already reflects it (tcp(7), `SO_RCVBUF`).
fn bind(address: IpAddr, port: u16, receive_buffer: Option<u32>) -> Result<TcpListener, StartError> {
    let fail = |source| StartError::Bind { address, port, source };
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).map_err(fail)?;
    }
    socket.bind(std::net::SocketAddr::new(address, port)).map_err(fail)?;
    socket.listen(1024).map_err(fail)
}

fn local_port(listener: &TcpListener, address: IpAddr, port: u16) -> Result<u16, StartError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| StartError::Bind { address, port, source })
}

/// A running emulator. Dropping it without [`EmulatorHandle::shutdown`] stops accepting
/// connections as well.
#[derive(Debug)]
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    endpoints: Endpoints,
    content_base: Url,
    faults: FaultController,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The endpoint URLs.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Everything a client in another language needs: what the binary prints.
    pub fn announcement(&self) -> Announcement {
        self.shared.announcement()
    }

    /// Base URL of the second listener (upload sessions, download URLs).
    pub fn content_base(&self) -> &Url {
        &self.content_base
    }

    /// The Google client the token endpoint accepts.
    pub fn google_app(&self) -> &AppCredentials {
        &self.shared.config.google_app
    }

    /// The Microsoft client the token endpoint accepts.
    pub fn microsoft_app(&self) -> &AppCredentials {
        &self.shared.config.microsoft_app
    }

    /// Issues a fresh Google grant and returns its credential JSON:
    /// `{"provider":"gdrive","access_token","refresh_token","expiry","token_uri","client_id","client_secret"}`.
    pub fn google_grant(&self) -> Value {
        self.shared.google_grant()
    }

    /// Issues a fresh Microsoft grant and returns its credential JSON:
    /// `{"provider":"onedrive","access_token","refresh_token","expires_at"}`.
    pub fn microsoft_grant(&self) -> Value {
        self.shared.microsoft_grant()
    }

    /// Makes every issued access token expired; the next API call with one gets 401.
    pub fn expire_access_tokens(&self) {
        self.shared.grants.lock().expire_all();
    }

    /// Makes one access token expired; returns whether the emulator issued it.
    pub fn expire_access_token(&self, token: &str) -> bool {
        self.shared.grants.lock().expire_one(token)
    }

    /// What the user answers on every consent screen from now on: allow (the
    /// default), cancel, untick scopes, or allow without a refresh token.
    pub fn set_consent(&self, consent: crate::consent::Consent) {
        *self.shared.consent.lock() = consent;
    }

    /// Revokes every grant: refresh gets `invalid_grant`, API calls get 401.
    pub fn revoke_grants(&self) {
        self.shared.grants.lock().revoke_all();
    }

    /// Makes Microsoft's token endpoint refuse every refresh of the grant behind
    /// `token` (its access or refresh token) because the user must sign in
    /// again: 400 with the `error` and AADSTS code of `why`
    /// (`interaction_required` AADSTS50076 for multi-factor authentication, …).
    /// Access tokens already issued keep working until they expire. Returns
    /// whether such a Microsoft grant exists.
    pub fn require_sign_in(&self, token: &str, why: SignInRequired) -> bool {
        self.shared.grants.lock().require_sign_in(Some(token), why) > 0
    }

    /// [`require_sign_in`](Self::require_sign_in) for every Microsoft grant.
    pub fn require_sign_in_everywhere(&self, why: SignInRequired) {
        self.shared.grants.lock().require_sign_in(None, why);
    }

    /// Revokes the grant behind one refresh or access token; returns whether one was found.
    pub fn revoke_grant(&self, token: &str) -> bool {
        self.shared.grants.lock().revoke_by_token(token)
    }

    /// Sets (or with `None` removes) the emulated link for connections
    /// opened from now on; open connections keep theirs.
    pub fn set_link(&self, profile: Option<LinkProfile>) {
        self.shared.link.set(profile);
    }

    /// The emulated link in force, if any.
    pub fn link(&self) -> Option<LinkProfile> {
        self.shared.link.profile()
    }

    /// The fault controller (clones share the rules).
    pub fn faults(&self) -> FaultController {
        self.faults.clone()
    }

    /// A snapshot of the request journal.
    pub fn journal(&self) -> Journal {
        self.shared.journal.snapshot()
    }

    /// Forgets every recorded request.
    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// TCP connections accepted so far on both listeners.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.next_connection.load(Ordering::SeqCst)
    }

    /// Every Drive file, folders included, in creation order.
    pub fn drive_files(&self) -> Vec<DriveFileInfo> {
        self.shared.drive.lock().infos()
    }

    /// The ids of the folders above a Drive file, nearest first, the root's id last;
    /// empty for an unknown id.
    pub fn drive_ancestors(&self, id: &str) -> Vec<String> {
        let drive = self.shared.drive.lock();
        let mut out = Vec::new();
        let mut current = drive.get(id).and_then(|f| f.parents.first().cloned());
        while let Some(parent) = current {
            if out.contains(&parent) {
                break;
            }
            current = drive.get(&parent).and_then(|f| f.parents.first().cloned());
            out.push(parent);
        }
        out
    }

    /// The content of a Drive file.
    pub fn drive_file_content(&self, id: &str) -> Option<Bytes> {
        self.shared.drive.lock().content(id)
    }

    /// Adds a file "created by the user outside the app" to the folder `parent`, as if
    /// dropped there through Drive's web page. Under the `drive.file` scope the app cannot
    /// see it: it is absent from `files.list`, and `files.get`, `files.update` and
    /// `files.delete` of its id answer 404; but a `files.delete` of the folder destroys
    /// it, and trashing the folder trashes it. `None` when `parent` is not a folder.
    pub fn drive_add_user_file(&self, parent: &str, name: &str, content: impl Into<Bytes>) -> Option<String> {
        self.shared.drive.lock().add_user_file(parent, name, content.into())
    }

    /// Number of Drive resumable sessions not yet completed.
    pub fn drive_open_sessions(&self) -> usize {
        self.shared.drive.lock().open_sessions()
    }

    /// Every Graph item below the root (the root excluded).
    pub fn graph_items(&self) -> Vec<GraphItemInfo> {
        self.shared.graph.lock().infos()
    }

    /// The Graph item at a path such as `/dir/file.txt` (case-insensitive).
    pub fn graph_item_by_path(&self, path: &str) -> Option<GraphItemInfo> {
        self.shared.graph.lock().info_by_path(path)
    }

    /// The ids of the folders above a Graph item, nearest first, the root's id last;
    /// empty for an unknown id.
    pub fn graph_ancestors(&self, id: &str) -> Vec<String> {
        let graph = self.shared.graph.lock();
        let mut out = Vec::new();
        let mut current = graph.get(id).and_then(|i| i.parent.clone());
        while let Some(parent) = current {
            if out.contains(&parent) {
                break;
            }
            current = graph.get(&parent).and_then(|i| i.parent.clone());
            out.push(parent);
        }
        out
    }

    /// The content of a Graph item.
    pub fn graph_item_content(&self, id: &str) -> Option<Bytes> {
        self.shared.graph.lock().content(id)
    }

    /// Number of Graph upload sessions not yet completed or cancelled.
    pub fn graph_open_sessions(&self) -> usize {
        self.shared.graph.lock().open_sessions()
    }

    /// Stops accepting connections, closes open ones and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
