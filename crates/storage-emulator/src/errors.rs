//! Error bodies in each provider's own JSON shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::origin::Provider;

/// `Content-Type` of Google JSON API responses, errors included.
///
/// Source: the error examples of <https://developers.google.com/drive/api/guides/handle-errors>.
pub(crate) const GOOGLE_JSON: &str = "application/json; charset=UTF-8";

/// `Content-Type` of Graph JSON responses.
pub(crate) const GRAPH_JSON: &str = "application/json";

/// Builds a JSON response with a given content type.
pub(crate) fn json_response(status: u16, body: &Value, content_type: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The default Drive `reason` and message for an HTTP status.
///
/// Source: <https://developers.google.com/drive/api/guides/handle-errors> (reasons `badRequest`,
/// `authError`, `notFound`, `rateLimitExceeded`, `backendError` for 500/502/503/504); the messages
/// for 500-504 and the reasons for 403/405/409/410/413/416 are UNCONFIRMED defaults (fault
/// rules that need a specific reason use [`crate::FaultAction::google_error`]).
fn google_default(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("badRequest", "Bad Request"),
        401 => ("authError", "Invalid Credentials"),
        403 => ("forbidden", "Forbidden"),
        404 => ("notFound", "Not Found"),
        409 => ("conflict", "Conflict"),
        405 => ("badRequest", "Method Not Allowed"),
        410 => ("gone", "Gone"),
        413 => ("uploadTooLarge", "The request is too large."),
        416 => ("requestedRangeNotSatisfiable", "Request range not satisfiable"),
        429 => ("rateLimitExceeded", "Rate Limit Exceeded"),
        _ if status >= 500 => ("backendError", "Backend Error"),
        _ => ("badRequest", "Bad Request"),
    }
}

/// The message Google sends with a well-known Drive reason.
///
/// Sources: `userRateLimitExceeded` from github.com/tidyverse/googledrive issue 380; the
/// others from <https://developers.google.com/drive/api/guides/handle-errors> (reason only;
/// message text UNCONFIRMED).
fn google_reason_message(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "userRateLimitExceeded" => {
            "User Rate Limit Exceeded. Rate of requests for user exceed configured project quota. \
             You may consider re-evaluating expected per-user traffic to the API and adjust project \
             quota limits accordingly."
        }
        "rateLimitExceeded" => "Rate Limit Exceeded",
        "dailyLimitExceeded" => "Daily Limit Exceeded",
        "storageQuotaExceeded" => "The user's Drive storage quota has been exceeded.",
        "backendError" => "Backend Error",
        "authError" => "Invalid Credentials",
        _ => return None,
    })
}

/// The `domain` Google pairs with a reason: `usageLimits` for quota and rate reasons, `global`
/// otherwise. Source: <https://developers.google.com/drive/api/guides/handle-errors>.
fn google_domain(reason: &str) -> &'static str {
    match reason {
        "userRateLimitExceeded"
        | "rateLimitExceeded"
        | "dailyLimitExceeded"
        | "storageQuotaExceeded"
        | "quotaExceeded" => "usageLimits",
        _ => "global",
    }
}

/// A Drive error body: `{"error":{"code":N,"message":…,"errors":[{"message","domain","reason"}]}}`.
///
/// `error.code` always equals the HTTP status, because google-drive3 drops the status of JSON
/// errors and keeps only the body (`google-drive3` 7.0.0 `src/api.rs`, `Error::BadRequest`).
/// Shape source: <https://developers.google.com/drive/api/guides/handle-errors>.
pub(crate) fn google_error_json(status: u16, reason: &str, message: Option<&str>) -> Value {
    let message = message
        .or_else(|| google_reason_message(reason))
        .unwrap_or_else(|| google_default(status).1);
    json!({"error": {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": google_domain(reason), "reason": reason}],
    }})
}

/// A Drive error response.
pub(crate) fn google_error(status: u16, reason: &str, message: &str) -> Response {
    json_response(status, &google_error_json(status, reason, Some(message)), GOOGLE_JSON)
}

/// A Drive error response whose `errors[0]` names the offending parameter or header
/// (`location`, `locationType`), as the 401 and 404 examples of
/// <https://developers.google.com/drive/api/guides/handle-errors> do.
pub(crate) fn google_error_at(
    status: u16,
    reason: &str,
    message: &str,
    location: &str,
    location_type: &str,
) -> Response {
    let mut body = google_error_json(status, reason, Some(message));
    if let Some(first) = body["error"]["errors"].get_mut(0) {
        first["location"] = json!(location);
        first["locationType"] = json!(location_type);
    }
    json_response(status, &body, GOOGLE_JSON)
}

/// The default Graph `error.code` and message for an HTTP status.
///
/// Source: <https://learn.microsoft.com/graph/errors> (github.com/microsoftgraph/
/// microsoft-graph-docs-contrib `concepts/errors.md`), status code table and code list.
fn graph_default(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalidRequest", "The request is malformed or incorrect."),
        401 => ("InvalidAuthenticationToken", "Access token validation failure."),
        403 => (
            "accessDenied",
            "The caller doesn't have permission to perform the action.",
        ),
        404 => ("itemNotFound", "The resource could not be found."),
        409 => ("nameAlreadyExists", "The specified item name already exists."),
        412 => ("resourceModified", "The resource has changed."),
        413 => ("requestTooLarge", "The request is too large."),
        416 => ("invalidRange", "The specified byte range is invalid or unavailable."),
        429 => ("activityLimitReached", "The app or user has been throttled."),
        500 => ("generalException", "An unspecified error has occurred."),
        503 => ("serviceNotAvailable", "The service is not available."),
        507 => ("quotaLimitReached", "The maximum storage quota has been reached."),
        _ if status >= 500 => ("generalException", "An unspecified error has occurred."),
        _ => ("invalidRequest", "The request is malformed or incorrect."),
    }
}

/// A Graph error body:
/// `{"error":{"code":…,"message":…,"innerError":{"code"?,"date","request-id","client-request-id"}}}`.
///
/// Source: <https://learn.microsoft.com/graph/errors> (`innerError` with `request-id` and
/// `date`); the OneDrive docs put a detail `code` inside the inner error
/// (github.com/OneDrive/onedrive-api-docs `docs/rest-api/concepts/errors.md`).
pub(crate) fn graph_error_json(code: &str, message: Option<&str>, inner: Option<&str>) -> Value {
    let message = message.unwrap_or_else(|| {
        let (default_code, default_message) = graph_default(status_for_graph_code(code));
        if default_code == code {
            default_message
        } else {
            "An error has occurred."
        }
    });
    let request_id = crate::http_util::random_uuid();
    let mut inner_error = json!({
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": request_id,
        "client-request-id": request_id,
    });
    if let Some(inner) = inner {
        inner_error["code"] = json!(inner);
    }
    json!({"error": {"code": code, "message": message, "innerError": inner_error}})
}

fn status_for_graph_code(code: &str) -> u16 {
    [400, 401, 403, 404, 409, 412, 416, 429, 500, 503, 507]
        .into_iter()
        .find(|s| graph_default(*s).0 == code)
        .unwrap_or(400)
}

/// A Graph error response.
pub(crate) fn graph_error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, &graph_error_json(code, Some(message), None), GRAPH_JSON)
}

/// A Graph error response with a detail code in `innerError.code`.
pub(crate) fn graph_error_inner(status: u16, code: &str, message: &str, inner: &str) -> Response {
    json_response(status, &graph_error_json(code, Some(message), Some(inner)), GRAPH_JSON)
}

/// The provider's error body for a status, used by fault rules without an explicit body.
pub(crate) fn default_error(provider: Option<Provider>, status: u16) -> Response {
    match provider {
        Some(Provider::Microsoft) => {
            let (code, message) = graph_default(status);
            graph_error(status, code, message)
        }
        _ => {
            let (reason, message) = google_default(status);
            google_error(status, reason, message)
        }
    }
}
