//! The send loop of a resumable upload, shared by both providers: fill the
//! window, send the next piece, read what the server holds, go on from there.
//!
//! A provider implements [`Session`] (how one piece is sent and how the session
//! is asked what it holds: Drive's `PUT bytes */total`, Graph's `GET uploadUrl`)
//! and [`send_all`] does the rest. The loop trusts only what the server says it
//! holds, never what was sent; it retries a failed piece by asking first, within
//! the retry policy's budget.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Result, StorageError};
use crate::retry::RetryPolicy;
use crate::upload::{BufferGauge, UploadWindow};

/// What one request to an upload session answered.
#[derive(Debug)]
pub enum Reply<T> {
    /// The server holds every byte before this offset (Drive's 308 `Range`,
    /// Graph's `nextExpectedRanges`); the upload goes on from there.
    Next(u64),
    /// The upload is complete; the provider's file.
    Done(T),
    /// The session is gone (expired or cancelled): the upload must start over.
    Gone,
    /// The piece overlaps what the server holds (Graph's 416): ask where to go on.
    Overlap,
}

/// How a session ended.
#[derive(Debug)]
pub enum End<T> {
    /// Every byte is stored; the provider's file.
    Done(T),
    /// The session is gone; see [`UploadWindow::can_restart`].
    Gone,
}

/// One provider's upload-session protocol.
#[async_trait]
pub trait Session: Send + Sync {
    /// What a finished upload answers with.
    type Done: Send;

    /// Sends `piece`, bytes `first..first + piece.len()` of `total`.
    async fn send(&self, first: u64, piece: Bytes, total: u64) -> Result<Reply<Self::Done>>;

    /// Asks the session what it holds.
    async fn query(&self, total: u64) -> Result<Reply<Self::Done>>;
}

/// How much to hold and send at a time.
///
/// The window starts at `window` and doubles after each piece that took less
/// than [`PIECE_TARGET`], up to `max_window`, while the doubled piece moves
/// bytes at least 5 % faster: on a long, fast link a piece then lasts long
/// enough that the round trip between pieces, when the link idles, is a small
/// share of the time, while a slow link keeps small pieces and re-sends little
/// after a cut, and a link where the round trip costs nothing (loopback) keeps
/// pieces that fit the caches.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The first window to fill before a piece (a chunk, a fragment).
    pub window: usize,
    /// The largest window: the upload's memory budget, within the provider's
    /// largest piece. Rounded down to a multiple of `unit`; never below `window`.
    pub max_window: usize,
    /// Every piece but the last is a multiple of this (256 KiB, 320 KiB).
    pub unit: usize,
    /// The budget for failed pieces and the waits between them.
    pub retry: RetryPolicy,
}

/// A piece shorter than this makes the next window twice as large; a failed or
/// partly accepted piece halves it, down to the first window.
pub const PIECE_TARGET: std::time::Duration = std::time::Duration::from_secs(2);

impl Pace {
    /// The window after a failed or partly accepted piece.
    fn smaller_window(&self, window: usize) -> usize {
        let unit = self.unit.max(1);
        (window / 2 / unit * unit).max(self.window)
    }

    /// The window after a piece of `window` bytes that took `took`.
    fn next_window(&self, window: usize, took: std::time::Duration) -> usize {
        let unit = self.unit.max(1);
        let max = (self.max_window / unit * unit).max(self.window);
        if took < PIECE_TARGET {
            window.saturating_mul(2).min(max)
        } else {
            window
        }
    }
}

/// The session keeps answering without taking bytes, or there is nothing left
/// to send while it still waits for some.
fn stalled() -> StorageError {
    StorageError::Provider {
        status: 0,
        code: Some("noProgress".into()),
        message: "the upload session stopped taking bytes before the upload was complete".into(),
    }
}

/// The session expired (or was cancelled) and the upload cannot start over,
/// because its stream cannot be replayed.
pub fn session_lost() -> StorageError {
    StorageError::Provider {
        status: 404,
        code: Some("uploadSessionExpired".into()),
        message: "the upload session expired and the stream cannot be replayed".into(),
    }
}

/// The session keeps refusing pieces as overlapping what it holds.
fn overlapping() -> StorageError {
    StorageError::Provider {
        status: 416,
        code: Some("fragmentOverlap".into()),
        message: "the upload session keeps refusing pieces as overlapping what it holds".into(),
    }
}

/// Whether larger pieces still pay. Doubling a piece pays on a link whose
/// round trip is a large share of a piece's time: the rate per piece rises.
/// Where it does not (loopback, a fast local network), larger pieces only
/// cost memory and cache, so growth stops at the smaller of the last two sizes.
#[derive(Debug, Default)]
struct Growth {
    /// The last piece that grew the window: its size and bytes per second.
    last: Option<(usize, f64)>,
    stopped: bool,
}

impl Growth {
    /// A doubled piece must be this much faster per byte to go on growing.
    const GAIN: f64 = 1.05;

    /// The next window after a whole piece of `size` bytes that took `took`.
    fn after(&mut self, pace: &Pace, size: usize, took: std::time::Duration) -> usize {
        if self.stopped {
            return size;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = size as f64 / took.as_secs_f64().max(1e-9);
        if let Some((before, before_rate)) = self.last
            && size > before
            && rate < before_rate * Self::GAIN
        {
            // Not worth its memory: back to the smaller piece.
            self.stopped = true;
            return before;
        }
        self.last = Some((size, rate));
        pace.next_window(size, took)
    }
}

/// Counts one more failed piece; past the retry budget, the upload ends with `error`.
fn spend(failures: &mut u32, pace: &Pace, error: fn() -> StorageError) -> Result<()> {
    *failures += 1;
    if *failures >= pace.retry.max_attempts() {
        Err(error())
    } else {
        Ok(())
    }
}

/// Sends the window piece by piece until the session holds every byte, or is gone.
///
/// # Errors
/// The stream's error, a failed piece beyond the retry budget, or a session
/// that stops taking bytes.
pub async fn send_all<S: Session>(
    session: &S,
    window: &mut UploadWindow,
    gauge: &BufferGauge,
    pace: &Pace,
) -> Result<End<S::Done>> {
    let mut failures = 0u32;
    let mut size = pace.window;
    let mut growth = Growth::default();
    loop {
        window.fill(size).await?;
        gauge.record(window.held());
        let Some(piece) = window.next_piece(pace.unit) else {
            return Err(stalled());
        };
        let first = window.start();
        let sent = piece.len();
        let sent_at = tokio::time::Instant::now();
        let reply = match session.send(first, piece, window.size()).await {
            Ok(Reply::Overlap) => {
                spend(&mut failures, pace, overlapping)?;
                session.query(window.size()).await
            }
            other => other,
        };
        match reply {
            Ok(Reply::Next(n)) => {
                window.acknowledge(n)?;
                if n > first {
                    if n < first + sent as u64 {
                        // A partial accept: the link or the server is struggling.
                        size = pace.smaller_window(size);
                    } else if sent == size && failures == 0 {
                        size = growth.after(pace, size, sent_at.elapsed());
                    }
                    failures = 0;
                } else {
                    // Nothing was taken: count it, so that a session that never
                    // takes a byte ends the upload instead of looping.
                    spend(&mut failures, pace, stalled)?;
                }
            }
            Ok(Reply::Done(done)) => return Ok(End::Done(done)),
            Ok(Reply::Gone) => return Ok(End::Gone),
            Ok(Reply::Overlap) => spend(&mut failures, pace, overlapping)?,
            Err(err) => {
                failures += 1;
                // After a failure, re-send (and risk) less at a time.
                size = pace.smaller_window(size);
                let Some(wait) = pace.retry.delay_after(failures, &err) else {
                    return Err(err);
                };
                tokio::time::sleep(wait).await;
                // Ask what the server kept before sending anything again; a failed
                // question leaves the next round to send from the same place.
                match session.query(window.size()).await {
                    Ok(Reply::Next(n)) => window.acknowledge(n)?,
                    Ok(Reply::Done(done)) => return Ok(End::Done(done)),
                    Ok(Reply::Gone) => return Ok(End::Gone),
                    Ok(Reply::Overlap) | Err(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::checksum::HashKind;
    use crate::upload::UploadSource;

    /// A session that keeps `keep(piece)` bytes of every piece, takes
    /// `delay(piece)` to answer, and records the offsets it was sent.
    struct Fake {
        held: Mutex<u64>,
        sent: Mutex<Vec<u64>>,
        keep: fn(usize) -> u64,
        delay: fn(usize) -> Duration,
    }

    fn instant(_: usize) -> Duration {
        Duration::ZERO
    }

    #[async_trait]
    impl Session for Fake {
        type Done = u64;
        async fn send(&self, first: u64, piece: Bytes, total: u64) -> Result<Reply<u64>> {
            tokio::time::sleep((self.delay)(piece.len())).await;
            self.sent.lock().unwrap().push(first);
            let mut held = self.held.lock().unwrap();
            *held = first + (self.keep)(piece.len());
            Ok(if *held == total {
                Reply::Done(total)
            } else {
                Reply::Next(*held)
            })
        }
        async fn query(&self, _total: u64) -> Result<Reply<u64>> {
            Ok(Reply::Next(*self.held.lock().unwrap()))
        }
    }

    fn pace() -> Pace {
        Pace {
            window: 4,
            max_window: 4,
            unit: 2,
            retry: RetryPolicy::new()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        }
    }

    #[tokio::test]
    async fn resumes_from_what_the_server_holds() {
        let fake = Fake {
            held: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
            // Keeps one byte less than sent, except for short pieces.
            keep: |n| if n > 1 { n as u64 - 1 } else { n as u64 },
            delay: instant,
        };
        let mut w = UploadWindow::new(
            UploadSource::Bytes(Bytes::from_static(b"0123456789")),
            10,
            HashKind::Md5,
        );
        let end = send_all(&fake, &mut w, &BufferGauge::default(), &pace()).await.unwrap();
        assert!(matches!(end, End::Done(10)));
        let sent = fake.sent.lock().unwrap().clone();
        // Every piece starts where the previous answer said, never where the last one ended.
        assert_eq!(sent[0], 0);
        assert!(sent.windows(2).all(|p| p[1] > p[0]), "{sent:?}");
    }

    #[tokio::test]
    async fn a_session_that_takes_nothing_ends_the_upload() {
        let fake = Fake {
            held: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
            keep: |_| 0,
            delay: instant,
        };
        let mut w = UploadWindow::new(
            UploadSource::Bytes(Bytes::from_static(b"0123456789")),
            10,
            HashKind::Md5,
        );
        let err = send_all(&fake, &mut w, &BufferGauge::default(), &pace())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Provider { ref code, .. } if code.as_deref() == Some("noProgress")));
        assert_eq!(fake.sent.lock().unwrap().len(), 3, "bounded by the retry budget");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_grows_on_a_long_link_up_to_the_budget() {
        let fake = Fake {
            held: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
            keep: |n| n as u64,
            // A 100 ms round trip, 10 ms a byte: doubling a piece pays.
            delay: |n| Duration::from_millis(100 + 10 * n as u64),
        };
        let data = Bytes::from(vec![3u8; 100]);
        let mut w = UploadWindow::new(UploadSource::Bytes(data), 100, HashKind::Md5);
        let gauge = BufferGauge::default();
        let p = Pace {
            window: 4,
            max_window: 17,
            ..pace()
        };
        assert!(matches!(
            send_all(&fake, &mut w, &gauge, &p).await.unwrap(),
            End::Done(100)
        ));
        let sent = fake.sent.lock().unwrap().clone();
        // 4, 8, 16 (17 rounded down to the unit), then 16 at a time.
        assert_eq!(sent, [0, 4, 12, 28, 44, 60, 76, 92]);
        assert_eq!(gauge.peak(), 16, "never more than the budget held");
    }

    #[test]
    fn a_slow_piece_keeps_the_window() {
        let p = Pace {
            window: 4,
            max_window: 64,
            ..pace()
        };
        assert_eq!(p.next_window(4, Duration::from_millis(10)), 8);
        assert_eq!(p.next_window(32, Duration::from_millis(10)), 64);
        assert_eq!(p.next_window(64, Duration::from_millis(10)), 64);
        assert_eq!(p.next_window(8, PIECE_TARGET), 8);
        let tight = Pace { max_window: 2, ..p };
        assert_eq!(tight.next_window(4, Duration::ZERO), 4, "never below the first window");
        assert_eq!(p.smaller_window(64), 32);
        assert_eq!(p.smaller_window(6), 4, "never below the first window");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_stays_where_the_round_trip_costs_nothing() {
        let fake = Fake {
            held: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
            keep: |n| n as u64,
            // No round trip: a doubled piece takes twice as long.
            delay: |n| Duration::from_millis(10 * n as u64),
        };
        let mut w = UploadWindow::new(UploadSource::Bytes(Bytes::from(vec![3u8; 40])), 40, HashKind::Md5);
        let p = Pace {
            window: 4,
            max_window: 16,
            ..pace()
        };
        let gauge = BufferGauge::default();
        assert!(matches!(
            send_all(&fake, &mut w, &gauge, &p).await.unwrap(),
            End::Done(40)
        ));
        // 4, then 8 (no faster per byte), then back to 4 for the rest.
        assert_eq!(*fake.sent.lock().unwrap(), [0, 4, 12, 16, 20, 24, 28, 32, 36]);
        assert_eq!(gauge.peak(), 8);
    }
}
