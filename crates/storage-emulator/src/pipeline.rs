//! The middleware every request passes: read the body, record it in the journal, apply fault
//! rules, then hand a [`Ctx`] to the handler.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;

use crate::errors;
use crate::faults::{FaultAction, Provider, RequestFacts};
use crate::http_util::{bearer, parse_query};
use crate::journal::{JournalEntry, Origin};
use crate::server::ConnInfo;
use crate::state::Shared;

/// Largest request body the emulator reads (Graph's simple upload allows 250 MB,
/// <https://learn.microsoft.com/graph/api/driveitem-put-content>; bigger uploads use sessions).
pub(crate) const MAX_BODY: usize = 300 * 1024 * 1024;

/// What a handler gets: the buffered request plus any fault it must act on itself.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub method: Method,
    /// Raw (percent-encoded) path.
    pub path: String,
    /// Form-decoded query parameters.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `AcceptPartialChunk` or `ExpireUploadSession`, for the upload handlers.
    pub fault: Option<FaultAction>,
}

impl Ctx {
    /// The first value of a query parameter.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        crate::http_util::query_get(&self.query, key)
    }

    /// A header value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        crate::http_util::header_str(&self.headers, name)
    }

    /// The last path segment, percent-decoded (lossy for invalid UTF-8, so no request is
    /// refused for its encoding before the handler sees it).
    pub(crate) fn last_segment(&self) -> String {
        crate::http_util::percent_decode(self.path.rsplit('/').next().unwrap_or_default())
    }

    /// The first path segment, percent-decoded.
    pub(crate) fn first_segment(&self) -> String {
        crate::http_util::percent_decode(self.path.trim_start_matches('/').split('/').next().unwrap_or_default())
    }

    /// The bearer token, if any.
    pub(crate) fn bearer(&self) -> Option<&str> {
        bearer(&self.headers)
    }
}

/// Which provider a path belongs to.
pub(crate) fn provider_of(origin: Origin, path: &str) -> Option<Provider> {
    match origin {
        Origin::Api => {
            if path.starts_with("/drive/")
                || path.starts_with("/upload/")
                || path.starts_with("/resumable/")
                || path == "/token"
                || path == "/revoke"
                || path.starts_with("/o/oauth2/")
            {
                Some(Provider::Google)
            } else if path.starts_with("/v1.0/") || path.contains("/oauth2/v2.0/") {
                Some(Provider::Microsoft)
            } else {
                None
            }
        }
        Origin::Content => {
            if path.starts_with("/upload/") {
                Some(Provider::Google)
            } else if path.starts_with("/up/") || path.starts_with("/dl/") {
                Some(Provider::Microsoft)
            } else {
                None
            }
        }
    }
}

/// The middleware: serves the request across the emulated link, if any, and
/// when configured logs one line to stderr.
pub(crate) async fn pipeline(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let half_rtt = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.shaper.as_ref())
        .map(|s| s.half_rtt())
        .filter(|d| !d.is_zero());
    if let Some(d) = half_rtt {
        // The request's way to the server…
        tokio::time::sleep(d).await;
    }
    let line = shared
        .config
        .log_requests
        .then(|| format!("{} {}", req.method(), req.uri().path()));
    let resp = serve_request(shared, req, next).await;
    if let Some(line) = line {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "storage-emulator: {line} -> {}",
            resp.status().as_u16()
        );
    }
    if let Some(d) = half_rtt {
        // …and the response's way back, before its first byte.
        tokio::time::sleep(d).await;
    }
    resp
}

async fn serve_request(shared: Arc<Shared>, req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let (mut parts, body) = req.into_parts();
    let origin = conn.as_ref().map_or(Origin::Api, |c| c.origin);
    let path = parts.uri.path().to_owned();
    let provider = provider_of(origin, &path);
    let grant_key = bearer(&parts.headers)
        .and_then(|t| shared.grants.lock().grant_of(t))
        .map_or_else(|| "anonymous".to_owned(), |g| g.to_string());
    // The rules are consulted before the body is read: some of them read it slowly.
    let action = shared.faults.take(&RequestFacts {
        provider,
        origin,
        method: parts.method.as_str(),
        path: &path,
        grant: &grant_key,
    });
    let read = match &action {
        Some(FaultAction::DripRequestBody { bytes, every_millis }) => {
            read_slowly(body, *bytes, Duration::from_millis(*every_millis), None).await
        }
        Some(FaultAction::StallRequestBody { after_bytes, millis }) => {
            read_slowly(
                body,
                u64::MAX,
                Duration::ZERO,
                Some((*after_bytes, Duration::from_millis(*millis))),
            )
            .await
        }
        _ => axum::body::to_bytes(body, MAX_BODY).await.ok(),
    };
    let Some(mut body) = read else {
        return errors::default_error(provider, 413);
    };
    let raw_query = parts.uri.query().map(str::to_owned);
    shared.journal.record(JournalEntry {
        seq: 0,
        connection: conn.as_ref().map_or(0, |c| c.id),
        version: format!("{:?}", parts.version),
        origin,
        provider,
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        query: raw_query.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len: body.len() as u64,
        at: chrono::Utc::now(),
    });

    let mut delay = None;
    let mut delay_response = None;
    let mut cut: Option<(u64, bool)> = None;
    let mut reset_after = false;
    let mut handler_fault = None;
    match action {
        None => {}
        Some(FaultAction::Respond { status, headers, body }) => return respond(provider, status, &headers, body),
        Some(FaultAction::ResetBeforeResponse) => {
            if let Some(conn) = &conn {
                conn.kill.fire(true);
                return std::future::pending().await;
            }
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(FaultAction::ResetAfterProcessing) => reset_after = true,
        Some(FaultAction::ResetMidBody { after_bytes }) => cut = Some((after_bytes, true)),
        Some(FaultAction::TruncateBody { after_bytes }) => cut = Some((after_bytes, false)),
        Some(FaultAction::Delay { millis }) => delay = Some(Duration::from_millis(millis)),
        Some(FaultAction::DelayResponse { millis }) => delay_response = Some(Duration::from_millis(millis)),
        Some(FaultAction::CorruptRequestBody { offset }) => {
            if let Ok(at) = usize::try_from(offset)
                && at < body.len()
            {
                let mut damaged = body.to_vec();
                damaged[at] ^= 0xFF;
                body = axum::body::Bytes::from(damaged);
            }
        }
        // Done while the body was read.
        Some(FaultAction::DripRequestBody { .. } | FaultAction::StallRequestBody { .. }) => {}
        Some(FaultAction::RateLimitPerGrant { retry_after_secs, .. }) => return throttled(provider, retry_after_secs),
        Some(other @ (FaultAction::AcceptPartialChunk { .. } | FaultAction::ExpireUploadSession)) => {
            handler_fault = Some(other);
        }
    }

    let ctx = Ctx {
        method: parts.method.clone(),
        path,
        query: parse_query(raw_query.as_deref()),
        headers: parts.headers.clone(),
        body,
        fault: handler_fault,
    };
    parts.extensions.insert(ctx);
    // The request is here in full: it is handled to its end even when the
    // client hangs up meanwhile, as a real service does not undo a request
    // whose sender went away (the stricter reading for the library: a
    // cancelled call may still have taken effect).
    let handled = tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        next.run(Request::from_parts(parts, Body::empty())).await
    });
    let Ok(resp) = handled.await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(d) = delay_response {
        tokio::time::sleep(d).await;
    }
    match (cut, conn) {
        (_, Some(conn)) if reset_after => {
            drop(resp);
            conn.kill.fire(true);
            std::future::pending().await
        }
        (Some((after, reset)), Some(conn)) => cut_body(resp, after, reset, conn).await,
        _ => resp,
    }
}

/// Reads a request body at no more than `bytes` per `every` on average, and
/// with `stall = (after, pause)` pauses once after `after` bytes; `None` when it
/// is over [`MAX_BODY`] or the client went away. hyper reads from the socket
/// only as the body is polled, so a pause here is a pause on the wire.
async fn read_slowly(body: Body, bytes: u64, every: Duration, stall: Option<(u64, Duration)>) -> Option<Bytes> {
    let started = tokio::time::Instant::now();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut stall = stall;
    while let Some(piece) = stream.next().await {
        let piece = piece.ok()?;
        buf.extend_from_slice(&piece);
        if buf.len() > MAX_BODY {
            return None;
        }
        let read = buf.len() as u64;
        if let Some((after, pause)) = stall
            && read >= after
        {
            stall = None;
            tokio::time::sleep(pause).await;
        }
        if bytes != u64::MAX && bytes > 0 {
            let due = every.saturating_mul(u32::try_from(read / bytes).unwrap_or(u32::MAX));
            tokio::time::sleep_until(started + due).await;
        }
    }
    Some(Bytes::from(buf))
}

/// A scripted answer; without a body, the provider's error JSON for the status.
fn respond(provider: Option<Provider>, status: u16, headers: &[(String, String)], body: Option<String>) -> Response {
    let mut resp = match body {
        None => errors::default_error(provider, status),
        Some(body) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let json = body.trim_start().starts_with('{');
            let mut resp = (status, body).into_response();
            if json {
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            resp
        }
    };
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// The throttling answer of each provider.
///
/// Drive answers per-user rate limits with 403 `userRateLimitExceeded`
/// (<https://developers.google.com/drive/api/guides/limits>,
/// <https://developers.google.com/drive/api/guides/handle-errors>); Graph answers 429 with
/// `Retry-After` in seconds (<https://learn.microsoft.com/graph/throttling>).
fn throttled(provider: Option<Provider>, retry_after: Option<u64>) -> Response {
    let mut resp = match provider {
        Some(Provider::Microsoft) => {
            errors::graph_error(429, "activityLimitReached", "The app or user has been throttled.")
        }
        _ => errors::json_response(
            403,
            &errors::google_error_json(403, "userRateLimitExceeded", None),
            errors::GOOGLE_JSON,
        ),
    };
    let secs = match provider {
        Some(Provider::Microsoft) => Some(retry_after.unwrap_or(1)),
        _ => retry_after,
    };
    if let Some(secs) = secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Sends the response head and the first `after` body bytes, then ends the connection
/// (RST when `reset`, FIN otherwise) while `Content-Length` still promises the full body.
async fn cut_body(resp: Response, after: u64, reset: bool, conn: ConnInfo) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(full) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len() as u64));
    let keep = usize::try_from(after).unwrap_or(usize::MAX).min(full.len());
    let head = full.slice(..keep);
    let kill = conn.kill;
    let tail = futures::stream::once(async move {
        // Give hyper time to flush the head before the connection goes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        kill.fire(reset);
        std::future::pending::<Result<Bytes, std::io::Error>>().await
    });
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(tail);
    Response::from_parts(parts, Body::from_stream(stream))
}
