//! Verified downloads that resume after a cut.

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use storage_core::download::{Expected, parallel, verified_parts};
use storage_core::range::read;
use storage_core::upload::HashKind;
use storage_core::{ByteStream, Checksum, Result};

use crate::client::DriveClient;

/// Opens `id` for reading.
///
/// The file's size and md5 (`files.get`) and its first part (`alt=media` with
/// `Range: bytes=0-{part-1}`) are asked for at once: one round trip before the
/// first byte instead of two. A ranged GET has no effect on the file, so when
/// the metadata says the key is not a document the answer is only dropped.
/// The rest follows in ranged parts several at a time when the object is large
/// ([`DriveOptions::parallel_download`](crate::DriveOptions)), or in one more
/// request. Each part resumes after a cut from its first byte not received,
/// and the size and md5 of everything are checked at the end. Returns the
/// stream and the size Drive reported.
pub(crate) async fn open(client: DriveClient, id: &str) -> Result<(ByteStream, u64)> {
    let plan = client.options.parallel_download;
    let head = plan.part.max(1);
    let (meta, first) = futures::future::join(client.document(id), client.download(id, 0, head - 1)).await;
    let meta = meta?;
    let expected = Expected {
        size: meta.size.unwrap_or(0),
        checksum: meta.md5_checksum.as_deref().and_then(Checksum::from_md5_hex),
        kind: HashKind::Md5,
        resumes: client.options.download_resumes,
        read_timeout: client.options.read_timeout,
    };
    let size = expected.size;
    if size == 0 {
        // Nothing to read: a ranged GET of an empty file may even be refused (416).
        let empty: ByteStream = Box::pin(futures::stream::empty());
        return Ok((verified_parts(empty, expected), 0));
    }
    // The first part once, as it was fetched; every later request afresh.
    let prefetched = Arc::new(Mutex::new(Some(first)));
    let id = id.to_owned();
    let fetch = move |offset: u64, last: u64| {
        let (client, id) = (client.clone(), id.clone());
        let early = (offset == 0)
            .then(|| prefetched.lock().ok().and_then(|mut p| p.take()))
            .flatten();
        async move {
            match early {
                Some(first) => first,
                None => client.download(&id, offset, last).await,
            }
        }
    };
    if plan.applies(size) {
        return Ok((parallel(expected, plan, fetch), size));
    }
    let fetch = Arc::new(fetch);
    let resumes = expected.resumes;
    let part = |first: u64, len: u64| {
        let fetch = Arc::clone(&fetch);
        let last = first + len - 1;
        read(first, len, resumes, move |offset| fetch(offset, last))
    };
    let head_len = size.min(head);
    let mut body = part(0, head_len);
    if size > head_len {
        body = Box::pin(body.chain(part(head_len, size - head_len)));
    }
    Ok((verified_parts(body, expected), size))
}
