//! Resumable uploads, written with `reqwest`.
//!
//! google-drive3's `upload_resumable` cannot be used: after a 308 it advances by
//! the bytes it sent and ignores the `Range` header (silent corruption when the
//! server kept fewer), it panics on a 2xx without `Location` and on 0 bytes, it
//! never queries a session's status, and it reads a blocking `Read`.
//!
//! Protocol (<https://developers.google.com/drive/api/guides/manage-uploads#resumable>):
//! - `POST {root}upload/drive/v3/files?uploadType=resumable` with the metadata
//!   starts a session; its URI comes back in `Location`.
//! - Chunks are `PUT`s with `Content-Range: bytes a-b/total`, each a multiple of
//!   256 KiB except the last.
//! - `308` means "incomplete": `Range: bytes=0-N` says the server kept N+1 bytes,
//!   no `Range` says it kept none. Resume from there, never from what was sent.
//! - After an interruption or a 5xx, `PUT` with `Content-Range: bytes */total`
//!   and no body asks for the status.
//! - `404` (or `410`) means the session is gone: start over.
//! - `200`/`201` carries the file resource.

use bytes::Bytes;
use storage_core::Result;
use storage_core::session::{End, Pace, Reply, Session, send_all, session_lost};
use storage_core::upload::{BufferGauge, HashKind, UploadSource, UploadWindow};

use crate::client::{DriveClient, DriveFile};
use crate::config::CHUNK_UNIT;
use crate::error::{answer_error, read_json};

/// Uploads `size` bytes into a new file `name` under `parent`, verified by md5.
pub(crate) async fn upload(
    client: &DriveClient,
    gauge: &BufferGauge,
    parent: &str,
    name: &str,
    content_type: &str,
    source: UploadSource,
    size: u64,
) -> Result<(DriveFile, String)> {
    let mut window = UploadWindow::new(source, size, HashKind::Md5);
    let mut restarts = 1;
    loop {
        let session = DriveSession {
            client,
            uri: client.start_upload(parent, name, content_type, size).await?,
        };
        let pace = Pace {
            window: client.options.chunk_size,
            max_window: client.options.upload_memory_budget,
            unit: CHUNK_UNIT,
            retry: client.options.retry,
        };
        match send_all(&session, &mut window, gauge, &pace).await? {
            End::Done(file) => {
                let md5 = window.checksum().to_provider_string();
                return Ok((file, md5));
            }
            End::Gone if restarts > 0 && window.can_restart() => {
                restarts -= 1;
                window.restart();
            }
            End::Gone => return Err(session_lost()),
        }
    }
}

/// `Range: bytes=0-N` after a 308 means N+1 bytes are stored; no header means none.
fn stored_after_308(headers: &reqwest::header::HeaderMap) -> Result<u64> {
    let Some(v) = headers.get(reqwest::header::RANGE) else {
        return Ok(0);
    };
    v.to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes=0-"))
        .and_then(|last| last.parse::<u64>().ok())
        // `bytes=0-18446744073709551615` must be an error, not an overflow (found by
        // the property test below).
        .and_then(|last| last.checked_add(1))
        .ok_or_else(|| crate::error::bad_range("drive answered with a range header that does not parse"))
}

async fn interpret(resp: reqwest::Response) -> Result<Reply<DriveFile>> {
    match resp.status().as_u16() {
        308 => Ok(Reply::Next(stored_after_308(resp.headers())?)),
        200 | 201 => Ok(Reply::Done(read_json(resp, None).await?)),
        404 | 410 => Ok(Reply::Gone),
        _ => Err(answer_error(resp, None).await),
    }
}

/// A resumable session URI.
///
/// No `Authorization` goes to it: the URI itself authorises the upload, and a
/// token sent where it is not needed is a token exposed.
struct DriveSession<'a> {
    client: &'a DriveClient,
    uri: String,
}

#[async_trait::async_trait]
impl Session for DriveSession<'_> {
    type Done = DriveFile;

    async fn send(&self, first: u64, piece: Bytes, total: u64) -> Result<Reply<DriveFile>> {
        interpret(self.client.put_chunk(&self.uri, first, piece, total).await?).await
    }

    /// `PUT` with `Content-Range: bytes */total` and no body.
    async fn query(&self, total: u64) -> Result<Reply<DriveFile>> {
        interpret(self.client.query_upload(&self.uri, total).await?).await
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RANGE};

    use super::*;

    #[test]
    fn range_after_308() {
        let mut h = HeaderMap::new();
        assert_eq!(stored_after_308(&h).unwrap(), 0);
        h.insert(RANGE, HeaderValue::from_static("bytes=0-262143"));
        assert_eq!(stored_after_308(&h).unwrap(), 262_144);
        h.insert(RANGE, HeaderValue::from_static("bytes 0-5"));
        assert!(stored_after_308(&h).is_err());
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

            /// Any header value: a count or an error, never a panic; a well-formed
            /// `bytes=0-N` is N+1 bytes stored, whatever N.
            #[test]
            fn range_after_308_is_total(
                junk in prop_oneof!["bytes=[0-9 =-]{0,24}", "\\PC{0,32}"],
                last in prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()],
            ) {
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&junk) {
                    h.insert(RANGE, v);
                    let _ = stored_after_308(&h);
                }
                h.insert(RANGE, HeaderValue::from_str(&format!("bytes=0-{last}")).unwrap());
                match stored_after_308(&h) {
                    Ok(stored) => prop_assert_eq!(Some(stored), last.checked_add(1)),
                    Err(_) => prop_assert_eq!(last, u64::MAX),
                }
            }
        }
    }
}
