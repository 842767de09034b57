//! The fault matrix: provider × operation × fault, each cell against a fresh
//! emulator, with the expected outcome stated in [`TABLE`].
//!
//! Every cell that applies also checks that
//! - the pre-seeded object is intact (bytes compared in the emulator's state);
//! - no half-written object is visible (the emulator's listing holds only whole
//!   objects, at most one per name);
//! - the retry budget holds (the journal counts the requests to the faulted endpoint);
//! - no `Authorization` header reached the content origin;
//! - the fault actually fired (a cell that injected nothing proves nothing).
//!
//! The whole run's log output, error texts and `Debug` strings are scanned for
//! every token and client secret the run used. The report is written to
//! `target/fault-matrix.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::testkit::payload as data;
use storage_core::{
    ByteRange, ByteStream, ConnectionReason, ObjectKey, ObjectName, PageRequest, RetryPolicy, StorageBackend,
    StorageError, TokenCell,
};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin, Provider};
use storage_factory::storage_gdrive::{CHUNK_UNIT, DriveOptions, GoogleApp, GoogleDriveBackend, GoogleEndpoints};
use storage_factory::storage_onedrive::{
    FRAGMENT_UNIT, MicrosoftApp, MicrosoftEndpoints, OneDriveBackend, OneDriveOptions,
};
use storage_factory::{ConnectionStatus, Endpoints, MemoryCredentialStore, StorageFactory};

// ---------------------------------------------------------------------------
// The axes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Gdrive,
    Onedrive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `put_object` of 1000 bytes: Drive multipart, OneDrive a one-fragment session.
    PutSmall,
    /// `put_object` of two chunks/fragments: a resumable session replayable from memory.
    PutResumable,
    /// `put_stream` of two chunks/fragments: a session that cannot replay what it acknowledged.
    PutStream,
    Get,
    GetStream,
    Stat,
    Delete,
    Health,
    /// A managed factory connection whose access token the provider refuses: it
    /// refreshes, saves and retries (`stat_object`). Faults hit the token endpoint.
    Refresh,
    /// As [`Op::Refresh`], with a `put_stream`: the refused attempt must leave the
    /// stream replayable, or the retry after the refresh cannot happen.
    RefreshPutStream,
    /// As [`Op::Refresh`], with [`STORM`] concurrent calls: one refresh attempt
    /// sequence serves them all, so the token endpoint's budget is that of one
    /// call, and every caller gets the same outcome.
    RefreshStorm,
    /// `get_range` of 4000 bytes in the middle of the object: metadata, then a ranged GET.
    GetRange,
    /// `list_user` in pages of one: the folder, then a listing call per page.
    List,
}

const OPS: [Op; 13] = [
    Op::PutSmall,
    Op::PutResumable,
    Op::PutStream,
    Op::Get,
    Op::GetStream,
    Op::Stat,
    Op::Delete,
    Op::Health,
    Op::Refresh,
    Op::RefreshPutStream,
    Op::RefreshStorm,
    Op::GetRange,
    Op::List,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// No fault: the baseline, whose request counts the budget checks start from.
    None,
    Unauthorized401,
    DriveRateLimit403,
    DriveUserRateLimit403,
    TooMany429Secs,
    TooMany429Date,
    Unavailable503Secs,
    Unavailable503Date,
    Internal500,
    BadGateway502,
    GatewayTimeout504,
    /// 500 on every attempt: the budget is used up, exactly.
    Internal500Always,
    /// 429 with `Retry-After` on every attempt: throttled after the backend's own retries.
    TooMany429Always,
    ResetBeforeResponse,
    /// The server did the work (stored the chunk, created the file, deleted it),
    /// then the connection dropped before the answer.
    ResetAfterProcessing,
    ResetMidBody,
    TruncatedBody,
    PartialChunk,
    ExpiredSession,
    TokenEndpoint5xx,
    TokenInvalidGrant,
    SlowerThanTimeout,
    MalformedJson,
}

/// The expected outcome of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Success (after retries where the fault forced them), bytes intact.
    Ok,
    /// This error.
    Err(Kind),
    /// The fault cannot happen on this operation.
    Na(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TokenExpired,
    InvalidGrant,
    /// `Provider` with this status.
    Provider(u16),
    /// `Provider` with this code.
    Code(&'static str),
    /// `RateLimited` carrying the provider's `Retry-After`.
    RateLimited,
}

const OK: Expect = Expect::Ok;
const TOKEN_EXPIRED: Expect = Expect::Err(Kind::TokenExpired);
const INVALID_GRANT: Expect = Expect::Err(Kind::InvalidGrant);
const P500: Expect = Expect::Err(Kind::Provider(500));
const THROTTLED: Expect = Expect::Err(Kind::RateLimited);
const MALFORMED: Expect = Expect::Err(Kind::Code("malformedResponse"));
const SESSION_LOST: Expect = Expect::Err(Kind::Code("uploadSessionExpired"));
const INVALID_CLIENT: Expect = Expect::Err(Kind::Code("invalid_client"));
const NO_SESSION: Expect = Expect::Na("no upload session: nothing to accept in part or expire");
const MULTIPART: Expect = Expect::Na("a Drive multipart upload is one request, without a session");
const SIMPLE: Expect = Expect::Na("a OneDrive simple upload is one request, without a session");
const NO_TOKEN_CALL: Expect = Expect::Na("a backend never calls the token endpoint; see the refresh column");
const NOT_GRAPH: Expect = Expect::Na("Graph throttles with 429/503, never with Drive's 403 reasons");
const NOT_TOKEN: Expect = Expect::Na("token endpoints do not answer with Drive's 403 reasons");
const NO_BODY: Expect = Expect::Na("a delete answer has no JSON body to spoil");

/// Ops: put small, put resumable, put_stream, get, get_stream, stat, delete, health, refresh,
/// refresh during a put_stream, a refresh that many callers wait on, a ranged read, a listing.
#[rustfmt::skip]
const TABLE: &[(Fault, [Expect; 13], [Expect; 13])] = &[
    (Fault::None,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    // A refused token: the backend says so; the managed connection is a
    // configuration error when the token endpoint itself answers 401 (the client).
    (Fault::Unauthorized401,
        [TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, INVALID_CLIENT, INVALID_CLIENT, INVALID_CLIENT, TOKEN_EXPIRED, TOKEN_EXPIRED],
        [TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, TOKEN_EXPIRED, INVALID_CLIENT, INVALID_CLIENT, INVALID_CLIENT, TOKEN_EXPIRED, TOKEN_EXPIRED]),
    (Fault::DriveRateLimit403,
        [OK, OK, OK, OK, OK, OK, OK, OK, NOT_TOKEN, NOT_TOKEN, NOT_TOKEN, OK, OK],
        [NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH]),
    (Fault::DriveUserRateLimit403,
        [OK, OK, OK, OK, OK, OK, OK, OK, NOT_TOKEN, NOT_TOKEN, NOT_TOKEN, OK, OK],
        [NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH, NOT_GRAPH]),
    (Fault::TooMany429Secs,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::TooMany429Date,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::Unavailable503Secs,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::Unavailable503Date,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::Internal500,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::BadGateway502,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::GatewayTimeout504,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::Internal500Always,
        [P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500],
        [P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500, P500]),
    (Fault::TooMany429Always,
        [THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED],
        [THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED, THROTTLED]),
    (Fault::ResetBeforeResponse,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::ResetAfterProcessing,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::ResetMidBody,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::TruncatedBody,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::PartialChunk,
        [MULTIPART, OK, OK, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION],
        [SIMPLE, OK, OK, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION]),
    // A session lost after a stream's first chunk was acknowledged cannot be replayed.
    (Fault::ExpiredSession,
        [MULTIPART, OK, SESSION_LOST, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION],
        [SIMPLE, OK, SESSION_LOST, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION, NO_SESSION]),
    (Fault::TokenEndpoint5xx,
        [NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, OK, OK, OK, NO_TOKEN_CALL, NO_TOKEN_CALL],
        [NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, OK, OK, OK, NO_TOKEN_CALL, NO_TOKEN_CALL]),
    (Fault::TokenInvalidGrant,
        [NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, INVALID_GRANT, INVALID_GRANT, INVALID_GRANT, NO_TOKEN_CALL, NO_TOKEN_CALL],
        [NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, NO_TOKEN_CALL, INVALID_GRANT, INVALID_GRANT, INVALID_GRANT, NO_TOKEN_CALL, NO_TOKEN_CALL]),
    (Fault::SlowerThanTimeout,
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    (Fault::MalformedJson,
        [MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, NO_BODY, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED],
        [MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, NO_BODY, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED, MALFORMED]),
];

// ---------------------------------------------------------------------------
// Settings.

const MAX_ATTEMPTS: u32 = 4;
const DOWNLOAD_RESUMES: u32 = 3;
const SLOW_TIMEOUT: Duration = Duration::from_millis(300);
const SLOW_DELAY: u64 = 1_500;
const NORMAL_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_AFTER_SECS: u64 = 1;
const SMALL: usize = 1000;
/// Drive: two resumable chunks (256 KiB and 777 bytes), over the 64 KiB multipart limit.
const G_LARGE: usize = CHUNK_UNIT + 777;
/// OneDrive: two fragments (320 KiB and 777 bytes).
const M_LARGE: usize = FRAGMENT_UNIT + 777;
const SEED_SIZE: usize = 70_000;
/// The callers of [`Op::RefreshStorm`].
const STORM: usize = 20;
const TARGET_SIZE: usize = 100_000;

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
        .with_max_retry_after(Duration::from_secs(3))
}

fn name(doc: &str) -> ObjectName {
    ObjectName::new("user-m", doc, ".bin").unwrap()
}

// ---------------------------------------------------------------------------
// Where each fault is injected.

/// A request matcher: the faulted request, and what the journal counts for the budget.
#[derive(Debug, Clone, Copy)]
struct Target {
    origin: Origin,
    method: &'static str,
    path: &'static str,
    /// Matches let through before the fault acts (e.g. the metadata GET before a download).
    skip: u32,
}

impl Target {
    fn rule(self, p: P, action: FaultAction) -> FaultRule {
        FaultRule::new(action)
            .provider(match p {
                P::Gdrive => Provider::Google,
                P::Onedrive => Provider::Microsoft,
            })
            .origin(self.origin)
            .method(self.method)
            .path(self.path)
            .skip(self.skip)
    }

    fn count(self, emu: &EmulatorHandle) -> usize {
        emu.journal()
            .filter(|e| e.origin == self.origin && e.method == self.method && glob(self.path, &e.path))
            .len()
    }
}

/// `*` matches any run of characters, as in the emulator's rules.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(parts[0]) else {
        return false;
    };
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(parts[parts.len() - 1])
}

const fn t(origin: Origin, method: &'static str, path: &'static str, skip: u32) -> Target {
    Target {
        origin,
        method,
        path,
        skip,
    }
}

/// The authenticated JSON call of an operation, and the call that carries its bytes.
fn targets(p: P, op: Op) -> (Target, Target) {
    use Origin::{Api, Content};
    match (p, op) {
        (P::Gdrive, Op::PutSmall) => {
            let x = t(Api, "POST", "/upload/drive/v3/files", 0);
            (x, x)
        }
        (P::Gdrive, Op::PutResumable | Op::PutStream) => (
            t(Api, "POST", "/upload/drive/v3/files", 0),
            t(Content, "PUT", "/upload/drive/v3/files", 1),
        ),
        (P::Gdrive, Op::Get | Op::GetStream | Op::GetRange) => (
            t(Api, "GET", "/drive/v3/files/*", 0),
            t(Api, "GET", "/drive/v3/files/*", 1),
        ),
        (P::Gdrive, Op::Stat) => {
            let x = t(Api, "GET", "/drive/v3/files/*", 0);
            (x, x)
        }
        (P::Gdrive, Op::Delete) => {
            let x = t(Api, "DELETE", "/drive/v3/files/*", 0);
            (x, x)
        }
        (P::Gdrive, Op::Health) => {
            let x = t(Api, "GET", "/drive/v3/about", 0);
            (x, x)
        }
        // The folder lookup, then the pages.
        (P::Gdrive, Op::List) => (t(Api, "GET", "/drive/v3/files", 0), t(Api, "GET", "/drive/v3/files", 1)),
        (P::Gdrive, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm) => {
            let x = t(Api, "POST", "/token", 0);
            (x, x)
        }
        (P::Onedrive, Op::PutSmall) => {
            let x = t(Api, "PUT", "/v1.0/*:/content", 0);
            (x, x)
        }
        (P::Onedrive, Op::PutResumable | Op::PutStream) => (
            t(Api, "POST", "/v1.0/*createUploadSession", 0),
            t(Content, "PUT", "/up/*", 1),
        ),
        (P::Onedrive, Op::Get | Op::GetStream | Op::GetRange) => (
            t(Api, "GET", "/v1.0/me/drive/items/*", 0),
            t(Content, "GET", "/dl/*", 0),
        ),
        (P::Onedrive, Op::Stat) => {
            let x = t(Api, "GET", "/v1.0/me/drive/items/*", 0);
            (x, x)
        }
        (P::Onedrive, Op::Delete) => {
            let x = t(Api, "DELETE", "/v1.0/me/drive/items/*", 0);
            (x, x)
        }
        (P::Onedrive, Op::Health) => {
            let x = t(Api, "GET", "/v1.0/me/drive", 0);
            (x, x)
        }
        // The folder id is cached by the puts that seeded the cell: the pages.
        (P::Onedrive, Op::List) => {
            let x = t(Api, "GET", "/v1.0/me/drive/items/*/children", 0);
            (x, x)
        }
        (P::Onedrive, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm) => {
            let x = t(Api, "POST", "*/oauth2/v2.0/token", 0);
            (x, x)
        }
    }
}

fn json_response(status: u16, body: &str) -> FaultAction {
    FaultAction::Respond {
        status,
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: Some(body.to_owned()),
    }
}

/// The rule a cell installs, or `None` for the baseline.
fn fault_rule(p: P, op: Op, fault: Fault) -> Option<FaultRule> {
    let (api, body) = targets(p, op);
    let once = |target: Target, action: FaultAction| Some(target.rule(p, action).times(1));
    let token = matches!(op, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm);
    match fault {
        Fault::None => None,
        Fault::Unauthorized401 if token => Some(api.rule(
            p,
            json_response(
                401,
                r#"{"error":"invalid_client","error_description":"The OAuth client was not found."}"#,
            ),
        )),
        Fault::Unauthorized401 => Some(api.rule(p, FaultAction::status(401))),
        Fault::DriveRateLimit403 => once(body, FaultAction::google_error(403, "rateLimitExceeded")),
        Fault::DriveUserRateLimit403 => once(body, FaultAction::google_error(403, "userRateLimitExceeded")),
        Fault::TooMany429Secs => once(body, FaultAction::retry_after(429, RETRY_AFTER_SECS)),
        Fault::TooMany429Date => once(body, FaultAction::retry_after_http_date(429, RETRY_AFTER_SECS)),
        Fault::Unavailable503Secs => once(body, FaultAction::retry_after(503, RETRY_AFTER_SECS)),
        Fault::Unavailable503Date => once(body, FaultAction::retry_after_http_date(503, RETRY_AFTER_SECS)),
        Fault::Internal500 => once(body, FaultAction::status(500)),
        Fault::BadGateway502 => once(body, FaultAction::status(502)),
        Fault::GatewayTimeout504 => once(body, FaultAction::status(504)),
        Fault::Internal500Always => Some(body.rule(p, FaultAction::status(500))),
        Fault::TooMany429Always => Some(body.rule(p, FaultAction::retry_after(429, RETRY_AFTER_SECS))),
        Fault::ResetBeforeResponse => once(body, FaultAction::ResetBeforeResponse),
        Fault::ResetAfterProcessing => once(body, FaultAction::ResetAfterProcessing),
        Fault::ResetMidBody => once(body, FaultAction::ResetMidBody { after_bytes: 7 }),
        Fault::TruncatedBody => once(body, FaultAction::TruncateBody { after_bytes: 7 }),
        Fault::PartialChunk => once(body, FaultAction::AcceptPartialChunk { bytes: 100 }),
        Fault::ExpiredSession => once(body, FaultAction::ExpireUploadSession),
        Fault::TokenEndpoint5xx => Some(api.rule(p, FaultAction::status(503)).times(2)),
        Fault::TokenInvalidGrant => Some(api.rule(
            p,
            json_response(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            ),
        )),
        Fault::SlowerThanTimeout => once(body, FaultAction::Delay { millis: SLOW_DELAY }),
        // A JSON answer cut into nonsense: the metadata of a download, the final
        // answer of an upload.
        Fault::MalformedJson => {
            let target = if matches!(op, Op::Get | Op::GetStream | Op::GetRange) {
                api
            } else {
                body
            };
            once(target, json_response(200, r#"{"id": "x",, "size": 1}"#))
        }
    }
}

// ---------------------------------------------------------------------------
// One cell.

/// What a cell found.
#[derive(Debug, Default)]
struct Outcome {
    actual: String,
    problems: Vec<String>,
    fired: u32,
    target_requests: usize,
    elapsed: Duration,
    /// Secrets the cell saw, and text to scan for them.
    secrets: Vec<String>,
    texts: String,
}

enum Backend {
    Direct(Arc<dyn StorageBackend>),
    Managed(Arc<dyn StorageBackend>, Arc<MemoryCredentialStore>),
}

fn google_endpoints(emu: &EmulatorHandle) -> GoogleEndpoints {
    serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap()
}

fn graph_endpoints(emu: &EmulatorHandle) -> MicrosoftEndpoints {
    serde_json::from_value(serde_json::to_value(&emu.endpoints().microsoft).unwrap()).unwrap()
}

fn direct(p: P, emu: &EmulatorHandle, grant: &serde_json::Value, read_timeout: Duration) -> Arc<dyn StorageBackend> {
    let token = TokenCell::new(grant["access_token"].as_str().unwrap().to_owned());
    match p {
        P::Gdrive => {
            let mut o = DriveOptions::default();
            o.chunk_size = CHUNK_UNIT;
            o.multipart_limit = 64 * 1024;
            o.retry = policy();
            o.download_resumes = DOWNLOAD_RESUMES;
            o.connect_timeout = Duration::from_secs(2);
            o.read_timeout = read_timeout;
            Arc::new(
                GoogleDriveBackend::builder(token)
                    .endpoints(google_endpoints(emu))
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
        P::Onedrive => {
            let mut o = OneDriveOptions::default();
            o.fragment_size = FRAGMENT_UNIT;
            // As on Drive: a small body goes in one request, two fragments in a session.
            o.simple_upload_limit = 64 * 1024;
            o.retry = policy();
            o.download_resumes = DOWNLOAD_RESUMES;
            o.connect_timeout = Duration::from_secs(2);
            o.read_timeout = read_timeout;
            Arc::new(
                OneDriveBackend::builder(token)
                    .endpoints(graph_endpoints(emu))
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
    }
}

async fn managed(emu: &EmulatorHandle, grant: &serde_json::Value, read_timeout: Duration) -> Backend {
    let g = emu.google_app();
    let m = emu.microsoft_app();
    let factory = StorageFactory::builder()
        .endpoints(Endpoints::from_json(&serde_json::to_string(emu.endpoints()).unwrap()).unwrap())
        .google_app(GoogleApp::new(&g.client_id, g.client_secret.as_str()))
        .microsoft_app(MicrosoftApp::new(&m.client_id, m.client_secret.as_str()))
        .retry(policy())
        .timeouts(Duration::from_secs(2), read_timeout)
        .build()
        .unwrap();
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("conn", grant.to_string());
    let backend = factory.connect("conn", store.clone()).await.unwrap();
    Backend::Managed(backend, store)
}

/// Non-folder objects the emulator shows: (id, name, bytes).
fn visible(p: P, emu: &EmulatorHandle) -> Vec<(String, String, Bytes)> {
    match p {
        P::Gdrive => emu
            .drive_files()
            .into_iter()
            .filter(|f| !f.is_folder && !f.trashed)
            .map(|f| {
                let content = emu.drive_file_content(&f.id).unwrap_or_default();
                (f.id, f.name, content)
            })
            .collect(),
        P::Onedrive => emu
            .graph_items()
            .into_iter()
            .filter(|i| !i.is_folder)
            .map(|i| {
                let content = emu.graph_item_content(&i.id).unwrap_or_default();
                (i.id, i.name, content)
            })
            .collect(),
    }
}

fn kind_of(err: &StorageError) -> String {
    match err {
        StorageError::CloudConnection { reason } => format!("CloudConnection({reason:?})"),
        StorageError::Provider { status, code, .. } => {
            format!(
                "Provider({status}{})",
                code.as_deref().map(|c| format!(", {c}")).unwrap_or_default()
            )
        }
        StorageError::RateLimited { retry_after } => format!("RateLimited({retry_after:?})"),
        StorageError::Transport { message, .. } => format!("Transport({message})"),
        other => format!("{other:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or("?")
            .to_owned(),
    }
}

fn matches_kind(err: &StorageError, kind: Kind) -> bool {
    match kind {
        Kind::TokenExpired => err.connection_reason() == Some(ConnectionReason::TokenExpired),
        Kind::InvalidGrant => err.connection_reason() == Some(ConnectionReason::InvalidGrant),
        Kind::Provider(s) => matches!(err, StorageError::Provider { status, .. } if *status == s),
        Kind::Code(c) => matches!(err, StorageError::Provider { code: Some(code), .. } if code == c),
        Kind::RateLimited => err.retry_after() == Some(Duration::from_secs(RETRY_AFTER_SECS)),
    }
}

fn token_of(json: &serde_json::Value, key: &str) -> Option<String> {
    json[key].as_str().map(str::to_owned)
}

/// Runs the operation; a put returns the key it was given.
async fn run_op(
    b: &dyn StorageBackend,
    op: Op,
    target: &ObjectKey,
    seed: &ObjectKey,
    put_body: &Bytes,
) -> Result<Option<ObjectKey>, StorageError> {
    let doc = name("put");
    match op {
        Op::PutSmall | Op::PutResumable => b
            .put_object(&doc, put_body.clone(), "application/octet-stream")
            .await
            .map(Some),
        Op::PutStream | Op::RefreshPutStream => {
            let stream: ByteStream = storage_core::stream::from_bytes(put_body.clone(), 65_537);
            b.put_stream(&doc, stream, put_body.len() as u64, "application/octet-stream")
                .await
                .map(Some)
        }
        Op::Get => {
            let got = b.get_object(target).await?;
            if got.len() != TARGET_SIZE || got != data(TARGET_SIZE, 2) {
                return Err(StorageError::integrity("matrix: get returned other bytes"));
            }
            Ok(None)
        }
        Op::GetStream => {
            let mut s = b.get_stream(target).await?;
            let mut all = Vec::new();
            while let Some(piece) = s.next().await {
                all.extend_from_slice(&piece?);
            }
            if all != data(TARGET_SIZE, 2) {
                return Err(StorageError::integrity("matrix: get_stream returned other bytes"));
            }
            Ok(None)
        }
        Op::Stat => {
            let meta = b.stat_object(target).await?;
            if meta.size != TARGET_SIZE as u64 {
                return Err(StorageError::integrity("matrix: stat reported another size"));
            }
            Ok(None)
        }
        Op::Delete => b.delete_object(target).await.map(|()| None),
        Op::Health => b.health_check().await.map(|()| None),
        Op::GetRange => {
            let s = b.get_range(target, ByteRange::from(1000..5000)).await?;
            let got = storage_core::stream::collect(s, 4000).await?;
            if got != data(TARGET_SIZE, 2).slice(1000..5000) {
                return Err(StorageError::integrity("matrix: get_range returned other bytes"));
            }
            Ok(None)
        }
        Op::List => {
            let mut request = PageRequest::first(1)?;
            let mut names = Vec::new();
            loop {
                let page = b.list_user("user-m", &request).await?;
                names.extend(page.items.into_iter().map(|i| i.name.document_id().to_owned()));
                match page.next {
                    Some(token) => request = request.after(token),
                    None => break,
                }
            }
            names.sort();
            if names != ["seed", "target"] {
                return Err(StorageError::integrity(format!("matrix: list_user returned {names:?}")));
            }
            Ok(None)
        }
        Op::Refresh => {
            let meta = b.stat_object(seed).await?;
            if meta.size != SEED_SIZE as u64 {
                return Err(StorageError::integrity("matrix: stat reported another size"));
            }
            Ok(None)
        }
        Op::RefreshStorm => {
            let results = futures::future::join_all((0..STORM).map(|_| b.stat_object(seed))).await;
            let outcomes: std::collections::BTreeSet<String> = results
                .iter()
                .map(|r| r.as_ref().map_or_else(kind_of, |m| format!("Ok({})", m.size)))
                .collect();
            if outcomes.len() > 1 {
                return Err(StorageError::integrity(format!(
                    "matrix: the callers of one refresh saw different outcomes: {outcomes:?}"
                )));
            }
            match results.into_iter().next() {
                Some(Ok(meta)) if meta.size == SEED_SIZE as u64 => Ok(None),
                Some(Ok(_)) => Err(StorageError::integrity("matrix: stat reported another size")),
                Some(Err(e)) => Err(e),
                None => Ok(None),
            }
        }
    }
}

/// Runs one cell; `baseline` is the faulted endpoint's request count without a fault.
async fn run_cell(p: P, op: Op, fault: Fault, expect: Expect, baseline: Option<usize>) -> Outcome {
    let mut out = Outcome::default();
    let emu = Emulator::start().await.unwrap();
    out.secrets.push(emu.google_app().client_secret.clone());
    out.secrets.push(emu.microsoft_app().client_secret.clone());
    let grant = match p {
        P::Gdrive => emu.google_grant(),
        P::Onedrive => emu.microsoft_grant(),
    };
    out.secrets.extend(token_of(&grant, "access_token"));
    out.secrets.extend(token_of(&grant, "refresh_token"));
    let read_timeout = if fault == Fault::SlowerThanTimeout {
        SLOW_TIMEOUT
    } else {
        NORMAL_TIMEOUT
    };
    let backend = if matches!(op, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm) {
        managed(&emu, &grant, read_timeout).await
    } else {
        Backend::Direct(direct(p, &emu, &grant, read_timeout))
    };
    let b: &dyn StorageBackend = match &backend {
        Backend::Direct(b) | Backend::Managed(b, _) => b.as_ref(),
    };
    let _ = write!(out.texts, "{b:?}");

    // The objects that must survive, and the one the operation reads or deletes.
    let seed_bytes = data(SEED_SIZE, 1);
    let target_bytes = data(TARGET_SIZE, 2);
    let seed = b
        .put_object(&name("seed"), seed_bytes.clone(), "application/octet-stream")
        .await
        .unwrap();
    let target = b
        .put_object(&name("target"), target_bytes.clone(), "application/octet-stream")
        .await
        .unwrap();
    let put_body = match (p, op) {
        (_, Op::PutSmall) => data(SMALL, 3),
        (P::Gdrive, _) => data(G_LARGE, 3),
        (P::Onedrive, _) => data(M_LARGE, 3),
    };
    if matches!(op, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm) {
        emu.expire_access_tokens();
    }
    emu.clear_journal();
    let rule = fault_rule(p, op, fault).map(|r| emu.faults().add(r));

    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), run_op(b, op, &target, &seed, &put_body)).await;
    out.elapsed = started.elapsed();
    let result = match result {
        Ok(r) => r,
        Err(_) => {
            out.problems.push("the operation hung for 30 s".into());
            Err(StorageError::integrity("hung"))
        }
    };
    out.fired = rule.map_or(0, |id| emu.faults().fired(id));
    emu.faults().clear();
    out.actual = match &result {
        Ok(_) => "Ok".into(),
        Err(e) => kind_of(e),
    };
    if let Err(e) = &result {
        let _ = write!(out.texts, "{e} {e:?}");
    }

    // The outcome.
    match (expect, &result) {
        (Expect::Ok, Ok(_)) => {}
        (Expect::Err(kind), Err(e)) if matches_kind(e, kind) => {}
        _ => out.problems.push(format!("expected {expect:?}, got {}", out.actual)),
    }
    if fault != Fault::None && out.fired == 0 {
        out.problems.push("the fault never fired".into());
    }

    // Nothing lost, nothing half-written.
    let objects = visible(p, &emu);
    let content = |id: &str| objects.iter().find(|(i, _, _)| i == id).map(|(_, _, c)| c.clone());
    if content(seed.as_str()).as_ref() != Some(&seed_bytes) {
        out.problems.push("the pre-seeded object was damaged or deleted".into());
    }
    let target_now = content(target.as_str());
    let target_gone_ok = op == Op::Delete && result.is_ok();
    match target_now {
        None if target_gone_ok => {}
        Some(_) if target_gone_ok => out
            .problems
            .push("delete succeeded but the object is still visible".into()),
        Some(c) if c == target_bytes => {}
        _ => out
            .problems
            .push("the operation's object was damaged or deleted".into()),
    }
    for (_, file_name, bytes) in &objects {
        let known = [&seed_bytes, &target_bytes, &put_body];
        if !known.contains(&bytes) {
            out.problems.push(format!(
                "`{file_name}` holds {} bytes that nobody wrote whole",
                bytes.len()
            ));
        }
        if objects.iter().filter(|(_, n, _)| n == file_name).count() > 1 {
            out.problems.push(format!("`{file_name}` is visible more than once"));
        }
    }
    let put = matches!(
        op,
        Op::PutSmall | Op::PutResumable | Op::PutStream | Op::RefreshPutStream
    );
    let written = objects.iter().filter(|(_, n, _)| n == "put.bin").count();
    if let Ok(Some(key)) = &result
        && content(key.as_str()).as_ref() != Some(&put_body)
    {
        out.problems
            .push("the key a put returned does not hold the bytes sent".into());
    }
    if put && result.is_ok() && written != 1 {
        out.problems.push(format!("a successful put left {written} objects"));
    }
    if put && result.is_err() && written != 0 {
        out.problems.push("a failed put left an object visible".into());
    }

    // The retry budget.
    let (api, body) = targets(p, op);
    let counted = if fault == Fault::Unauthorized401
        || fault == Fault::MalformedJson && matches!(op, Op::Get | Op::GetStream | Op::GetRange)
    {
        api
    } else {
        body
    };
    out.target_requests = counted.count(&emu);
    let max = MAX_ATTEMPTS as usize;
    if let Some(base) = baseline {
        // A session upload spends a status query and a resend per failure and may
        // restart once; a download may resume; anything else retries in place.
        let allowed = if put && op != Op::PutSmall {
            2 * base + 2 * max
        } else if matches!(op, Op::Get | Op::GetStream | Op::GetRange) {
            base + max + DOWNLOAD_RESUMES as usize
        } else {
            base + max - 1
        };
        if out.target_requests > allowed {
            out.problems.push(format!(
                "{} requests to the faulted endpoint, the budget allows {allowed}",
                out.target_requests
            ));
        }
        let simple = matches!(
            op,
            Op::Stat | Op::Delete | Op::Health | Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm
        ) || op == Op::PutSmall;
        let persistent = matches!(fault, Fault::Internal500Always | Fault::TooMany429Always);
        if persistent && simple && out.target_requests != max {
            out.problems.push(format!(
                "a persistent {fault:?} took {} attempts, the policy allows exactly {max}",
                out.target_requests
            ));
        }
    }
    // A Drive download asks for the metadata and the first part at once: each
    // is refused once, and neither is retried.
    let sent_at_once = if p == P::Gdrive && matches!(op, Op::Get | Op::GetStream) {
        2
    } else {
        1
    };
    if fault == Fault::Unauthorized401
        && !matches!(op, Op::Refresh | Op::RefreshPutStream | Op::RefreshStorm)
        && out.target_requests != sent_at_once
    {
        out.problems.push("a refused token was retried by the backend".into());
    }

    // Tokens stay on the API origin.
    let leaked = emu
        .journal()
        .for_origin(Origin::Content)
        .iter()
        .filter(|e| e.header("authorization").is_some())
        .count();
    if leaked > 0 {
        out.problems
            .push(format!("{leaked} requests carried Authorization to the content origin"));
    }

    // The managed connection's bookkeeping.
    if let Backend::Managed(_, store) = &backend {
        let saved = store.get("conn").unwrap();
        let json: serde_json::Value = serde_json::from_str(saved.json.expose()).unwrap();
        out.secrets.extend(token_of(&json, "access_token"));
        out.secrets.extend(token_of(&json, "refresh_token"));
        let _ = write!(out.texts, "{store:?}");
        let reauth = saved.status == ConnectionStatus::RequiresReauth;
        if reauth != (expect == INVALID_GRANT) {
            out.problems
                .push(format!("connection status {:?} after {}", saved.status, out.actual));
        }
        if result.is_ok() && json["access_token"] == grant["access_token"] {
            out.problems.push("the refreshed token was not saved".into());
        }
    }
    emu.shutdown().await;
    out
}

// ---------------------------------------------------------------------------
// The run and the report.

/// One cell of the matrix.
type Cell = (P, Op, Fault, Expect);

#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn target_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&manifest)
        .join("target")
}

fn provider_name(p: P) -> &'static str {
    match p {
        P::Gdrive => "gdrive",
        P::Onedrive => "onedrive",
    }
}

fn expect_text(e: Expect) -> String {
    match e {
        Expect::Ok => "success, bytes intact".into(),
        Expect::Err(k) => format!("{k:?}"),
        Expect::Na(_) => "N/A".into(),
    }
}

#[test]
fn every_cell_of_the_fault_matrix() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,storage_emulator=off,hyper=debug,hyper_util=debug,h2=info,rustls=info",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut cells = Vec::new();
    for (fault, g, m) in TABLE {
        for (p, row) in [(P::Gdrive, g), (P::Onedrive, m)] {
            for (op, expect) in OPS.iter().zip(row.iter()) {
                cells.push((p, *op, *fault, *expect));
            }
        }
    }
    assert_eq!(cells.len(), TABLE.len() * 2 * OPS.len());
    let started = Instant::now();
    let results: Vec<(Cell, Option<Outcome>)> = rt.block_on(async {
        // Baselines first: their request counts bound the faulted cells' budgets.
        let mut baselines = std::collections::HashMap::new();
        for &(p, op, fault, expect) in cells.iter().filter(|c| c.2 == Fault::None) {
            let o = run_cell(p, op, fault, expect, None).await;
            baselines.insert((provider_name(p), format!("{op:?}")), o.target_requests);
        }
        futures::stream::iter(cells.iter().copied())
            .map(|cell| {
                let (p, op, fault, expect) = cell;
                let base = baselines.get(&(provider_name(p), format!("{op:?}"))).copied();
                async move {
                    let outcome = match expect {
                        Expect::Na(_) => None,
                        _ => Some(run_cell(p, op, fault, expect, base).await),
                    };
                    (cell, outcome)
                }
            })
            .buffer_unordered(12)
            .collect()
            .await
    });
    let total = started.elapsed();

    // Secrets: nowhere in the log, an error text or a Debug string.
    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let mut texts = String::new();
    let mut secrets = Vec::new();
    for (_, o) in &results {
        if let Some(o) = o {
            texts += &o.texts;
            secrets.extend(o.secrets.iter().cloned());
        }
    }
    assert!(secrets.len() > 100, "the run must have seen tokens");
    assert!(!log.is_empty(), "the run must have logged");
    let leaked: Vec<&String> = secrets
        .iter()
        .filter(|s| !s.is_empty() && (log.contains(s.as_str()) || texts.contains(s.as_str())))
        .collect();

    // The report, in table order.
    let mut report = String::new();
    let _ = writeln!(report, "# Fault matrix\n");
    let (mut green, mut na, mut red) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut rows = String::new();
    for &(p, op, fault, expect) in &cells {
        let (_, outcome) = results.iter().find(|(c, _)| *c == (p, op, fault, expect)).unwrap();
        let (status, actual, detail) = match (expect, outcome) {
            (Expect::Na(reason), _) => {
                na += 1;
                ("N/A".to_owned(), String::new(), reason.to_owned())
            }
            (_, Some(o)) if o.problems.is_empty() => {
                green += 1;
                (
                    "green".to_owned(),
                    o.actual.clone(),
                    format!(
                        "{} requests to the faulted endpoint, {:?}",
                        o.target_requests, o.elapsed
                    ),
                )
            }
            (_, Some(o)) => {
                red += 1;
                failures.push(format!(
                    "{} {op:?} {fault:?}: {}",
                    provider_name(p),
                    o.problems.join("; ")
                ));
                ("RED".to_owned(), o.actual.clone(), o.problems.join("; "))
            }
            (_, None) => unreachable!(),
        };
        let _ = writeln!(
            rows,
            "| {} | {op:?} | {fault:?} | {} | {status} | {actual} | {} |",
            provider_name(p),
            expect_text(expect),
            detail.replace('|', "/")
        );
    }
    let _ = writeln!(
        report,
        "{} cells: {green} green, {na} N/A, {red} red; {:.1} s; retry budget {MAX_ATTEMPTS} attempts, \
         slow cells {SLOW_DELAY} ms against a {} ms read timeout; secrets leaked: {}.\n",
        cells.len(),
        total.as_secs_f64(),
        SLOW_TIMEOUT.as_millis(),
        leaked.len()
    );
    let _ = writeln!(
        report,
        "Every applicable cell checks its outcome against the table in `tests/tests/fault_matrix.rs`, that the \
         fault fired, that the pre-seeded object and the operation's object keep their bytes, that the listing \
         holds no half-written or duplicate object, that the requests to the faulted endpoint stay within the \
         retry budget, and that no request carried `Authorization` to the content origin. The whole run's log, \
         errors and `Debug` strings are scanned for every token and client secret.\n"
    );
    let _ = writeln!(
        report,
        "| provider | operation | fault | expected | result | actual | notes |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|");
    report += &rows;
    let dir = target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fault-matrix.md"), &report).unwrap();

    assert!(
        leaked.is_empty(),
        "{} secrets reached a log line, error or Debug string",
        leaked.len()
    );
    assert!(
        failures.is_empty(),
        "{} red cells:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(green > 0 && green + na == cells.len());
}
