//! Byte ranges for `get_range`, and how a ranged body is read: resolved
//! against the object's size, sent as one `Range` header, checked for length.

use std::future::Future;
use std::ops::{Range, RangeFrom};

use bytes::Bytes;
use futures::StreamExt as _;

use crate::backend::ByteStream;
use crate::error::{Result, StorageError};

/// The bytes of an object that `get_range` reads: `a..b`, `a..`, or the last `n`.
///
/// ```
/// use storage_core::ByteRange;
///
/// assert_eq!(ByteRange::from(2..5).resolve(10).unwrap(), (2, 3));
/// assert_eq!(ByteRange::from(8..).resolve(10).unwrap(), (8, 2));
/// // A suffix longer than the object is the whole object.
/// assert_eq!(ByteRange::last(50).resolve(10).unwrap(), (0, 10));
/// // The end is clamped to the object, as HTTP clamps it (RFC 9110 §14.1.2).
/// assert_eq!(ByteRange::from(5..99).resolve(10).unwrap(), (5, 5));
/// // A start past the end is refused, with the object's size.
/// assert!(ByteRange::from(11..).resolve(10).unwrap_err().to_string().contains("10 bytes"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start..end` (end exclusive).
    Span {
        /// The first byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Bytes from `start` to the end.
    From {
        /// The first byte.
        start: u64,
    },
    /// The last `len` bytes (all of them when the object is shorter).
    Last {
        /// How many bytes.
        len: u64,
    },
}

impl ByteRange {
    /// The last `len` bytes.
    #[must_use]
    pub const fn last(len: u64) -> Self {
        Self::Last { len }
    }

    /// The first byte and the length this range covers in an object of `size`
    /// bytes.
    ///
    /// # Errors
    /// `InvalidInput` naming the object's size when the range starts past the
    /// end, or when `start > end`.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64)> {
        let past = |start: u64| {
            StorageError::invalid_input(format!(
                "the range starts at byte {start}, past the end of the object ({size} bytes)"
            ))
        };
        match *self {
            Self::Span { start, end } if start > end => Err(StorageError::invalid_input(format!(
                "the range {start}..{end} ends before it starts"
            ))),
            Self::Span { start, end } if start > size || start == size && end > start => Err(past(start)),
            Self::Span { start, end } => Ok((start, end.min(size) - start)),
            Self::From { start } if start > size => Err(past(start)),
            Self::From { start } => Ok((start, size - start)),
            Self::Last { len } => {
                let len = len.min(size);
                Ok((size - len, len))
            }
        }
    }

    /// Parses the CLI's form: `a-b` (inclusive, as HTTP writes it), `a-`, or `-n`.
    ///
    /// ```
    /// use storage_core::ByteRange;
    /// assert_eq!("0-1023".parse::<ByteRange>().unwrap(), ByteRange::from(0..1024));
    /// assert_eq!("100-".parse::<ByteRange>().unwrap(), ByteRange::from(100..));
    /// assert_eq!("-5".parse::<ByteRange>().unwrap(), ByteRange::last(5));
    /// assert!("5-2".parse::<ByteRange>().is_err());
    /// ```
    fn parse_inclusive(text: &str) -> Result<Self> {
        let bad = || StorageError::invalid_input("a range is `first-last`, `first-` or `-count`, in bytes");
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let num = |t: &str| t.parse::<u64>().map_err(|_| bad());
        match (a.is_empty(), b.is_empty()) {
            (true, false) => Ok(Self::last(num(b)?)),
            (false, true) => Ok(Self::From { start: num(a)? }),
            (false, false) => {
                let (first, last) = (num(a)?, num(b)?);
                if last < first {
                    return Err(bad());
                }
                Ok(Self::Span {
                    start: first,
                    end: last.checked_add(1).ok_or_else(bad)?,
                })
            }
            (true, true) => Err(bad()),
        }
    }
}

impl std::str::FromStr for ByteRange {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse_inclusive(s)
    }
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> Self {
        Self::Span {
            start: r.start,
            end: r.end,
        }
    }
}

impl From<RangeFrom<u64>> for ByteRange {
    fn from(r: RangeFrom<u64>) -> Self {
        Self::From { start: r.start }
    }
}

/// The `Range` header value for `len` (> 0) bytes from `first`.
#[must_use]
pub fn header(first: u64, len: u64) -> String {
    format!("bytes={first}-{}", first + len - 1)
}

/// Reads `len` bytes from `first`, through `open(offset)`, which returns the
/// body from `offset` (a provider that ignored `Range` and sent the whole body
/// is read past the bytes before `offset` by the caller's `open`). A cut
/// reopens at the next byte, at most `resumes` times; the stream yields exactly
/// `len` bytes or ends with an error: a short body is `Transport` (retryable),
/// never a silently short read.
///
/// The bytes are not checked against the provider's hash, which covers the
/// whole object only.
pub fn read<F, Fut>(first: u64, len: u64, resumes: u32, open: F) -> ByteStream
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ByteStream>> + Send + 'static,
{
    if len == 0 {
        return Box::pin(futures::stream::empty());
    }
    struct State<F> {
        open: F,
        body: Option<ByteStream>,
        got: u64,
        resumes: u32,
    }
    let state = State {
        open,
        body: None,
        got: 0,
        resumes,
    };
    Box::pin(futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if st.got >= len {
                return Ok(None);
            }
            let body = match st.body.as_mut() {
                Some(b) => b,
                None => st.body.insert((st.open)(first + st.got).await?),
            };
            match body.next().await {
                Some(Ok(piece)) if piece.is_empty() => {}
                Some(Ok(piece)) => {
                    let want = usize::try_from(len - st.got).unwrap_or(usize::MAX);
                    let piece: Bytes = if piece.len() > want { piece.slice(..want) } else { piece };
                    st.got += piece.len() as u64;
                    return Ok(Some((piece, st)));
                }
                Some(Err(e)) if e.is_retryable() && st.resumes > 0 => {
                    st.resumes -= 1;
                    st.body = None;
                }
                Some(Err(e)) => return Err(e),
                None if st.resumes > 0 => {
                    st.resumes -= 1;
                    st.body = None;
                }
                None => {
                    return Err(StorageError::Transport {
                        message: format!("a ranged read ended after {} of {len} bytes", st.got),
                        source: None,
                    });
                }
            }
        }
    }))
}

/// `body` checked to yield exactly `len` bytes: longer is cut at `len`, and
/// shorter ends with a `Transport` error instead of a silently short read.
pub fn exact_len(body: ByteStream, len: u64) -> ByteStream {
    let once = std::sync::Mutex::new(Some(body));
    read(0, len, 0, move |_| {
        let body = once.lock().ok().and_then(|mut b| b.take());
        std::future::ready(body.ok_or_else(|| StorageError::Transport {
            message: "a ranged read cannot be reopened".into(),
            source: None,
        }))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn edges_of_resolve() {
        // An empty object: `0..`, `0..0` and any suffix are empty; anything else is past the end.
        assert_eq!(ByteRange::from(0..).resolve(0).unwrap(), (0, 0));
        assert_eq!(ByteRange::from(0..0).resolve(0).unwrap(), (0, 0));
        assert_eq!(ByteRange::last(3).resolve(0).unwrap(), (0, 0));
        assert!(ByteRange::from(0..1).resolve(0).is_err());
        // The last byte.
        assert_eq!(ByteRange::from(9..10).resolve(10).unwrap(), (9, 1));
        assert_eq!(ByteRange::last(1).resolve(10).unwrap(), (9, 1));
        assert_eq!(ByteRange::from(10..).resolve(10).unwrap(), (10, 0));
        assert!(ByteRange::from(10..11).resolve(10).is_err());
        assert!(ByteRange::Span { start: 5, end: 4 }.resolve(10).is_err());
    }

    fn source(
        body: &'static [u8],
        cut_after: Option<usize>,
    ) -> impl Fn(u64) -> futures::future::Ready<Result<ByteStream>> {
        move |offset| {
            let rest = Bytes::from_static(&body[usize::try_from(offset).unwrap()..]);
            let items: Vec<Result<Bytes>> = match cut_after {
                Some(n) if rest.len() > n => vec![
                    Ok(rest.slice(..n)),
                    Err(StorageError::Transport {
                        message: "cut".into(),
                        source: None,
                    }),
                ],
                _ => vec![Ok(rest)],
            };
            futures::future::ready(Ok(Box::pin(futures::stream::iter(items)) as ByteStream))
        }
    }

    #[tokio::test]
    async fn a_read_takes_exactly_its_length_and_resumes_after_cuts() {
        let body = b"0123456789";
        let all = crate::stream::collect(read(2, 5, 0, source(body, None)), 0)
            .await
            .unwrap();
        assert_eq!(all, Bytes::from_static(b"23456"));
        let resumed = crate::stream::collect(read(1, 8, 8, source(body, Some(2))), 0)
            .await
            .unwrap();
        assert_eq!(resumed, Bytes::from_static(b"12345678"));
        // Out of resumes: an error, never a short read.
        assert!(
            crate::stream::collect(read(1, 8, 1, source(body, Some(2))), 0)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_body_that_ends_early_is_an_error() {
        let opens = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&opens);
        let short = move |_offset: u64| {
            counter.fetch_add(1, Ordering::SeqCst);
            futures::future::ready(Ok(crate::stream::from_bytes(Bytes::from_static(b"ab"), 1)))
        };
        let err = crate::stream::collect(read(0, 5, 0, short), 0).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(opens.load(Ordering::SeqCst), 1);
    }
}
