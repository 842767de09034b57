//! Graph's answers to a bad request, and reading a request's JSON body.

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{Map, Value};

use super::names::invalid_reason;
use crate::errors::{graph_error, graph_error_inner};

/// 404 `itemNotFound` (<https://learn.microsoft.com/graph/errors>).
pub(crate) fn item_not_found() -> Response {
    graph_error(404, "itemNotFound", "The resource could not be found.")
}

/// 400 `invalidRequest` with inner `invalidPath` for an illegal name
/// (github.com/OneDrive/onedrive-api-docs `docs/rest-api/concepts/errors.md`).
pub(crate) fn invalid_name(reason: &str) -> Response {
    graph_error_inner(400, "invalidRequest", reason, "invalidPath")
}

/// Checks a name; `Some(response)` when it is illegal.
pub(crate) fn invalid_name_response(name: &str) -> Option<Response> {
    invalid_reason(name).map(invalid_name)
}

/// Parses an optional JSON object body.
pub(crate) fn json_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(graph_error(
            400,
            "invalidRequest",
            "The request body is not valid JSON.",
        )),
    }
}
