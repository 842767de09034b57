//! The control API: the Rust handle's powers over HTTP, for tests in any
//! language. It lives on the API origin under [`PREFIX`], outside the request
//! pipeline (its calls are neither journaled nor faulted), and answers only
//! loopback peers that name a loopback host.
//!
//! Every answer is JSON; errors are `{"error":{"code","message"}}`. The
//! verbs are listed in [`VERBS`] and in the crate README.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::consent::Consent;
use crate::faults::{FaultRule, RuleId, SignInRequired};
use crate::journal::JournalEntry;
use crate::server::ConnInfo;
use crate::state::Shared;

/// Where the control API lives on the API origin.
pub(crate) const PREFIX: &str = "/__emulator/";

/// Every verb: method, path under [`PREFIX`], what it does.
pub(crate) const VERBS: &[(&str, &str, &str)] = &[
    ("GET", "", "this list, and the announcement"),
    ("GET", "announcement", "the endpoints, origins, clients and control url"),
    (
        "POST",
        "grants",
        "issue a grant: {\"provider\":\"gdrive\"|\"onedrive\"} -> credential json",
    ),
    (
        "POST",
        "grants/revoke",
        "revoke every grant, or the one behind {\"token\":…}",
    ),
    ("POST", "tokens/expire", "expire every access token, or {\"token\":…}"),
    (
        "POST",
        "sign-in-required",
        "microsoft refreshes need a new sign-in: {\"why\":\"mfa\"|…, \"token\"?}",
    ),
    (
        "PUT",
        "consent",
        "the next consent answers: {\"answer\":\"allow\"|\"cancel\"|\"no_refresh_token\"} or {\"answer\":\"untick\",\"scopes\":[…]}",
    ),
    ("GET", "faults", "the fault rules, with ids and how often each acted"),
    (
        "POST",
        "faults",
        "add a rule, or an array of rules (the --faults format)",
    ),
    ("DELETE", "faults", "remove every rule"),
    ("DELETE", "faults/{id}", "remove one rule"),
    (
        "GET",
        "journal",
        "the requests received; tokens redacted unless ?tokens=show",
    ),
    ("DELETE", "journal", "forget the requests received"),
    (
        "GET",
        "state",
        "every drive file and graph item, open upload sessions, connections accepted",
    ),
    ("DELETE", "state", "forget every file, item and upload session"),
    (
        "POST",
        "drive/user-files",
        "a file the user made outside the app: {\"parent\",\"name\",\"content_base64\"}",
    ),
    (
        "GET",
        "link",
        "the emulated link: {\"profile\":\"rtt=40ms,rate=400mbit,conn_rate=200mbit\"} or null",
    ),
    (
        "PUT",
        "link",
        "set the link for new connections: {\"profile\":\"rtt=…,rate=…,conn_rate=…,setup=…\"}; null removes it",
    ),
    ("GET", "drive/files/{id}/content", "a drive file's bytes"),
    ("GET", "graph/items/{id}/content", "a graph item's bytes"),
];

/// The control routes, guarded; merged into the API router when the control API is on.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = |rest: &str| format!("{PREFIX}{rest}");
    Router::new()
        .route(&p(""), only(get(index)))
        .route(PREFIX.trim_end_matches('/'), only(get(index)))
        .route(&p("announcement"), only(get(announcement)))
        .route(&p("grants"), only(post(issue_grant)))
        .route(&p("grants/revoke"), only(post(revoke)))
        .route(&p("tokens/expire"), only(post(expire)))
        .route(&p("sign-in-required"), only(post(sign_in_required)))
        .route(&p("consent"), only(put(consent)))
        .route(
            &p("faults"),
            only(get(list_faults).post(add_faults).delete(clear_faults)),
        )
        .route(&p("faults/{id}"), only(delete(remove_fault)))
        .route(&p("journal"), only(get(journal).delete(clear_journal)))
        .route(&p("state"), only(get(state).delete(reset_state)))
        .route(&p("link"), only(get(get_link).put(set_link)))
        .route(&p("drive/user-files"), only(post(add_user_file)))
        .route(&p("drive/files/{id}/content"), only(get(drive_content)))
        .route(&p("graph/items/{id}/content"), only(get(graph_content)))
        .route(&p("{*rest}"), any(unknown_verb))
        .layer(from_fn(guard))
        .with_state(shared)
}

/// A method router that answers other methods with a JSON 405.
fn only(route: MethodRouter<Arc<Shared>>) -> MethodRouter<Arc<Shared>> {
    route.fallback(|| async {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this verb takes another method; GET /__emulator/ lists them",
        )
    })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// Refuses a peer that is not on loopback, a `Host` that names no loopback
/// address (a page on another site that rebinds its DNS name to 127.0.0.1),
/// and a browser's cross-site `Origin`.
async fn guard(req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
    if !peer.is_some_and(is_loopback) {
        return error(
            StatusCode::FORBIDDEN,
            "not_loopback",
            "the control api answers loopback peers only",
        );
    }
    let headers = req.headers();
    if !host_of(headers, header::HOST).is_some_and(|h| loopback_host(&h)) {
        return error(
            StatusCode::FORBIDDEN,
            "not_loopback",
            "the control api answers requests for a loopback host only",
        );
    }
    if headers.contains_key(header::ORIGIN) && !host_of(headers, header::ORIGIN).is_some_and(|h| loopback_host(&h)) {
        return error(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "the control api refuses pages from other origins",
        );
    }
    next.run(req).await
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The host named by `Host` (`h:port`) or `Origin` (`scheme://h:port`), without the port.
fn host_of(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let authority = value.split_once("://").map_or(value, |(_, rest)| rest);
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    Some(host.to_ascii_lowercase())
}

fn loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// A JSON body, `{}` when empty; a typed 400 otherwise.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Response> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| error(StatusCode::BAD_REQUEST, "bad_json", &e.to_string()))
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let verbs: Vec<Value> = VERBS
        .iter()
        .map(|(method, path, does)| json!({"method": method, "path": format!("{PREFIX}{path}"), "does": does}))
        .collect();
    ok(json!({"verbs": verbs, "announcement": shared.announcement()}))
}

async fn announcement(State(shared): State<Arc<Shared>>) -> Response {
    ok(json!(shared.announcement()))
}

async fn unknown_verb(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_verb",
        &format!("no control verb at {}; GET /__emulator/ lists them", req.uri().path()),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    provider: String,
}

async fn issue_grant(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: GrantRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match req.provider.as_str() {
        "gdrive" | "google" => ok(shared.google_grant()),
        "onedrive" | "microsoft" => ok(shared.microsoft_grant()),
        other => error(
            StatusCode::BAD_REQUEST,
            "unknown_provider",
            &format!("unknown provider {other:?}: gdrive or onedrive"),
        ),
    }
}

/// `{}` for all, or one grant's access or refresh token.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    token: Option<String>,
}

fn unknown_token() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_token",
        "the emulator issued no such token",
    )
}

async fn revoke(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: TokenRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut grants = shared.grants.lock();
    match req.token {
        None => {
            grants.revoke_all();
            ok(json!({"revoked": "all"}))
        }
        Some(t) if grants.revoke_by_token(&t) => ok(json!({"revoked": 1})),
        Some(_) => unknown_token(),
    }
}

async fn expire(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: TokenRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut grants = shared.grants.lock();
    match req.token {
        None => {
            grants.expire_all();
            ok(json!({"expired": "all"}))
        }
        Some(t) if grants.expire_one(&t) => ok(json!({"expired": 1})),
        Some(_) => unknown_token(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    why: SignInRequired,
    token: Option<String>,
}

async fn sign_in_required(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: SignInRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let n = shared.grants.lock().require_sign_in(req.token.as_deref(), req.why);
    if req.token.is_some() && n == 0 {
        return unknown_token();
    }
    ok(json!({"grants": n}))
}

async fn consent(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let answer: Consent = match body(&bytes) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    *shared.consent.lock() = answer.clone();
    ok(json!(answer))
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    ok(json!(shared.faults.listed()))
}

/// `POST faults`: one rule or an array of them; none is added when one is malformed.
async fn add_faults(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    // Parsed as a value first so that the error names the rule's problem, not the shape's.
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_json", &e.to_string()),
    };
    let parsed = if value.is_array() {
        serde_json::from_value::<Vec<FaultRule>>(value)
    } else {
        serde_json::from_value::<FaultRule>(value).map(|r| vec![r])
    };
    let rules = match parsed {
        Ok(rules) => rules,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_rule", &e.to_string()),
    };
    let ids: Vec<RuleId> = rules.into_iter().map(|r| shared.faults.add(r)).collect();
    (StatusCode::CREATED, axum::Json(json!({"ids": ids}))).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.faults.listed().len();
    shared.faults.clear();
    ok(json!({"removed": n}))
}

async fn remove_fault(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(id) = serde_json::from_str::<RuleId>(&id) else {
        return error(StatusCode::BAD_REQUEST, "bad_rule_id", "a rule id is a number");
    };
    if shared.faults.remove(id) {
        ok(json!({"removed": 1}))
    } else {
        error(StatusCode::NOT_FOUND, "unknown_rule", "no rule has this id")
    }
}

#[derive(Deserialize)]
struct JournalQuery {
    tokens: Option<String>,
}

async fn journal(State(shared): State<Arc<Shared>>, Query(q): Query<JournalQuery>) -> Response {
    let show = match q.tokens.as_deref() {
        None | Some("redact") => false,
        Some("show") => true,
        Some(_) => return error(StatusCode::BAD_REQUEST, "bad_query", "tokens is show or redact"),
    };
    let entries: Vec<JournalEntry> = shared
        .journal
        .snapshot()
        .entries()
        .iter()
        .cloned()
        .map(|e| if show { e } else { redact(e) })
        .collect();
    ok(json!({"entries": entries, "tokens": if show { "shown" } else { "redacted" }}))
}

async fn clear_journal(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.journal.snapshot().len();
    shared.journal.clear();
    ok(json!({"removed": n}))
}

const REDACTED: &str = "[redacted]";

/// Query parameters that carry a credential.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "refresh_token",
    "code",
    "code_verifier",
    "client_secret",
    "upload_id",
    "token",
    // The signature of a Graph pre-authenticated download URL.
    "tempauth",
];

/// A journal entry without credentials: the `Authorization` value (its scheme
/// kept), credential query parameters, and the secret segment of Graph upload
/// and download URLs (`/up/…`, `/dl/…`), which are bearer credentials themselves.
pub(crate) fn redact(mut e: JournalEntry) -> JournalEntry {
    for (name, value) in &mut e.headers {
        if name == "authorization" || name == "cookie" {
            let scheme = value.split_once(' ').map(|(s, _)| s.to_owned());
            *value = scheme.map_or_else(|| REDACTED.to_owned(), |s| format!("{s} {REDACTED}"));
        }
    }
    if let Some(query) = &e.query {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| {
                let v = if SECRET_PARAMS.contains(&k.as_ref()) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        e.query = Some(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
    }
    for prefix in ["/up/", "/dl/"] {
        if e.origin == crate::journal::Origin::Content && e.path.starts_with(prefix) {
            e.path = format!("{prefix}{REDACTED}");
        }
    }
    e
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    let (files, drive_sessions) = {
        let drive = shared.drive.lock();
        (drive.infos(), drive.open_sessions())
    };
    let (items, graph_sessions) = {
        let graph = shared.graph.lock();
        (graph.infos(), graph.open_sessions())
    };
    ok(json!({
        "drive": {"files": files, "open_sessions": drive_sessions},
        "graph": {"items": items, "open_sessions": graph_sessions},
        "connections_accepted": shared.next_connection.load(std::sync::atomic::Ordering::SeqCst),
    }))
}

async fn reset_state(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset_drives();
    ok(json!({"reset": true}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    profile: Option<crate::link::LinkProfile>,
}

async fn get_link(State(shared): State<Arc<Shared>>) -> Response {
    ok(json!({"profile": shared.link.profile()}))
}

async fn set_link(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: LinkRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    shared.link.set(req.profile);
    ok(json!({"profile": req.profile}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    parent: String,
    name: String,
    #[serde(default)]
    content_base64: String,
}

async fn add_user_file(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    let req: UserFile = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Ok(content) = base64::engine::general_purpose::STANDARD.decode(&req.content_base64) else {
        return error(StatusCode::BAD_REQUEST, "bad_base64", "content_base64 is not base64");
    };
    match shared
        .drive
        .lock()
        .add_user_file(&req.parent, &req.name, content.into())
    {
        Some(id) => (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_folder", "parent is no drive folder"),
    }
}

fn content(found: Option<Bytes>) -> Response {
    match found {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_file", "no such file"),
    }
}

async fn drive_content(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    content(shared.drive.lock().content(&id))
}

async fn graph_content(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    content(shared.graph.lock().content(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_and_hosts() {
        for ip in ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.2", "10.0.0.1", "::", "0.0.0.0", "fd00::2", "::ffff:10.0.0.1"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
        let mut h = HeaderMap::new();
        for (value, want) in [
            ("127.0.0.1:8080", true),
            ("localhost", true),
            ("[::1]:9", true),
            ("LOCALHOST:1", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
            ("[fd00::2]:1", false),
        ] {
            h.insert(header::HOST, value.parse().unwrap());
            assert_eq!(
                host_of(&h, header::HOST).is_some_and(|x| loopback_host(&x)),
                want,
                "{value}"
            );
        }
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!host_of(&h, header::ORIGIN).is_some_and(|x| loopback_host(&x)));
        h.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert!(host_of(&h, header::ORIGIN).is_some_and(|x| loopback_host(&x)));
    }

    #[test]
    fn redaction_hides_every_credential() {
        let e = JournalEntry {
            seq: 0,
            connection: 1,
            version: "HTTP/1.1".into(),
            origin: crate::journal::Origin::Content,
            provider: None,
            method: "PUT".into(),
            path: "/up/s3cr3t-session".into(),
            query: Some("upload_id=u-123&uploadType=resumable&access_token=at-1&tempauth=sig-9".into()),
            headers: vec![
                ("authorization".into(), "Bearer at-secret".into()),
                ("content-length".into(), "5".into()),
            ],
            body_len: 5,
            at: chrono::Utc::now(),
        };
        let r = redact(e);
        let text = serde_json::to_string(&r).unwrap();
        for secret in ["s3cr3t", "u-123", "at-1", "at-secret", "sig-9"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(r.header("authorization"), Some("Bearer [redacted]"));
        assert_eq!(r.query_param("uploadType").as_deref(), Some("resumable"));
        assert_eq!(r.path, "/up/[redacted]");
    }
}
