//! Verified downloads that resume after a cut.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::{ByteStream, Md5Hasher, Result, StorageError};

use crate::client::{BodyStream, DriveClient};

/// What the stream knows and where it is.
struct State {
    client: DriveClient,
    id: String,
    expected_size: u64,
    expected_md5: Option<String>,
    offset: u64,
    hasher: Md5Hasher,
    body: Option<BodyStream>,
    resumes_left: u32,
    finished: bool,
}

/// Opens `id` for reading.
///
/// The file's size and md5 come first from `files.get`. The body then streams;
/// when the connection drops, stalls past the read timeout or ends early, the
/// stream asks again with `Range: bytes={received}-`, up to the configured number
/// of resumes. At the end the size and md5 of everything received are checked
/// against the metadata, and a difference is [`StorageError::Integrity`].
pub(crate) async fn open(client: DriveClient, id: &str) -> Result<ByteStream> {
    let meta = client.get_file(id).await?;
    if meta.mime_type.as_deref() == Some(crate::client::FOLDER_MIME) {
        return Err(StorageError::not_found(id));
    }
    let body = client.options.retry.run(|| client.download(id, 0)).await?;
    let state = State {
        resumes_left: client.options.download_resumes,
        client,
        id: id.to_owned(),
        expected_size: meta.size.unwrap_or(0),
        expected_md5: meta.md5_checksum,
        offset: 0,
        hasher: Md5Hasher::new(),
        body: Some(body),
        finished: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, |mut s| async move {
        let item = s.next_item().await?;
        Some((item, s))
    })))
}

impl State {
    async fn next_item(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.finished {
                return None;
            }
            let timeout = self.client.options.read_timeout;
            let next = match self.body.as_mut() {
                Some(body) => tokio::time::timeout(timeout, body.next()).await,
                None => Ok(Some(Err(StorageError::Transport {
                    message: "drive download has no body".into(),
                    source: None,
                }))),
            };
            let cut = match next {
                Ok(Some(Ok(bytes))) => {
                    if self.offset + bytes.len() as u64 > self.expected_size {
                        self.finished = true;
                        return Some(Err(StorageError::integrity(format!(
                            "drive sent more than the {} bytes its metadata declares",
                            self.expected_size
                        ))));
                    }
                    self.offset += bytes.len() as u64;
                    self.hasher.update(&bytes);
                    return Some(Ok(bytes));
                }
                Ok(None) if self.offset == self.expected_size => {
                    self.finished = true;
                    return self.verify().err().map(Err);
                }
                Ok(None) => StorageError::Transport {
                    message: format!(
                        "drive download ended after {} of {} bytes",
                        self.offset, self.expected_size
                    ),
                    source: None,
                },
                Ok(Some(Err(e))) => e,
                Err(_) => StorageError::Transport {
                    message: "drive download stalled past the read timeout".into(),
                    source: None,
                },
            };
            if self.resumes_left == 0 {
                self.finished = true;
                return Some(Err(cut));
            }
            self.resumes_left -= 1;
            self.body = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
            match self.client.download(&self.id, self.offset).await {
                Ok(body) => self.body = Some(body),
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn verify(&mut self) -> Result<()> {
        let got = std::mem::take(&mut self.hasher).finish().to_provider_string();
        match &self.expected_md5 {
            Some(want) if want.eq_ignore_ascii_case(&got) => Ok(()),
            Some(_) => Err(StorageError::integrity(
                "downloaded bytes do not match drive's md5Checksum",
            )),
            None => Err(StorageError::integrity(
                "drive reported no md5Checksum to verify the download against",
            )),
        }
    }
}
