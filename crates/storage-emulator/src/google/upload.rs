//! Drive uploads: `uploadType=media`, `multipart` and `resumable`, and resumable session URIs.
//!
//! Source for the protocol unless noted:
//! <https://developers.google.com/drive/api/guides/manage-uploads>.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::files::{file_not_found, metadata_body, respond_masked};
use super::multipart;
use super::store::{Content, DriveSession, SessionTarget};
use crate::errors::google_error;
use crate::faults::FaultAction;
use crate::http_util::{ContentRange, parse_content_range, random_id};
use crate::pipeline::Ctx;
use crate::state::Shared;
use storage_core::Md5Hasher;

/// Resumable chunks other than the last must be multiples of 256 KiB (262,144 bytes)
/// (<https://developers.google.com/drive/api/guides/manage-uploads#resumable>, "Upload in
/// chunks").
pub(crate) const CHUNK_UNIT: u64 = 256 * 1024;

const DEFAULT_FIELDS: &str = "kind,id,name,mimeType";

/// `POST /upload/drive/v3/files` and `POST /resumable/upload/drive/v3/files` (files.create).
pub(crate) async fn create(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    start(&shared, &ctx, None)
}

/// `PATCH /upload/drive/v3/files/{id}` and the `/resumable/...` form (files.update with media).
pub(crate) async fn update(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let id = ctx.last_segment();
    start(&shared, &ctx, Some(id))
}

fn start(shared: &Shared, ctx: &Ctx, update: Option<String>) -> Response {
    if let Err(resp) = super::authorize(shared, ctx) {
        return resp;
    }
    if let Some(id) = &update
        && shared.drive.lock().visible(id).is_none()
    {
        return file_not_found(id);
    }
    match ctx.param("uploadType") {
        Some("media") => {
            let mime = ctx.header("content-type").map(str::to_owned);
            store(shared, ctx, update, &Map::new(), ctx.body.clone(), mime)
        }
        Some("multipart") => multipart_upload(shared, ctx, update),
        Some("resumable") => initiate(shared, ctx, update),
        other => google_error(
            400,
            "invalid",
            &format!(
                "Invalid upload type: {}; expected media, multipart or resumable",
                other.unwrap_or("(none)")
            ),
        ),
    }
}

/// `uploadType=multipart`: a `multipart/related` body, metadata part then media part.
fn multipart_upload(shared: &Shared, ctx: &Ctx, update: Option<String>) -> Response {
    let Some(boundary) = ctx.header("content-type").and_then(multipart::boundary) else {
        return google_error(
            400,
            "badContent",
            "Content-Type must be multipart/related with a boundary",
        );
    };
    let Some(parts) = multipart::parse(&ctx.body, &boundary) else {
        return google_error(400, "badContent", "Malformed multipart body");
    };
    let [meta_part, media_part, ..] = parts.as_slice() else {
        return google_error(
            400,
            "badContent",
            "Multipart body must contain a metadata part and a media part",
        );
    };
    let meta = match metadata_body(&meta_part.body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    if let Some(resp) = update.as_ref().and_then(|_| super::files::unwritable(&meta)) {
        return resp;
    }
    let mime = media_part.header("content-type").map(str::to_owned);
    store(shared, ctx, update, &meta, media_part.body.clone(), mime)
}

/// Stores a one-request upload: 200 with the File.
fn store(
    shared: &Shared,
    ctx: &Ctx,
    update: Option<String>,
    meta: &Map<String, Value>,
    content: Bytes,
    mime: Option<String>,
) -> Response {
    // Hashed before the store is locked, so that other requests need not wait.
    let content = Content::hashed(content);
    let mut drive = shared.drive.lock();
    if shared
        .config
        .drive_quota_bytes
        .is_some_and(|limit| drive.usage() + content.bytes.len() as u64 > limit)
    {
        drop(drive);
        return quota_exceeded();
    }
    let meta_mime = meta.get("mimeType").and_then(Value::as_str).map(str::to_owned);
    let mime = meta_mime.or(mime);
    let result = match &update {
        None => drive.create(meta, content, mime.as_deref()).map(Some),
        Some(id) => drive.replace_content(id, meta, content, mime.as_deref()),
    };
    drop(drive);
    match result {
        Ok(Some(file)) => respond_masked(ctx, &file.resource(), DEFAULT_FIELDS, 200),
        Ok(None) => file_not_found(update.as_deref().unwrap_or_default()),
        Err(e) => google_error(400, "badRequest", &e.0),
    }
}

/// 403 `storageQuotaExceeded`
/// (<https://developers.google.com/drive/api/guides/handle-errors>; domain `usageLimits`).
fn quota_exceeded() -> Response {
    google_error(
        403,
        "storageQuotaExceeded",
        "The user's Drive storage quota has been exceeded.",
    )
}

/// `uploadType=resumable`: body = metadata; `X-Upload-Content-Type` and
/// `X-Upload-Content-Length` are optional. Answer: 200, empty body, `Location: <session URI>`
/// (absolute; google-drive3 7.0.0 panics without it, `src/api.rs` files.create `doit`).
/// Real session URIs look like `…/upload/drive/v3/files?uploadType=resumable&upload_id=…` and
/// come with `X-GUploader-UploadID` (github.com/googleapis/google-api-php-client issue 1227).
fn initiate(shared: &Shared, ctx: &Ctx, update: Option<String>) -> Response {
    let meta = match metadata_body(&ctx.body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    if let Some(resp) = update.as_ref().and_then(|_| super::files::unwritable(&meta)) {
        return resp;
    }
    let total = match ctx.header("x-upload-content-length") {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return google_error(400, "badRequest", "Invalid X-Upload-Content-Length");
            }
        },
    };
    let mime = ctx
        .header("x-upload-content-type")
        .or_else(|| meta.get("mimeType").and_then(Value::as_str))
        .unwrap_or("application/octet-stream")
        .to_owned();
    let id = format!("AEnB2U{}", random_id(40));
    let session = DriveSession {
        target: match update {
            None => SessionTarget::Create(meta),
            Some(file) => SessionTarget::Update(file, meta),
        },
        mime_type: mime,
        total,
        data: Vec::new(),
        md5: Md5Hasher::new(),
        expires_at: chrono::Utc::now() + shared.config.upload_session_lifetime,
        completed: None,
        fields: ctx.param("fields").map(str::to_owned),
    };
    shared.drive.lock().sessions.insert(id.clone(), session);
    let location = shared.content_url(&format!("upload/drive/v3/files?uploadType=resumable&upload_id={id}"));
    let mut resp = StatusCode::OK.into_response();
    if let (Ok(loc), Ok(uid)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
        resp.headers_mut().insert("x-guploader-uploadid", uid);
    }
    resp
}

/// 404 for an unknown or expired session: the documented reaction is to start the whole upload
/// over (<https://developers.google.com/drive/api/guides/manage-uploads#resume-upload>,
/// "404 Not Found"); the body text is UNCONFIRMED. (410 for sessions killed by bad data is only
/// confirmed for Cloud Storage, so it is left to fault rules.)
fn session_not_found() -> Response {
    google_error(404, "notFound", "Upload session not found or expired.")
}

/// 400 for a malformed `Content-Range`; the message is the one Google sends
/// (github.com/googleapis/google-api-php-client issue 1227).
fn bad_content_range() -> Response {
    google_error(400, "badRequest", "Failed to parse Content-Range header.")
}

/// 308 "Resume Incomplete": `Range: bytes=0-N` names the last stored byte; no `Range` at all
/// when nothing is stored (<https://developers.google.com/drive/api/guides/manage-uploads#resume-upload>).
fn incomplete(received: u64) -> Response {
    let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
    if received > 0
        && let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", received - 1))
    {
        resp.headers_mut().insert(header::RANGE, v);
    }
    resp
}

/// Chunks to a session URI, by `PUT` (documented) or `POST` (what google-api-go-client,
/// rclone and google-drive3 send; google-apis-common 8.0.0 `src/lib.rs` `ResumableUploadHelper`).
/// No `Authorization` is needed: the session URI is the credential.
pub(crate) async fn session(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if ctx.method != Method::PUT && ctx.method != Method::POST {
        return google_error(405, "badRequest", "Method not allowed on an upload session");
    }
    let Some(id) = ctx.param("upload_id").map(str::to_owned) else {
        return session_not_found();
    };
    let ahead = hash_ahead(&shared, &id, &ctx);
    let mut drive = shared.drive.lock();
    let now = chrono::Utc::now();
    let Some(session) = drive.sessions.get_mut(&id) else {
        return session_not_found();
    };
    if ctx.fault == Some(FaultAction::ExpireUploadSession) {
        session.expires_at = now - chrono::Duration::seconds(1);
    }
    if session.expires_at <= now {
        return session_not_found();
    }
    let fields = session.fields.clone();
    if let Some(file_id) = session.completed.clone() {
        let created = matches!(session.target, SessionTarget::Create(_));
        let Some(file) = drive.get(&file_id).cloned() else {
            return session_not_found();
        };
        drop(drive);
        return finished(&ctx, &file.resource(), fields.as_deref(), created);
    }
    let received = session.data.len() as u64;
    let range = match ctx.header("content-range") {
        Some(text) => match parse_content_range(text) {
            Some(r) => r,
            None => return bad_content_range(),
        },
        // No Content-Range and no body: a status query.
        None if ctx.body.is_empty() => ContentRange::Unsatisfied { total: None },
        // No Content-Range: the body is the whole upload in one request.
        None => ContentRange::Bytes {
            first: 0,
            last: (ctx.body.len() as u64).saturating_sub(1),
            total: Some(ctx.body.len() as u64),
        },
    };
    let (first, declared_total) = match range {
        ContentRange::Unsatisfied { total } => (received, total),
        ContentRange::Bytes { first, last, total } => {
            if last - first + 1 != ctx.body.len() as u64 {
                return google_error(
                    400,
                    "badRequest",
                    "Content-Range does not match the request body length.",
                );
            }
            (first, total)
        }
    };
    if let (Some(known), Some(declared)) = (session.total, declared_total)
        && known != declared
    {
        return google_error(400, "badRequest", "Content-Range total does not match the upload size.");
    }
    if session.total.is_none() {
        session.total = declared_total;
    }
    // A chunk must continue where the stored bytes end; a gap cannot be stored.
    if first > received {
        return google_error(
            400,
            "badRequest",
            &format!("Content-Range starts at {first}, but only {received} bytes were received."),
        );
    }
    // Overlapping resends (after a 308 that kept fewer bytes) keep only the new tail
    // (UNCONFIRMED: Google's handling of overlap is undocumented).
    let skip = usize::try_from(received - first).unwrap_or(usize::MAX);
    let fresh = if matches!(range, ContentRange::Bytes { .. }) && skip < ctx.body.len() {
        ctx.body.slice(skip..)
    } else {
        Bytes::new()
    };
    let mut keep = fresh.len() as u64;
    let is_last = session.total.is_some_and(|t| received + keep == t);
    if !is_last && !shared.config.lenient {
        // A non-final chunk that is not a whole number of 256 KiB units: the server keeps only
        // whole units and says so in the 308 `Range` (UNCONFIRMED; believed from rclone and
        // google-api-go-client behaviour, which resend from `Range`+1).
        let aligned_end = (received + keep) / CHUNK_UNIT * CHUNK_UNIT;
        keep = aligned_end.saturating_sub(received);
    }
    if let Some(FaultAction::AcceptPartialChunk { bytes }) = ctx.fault {
        keep = keep.min(bytes);
    }
    let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(fresh.len());
    session.data.extend_from_slice(&fresh[..keep]);
    match ahead {
        Some(Ahead { held, md5 }) if held == received && keep == fresh.len() => session.md5 = md5,
        _ => session.md5.update(&fresh[..keep]),
    }
    let received = session.data.len() as u64;
    if session.total != Some(received) {
        return incomplete(received);
    }
    // Complete: create or update the file.
    let data = Content {
        bytes: Bytes::from(std::mem::take(&mut session.data)),
        md5: std::mem::take(&mut session.md5).finish().to_provider_string(),
    };
    let target = session.target.clone();
    let mime = session.mime_type.clone();
    if shared
        .config
        .drive_quota_bytes
        .is_some_and(|limit| drive.usage() + data.bytes.len() as u64 > limit)
    {
        return quota_exceeded();
    }
    let result = match &target {
        SessionTarget::Create(meta) => drive.create(meta, data, Some(&mime)).map(Some),
        SessionTarget::Update(id, meta) => drive.replace_content(id, meta, data, Some(&mime)),
    };
    let file = match result {
        Ok(Some(file)) => file,
        Ok(None) => return session_not_found(),
        Err(e) => return google_error(400, "badRequest", &e.0),
    };
    if let Some(session) = drive.sessions.get_mut(&id) {
        session.completed = Some(file.id.clone());
    }
    drop(drive);
    finished(
        &ctx,
        &file.resource(),
        fields.as_deref(),
        matches!(target, SessionTarget::Create(_)),
    )
}

/// A session's md5 once a chunk's new bytes are added, computed before the
/// store's lock is taken to store them.
struct Ahead {
    /// The bytes the session held when its md5 was read.
    held: u64,
    md5: Md5Hasher,
}

/// Hashes the bytes of a chunk past those its session holds, without holding
/// the store's lock: hashing 64 MiB takes about 0.1 s, and inside the lock it
/// held up every other request to the emulator, as no real service does. The
/// result is used only when the session still holds `held` bytes and keeps
/// the whole rest of the chunk (the usual case); otherwise (a concurrent
/// resend, a partial accept, bytes past a 256 KiB boundary dropped) the kept
/// bytes are hashed under the lock, as before.
fn hash_ahead(shared: &Shared, id: &str, ctx: &Ctx) -> Option<Ahead> {
    let first = match ctx.header("content-range") {
        Some(text) => match parse_content_range(text)? {
            ContentRange::Bytes { first, .. } => first,
            ContentRange::Unsatisfied { .. } => return None,
        },
        None => 0,
    };
    let (held, mut md5) = {
        let drive = shared.drive.lock();
        let session = drive.sessions.get(id)?;
        (session.data.len() as u64, session.md5.clone())
    };
    let fresh = ctx.body.get(usize::try_from(held.checked_sub(first)?).ok()?..)?;
    if fresh.is_empty() {
        return None;
    }
    md5.update(fresh);
    Some(Ahead { held, md5 })
}

/// Completion: 201 Created for files.create, 200 OK for files.update (rclone
/// `backend/drive/upload.go`, quoting the manage-uploads guide), with the File JSON masked by
/// the initiating request's `fields`.
fn finished(ctx: &Ctx, file: &Value, fields: Option<&str>, created: bool) -> Response {
    let status = if created { 201 } else { 200 };
    let mut ctx = ctx.clone();
    ctx.query.retain(|(k, _)| k != "fields");
    if let Some(f) = fields {
        ctx.query.push(("fields".to_owned(), f.to_owned()));
    }
    respond_masked(&ctx, file, DEFAULT_FIELDS, status)
}
