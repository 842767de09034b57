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

/// Reads a whole stream into memory, reserving `size_hint` bytes up front.
///
/// # Errors
/// The first error the stream yields.
pub async fn collect(mut stream: ByteStream, size_hint: usize) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(size_hint);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}
