//! The shared retry policy: bounded attempts, capped exponential backoff with
//! jitter, and `Retry-After` honoured.

use std::future::Future;
use std::time::Duration;

use crate::error::{Result, StorageError};

/// When and how long to wait before trying a failed call again.
///
/// Only errors for which [`StorageError::is_retryable`] holds are retried, so a
/// revoked grant, a refused token or a quota error returns at once. A
/// `Retry-After` is waited out as given, unless it is longer than
/// [`max_retry_after`](Self::with_max_retry_after): then the error is returned
/// to the caller, who may schedule the work later.
///
/// ```
/// use std::time::Duration;
/// use storage_core::{RetryPolicy, StorageError};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let policy = RetryPolicy::new().with_initial_backoff(Duration::from_millis(1));
/// let mut calls = 0;
/// let value = policy
///     .run(|| {
///         calls += 1;
///         let attempt = calls;
///         async move {
///             if attempt < 3 { Err(StorageError::RateLimited { retry_after: None }) } else { Ok(attempt) }
///         }
///     })
///     .await?;
/// assert_eq!(value, 3);
/// # Ok::<(), StorageError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// Five attempts, backoff from 250 ms doubling to at most 16 s, and a
    /// `Retry-After` of up to 60 s waited out.
    pub const fn new() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(16),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// One attempt and no retry.
    pub const fn never() -> Self {
        Self::new().with_max_attempts(1)
    }

    /// Total attempts, the first included; at least 1.
    #[must_use]
    pub const fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// The backoff before the first retry; later ones double.
    #[must_use]
    pub const fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest backoff, before jitter.
    #[must_use]
    pub const fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest `Retry-After` this policy waits out.
    #[must_use]
    pub const fn with_max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Total attempts, the first included.
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait after the `attempt`-th failure (1-based), or `None` to give up.
    ///
    /// Without a `Retry-After`, the wait is drawn uniformly from the upper half
    /// of `min(initial · 2^(attempt-1), max)` ("equal jitter"), so that
    /// concurrent callers spread out but never retry at once.
    pub fn delay_after(&self, attempt: u32, error: &StorageError) -> Option<Duration> {
        if attempt >= self.max_attempts || !error.is_retryable() {
            return None;
        }
        if let Some(wait) = error.retry_after() {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        Some(half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos)))
    }

    /// Runs `op` until it succeeds, fails with an error that is not retryable,
    /// or the attempts run out; returns the last result.
    ///
    /// # Errors
    /// The last error `op` returned.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(err) => match self.delay_after(attempt, &err) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(err),
                },
            }
        }
    }
}

/// Reads a `Retry-After` value: delay seconds, or an HTTP date (RFC 9110 §10.2.3).
///
/// A date in the past is a zero wait; anything unreadable is `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use storage_core::retry::parse_retry_after;
/// assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
/// let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
/// assert!(parse_retry_after(&soon).unwrap() <= Duration::from_secs(30));
/// assert_eq!(parse_retry_after("soon"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;
    use crate::error::ConnectionReason;

    fn limited(secs: Option<u64>) -> StorageError {
        StorageError::RateLimited {
            retry_after: secs.map(Duration::from_secs),
        }
    }

    async fn run_failing(policy: RetryPolicy, errors: Vec<StorageError>) -> (Result<u32>, u32) {
        let calls = AtomicU32::new(0);
        let errors = std::sync::Mutex::new(errors.into_iter());
        let result = policy
            .run(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let next = errors.lock().unwrap().next();
                async move { next.map_or(Ok(n), Err) }
            })
            .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[test]
    fn retry_after_in_both_forms() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(85) && d <= Duration::from_secs(90), "{d:?}");
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_exactly() {
        let start = Instant::now();
        let (result, calls) = run_failing(
            RetryPolicy::new(),
            vec![limited(Some(1)), limited(Some(1)), limited(Some(1))],
        )
        .await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(calls, 4);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let start = Instant::now();
        let policy = RetryPolicy::new().with_max_attempts(3);
        let (result, calls) = run_failing(policy, (0..10).map(|_| limited(Some(2))).collect()).await;
        assert!(
            matches!(result, Err(StorageError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(2))
        );
        assert_eq!(calls, 3);
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_a_revoked_grant_or_a_refused_token() {
        for reason in [ConnectionReason::InvalidGrant, ConnectionReason::TokenExpired] {
            let start = Instant::now();
            let (result, calls) = run_failing(RetryPolicy::new(), vec![StorageError::CloudConnection { reason }]).await;
            assert_eq!(result.unwrap_err().connection_reason(), Some(reason));
            assert_eq!(calls, 1);
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_budget_is_returned_at_once() {
        let start = Instant::now();
        let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(30));
        let (result, calls) = run_failing(policy, vec![limited(Some(31))]).await;
        assert_eq!(result.unwrap_err().retry_after(), Some(Duration::from_secs(31)));
        assert_eq!(calls, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy::new()
            .with_max_attempts(100)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(1));
        let unavailable = || StorageError::Provider {
            status: 503,
            code: None,
            message: String::new(),
        };
        let err = unavailable();
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (30, 1000)] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = policy.delay_after(attempt, &err).unwrap();
                assert!(d >= Duration::from_millis(ceiling_ms / 2), "attempt {attempt}: {d:?}");
                assert!(d <= Duration::from_millis(ceiling_ms), "attempt {attempt}: {d:?}");
                seen.insert(d);
            }
            assert!(seen.len() > 1, "attempt {attempt}: no jitter");
        }
        // The elapsed time of a run stays within the summed ceilings.
        let start = Instant::now();
        let (result, calls) = run_failing(policy.with_max_attempts(4), (0..3).map(|_| unavailable()).collect()).await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(calls, 4);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited <= Duration::from_millis(700),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_errors() {
        let (result, calls) = run_failing(RetryPolicy::new(), vec![StorageError::QuotaExceeded]).await;
        assert!(matches!(result, Err(StorageError::QuotaExceeded)));
        assert_eq!(calls, 1);
        let (result, calls) = run_failing(RetryPolicy::never(), vec![limited(None)]).await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
