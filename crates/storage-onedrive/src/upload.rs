//! Upload-session fragments, written with `reqwest`.
//!
//! graph-rs-sdk creates the session; its own uploader is not used: its fragment
//! sizes are never multiples of 320 KiB (Graph can refuse to commit such
//! uploads), it claims wrong ranges for tiny files, reads the whole file into
//! memory, never checks a status and never resumes or cancels.
//!
//! Protocol (<https://learn.microsoft.com/graph/api/driveitem-createuploadsession>):
//! - `PUT uploadUrl` with `Content-Range: bytes a-b/total`, fragments in order,
//!   each a multiple of 320 KiB except the last, each under 60 MiB;
//! - no `Authorization`: a bearer on the fragment PUT may be answered 401;
//! - `202` lists `nextExpectedRanges`; `200`/`201` carries the driveItem;
//! - `416` means the fragment overlaps stored data: ask `GET uploadUrl` where to go on;
//! - `404` means the session expired or was cancelled: start over;
//! - `DELETE uploadUrl` cancels the session.

use bytes::Bytes;
use serde::Deserialize;
use storage_core::session::{End, Pace, Reply, Session, send_all, session_lost};
use storage_core::upload::{BufferGauge, HashKind, UploadSource, UploadWindow};
use storage_core::{Checksum, Result, StorageError};

use crate::client::{DriveItem, OneDriveClient, Slot};
use crate::config::FRAGMENT_UNIT;
use crate::error::{answer_error, read_json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

/// The lowest start of `nextExpectedRanges` (`["N-"]`, `["N-M", …]`).
fn next_expected(ranges: &[String]) -> Result<u64> {
    ranges
        .iter()
        .filter_map(|r| r.split('-').next()?.trim().parse::<u64>().ok())
        .min()
        .ok_or_else(|| crate::error::bad_range("onedrive did not say which bytes it expects next"))
}

async fn interpret(resp: reqwest::Response) -> Result<Reply<DriveItem>> {
    match resp.status().as_u16() {
        // The fragment overlaps what the server has: ask where to go on.
        416 => Ok(Reply::Overlap),
        202 => {
            let s: Status = read_json(resp, None).await?;
            Ok(Reply::Next(next_expected(&s.next_expected_ranges)?))
        }
        200 | 201 => Ok(Reply::Done(read_json(resp, None).await?)),
        404 => Ok(Reply::Gone),
        _ => Err(answer_error(resp, None).await),
    }
}

/// Asks the session which bytes it expects next.
async fn status(api: &OneDriveClient, url: &str) -> Result<Reply<DriveItem>> {
    let resp = api.session_status(url).await?;
    match resp.status().as_u16() {
        200 => {
            let s: Status = read_json(resp, None).await?;
            Ok(Reply::Next(next_expected(&s.next_expected_ranges)?))
        }
        404 => Ok(Reply::Gone),
        _ => Err(answer_error(resp, None).await),
    }
}

/// An upload session's `uploadUrl`. No `Authorization` goes to it: a bearer on
/// the fragment PUT may be answered 401.
struct GraphSession<'a> {
    api: &'a OneDriveClient,
    url: &'a str,
}

#[async_trait::async_trait]
impl Session for GraphSession<'_> {
    type Done = DriveItem;

    async fn send(&self, first: u64, piece: Bytes, total: u64) -> Result<Reply<DriveItem>> {
        interpret(self.api.put_fragment(self.url, first, piece, total).await?).await
    }

    async fn query(&self, _total: u64) -> Result<Reply<DriveItem>> {
        status(self.api, self.url).await
    }
}

/// Cancels an open session when the upload future is dropped before the session
/// ended, e.g. by a caller's timeout: a task sends `DELETE uploadUrl` so that
/// Graph frees the session and its stored fragments now rather than when the
/// session expires. A session commits with its last byte, so the last fragment
/// may have been stored while its answer was on its way: the task then deletes
/// what holds the upload's temporary name, which no other upload uses. Best
/// effort, and only inside a Tokio runtime.
struct CancelOnDrop {
    api: OneDriveClient,
    url: Option<String>,
    slot: Slot,
}

impl CancelOnDrop {
    fn new(api: &OneDriveClient, url: &str, slot: &Slot) -> Self {
        Self {
            api: api.clone(),
            url: Some(url.to_owned()),
            slot: slot.clone(),
        }
    }

    /// The session ended (done, gone or cancelled by the caller): nothing to do on drop.
    fn disarm(&mut self) {
        self.url = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(url) = self.url.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let slot = self.slot.clone();
            runtime.spawn(async move { abandon(&api, &url, &slot).await });
        }
    }
}

/// Cancels the session at `url`, then deletes a file its last fragment may
/// have committed at `slot`, the upload's own temporary name.
async fn abandon(api: &OneDriveClient, url: &str, slot: &Slot) {
    api.cancel_session(url).await;
    if let Ok(Some(item)) = api.item_in(slot).await
        && item.named(&slot.name)
    {
        let _ = api.delete(&item.id).await;
    }
}

/// Uploads `size` (> 0) bytes to a new file at `slot` through upload sessions;
/// returns the item and the quickXorHash of what was sent.
pub(crate) async fn upload(
    api: &OneDriveClient,
    gauge: &BufferGauge,
    slot: &Slot,
    source: UploadSource,
    size: u64,
) -> Result<(DriveItem, Checksum)> {
    let mut window = UploadWindow::new(source, size, HashKind::QuickXor);
    let mut restarts = 1;
    loop {
        let url = api.create_session(slot, size).await?;
        let mut guard = CancelOnDrop::new(api, &url, slot);
        let pace = Pace {
            window: api.options.fragment_size,
            max_window: api.options.max_fragment(),
            unit: FRAGMENT_UNIT,
            retry: api.options.retry,
        };
        let session = GraphSession { api, url: &url };
        let sent = send_all(&session, &mut window, gauge, &pace).await;
        if sent.is_ok() {
            guard.disarm();
        }
        match sent {
            Ok(End::Done(item)) => return Ok((item, window.checksum())),
            // Graph ends a session when its last byte is stored, so a session that is gone
            // after the last fragment went out may have committed the file while the answer
            // was lost (fault matrix: reset or truncation of the last fragment's answer).
            // Look for that file before starting over, or before failing a stream that
            // cannot be replayed while the file it sent is in place.
            Ok(End::Gone) if window.start() + window.held() as u64 == size => {
                if let Some(item) = committed(api, slot, window.checksum(), size).await {
                    return Ok((item, window.checksum()));
                }
                if restarts > 0 && window.can_restart() {
                    restarts -= 1;
                    window.restart();
                } else {
                    return Err(session_lost());
                }
            }
            Ok(End::Gone) if restarts > 0 && window.can_restart() => {
                restarts -= 1;
                window.restart();
            }
            Ok(End::Gone) => return Err(session_lost()),
            Err(e) => {
                abandon(api, &url, slot).await;
                // Disarmed only now: a caller dropped during the cancel leaves
                // it to the guard.
                guard.disarm();
                return Err(e);
            }
        }
    }
}

/// Uploads a small body in memory to a new file at `slot` in one simple
/// `PUT`: one request instead of a session's two.
///
/// When a first attempt was stored but its answer lost, the retry meets its
/// own temporary name (409): the file there is this upload's when it holds
/// the bytes sent, and then it is the result.
pub(crate) async fn put_simple(api: &OneDriveClient, slot: &Slot, body: Bytes) -> Result<(DriveItem, Checksum)> {
    let size = body.len() as u64;
    let sent = Checksum::quick_xor_of(&body);
    match api.put_small(slot, body).await {
        Ok(item) => Ok((item, sent)),
        Err(e @ StorageError::Provider { status: 409, .. }) => match committed(api, slot, sent, size).await {
            Some(item) => Ok((item, sent)),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The item at `slot` when it holds exactly the `size` bytes hashed to `sent`.
async fn committed(api: &OneDriveClient, slot: &Slot, sent: Checksum, size: u64) -> Option<DriveItem> {
    let item = api.item_in(slot).await.ok()??;
    let stored = item.quick_xor().and_then(Checksum::from_quick_xor_base64)?;
    (stored == sent && item.size == Some(size)).then_some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_expected_takes_the_lowest_start() {
        assert_eq!(next_expected(&["26-".into()]).unwrap(), 26);
        assert_eq!(
            next_expected(&["77829-99375".into(), "12345-55232".into()]).unwrap(),
            12345
        );
        assert!(next_expected(&[]).is_err());
        assert!(next_expected(&["x-".into()]).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::with_cases(1000)
            }
        }

        proptest! {
            #![proptest_config(config())]

            /// Any list of strings: an offset or an error, never a panic.
            #[test]
            fn next_expected_is_total(ranges in proptest::collection::vec("\\PC{0,24}|[0-9]{0,22}-[0-9]{0,22}", 0..4)) {
                let _ = next_expected(&ranges);
            }

            /// Well-formed ranges, open or closed, give the lowest start.
            #[test]
            fn next_expected_takes_the_lowest_start_of_any_ranges(
                ranges in proptest::collection::vec((any::<u64>(), proptest::option::of(any::<u64>())), 1..5),
            ) {
                let text: Vec<String> = ranges
                    .iter()
                    .map(|(a, b)| b.map_or_else(|| format!("{a}-"), |b| format!("{a}-{}", a.max(&b))))
                    .collect();
                let lowest = ranges.iter().map(|(a, _)| *a).min().unwrap();
                prop_assert_eq!(next_expected(&text).unwrap(), lowest);
            }
        }
    }
}
