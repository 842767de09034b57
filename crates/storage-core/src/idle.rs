//! Idle timeouts for `reqwest` requests (feature `http`): a request fails when
//! nothing moves for a while, however long it takes as a whole.
//!
//! reqwest's `read_timeout` starts when a request is sent and ends when the
//! answer's headers arrive, so for an upload it is a deadline on sending the
//! body: an 8 MiB chunk over a slow uplink fails however steadily it moves.
//! [`send`] replaces it. The body goes out in pieces of [`PIECE`] bytes, and
//! every piece the connection takes restarts the clock; then the clock runs
//! until the headers arrive, and afterwards between any two pieces of the
//! answer's body. Clients given to the providers should therefore have a
//! connect timeout but neither `timeout` nor `read_timeout`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use crate::error::{Result, StorageError};

/// The size of the pieces a request body is handed to the connection in.
pub const PIECE: usize = 64 * 1024;

/// The source of a [`StorageError::Transport`] when nothing moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimeout(pub Duration);

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nothing was sent or received for {:?}", self.0)
    }
}

impl std::error::Error for IdleTimeout {}

/// `Transport` with `what` as its message and [`IdleTimeout`] as its source.
pub fn idle_error(what: &str, idle: Duration) -> StorageError {
    StorageError::transport(what.to_owned(), IdleTimeout(idle))
}

/// When something last moved, in nanoseconds since `base`.
#[derive(Debug)]
struct Progress {
    base: Instant,
    nanos: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        let n = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(n, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// A body in memory, handed out in pieces; each piece taken is progress.
#[derive(Debug)]
struct Pieces {
    rest: Bytes,
    progress: Arc<Progress>,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(PIECE);
        let piece = self.rest.split_to(n);
        self.progress.mark();
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// An answer's body that fails when no piece of it arrives for `idle`.
struct Watched<B> {
    inner: B,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeout(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `resp` with a body that fails when no piece of it arrives for `idle`; the
/// status, headers, URL and size are kept.
///
/// # Errors
/// [`StorageError::Transport`] when the answer cannot be rebuilt (never for an
/// answer reqwest produced).
pub fn watch(resp: reqwest::Response, idle: Duration) -> Result<reqwest::Response> {
    use reqwest::ResponseBuilderExt as _;
    let url = resp.url().clone();
    let resp: http::Response<reqwest::Body> = resp.into();
    let (parts, body) = resp.into_parts();
    let mut builder = http::Response::builder()
        .status(parts.status)
        .version(parts.version)
        .url(url);
    if let Some(headers) = builder.headers_mut() {
        *headers = parts.headers;
    }
    let body = reqwest::Body::wrap(Watched {
        inner: body,
        idle,
        sleep: None,
    });
    builder
        .body(body)
        .map(reqwest::Response::from)
        .map_err(|e| StorageError::transport("failed to read an answer", e))
}

/// Sends `req` (with `body`, when given, in pieces of [`PIECE`] bytes and its
/// `Content-Length`), and returns the answer with a [`watch`]ed body. Fails
/// with `Transport` (message `what`, source [`IdleTimeout`]) when for `idle`
/// the connection takes no piece of the body and no answer arrives.
///
/// # Errors
/// `Transport` when nothing moved for `idle`, or when reqwest fails (its URL
/// stripped: a URL may be a credential).
pub async fn send(
    req: reqwest::RequestBuilder,
    body: Option<Bytes>,
    idle: Duration,
    what: &str,
) -> Result<reqwest::Response> {
    let progress = Arc::new(Progress::new());
    let req = match body {
        Some(rest) => req.body(reqwest::Body::wrap(Pieces {
            rest,
            progress: Arc::clone(&progress),
        })),
        None => req,
    };
    let mut pending = std::pin::pin!(req.send());
    let resp = loop {
        let due = progress.last() + idle;
        tokio::select! {
            sent = &mut pending => break sent.map_err(|e| StorageError::transport(what.to_owned(), e.without_url()))?,
            () = tokio::time::sleep_until(due) => {
                if progress.last() + idle <= Instant::now() {
                    return Err(idle_error(what, idle));
                }
            }
        }
    };
    watch(resp, idle)
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    #[test]
    fn pieces_have_an_exact_size_and_mark_progress() {
        let progress = Arc::new(Progress::new());
        let mut body = Pieces {
            rest: Bytes::from(vec![7u8; PIECE * 2 + 5]),
            progress: Arc::clone(&progress),
        };
        assert_eq!(body.size_hint().exact(), Some((PIECE * 2 + 5) as u64));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            sizes.push(frame.into_data().map(|d| d.len()).unwrap_or(0));
        }
        assert_eq!(sizes, [PIECE, PIECE, 5]);
        assert!(body.is_end_stream());
        assert!(progress.last() >= progress.base);
    }

    #[test]
    fn the_idle_error_names_the_wait() {
        let e = idle_error("failed to send a chunk", Duration::from_secs(2));
        assert_eq!(e.to_string(), "transport failure: failed to send a chunk");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("nothing was sent or received for 2s"));
        assert!(e.is_retryable());
    }
}
