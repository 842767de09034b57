//! The one place where Drive answers become [`StorageError`]s.
//!
//! Classification is by HTTP status and `error.errors[].reason`, never by
//! message text. Reasons and their meaning: Google Drive API, "Resolve errors"
//! (<https://developers.google.com/drive/api/guides/handle-errors>).

use storage_core::{ConnectionReason, StorageError};

pub(crate) use storage_core::answer::{Answer, transport};

/// Reasons under 403 or 429 that mean "slow down".
const RATE_LIMIT_REASONS: &[&str] = &["userRateLimitExceeded", "rateLimitExceeded"];
/// Reasons under 403 that mean the user's storage is full.
const QUOTA_REASONS: &[&str] = &["storageQuotaExceeded", "quotaExceeded"];
/// Reasons under 403 that mean the application's project has used up its
/// request quota: "the Courier API limit" is reached, and it does not pass
/// with a retry (<https://developers.google.com/drive/api/guides/handle-errors>).
const APP_QUOTA_REASONS: &[&str] = &["dailyLimitExceeded"];
/// Reasons under 403 that mean this app may not touch the file.
const PERMISSION_REASONS: &[&str] = &[
    "insufficientFilePermissions",
    "appNotAuthorizedToFile",
    "forbidden",
    "domainPolicy",
];

/// Maps a non-success answer to the error the caller sees.
pub(crate) fn classify(a: &Answer<'_>) -> StorageError {
    let error = a.body.and_then(|b| b.get("error"));
    let reason = error
        .and_then(|e| e.get("errors"))
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str());
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    let has = |set: &[&str]| reason.is_some_and(|r| set.contains(&r));
    match a.status {
        401 => StorageError::CloudConnection {
            reason: ConnectionReason::TokenExpired,
        },
        403 | 429 if has(RATE_LIMIT_REASONS) => StorageError::RateLimited {
            retry_after: a.retry_after,
        },
        429 => StorageError::RateLimited {
            retry_after: a.retry_after,
        },
        403 if has(QUOTA_REASONS) => StorageError::QuotaExceeded,
        403 if has(APP_QUOTA_REASONS) => StorageError::AppQuotaExceeded {
            message: if message.is_empty() {
                "the application's daily drive request limit is used up".into()
            } else {
                message
            },
        },
        403 if has(PERMISSION_REASONS) || reason.is_none() => StorageError::PermissionDenied {
            message: if message.is_empty() {
                "drive refused access".into()
            } else {
                message
            },
        },
        404 => StorageError::not_found(a.key.unwrap_or("")),
        503 if a.retry_after.is_some() => StorageError::RateLimited {
            retry_after: a.retry_after,
        },
        status => StorageError::Provider {
            status,
            code: reason.map(str::to_owned),
            message,
        },
    }
}

/// A resumable session started without a `Location`, the URI to send to.
pub(crate) fn missing_location(status: u16) -> StorageError {
    StorageError::Provider {
        status,
        code: Some("missingLocation".into()),
        message: "drive started an upload session without a location".into(),
    }
}

/// A 308 whose `Range` does not parse.
pub(crate) fn bad_range(message: &str) -> StorageError {
    StorageError::Provider {
        status: 308,
        code: Some("badRange".into()),
        message: message.to_owned(),
    }
}

/// A folder this process created that Drive's listing does not show yet
/// (listings can lag a create): nothing was written into it; try again.
pub(crate) fn folder_not_listed() -> StorageError {
    StorageError::Provider {
        status: 200,
        code: Some("folderNotListed".into()),
        message: "drive created the user's folder but does not list it yet; try again".into(),
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
    storage_core::answer::json(resp, key, classify, "drive").await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn drive_error(status: u16, reason: &str) -> serde_json::Value {
        json!({"error": {"code": status, "message": "Some Text", "errors": [{"domain": "usageLimits", "reason": reason, "message": "x"}]}})
    }

    fn map(status: u16, reason: &str, retry_after: Option<u64>) -> StorageError {
        let body = drive_error(status, reason);
        classify(&Answer {
            status,
            body: Some(&body),
            retry_after: retry_after.map(Duration::from_secs),
            key: Some("FILE1"),
        })
    }

    #[test]
    fn the_table() {
        assert_eq!(
            map(401, "authError", None).connection_reason(),
            Some(ConnectionReason::TokenExpired)
        );
        for reason in ["userRateLimitExceeded", "rateLimitExceeded"] {
            let e = map(403, reason, Some(3));
            assert!(matches!(e, StorageError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)));
            assert!(e.is_retryable());
        }
        assert!(matches!(
            map(429, "anything", None),
            StorageError::RateLimited { retry_after: None }
        ));
        assert!(matches!(
            map(403, "storageQuotaExceeded", None),
            StorageError::QuotaExceeded
        ));
        // The project's daily request quota is not the user's storage.
        let daily = map(403, "dailyLimitExceeded", None);
        assert!(!matches!(daily, StorageError::QuotaExceeded), "{daily:?}");
        assert!(matches!(daily, StorageError::AppQuotaExceeded { .. }), "{daily:?}");
        assert!(!daily.is_retryable());
        assert!(matches!(map(403, "quotaExceeded", None), StorageError::QuotaExceeded));
        assert!(matches!(
            map(403, "insufficientFilePermissions", None),
            StorageError::PermissionDenied { .. }
        ));
        assert!(matches!(map(404, "notFound", None), StorageError::NotFound { key } if key == "FILE1"));
        let e = map(500, "backendError", None);
        assert!(
            matches!(e, StorageError::Provider { status: 500, ref code, .. } if code.as_deref() == Some("backendError"))
        );
        assert!(e.is_retryable());
        assert!(matches!(
            map(400, "badRequest", None),
            StorageError::Provider { status: 400, .. }
        ));
        assert!(!map(400, "badRequest", None).is_retryable());
    }

    #[test]
    fn message_text_never_decides() {
        // A permission error whose message mentions a rate limit is still a permission error.
        let body = json!({"error": {"code": 403, "message": "User rate limit exceeded.", "errors": [{"reason": "insufficientFilePermissions"}]}});
        let e = classify(&Answer {
            status: 403,
            body: Some(&body),
            ..Answer::default()
        });
        assert!(matches!(e, StorageError::PermissionDenied { .. }), "{e:?}");
    }

    #[test]
    fn malformed_bodies_do_not_panic() {
        for body in [
            json!(null),
            json!([1, 2]),
            json!({"error": "x"}),
            json!({"error": {"errors": "y"}}),
        ] {
            let e = classify(&Answer {
                status: 502,
                body: Some(&body),
                ..Answer::default()
            });
            assert!(e.is_retryable());
        }
    }
}
