//! Reading a provider's HTTP answer with reqwest (feature `http`): what the two
//! provider crates share, while the one mapping from an answer to a
//! [`StorageError`] stays in each provider's `error.rs`.

use std::time::Duration;

use crate::error::{Result, StorageError};

/// What the service answered, as far as it is known.
#[derive(Debug, Default)]
pub struct Answer<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The body, when it was JSON.
    pub body: Option<&'a serde_json::Value>,
    /// `Retry-After`, in seconds or as an HTTP date.
    pub retry_after: Option<Duration>,
    /// The key the call was about, for `NotFound`.
    pub key: Option<&'a str>,
}

/// A provider's one mapping from an answer to an error.
pub type Classify = fn(&Answer<'_>) -> StorageError;

/// A transport failure from reqwest, as a retryable [`StorageError::Transport`].
/// The URL is left out of the message: a URL may be a pre-authenticated one.
pub fn transport(what: &str, err: reqwest::Error) -> StorageError {
    StorageError::transport(what.to_owned(), err.without_url())
}

/// `Retry-After` from reqwest headers, in seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::retry::parse_retry_after)
}

/// Reads a failed answer (status, `Retry-After`, JSON body) and classifies it.
pub async fn failure(resp: reqwest::Response, key: Option<&str>, classify: Classify) -> StorageError {
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

/// A success answer whose JSON does not parse: the provider broke its own format.
pub fn malformed(service: &str, err: &serde_json::Error) -> StorageError {
    StorageError::Provider {
        status: 200,
        code: Some("malformedResponse".into()),
        message: format!("{service} answered with json that does not parse: {err}"),
    }
}

/// Reads a JSON answer, classifying a failure status; `service` names the
/// provider in messages.
///
/// # Errors
/// The classified failure, a transport error while reading, or [`malformed`].
pub async fn json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    key: Option<&str>,
    classify: Classify,
    service: &str,
) -> Result<T> {
    if !resp.status().is_success() {
        return Err(failure(resp, key, classify).await);
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport(&format!("failed to read a {service} answer"), e))?;
    serde_json::from_slice(&body).map_err(|e| malformed(service, &e))
}
