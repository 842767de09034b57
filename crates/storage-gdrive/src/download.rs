//! Verified downloads that resume after a cut.

use storage_core::download::{Expected, parallel, verified};
use storage_core::upload::HashKind;
use storage_core::{ByteStream, Checksum, Result};

use crate::client::DriveClient;

/// Opens `id` for reading.
///
/// The file's size and md5 come first from `files.get`; the body then streams
/// from `alt=media`, in ranged parts several at a time when the object is
/// large ([`DriveOptions::parallel_download`](crate::DriveOptions)). A
/// connection that drops, stalls past the read timeout or ends early is
/// resumed with `Range` from the first byte not received, and the size and
/// md5 of everything received are checked at the end. Returns the stream and
/// the size Drive reported.
pub(crate) async fn open(client: DriveClient, id: &str) -> Result<(ByteStream, u64)> {
    let meta = client.document(id).await?;
    let expected = Expected {
        size: meta.size.unwrap_or(0),
        checksum: meta.md5_checksum.as_deref().and_then(Checksum::from_md5_hex),
        kind: HashKind::Md5,
        resumes: client.options.download_resumes,
        read_timeout: client.options.read_timeout,
    };
    let id = id.to_owned();
    let size = expected.size;
    let plan = client.options.parallel_download;
    if plan.applies(size) {
        let stream = parallel(expected, plan, move |first, last| {
            let (client, id) = (client.clone(), id.clone());
            async move { client.download(&id, first, Some(last)).await }
        });
        return Ok((stream, size));
    }
    let body = client.download(&id, 0, None).await?;
    let stream = verified(body, expected, move |offset| {
        let (client, id) = (client.clone(), id.clone());
        async move { client.download(&id, offset, None).await }
    });
    Ok((stream, size))
}
