//! The reference web backend: the way we tell users to write theirs.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /connect/{provider}` | redirects to the provider's consent (`gdrive`, `onedrive`) |
//! | `GET /callback/{provider}` | finishes the connect; back to the frontend with `?connected=…` or `?error=…` |
//! | `GET /` | the page: connections, upload, the user's documents, account deletion |
//! | `GET /documents?provider=P` | the user's documents in that drive (the first 100) |
//! | `POST /documents?provider=P` | a multipart form (`size`, then `file`), the file streamed into the user's drive |
//! | `GET /documents/{key}?provider=P` | streams the document back |
//! | `DELETE /documents/{key}?provider=P` | deletes it |
//! | `GET /connections` | each provider's status, with a reconnect link where re-auth is needed |
//! | `DELETE /account` | disconnects every provider, purging the user's documents first |
//!
//! The user's session is a signed cookie (HMAC-SHA256) holding a user id; the
//! pending connect lives in a cookie of its own, sealed by the factory.
//! Connections are `{user}-{provider}` rows in the application's store.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::StreamExt as _;
use hmac::{KeyInit as _, Mac as _};
use serde::Deserialize;
use storage_factory::storage_core::{ObjectKey, ObjectName, PageRequest, Secret, StorageError};
use storage_factory::{
    ConnectError, ConnectOptions, ConnectionStatus, CredentialStore, PendingConnect, Purge, StorageFactory,
};
use url::Url;

/// The providers a user can connect.
const PROVIDERS: [&str; 2] = ["gdrive", "onedrive"];
/// The session cookie.
const SESSION: &str = "session";

/// What the server needs.
#[derive(Clone)]
pub struct App {
    /// Opens connections and runs the connect flow (with `connect_keys`).
    pub factory: Arc<StorageFactory>,
    /// Where connections live (a `SealedStore` over PostgreSQL or files).
    pub store: Arc<dyn CredentialStore>,
    /// Signs the session cookie.
    pub session_key: Arc<[u8; 32]>,
    /// This server's own base URL, for the callback.
    pub base: Url,
    /// Where the user goes after a connect.
    pub frontend: Url,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("base", &self.base).finish_non_exhaustive()
    }
}

/// The routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/connect/{provider}", get(connect))
        .route("/callback/{provider}", get(callback))
        .route("/documents", post(upload).get(list))
        .route("/documents/{key}", get(download).delete(remove))
        .route("/connections", get(connections))
        .route("/account", delete(delete_account))
        .with_state(app)
}

/// An error page: a status and one line.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        let status = match &e {
            StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
            StorageError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            StorageError::CloudConnection { .. } => StatusCode::CONFLICT,
            StorageError::QuotaExceeded | StorageError::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
            StorageError::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self(status, e.to_string())
    }
}

type Reply = Result<Response, Failure>;

fn mac(key: &[u8; 32], user: &str) -> String {
    let mut m = hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(user.as_bytes());
    base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        m.finalize().into_bytes(),
    )
}

/// The cookie `name` of a request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in user, from a session cookie whose signature holds.
fn user_of(app: &App, headers: &HeaderMap) -> Option<String> {
    let (user, sig) = cookie(headers, SESSION)?.split_once('.')?;
    let want = mac(&app.session_key, user);
    // Constant time: the comparison of the MAC.
    let same = want.len() == sig.len() && want.bytes().zip(sig.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    same.then(|| user.to_owned())
}

/// A cookie the page's scripts cannot read, sent back on the provider's
/// redirect to the callback (`SameSite=Lax`), and only over https when the
/// server is served over https.
fn set_cookie(app: &App, name: &str, value: &str) -> (header::HeaderName, HeaderValue) {
    let secure = if app.base.scheme() == "https" { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400{secure}");
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("")),
    )
}

fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn provider_of(name: &str) -> Result<&'static str, Failure> {
    PROVIDERS
        .into_iter()
        .find(|p| *p == name)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "unknown provider".into()))
}

fn connection_id(user: &str, provider: &str) -> String {
    format!("{user}-{provider}")
}

/// `GET /`: the frontend, one page. It reads `?connected=` and `?error=` from
/// the callback's redirect, lists each connected drive's documents (which is
/// also what finds a revoked grant), then shows each connection's status.
async fn home() -> Response {
    axum::response::Html(include_str!("home.html")).into_response()
}

/// `GET /connect/{provider}`.
async fn connect(State(app): State<App>, Path(provider): Path<String>, headers: HeaderMap) -> Reply {
    let provider = provider_of(&provider)?;
    let user = match user_of(&app, &headers) {
        Some(u) => u,
        None => new_id()?,
    };
    let callback = app
        .base
        .join(&format!("callback/{provider}"))
        .map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "bad base url".into()))?;
    let begun = app
        .factory
        .begin_connect(provider, callback.as_str(), &ConnectOptions::default())?;
    let mut resp = redirect(begun.authorize_url.as_str());
    let session = format!("{user}.{}", mac(&app.session_key, &user));
    for (k, v) in [
        set_cookie(&app, SESSION, &session),
        set_cookie(&app, &format!("pending_{provider}"), begun.pending.as_str()),
    ] {
        resp.headers_mut().append(k, v);
    }
    Ok(resp)
}

/// An id no one else has (a user, a document): 12 random bytes, base64url, which
/// holds no `.` (the session cookie's separator) and passes the name rules.
fn new_id() -> Result<String, Failure> {
    Ok(format!("d{}", storage_factory::storage_core::oauth::random_token(12)?))
}

/// `GET /callback/{provider}`.
async fn callback(
    State(app): State<App>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Reply {
    let provider = provider_of(&provider)?;
    let mut back = app.frontend.clone();
    let outcome = match (
        user_of(&app, &headers),
        cookie(&headers, &format!("pending_{provider}")),
    ) {
        (Some(user), Some(pending)) => app
            .factory
            .finish_connect(
                &PendingConnect::from_sealed(pending),
                uri.query().unwrap_or_default(),
                app.store.clone(),
                &connection_id(&user, provider),
            )
            .await
            .map(drop),
        _ => Err(ConnectError::StateMismatch),
    };
    match outcome {
        Ok(()) => back.query_pairs_mut().append_pair("connected", provider),
        Err(e) => back.query_pairs_mut().append_pair("error", &error_code(&e)),
    };
    let mut resp = redirect(back.as_str());
    let (k, v) = set_cookie(&app, &format!("pending_{provider}"), "gone");
    resp.headers_mut().append(k, v);
    Ok(resp)
}

/// A short code for the frontend, never a secret.
fn error_code(e: &ConnectError) -> String {
    match e {
        ConnectError::AccessDenied => "access_denied".into(),
        ConnectError::Expired => "expired".into(),
        ConnectError::StateMismatch | ConnectError::Tampered | ConnectError::Replayed => "invalid_request".into(),
        ConnectError::MissingRefreshToken => "no_refresh_token".into(),
        ConnectError::ScopeNotGranted { .. } => "scope_not_granted".into(),
        _ => "connect_failed".into(),
    }
}

#[derive(Deserialize)]
struct Which {
    provider: String,
}

fn signed_in(app: &App, headers: &HeaderMap) -> Result<String, Failure> {
    user_of(app, headers).ok_or_else(|| Failure(StatusCode::UNAUTHORIZED, "sign in first".into()))
}

async fn backend(
    app: &App,
    user: &str,
    provider: &str,
) -> Result<Arc<dyn storage_factory::storage_core::StorageBackend>, Failure> {
    Ok(app
        .factory
        .connect(&connection_id(user, provider), app.store.clone())
        .await?)
}

/// `POST /documents?provider=P`: a `multipart/form-data` form of two parts, in
/// this order: `size`, the file's length in bytes, then `file`. The file part
/// streams into the drive as it arrives, never spooled: a multipart part
/// carries no length of its own, and a resumable upload needs it before the
/// first byte, so the form states it first (a browser's `FormData` keeps the
/// order it was built in). A part that is longer or shorter than `size` fails
/// the upload, and the drive keeps nothing of it.
async fn upload(State(app): State<App>, Query(q): Query<Which>, headers: HeaderMap, body: Body) -> Reply {
    let body = SharedBody(Arc::new(std::sync::Mutex::new(body.into_data_stream())));
    let reply = store_form(app, q, headers, body.clone()).await;
    if reply.is_err() {
        body.drain().await;
    }
    reply
}

/// The most of a refused form's body that is read (and dropped) before the
/// error goes out.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// A request body that the handler can still drain after a refusal: an HTTP/1.1
/// server that answers before the body is read closes the connection, and a
/// client still sending then sees a reset instead of the answer.
#[derive(Clone)]
struct SharedBody(Arc<std::sync::Mutex<axum::body::BodyDataStream>>);

impl futures::Stream for SharedBody {
    type Item = Result<axum::body::Bytes, axum::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.0.lock() {
            Ok(mut inner) => inner.poll_next_unpin(cx),
            Err(_) => std::task::Poll::Ready(None),
        }
    }
}

impl SharedBody {
    /// Reads what is left, up to [`DRAIN_LIMIT`] bytes and for at most 10 s.
    async fn drain(mut self) {
        let read = async {
            let mut seen = 0;
            while let Some(Ok(chunk)) = self.next().await {
                seen += chunk.len();
                if seen > DRAIN_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
    }
}

/// The body of [`upload`].
async fn store_form(app: App, q: Which, headers: HeaderMap, body: SharedBody) -> Reply {
    let user = signed_in(&app, &headers)?;
    let provider = provider_of(&q.provider)?;
    let bad = |what: &str| Failure(StatusCode::BAD_REQUEST, what.to_owned());
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| bad("send a multipart/form-data form"))?;
    let limits = multer::Constraints::new()
        .allowed_fields(vec!["size", "file"])
        .size_limit(multer::SizeLimit::new().for_field("size", 20));
    let mut form = multer::Multipart::with_constraints(body, boundary, limits);
    let mut size = None;
    while let Some(part) = form.next_field().await.map_err(|_| bad("a malformed form"))? {
        if part.name() == Some("size") {
            let text = part.text().await.map_err(|_| bad("a malformed size"))?;
            size = Some(text.trim().parse::<u64>().map_err(|_| bad("size is not a number"))?);
            continue;
        }
        let size = size.ok_or_else(|| bad("the size part must come before the file"))?;
        let ext = part
            .file_name()
            .and_then(|f| f.rsplit_once('.'))
            .map(|(_, e)| format!(".{e}"))
            .filter(|e| e.len() <= 17 && e[1..].bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_default();
        let name = ObjectName::new(&user, &new_id()?, &ext)?;
        let content_type = part
            .content_type()
            .map_or_else(|| "application/octet-stream".to_owned(), ToString::to_string);
        let stream = part.map(|r| r.map_err(|e| StorageError::transport("the upload was cut", e)));
        let key = backend(&app, &user, provider)
            .await?
            .put_stream(&name, Box::pin(stream), size, &content_type)
            .await?;
        return Ok(axum::Json(serde_json::json!({"key": key.as_str(), "provider": provider})).into_response());
    }
    Err(bad("the form has no file part"))
}

/// `GET /documents?provider=P`: `[{"key", "file", "size"}]`, the first page.
async fn list(State(app): State<App>, Query(q): Query<Which>, headers: HeaderMap) -> Reply {
    let user = signed_in(&app, &headers)?;
    let provider = provider_of(&q.provider)?;
    let page = backend(&app, &user, provider)
        .await?
        .list_user(&user, &PageRequest::default())
        .await?;
    let docs: Vec<_> = page
        .items
        .iter()
        .map(|o| serde_json::json!({"key": o.key.as_str(), "file": o.name.file_name(), "size": o.size}))
        .collect();
    Ok(axum::Json(docs).into_response())
}

/// `GET /documents/{key}?provider=P`.
async fn download(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<Which>,
    headers: HeaderMap,
) -> Reply {
    let user = signed_in(&app, &headers)?;
    let provider = provider_of(&q.provider)?;
    let stream = backend(&app, &user, provider)
        .await?
        .get_stream(&ObjectKey::new(key))
        .await?;
    Ok(Body::from_stream(stream).into_response())
}

/// `DELETE /documents/{key}?provider=P`.
async fn remove(State(app): State<App>, Path(key): Path<String>, Query(q): Query<Which>, headers: HeaderMap) -> Reply {
    let user = signed_in(&app, &headers)?;
    let provider = provider_of(&q.provider)?;
    backend(&app, &user, provider)
        .await?
        .delete_object(&ObjectKey::new(key))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /connections`: `[{"provider", "status", "reconnect"}]`.
async fn connections(State(app): State<App>, headers: HeaderMap) -> Reply {
    let user = signed_in(&app, &headers)?;
    let mut out = Vec::new();
    for provider in PROVIDERS {
        let status = match app.store.load(&connection_id(&user, provider)).await {
            Ok(s) if s.status == ConnectionStatus::RequiresReauth => "requires_reauth",
            Ok(_) => "active",
            Err(StorageError::NotFound { .. }) => "not_connected",
            Err(e) => return Err(e.into()),
        };
        out.push(serde_json::json!({
            "provider": provider,
            "status": status,
            "reconnect": (status != "active").then(|| format!("/connect/{provider}")),
        }));
    }
    Ok(axum::Json(out).into_response())
}

/// `DELETE /account`: every connection disconnected, the user's documents purged first.
async fn delete_account(State(app): State<App>, headers: HeaderMap) -> Reply {
    let user = signed_in(&app, &headers)?;
    let mut report = Vec::new();
    for provider in PROVIDERS {
        let id = connection_id(&user, provider);
        if matches!(app.store.load(&id).await, Err(StorageError::NotFound { .. })) {
            continue;
        }
        let done = app
            .factory
            .disconnect(&id, app.store.clone(), Purge::objects(&user))
            .await?;
        report.push(serde_json::json!({"provider": provider, "purged": done.purged.map(|p| p.objects)}));
    }
    Ok(axum::Json(report).into_response())
}

/// A session cookie for `user`, signed with `key`: what a test or a second
/// service needs to act as that user.
#[must_use]
pub fn session_cookie(key: &[u8; 32], user: &str) -> String {
    format!("{SESSION}={user}.{}", mac(key, user))
}

/// Whether `json` is sealed, for a caller that checks its store holds no plaintext.
#[must_use]
pub fn is_sealed(json: &str) -> bool {
    storage_factory::is_sealed(&Secret::new(json))
}
