//! Verified downloads from the item's pre-authenticated URL.
//!
//! The item's `@microsoft.graph.downloadUrl` is fetched with a client that sends
//! no `Authorization` and no `Referer` and follows no redirect, so the bearer
//! token never reaches the download host. `Range` goes on that URL, not on
//! `/content` (<https://learn.microsoft.com/graph/api/driveitem-get-content>).

use std::sync::Arc;

use storage_core::download::{Expected, parallel, verified};
use storage_core::upload::HashKind;
use storage_core::{ByteRange, ByteStream, Checksum, Result, StorageError};
use tokio::sync::Mutex;

use crate::client::{DriveItem, OneDriveClient};

/// Opens item `id` for reading: metadata first (size, quickXorHash, URL), then
/// the body (in ranged parts several at a time when the object is large),
/// resumed with `Range` after a cut and verified at the end. Returns the
/// stream and the size OneDrive reported.
pub(crate) async fn open(api: OneDriveClient, id: &str) -> Result<(ByteStream, u64)> {
    let item = api.get_item(id).await?;
    if item.folder.is_some() {
        return Err(StorageError::not_found(id));
    }
    let url = download_url(&item)?;
    let expected = Expected {
        size: item.size.unwrap_or(0),
        checksum: item.quick_xor().and_then(Checksum::from_quick_xor_base64),
        kind: HashKind::QuickXor,
        resumes: api.options.download_resumes,
        read_timeout: api.options.read_timeout,
    };
    let size = expected.size;
    let plan = api.options.parallel_download;
    if plan.applies(size) {
        let current = Arc::new(Mutex::new(url));
        let id = id.to_owned();
        let stream = parallel(expected, plan, move |first, last| {
            fetch(api.clone(), id.clone(), current.clone(), first, Some(last))
        });
        return Ok((stream, size));
    }
    let first = api.options.retry.run(|| api.download(&url, 0, None)).await?;
    let current = Arc::new(Mutex::new(url));
    let id = id.to_owned();
    let stream = verified(first, expected, move |offset| {
        fetch(api.clone(), id.clone(), current.clone(), offset, None)
    });
    Ok((stream, size))
}

/// Opens bytes `range` of item `id`: the item first (size, kind, URL), then
/// the URL with `Range`, resumed at the next byte after a cut.
pub(crate) async fn open_range(api: OneDriveClient, id: &str, range: ByteRange) -> Result<ByteStream> {
    let item = api.document(id).await?;
    let (first, len) = range.resolve(item.size.unwrap_or(0))?;
    let last = (first + len).saturating_sub(1);
    let current = Arc::new(Mutex::new(download_url(&item)?));
    let (id, resumes) = (id.to_owned(), api.options.download_resumes);
    Ok(storage_core::range::read(first, len, resumes, move |offset| {
        fetch(api.clone(), id.clone(), current.clone(), offset, Some(last))
    }))
}

/// The body from `offset` (to `last`) through the current download URL; a
/// short-lived URL that has expired is fetched afresh, once.
async fn fetch(
    api: OneDriveClient,
    id: String,
    current: Arc<Mutex<String>>,
    offset: u64,
    last: Option<u64>,
) -> Result<ByteStream> {
    let url = current.lock().await.clone();
    match api.download(&url, offset, last).await {
        Err(
            StorageError::NotFound { .. }
            | StorageError::PermissionDenied { .. }
            | StorageError::CloudConnection { .. },
        ) => {
            let fresh = download_url(&api.get_item(&id).await?)?;
            *current.lock().await = fresh.clone();
            api.download(&fresh, offset, last).await
        }
        other => other,
    }
}

pub(crate) fn download_url(item: &DriveItem) -> Result<String> {
    item.download_url
        .clone()
        .ok_or_else(|| crate::error::download_url(false))
}
