//! Steps that must not stop halfway when their caller goes away.
//!
//! A future dropped at an `.await` (a request handler's timeout, a
//! `select!`) stops there. Most calls may stop anywhere, but some steps come
//! in pairs that must both happen: removing the old version and giving the
//! new one its name, or deleting a file that failed its check. [`run_to_end`]
//! runs such steps on a task of their own, which goes on when the caller's
//! future is dropped.

use std::future::Future;

use crate::error::{Result, StorageError};

/// Runs `work` on a task of its own and waits for it. Dropping the returned
/// future leaves the task running to its end; a panic in `work` resumes in
/// the caller.
///
/// # Errors
/// `work`'s own, or a transport error when the runtime shuts down first.
///
/// # Example
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let call = storage_core::detach::run_to_end(async move {
///     tokio::task::yield_now().await;
///     let _ = tx.send("renamed");
///     Ok(())
/// });
/// // Polled once, then dropped, as a timed-out caller's future would be.
/// let _ = futures::poll!(Box::pin(call));
/// assert_eq!(rx.await, Ok("renamed"));
/// # });
/// ```
pub async fn run_to_end<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::transport("the runtime stopped before the work ended", e)),
    }
}
