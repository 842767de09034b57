//! `OneDriveBackend`: the `StorageBackend` implementation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use storage_core::upload::{BufferGauge, UploadSource};
use storage_core::{
    ByteStream, Capabilities, Checksum, ObjectKey, ObjectMeta, ObjectName, Result, StorageBackend, StorageError,
    TokenCell, Url,
};

use crate::client::{DriveItem, GraphApi, GraphPool, default_http};
use crate::config::{GraphEndpoints, OneDriveOptions};

/// How long a pre-authenticated download URL may be promised for: Graph
/// documents them as valid for about an hour at most.
const MAX_PRESIGN: Duration = Duration::from_secs(3600);

/// OneDrive, through Microsoft Graph, behind [`StorageBackend`].
///
/// Objects live at `/{user_id}/{document_id}{extension}` in the user's drive;
/// keys are item ids. Every non-empty upload goes through an upload session
/// (replacing a file of the same name); empty files take one simple `PUT`.
/// Clones share one `GraphClient`, one HTTP pool and the token cell. The
/// backend never refreshes a token.
///
/// ```no_run
/// use storage_core::{StorageBackend, TokenCell};
/// use storage_onedrive::OneDriveBackend;
/// # async fn f() -> storage_core::Result<()> {
/// let onedrive = OneDriveBackend::builder(TokenCell::new("eyJ0-access-token")).build()?;
/// onedrive.health_check().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OneDriveBackend {
    api: GraphApi,
    gauge: Arc<BufferGauge>,
}

impl std::fmt::Debug for OneDriveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDriveBackend")
            .field("endpoints", &self.api.endpoints)
            .finish_non_exhaustive()
    }
}

/// Builds a [`OneDriveBackend`].
#[derive(Debug)]
pub struct OneDriveBuilder {
    tokens: TokenCell,
    endpoints: GraphEndpoints,
    options: OneDriveOptions,
    http: Option<reqwest::Client>,
    pool: Option<GraphPool>,
}

impl OneDriveBuilder {
    /// A Graph client and pool shared with other backends (see [`GraphPool`]);
    /// by default each backend has its own.
    #[must_use]
    pub fn pool(mut self, pool: GraphPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Where Graph lives; production by default.
    #[must_use]
    pub fn endpoints(mut self, endpoints: GraphEndpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Tuning; see [`OneDriveOptions`].
    #[must_use]
    pub fn options(mut self, options: OneDriveOptions) -> Self {
        self.options = options;
        self
    }

    /// A shared HTTP client for upload and download URLs. It must not follow
    /// redirects or send a `Referer`, and should have timeouts.
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the settings and builds the backend.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for invalid endpoints (a host graph-rs-sdk
    /// would panic on is refused here) or options.
    pub fn build(self) -> Result<OneDriveBackend> {
        let http = match self.http {
            Some(h) => h,
            None => default_http(&self.options)?,
        };
        Ok(OneDriveBackend {
            api: GraphApi::new(self.tokens, self.endpoints, self.options, http, self.pool)?,
            gauge: Arc::default(),
        })
    }
}

impl OneDriveBackend {
    /// A builder reading the access token from `tokens` on every request.
    pub fn builder(tokens: TokenCell) -> OneDriveBuilder {
        OneDriveBuilder {
            tokens,
            endpoints: GraphEndpoints::production(),
            options: OneDriveOptions::default(),
            http: None,
            pool: None,
        }
    }

    /// The most body bytes any upload of this backend held in memory at once:
    /// about one fragment, whatever the object's size.
    pub fn peak_upload_buffer(&self) -> usize {
        self.gauge.peak()
    }

    async fn store(&self, name: &ObjectName, source: UploadSource, size: u64) -> Result<ObjectKey> {
        let (item, sent) = if size == 0 {
            (
                self.api.put_small(name, Bytes::new()).await?,
                Checksum::quick_xor_of(&[]),
            )
        } else {
            crate::upload::upload(&self.api, &self.gauge, name, source, size).await?
        };
        self.verify(item, sent, size).await
    }

    /// Compares OneDrive's size and quickXorHash with what was sent; on a
    /// difference the item is deleted so no damaged object stays visible.
    async fn verify(&self, item: DriveItem, sent: Checksum, size: u64) -> Result<ObjectKey> {
        let item = if item.quick_xor().is_none() || item.size.is_none() {
            self.api.get_item(&item.id).await?
        } else {
            item
        };
        let stored = item.quick_xor().and_then(Checksum::from_quick_xor_base64);
        let problem = match (stored, item.size) {
            (Some(h), Some(s)) if h == sent && s == size => None,
            (None, _) | (_, None) => Some("onedrive reported no quickXorHash or size for the upload".to_owned()),
            (_, Some(s)) if s != size => Some(format!("onedrive stored {s} bytes, {size} were sent")),
            _ => Some("onedrive's quickXorHash differs from the hash of the bytes sent".to_owned()),
        };
        match problem {
            None => Ok(ObjectKey::new(item.id)),
            Some(message) => {
                let _ = self.api.delete(&item.id).await;
                Err(StorageError::integrity(message))
            }
        }
    }
}

#[async_trait]
impl StorageBackend for OneDriveBackend {
    async fn put_object(&self, name: &ObjectName, body: Bytes, _content_type: &str) -> Result<ObjectKey> {
        let size = body.len() as u64;
        self.store(name, UploadSource::Bytes(body), size).await
    }

    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        _content_type: &str,
    ) -> Result<ObjectKey> {
        if size == 0 {
            // Drain the stream so that a non-empty one is refused, not truncated.
            let all = storage_core::stream::collect(body, 0).await?;
            if !all.is_empty() {
                return Err(StorageError::invalid_input(
                    "stream is longer than the declared 0 bytes",
                ));
            }
            return self.store(name, UploadSource::Bytes(all), 0).await;
        }
        self.store(name, UploadSource::Stream(body), size).await
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        let (stream, size) = crate::download::open(self.api.clone(), key.as_str()).await?;
        storage_core::stream::collect(stream, usize::try_from(size).unwrap_or(usize::MAX)).await
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        Ok(crate::download::open(self.api.clone(), key.as_str()).await?.0)
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        self.api.delete(key.as_str()).await
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let item = self.api.get_item(key.as_str()).await?;
        if item.folder.is_some() {
            return Err(StorageError::not_found(key.as_str()));
        }
        let mut meta = ObjectMeta::new(item.size.unwrap_or(0));
        if let Some(ct) = item.file.as_ref().and_then(|f| f.mime_type.clone()) {
            meta = meta.with_content_type(ct);
        }
        if let Some(sum) = item.quick_xor().and_then(Checksum::from_quick_xor_base64) {
            meta = meta.with_checksum(sum);
        }
        Ok(meta)
    }

    /// The item's pre-authenticated `@microsoft.graph.downloadUrl`. Graph decides
    /// its lifetime (minutes to an hour), so an `expires_in` over one hour is refused.
    async fn presigned_get_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url> {
        if expires_in > MAX_PRESIGN {
            return Err(StorageError::invalid_input(
                "onedrive download urls live at most one hour; ask for an expiry of one hour or less",
            ));
        }
        let item = self.api.get_item(key.as_str()).await?;
        let url = crate::download::download_url(&item)?;
        Url::parse(&url).map_err(|_| StorageError::Provider {
            status: 200,
            code: Some("badDownloadUrl".into()),
            message: "onedrive returned a download url that does not parse".into(),
        })
    }

    async fn generate_presigned_put_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "generate_presigned_put_url",
            "onedrive upload urls belong to upload sessions created for one file by an authorised call",
        ))
    }

    async fn health_check(&self) -> Result<()> {
        self.api.drive().await
    }

    /// Deletes the `root:/{user_id}` folder; Graph deletes the files in it.
    /// A user with no folder is an empty report.
    async fn purge_user(&self, user_id: &str) -> Result<storage_core::PurgeReport> {
        crate::purge::purge_user(&self.api, user_id).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_presign_get(MAX_PRESIGN)
    }
}
