//! Verified downloads that resume after a cut.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;

use crate::backend::ByteStream;
use crate::checksum::Checksum;
use crate::checksum::HashKind;
use crate::error::{Result, StorageError};

/// What a download must come to, and how hard to try.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The size the provider's metadata declares.
    pub size: u64,
    /// The provider's hash of the content. `None` when the provider reports none:
    /// OneDrive omits the hash of empty files (github.com/OneDrive/onedrive-api-docs
    /// issue 1704) and of some files stored before it computed quickXorHash (issue
    /// 527). Such a download is checked for its size only; an object that can never
    /// be read would be lost to the application as surely as a damaged one.
    pub checksum: Option<Checksum>,
    /// Which hash to compute.
    pub kind: HashKind,
    /// How many times a cut body is resumed.
    pub resumes: u32,
    /// The longest wait for the next piece of body.
    pub read_timeout: Duration,
}

struct State<F> {
    /// One timer, re-armed for every piece: cheaper than a new timeout per piece.
    stall: std::pin::Pin<Box<tokio::time::Sleep>>,
    expected: Expected,
    reopen: F,
    body: Option<ByteStream>,
    offset: u64,
    hasher: crate::hash::PipelinedHasher,
    resumes_left: u32,
    finished: bool,
}

/// Wraps a download `body` so that a connection that drops, stalls or ends
/// early is resumed by `reopen(offset)` (a ranged request from the first byte
/// not yet received), and the whole content is checked against `expected` at
/// the end: a difference is [`StorageError::Integrity`].
pub fn verified<F, Fut>(body: ByteStream, expected: Expected, reopen: F) -> ByteStream
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ByteStream>> + Send,
{
    let state = State {
        stall: Box::pin(tokio::time::sleep(expected.read_timeout)),
        hasher: crate::hash::PipelinedHasher::new(expected.kind, expected.size),
        resumes_left: expected.resumes,
        expected,
        reopen,
        body: Some(body),
        offset: 0,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        let item = s.next_item().await?;
        Some((item, s))
    }))
}

impl<F, Fut> State<F>
where
    F: FnMut(u64) -> Fut + Send,
    Fut: Future<Output = Result<ByteStream>> + Send,
{
    async fn next_item(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.finished {
                return None;
            }
            let next = match self.body.as_mut() {
                Some(body) => {
                    let deadline = tokio::time::Instant::now() + self.expected.read_timeout;
                    self.stall.as_mut().reset(deadline);
                    match futures::future::select(body.next(), self.stall.as_mut()).await {
                        futures::future::Either::Left((item, _)) => Ok(item),
                        futures::future::Either::Right(((), _)) => Err(()),
                    }
                }
                None => Ok(None),
            };
            let cut = match next {
                Ok(Some(Ok(bytes))) => {
                    if self.offset + bytes.len() as u64 > self.expected.size {
                        self.finished = true;
                        return Some(Err(StorageError::integrity(format!(
                            "the provider sent more than the {} bytes its metadata declares",
                            self.expected.size
                        ))));
                    }
                    self.offset += bytes.len() as u64;
                    self.hasher.update(&bytes).await;
                    return Some(Ok(bytes));
                }
                Ok(None) if self.offset == self.expected.size => {
                    self.finished = true;
                    return self.verify().err().map(Err);
                }
                Ok(None) => StorageError::Transport {
                    message: format!("download ended after {} of {} bytes", self.offset, self.expected.size),
                    source: None,
                },
                Ok(Some(Err(e))) => e,
                Err(_) => StorageError::Transport {
                    message: "download stalled past the read timeout".into(),
                    source: None,
                },
            };
            if self.resumes_left == 0 || !cut.is_retryable() {
                self.finished = true;
                return Some(Err(cut));
            }
            self.resumes_left -= 1;
            self.body = None;
            tokio::time::sleep(Duration::from_millis(20)).await;
            match (self.reopen)(self.offset).await {
                Ok(body) => self.body = Some(body),
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn verify(&mut self) -> Result<()> {
        let got = self.hasher.finish();
        match &self.expected.checksum {
            Some(want) if *want == got => Ok(()),
            Some(_) => Err(StorageError::integrity(
                "downloaded bytes do not match the provider's hash",
            )),
            None => Ok(()),
        }
    }
}

/// How a large download is split into ranged requests that run at once.
///
/// One TCP stream rarely fills a long, fast link: each connection's rate is
/// bounded by its own window and the path, so several ranged requests in
/// flight read faster than one. Parts are reassembled in order, holding at
/// most `streams` parts, and the whole object is still checked against the
/// provider's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parallel {
    /// Ranged requests in flight at once; 1 reads every object in one request.
    pub streams: usize,
    /// Bytes per ranged request.
    pub part: u64,
    /// Objects smaller than this are read in one request.
    pub threshold: u64,
}

impl Default for Parallel {
    /// Four streams of 8 MiB parts for objects of 32 MiB or more: 32 MiB held
    /// at most.
    fn default() -> Self {
        Self {
            streams: 4,
            part: 8 * 1024 * 1024,
            threshold: 32 * 1024 * 1024,
        }
    }
}

impl Parallel {
    /// One request per object, whatever its size.
    #[must_use]
    pub fn single() -> Self {
        Self {
            streams: 1,
            ..Self::default()
        }
    }

    /// `streams` requests of `part` bytes for objects of `threshold` bytes or more.
    #[must_use]
    pub fn new(streams: usize, part: u64, threshold: u64) -> Self {
        Self {
            streams,
            part,
            threshold,
        }
    }

    /// Whether an object of `size` bytes is read in parts.
    #[must_use]
    pub fn applies(&self, size: u64) -> bool {
        self.streams > 1 && self.part > 0 && size >= self.threshold && size > self.part
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for no stream, or a part of less than 64 KiB.
    pub fn validate(&self) -> Result<()> {
        if self.streams == 0 || self.part < 64 * 1024 {
            return Err(StorageError::invalid_input(
                "a parallel download needs at least one stream and parts of at least 64 KiB",
            ));
        }
        Ok(())
    }
}

/// Reads an object of `expected.size` bytes as parts of `plan.part` bytes,
/// `plan.streams` ranged requests at a time (`fetch(first, last)`, inclusive),
/// and yields the bytes in order. Each part resumes after a cut at its next
/// byte, `expected.resumes` times; the whole object is checked against
/// `expected` at the end: a difference is [`StorageError::Integrity`].
///
/// The parts' requests have idle timeouts of their own; a part is yielded only
/// when it is whole, so there is no stall timeout between parts.
pub fn parallel<F, Fut>(expected: Expected, plan: Parallel, fetch: F) -> ByteStream
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ByteStream>> + Send + 'static,
{
    let fetch = std::sync::Arc::new(fetch);
    let (size, part, resumes) = (expected.size, plan.part.max(1), expected.resumes);
    let parts = (0..size.div_ceil(part)).map(move |i| {
        let first = i * part;
        (first, part.min(size - first))
    });
    let body = futures::stream::iter(parts)
        .map(move |(first, len)| {
            let fetch = std::sync::Arc::clone(&fetch);
            async move {
                let last = first + len - 1;
                let piece = crate::range::read(first, len, resumes, move |offset| fetch(offset, last));
                crate::stream::collect_exact(piece, len).await
            }
        })
        .buffered(plan.streams.max(1));
    let whole = Expected {
        // A year: the parts time out on their own when nothing moves.
        read_timeout: Duration::from_secs(365 * 24 * 3600),
        ..expected
    };
    verified_parts(Box::pin(body), whole)
}

/// Checks a body made of parts that resume by themselves ([`parallel`], or
/// [`crate::range::read`] pieces chained): size and hash at the end, a stall
/// past `expected.read_timeout` as in [`verified`], and never a reopening of
/// the whole, whatever `expected.resumes` says.
pub fn verified_parts(body: ByteStream, expected: Expected) -> ByteStream {
    let whole = Expected { resumes: 0, ..expected };
    verified(body, whole, |_| async {
        Err(StorageError::Transport {
            message: "a part of the download failed".into(),
            source: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn cut_after(data: &Bytes, from: u64, n: usize) -> ByteStream {
        let start = usize::try_from(from).unwrap();
        let end = (start + n).min(data.len());
        let mut items: Vec<Result<Bytes>> = vec![Ok(data.slice(start..end))];
        if end < data.len() {
            items.push(Err(StorageError::Transport {
                message: "reset".into(),
                source: None,
            }));
        }
        Box::pin(futures::stream::iter(items))
    }

    fn expected(data: &Bytes) -> Expected {
        Expected {
            size: data.len() as u64,
            checksum: Some(Checksum::md5_of(data)),
            kind: HashKind::Md5,
            resumes: 5,
            read_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn resumes_from_the_last_byte_received_and_verifies() {
        let data = Bytes::from((0..10_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let opens = Arc::new(AtomicU32::new(0));
        let (d, o) = (data.clone(), opens.clone());
        let s = verified(cut_after(&data, 0, 3000), expected(&data), move |offset| {
            o.fetch_add(1, Ordering::SeqCst);
            let d = d.clone();
            async move { Ok(cut_after(&d, offset, 3000)) }
        });
        assert_eq!(crate::stream::collect(s, 0).await.unwrap(), data);
        assert_eq!(opens.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_wrong_hash_or_too_many_cuts_fail() {
        let data = Bytes::from_static(b"hello world");
        let mut e = expected(&data);
        e.checksum = Some(Checksum::md5_of(b"other"));
        let s = verified(cut_after(&data, 0, 100), e, |_| async {
            Err(StorageError::QuotaExceeded)
        });
        assert!(matches!(
            crate::stream::collect(s, 0).await,
            Err(StorageError::Integrity { .. })
        ));
        let mut e = expected(&data);
        e.resumes = 1;
        let d = data.clone();
        let s = verified(cut_after(&data, 0, 2), e, move |offset| {
            let d = d.clone();
            async move { Ok(cut_after(&d, offset, 2)) }
        });
        assert!(matches!(
            crate::stream::collect(s, 0).await,
            Err(StorageError::Transport { .. })
        ));
    }

    #[tokio::test]
    async fn without_a_provider_hash_the_size_is_still_checked() {
        let data = Bytes::from_static(b"xyz");
        let mut e = expected(&data);
        e.checksum = None;
        let s = verified(cut_after(&data, 0, 10), e.clone(), |_| async {
            Err(StorageError::QuotaExceeded)
        });
        assert_eq!(crate::stream::collect(s, 0).await.unwrap(), data);
        e.size = 2;
        let s = verified(cut_after(&data, 0, 10), e, |_| async {
            Err(StorageError::QuotaExceeded)
        });
        assert!(matches!(
            crate::stream::collect(s, 0).await,
            Err(StorageError::Integrity { .. })
        ));
    }

    /// A ranged source over `data` whose first response for each part is cut
    /// after `cut` bytes; records the ranges asked for and the most in flight.
    struct Ranged {
        data: Bytes,
        cut: usize,
        asked: std::sync::Mutex<Vec<(u64, u64)>>,
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl Ranged {
        async fn open(self: Arc<Self>, first: u64, last: u64) -> Result<ByteStream> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let (a, b) = (usize::try_from(first).unwrap(), usize::try_from(last).unwrap() + 1);
            let fresh = {
                let mut asked = self.asked.lock().unwrap();
                let fresh = !asked.iter().any(|(_, l)| *l == last);
                asked.push((first, last));
                fresh
            };
            let mut items: Vec<Result<Bytes>> = Vec::new();
            if fresh && b - a > self.cut {
                items.push(Ok(self.data.slice(a..a + self.cut)));
                items.push(Err(StorageError::Transport {
                    message: "reset".into(),
                    source: None,
                }));
            } else {
                items.push(Ok(self.data.slice(a..b)));
            }
            Ok(Box::pin(futures::stream::iter(items)))
        }
    }

    #[tokio::test]
    async fn parts_run_at_once_resume_after_a_cut_and_come_out_in_order() {
        let data = Bytes::from((0..1_000_003u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
        let src = Arc::new(Ranged {
            data: data.clone(),
            cut: 1000,
            asked: std::sync::Mutex::new(Vec::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            most: std::sync::atomic::AtomicUsize::new(0),
        });
        let plan = Parallel::new(4, 100_000, 0);
        assert!(plan.applies(data.len() as u64));
        let s = Arc::clone(&src);
        let body = parallel(expected(&data), plan, move |first, last| {
            Arc::clone(&s).open(first, last)
        });
        assert_eq!(crate::stream::collect(body, 0).await.unwrap(), data);
        let asked = src.asked.lock().unwrap().clone();
        // 11 parts: ten cut once and resumed from the byte after the cut, and a
        // last part of 3 bytes, too short to cut.
        assert_eq!(asked.len(), 21, "{asked:?}");
        assert!(asked.contains(&(0, 99_999)) && asked.contains(&(1000, 99_999)));
        assert!(asked.contains(&(1_000_000, 1_000_002)), "the short last part");
        assert_eq!(src.most.load(Ordering::SeqCst), 4, "four requests at once, no more");
    }

    #[tokio::test]
    async fn a_parallel_download_is_verified_whole() {
        let data = Bytes::from(vec![9u8; 300_000]);
        let src = Arc::new(Ranged {
            data: data.clone(),
            cut: usize::MAX,
            asked: std::sync::Mutex::new(Vec::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            most: std::sync::atomic::AtomicUsize::new(0),
        });
        let mut e = expected(&data);
        e.checksum = Some(Checksum::md5_of(b"something else"));
        let s = Arc::clone(&src);
        let body = parallel(e, Parallel::new(2, 65_536, 0), move |first, last| {
            Arc::clone(&s).open(first, last)
        });
        assert!(matches!(
            crate::stream::collect(body, 0).await,
            Err(StorageError::Integrity { .. })
        ));
        assert!(!Parallel::single().applies(u64::MAX));
        assert!(!Parallel::default().applies(31 * 1024 * 1024));
        assert!(Parallel::default().applies(32 * 1024 * 1024));
        assert!(Parallel::new(0, 65_536, 0).validate().is_err());
        assert!(Parallel::new(2, 1000, 0).validate().is_err());
    }
}
