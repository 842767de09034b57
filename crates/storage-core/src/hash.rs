//! Hashing off the transfer path: for large bodies the hash runs on its own
//! thread while the bytes go over the network, so that a transfer costs
//! max(network, hash) instead of network + hash.

use bytes::Bytes;

use crate::checksum::Checksum;
use crate::checksum::{AnyHasher, HashKind};

/// Bodies at least this large are hashed on a worker thread.
const WORKER_THRESHOLD: u64 = 4 * 1024 * 1024;
/// Pieces queued for the worker at most; the sender waits beyond that, which
/// keeps the memory the queue holds bounded.
const QUEUE: usize = 16;

/// An incremental hash, inline for small bodies and on a worker thread for
/// large ones. Every byte is hashed exactly once, in order.
#[derive(Debug)]
pub(crate) struct PipelinedHasher {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Inline(AnyHasher),
    Worker {
        tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
        thread: Option<std::thread::JoinHandle<Checksum>>,
        kind: HashKind,
        done: Option<Checksum>,
        /// Bytes handed to the worker so far.
        handed: u64,
        /// Bytes the worker has hashed so far.
        hashed: tokio::sync::watch::Receiver<u64>,
    },
}

impl PipelinedHasher {
    /// A hasher for a body of about `size` bytes.
    pub fn new(kind: HashKind, size: u64) -> Self {
        // quickXorHash runs at several GB/s: handing pieces to a thread would cost
        // more than hashing them. md5 (well under 1 GB/s) is worth the thread.
        if size < WORKER_THRESHOLD || kind != HashKind::Md5 {
            return Self {
                mode: Mode::Inline(AnyHasher::new(kind)),
            };
        }
        Self::worker(kind, None).unwrap_or_else(|| Self {
            // No thread to be had: hash inline.
            mode: Mode::Inline(AnyHasher::new(kind)),
        })
    }

    /// A hash on its own thread, which takes `gate` (tests only) before each piece.
    fn worker(kind: HashKind, gate: Option<std::sync::Arc<std::sync::Mutex<()>>>) -> Option<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
        let (progress, hashed) = tokio::sync::watch::channel(0u64);
        let thread = std::thread::Builder::new()
            .name("storage-hash".into())
            .spawn(move || {
                let mut h = AnyHasher::new(kind);
                let mut done = 0u64;
                while let Some(piece) = rx.blocking_recv() {
                    let held = gate.as_ref().map(|g| g.lock());
                    h.update(&piece);
                    drop(held);
                    done += piece.len() as u64;
                    // Let go of the piece before saying so: a caller that waited
                    // for it may then reuse its memory.
                    drop(piece);
                    progress.send_replace(done);
                }
                h.finish()
            })
            .ok()?;
        Some(Self {
            mode: Mode::Worker {
                tx: Some(tx),
                thread: Some(thread),
                kind,
                done: None,
                handed: 0,
                hashed,
            },
        })
    }

    /// A worker that takes `gate` before each piece, for tests that hold the
    /// hash still.
    #[cfg(test)]
    pub fn gated(kind: HashKind, gate: std::sync::Arc<std::sync::Mutex<()>>) -> Self {
        Self::worker(kind, Some(gate)).expect("a thread")
    }

    /// Feeds a piece; waits when the worker is more than a few pieces behind.
    pub async fn update(&mut self, piece: &Bytes) {
        match &mut self.mode {
            Mode::Inline(h) => h.update(piece),
            Mode::Worker {
                tx: Some(tx), handed, ..
            } => {
                *handed += piece.len() as u64;
                // A closed channel means the worker is gone; `finish` reports that.
                let _ = tx.send(piece.clone()).await;
            }
            Mode::Worker { tx: None, .. } => {}
        }
    }

    /// Waits until every byte fed so far is hashed, so that no piece of it is
    /// still held by the worker. Immediate for an inline hash.
    pub async fn caught_up(&mut self) {
        if let Mode::Worker {
            handed,
            hashed,
            tx: Some(_),
            ..
        } = &mut self.mode
        {
            let handed = *handed;
            // An error means the worker is gone; `finish` reports that.
            let _ = hashed.wait_for(|&h| h >= handed).await;
        }
    }

    /// The hash of everything fed. For a worker this waits for the pieces still
    /// queued, at most [`QUEUE`] of them; by the time a transfer's last answer
    /// has arrived the worker has long caught up.
    pub fn finish(&mut self) -> Checksum {
        match &mut self.mode {
            Mode::Inline(h) => h.finish(),
            Mode::Worker {
                tx, thread, kind, done, ..
            } => {
                if let Some(sum) = done {
                    return *sum;
                }
                drop(tx.take());
                let sum = thread
                    .take()
                    .and_then(|t| t.join().ok())
                    // A worker that died leaves a value no content hashes to in
                    // practice, so the comparison that follows fails as Integrity.
                    .unwrap_or(match kind {
                        HashKind::Md5 => Checksum::Md5([0xff; 16]),
                        _ => Checksum::QuickXor([0xff; 20]),
                    });
                *done = Some(sum);
                sum
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn worker_and_inline_agree() {
        let data = Bytes::from((0..(9 * 1024 * 1024u32)).map(|i| (i % 247) as u8).collect::<Vec<_>>());
        for kind in [HashKind::Md5, HashKind::QuickXor] {
            let mut worker = PipelinedHasher::new(kind, data.len() as u64);
            assert_eq!(matches!(worker.mode, Mode::Worker { .. }), kind == HashKind::Md5);
            let mut inline = PipelinedHasher::new(kind, 1);
            for piece in data.chunks(100_003) {
                let piece = data.slice_ref(piece);
                worker.update(&piece).await;
                inline.update(&piece).await;
            }
            let sum = worker.finish();
            assert_eq!(sum, inline.finish());
            assert_eq!(worker.finish(), sum, "finish is repeatable");
            let expected = match kind {
                HashKind::Md5 => Checksum::md5_of(&data),
                _ => Checksum::quick_xor_of(&data),
            };
            assert_eq!(sum, expected);
        }
    }
}
