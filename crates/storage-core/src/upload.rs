//! The sliding window behind every resumable upload: bounded memory, hashing as
//! bytes pass, and resumption from whatever offset the server reports.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use crate::backend::ByteStream;
use crate::checksum::Checksum;
use crate::error::{Result, StorageError};

/// Where an upload's bytes come from.
pub enum UploadSource {
    /// In memory: can be replayed from the start after a lost session.
    Bytes(Bytes),
    /// A stream: can be replayed only while no byte has left the window.
    Stream(ByteStream),
}

impl std::fmt::Debug for UploadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "UploadSource::Bytes({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("UploadSource::Stream"),
        }
    }
}

pub use crate::checksum::HashKind;

/// The highest number of body bytes an upload held at once.
#[derive(Debug, Default)]
pub struct BufferGauge(AtomicUsize);

impl BufferGauge {
    /// Records that `held` bytes are in memory now.
    pub fn record(&self, held: usize) {
        self.0.fetch_max(held, Ordering::Relaxed);
    }

    /// The most bytes ever recorded.
    pub fn peak(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The unacknowledged part of an upload.
///
/// The window starts at the first byte the server has not confirmed and holds
/// at most about one chunk: [`fill`](Self::fill) tops it up from the source,
/// [`acknowledge`](Self::acknowledge) drops what the server reports stored.
/// Every byte is hashed once, in order: a body in memory as each window widens
/// over it, a stream after each fill has copied it in, on the hash's own thread
/// while the piece is sent.
///
/// ```
/// use bytes::Bytes;
/// use storage_core::upload::{HashKind, UploadSource, UploadWindow};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut w = UploadWindow::new(UploadSource::Bytes(Bytes::from(vec![1u8; 1000])), 1000, HashKind::Md5);
/// w.fill(400).await?;
/// let piece = w.next_piece(256).unwrap();
/// assert_eq!((w.start(), piece.len()), (0, 256));
/// w.acknowledge(100)?; // the server kept only 100 bytes
/// assert_eq!(w.start(), 100);
/// # Ok::<(), storage_core::StorageError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct UploadWindow {
    source: UploadSource,
    kind: HashKind,
    /// Bytes of an in-memory source already moved into the window.
    taken: usize,
    size: u64,
    start: u64,
    pending: Bytes,
    read: u64,
    hasher: crate::hash::PipelinedHasher,
    dropped: bool,
    ended: bool,
}

impl UploadWindow {
    /// A window over `source`, which must yield exactly `size` bytes.
    pub fn new(source: UploadSource, size: u64, kind: HashKind) -> Self {
        Self {
            source,
            kind,
            taken: 0,
            size,
            start: 0,
            pending: Bytes::new(),
            read: 0,
            hasher: crate::hash::PipelinedHasher::new(kind, size),
            dropped: false,
            ended: false,
        }
    }

    /// The declared total size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset of the first unacknowledged byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Whether the upload could start again from byte 0.
    pub fn can_restart(&self) -> bool {
        matches!(self.source, UploadSource::Bytes(_)) || !self.dropped
    }

    /// Goes back to byte 0 for a new session; only when [`can_restart`](Self::can_restart).
    pub fn restart(&mut self) {
        if let UploadSource::Bytes(_) = self.source {
            self.taken = 0;
            self.read = 0;
            self.pending = Bytes::new();
            self.hasher = crate::hash::PipelinedHasher::new(self.kind, self.size);
        }
        self.start = 0;
    }

    /// Tops the window up to `target` bytes, or to the end of the source.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] when the source yields more or fewer bytes
    /// than declared; the source's own error when it fails.
    pub async fn fill(&mut self, target: usize) -> Result<()> {
        if self.pending.len() >= target || self.read == self.size && self.exhausted() {
            return Ok(());
        }
        if let UploadSource::Bytes(all) = &self.source {
            // The window over a body in memory is always one slice of it: widen
            // the slice instead of copying.
            if all.len() as u64 != self.size {
                return Err(StorageError::invalid_input(format!(
                    "body holds {} bytes, {} were declared",
                    all.len(),
                    self.size
                )));
            }
            let held_from = self.taken - self.pending.len();
            let end = (held_from + target).min(all.len());
            let piece = all.slice(self.taken..end);
            self.read += piece.len() as u64;
            self.taken = end;
            self.pending = all.slice(held_from..end);
            self.hasher.update(&piece).await;
            return Ok(());
        }
        // The hash of the last fill runs while its bytes are sent; it must be
        // done before the window's memory is reused or let go, so that the hash
        // never holds more than the window (it is long done on any link slower
        // than md5).
        self.hasher.caught_up().await;
        // Reuse the last window's memory when nothing else holds it any more
        // (the request that sent it has finished): a fresh allocation of tens
        // of MiB is a fresh mapping, whose pages the kernel must fault in and
        // clear on every chunk.
        let mut buf = match std::mem::take(&mut self.pending).try_into_mut() {
            Ok(mut held) => {
                held.reserve(target.saturating_sub(held.len()));
                held
            }
            Err(shared) => {
                let mut fresh = BytesMut::with_capacity(target.max(shared.len()));
                fresh.extend_from_slice(&shared);
                fresh
            }
        };
        let before = buf.len();
        while buf.len() < target {
            let piece = match &mut self.source {
                UploadSource::Bytes(all) => {
                    if self.taken >= all.len() {
                        None
                    } else {
                        let end = (self.taken + target - buf.len()).min(all.len());
                        let p = all.slice(self.taken..end);
                        self.taken = end;
                        Some(p)
                    }
                }
                UploadSource::Stream(_) if self.ended => None,
                UploadSource::Stream(s) => {
                    let next = s.next().await.transpose()?;
                    self.ended = next.is_none();
                    next
                }
            };
            let Some(piece) = piece else {
                if self.read != self.size {
                    return Err(StorageError::invalid_input(format!(
                        "stream ended after {} of the declared {} bytes",
                        self.read, self.size
                    )));
                }
                break;
            };
            self.read += piece.len() as u64;
            if self.read > self.size {
                return Err(StorageError::invalid_input(format!(
                    "stream is longer than the declared {} bytes",
                    self.size
                )));
            }
            buf.extend_from_slice(&piece);
        }
        // Hash what this fill read in one piece, after the copy: the fill never
        // waits for md5, which then runs on its own thread while the piece is sent.
        self.pending = buf.freeze();
        let fresh = self.pending.slice(before..);
        if !fresh.is_empty() {
            self.hasher.update(&fresh).await;
        }
        Ok(())
    }

    fn exhausted(&self) -> bool {
        match &self.source {
            UploadSource::Bytes(all) => self.taken >= all.len(),
            UploadSource::Stream(_) => self.ended,
        }
    }

    /// The bytes to send now from [`start`](Self::start): everything held when it
    /// reaches the end of the upload, otherwise the largest multiple of `unit`
    /// held; `None` when that is nothing.
    pub fn next_piece(&self, unit: usize) -> Option<Bytes> {
        let held = self.pending.len();
        let last = self.start + held as u64 == self.size;
        let len = if last || unit == 0 { held } else { held - held % unit };
        (len > 0).then(|| self.pending.slice(..len))
    }

    /// The server holds every byte before `committed`: drop them.
    ///
    /// # Errors
    /// [`StorageError::Provider`] (code `badRange`) when `committed` lies before
    /// the window (the server forgot acknowledged bytes) or beyond what was sent.
    pub fn acknowledge(&mut self, committed: u64) -> Result<()> {
        let end = self.start + self.pending.len() as u64;
        if committed < self.start || committed > end {
            return Err(StorageError::Provider {
                status: 0,
                code: Some("badRange".into()),
                message: format!(
                    "the server reports {committed} bytes stored, outside the unacknowledged window {}..{end}",
                    self.start
                ),
            });
        }
        let drop_len = usize::try_from(committed - self.start).unwrap_or(usize::MAX);
        if drop_len > 0 {
            self.pending = self.pending.slice(drop_len..);
            self.start = committed;
            self.dropped = true;
        }
        Ok(())
    }

    /// The hash of every byte read; call it once the source is exhausted.
    pub fn checksum(&mut self) -> Checksum {
        self.hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_in_memory_is_sent_from_its_own_buffer_and_hashed_once() {
        let data = Bytes::from((0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let mut w = UploadWindow::new(UploadSource::Bytes(data.clone()), data.len() as u64, HashKind::Md5);
        w.fill(2000).await.unwrap();
        let piece = w.next_piece(1000).unwrap();
        assert_eq!(piece.as_ptr(), data.as_ptr(), "no copy of the body");
        w.acknowledge(1500).unwrap();
        w.fill(2000).await.unwrap();
        let piece = w.next_piece(1).unwrap();
        assert_eq!((piece.as_ptr(), piece.len()), (data[1500..].as_ptr(), 2000));
        w.acknowledge(3500).unwrap();
        w.fill(2000).await.unwrap();
        assert_eq!(w.next_piece(1000).unwrap(), data.slice(3500..));
        w.acknowledge(5000).unwrap();
        assert_eq!(w.checksum(), Checksum::md5_of(&data));
        let mut short = UploadWindow::new(UploadSource::Bytes(data.clone()), 6000, HashKind::Md5);
        assert!(matches!(short.fill(10).await, Err(StorageError::InvalidInput { .. })));
    }

    #[tokio::test]
    async fn acknowledges_and_refuses_impossible_ranges() {
        let unit = 1000;
        let data = Bytes::from(vec![7u8; 3 * unit + 5]);
        let mut w = UploadWindow::new(UploadSource::Bytes(data.clone()), data.len() as u64, HashKind::Md5);
        w.fill(2 * unit).await.unwrap();
        assert_eq!(w.held(), 2 * unit);
        w.acknowledge(unit as u64).unwrap();
        assert_eq!(w.start(), unit as u64);
        assert!(
            w.acknowledge(0).is_err(),
            "the server may not forget acknowledged bytes"
        );
        assert!(w.acknowledge(10 * unit as u64).is_err(), "nor claim bytes never sent");
        w.fill(4 * unit).await.unwrap();
        assert_eq!(w.start() + w.held() as u64, data.len() as u64);
        // The tail is the last piece, whatever its length.
        assert_eq!(w.next_piece(unit).unwrap().len(), 2 * unit + 5);
        w.acknowledge(data.len() as u64).unwrap();
        assert_eq!(w.checksum(), Checksum::md5_of(&data));
    }

    #[tokio::test]
    async fn pieces_are_whole_units_until_the_end() {
        let data = Bytes::from(vec![1u8; 2500]);
        let mut w = UploadWindow::new(UploadSource::Bytes(data), 2500, HashKind::QuickXor);
        w.fill(1500).await.unwrap();
        assert_eq!(w.next_piece(1000).unwrap().len(), 1000);
        w.acknowledge(700).unwrap();
        assert!(
            w.next_piece(1000).is_none(),
            "800 held, less than a unit and not the end"
        );
    }

    #[tokio::test]
    async fn short_and_long_streams_are_invalid_input() {
        let short: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"abc"))]));
        let mut w = UploadWindow::new(UploadSource::Stream(short), 10, HashKind::Md5);
        assert!(matches!(w.fill(100).await, Err(StorageError::InvalidInput { .. })));
        let long: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"abcdef"))]));
        let mut w = UploadWindow::new(UploadSource::Stream(long), 4, HashKind::Md5);
        assert!(matches!(w.fill(100).await, Err(StorageError::InvalidInput { .. })));
    }

    /// A window filled from a stream is copied in, and hashed while it is sent:
    /// filling never waits for md5, so a chunk costs max(network, md5) rather
    /// than network + md5. The next fill waits for the hash to catch up, so the
    /// hash never holds more than the window.
    #[tokio::test]
    #[allow(
        clippy::await_holding_lock,
        reason = "the lock holds the hash thread still; no task waits for it"
    )]
    async fn filling_from_a_stream_does_not_wait_for_the_hash() {
        let data = Bytes::from((0..64 * 256 * 1024u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
        let source = crate::stream::from_bytes(data.clone(), 256 * 1024);
        let mut w = UploadWindow::new(UploadSource::Stream(source), data.len() as u64, HashKind::Md5);
        let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
        w.hasher = crate::hash::PipelinedHasher::gated(HashKind::Md5, gate.clone());
        let held = gate.lock().unwrap();
        // 32 pieces of 256 KiB, more than the hash queue holds, while the hash
        // cannot move.
        let half = data.len() / 2;
        tokio::time::timeout(std::time::Duration::from_secs(5), w.fill(half))
            .await
            .expect("the fill waited for the hash")
            .unwrap();
        assert_eq!(w.held(), half);
        w.acknowledge(half as u64).unwrap();
        {
            let next = w.fill(half);
            tokio::pin!(next);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(200), &mut next)
                    .await
                    .is_err(),
                "the next fill waits while the hash lags a whole window behind"
            );
            drop(held);
            next.await.unwrap();
        }
        w.acknowledge(data.len() as u64).unwrap();
        assert_eq!(w.checksum(), Checksum::md5_of(&data));
    }

    #[tokio::test]
    async fn a_stream_restarts_only_while_nothing_was_dropped() {
        let s: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from(vec![0u8; 100]))]));
        let mut w = UploadWindow::new(UploadSource::Stream(s), 100, HashKind::Md5);
        w.fill(100).await.unwrap();
        assert!(w.can_restart());
        w.acknowledge(50).unwrap();
        assert!(!w.can_restart());
    }
}
