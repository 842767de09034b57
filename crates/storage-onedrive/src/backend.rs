//! `OneDriveBackend`: the `StorageBackend` implementation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use storage_core::detach::run_to_end;
use storage_core::upload::{BufferGauge, UploadSource};
use storage_core::{
    ByteRange, ByteStream, Capabilities, Checksum, ObjectKey, ObjectMeta, ObjectName, Page, PageRequest, Quota, Result,
    StorageBackend, StorageError, TokenCell, Url,
};

use crate::client::{DriveItem, GraphPool, OneDriveClient, Slot, default_clients, default_http};
use crate::config::{MicrosoftEndpoints, OneDriveOptions};
use crate::folders::Folders;

/// How long a pre-authenticated download URL may be promised for: Graph
/// documents them as valid for about an hour at most.
const MAX_PRESIGN: Duration = Duration::from_secs(3600);

/// OneDrive, through Microsoft Graph, behind [`StorageBackend`].
///
/// Objects live at `/{user_id}/{document_id}{extension}` in the user's drive,
/// in the case-safe spelling of [`storage_core::stored_name`] (`Report` is
/// stored as `^report`), because OneDrive paths ignore case. Keys are item ids,
/// and only a file's id is a key: a folder's id is `InvalidInput` everywhere.
///
/// A put never overwrites bytes in place. Every upload (a session; one simple
/// `PUT` for an empty file or a small body in memory) goes to a new file under
/// a temporary name in the user's folder, is verified against OneDrive's
/// quickXorHash, and only then takes the object's name; the version it
/// replaces goes to the recycle bin at that moment. A failed verification
/// deletes the new file and leaves the previous version as it was.
///
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
    client: OneDriveClient,
    folders: Arc<Folders>,
    gauge: Arc<BufferGauge>,
}

impl std::fmt::Debug for OneDriveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDriveBackend")
            .field("endpoints", &self.client.endpoints)
            .finish_non_exhaustive()
    }
}

/// Builds a [`OneDriveBackend`].
#[derive(Debug)]
pub struct OneDriveBuilder {
    tokens: TokenCell,
    endpoints: MicrosoftEndpoints,
    options: OneDriveOptions,
    http: Option<reqwest::Client>,
    transfer: Option<reqwest::Client>,
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
    pub fn endpoints(mut self, endpoints: MicrosoftEndpoints) -> Self {
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
    /// redirects or send a `Referer`. Give it a connect timeout but neither `timeout`
    /// nor `read_timeout`: those are deadlines on a whole upload, and the backend
    /// applies its own idle timeout (`OneDriveOptions::read_timeout`).
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// A shared HTTP client for upload and download URLs, with the same rules
    /// as [`http_client`](Self::http_client). Keep it on HTTP/1.1 (see
    /// [`storage_core::protocol`]) so that parallel reads do not share one
    /// connection. By default: the `http_client` when one is given, else one
    /// of the backend's own.
    #[must_use]
    pub fn transfer_client(mut self, transfer: reqwest::Client) -> Self {
        self.transfer = Some(transfer);
        self
    }

    /// Checks the settings and builds the backend.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for invalid endpoints (a host graph-rs-sdk
    /// would panic on is refused here) or options.
    pub fn build(self) -> Result<OneDriveBackend> {
        let (http, transfer) = match (self.http, self.transfer) {
            (Some(h), t) => {
                let t = t.unwrap_or_else(|| h.clone());
                (h, t)
            }
            (None, Some(t)) => (default_http(&self.options)?, t),
            (None, None) => default_clients(&self.options)?,
        };
        Ok(OneDriveBackend {
            client: OneDriveClient::new(self.tokens, self.endpoints, self.options, (http, transfer), self.pool)?,
            folders: Arc::default(),
            gauge: Arc::default(),
        })
    }
}

impl OneDriveBackend {
    /// A builder reading the access token from `tokens` on every request.
    pub fn builder(tokens: TokenCell) -> OneDriveBuilder {
        OneDriveBuilder {
            tokens,
            endpoints: MicrosoftEndpoints::production(),
            options: OneDriveOptions::default(),
            http: None,
            transfer: None,
            pool: None,
        }
    }

    /// The most body bytes any upload of this backend held in memory at once:
    /// about one fragment, whatever the object's size.
    pub fn peak_upload_buffer(&self) -> usize {
        self.gauge.peak()
    }

    async fn store(&self, name: &ObjectName, source: UploadSource, size: u64) -> Result<ObjectKey> {
        self.store_as(name, source, size, Mode::Replace).await
    }

    /// A small body in memory goes up in one request, and all of its put runs
    /// to its end even when the caller's future is dropped; a larger one's
    /// upload stops with its caller (its session is cancelled), and only what
    /// follows the upload runs to its end.
    async fn store_as(&self, name: &ObjectName, source: UploadSource, size: u64, mode: Mode) -> Result<ObjectKey> {
        let one_request =
            matches!(source, UploadSource::Bytes(_)) && (size == 0 || size <= self.client.options.simple_upload_limit);
        if one_request {
            let this = self.clone();
            let name = name.clone();
            return run_to_end(async move { this.store_now(&name, source, size, mode).await }).await;
        }
        self.store_now(name, source, size, mode).await
    }

    async fn store_now(&self, name: &ObjectName, source: UploadSource, size: u64, mode: Mode) -> Result<ObjectKey> {
        let user = name.stored_user();
        let folder = self.folders.folder_for(&self.client, &user).await?;
        let replay = match &source {
            UploadSource::Bytes(b) => Some(b.clone()),
            UploadSource::Stream(_) => None,
        };
        let (folder, uploaded) = match self.upload_new(&folder, source, size).await {
            // The cached folder is gone (purged elsewhere): look it up again, and
            // send the body again when it is still at hand.
            Err(StorageError::NotFound { .. }) => {
                self.folders.forget(&user).await;
                let Some(body) = replay else {
                    return Err(StorageError::not_found(format!("{user} (the user's folder)")));
                };
                let folder = self.folders.folder_for(&self.client, &user).await?;
                let uploaded = self.upload_new(&folder, UploadSource::Bytes(body), size).await?;
                (folder, uploaded)
            }
            other => (folder, other?),
        };
        // The new file sits under its temporary name: checking it, then either
        // deleting it or moving the old version to the recycle bin and renaming
        // the new one, must not stop halfway (the name would hold nothing).
        let this = self.clone();
        let file_name = name.stored_file_name();
        run_to_end(async move {
            let item = this.checked(uploaded, size).await?;
            this.publish((folder, item), &file_name, mode).await
        })
        .await
    }

    /// Uploads to a new file under a temporary name in `folder`; returns the
    /// new file and the hash of what was sent.
    async fn upload_new(&self, folder: &str, source: UploadSource, size: u64) -> Result<(DriveItem, Checksum)> {
        let slot = Slot {
            folder: folder.to_owned(),
            name: temporary_name(),
        };
        let simple = self.client.options.simple_upload_limit;
        match source {
            UploadSource::Bytes(body) if size == 0 || size <= simple => {
                crate::upload::put_simple(&self.client, &slot, body).await
            }
            _ if size == 0 => Ok((
                self.client.put_small(&slot, Bytes::new()).await?,
                Checksum::quick_xor_of(&[]),
            )),
            source => crate::upload::upload(&self.client, &self.gauge, &slot, source, size).await,
        }
    }

    /// The uploaded file once checked; a file that fails the check is deleted.
    async fn checked(&self, (item, sent): (DriveItem, Checksum), size: u64) -> Result<DriveItem> {
        match self.verify(item, sent, size).await {
            Ok(item) => Ok(item),
            Err((e, item)) => {
                // Only the new file goes: it carries the temporary name, so it
                // can never be a version a caller was told is stored.
                if let Some(id) = item {
                    let _ = self.client.delete(&id).await;
                }
                Err(e)
            }
        }
    }

    /// Compares OneDrive's size and quickXorHash with what was sent. OneDrive
    /// reports no hash for an empty file (github.com/OneDrive/onedrive-api-docs
    /// issue 1704), whose size alone is then the whole check. On a difference the
    /// error comes with the new item's id, for the caller to delete.
    async fn verify(
        &self,
        item: DriveItem,
        sent: Checksum,
        size: u64,
    ) -> std::result::Result<DriveItem, (StorageError, Option<String>)> {
        let item = if item.quick_xor().is_none() || item.size.is_none() {
            let id = item.id.clone();
            self.client.get_item(&item.id).await.map_err(|e| (e, Some(id)))?
        } else {
            item
        };
        let stored = item.quick_xor().and_then(Checksum::from_quick_xor_base64);
        let problem = match (stored, item.size) {
            (_, Some(s)) if s != size => Some(format!("onedrive stored {s} bytes, {size} were sent")),
            (Some(h), Some(_)) if h == sent => None,
            (None, Some(0)) => None,
            (None, _) | (_, None) => Some("onedrive reported no quickXorHash or size for the upload".to_owned()),
            _ => Some("onedrive's quickXorHash differs from the hash of the bytes sent".to_owned()),
        };
        match problem {
            None => Ok(item),
            Some(message) => Err((StorageError::integrity(message), Some(item.id))),
        }
    }

    /// Gives the verified new file its name. The file that held the name before
    /// goes to the recycle bin first, and only the version that was read (its
    /// eTag): a rename never replaces, so that nothing is overwritten unseen.
    /// Another put of the same name may win the name in between; the loop goes
    /// on until this one holds it, the last writer winning.
    ///
    /// In [`Mode::Create`] a file that holds the name wins: the new file is
    /// deleted and the holder's key is `AlreadyExists`. The rename is the
    /// server's atomic step (it answers 409 `nameAlreadyExists` on a clash), so
    /// of concurrent creators exactly one takes the name.
    async fn publish(&self, (folder, item): (String, DriveItem), name: &str, mode: Mode) -> Result<ObjectKey> {
        let slot = Slot {
            folder,
            name: name.to_owned(),
        };
        let mut replaced = false;
        let outcome = async {
            for _ in 0..PUBLISH_ATTEMPTS {
                if let Some(done) = self.client.rename(&item.id, name).await? {
                    return Ok(ObjectKey::new(done.id));
                }
                match self.client.item_in(&slot).await? {
                    None => {}
                    Some(old) if old.id == item.id => return Ok(ObjectKey::new(old.id)),
                    Some(old) if old.named(name) && old.file.is_some() && mode == Mode::Create => {
                        return Err(StorageError::AlreadyExists { key: old.id });
                    }
                    Some(old) if old.named(name) && old.file.is_some() => {
                        replaced |= self.client.delete_version(&old.id, old.e_tag.as_deref()).await?;
                    }
                    Some(_) => {
                        return Err(crate::error::name_case_conflict());
                    }
                }
            }
            Err(crate::error::name_contested())
        }
        .await;
        match outcome {
            Ok(key) => Ok(key),
            // The version this put replaces is already in the recycle bin: the new
            // bytes, verified, stay readable by their key under the temporary name.
            Err(_) if replaced => Ok(ObjectKey::new(item.id)),
            Err(e) => {
                let _ = self.client.delete(&item.id).await;
                Err(e)
            }
        }
    }
}

/// Whether a put replaces what holds its name, or stores only when nothing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    Create,
}

/// How many times a put tries to take its name from other puts of that name.
const PUBLISH_ATTEMPTS: usize = 16;

/// A name no object ever has: stored names never hold `^^`
/// ([`storage_core::stored_name`]). It is not `~`-prefixed, which OneDrive for
/// Business refuses.
fn temporary_name() -> String {
    format!("^^upload-{:016x}", fastrand::u64(..))
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
            // Read the stream so that a non-empty one is refused, not truncated.
            let all = storage_core::stream::collect_exact(body, 0).await?;
            return self.store(name, UploadSource::Bytes(all), 0).await;
        }
        self.store(name, UploadSource::Stream(body), size).await
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        let (stream, size) = crate::download::open(self.client.clone(), key.as_str()).await?;
        storage_core::stream::collect(stream, usize::try_from(size).unwrap_or(usize::MAX)).await
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        Ok(crate::download::open(self.client.clone(), key.as_str()).await?.0)
    }

    /// Deletes a stored file (OneDrive keeps it in the recycle bin). The key is
    /// read first, and the delete names the version read (`if-match`): a
    /// folder's id is refused, not deleted with everything in it.
    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        for _ in 0..3 {
            let item = match self.client.document(key.as_str()).await {
                Ok(item) => item,
                Err(StorageError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if self.client.delete_version(&item.id, item.e_tag.as_deref()).await? {
                return Ok(());
            }
        }
        Err(crate::error::resource_modified())
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let item = self.client.document(key.as_str()).await?;
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
    /// The item (size, kind, download URL), then the URL with `Range`; a cut
    /// resumes at the next byte, an expired URL is fetched afresh.
    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        crate::download::open_range(self.client.clone(), key.as_str(), range).await
    }

    /// The files in the user's folder, one `children` page per call
    /// (`$top` = the page size). The token is Graph's `@odata.nextLink`, which is
    /// followed only on the Graph origin and for this user's folder.
    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        storage_core::validate_part("user_id", user_id)?;
        crate::listing::list_user(&self.client, &self.folders, user_id, page).await
    }

    /// The drive owner's email or display name.
    async fn account_name(&self) -> Result<Option<String>> {
        self.client.account_name().await
    }

    /// `GET /me/drive` with `$select=quota`; a figure Graph leaves out is `None`.
    async fn quota(&self) -> Result<Quota> {
        self.client.quota().await
    }

    /// Uploads and verifies under a temporary name, then renames; a file that
    /// holds the name by then wins, and this upload is deleted.
    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        _content_type: &str,
    ) -> Result<ObjectKey> {
        self.store_as(name, UploadSource::Stream(body), size, Mode::Create)
            .await
    }

    async fn presigned_get_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url> {
        if expires_in > MAX_PRESIGN {
            return Err(StorageError::invalid_input(
                "onedrive download urls live at most one hour; ask for an expiry of one hour or less",
            ));
        }
        let item = self.client.document(key.as_str()).await?;
        let url = crate::download::download_url(&item)?;
        Url::parse(&url).map_err(|_| crate::error::download_url(true))
    }

    async fn generate_presigned_put_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "generate_presigned_put_url",
            "onedrive upload urls belong to upload sessions created for one file by an authorised call",
        ))
    }

    async fn health_check(&self) -> Result<()> {
        self.client.drive().await
    }

    /// Moves the user's folder, with the files in it, to the recycle bin
    /// ([`FolderOutcome::Trashed`](storage_core::FolderOutcome::Trashed)). A user
    /// with no folder is an empty report.
    async fn purge_user(&self, user_id: &str) -> Result<storage_core::PurgeReport> {
        crate::purge::purge_user(&self.client, &self.folders, user_id).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_presign_get(MAX_PRESIGN)
    }
}
