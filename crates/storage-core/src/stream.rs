//! Small helpers for [`ByteStream`] bodies.

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use crate::backend::ByteStream;
use crate::error::Result;

/// A stream that yields `body` in pieces of at most `piece` bytes.
///
/// ```
/// use bytes::Bytes;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let s = storage_core::stream::from_bytes(Bytes::from_static(b"abcdef"), 4);
/// let all = storage_core::stream::collect(s, 100).await.unwrap();
/// assert_eq!(all, Bytes::from_static(b"abcdef"));
/// # });
/// ```
pub fn from_bytes(body: Bytes, piece: usize) -> ByteStream {
    let piece = piece.max(1);
    let pieces: Vec<Result<Bytes>> = (0..body.len())
        .step_by(piece)
        .map(|start| Ok(body.slice(start..(start + piece).min(body.len()))))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

/// Reads a whole stream into memory, reserving up to `size_hint` bytes up front.
///
/// A stream of one piece is returned as that piece, without a copy. The
/// reservation is capped at [`MAX_RESERVE`], so a size claimed by a server
/// cannot make one huge allocation before any byte has arrived.
///
/// # Errors
/// The first error the stream yields.
pub async fn collect(mut stream: ByteStream, size_hint: usize) -> Result<Bytes> {
    let Some(first) = stream.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = stream.next().await.transpose()? else {
        return Ok(first);
    };
    let mut buf = BytesMut::with_capacity(size_hint.min(MAX_RESERVE).max(first.len() + second.len()));
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Gathers a stream that must hold exactly `size` bytes, for a body small enough
/// to hold in memory. It stops reading as soon as the stream runs past `size`.
///
/// # Errors
/// [`InvalidInput`](crate::StorageError::InvalidInput) when the stream is longer
/// or shorter than `size`; the stream's own error otherwise.
///
/// ```
/// use storage_core::stream::{collect_exact, from_bytes};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let body = bytes::Bytes::from_static(b"abc");
/// assert_eq!(collect_exact(from_bytes(body.clone(), 2), 3).await.unwrap(), body);
/// assert!(collect_exact(from_bytes(body.clone(), 2), 2).await.is_err());
/// assert!(collect_exact(from_bytes(body, 2), 4).await.is_err());
/// # });
/// ```
pub async fn collect_exact(mut stream: ByteStream, size: u64) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(usize::try_from(size).unwrap_or(MAX_RESERVE).min(MAX_RESERVE));
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        if (buf.len() + piece.len()) as u64 > size {
            return Err(crate::error::StorageError::invalid_input(format!(
                "stream is longer than the declared {size} bytes"
            )));
        }
        buf.extend_from_slice(&piece);
    }
    if buf.len() as u64 != size {
        return Err(crate::error::StorageError::invalid_input(format!(
            "stream ended after {} of the declared {size} bytes",
            buf.len()
        )));
    }
    Ok(buf.freeze())
}

/// The most [`collect`] reserves ahead of the bytes: 64 MiB.
pub const MAX_RESERVE: usize = 64 * 1024 * 1024;

/// Drops the first `n` bytes of a stream: how a download reads on after a
/// server that ignored `Range` sent the whole body again.
///
/// ```
/// use bytes::Bytes;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let s = storage_core::stream::from_bytes(Bytes::from_static(b"abcdefg"), 3);
/// let rest = storage_core::stream::skip(s, 5);
/// assert_eq!(storage_core::stream::collect(rest, 2).await.unwrap(), Bytes::from_static(b"fg"));
/// # });
/// ```
pub fn skip(body: ByteStream, n: u64) -> ByteStream {
    Box::pin(
        body.scan(n, |left, item| {
            let out = match item {
                Ok(bytes) if *left >= bytes.len() as u64 => {
                    *left -= bytes.len() as u64;
                    Some(Ok(Bytes::new()))
                }
                Ok(bytes) => {
                    let cut = usize::try_from(*left).unwrap_or(0);
                    *left = 0;
                    Some(Ok(bytes.slice(cut..)))
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty()))),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::StorageError;

    fn pieces(items: Vec<Result<Bytes>>) -> ByteStream {
        Box::pin(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn skip_drops_exactly_the_prefix_across_pieces() {
        let body = || pieces(vec![Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"defg"))]);
        for (n, want) in [(0, &b"abcdefg"[..]), (3, b"defg"), (5, b"fg"), (7, b""), (99, b"")] {
            assert_eq!(
                collect(skip(body(), n), 0).await.unwrap(),
                Bytes::from_static(want),
                "{n}"
            );
        }
        let failing = pieces(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(StorageError::transport("cut", std::io::Error::other("x"))),
        ]);
        assert!(collect(skip(failing, 1), 0).await.is_err());
    }

    #[tokio::test]
    async fn one_piece_comes_back_without_a_copy() {
        let body = Bytes::from(vec![7u8; 1000]);
        let got = collect(pieces(vec![Ok(body.clone())]), 1000).await.unwrap();
        assert_eq!(got.as_ptr(), body.as_ptr());
    }

    #[tokio::test]
    async fn pieces_are_joined_in_order_and_a_huge_hint_is_capped() {
        let s = from_bytes(Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<_>>()), 333);
        let got = collect(s, usize::MAX).await.unwrap();
        assert_eq!(got, (0..=255u8).cycle().take(10_000).collect::<Vec<_>>());
        assert!(collect(pieces(vec![]), 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_error_after_some_pieces_is_returned() {
        for at in 0..3 {
            let mut items: Vec<Result<Bytes>> = (0..at).map(|_| Ok(Bytes::from_static(b"ab"))).collect();
            items.push(Err(StorageError::transport("cut", std::io::Error::other("x"))));
            items.push(Ok(Bytes::from_static(b"cd")));
            assert!(collect(pieces(items), 0).await.is_err(), "error after {at} pieces");
        }
    }
}
