//! The one place where Graph answers become [`StorageError`]s.
//!
//! Codes and statuses: Microsoft Graph, "Microsoft Graph error responses and
//! resource types" (<https://learn.microsoft.com/graph/errors>) and "Throttling"
//! (<https://learn.microsoft.com/graph/throttling>).

use storage_core::{ConnectionReason, StorageError};

pub(crate) use storage_core::answer::{Answer, transport};

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

/// A 202 whose `nextExpectedRanges` names no offset.
pub(crate) fn bad_range(message: &str) -> StorageError {
    StorageError::Provider {
        status: 202,
        code: Some("badRange".into()),
        message: message.to_owned(),
    }
}

/// Reads a failed answer and classifies it.
pub(crate) async fn answer_error(resp: reqwest::Response, key: Option<&str>) -> StorageError {
    storage_core::answer::failure(resp, key, classify).await
}

/// Reads a JSON answer, classifying a failure status.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    key: Option<&str>,
) -> storage_core::Result<T> {
    storage_core::answer::json(resp, key, classify, "graph").await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
