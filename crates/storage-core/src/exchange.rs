//! How one reqwest request goes out (feature `http`): the bearer, the idle
//! timeout, the retry policy and the reading of its answer, applied in one
//! place for both provider crates.
//!
//! Each provider's `client.rs` keeps one private door that fills an
//! [`Exchange`] with its own token cell, idle timeout and retry policy; the
//! protocol modules only say which request to send and how to read it.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{ConnectionReason, Result, StorageError};
use crate::retry::RetryPolicy;
use crate::secret::TokenCell;

/// The rules one request is sent under.
///
/// ```
/// use std::time::Duration;
/// use storage_core::exchange::Exchange;
/// use storage_core::{RetryPolicy, TokenCell};
///
/// let tokens = TokenCell::new("t");
/// let retry = RetryPolicy::default();
/// let call = Exchange::new("failed to list a folder", Duration::from_secs(30))
///     .bearer(&tokens)
///     .retry(&retry);
/// assert!(call.sends_bearer());
/// // A pre-authenticated URL gets no bearer, and a session piece is sent once.
/// let piece = Exchange::new("an upload piece was cut", Duration::from_secs(30));
/// assert!(!piece.sends_bearer());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    what: &'a str,
    idle: Duration,
    bearer: Option<&'a TokenCell>,
    retry: Option<&'a RetryPolicy>,
}

impl<'a> Exchange<'a> {
    /// A request sent once, without credentials, that fails when nothing moves
    /// for `idle`; `what` names it in errors.
    #[must_use]
    pub fn new(what: &'a str, idle: Duration) -> Self {
        Self {
            what,
            idle,
            bearer: None,
            retry: None,
        }
    }

    /// Carries `Authorization: Bearer` with the cell's token; an empty cell is
    /// `CloudConnection(TokenExpired)` before anything is sent.
    #[must_use]
    pub fn bearer(self, tokens: &'a TokenCell) -> Self {
        Self {
            bearer: Some(tokens),
            ..self
        }
    }

    /// Retries a retryable failure (of the send or of `read`) under `policy`.
    #[must_use]
    pub fn retry(self, policy: &'a RetryPolicy) -> Self {
        Self {
            retry: Some(policy),
            ..self
        }
    }

    /// Whether the request carries a bearer token.
    #[must_use]
    pub fn sends_bearer(&self) -> bool {
        self.bearer.is_some()
    }

    /// Sends the request `build` makes (once per attempt), with `body` when
    /// given, and turns each answer into a result with `read`, which maps a
    /// failure status through the provider's `classify`.
    ///
    /// # Errors
    /// What `read` returns, `Transport` for a failed or idle connection, or
    /// `CloudConnection(TokenExpired)` when a bearer is wanted and there is no token.
    pub async fn run<T, B, R, Fut>(&self, build: B, body: Option<Bytes>, read: R) -> Result<T>
    where
        B: Fn() -> reqwest::RequestBuilder,
        R: Fn(reqwest::Response) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let once = || async {
            let mut req = build();
            if let Some(tokens) = self.bearer {
                let token = tokens.get().ok_or(StorageError::CloudConnection {
                    reason: ConnectionReason::TokenExpired,
                })?;
                req = req.bearer_auth(token.expose());
            }
            let resp = crate::idle::send(req, body.clone(), self.idle, self.what).await?;
            read(resp).await
        };
        match self.retry {
            Some(policy) => policy.run(once).await,
            None => once().await,
        }
    }

    /// [`Exchange::run`] that hands back the answer as it came, for a caller
    /// that reads each status itself.
    ///
    /// # Errors
    /// `Transport` for a failed or idle connection, or a missing token.
    pub async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response> {
        self.run(build, body, |resp| std::future::ready(Ok(resp))).await
    }
}
