//! The one place where Graph answers become [`StorageError`]s.
//!
//! Codes and statuses: Microsoft Graph, "Microsoft Graph error responses and
//! resource types" (<https://learn.microsoft.com/graph/errors>) and "Throttling"
//! (<https://learn.microsoft.com/graph/throttling>).

use std::time::Duration;

use storage_core::{ConnectionReason, StorageError};

/// What the service answered.
#[derive(Debug, Default)]
pub(crate) struct Answer<'a> {
    pub status: u16,
    pub body: Option<&'a serde_json::Value>,
    pub retry_after: Option<Duration>,
    pub key: Option<&'a str>,
}

/// Maps a non-success Graph answer.
pub(crate) fn classify(a: &Answer<'_>) -> StorageError {
    let error = a.body.and_then(|b| b.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(|c| c.as_str());
    let message: String = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    match a.status {
        401 => StorageError::CloudConnection {
            reason: ConnectionReason::TokenExpired,
        },
        429 | 509 => StorageError::RateLimited {
            retry_after: a.retry_after,
        },
        503 if a.retry_after.is_some() => StorageError::RateLimited {
            retry_after: a.retry_after,
        },
        507 => StorageError::QuotaExceeded,
        403 if code == Some("quotaLimitReached") => StorageError::QuotaExceeded,
        403 => StorageError::PermissionDenied {
            message: if message.is_empty() {
                "onedrive refused access".into()
            } else {
                message
            },
        },
        404 => StorageError::not_found(a.key.unwrap_or("")),
        status => StorageError::Provider {
            status,
            code: code.map(str::to_owned),
            message,
        },
    }
}

/// A transport failure, retryable.
pub(crate) fn transport(what: &str, err: reqwest::Error) -> StorageError {
    StorageError::transport(what.to_owned(), err.without_url())
}

/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(storage_core::retry::parse_retry_after)
}

/// Reads a failed answer and classifies it.
pub(crate) async fn answer_error(resp: reqwest::Response, key: Option<&str>) -> StorageError {
    let status = resp.status().as_u16();
    let wait = retry_after(resp.headers());
    let body = resp.bytes().await.ok();
    let json = body
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    classify(&Answer {
        status,
        body: json.as_ref(),
        retry_after: wait,
        key,
    })
}

/// Reads a JSON answer, classifying a failure status.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    key: Option<&str>,
) -> storage_core::Result<T> {
    if !resp.status().is_success() {
        return Err(answer_error(resp, key).await);
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport("failed to read a graph answer", e))?;
    serde_json::from_slice(&body).map_err(|e| StorageError::Provider {
        status: 200,
        code: Some("malformedResponse".into()),
        message: format!("graph answered with json that does not parse: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(status: u16, code: &str, retry: Option<u64>) -> StorageError {
        let body = json!({"error": {"code": code, "message": "m", "innerError": {"request-id": "r"}}});
        classify(&Answer {
            status,
            body: Some(&body),
            retry_after: retry.map(Duration::from_secs),
            key: Some("ITEM"),
        })
    }

    #[test]
    fn the_table() {
        assert_eq!(
            map(401, "InvalidAuthenticationToken", None).connection_reason(),
            Some(ConnectionReason::TokenExpired)
        );
        for s in [429, 509] {
            assert_eq!(
                map(s, "activityLimitReached", Some(4)).retry_after(),
                Some(Duration::from_secs(4))
            );
        }
        assert!(matches!(
            map(503, "serviceNotAvailable", Some(1)),
            StorageError::RateLimited { .. }
        ));
        for s in [500, 502, 503, 504] {
            assert!(map(s, "generalException", None).is_retryable(), "{s}");
        }
        assert!(matches!(
            map(507, "quotaLimitReached", None),
            StorageError::QuotaExceeded
        ));
        assert!(matches!(
            map(403, "accessDenied", None),
            StorageError::PermissionDenied { .. }
        ));
        assert!(matches!(map(404, "itemNotFound", None), StorageError::NotFound { key } if key == "ITEM"));
        let locked = map(423, "resourceLocked", None);
        assert!(matches!(locked, StorageError::Provider { status: 423, .. }));
        assert!(!locked.is_retryable());
    }
}
