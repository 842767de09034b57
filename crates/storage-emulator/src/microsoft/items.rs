//! Graph drive endpoints on the API listener (`/v1.0/...`) and the download URLs on the second
//! listener.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::answers::{invalid_name_response, item_not_found};
use super::path::{Address, AddressError, Base, Rel, parse};
use super::store::{Conflict, DownloadError, GraphStore, PutOutcome, RenameError};
use super::write::{Target, put_outcome, resolve_target};
use crate::errors::{GRAPH_JSON, graph_error, json_response};
use crate::pipeline::Ctx;
use crate::state::Shared;

/// Default and largest children page: 200 items
/// (<https://learn.microsoft.com/graph/api/driveitem-list-children>).
const PAGE_SIZE: usize = 200;

/// Largest simple upload: 250 MB (current learn.microsoft.com text of
/// <https://learn.microsoft.com/graph/api/driveitem-put-content>); over it → 413 (UNCONFIRMED).
const SIMPLE_UPLOAD_LIMIT: usize = 250 * 1000 * 1000;

/// `$select`: keeps only the listed top-level properties
/// (<https://learn.microsoft.com/graph/query-parameters#select-parameter>). Both SDKs encode the
/// key as `%24select`; the pipeline's form decoding turns it back into `$select`.
fn select(value: Value, ctx: &Ctx) -> Value {
    let Some(list) = ctx.param("$select") else {
        return value;
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
                .collect(),
        ),
        other => other,
    }
}

/// Every `/v1.0/...` request.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = super::authorize(&shared, &ctx) {
        return resp;
    }
    let drive_id = shared.graph.lock().drive_id().to_owned();
    let address = match parse(&ctx.path, &drive_id) {
        Ok(a) => a,
        Err(AddressError::UnknownDrive) => return item_not_found(),
        Err(AddressError::Invalid) => {
            return graph_error(400, "invalidRequest", &format!("Invalid request: {}", ctx.path));
        }
    };
    match address {
        Address::Drive if ctx.method == Method::GET => {
            let drive = shared.graph.lock().drive_json(shared.config.graph_quota_bytes);
            json_response(200, &select(drive, &ctx), GRAPH_JSON)
        }
        Address::Drive => method_not_allowed(),
        Address::Item { base, path, rel } => {
            let base_id = match base {
                Base::Root => shared.graph.lock().root_id().to_owned(),
                Base::Item(id) => id,
            };
            match (ctx.method.clone(), rel) {
                (Method::GET, Rel::None) => get_item(&shared, &ctx, &base_id, &path),
                (Method::DELETE, Rel::None) => delete_item(&shared, &ctx, &base_id, &path),
                (Method::PATCH, Rel::None) => update_item(&shared, &ctx, &base_id, &path),
                (Method::GET, Rel::Children) => list_children(&shared, &ctx, &base_id, &path),
                (Method::POST, Rel::Children) => create_folder(&shared, &ctx, &base_id, &path),
                (Method::GET, Rel::Content) => content_redirect(&shared, &base_id, &path),
                (Method::PUT, Rel::Content) => put_content(&shared, &ctx, &base_id, &path),
                (Method::POST, Rel::CreateUploadSession) => {
                    super::upload::create_session(&shared, &ctx, &base_id, &path)
                }
                (_, Rel::Other(rel)) => graph_error(400, "invalidRequest", &format!("Unsupported segment '{rel}'")),
                _ => method_not_allowed(),
            }
        }
    }
}

fn method_not_allowed() -> Response {
    graph_error(
        405,
        "invalidRequest",
        "The HTTP method is not allowed for this resource.",
    )
}

fn get_item(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let graph = shared.graph.lock();
    let Some(item) = graph.resolve(base, path).and_then(|id| graph.get(&id)) else {
        return item_not_found();
    };
    let value = graph.item_json(item, shared.content_base.as_str());
    drop(graph);
    json_response(200, &select(value, ctx), GRAPH_JSON)
}

/// `if-match`: 412 `resourceModified` when the header names another eTag than the item's
/// (<https://learn.microsoft.com/graph/api/driveitem-delete>, optional request headers;
/// the error code is from <https://learn.microsoft.com/graph/errors>).
fn precondition(ctx: &Ctx, item: &super::store::GraphItem) -> Option<Response> {
    let wanted = ctx.header("if-match")?;
    let etag = GraphStore::etag(item);
    (wanted.trim() != "*" && wanted.trim() != etag)
        .then(|| graph_error(412, "resourceModified", "ETag does not match current item's value"))
}

/// `DELETE`: 204 No Content (<https://learn.microsoft.com/graph/api/driveitem-delete>).
fn delete_item(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let mut graph = shared.graph.lock();
    let Some(id) = graph.resolve(base, path) else {
        return item_not_found();
    };
    if id == graph.root_id() {
        return graph_error(403, "accessDenied", "The root cannot be deleted.");
    }
    if let Some(resp) = graph.get(&id).and_then(|item| precondition(ctx, item)) {
        return resp;
    }
    graph.delete(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// `PATCH`: renames an item, or moves it with `parentReference.id`; 200 with the item
/// (<https://learn.microsoft.com/graph/api/driveitem-update>,
/// <https://learn.microsoft.com/graph/api/driveitem-move>). A clash is 409
/// `nameAlreadyExists` (see `GraphStore::rename`).
fn update_item(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&ctx.body) else {
        return graph_error(400, "invalidRequest", "A JSON object body is required.");
    };
    let mut graph = shared.graph.lock();
    let Some(id) = graph.resolve(base, path) else {
        return item_not_found();
    };
    let Some(item) = graph.get(&id).cloned() else {
        return item_not_found();
    };
    if let Some(resp) = precondition(ctx, &item) {
        return resp;
    }
    let name = match body.get("name") {
        None => item.name.clone(),
        Some(Value::String(n)) => n.clone(),
        Some(_) => return graph_error(400, "invalidRequest", "The name property must be a string."),
    };
    if let Some(resp) = invalid_name_response(&name) {
        return resp;
    }
    let parent = body
        .get("parentReference")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match graph.rename(&id, &name, parent.as_deref()) {
        Ok(item) => {
            let value = graph.item_json(&item, shared.content_base.as_str());
            json_response(200, &value, GRAPH_JSON)
        }
        Err(RenameError::Conflict) => graph_error(409, "nameAlreadyExists", "The specified item name already exists."),
        Err(RenameError::Root) => graph_error(403, "accessDenied", "The root cannot be renamed."),
        Err(RenameError::NotFound) => item_not_found(),
    }
}

fn encode_skip(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("emu-skip:{offset}"))
}

fn decode_skip(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("emu-skip:")?.parse().ok()
}

/// Children: `{"value":[…]}` plus an **absolute** `@odata.nextLink` while more remain; clients
/// (graph-rs-sdk's paging) GET it verbatim (<https://learn.microsoft.com/graph/paging>,
/// <https://learn.microsoft.com/graph/api/driveitem-list-children>).
fn list_children(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let top = match ctx.param("$top") {
        None => PAGE_SIZE.min(shared.config.max_page_size.unwrap_or(PAGE_SIZE)),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(PAGE_SIZE).min(shared.config.max_page_size.unwrap_or(PAGE_SIZE)),
            _ => return graph_error(400, "invalidRequest", "Invalid $top value."),
        },
    };
    let offset = match ctx.param("$skiptoken") {
        None => 0,
        Some(t) => match decode_skip(t) {
            Some(o) => o,
            None => return graph_error(400, "invalidRequest", "Invalid $skiptoken value."),
        },
    };
    let graph = shared.graph.lock();
    let Some(id) = graph.resolve(base, path) else {
        return item_not_found();
    };
    let Some(folder) = graph.get(&id) else {
        return item_not_found();
    };
    if !folder.folder {
        return graph_error(400, "invalidRequest", "The item is not a folder.");
    }
    let children = graph.children(&id);
    let end = (offset + top).min(children.len());
    let page: Vec<Value> = children
        .get(offset.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|c| select(graph.item_json(c, shared.content_base.as_str()), ctx))
        .collect();
    let more = end < children.len();
    drop(graph);
    let mut body = json!({"value": page});
    if more {
        let mut next = shared.endpoints.microsoft.graph.clone();
        next.set_path(&ctx.path);
        {
            let mut q = next.query_pairs_mut();
            q.clear();
            for (k, v) in &ctx.query {
                if k != "$skiptoken" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("$skiptoken", &encode_skip(end));
        }
        body["@odata.nextLink"] = json!(next.as_str());
    }
    json_response(200, &body, GRAPH_JSON)
}

/// `POST …/children` with `{"name","folder":{}}`: creates a folder, 201
/// (<https://learn.microsoft.com/graph/api/driveitem-post-children>).
fn create_folder(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&ctx.body) else {
        return graph_error(400, "invalidRequest", "A JSON object body is required.");
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return graph_error(400, "invalidRequest", "The name property is required.");
    };
    if let Some(resp) = invalid_name_response(name) {
        return resp;
    }
    let conflict = body
        .get("@microsoft.graph.conflictBehavior")
        .and_then(Value::as_str)
        .and_then(Conflict::parse)
        .unwrap_or(Conflict::Fail);
    let mut graph = shared.graph.lock();
    let Some(parent) = graph.resolve(base, path) else {
        return item_not_found();
    };
    if graph.get(&parent).is_none_or(|p| !p.folder) {
        return item_not_found();
    }
    if let Some(existing) = graph.child(&parent, name).cloned() {
        match conflict {
            Conflict::Fail => {
                return graph_error(409, "nameAlreadyExists", "The specified item name already exists.");
            }
            Conflict::Replace if existing.folder => {
                let value = graph.item_json(&existing, shared.content_base.as_str());
                return json_response(200, &value, GRAPH_JSON);
            }
            _ => {}
        }
    }
    let item = graph.create_folder(&parent, name);
    let value = graph.item_json(&item, shared.content_base.as_str());
    json_response(201, &value, GRAPH_JSON)
}

/// `GET …/content`: 302 Found to the pre-authenticated download URL on another host
/// (<https://learn.microsoft.com/graph/api/driveitem-get-content>).
fn content_redirect(shared: &Shared, base: &str, path: &[String]) -> Response {
    let graph = shared.graph.lock();
    let Some(item) = graph.resolve(base, path).and_then(|id| graph.get(&id)) else {
        return item_not_found();
    };
    if item.folder {
        return item_not_found();
    }
    let url = graph.download_url(item, shared.content_base.as_str());
    drop(graph);
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `PUT …/content`: simple upload; `@microsoft.graph.conflictBehavior` in the query, default
/// `replace` (<https://learn.microsoft.com/graph/api/driveitem-put-content>).
fn put_content(shared: &Shared, ctx: &Ctx, base: &str, path: &[String]) -> Response {
    if ctx.body.len() > SIMPLE_UPLOAD_LIMIT {
        return graph_error(413, "requestTooLarge", "The request is too large for a simple upload.");
    }
    let conflict = match ctx.param("@microsoft.graph.conflictBehavior") {
        None => Conflict::Replace,
        Some(text) => match Conflict::parse(text) {
            Some(c) => c,
            None => return graph_error(400, "invalidRequest", "Invalid conflictBehavior."),
        },
    };
    let mime = ctx
        .header("content-type")
        .filter(|m| !m.is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut graph = shared.graph.lock();
    let outcome = match resolve_target(&mut graph, base, path) {
        Err(resp) => return resp,
        Ok(Target::Existing(id)) => {
            let Some(item) = graph.get(&id).cloned() else {
                return item_not_found();
            };
            match (&item.parent, item.folder) {
                (Some(parent), false) => graph.put_file(parent, &item.name, ctx.body.clone(), &mime, conflict),
                _ => PutOutcome::NotAFile,
            }
        }
        Ok(Target::New { parent, name }) => graph.put_file(&parent, &name, ctx.body.clone(), &mime, conflict),
    };
    put_outcome(shared, &graph, outcome)
}

/// `GET /dl/{key}` on the second listener: the pre-authenticated download URL. Serves `Range`
/// with 206 (<https://learn.microsoft.com/graph/api/driveitem-get-content>, "Partial range
/// downloads"); 416 for an unsatisfiable range (RFC 9110 §15.5.17).
pub(crate) async fn download(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let key = ctx.last_segment();
    if shared.config.reject_auth_on_download_url && ctx.header("authorization").is_some() {
        return graph_error(
            401,
            "unauthenticated",
            "Authorization is not accepted on a pre-authenticated URL.",
        );
    }
    let graph = shared.graph.lock();
    let item = match graph.check_download(&key, ctx.param("tempauth")) {
        Ok(item) => item,
        Err(DownloadError::NotFound) => return item_not_found(),
        // What the download host answers for an expired URL is UNCONFIRMED; 401 says "fetch a
        // new URL".
        Err(DownloadError::Unauthorized) => {
            return graph_error(
                401,
                "unauthenticated",
                "The pre-authenticated URL is invalid or has expired.",
            );
        }
    };
    let content: Bytes = item.content.clone();
    let mime = item.mime_type.clone();
    drop(graph);
    crate::http_util::serve_bytes(&content, &mime, ctx.header("range"), |size| {
        graph_error(
            416,
            "invalidRange",
            &format!("The requested range is not satisfiable for size {size}."),
        )
    })
}
