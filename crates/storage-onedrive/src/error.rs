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

/// The user's folder was created and removed again while it was looked up.
pub(crate) fn folder_race() -> StorageError {
    StorageError::Provider {
        status: 409,
        code: Some("folderRace".into()),
        message: "the user's folder was created and removed while it was looked up; try again".into(),
    }
}

/// A put's name is held by an item whose name differs only in case (made
/// outside this library, or before names were stored case-safe): that item is
/// left alone.
pub(crate) fn name_case_conflict() -> StorageError {
    StorageError::Provider {
        status: 409,
        code: Some("nameCaseConflict".into()),
        message: "the object's name is taken by an item whose name differs only in case (made outside this library, or before names were stored case-safe); it was left alone".into(),
    }
}

/// Other puts of the same name kept taking it for every attempt of this one.
pub(crate) fn name_contested() -> StorageError {
    StorageError::Provider {
        status: 409,
        code: Some("nameContested".into()),
        message: "other puts of the same name kept taking it; try again".into(),
    }
}

/// A conditional delete kept meeting a newer version (412) of the file.
pub(crate) fn resource_modified() -> StorageError {
    StorageError::Provider {
        status: 412,
        code: Some("resourceModified".into()),
        message: "the file kept changing while it was being deleted; try again".into(),
    }
}

/// An item read (200) without `@microsoft.graph.downloadUrl`, or with one
/// that does not parse (`present`).
pub(crate) fn download_url(present: bool) -> StorageError {
    let (code, message) = if present {
        ("badDownloadUrl", "onedrive returned a download url that does not parse")
    } else {
        ("missingDownloadUrl", "onedrive returned no download url for the item")
    };
    StorageError::Provider {
        status: 200,
        code: Some(code.into()),
        message: message.into(),
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
