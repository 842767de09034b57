//! `GoogleDriveBackend`: the `StorageBackend` implementation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use storage_core::{
    ByteRange, ByteStream, Checksum, ObjectKey, ObjectMeta, ObjectName, Page, PageRequest, Quota, Result,
    StorageBackend, StorageError, TokenCell, Url,
};

use crate::client::{DriveClient, DriveFile, DrivePool, Kind, default_transfer};
use crate::config::{DriveOptions, GoogleEndpoints};
use crate::folders::Folders;
use storage_core::detach::run_to_end;
use storage_core::upload::{BufferGauge, UploadSource};

/// Google Drive v3 behind [`StorageBackend`].
///
/// Objects are files named `{document_id}{extension}` in a folder named by the
/// user id, under [`DriveOptions::parent_folder`], both in the case-safe spelling
/// of [`storage_core::stored_name`] (`Report` is stored as `^report`), because
/// Drive's name lookups ignore case. Keys are Drive file ids, and only a stored
/// document's id is a key: a folder's id is `InvalidInput` everywhere.
/// Clones share one `DriveHub`, one HTTP pool and the token cell. The backend
/// never refreshes: a refused token is
/// [`CloudConnection`](StorageError::CloudConnection) `TokenExpired`.
///
/// ```no_run
/// use storage_core::{StorageBackend, TokenCell};
/// use storage_gdrive::GoogleDriveBackend;
/// # async fn f() -> storage_core::Result<()> {
/// let drive = GoogleDriveBackend::builder(TokenCell::new("ya29.access-token")).build()?;
/// drive.health_check().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GoogleDriveBackend {
    client: DriveClient,
    folders: Arc<Folders>,
    gauge: Arc<BufferGauge>,
}

impl std::fmt::Debug for GoogleDriveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleDriveBackend")
            .field("endpoints", &self.client.endpoints)
            .finish_non_exhaustive()
    }
}

/// Builds a [`GoogleDriveBackend`].
#[derive(Debug)]
pub struct GoogleDriveBuilder {
    tokens: TokenCell,
    endpoints: GoogleEndpoints,
    options: DriveOptions,
    http: Option<reqwest::Client>,
    transfer: Option<reqwest::Client>,
    pool: Option<DrivePool>,
}

impl GoogleDriveBuilder {
    /// A connection pool shared with other backends (see [`DrivePool`]); by
    /// default each backend has its own.
    #[must_use]
    pub fn pool(mut self, pool: DrivePool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Where the API lives; production by default.
    #[must_use]
    pub fn endpoints(mut self, endpoints: GoogleEndpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Tuning; see [`DriveOptions`].
    #[must_use]
    pub fn options(mut self, options: DriveOptions) -> Self {
        self.options = options;
        self
    }

    /// A shared HTTP client for what the backend sends with reqwest: uploads,
    /// ranged reads, session starts and folder creation (API reads go through
    /// google-drive3's own pool, on HTTP/2 where offered).
    /// It must not follow redirects with credentials. Give it a connect timeout but
    /// neither `timeout` nor `read_timeout`: those are deadlines on a whole upload,
    /// and the backend applies its own idle timeout (`DriveOptions::read_timeout`).
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The same, kept apart for transfers, with the same rules as
    /// [`http_client`](Self::http_client); given both, this one carries every
    /// reqwest request (Drive has one origin, so a second client would only
    /// add connections). Keep it on HTTP/1.1 (see [`storage_core::protocol`])
    /// so that parallel reads do not share one connection. By default: the
    /// `http_client` when one is given, else an HTTP/1.1 client of the
    /// backend's own.
    #[must_use]
    pub fn transfer_client(mut self, transfer: reqwest::Client) -> Self {
        self.transfer = Some(transfer);
        self
    }

    /// Checks the settings and builds the backend.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for invalid endpoints or options.
    pub fn build(self) -> Result<GoogleDriveBackend> {
        let transfer = match (self.transfer, self.http) {
            (Some(client), _) | (None, Some(client)) => client,
            (None, None) => default_transfer(&self.options)?,
        };
        Ok(GoogleDriveBackend {
            client: DriveClient::new(self.tokens, self.endpoints, self.options, transfer, self.pool)?,
            folders: Arc::default(),
            gauge: Arc::default(),
        })
    }
}

impl GoogleDriveBackend {
    /// A builder reading the access token from `tokens` on every request.
    pub fn builder(tokens: TokenCell) -> GoogleDriveBuilder {
        GoogleDriveBuilder {
            tokens,
            endpoints: GoogleEndpoints::production(),
            options: DriveOptions::default(),
            http: None,
            transfer: None,
            pool: None,
        }
    }

    /// The most body bytes any upload of this backend (and its clones) held in
    /// memory at once: about one chunk, whatever the object's size.
    pub fn peak_upload_buffer(&self) -> usize {
        self.gauge.peak()
    }

    /// Uploads into the user's folder, retrying once with a fresh folder lookup
    /// when the cached folder has gone.
    async fn store(&self, name: &ObjectName, content_type: &str, body: Body) -> Result<ObjectKey> {
        self.store_as(name, content_type, body, Mode::Replace).await
    }

    /// A small body goes up in one request, and all of its put runs to its end
    /// even when the caller's future is dropped; a larger one's upload stops
    /// with its caller (no file exists before its last chunk), and only what
    /// follows the upload runs to its end.
    async fn store_as(&self, name: &ObjectName, content_type: &str, body: Body, mode: Mode) -> Result<ObjectKey> {
        if matches!(body, Body::Small(_)) {
            let this = self.clone();
            let name = name.clone();
            let content_type = content_type.to_owned();
            return run_to_end(async move { this.store_now(&name, &content_type, body, mode).await }).await;
        }
        self.store_now(name, content_type, body, mode).await
    }

    async fn store_now(&self, name: &ObjectName, content_type: &str, body: Body, mode: Mode) -> Result<ObjectKey> {
        let user = name.stored_user();
        let file_name = name.stored_file_name();
        let folder = self.folders.folder_for(&self.client, &user).await?;
        if mode == Mode::Create
            && let Some(first) = self.copies(&folder, &file_name).await?.into_iter().next()
        {
            return Err(StorageError::AlreadyExists { key: first.id });
        }
        let (uploaded, folder) = match self.store_in(&folder, &file_name, content_type, body).await {
            Err((StorageError::NotFound { .. }, Some(body))) => {
                self.folders.forget(&user).await;
                let folder = self.folders.folder_for(&self.client, &user).await?;
                let uploaded = self
                    .store_in(&folder, &file_name, content_type, body)
                    .await
                    .map_err(|(e, _)| e)?;
                (uploaded, folder)
            }
            Err((e, _)) => return Err(e),
            Ok(uploaded) => (uploaded, folder),
        };
        // The new file already holds the name beside the old one: checking it,
        // then deleting it or the older copies, must not stop halfway (two
        // copies, or a damaged newest one, would stay listed).
        let this = self.clone();
        run_to_end(async move {
            let (file, md5, size) = uploaded;
            let file = this.verify(file, &md5, size).await?;
            match mode {
                Mode::Replace => this.remove_older_copies(&folder, &file_name, &file).await,
                Mode::Create => this.keep_if_first(&folder, &file_name, &file).await?,
            }
            Ok(ObjectKey::new(file.id))
        })
        .await
    }

    /// The documents named `file_name` in `folder`, earliest created first.
    async fn copies(&self, folder: &str, file_name: &str) -> Result<Vec<DriveFile>> {
        let mut files: Vec<DriveFile> = self
            .client
            .find_named(&[folder], file_name, Kind::File)
            .await?
            .into_iter()
            .filter(DriveFile::is_document)
            .collect();
        files.sort_by(DriveFile::creation_order);
        Ok(files)
    }

    /// A conditional create's second look: when a copy of the name was created
    /// before `new`, `new` is deleted and the earlier copy's key is
    /// `AlreadyExists`. Every creator orders the copies the same way (creation
    /// time, then id), so exactly one keeps its file, as long as Drive's listing
    /// shows every copy created so far.
    async fn keep_if_first(&self, folder: &str, file_name: &str, new: &DriveFile) -> Result<()> {
        let first = match self.copies(folder, file_name).await {
            Ok(c) => c.into_iter().next(),
            Err(e) => {
                let _ = self.client.delete(&new.id).await;
                return Err(e);
            }
        };
        match first {
            Some(first) if first.id != new.id => {
                let _ = self.client.delete(&new.id).await;
                Err(StorageError::AlreadyExists { key: first.id })
            }
            _ => Ok(()),
        }
    }

    /// One upload: the new file, the md5 and the size of what was sent; on a
    /// `NotFound` (the folder is gone) hands a replayable body back.
    async fn store_in(
        &self,
        folder: &str,
        file_name: &str,
        content_type: &str,
        body: Body,
    ) -> std::result::Result<(DriveFile, String, u64), (StorageError, Option<Body>)> {
        let (file, md5, size) = match body {
            Body::Small(bytes) => {
                let md5 = Checksum::md5_of(&bytes).to_provider_string();
                let size = bytes.len() as u64;
                match self
                    .client
                    .create_multipart(folder, file_name, content_type, bytes.clone())
                    .await
                {
                    Ok(f) => (f, md5, size),
                    Err(e @ StorageError::NotFound { .. }) => return Err((e, Some(Body::Small(bytes)))),
                    Err(e) => return Err((e, None)),
                }
            }
            Body::Large(source, size) => {
                let replay = match &source {
                    UploadSource::Bytes(b) => Some(b.clone()),
                    UploadSource::Stream(_) => None,
                };
                match crate::upload::upload(&self.client, &self.gauge, folder, file_name, content_type, source, size)
                    .await
                {
                    Ok((f, md5)) => (f, md5, size),
                    Err(e @ StorageError::NotFound { .. }) => {
                        return Err((e, replay.map(|b| Body::Large(UploadSource::Bytes(b), size))));
                    }
                    Err(e) => return Err((e, None)),
                }
            }
        };
        Ok((file, md5, size))
    }

    /// Compares Drive's size and md5 with what was sent; on a difference the new
    /// file is deleted, so no damaged object stays visible.
    async fn verify(&self, file: DriveFile, md5: &str, size: u64) -> Result<DriveFile> {
        let file = if file.md5_checksum.is_none() || file.size.is_none() {
            self.client.get_file(&file.id).await?
        } else {
            file
        };
        let problem = match (&file.md5_checksum, file.size) {
            (Some(m), Some(s)) if m.eq_ignore_ascii_case(md5) && s == size => None,
            (None, _) | (_, None) => Some("drive reported no md5Checksum or size for the upload".to_owned()),
            (Some(_), Some(s)) if s != size => Some(format!("drive stored {s} bytes, {size} were sent")),
            _ => Some("drive's md5Checksum differs from the md5 of the bytes sent".to_owned()),
        };
        match problem {
            None => Ok(file),
            Some(message) => {
                let _ = self.client.delete(&file.id).await;
                Err(StorageError::integrity(message))
            }
        }
    }

    /// A put of an existing name replaces it: copies of that name in the folder
    /// created before the new one are removed once the new one is verified.
    ///
    /// Only older copies go. Two puts of one name racing each other both see
    /// both files; if each removed every file but its own, nothing would be
    /// left. Ordering by creation time (then id) makes the last one created
    /// win in every process. Best effort: a failure here leaves an older copy,
    /// never loses the new one.
    ///
    /// A listing that pages while other puts delete their older copies can
    /// skip a file (Drive promises nothing of pages under concurrent change, and
    /// may cut pages short), so the listing is repeated until it shows no older
    /// copy, a few times at most.
    async fn remove_older_copies(&self, folder: &str, file_name: &str, new: &DriveFile) {
        for _ in 0..CLEANUP_ROUNDS {
            let Ok(files) = self.client.find_named(&[folder], file_name, Kind::File).await else {
                return;
            };
            // The listing's own entry for the new file is the authority on its time.
            let new = files.iter().find(|f| f.id == new.id).unwrap_or(new);
            let older: Vec<&DriveFile> = files
                .iter()
                .filter(|f| f.id != new.id && f.created_before(new))
                .collect();
            if older.is_empty() {
                return;
            }
            for f in older {
                let _ = self.client.delete(&f.id).await;
            }
        }
    }
}

enum Body {
    Small(Bytes),
    Large(UploadSource, u64),
}

impl Body {
    /// A stream's body: every non-empty stream goes through a resumable session
    /// (see `put_stream`); an empty one, with nothing to consume, takes the
    /// one-request path.
    async fn of_stream(body: ByteStream, size: u64) -> Result<Self> {
        Ok(if size == 0 {
            Body::Small(storage_core::stream::collect_exact(body, 0).await?)
        } else {
            Body::Large(UploadSource::Stream(body), size)
        })
    }
}

/// How many listings a put makes at most to remove the copies its name replaces.
const CLEANUP_ROUNDS: usize = 3;

/// Whether a put replaces what holds its name, or stores only when nothing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    Create,
}

#[async_trait]
impl StorageBackend for GoogleDriveBackend {
    async fn put_object(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        let body = if body.len() <= self.client.options.multipart_limit {
            Body::Small(body)
        } else {
            let size = body.len() as u64;
            Body::Large(UploadSource::Bytes(body), size)
        };
        self.store(name, content_type, body).await
    }

    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        // Every non-empty stream goes through a resumable session, even one small
        // enough for a multipart request: the session start is the authenticated
        // call, and it happens before the first byte is pulled. Gathering the body
        // first meant a refused token surfaced only after the stream was consumed,
        // so a managed connection could refresh but not retry (fault matrix,
        // `RefreshPutStream` column). Only an empty stream, which has nothing to
        // consume, still takes the one-request path.
        self.store(name, content_type, Body::of_stream(body, size).await?).await
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        let (stream, size) = crate::download::open(self.client.clone(), key.as_str()).await?;
        storage_core::stream::collect(stream, usize::try_from(size).unwrap_or(usize::MAX)).await
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        Ok(crate::download::open(self.client.clone(), key.as_str()).await?.0)
    }

    /// Deletes a stored document permanently. The key is read first: Drive deletes
    /// a folder with every descendant the user owns, including files the app cannot
    /// see, so a folder's id is refused rather than deleted.
    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        match self.client.document(key.as_str()).await {
            Ok(_) => self.client.delete(key.as_str()).await,
            Err(StorageError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let f = self.client.document(key.as_str()).await?;
        let mut meta = ObjectMeta::new(f.size.unwrap_or(0));
        if let Some(ct) = f.mime_type {
            meta = meta.with_content_type(ct);
        }
        if let Some(sum) = f.md5_checksum.as_deref().and_then(Checksum::from_md5_hex) {
            meta = meta.with_checksum(sum);
        }
        Ok(meta)
    }

    /// `files.get` for the size and kind, then `alt=media` with `Range`; a cut
    /// resumes at the next byte, at most `download_resumes` times.
    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        let file = self.client.document(key.as_str()).await?;
        let (first, len) = range.resolve(file.size.unwrap_or(0))?;
        let last = (first + len).saturating_sub(1);
        let (client, id) = (self.client.clone(), key.as_str().to_owned());
        let resumes = client.options.download_resumes;
        Ok(storage_core::range::read(first, len, resumes, move |offset| {
            let (client, id) = (client.clone(), id.clone());
            async move { client.download(&id, offset, last).await }
        }))
    }

    /// The documents in the user's folder (every folder of the stored name,
    /// should a race have made several), one `files.list` page per call. The
    /// token is Drive's `nextPageToken`, bound to the user: another user's
    /// token is `InvalidInput`.
    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        storage_core::validate_part("user_id", user_id)?;
        crate::listing::list_user(&self.client, user_id, page).await
    }

    /// `about.get` of the user: the email address, or the display name.
    async fn account_name(&self) -> Result<Option<String>> {
        self.client.account_name().await
    }

    /// `about.get` with `storageQuota`: `limit` absent means unlimited.
    async fn quota(&self) -> Result<Quota> {
        self.client.quota().await
    }

    /// Drive has no precondition on names, so this is a best effort: the name is
    /// looked up; the body is uploaded and verified; the name is looked up again,
    /// and when a copy created earlier appears, this copy is deleted and the
    /// earlier one's key is `AlreadyExists`. Of concurrent creators exactly one
    /// keeps its file while Drive's listing shows every file it has created; a
    /// listing that lags a create (Drive promises no read-after-write order for
    /// `files.list`) can let two copies stand, the earlier of which a later
    /// `put_object` of the name replaces.
    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        self.store_as(name, content_type, Body::of_stream(body, size).await?, Mode::Create)
            .await
    }

    async fn presigned_get_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "presigned_get_url",
            "google drive has no expiring pre-authenticated urls; a shared link would be a permanent public permission",
        ))
    }

    async fn generate_presigned_put_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "generate_presigned_put_url",
            "google drive has no pre-authenticated upload urls",
        ))
    }

    async fn health_check(&self) -> Result<()> {
        self.client.about().await
    }

    /// Deletes the user's documents one by one, permanently, then moves the user's
    /// folder (every folder of that name, should a race have made several) to the
    /// trash, where anything the app could not see in it stays recoverable for 30
    /// days ([`FolderOutcome::Trashed`](storage_core::FolderOutcome::Trashed)). A
    /// listing afterwards must show nothing of the app's, or the call fails and
    /// can be repeated.
    async fn purge_user(&self, user_id: &str) -> Result<storage_core::PurgeReport> {
        crate::purge::purge_user(&self.client, &self.folders, user_id).await
    }

    fn capabilities(&self) -> storage_core::Capabilities {
        storage_core::Capabilities::NONE.keeping_content_type()
    }
}
