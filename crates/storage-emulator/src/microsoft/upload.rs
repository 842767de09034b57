//! Graph upload sessions: `createUploadSession` on the API listener, and the `uploadUrl` on the
//! second listener (fragment PUTs, status GET, cancel DELETE).
//!
//! Source unless noted: <https://learn.microsoft.com/graph/api/driveitem-createuploadsession>.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answers::{item_not_found, json_object};
use super::store::{Conflict, GraphSession};
use super::write::{Target, put_outcome, resolve_target};
use crate::errors::{GRAPH_JSON, graph_error, graph_error_inner, json_response};
use crate::faults::FaultAction;
use crate::http_util::{ContentRange, parse_content_range, random_id, rfc3339_secs};
use crate::pipeline::Ctx;
use crate::state::Shared;

/// Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).
pub(crate) const FRAGMENT_UNIT: u64 = 320 * 1024;

/// Each fragment request must be smaller than 60 MiB.
pub(crate) const MAX_FRAGMENT: u64 = 60 * 1024 * 1024;

/// `POST …/createUploadSession`. The optional body is
/// `{"item":{"@microsoft.graph.conflictBehavior","name","fileSize",…},"deferCommit":…}`;
/// a `name` that differs from the path's is refused ("Name from path does not match name from
/// body", github.com/apache/opendal issue 7256); `fileSize` above the free quota gets 507 and no
/// session. The answer is 200 with `uploadUrl` (on another host) and `expirationDateTime`.
pub(crate) fn create_session(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let body = match json_object(&ctx.body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let item = body.get("item").and_then(Value::as_object);
    let conflict_text = item
        .and_then(|i| i.get("@microsoft.graph.conflictBehavior"))
        .and_then(Value::as_str)
        .unwrap_or(shared.config.graph_session_conflict_default.as_str())
        .to_owned();
    let Some(conflict) = Conflict::parse(&conflict_text) else {
        return graph_error(400, "invalidRequest", "Invalid conflictBehavior.");
    };
    let total = item.and_then(|i| i.get("fileSize")).and_then(Value::as_u64);
    let body_name = item.and_then(|i| i.get("name")).and_then(Value::as_str);
    let mut graph = shared.graph.lock();
    let quota = shared.config.graph_quota_bytes;
    if let (Some(t), Some(q)) = (total, quota)
        && t > q.saturating_sub(graph.used())
    {
        return graph_error(507, "quotaLimitReached", "The maximum storage quota has been reached.");
    }
    let (parent, name) = match resolve_target(&mut graph, base, path) {
        Err(resp) => return resp,
        Ok(Target::Existing(id)) => {
            let Some(existing) = graph.get(&id) else {
                return item_not_found();
            };
            let Some(parent) = existing.parent.clone() else {
                return graph_error(400, "invalidRequest", "Cannot upload to the root.");
            };
            if existing.folder {
                return graph_error(409, "nameAlreadyExists", "A folder with this name exists.");
            }
            if conflict == Conflict::Fail && !path.is_empty() {
                return graph_error(409, "nameAlreadyExists", "The specified item name already exists.");
            }
            (parent, existing.name.clone())
        }
        Ok(Target::New { parent, name }) => (parent, name),
    };
    if let Some(body_name) = body_name
        && !body_name.eq_ignore_ascii_case(&name)
    {
        return graph_error(400, "invalidRequest", "Name from path does not match name from body");
    }
    // Addressing an existing item by id (`items/{id}/createUploadSession`) updates it.
    let conflict_text = if path.is_empty() {
        "replace".to_owned()
    } else {
        conflict_text
    };
    let id = random_id(48);
    let expires_at = chrono::Utc::now() + shared.config.upload_session_lifetime;
    graph.sessions.insert(
        id.clone(),
        GraphSession {
            parent,
            name,
            total,
            data: Vec::new(),
            expires_at,
            conflict: conflict_text,
        },
    );
    drop(graph);
    json_response(
        200,
        &json!({
            "uploadUrl": shared.content_url(&format!("up/{id}")),
            "expirationDateTime": rfc3339_secs(expires_at),
            "nextExpectedRanges": ["0-"],
        }),
        GRAPH_JSON,
    )
}

/// 404 for an expired, cancelled or unknown session; the remedy is to start over
/// (<https://learn.microsoft.com/graph/api/driveitem-createuploadsession#best-practices>).
fn session_not_found() -> Response {
    graph_error_inner(
        404,
        "itemNotFound",
        "The upload session was not found.",
        "uploadSessionNotFound",
    )
}

/// The status body: `expirationDateTime` and `nextExpectedRanges` (`["N-"]`).
fn status_body(session: &GraphSession) -> Value {
    json!({
        "expirationDateTime": rfc3339_secs(session.expires_at),
        "nextExpectedRanges": [format!("{}-", session.data.len())],
    })
}

/// Requests to an `uploadUrl`.
///
/// * `PUT` sends a fragment; `Authorization` on it may produce 401, so strict mode answers 401
///   (docs: "Including the Authorization header when issuing the PUT call may result in an HTTP
///   401 Unauthorized response"). The same rule is applied to `DELETE`, where rclone met it
///   (github.com/rclone/rclone commit d66096077).
/// * `GET` returns the status, `DELETE` cancels (204).
pub(crate) async fn session(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let id = ctx.last_segment();
    let strict = !shared.config.lenient;
    if strict && ctx.header("authorization").is_some() && (ctx.method == Method::PUT || ctx.method == Method::DELETE) {
        return graph_error(
            401,
            "unauthenticated",
            "Authorization must not be sent to the upload URL.",
        );
    }
    let now = chrono::Utc::now();
    let mut graph = shared.graph.lock();
    if ctx.fault == Some(FaultAction::ExpireUploadSession)
        && let Some(s) = graph.sessions.get_mut(&id)
    {
        s.expires_at = now - chrono::Duration::seconds(1);
    }
    if graph.sessions.get(&id).is_some_and(|s| s.expires_at <= now) {
        graph.sessions.remove(&id);
    }
    let Some(session) = graph.sessions.get_mut(&id) else {
        return session_not_found();
    };
    match ctx.method {
        Method::GET => json_response(200, &status_body(session), GRAPH_JSON),
        Method::DELETE => {
            graph.sessions.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        Method::PUT => {
            let received = session.data.len() as u64;
            let (first, last, total) = match ctx.header("content-range").map(parse_content_range) {
                Some(Some(ContentRange::Bytes {
                    first,
                    last,
                    total: Some(total),
                })) => (first, last, total),
                _ => {
                    return graph_error(
                        400,
                        "invalidRequest",
                        "The Content-Range header is missing or malformed.",
                    );
                }
            };
            let len = last - first + 1;
            if len != ctx.body.len() as u64 {
                return graph_error(
                    400,
                    "invalidRequest",
                    "The Content-Range header length does not match the provided number of bytes.",
                );
            }
            // "The declared total size for this fragment is different from that of the upload
            // session" (inner `fragmentLengthMismatch`, https://learn.microsoft.com/graph/errors).
            if session.total.is_some_and(|t| t != total) {
                return graph_error_inner(
                    400,
                    "invalidRequest",
                    "Declared total size for this fragment is different from that of the upload session.",
                    "fragmentLengthMismatch",
                );
            }
            if first < received {
                return graph_error_inner(
                    416,
                    "invalidRange",
                    "Uploaded fragment overlaps with existing data.",
                    "fragmentOverlap",
                );
            }
            if first > received {
                // Fragments must arrive in order; the status for a gap is UNCONFIRMED.
                return graph_error_inner(
                    416,
                    "invalidRange",
                    &format!("Expected the next fragment to start at {received}."),
                    "fragmentOutOfOrder",
                );
            }
            let is_last = last + 1 == total;
            if strict && len >= MAX_FRAGMENT {
                // Status and code UNCONFIRMED; the limit is documented.
                return graph_error_inner(
                    413,
                    "invalidRequest",
                    "The fragment must be smaller than 60 MiB.",
                    "maxFragmentLengthExceeded",
                );
            }
            if strict && !is_last && len % FRAGMENT_UNIT != 0 {
                // The docs say other sizes can fail to commit; rejecting at once is the
                // emulator's strict reading (status UNCONFIRMED).
                return graph_error(
                    400,
                    "invalidRequest",
                    "Fragment size must be a multiple of 320 KiB (327,680 bytes).",
                );
            }
            session.total = Some(total);
            let mut keep = len;
            if let Some(FaultAction::AcceptPartialChunk { bytes }) = ctx.fault {
                keep = keep.min(bytes);
            }
            let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(ctx.body.len());
            session.data.extend_from_slice(&ctx.body[..keep]);
            if (session.data.len() as u64) < total {
                // Each accepted fragment extends the session
                // (github.com/rclone/rclone backend/onedrive/onedrive.go).
                session.expires_at = now + shared.config.upload_session_lifetime;
                return json_response(202, &status_body(session), GRAPH_JSON);
            }
            let Some(done) = graph.sessions.remove(&id) else {
                return session_not_found();
            };
            let conflict = Conflict::parse(&done.conflict).unwrap_or(Conflict::Fail);
            let outcome = graph.put_file(
                &done.parent,
                &done.name,
                Bytes::from(done.data),
                "application/octet-stream",
                conflict,
            );
            put_outcome(&shared, &graph, outcome)
        }
        _ => graph_error(405, "invalidRequest", "Method not allowed on an upload session."),
    }
}
