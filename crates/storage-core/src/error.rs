//! The one error type every backend returns.

use std::fmt;
use std::time::Duration;

/// A boxed error kept as the `source()` of a [`StorageError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a cloud connection refused to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionReason {
    /// The access token was refused; a refresh may cure it.
    TokenExpired,
    /// The refresh token is revoked or expired; the user must authorise again.
    InvalidGrant,
}

impl fmt::Display for ConnectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TokenExpired => "access token expired",
            Self::InvalidGrant => "grant revoked or expired, the user must authorise again",
        })
    }
}

/// Every failure a [`StorageBackend`](crate::StorageBackend) reports.
///
/// Variants are categories, not provider codes. Provider crates build them
/// through their own mapping functions; the variants themselves are not
/// `#[non_exhaustive]`, so that they can.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A bad name, key, JSON document or argument. Nothing was sent.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong, never echoing a secret.
        message: String,
    },
    /// The object does not exist.
    #[error("object not found: {key}")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// The connection's credentials were refused.
    #[error("cloud connection refused: {reason}")]
    CloudConnection {
        /// Whether a refresh may help ([`ConnectionReason::TokenExpired`]) or not.
        reason: ConnectionReason,
    },
    /// Throttled, after the backend's own retries.
    #[error("rate limited by the provider")]
    RateLimited {
        /// How long the provider asked the caller to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The user's storage is full. Not the application's request quota:
    /// that is [`AppQuotaExceeded`](Self::AppQuotaExceeded).
    #[error("storage quota exceeded")]
    QuotaExceeded,
    /// A put would not fit: `needed` bytes against `free` bytes left in the
    /// user's drive, found before a byte was sent (the managed layer's quota
    /// check). Nothing was stored.
    #[error("not enough storage: {needed} bytes needed, {free} bytes free")]
    InsufficientStorage {
        /// The size of the refused put.
        needed: u64,
        /// What the drive reported as remaining.
        free: u64,
    },
    /// A conditional create (`put_*_if_absent`) found the name stored already;
    /// the stored object was left as it was.
    #[error("object exists already: {key}")]
    AlreadyExists {
        /// The key of the object that holds the name.
        key: String,
    },
    /// The application's request quota at the provider is used up (Drive's
    /// `dailyLimitExceeded`: the project's daily limit in the Google Cloud
    /// console). Every user of the application meets it, until the provider
    /// resets the quota or its owner raises it; retrying soon does not help,
    /// and the user's storage is not the cause.
    #[error("application quota exceeded: {message}")]
    AppQuotaExceeded {
        /// The provider's reason.
        message: String,
    },
    /// The provider refused access to the object.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The provider's reason.
        message: String,
    },
    /// The operation does not exist for this backend.
    #[error("{operation} is not supported: {reason}")]
    Unsupported {
        /// The operation that was asked for.
        operation: &'static str,
        /// Why this backend cannot do it.
        reason: String,
    },
    /// The stored bytes differ from what was sent, by hash or by size.
    #[error("integrity check failed: {message}")]
    Integrity {
        /// What differed.
        message: String,
    },
    /// The credential names a provider whose cargo feature is off.
    #[error("provider `{provider}` is not compiled in: enable the cargo feature `{feature}`")]
    FeatureDisabled {
        /// The provider named by the credential.
        provider: String,
        /// The cargo feature that enables it.
        feature: String,
    },
    /// Any other answer from the service.
    #[error("provider answered {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Provider {
        /// The HTTP status.
        status: u16,
        /// The provider's error code or reason, when it gave one.
        code: Option<String>,
        /// The provider's message.
        message: String,
    },
    /// Connection, TLS or timeout failure.
    #[error("transport failure: {message}")]
    Transport {
        /// What was being done.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A local filesystem failure.
    #[error("i/o failure: {message}")]
    Io {
        /// What was being done.
        message: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Builds [`StorageError::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
        }
    }

    /// Builds [`StorageError::NotFound`].
    pub fn not_found(key: impl Into<String>) -> Self {
        Self::NotFound { key: key.into() }
    }

    /// Builds [`StorageError::Unsupported`].
    pub fn unsupported(operation: &'static str, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            operation,
            reason: reason.into(),
        }
    }

    /// Builds [`StorageError::Integrity`].
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::Integrity {
            message: message.into(),
        }
    }

    /// Builds [`StorageError::Transport`] with a source.
    pub fn transport(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transport {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds [`StorageError::Io`].
    pub fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            message: message.into(),
            source,
        }
    }

    /// Whether trying the same call again may succeed without anything else changing.
    ///
    /// Throttling, transport failures and server errors (5xx) are retryable. A
    /// refused token is not: it needs a refresh first, which is the managed
    /// layer's job. A revoked grant never is.
    ///
    /// ```
    /// use std::time::Duration;
    /// use storage_core::{ConnectionReason, StorageError};
    ///
    /// assert!(StorageError::RateLimited { retry_after: None }.is_retryable());
    /// assert!(StorageError::Provider { status: 503, code: None, message: String::new() }.is_retryable());
    /// assert!(!StorageError::CloudConnection { reason: ConnectionReason::InvalidGrant }.is_retryable());
    /// assert!(!StorageError::not_found("k").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport { .. } => true,
            Self::Provider { status, .. } => {
                matches!(status, 408 | 429 | 500..=599) && *status != 501 && *status != 507
            }
            _ => false,
        }
    }

    /// How long the provider asked the caller to wait, when it said.
    ///
    /// ```
    /// use std::time::Duration;
    /// use storage_core::StorageError;
    ///
    /// let err = StorageError::RateLimited { retry_after: Some(Duration::from_secs(3)) };
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    /// assert_eq!(StorageError::QuotaExceeded.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The connection problem, when this error is one.
    ///
    /// ```
    /// use storage_core::{ConnectionReason, StorageError};
    ///
    /// let err = StorageError::CloudConnection { reason: ConnectionReason::TokenExpired };
    /// assert_eq!(err.connection_reason(), Some(ConnectionReason::TokenExpired));
    /// assert_eq!(StorageError::QuotaExceeded.connection_reason(), None);
    /// ```
    pub fn connection_reason(&self) -> Option<ConnectionReason> {
        match self {
            Self::CloudConnection { reason } => Some(*reason),
            _ => None,
        }
    }
}

/// The result type of this crate and of every backend.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_do_not_repeat_the_source() {
        let err = StorageError::transport("failed to send chunk", std::io::Error::other("reset by peer"));
        let text = err.to_string();
        assert_eq!(text, "transport failure: failed to send chunk");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn provider_message_names_the_code_when_present() {
        let err = StorageError::Provider {
            status: 400,
            code: Some("badRequest".into()),
            message: "no".into(),
        };
        assert_eq!(err.to_string(), "provider answered 400 (badRequest): no");
        let err = StorageError::Provider {
            status: 418,
            code: None,
            message: "teapot".into(),
        };
        assert_eq!(err.to_string(), "provider answered 418: teapot");
    }

    #[test]
    fn retryable_statuses() {
        let p = |status| StorageError::Provider {
            status,
            code: None,
            message: String::new(),
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(p(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 501, 507] {
            assert!(!p(s).is_retryable(), "{s}");
        }
        assert!(
            !StorageError::CloudConnection {
                reason: ConnectionReason::TokenExpired
            }
            .is_retryable()
        );
        assert!(!StorageError::QuotaExceeded.is_retryable());
    }

    #[test]
    fn the_apps_quota_is_neither_retryable_nor_the_users_storage() {
        let e = StorageError::AppQuotaExceeded {
            message: "daily limit exceeded".into(),
        };
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "application quota exceeded: daily limit exceeded");
        assert_ne!(e.to_string(), StorageError::QuotaExceeded.to_string());
    }

    #[test]
    fn feature_disabled_names_the_feature() {
        let err = StorageError::FeatureDisabled {
            provider: "gdrive".into(),
            feature: "gdrive".into(),
        };
        assert!(err.to_string().contains("cargo feature `gdrive`"));
    }
}
