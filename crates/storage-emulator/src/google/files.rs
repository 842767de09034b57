//! Drive v3 `files.get` / `files.list` / `files.delete` / metadata `files.create` and
//! `files.update`, and `about.get`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::fields::FieldMask;
use super::query::Query;
use super::store::{Content, DriveFile};
use crate::errors::{GOOGLE_JSON, google_error, google_error_at, json_response};
use crate::pipeline::Ctx;
use crate::state::Shared;

/// Fields of a File when the request names none: `kind,id,name,mimeType`
/// (<https://developers.google.com/drive/api/guides/fields-parameter>).
const DEFAULT_FILE_FIELDS: &str = "kind,id,name,mimeType";

/// Fields of a FileList when the request names none.
const DEFAULT_LIST_FIELDS: &str = "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)";

/// 404 for an unknown file: reason `notFound`, message `File not found: {id}.`,
/// `location: "fileId"`, `locationType: "parameter"`
/// (<https://developers.google.com/drive/api/guides/handle-errors#resolve_a_404_error_file_not_found_fileid>).
pub(crate) fn file_not_found(id: &str) -> Response {
    google_error_at(
        404,
        "notFound",
        &format!("File not found: {id}."),
        "fileId",
        "parameter",
    )
}

/// Applies the request's `fields` mask (or `default`) and answers with `status`.
/// A malformed mask is a 400 (<https://developers.google.com/drive/api/guides/fields-parameter>);
/// the reason `invalidParameter` and message text are UNCONFIRMED.
pub(crate) fn respond_masked(ctx: &Ctx, value: &Value, default: &str, status: u16) -> Response {
    let mask_text = ctx.param("fields").unwrap_or(default);
    match FieldMask::parse(mask_text) {
        Some(mask) => json_response(status, &mask.apply(value), GOOGLE_JSON),
        None => invalid_fields(mask_text),
    }
}

fn invalid_fields(mask: &str) -> Response {
    google_error_at(
        400,
        "invalidParameter",
        &format!("Invalid field selection {mask}"),
        "fields",
        "parameter",
    )
}

/// `GET /drive/v3/files/{fileId}`: metadata, or the content with `alt=media`.
pub(crate) async fn get(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let id = ctx.last_segment();
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    let Some(file) = shared.drive.lock().visible(&id).cloned() else {
        return file_not_found(&id);
    };
    match ctx.param("alt").unwrap_or("json") {
        "json" => respond_masked(&ctx, &file.resource(), DEFAULT_FILE_FIELDS, 200),
        "media" => download(&ctx, &file),
        other => google_error_at(
            400,
            "invalidParameter",
            &format!("Invalid value '{other}'. Values must be one of: json, media"),
            "alt",
            "parameter",
        ),
    }
}

/// `alt=media`: the bytes, with `Content-Type` = the file's media type
/// (<https://developers.google.com/drive/api/guides/manage-downloads>). A `Range` header gives
/// 206 with `Content-Range` (RFC 9110 §14.4; documented as "Partial download" on the same page);
/// an unsatisfiable range gives 416 (UNCONFIRMED for Drive). Folders (no binary content) get
/// 403 `fileNotDownloadable` (reason UNCONFIRMED).
fn download(ctx: &Ctx, file: &DriveFile) -> Response {
    if file.is_folder() {
        return google_error(
            403,
            "fileNotDownloadable",
            "Only files with binary content can be downloaded.",
        );
    }
    crate::http_util::serve_bytes(&file.content, &file.mime_type, ctx.header("range"), |size| {
        google_error(
            416,
            "requestedRangeNotSatisfiable",
            &format!("Request range not satisfiable for size {size}"),
        )
    })
}

/// `DELETE /drive/v3/files/{fileId}`: 204 with an empty body; permanent, and a folder's
/// descendants go too (<https://developers.google.com/drive/api/reference/rest/v3/files/delete>).
pub(crate) async fn delete(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let id = ctx.last_segment();
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    if shared.drive.lock().delete(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        file_not_found(&id)
    }
}

/// Parses an optional JSON object body (an empty body is an empty object).
pub(crate) fn metadata_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(google_error(400, "parseError", "Parse Error")),
    }
}

/// `POST /drive/v3/files`: creates a file from metadata alone (e.g. a folder).
pub(crate) async fn create_metadata(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    let meta = match metadata_body(&ctx.body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let created = shared.drive.lock().create(&meta, Content::hashed(Bytes::new()), None);
    match created {
        Ok(file) => respond_masked(&ctx, &file.resource(), DEFAULT_FILE_FIELDS, 200),
        Err(e) => google_error(400, "badRequest", &e.0),
    }
}

/// `PATCH /drive/v3/files/{fileId}`: metadata update with patch semantics; parents change only
/// through `addParents` / `removeParents`
/// (<https://developers.google.com/drive/api/reference/rest/v3/files/update>).
pub(crate) async fn update_metadata(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let id = ctx.last_segment();
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    let meta = match metadata_body(&ctx.body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    if let Some(resp) = unwritable(&meta) {
        return resp;
    }
    let mut drive = shared.drive.lock();
    let add: Vec<String> = split_ids(ctx.param("addParents"))
        .into_iter()
        .map(|p| drive.resolve(&p))
        .collect();
    let remove: Vec<String> = split_ids(ctx.param("removeParents"))
        .into_iter()
        .map(|p| drive.resolve(&p))
        .collect();
    if let Some(missing) = add.iter().find(|p| drive.visible(p).is_none_or(|f| !f.is_folder())) {
        let missing = missing.clone();
        drop(drive);
        return file_not_found(&missing);
    }
    let Some(current) = drive.visible(&id) else {
        drop(drive);
        return file_not_found(&id);
    };
    let kept = current.parents.iter().filter(|p| !remove.contains(p));
    let after: std::collections::BTreeSet<&String> = kept.chain(&add).collect();
    if after.len() > current.parents.len() {
        drop(drive);
        // Drive allows one parent per item since 2020
        // (https://developers.google.com/workspace/drive/api/guides/ref-single-parent);
        // the answer's text as reported in
        // https://github.com/RobinBobin/react-native-google-drive-api-wrapper/issues/35.
        return google_error(
            403,
            "cannotAddParent",
            "Increasing the number of parents is not allowed",
        );
    }
    let real_id = drive.resolve(&id);
    if add.contains(&real_id) || drive.descendants(&real_id).iter().any(|d| add.contains(d)) {
        drop(drive);
        // Reason and text UNCONFIRMED: the strict reading refuses a cycle.
        return google_error(
            400,
            "invalidParent",
            "A folder cannot be moved into itself or its descendants",
        );
    }
    let Some(file) = drive.visible_mut(&id) else {
        drop(drive);
        return file_not_found(&id);
    };
    if let Err(e) = super::store::apply_metadata(file, &meta) {
        drop(drive);
        return google_error(400, "badRequest", &e.0);
    }
    let trashed = meta.get("trashed").and_then(Value::as_bool);
    file.parents.retain(|p| !remove.contains(p));
    for p in add {
        if !file.parents.contains(&p) {
            file.parents.push(p);
        }
    }
    file.modified = chrono::Utc::now();
    file.version += 1;
    let resource = file.resource();
    if let Some(t) = trashed {
        drive.cascade_trash(&id, t);
    }
    drop(drive);
    respond_masked(&ctx, &resource, DEFAULT_FILE_FIELDS, 200)
}

/// The fields `files.update` may not set in its body, as a 403 `fieldNotWritable`:
/// `parents` with the text reported in
/// <https://github.com/prasmussen/gdrive/issues/341>, read-only fields with the one in
/// <https://github.com/google/google-api-objectivec-client/issues/145>; a `trashed`
/// that is no boolean is a 400 (text UNCONFIRMED).
pub(crate) fn unwritable(meta: &Map<String, Value>) -> Option<Response> {
    const READ_ONLY: &[&str] = &[
        "id",
        "kind",
        "size",
        "md5Checksum",
        "sha1Checksum",
        "sha256Checksum",
        "version",
        "headRevisionId",
        "createdTime",
        "trashedTime",
        "trashingUser",
        "explicitlyTrashed",
        "webContentLink",
        "webViewLink",
        "ownedByMe",
        "owners",
        "capabilities",
        "quotaBytesUsed",
    ];
    if meta.contains_key("parents") {
        return Some(google_error(
            403,
            "fieldNotWritable",
            "The parents field is not directly writable in update requests. Use the addParents and removeParents parameters instead.",
        ));
    }
    if READ_ONLY.iter().any(|k| meta.contains_key(*k)) {
        return Some(google_error(
            403,
            "fieldNotWritable",
            "The resource body includes fields which are not directly writable.",
        ));
    }
    if meta.get("trashed").is_some_and(|t| !t.is_boolean()) {
        return Some(google_error(400, "invalid", "Invalid value for: trashed"));
    }
    if meta.get("name").is_some_and(|n| !n.is_string()) {
        return Some(google_error(400, "invalid", "Invalid value for: name"));
    }
    None
}

fn split_ids(list: Option<&str>) -> Vec<String> {
    list.map(|l| {
        l.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// Page tokens are opaque to clients; the emulator encodes the next offset.
fn encode_page_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("emu-offset:{offset}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("emu-offset:")?.parse().ok()
}

/// `GET /drive/v3/files`: search with `q`, paged by `pageSize` (1–1000, default 100) and
/// `pageToken`; `nextPageToken` is absent on the last page; trashed files are included unless
/// `q` excludes them (<https://developers.google.com/drive/api/reference/rest/v3/files/list>).
/// Results come in creation order; `orderBy` is ignored.
pub(crate) async fn list(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    let query = match ctx.param("q").filter(|q| !q.trim().is_empty()) {
        None => None,
        Some(q) => match Query::parse(q) {
            Some(query) => Some(query),
            // Malformed `q`: 400 "Invalid Value" with reason `invalid` (UNCONFIRMED).
            None => return google_error_at(400, "invalid", "Invalid Value", "q", "parameter"),
        },
    };
    let page_size = match ctx.param("pageSize") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return google_error_at(
                    400,
                    "invalid",
                    &format!("Invalid value '{text}'. Values must be within the range: [1, 1000]"),
                    "pageSize",
                    "parameter",
                );
            }
        },
    };
    let offset = match ctx.param("pageToken") {
        None => 0,
        Some(token) => match decode_page_token(token) {
            Some(o) => o,
            None => {
                return google_error_at(400, "invalid", "Invalid Value", "pageToken", "parameter");
            }
        },
    };
    let drive = shared.drive.lock();
    let root = drive.root_id().to_owned();
    let hits: Vec<Value> = drive
        .visible_listing(|f| query.as_ref().is_none_or(|q| q.matches(f, &root)))
        .into_iter()
        .map(DriveFile::resource)
        .collect();
    drop(drive);
    let page_size = shared.config.max_page_size.map_or(page_size, |cap| page_size.min(cap));
    let end = (offset + page_size).min(hits.len());
    let page = hits.get(offset.min(end)..end).unwrap_or_default().to_vec();
    let mut body = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": page});
    if end < hits.len() {
        body["nextPageToken"] = json!(encode_page_token(end));
    }
    respond_masked(&ctx, &body, DEFAULT_LIST_FIELDS, 200)
}

/// `GET /drive/v3/about`: `fields` is required for every `about` method
/// (<https://developers.google.com/drive/api/reference/rest/v3/about/get>; the 400 message
/// text is UNCONFIRMED). `storageQuota` values are int64 **strings**
/// (<https://developers.google.com/drive/api/reference/rest/v3/about>).
pub(crate) async fn about(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    if ctx.param("fields").is_none() {
        return google_error_at(
            400,
            "required",
            "The 'fields' parameter is required for this method.",
            "fields",
            "parameter",
        );
    }
    let drive = shared.drive.lock();
    let usage = drive.usage();
    let trash = drive.usage_in_trash();
    drop(drive);
    let body = json!({
        "kind": "drive#about",
        "user": {
            "kind": "drive#user",
            "displayName": "Emulator User",
            "emailAddress": "user@emulator.invalid",
            "me": true,
            "permissionId": "00000000000000000001",
        },
        "storageQuota": {
            "usage": usage.to_string(),
            "usageInDrive": usage.to_string(),
            "usageInDriveTrash": trash.to_string(),
        },
    });
    let mut body = body;
    if let Some(limit) = shared.config.drive_quota_bytes {
        body["storageQuota"]["limit"] = json!(limit.to_string());
    }
    respond_masked(&ctx, &body, "*", 200)
}
