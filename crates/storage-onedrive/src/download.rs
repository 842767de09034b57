//! Verified downloads from the item's pre-authenticated URL.
//!
//! The item's `@microsoft.graph.downloadUrl` is fetched with a client that sends
//! no `Authorization` and no `Referer` and follows no redirect, so the bearer
//! token never reaches the download host. `Range` goes on that URL, not on
//! `/content` (<https://learn.microsoft.com/graph/api/driveitem-get-content>).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::download::{Expected, verified};
use storage_core::upload::HashKind;
use storage_core::{ByteStream, Checksum, Result, StorageError};
use tokio::sync::Mutex;

use crate::client::{DriveItem, OneDriveClient};
use crate::error::{answer_error, transport};

/// Opens item `id` for reading: metadata first (size, quickXorHash, URL), then
/// the body, resumed with `Range` after a cut and verified at the end. Returns
/// the stream and the size OneDrive reported.
pub(crate) async fn open(api: OneDriveClient, id: &str) -> Result<(ByteStream, u64)> {
    let item = api.get_item(id).await?;
    if item.folder.is_some() {
        return Err(StorageError::not_found(id));
    }
    let url = download_url(&item)?;
    let first = api.options.retry.run(|| body_from(&api, &url, 0)).await?;
    let expected = Expected {
        size: item.size.unwrap_or(0),
        checksum: item.quick_xor().and_then(Checksum::from_quick_xor_base64),
        kind: HashKind::QuickXor,
        resumes: api.options.download_resumes,
        read_timeout: api.options.read_timeout,
    };
    let current = Arc::new(Mutex::new(url));
    let id = id.to_owned();
    let size = expected.size;
    let stream = verified(first, expected, move |offset| {
        let (api, id, current) = (api.clone(), id.clone(), current.clone());
        async move {
            let url = current.lock().await.clone();
            match body_from(&api, &url, offset).await {
                // A short-lived URL that has expired: ask for a fresh one, once.
                Err(
                    StorageError::NotFound { .. }
                    | StorageError::PermissionDenied { .. }
                    | StorageError::CloudConnection { .. },
                ) => {
                    let fresh = download_url(&api.get_item(&id).await?)?;
                    *current.lock().await = fresh.clone();
                    body_from(&api, &fresh, offset).await
                }
                other => other,
            }
        }
    });
    Ok((stream, size))
}

pub(crate) fn download_url(item: &DriveItem) -> Result<String> {
    item.download_url.clone().ok_or_else(|| StorageError::Provider {
        status: 200,
        code: Some("missingDownloadUrl".into()),
        message: "onedrive returned no download url for the item".into(),
    })
}

/// The body from `offset` on. A server that ignores the range and answers 200
/// with the whole body is tolerated: the first `offset` bytes are skipped.
async fn body_from(api: &OneDriveClient, url: &str, offset: u64) -> Result<ByteStream> {
    let resp = api.fetch(url, offset).await?;
    let status = resp.status().as_u16();
    if !(status == 200 || status == 206 && offset > 0) {
        return Err(answer_error(resp, None).await);
    }
    let body = resp
        .bytes_stream()
        .map(|r| r.map_err(|e| transport("a onedrive download was cut", e)));
    let body: ByteStream = Box::pin(body);
    Ok(if status == 200 && offset > 0 {
        skip(body, offset)
    } else {
        body
    })
}

/// Drops the first `n` bytes of a stream.
fn skip(body: ByteStream, n: u64) -> ByteStream {
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
    use super::*;

    #[tokio::test]
    async fn skip_drops_exactly_the_prefix() {
        let pieces: Vec<Result<Bytes>> = vec![Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"defg"))];
        let s = skip(Box::pin(futures::stream::iter(pieces)), 5);
        assert_eq!(
            storage_core::stream::collect(s, 0).await.unwrap(),
            Bytes::from_static(b"fg")
        );
    }
}
