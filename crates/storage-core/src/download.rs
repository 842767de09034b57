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
}
